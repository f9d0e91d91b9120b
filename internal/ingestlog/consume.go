package ingestlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/remotewrite"
)

// ownerGroup is the priority group of the partition consumers: JetStream pins each
// partition's consumer to one client at a time and moves it to another when the pinned
// one stops pulling for PinnedTTL, so one ingester per zone owns a partition.
const ownerGroup = "owner"

// Consumer feeds an ingester from the log: one consumer per partition, in order, each
// batch acknowledged once the ingester has stored it.
type Consumer struct {
	log    *Log
	pusher ingest.Pusher
	logger *slog.Logger
	m      consumerMetrics
}

type consumerMetrics struct {
	batches  *prometheus.CounterVec
	refusals *prometheus.CounterVec
	retries  prometheus.Counter
}

// NewConsumer returns a Consumer that stores what it reads through pusher (the
// ingester).
func NewConsumer(l *Log, pusher ingest.Pusher, logger *slog.Logger, reg prometheus.Registerer) *Consumer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Consumer{log: l, pusher: pusher, logger: logger, m: consumerMetrics{
		batches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ingest_log_batches_consumed_total",
			Help: "Batches read from the ingest log and stored, by outcome (stored, dropped: the workspace is deleted; malformed).",
		}, []string{"outcome"}),
		refusals: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ingest_log_refusals_total",
			Help: "Batches from the ingest log of which the ingester refused some samples (limits: series limits; invalid: out of order, too old, duplicates with new values).",
		}, []string{"reason"}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingest_log_store_retries_total",
			Help: "Attempts to store a batch from the ingest log again after the ingester failed it.",
		}),
	}}
}

// Run consumes every partition until ctx is done. A batch read but not yet stored when
// it stops is not acknowledged: the log sends it again.
func (c *Consumer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, c.log.cfg.Partitions)
	for p := range c.log.cfg.Partitions {
		cons, err := c.consumer(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		wg.Go(func() {
			if err := c.consumePartition(ctx, p, cons); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	// A clean stop hands the partitions on at once, not after PartitionFailover: to this
	// ingester restarted, or another of its zone.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if st, err := c.log.js.Stream(uctx, c.log.cfg.JetStream.Stream); err == nil {
		for p := range c.log.cfg.Partitions {
			if err := st.UnpinConsumer(uctx, c.name(p), ownerGroup); err != nil {
				c.logger.Debug("handing on a partition of the ingest log", "partition", p, "err", err)
			}
		}
	}
	return errors.Join(collect(errs)...)
}

// name is the durable consumer of partition p for this ingester's zone.
func (c *Consumer) name(p int) string {
	return "ingester-" + c.log.cfg.Zone + "-p" + strconv.Itoa(p)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

func (c *Consumer) consumer(ctx context.Context, p int) (jetstream.Consumer, error) {
	zone := c.log.cfg.Zone
	name := c.name(p)
	cons, err := c.log.js.CreateOrUpdateConsumer(ctx, c.log.cfg.JetStream.Stream, jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "Strata ingesters of zone " + zone + ", partition " + strconv.Itoa(p),
		FilterSubject:  c.log.subject(p),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        time.Minute,
		MaxAckPending:  4096,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{ownerGroup},
		PinnedTTL:      c.log.cfg.PartitionFailover,
		Replicas:       c.log.cfg.JetStream.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s of the ingest log: %w", name, err)
	}
	return cons, nil
}

// consumePartition stores the partition's batches in order until ctx is done.
func (c *Consumer) consumePartition(ctx context.Context, p int, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullPriorityGroup(ownerGroup), jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("reading partition %d of the ingest log: %w", p, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	var req remotewrite.Request
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			c.logger.Warn("reading the ingest log", "partition", p, "err", err)
			continue
		}
		if !c.store(ctx, p, &req, msg) {
			return nil // stopping: the batch is sent again
		}
	}
}

// store stores one batch, retrying while the ingester fails it, and acknowledges it; it
// returns false when ctx ended first.
func (c *Consumer) store(ctx context.Context, p int, req *remotewrite.Request, msg jetstream.Msg) bool {
	ws, opts, err := ingest.ParseBatch(req, msg.Data())
	if err != nil {
		// Never valid: sending it again would not help.
		c.m.batches.WithLabelValues("malformed").Inc()
		c.logger.Error("malformed batch in the ingest log; dropped", "partition", p, "err", err)
		_ = msg.Term()
		return true
	}
	defer req.Reset()
	for attempt := 0; ; attempt++ {
		res, err := c.pusher.Push(ctx, ws, req, opts)
		switch {
		case err == nil:
			if res.Limited != nil {
				c.m.refusals.WithLabelValues("limits").Inc()
				c.logger.Warn("samples from the ingest log over a series limit", "workspace", ws, "err", res.Limited)
			}
			if res.Invalid != nil {
				c.m.refusals.WithLabelValues("invalid").Inc()
				c.logger.Debug("samples from the ingest log refused", "workspace", ws, "err", res.Invalid)
			}
			c.m.batches.WithLabelValues("stored").Inc()
			_ = msg.Ack()
			return true
		case errors.Is(err, ingest.ErrWorkspaceDeleted):
			c.m.batches.WithLabelValues("dropped").Inc()
			_ = msg.Ack()
			return true
		case errors.Is(err, ingest.ErrStopped) || ctx.Err() != nil:
			return false
		}
		// Keep the partition's order: this batch again, not the next one.
		c.m.retries.Inc()
		c.logger.Warn("storing a batch from the ingest log; retrying", "workspace", ws, "partition", p, "attempt", attempt+1, "err", err)
		_ = msg.InProgress()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, 5*time.Second)):
		}
	}
}
