package storegateway

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// BenchmarkQuerierWarm measures queries over blocks already in the cache: 12 blocks of 30
// minutes (a 6 h range), 200 series with a sample every 15 s. "open" is the store-gateway's
// own cost (sync state, references, block queriers, merge); "select" reads every sample.
func BenchmarkQuerierWarm(b *testing.B) {
	const (
		nBlocks = 12
		span    = 30 * 60 * 1000
		step    = 15 * 1000
		nSeries = 200
	)
	bkt := newFSBucket(b)
	f := newFixture(b)
	for i := range nBlocks {
		mint := int64(i) * span
		upload(b, bkt, "ws", f.add(b, "b", floats("up", 0, nSeries, mint, mint+span, step)))
	}
	sg := newSG(b, testConfig(b.TempDir()), bkt)
	ctx := context.Background()
	maxt := int64(nBlocks*span - 1)
	q, err := sg.Querier(ctx, "ws", 0, maxt) // warm up: download and open every block
	if err != nil {
		b.Fatal(err)
	}
	q.Close()

	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			q, err := sg.Querier(ctx, "ws", 0, maxt)
			if err != nil {
				b.Fatal(err)
			}
			q.Close()
		}
	})
	b.Run("select", func(b *testing.B) {
		b.ReportAllocs()
		var it chunkenc.Iterator
		var samples int
		for b.Loop() {
			q, err := sg.Querier(ctx, "ws", 0, maxt)
			if err != nil {
				b.Fatal(err)
			}
			ss := q.Select(ctx, false, nil, allSeries)
			for ss.Next() {
				it = ss.At().Iterator(it)
				for it.Next() != chunkenc.ValNone {
					samples++
				}
			}
			if err := ss.Err(); err != nil {
				b.Fatal(err)
			}
			q.Close()
		}
		b.ReportMetric(float64(samples)/float64(b.N), "samples/op")
	})
}
