package app

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/prometheus/prompb"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
)

// Each target runs its modules, those they depend on and those every process runs,
// nothing else; combinations that would need a network between components are refused
// with a message that says what to run instead.
func TestTargets(t *testing.T) {
	for _, c := range []struct {
		target string
		want   string // modules, in start order (each after those it depends on)
		args   []string
	}{
		{"all", "bucket limits meta auth router vended-logs alertmanager compactor sts controlplane ingester distributor store-gateway querier ruler scraper reconciler usage server", nil},
		{"read", "bucket meta auth limits router sts vended-logs controlplane store-gateway querier reconciler server", nil},
		{"compactor", "bucket meta auth limits compactor router sts vended-logs controlplane reconciler server", nil},
		{"write,ingester", "bucket meta auth limits router sts vended-logs controlplane ingester distributor scraper reconciler usage server", nil},
		{"alertmanager, compactor", "bucket limits meta auth router vended-logs alertmanager compactor sts controlplane reconciler server", nil},
		// The ruler without an ingester: its querier reads those of other processes.
		{"backend,write,read", "bucket limits ingest-log meta auth router vended-logs workspace-owners alertmanager compactor sts controlplane distributor store-gateway querier ruler scraper reconciler server",
			[]string{"--ingest.backend", "jetstream"}},
		// backend alone: the ruler brings the distributor, querier and store-gateway it
		// works through.
		{"backend", "bucket limits ingest-log meta auth router vended-logs workspace-owners alertmanager compactor sts controlplane distributor store-gateway querier ruler scraper reconciler server",
			[]string{"--ingest.backend", "jetstream"}},
		{"ruler", "bucket limits ingest-log meta auth router vended-logs workspace-owners alertmanager sts controlplane distributor store-gateway querier ruler scraper reconciler server",
			[]string{"--ingest.backend", "jetstream"}},
		{"ingester", "bucket ingest-log meta auth limits router sts vended-logs controlplane ingester ingest-consumer ingester-api reconciler usage server",
			[]string{"--ingest.backend", "jetstream"}},
	} {
		t.Run(c.target, func(t *testing.T) {
			t.Setenv("STRATA_ROOT_ACCESS_KEY_ID", testKeyID)
			t.Setenv("STRATA_ROOT_SECRET_ACCESS_KEY", testSecret)
			cfg := load(t, append([]string{"--listen", "127.0.0.1:0", "--internal.listen", "127.0.0.1:0", "--log.level", "error", "--data-dir", t.TempDir(), "--target", c.target}, c.args...)...)
			a, err := New(context.Background(), cfg, NewLogger(cfg.Log, os.Stderr))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(a.modules.Initialised(), " ")
			if err := a.Run(canceled()); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("modules\n got %s\nwant %s", got, c.want)
			}
		})
	}
	for target, want := range map[string]string{
		"write":     "the distributor hands its batches to an ingester in the same process",
		"ingester":  "an ingester receives its samples from a distributor in the same process",
		"backend":   "the ruler evaluates through a querier",
		"read,nope": `unknown target "nope"`,
	} {
		cfg := load(t, "--target", target)
		if _, err := New(context.Background(), cfg, discardLogger()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--target=%s: %v, want an error saying %q", target, err, want)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// Processes with different targets share a bucket: what one writes and ships, a read
// process answers from the bucket; each serves only its own data-plane routes.
func TestReadTargetServesTheBucket(t *testing.T) {
	bkt := t.TempDir()
	common := []string{"--bucket.filesystem.dir", bkt, "--meta.poll-interval", "50ms", "--tsdb.block-range", "1m",
		"--store-gateway.sync-interval", "50ms"}
	w := start(t, append([]string{"--data-dir", t.TempDir(), "--target", "write,ingester"}, common...)...)
	r := start(t, append([]string{"--data-dir", t.TempDir(), "--target", "read"}, common...)...)
	ws := newWorkspace(t, w)

	now := time.Now().Truncate(time.Minute)
	var series []prompb.TimeSeries
	for k := range 10 {
		series = append(series, prompb.TimeSeries{Labels: ts("shipped"), Samples: []prompb.Sample{{Value: float64(k), Timestamp: now.Add(time.Duration(k-20) * time.Minute).UnixMilli()}}})
	}
	for _, s := range series {
		if code, msg, _ := post(t, rwURL(w, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}})); code != 204 {
			t.Fatalf("write: %d %s", code, msg)
		}
	}
	ctx := context.Background()
	for range 12 { // each compaction cuts what the head is due for
		if err := w.app.Ingester().Compact(ctx, ws); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.app.Ingester().ShipOnce(ctx); err != nil {
		t.Fatal(err)
	}
	inBucket, err := blocks.List(ctx, bucketAt(t, bkt), ws)
	if err != nil || len(inBucket) == 0 {
		t.Fatalf("%d blocks in the bucket (%v)", len(inBucket), err)
	}
	var bucketMax int64
	for _, b := range inBucket {
		bucketMax = max(bucketMax, b.Meta.MaxTime)
	}
	want := 0
	for _, s := range series {
		if s.Samples[0].Timestamp < bucketMax {
			want++
		}
	}
	// The read process learns of the workspace by polling the bucket, and of its blocks
	// by syncing: it answers with every sample the bucket holds.
	creds := &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	q := fmt.Sprintf("%s/workspaces/%s/api/v1/query?query=count_over_time(shipped[30m])&time=%d", r.url, ws, now.Unix())
	wantValue := fmt.Sprintf(`"%d"]`, want)
	var body string
	testutil.Eventually(t, 10*time.Second, "the read process to answer from the bucket", func() bool {
		var code int
		code, body = signedGet(t, creds, q)
		return code == 200 && strings.Contains(body, wantValue)
	})
	// Neither serves the other's data plane.
	if code, _, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: series[:1]})); code != 404 {
		t.Errorf("remote write on the read process: %d, want 404", code)
	}
	if code, _ := signedGet(t, creds, w.url+"/workspaces/"+ws+"/api/v1/query?query=1"); code != 404 {
		t.Errorf("query on the write process: %d, want 404", code)
	}
	code, metrics := signedGet(t, creds, r.url+"/metrics")
	if code != 200 || strings.Contains(metrics, "strata_ingester_") || !strings.Contains(metrics, "strata_storegateway_") {
		t.Errorf("/metrics of the read process: %d, ingester metrics %v, store-gateway metrics %v", code,
			strings.Contains(metrics, "strata_ingester_"), strings.Contains(metrics, "strata_storegateway_"))
	}
}

func bucketAt(t *testing.T, dir string) objstore.Bucket {
	t.Helper()
	b, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With the ingest log, the store-gateways' window must stay inside what the log keeps
// for a new partition owner's replay.
func TestQueryStoreAfterWithinTheLog(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--querier.query-ingesters-within", "13h", "--querier.query-store-after", "5h"}, true},
		{[]string{"--querier.query-ingesters-within", "13h", "--querier.query-store-after", "6h"}, false},
		{[]string{"--querier.query-ingesters-within", "13h", "--querier.query-store-after", "8h", "--jetstream.max-age", "9h"}, true},
	} {
		err := load(t, append([]string{"--target", "read", "--ingest.backend", "jetstream"}, c.args...)...).Validate()
		if c.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "beyond what the ingest log keeps")) {
			t.Errorf("%v: %v", c.args, err)
		}
	}
	// The direct backend has no log to replay: no bound.
	if err := load(t, "--querier.query-ingesters-within", "13h", "--querier.query-store-after", "8h").Validate(); err != nil {
		t.Error(err)
	}
}
