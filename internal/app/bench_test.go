package app

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
)

// BenchmarkSevenDayRangeQueryFromBucket times a 7-day range query served entirely from
// the bucket (a server on an empty data directory): "cold" downloads every block into the
// store-gateway's cache first, "warm" reads them from it. 1,000 series, 15 s interval, one
// block per day as the compactor leaves them.
//
//	go test -run '^$' -bench SevenDay -benchtime 3x ./internal/app
func BenchmarkSevenDayRangeQueryFromBucket(b *testing.B) {
	const series, days = 1000, 7
	bktDir := b.TempDir()
	r := start(b, "--data-dir", b.TempDir(), "--bucket.filesystem.dir", bktDir)
	ws := newWorkspace(b, r)
	r.stop()

	bkt, err := bucket.NewFilesystem(bktDir)
	if err != nil {
		b.Fatal(err)
	}
	end := time.Now().Truncate(24 * time.Hour)
	start0 := end.Add(-days * 24 * time.Hour)
	src := b.TempDir()
	var samples int64
	for d := range days {
		from := start0.Add(time.Duration(d) * 24 * time.Hour).UnixMilli()
		dir := testutil.WriteBlockWith(b, src, 24*time.Hour, func(app storage.Appender) error {
			for s := range series {
				lset := labels.FromStrings("__name__", "bench_metric", "job", fmt.Sprint("job-", s%10), "instance", fmt.Sprint("host-", s))
				var ref storage.SeriesRef
				var err error
				v := float64(s)
				for ts := from; ts < from+24*3600*1000; ts += 15000 {
					v += float64(ts%7) - 3
					if ref, err = app.Append(ref, lset, ts, v); err != nil {
						return err
					}
					samples++
				}
			}
			return nil
		})
		if _, err := blocks.Upload(context.Background(), bkt, ws, dir); err != nil {
			b.Fatal(err)
		}
	}
	var bytes int64
	_ = filepath.Walk(filepath.Join(bktDir, ws), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			bytes += fi.Size()
		}
		return nil
	})
	params := url.Values{
		"query": {"sum by (job) (rate(bench_metric[5m]))"},
		"start": {fmt.Sprint(start0.Unix())}, "end": {fmt.Sprint(end.Unix() - 1)}, "step": {"3600"},
	}
	check := func(r *running) {
		code, out := queryAPI(b, r, ws, "query_range", params)
		if code != 200 || len(out["data"].(map[string]any)["result"].([]any)) != 10 {
			b.Fatalf("query: %d %v", code, out)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			r := start(b, "--data-dir", b.TempDir(), "--bucket.filesystem.dir", bktDir)
			b.StartTimer()
			check(r)
			b.StopTimer()
			r.stop()
			b.StartTimer()
		}
		b.ReportMetric(float64(samples), "samples")
		b.ReportMetric(float64(bytes)/float64(samples), "bucket-bytes/sample")
	})
	b.Run("warm", func(b *testing.B) {
		r := start(b, "--data-dir", b.TempDir(), "--bucket.filesystem.dir", bktDir)
		check(r)
		for b.Loop() {
			check(r)
		}
	})
}
