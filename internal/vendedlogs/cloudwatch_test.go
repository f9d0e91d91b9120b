package vendedlogs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/testutil/cwlogs"
)

// cwClient is the real SDK client pointed at the endpoint, with one attempt per call
// (the forwarder retries itself).
func cwClient(url string) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE0000001", "secret-secret-secret", ""),
		RetryMaxAttempts: 1,
	})
}

// Records reach CloudWatch Logs as AMP's records, in well-formed PutLogEvents batches
// (checked against botocore's model), however many and however large: split by size,
// count and time span.
func TestForwardToCloudWatchLogs(t *testing.T) {
	model := cwlogs.LoadModel(t)
	cw := cwlogs.New(t, model, "/aws/vendedlogs/prometheus/team-a")
	cfg := testConfig(t.TempDir())
	cfg.MaxFileBytes, cfg.QueueSize = 1<<30, 20000
	cfg.CloudWatchBatchWait, cfg.CloudWatchQueue, cfg.CloudWatchStream = time.Hour, 100, "strata/test"
	c := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	l := New(cfg, workspaces{"ws-a": {ID: "ws-a", Logging: active(groupA, 0)}}, reg, nil)
	l.SetClock(c.now)
	l.UseCloudWatch(cwClient(cw.URL))
	ctx := context.Background()
	if err := l.CheckLogGroup(ctx, groupA); err != nil {
		t.Fatalf("an existing log group: %v", err)
	}
	if err := l.CheckLogGroup(ctx, "arn:aws:logs:us-east-1:123456789012:log-group:nope:*"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("a missing log group: %v", err)
	}
	start(t, l)

	// 12,000 small records and 6 of 200 KiB (each more than a call's 1 MiB; at 26 bytes
	// of overhead, records of AMP's shape reach the size limit before the 10,000 events
	// one), and one 25 hours later (more than a call's 24 hours).
	for range 12000 {
		l.Event("ws-a", ComponentIngestion, LevelWarn, "remote write refused: 429")
	}
	big := strings.Repeat("x", 200<<10)
	for range 6 {
		l.Event("ws-a", ComponentRuler, LevelError, big)
	}
	c.advance(25 * time.Hour)
	l.Event("ws-a", ComponentAlertmanager, LevelError, "Notify for alerts failed")
	flush(t, l)
	testutil.Eventually(t, 30*time.Second, "every record in CloudWatch Logs", func() bool { return len(cw.Events()) == 12007 })
	if bad := cw.Invalid(); len(bad) > 0 {
		t.Fatalf("requests the model refuses: %v", bad)
	}
	if cw.Puts() < 4 {
		t.Fatalf("%d PutLogEvents calls for 12,007 records over the limits, want at least 4", cw.Puts())
	}
	events := cw.Events()
	var first map[string]any
	if err := json.Unmarshal([]byte(events[0].Message), &first); err != nil {
		t.Fatal(err)
	}
	if first["workspaceId"] != "ws-a" || first["component"] != "ingestion" || first["time"] != nil || events[0].Stream != "strata/test" ||
		events[0].Timestamp != time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC).UnixMilli() {
		t.Fatalf("first event %+v", events[0])
	}
	if n := promtestutil.ToFloat64(l.fw.forwarded.WithLabelValues("ok")); n != 12007 {
		t.Fatalf("forwarded ok %v, want 12007", n)
	}
}

// A CloudWatch Logs that fails is retried; when it keeps failing, the records are
// counted as failed and the next ones still go.
func TestForwardRetriesAndGivesUp(t *testing.T) {
	model := cwlogs.LoadModel(t)
	cw := cwlogs.New(t, model, "/aws/vendedlogs/prometheus/team-a")
	cfg := testConfig(t.TempDir())
	cfg.CloudWatchBatchWait, cfg.CloudWatchQueue, cfg.CloudWatchStream = time.Hour, 10, "strata/test"
	l := New(cfg, workspaces{"ws-a": {ID: "ws-a", Logging: active(groupA, 0)}}, nil, nil)
	l.UseCloudWatch(cwClient(cw.URL))
	start(t, l)

	cw.FailNext(2) // the stream's creation, then the first put: retried
	l.Event("ws-a", ComponentIngestion, LevelWarn, "one")
	flush(t, l)
	testutil.Eventually(t, 10*time.Second, "the record after two failures", func() bool { return len(cw.Events()) == 1 })

	cw.FailNext(forwardAttempts)
	l.Event("ws-a", ComponentIngestion, LevelWarn, "lost")
	flush(t, l)
	testutil.Eventually(t, 10*time.Second, "the record given up", func() bool {
		return promtestutil.ToFloat64(l.fw.forwarded.WithLabelValues("failed")) == 1
	})
	l.Event("ws-a", ComponentIngestion, LevelWarn, "three")
	flush(t, l)
	testutil.Eventually(t, 10*time.Second, "the next record", func() bool { return len(cw.Events()) == 2 })
	if bad := cw.Invalid(); len(bad) > 0 {
		t.Fatalf("requests the model refuses: %v", bad)
	}
	if got := cw.Events()[1].Message; !strings.Contains(got, `"three"`) {
		t.Fatalf("second event %s", got)
	}
}
