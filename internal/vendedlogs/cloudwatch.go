package vendedlogs

// Forwarding to a CloudWatch Logs-compatible API: the records of each log group are
// batched within PutLogEvents' limits (1,048,576 bytes counting 26 per event, 10,000
// events, 24 hours, in time order) and sent by one goroutine, with retries; a full send
// queue drops the batch and counts it, so forwarding never holds up the file sink, and
// with it ingestion and queries.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/prometheus/client_golang/prometheus"
)

// PutLogEvents' limits.
const (
	maxBatchBytes   = 1_048_576
	eventOverhead   = 26
	maxBatchEvents  = 10_000
	maxBatchSpan    = 24 * time.Hour
	forwardAttempts = 4
)

// LogGroupAPI is the part of the CloudWatch Logs API the forwarder calls;
// *cloudwatchlogs.Client implements it.
type LogGroupAPI interface {
	DescribeLogGroups(context.Context, *cloudwatchlogs.DescribeLogGroupsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogGroupsOutput, error)
	CreateLogStream(context.Context, *cloudwatchlogs.CreateLogStreamInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutLogEvents(context.Context, *cloudwatchlogs.PutLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error)
}

// NewCloudWatchClient returns a CloudWatch Logs client for endpoint, with the standard
// AWS credential chain.
func NewCloudWatchClient(ctx context.Context, endpoint, region string) (*cloudwatchlogs.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("AWS configuration for CloudWatch Logs: %w", err)
	}
	return cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}), nil
}

// forwarder batches records by log group and sends them.
type forwarder struct {
	api     LogGroupAPI
	stream  string
	wait    time.Duration
	logger  *slog.Logger
	batches map[string]*batch // by log group ARN; only Run's goroutine
	send    chan *batch
	created map[string]bool // log streams made, by log group name; only the sender

	forwarded *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

// batch is one PutLogEvents call in the making.
type batch struct {
	group, region, name string
	events              []cwtypes.InputLogEvent
	bytes               int
	first               time.Time // of its oldest event
	started             time.Time // when the batch began, for the batch wait
}

func newForwarder(api LogGroupAPI, stream string, wait time.Duration, queue int, logger *slog.Logger, reg prometheus.Registerer, dropped *prometheus.CounterVec) *forwarder {
	f := &forwarder{
		api: api, stream: stream, wait: wait, logger: logger, dropped: dropped,
		batches: map[string]*batch{},
		send:    make(chan *batch, queue),
		created: map[string]bool{},
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_vended_logs_forwarded_total",
			Help: "Vended log records sent to CloudWatch Logs (PutLogEvents), by result: ok or failed (dropped after retries).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(f.forwarded)
	}
	return f
}

// add puts a record into its log group's batch, sending the batch first when the record
// would take it past a limit.
func (f *forwarder) add(group string, at time.Time, msg []byte, now time.Time) {
	b := f.batches[group]
	size := len(msg) + eventOverhead
	if b != nil && (b.bytes+size > maxBatchBytes || len(b.events) == maxBatchEvents || at.Sub(b.first) > maxBatchSpan || b.first.Sub(at) > maxBatchSpan) {
		f.flush(group)
		b = nil
	}
	if b == nil {
		region, _, name, err := ParseLogGroupARN(group)
		if err != nil {
			return // checked before any record is made
		}
		b = &batch{group: group, region: region, name: name, first: at, started: now}
		f.batches[group] = b
	}
	b.events = append(b.events, cwtypes.InputLogEvent{Message: aws.String(string(msg)), Timestamp: aws.Int64(at.UnixMilli())})
	b.bytes += size
	b.first = minTime(b.first, at)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// flush hands a log group's batch to the sender, or drops it when the sender is behind.
func (f *forwarder) flush(group string) {
	b := f.batches[group]
	delete(f.batches, group)
	if b == nil || len(b.events) == 0 {
		return
	}
	select {
	case f.send <- b:
	default:
		f.dropped.WithLabelValues("forward_queue_full").Add(float64(len(b.events)))
	}
}

// flushOld sends the batches started at least the batch wait ago (all with zero).
func (f *forwarder) flushOld(now time.Time, all bool) {
	for group, b := range f.batches {
		if all || now.Sub(b.started) >= f.wait {
			f.flush(group)
		}
	}
}

// run sends batches until send is closed.
func (f *forwarder) run(ctx context.Context) {
	for b := range f.send {
		err := f.put(ctx, b)
		result := "ok"
		if err != nil {
			result = "failed"
			f.logger.Warn("forwarding vended log records to CloudWatch Logs", "log_group", b.name, "records", len(b.events), "err", err)
		}
		f.forwarded.WithLabelValues(result).Add(float64(len(b.events)))
	}
}

// put sends one batch, in time order, creating the log stream when needed, with retries.
func (f *forwarder) put(ctx context.Context, b *batch) error {
	slices.SortStableFunc(b.events, func(x, y cwtypes.InputLogEvent) int {
		return int(aws.ToInt64(x.Timestamp) - aws.ToInt64(y.Timestamp))
	})
	region := func(o *cloudwatchlogs.Options) { o.Region = b.region }
	var err error
	for attempt := range forwardAttempts {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(1<<attempt) * 100 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !f.created[b.name] {
			_, err = f.api.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(b.name), LogStreamName: aws.String(f.stream)}, region)
			var exists *cwtypes.ResourceAlreadyExistsException
			if err != nil && !errors.As(err, &exists) {
				continue
			}
			f.created[b.name] = true
		}
		_, err = f.api.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
			LogGroupName:  aws.String(b.name),
			LogStreamName: aws.String(f.stream),
			LogEvents:     b.events,
		}, region)
		var missing *cwtypes.ResourceNotFoundException
		if errors.As(err, &missing) {
			f.created[b.name] = false // the stream (or group) went away; make it again
		}
		if err == nil {
			return nil
		}
	}
	return err
}

// checkLogGroup says whether a log group exists in the CloudWatch Logs API.
func (f *forwarder) checkLogGroup(ctx context.Context, arn string) error {
	region, _, name, err := ParseLogGroupARN(arn)
	if err != nil {
		return err
	}
	in := &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(name)}
	for {
		out, err := f.api.DescribeLogGroups(ctx, in, func(o *cloudwatchlogs.Options) { o.Region = region })
		if err != nil {
			return fmt.Errorf("looking the log group up in CloudWatch Logs: %w", err)
		}
		for _, g := range out.LogGroups {
			if aws.ToString(g.LogGroupName) == name {
				return nil
			}
		}
		if out.NextToken == nil {
			return fmt.Errorf("log group %s does not exist in CloudWatch Logs", name)
		}
		in.NextToken = out.NextToken
	}
}

// defaultStream names the log stream of this process: one per process, so that no two
// writers share a stream.
func defaultStream() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "strata"
	}
	return "strata/" + host
}
