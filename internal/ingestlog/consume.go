package ingestlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/remotewrite"
)

// checkpointEvery bounds how often a partition's checkpoint is written: what was applied
// after the last one is read again after a crash, and a sample stored twice is stored
// once.
const checkpointEvery = time.Second

// Consumer feeds an ingester from the log: each partition is read strictly in order
// (JetStream's ordered consumers, which start over from the last message they delivered
// after any gap or lost server), and its checkpoint, the stream sequence of the last
// batch the ingester stored, is kept in a file beside the TSDBs. After a restart reading
// resumes after the checkpoint.
//
// Without an assignment it reads every partition; with one (Leases) the partitions its
// ingester owns or is catching up on to take over, starting and stopping readers as
// they change.
type Consumer struct {
	log    *Log
	dir    string
	pusher ingest.Pusher
	logger *slog.Logger
	m      consumerMetrics
	// caught[p] is set once partition p has been read up to where it ended when
	// reading began.
	caught []atomic.Bool
	assign Assignment // nil: every partition
	replay *Replay    // nil: a partition without a checkpoint is read from the beginning
	// stored[p] is the time (unix ns) the log stored the last batch of partition p that
	// was read, or the replay of p started from; 0 when not known.
	stored []atomic.Int64
	markMu sync.Mutex // one publishMarks at a time
	// published[p] is the last shipped mark of p published (unix ns); guarded by markMu.
	published []int64

	mu      sync.Mutex
	reading []int // the partitions being read, sorted
}

// Replay makes a consumer read a partition it has no checkpoint for from the
// partition's shipped mark (less Margin) rather than from the log's beginning, and
// publish the marks of the partitions it reads.
type Replay struct {
	Marks *ShippedMarks
	// Ingester is the ingester the consumer stores into.
	Ingester ReplayIngester
	// Margin is how much earlier than a mark the replay starts: more than samples may be
	// ahead of the clock (--limits.creation-grace-period) plus the difference between the
	// clocks of the servers.
	Margin time.Duration
	// Settle is how long after its upload a block counts as in the bucket: the time the
	// store-gateways take to see it (--store-gateway.sync-interval).
	Settle time.Duration
	// Recent is how far back a replay goes at least: the samples only the ingesters are
	// asked for (--querier.query-store-after).
	Recent time.Duration
}

// ReplayIngester is what a replay needs of the ingester.
type ReplayIngester interface {
	// UnshippedFrom returns the oldest sample time (ms) the ingester holds that was not
	// in the bucket before the time before, math.MaxInt64 for none; ok is false while it
	// cannot tell.
	UnshippedFrom(before time.Time) (mint int64, ok bool)
	// ReplayFrom makes the ingester store samples of partition p back to mint (ms),
	// older than it takes otherwise, until ReplayDone(p).
	ReplayFrom(p int, mint int64)
	ReplayDone(p int)
}

// Reading returns the partitions being read now.
func (c *Consumer) Reading() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reading)
}

type consumerMetrics struct {
	batches  *prometheus.CounterVec
	refusals *prometheus.CounterVec
	retries  prometheus.Counter
	applied  *prometheus.GaugeVec
	reading  prometheus.Gauge
	marks    prometheus.Counter
	replays  *prometheus.CounterVec
}

// NewConsumer returns a Consumer that stores what it reads through pusher (the
// ingester) and keeps its checkpoints under dir.
func NewConsumer(l *Log, dir string, pusher ingest.Pusher, logger *slog.Logger, reg prometheus.Registerer) *Consumer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	m := consumerMetrics{
		batches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ingest_log_batches_consumed_total",
			Help: "Batches read from the ingest log, by outcome (stored; dropped: the workspace is deleted; malformed; replayed: at or before the checkpoint).",
		}, []string{"outcome"}),
		refusals: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ingest_log_refusals_total",
			Help: "Batches from the ingest log of which the ingester refused some samples (limits: series limits; invalid: out of order, too old, duplicates with new values).",
		}, []string{"reason"}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingest_log_store_retries_total",
			Help: "Attempts to store a batch from the ingest log again after the ingester failed it.",
		}),
		marks: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingest_log_shipped_marks_published_total",
			Help: "Shipped marks published: per partition, the time from which a new owner replays it.",
		}),
		replays: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ingest_log_replays_total",
			Help: "Partitions read from elsewhere than this ingester's checkpoint, by where reading started (mark: the partition's shipped mark, without a checkpoint or past it; beginning: the log's first batch, without either).",
		}, []string{"from"}),
		reading: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_ingest_log_partitions_read",
			Help: "Partitions the ingester reads: those it owns for its zone, and those it is catching up on to take over.",
		}),
		applied: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_ingest_log_applied_sequence",
			Help: "Stream sequence of the last batch of each partition the ingester stored.",
		}, []string{"partition"}),
	}
	return &Consumer{log: l, dir: dir, pusher: pusher, logger: logger, m: m,
		caught: make([]atomic.Bool, l.cfg.Partitions), stored: make([]atomic.Int64, l.cfg.Partitions), published: make([]int64, l.cfg.Partitions)}
}

// Assignment says which partitions a consumer reads (Leases).
type Assignment interface {
	Assigned() []int
}

// Assign makes c read only the partitions a assigns, following its changes; without an
// assignment it reads every partition. Call before Run.
func (c *Consumer) Assign(a Assignment) { c.assign = a }

// Replay makes c read partitions without a checkpoint from their shipped marks and
// publish marks. Call before Run.
func (c *Consumer) Replay(r Replay) { c.replay = &r }

// CaughtUpOn reports whether partition p has been read up to where it ended when this
// consumer began reading it: from then on the ingester's answers for it miss only what
// is in flight.
func (c *Consumer) CaughtUpOn(p int) bool { return p >= 0 && p < len(c.caught) && c.caught[p].Load() }

// assignEvery is how often Run looks at its assignment; markEvery how often it
// publishes shipped marks.
const (
	assignEvery = 250 * time.Millisecond
	markEvery   = 10 * time.Second
)

// publishMarks publishes the shipped mark of each partition read: the older of the
// oldest sample the ingester holds outside the bucket and the time the log stored the
// last batch read. Every sample not in the bucket then came in a batch stored after the
// mark (give or take Replay.Margin): either one not read yet, or one whose samples the
// ingester holds, not older than the mark.
func (c *Consumer) publishMarks(ctx context.Context) {
	if c.replay == nil {
		return
	}
	c.markMu.Lock()
	defer c.markMu.Unlock()
	unshipped, ok := c.replay.Ingester.UnshippedFrom(time.Now().Add(-c.replay.Settle))
	if !ok {
		return
	}
	for _, p := range c.Reading() {
		st := c.stored[p].Load()
		if st == 0 {
			continue
		}
		mark := st
		if unshipped != math.MaxInt64 {
			mark = min(mark, unshipped*int64(time.Millisecond))
		}
		// Marks only move forward: what an earlier one said stays true.
		if mark <= c.published[p] {
			continue
		}
		if err := c.replay.Marks.Publish(ctx, p, time.Unix(0, mark)); err != nil {
			c.logger.Warn("publishing a shipped mark", "partition", p, "err", err)
			continue
		}
		c.published[p] = mark
		c.m.marks.Inc()
	}
}

// Run consumes the assigned partitions until ctx is done, then writes the checkpoints.
func (c *Consumer) Run(ctx context.Context) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("ingest log checkpoints: %w", err)
	}
	type running struct {
		stop context.CancelFunc
		done chan struct{}
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	readers := map[int]running{}
	start := func(p int) {
		pctx, stop := context.WithCancel(ctx)
		r := running{stop: stop, done: make(chan struct{})}
		readers[p] = r
		go func() {
			defer close(r.done)
			err := c.consumePartition(pctx, p)
			if err == nil && pctx.Err() == nil {
				// Its reader gave up (NATS lost it): read on from the checkpoint. The TSDB
				// still holds what was read, so the partition stays caught up.
				c.logger.Warn("reading a partition ended; starting again", "partition", p)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	stopReader := func(p int) {
		r := readers[p]
		r.stop()
		<-r.done
		delete(readers, p)
		c.caught[p].Store(false) // read again later, it must catch up again
		c.stored[p].Store(0)
	}
	t := time.NewTicker(assignEvery)
	defer t.Stop()
	marks := time.NewTicker(markEvery)
	defer marks.Stop()
loop:
	for {
		for p, r := range readers {
			select {
			case <-r.done: // ended by itself (its reader closed): started again below
				delete(readers, p)
			default:
			}
		}
		want := map[int]bool{}
		if c.assign == nil {
			for p := range c.log.cfg.Partitions {
				want[p] = true
			}
		} else {
			for _, p := range c.assign.Assigned() {
				want[p] = true
			}
		}
		for p := range readers {
			if !want[p] {
				c.logger.Info("no longer reading a partition", "partition", p)
				stopReader(p)
			}
		}
		for p := range want {
			if _, ok := readers[p]; !ok {
				if c.assign != nil {
					c.logger.Info("reading a partition", "partition", p)
				}
				start(p)
			}
		}
		c.mu.Lock()
		c.reading = slices.Sorted(maps.Keys(readers))
		c.mu.Unlock()
		c.m.reading.Set(float64(len(readers)))
		mu.Lock()
		failed := len(errs) > 0 // a partition failed for good: stop the others too
		mu.Unlock()
		if failed {
			break
		}
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
		case <-marks.C:
			c.publishMarks(ctx)
		}
	}
	for p := range readers {
		stopReader(p)
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// checkpointFile is the file of partition p's checkpoint: a stream sequence, so named
// after the stream when there are several (one stream keeps the name it always had).
func (c *Consumer) checkpointFile(p int) string {
	name := "partition-" + strconv.Itoa(p)
	if c.log.streams() > 1 {
		name = c.log.streamOf(p) + "." + name
	}
	return filepath.Join(c.dir, name)
}

// readCheckpoint returns the partition's checkpoint, 0 when there is none.
func (c *Consumer) readCheckpoint(p int) (uint64, error) {
	b, err := os.ReadFile(c.checkpointFile(p))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the checkpoint of partition %d: %w", p, err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("checkpoint of partition %d: %w", p, err)
	}
	return seq, nil
}

// writeCheckpoint replaces the partition's checkpoint (temporary file, rename).
func (c *Consumer) writeCheckpoint(p int, seq uint64) error {
	name := c.checkpointFile(p)
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the checkpoint of partition %d: %w", p, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("writing the checkpoint of partition %d: %w", p, err)
	}
	return nil
}

// consumePartition stores the partition's batches in order from its checkpoint on,
// until ctx is done.
func (c *Consumer) consumePartition(ctx context.Context, p int) error {
	last, err := c.readCheckpoint(p)
	if err != nil {
		return err
	}
	saved := last
	defer func() {
		if last != saved {
			if err := c.writeCheckpoint(p, last); err != nil {
				c.logger.Error("saving the ingest log checkpoint", "partition", p, "err", err)
			}
		}
	}()
	label := strconv.Itoa(p)
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{c.log.subject(p)}}
	var (
		cons     jetstream.Consumer
		end      uint64 // the partition's last sequence when reading began
		from     time.Time
		fromMark bool
	)
	for attempt := 0; ; attempt++ {
		// The stream may not exist yet (a cluster forming).
		var streamLast uint64
		if end, streamLast, err = c.lastSequence(ctx, p); err == nil {
			if last > streamLast {
				// Sequences never go back within a stream: this one was made again
				// (NATS' store wiped) since the checkpoint was written.
				c.logger.Warn("ingest log checkpoint beyond the stream's last sequence: the stream was made again; reading the partition as if new", "partition", p, "checkpoint", last, "stream_last", streamLast)
				last = 0
			}
			if from, fromMark, err = c.startAt(ctx, p, last, &cfg); err == nil {
				if cons, err = c.log.js.OrderedConsumer(ctx, c.log.streamOf(p), cfg); err == nil {
					break
				}
			}
		}
		if attempt%20 == 19 {
			c.logger.Warn("reading the ingest log; retrying", "partition", p, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
	replaying := !from.IsZero()
	if replaying {
		// Samples up to hours older than the ingester's TSDBs hold now.
		c.replay.Ingester.ReplayFrom(p, from.UnixMilli())
		defer c.replay.Ingester.ReplayDone(p)
		if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
			c.caught[p].Store(true) // nothing to read
		}
	}
	if fromMark {
		c.stored[p].Store(from.UnixNano())
	}
	if last >= end {
		c.caught[p].Store(true)
	}
	caughtUp := func() {
		c.caught[p].Store(true)
		if replaying {
			replaying = false
			c.replay.Ingester.ReplayDone(p)
		}
	}
	if c.caught[p].Load() {
		caughtUp()
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("reading partition %d of the ingest log: %w", p, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	var (
		req     remotewrite.Request
		scratch []byte
	)
	lastSave := time.Now()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			// The ordered consumer starts over after the last message it delivered; an
			// error that persists (NATS unreachable) is retried at a calm pace.
			c.logger.Debug("reading the ingest log", "partition", p, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			c.logger.Error("ingest log message without metadata; skipped", "partition", p, "err", err)
			continue
		}
		seq := md.Sequence.Stream
		if seq <= last {
			c.m.batches.WithLabelValues("replayed").Inc()
			if seq >= end {
				caughtUp()
			}
			continue
		}
		batch, err := decodeMessage(scratch, msg.Data())
		if err != nil {
			// Never valid: reading it again would not help.
			c.m.batches.WithLabelValues("malformed").Inc()
			c.logger.Error("malformed message in the ingest log; skipped", "partition", p, "sequence", seq, "err", err)
			last = seq
			if last >= end {
				caughtUp()
			}
			continue
		}
		scratch = batch[:0]
		if !c.store(ctx, p, &req, batch) {
			return nil // stopping: read again after the checkpoint
		}
		last = seq
		c.stored[p].Store(md.Timestamp.UnixNano())
		if last >= end {
			caughtUp()
		}
		c.m.applied.WithLabelValues(label).Set(float64(seq))
		if now := time.Now(); now.Sub(lastSave) >= checkpointEvery {
			if err := c.writeCheckpoint(p, last); err != nil {
				c.logger.Error("saving the ingest log checkpoint", "partition", p, "err", err)
			} else {
				saved, lastSave = last, now
			}
		}
	}
}

// startAt sets where cfg starts reading partition p. Without marks (no Replay): after
// its checkpoint last, or at the log's beginning. With marks: at the partition's shipped
// mark less the margin (fromMark) when there is no checkpoint or the mark is past it;
// after the checkpoint otherwise; at the log's beginning when there is neither. from is
// then the oldest a batch read can be (zero when not known), for the ingester to take
// their samples.
func (c *Consumer) startAt(ctx context.Context, p int, last uint64, cfg *jetstream.OrderedConsumerConfig) (from time.Time, fromMark bool, err error) {
	cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverAllPolicy, 0, nil
	if last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
	}
	if c.replay == nil {
		return time.Time{}, false, nil
	}
	var checkpointAt time.Time // when the log stored the checkpoint's batch
	if last > 0 {
		if checkpointAt, err = c.log.storedAt(ctx, p, last); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return time.Time{}, false, err
		} // not found: gone from the log, older than any mark
	}
	mark, ok, err := c.replay.Marks.Mark(ctx, p)
	if err != nil {
		return time.Time{}, false, err
	}
	if ok {
		from = mark.Add(-c.replay.Margin)
		if r := time.Now().Add(-c.replay.Recent); c.replay.Recent > 0 && r.Before(from) {
			from = r
		}
	}
	switch {
	case ok && (last == 0 || from.After(checkpointAt)):
		// What the log holds between the checkpoint and the mark is in the bucket.
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &from
		c.m.replays.WithLabelValues("mark").Inc()
		c.logger.Info("reading a partition from its shipped mark", "partition", p, "mark", mark, "from", from, "checkpoint", last)
		return from, true, nil
	case last > 0:
		if checkpointAt.IsZero() {
			return time.Now().Add(-c.log.cfg.JetStream.MaxAge), false, nil
		}
		c.stored[p].Store(checkpointAt.UnixNano())
		return checkpointAt, false, nil
	default:
		c.m.replays.WithLabelValues("beginning").Inc()
		c.logger.Info("reading a partition from the log's beginning: no shipped mark", "partition", p)
		return time.Now().Add(-c.log.cfg.JetStream.MaxAge), false, nil
	}
}

// storedAt returns when the log stored the batch of partition p with stream sequence seq.
func (l *Log) storedAt(ctx context.Context, p int, seq uint64) (time.Time, error) {
	st, err := l.js.Stream(ctx, l.streamOf(p))
	if err != nil {
		return time.Time{}, err
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return time.Time{}, err
	}
	return m.Time, nil
}

// lastSequence returns the stream sequence of the partition's last batch, 0 when it
// has none, and the last sequence of its stream.
func (c *Consumer) lastSequence(ctx context.Context, p int) (last, streamLast uint64, err error) {
	st, err := c.log.js.Stream(ctx, c.log.streamOf(p))
	if err != nil {
		return 0, 0, err
	}
	streamLast = st.CachedInfo().State.LastSeq
	msg, err := st.GetLastMsgForSubject(ctx, c.log.subject(p))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, streamLast, nil
	}
	if err != nil {
		return 0, 0, err
	}
	return msg.Sequence, max(streamLast, msg.Sequence), nil
}

// store stores one batch, retrying while the ingester fails it; it returns false when
// ctx ended first or the ingester is stopping.
func (c *Consumer) store(ctx context.Context, p int, req *remotewrite.Request, data []byte) bool {
	ws, opts, err := ingest.ParseBatch(req, data)
	if err != nil {
		// Never valid: reading it again would not help.
		c.m.batches.WithLabelValues("malformed").Inc()
		c.logger.Error("malformed batch in the ingest log; skipped", "partition", p, "err", err)
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
			return true
		case errors.Is(err, ingest.ErrWorkspaceDeleted):
			c.m.batches.WithLabelValues("dropped").Inc()
			return true
		case errors.Is(err, ingest.ErrStopped) || ctx.Err() != nil:
			return false
		}
		// Keep the partition's order: this batch again, not the next one.
		c.m.retries.Inc()
		c.logger.Warn("storing a batch from the ingest log; retrying", "workspace", ws, "partition", p, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, 5*time.Second)):
		}
	}
}
