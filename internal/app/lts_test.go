package app

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/testutil/s3server"
)

// rangeSamples returns the raw samples of series m{i="<i>"} over the last window at t,
// read through the query API, as "ts:value" strings.
func rangeSamples(t *testing.T, r *running, ws string, at time.Time, window time.Duration, i int) []string {
	t.Helper()
	code, out := queryAPI(t, r, ws, "query", url.Values{
		"query": {fmt.Sprintf(`lts{i="%d"}[%ds]`, i, int(window.Seconds()))},
		"time":  {fmt.Sprint(at.Unix())},
	})
	if code != 200 {
		t.Fatalf("query: %d %v", code, out)
	}
	res := out["data"].(map[string]any)["result"].([]any)
	if len(res) != 1 {
		t.Fatalf("series %d: %d results", i, len(res))
	}
	var got []string
	for _, v := range res[0].(map[string]any)["values"].([]any) {
		p := v.([]any)
		got = append(got, fmt.Sprintf("%v:%v", p[0], p[1]))
	}
	return got
}

// Blocks reach the bucket; queries across the ingester/bucket boundary return every
// sample once; a new process on an empty data directory serves all history from the bucket.
func TestLongTermStorage(t *testing.T) {
	bktDir := t.TempDir()
	bkt, err := bucket.NewFilesystem(bktDir)
	if err != nil {
		t.Fatal(err)
	}
	testLongTermStorage(t, bkt, "--bucket.filesystem.dir", bktDir)
}

// The same on S3 (versitygw).
func TestLongTermStorageS3(t *testing.T) {
	cfg := s3server.Start(t)
	bkt, err := bucket.New(bucket.Config{Backend: bucket.BackendS3, S3: cfg}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	testLongTermStorage(t, bkt, "--bucket.backend", "s3", "--bucket.s3.endpoint", cfg.Endpoint, "--bucket.s3.bucket", cfg.Bucket,
		"--bucket.s3.region", cfg.Region, "--bucket.s3.access-key-id", cfg.AccessKeyID, "--bucket.s3.secret-access-key", cfg.SecretAccessKey,
		"--bucket.s3.insecure")
}

func testLongTermStorage(t *testing.T, bkt objstore.Bucket, bucketArgs ...string) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "runtime.yaml")
	writeOverrides(t, rc, "overrides: {}\n")
	args := []string{"--tsdb.block-range", "1m", "--tsdb.local-retention", "1m",
		"--tsdb.ship-interval", "100ms", "--store-gateway.sync-interval", "100ms",
		"--limits.runtime-config-file", rc, "--limits.runtime-config-reload-period", "50ms"}
	args = append(args, bucketArgs...)
	r := start(t, append([]string{"--data-dir", dir}, args...)...)
	ws := newWorkspace(t, r)
	setOverrides(t, r, rc, ws, fmt.Sprintf("overrides:\n  %s:\n    max_sample_age: 2h\n", ws))

	// 3 series, a sample every 15s for the last 30 minutes.
	end := time.Now().Truncate(15 * time.Second)
	start0 := end.Add(-30 * time.Minute)
	want := map[int][]string{}
	for ts := start0; !ts.After(end); ts = ts.Add(15 * time.Second) {
		var series []prompb.TimeSeries
		for i := range 3 {
			v := float64(ts.Unix()%1000) + float64(i)
			series = append(series, prompb.TimeSeries{Labels: ts2("lts", "i", fmt.Sprint(i)), Samples: []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}})
			want[i] = append(want[i], fmt.Sprintf("%v:%v", float64(ts.UnixMilli())/1000, fmt.Sprint(v)))
		}
		if code, msg, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: series})); code != 204 {
			t.Fatalf("write: %d %s", code, msg)
		}
	}
	ctx := context.Background()
	for range 40 { // each compaction cuts what the head is due for
		if err := r.app.Ingester().Compact(ctx, ws); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.app.Ingester().ShipOnce(ctx); err != nil {
		t.Fatal(err)
	}
	inBucket, err := blocks.List(ctx, bkt, ws)
	if err != nil || len(inBucket) < 20 {
		t.Fatalf("%d blocks in the bucket (%v), want one per minute", len(inBucket), err)
	}
	if err := r.app.sg.SyncWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	at := end.Add(time.Second)
	for i := range 3 {
		if got := rangeSamples(t, r, ws, at, 40*time.Minute, i); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Fatalf("series %d across the boundary:\n got  %d samples %v\n want %d samples %v", i, len(got), got, len(want[i]), want[i])
		}
	}
	// Once shipped, blocks past the local retention leave the ingester: the older part
	// of the range is read from the bucket, the newer from the ingester, one after the
	// other (time-disjoint parts), and still every sample once.
	if err := r.app.Ingester().Compact(ctx, ws); err != nil {
		t.Fatal(err)
	}
	local := r.app.Ingester().LocalBlocks(ws)
	held := 0
	for _, b := range inBucket {
		if local(b.Meta.ULID) {
			held++
		}
	}
	if held == 0 || held == len(inBucket) {
		t.Fatalf("the ingester holds %d of the %d blocks in the bucket: want some, not all", held, len(inBucket))
	}
	for i := range 3 {
		if got := rangeSamples(t, r, ws, at, 40*time.Minute, i); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Fatalf("series %d from bucket and ingester:\n got  %d samples %v\n want %d samples %v", i, len(got), got, len(want[i]), want[i])
		}
	}

	// A new process with an empty data directory and the same bucket serves everything
	// the bucket holds: exactly the samples before the newest block's end (the rest was
	// still in the old process's head).
	r.stop()
	inBucket, _ = blocks.List(ctx, bkt, ws)
	var bucketMax int64
	for _, b := range inBucket {
		bucketMax = max(bucketMax, b.Meta.MaxTime)
	}
	r2 := start(t, append([]string{"--data-dir", t.TempDir()}, args...)...)
	for i := range 3 {
		var wantBucket []string
		for k, s := range want[i] {
			if start0.Add(time.Duration(k)*15*time.Second).UnixMilli() < bucketMax {
				wantBucket = append(wantBucket, s)
			}
		}
		if got := rangeSamples(t, r2, ws, at, 40*time.Minute, i); strings.Join(got, " ") != strings.Join(wantBucket, " ") {
			t.Fatalf("series %d from the bucket alone:\n got  %d samples\n want %d samples", i, len(got), len(wantBucket))
		}
	}
}

func ts2(name string, lbls ...string) []prompb.Label { return ts(name, lbls...) }

// Retention deletes exactly the blocks past a workspace's retention, and deleting the
// workspace leaves no object of it in the bucket.
func TestRetentionAndWorkspaceDeletion(t *testing.T) {
	dir, bktDir := t.TempDir(), t.TempDir()
	rc := filepath.Join(dir, "runtime.yaml")
	writeOverrides(t, rc, "overrides: {}\n")
	r := start(t, "--data-dir", dir, "--bucket.filesystem.dir", bktDir, "--tsdb.block-range", "1m", "--tsdb.local-retention", "1m",
		"--tsdb.ship-interval", "1h", "--compactor.deletion-delay", "0s", "--compactor.interval", "1h",
		"--limits.runtime-config-file", rc, "--limits.runtime-config-reload-period", "50ms")
	ws := newWorkspace(t, r)
	setOverrides(t, r, rc, ws, fmt.Sprintf("overrides:\n  %s:\n    max_sample_age: 72h\n", ws))
	ctx := context.Background()
	now := time.Now()
	write := func(name string, from time.Time, n int) {
		for k := range n {
			ts := from.Add(time.Duration(k) * 15 * time.Second)
			if code, msg, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: ts2(name), Samples: []prompb.Sample{{Value: float64(k), Timestamp: ts.UnixMilli()}}}}})); code != 204 {
				t.Fatalf("write %s: %d %s", name, code, msg)
			}
		}
	}
	write("old", now.Add(-50*time.Hour), 12)
	write("fresh", now.Add(-10*time.Minute), 30)
	cutAndShip := func() {
		t.Helper()
		for range 20 {
			if err := r.app.Ingester().Compact(ctx, ws); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.app.Ingester().ShipOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.app.Ingester().Compact(ctx, ws); err != nil { // lets the TSDB drop shipped local blocks
			t.Fatal(err)
		}
	}
	cutAndShip()
	bkt, _ := bucket.NewFilesystem(bktDir)
	before, _ := blocks.List(ctx, bkt, ws)
	cutoff := now.Add(-24 * time.Hour).UnixMilli()
	var old, fresh int
	for _, b := range before {
		if b.Meta.MaxTime < cutoff {
			old++
		} else {
			fresh++
		}
	}
	if old == 0 || fresh == 0 {
		t.Fatalf("want old and fresh blocks in the bucket, got %d and %d", old, fresh)
	}

	if _, err := r.client().UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws), RetentionPeriodInDays: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	waitConfigurationActive(t, r, ws)
	for range 2 { // mark, then delete (no delay)
		if err := r.app.compactor.CompactOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := blocks.List(ctx, bkt, ws)
	var samplesFresh int
	for _, b := range after {
		if b.Meta.MaxTime < cutoff {
			t.Fatalf("block %s [%d, %d) past retention is still in the bucket", b.Meta.ULID, b.Meta.MinTime, b.Meta.MaxTime)
		}
		if b.DeletionMark == nil {
			samplesFresh += int(b.Meta.Stats.NumSamples)
		}
	}
	if samplesFresh == 0 {
		t.Fatal("retention deleted the fresh blocks too")
	}
	if err := r.app.sg.SyncWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	code, out := queryAPI(t, r, ws, "query", url.Values{"query": {"count_over_time(old[3d])"}})
	if code != 200 || len(out["data"].(map[string]any)["result"].([]any)) != 0 {
		t.Fatalf("samples past retention are still queryable: %d %v", code, out)
	}

	if _, err := r.client().DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(ws)}); err != nil {
		t.Fatal(err)
	}
	w := amp.NewWorkspaceDeletedWaiter(r.client(), func(o *amp.WorkspaceDeletedWaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 50 * time.Millisecond
	})
	if err := w.Wait(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var left []string
	_ = bkt.Iter(ctx, ws+"/", func(n string) error { left = append(left, n); return nil }, objstore.WithRecursiveIter())
	if len(left) != 0 {
		t.Fatalf("objects of the deleted workspace remain: %v", left)
	}
}

// A 30-day query on a server that starts on an empty data directory: all history comes
// from the bucket (30 daily blocks, as the compactor leaves them).
func TestThirtyDayQueryFromBucket(t *testing.T) {
	bktDir := t.TempDir()
	r := start(t, "--data-dir", t.TempDir(), "--bucket.filesystem.dir", bktDir)
	ws := newWorkspace(t, r)
	r.stop()
	bkt, err := bucket.NewFilesystem(bktDir)
	if err != nil {
		t.Fatal(err)
	}
	const series, days, step = 5, 30, 60_000
	end := time.Now().Truncate(24 * time.Hour)
	start0 := end.Add(-days * 24 * time.Hour)
	src := t.TempDir()
	for d := range days {
		from := start0.Add(time.Duration(d) * 24 * time.Hour).UnixMilli()
		dir := testutil.WriteBlockWith(t, src, 24*time.Hour, func(app storage.Appender) error {
			for s := range series {
				lset := labels.FromStrings("__name__", "month", "i", fmt.Sprint(s))
				var ref storage.SeriesRef
				var err error
				for ts := from; ts < from+24*3600*1000; ts += step {
					if ref, err = app.Append(ref, lset, ts, 1); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if _, err := blocks.Upload(context.Background(), bkt, ws, dir); err != nil {
			t.Fatal(err)
		}
	}
	r2 := start(t, "--data-dir", t.TempDir(), "--bucket.filesystem.dir", bktDir)
	code, out := queryAPI(t, r2, ws, "query", url.Values{
		"query": {"sum(count_over_time(month[30d]))"},
		"time":  {fmt.Sprint(end.Unix() - 1)},
	})
	want := fmt.Sprint(series * days * 24 * 60)
	res, _ := out["data"].(map[string]any)["result"].([]any)
	if code != 200 || len(res) != 1 || res[0].(map[string]any)["value"].([]any)[1] != want {
		t.Fatalf("30-day count: %d %v, want %s", code, out, want)
	}
	code, out = queryAPI(t, r2, ws, "query_range", url.Values{
		"query": {"sum(month)"}, "start": {fmt.Sprint(start0.Unix())}, "end": {fmt.Sprint(end.Unix() - 60)}, "step": {"3600"},
	})
	res, _ = out["data"].(map[string]any)["result"].([]any)
	if code != 200 || len(res) != 1 || len(res[0].(map[string]any)["values"].([]any)) != days*24 {
		t.Fatalf("30-day range: %d %d points", code, len(res))
	}
}
