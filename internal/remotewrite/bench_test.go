package remotewrite

import (
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The benchmark request: 2,000 node-exporter-like series of ten labels
// and one sample each, the shape of a typical Prometheus remote write shard
// batch.
const benchSeries = 2000

// BenchmarkDecode compares our decoder with prompb's generated Unmarshal on
// the same bytes, both without snappy.
func BenchmarkDecode(b *testing.B) {
	v1 := mustMarshal(b, nodeExporterV1(benchSeries))
	v2 := mustMarshal(b, nodeExporterV2(benchSeries))

	b.Run("v1/ours", func(b *testing.B) {
		var r Request
		_ = r.Unmarshal(V1, v1) // Steady state: arenas grown.
		b.SetBytes(int64(len(v1)))
		b.ReportAllocs()
		for b.Loop() {
			if err := r.Unmarshal(V1, v1); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/sample")
	})
	b.Run("v1/prompb", func(b *testing.B) {
		b.SetBytes(int64(len(v1)))
		b.ReportAllocs()
		for b.Loop() {
			var req prompb.WriteRequest
			if err := req.Unmarshal(v1); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/sample")
	})
	b.Run("v2/ours", func(b *testing.B) {
		var r Request
		_ = r.Unmarshal(V2, v2)
		b.SetBytes(int64(len(v2)))
		b.ReportAllocs()
		for b.Loop() {
			if err := r.Unmarshal(V2, v2); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/sample")
	})
	b.Run("v2/prompb", func(b *testing.B) {
		b.SetBytes(int64(len(v2)))
		b.ReportAllocs()
		for b.Loop() {
			var req writev2.Request
			if err := req.Unmarshal(v2); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/sample")
	})
}

// BenchmarkDecodeBody measures a whole request body: snappy and decoding,
// through the pool, against what Prometheus' handler does (snappy.Decode
// into a fresh buffer, then Unmarshal).
func BenchmarkDecodeBody(b *testing.B) {
	for _, tc := range []struct {
		name, ct string
		v        Version
		raw      []byte
	}{
		{"v1", ContentTypeV1, V1, mustMarshal(b, nodeExporterV1(benchSeries))},
		{"v2", ContentTypeV2, V2, mustMarshal(b, nodeExporterV2(benchSeries))},
	} {
		body := snappy.Encode(nil, tc.raw)
		b.Run(tc.name+"/ours", func(b *testing.B) {
			d := NewDecoder(Options{})
			if r, err := d.DecodeBody(tc.ct, "snappy", body); err == nil {
				r.Release() // Steady state: pool primed.
			}
			b.SetBytes(int64(len(tc.raw)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := d.DecodeBody(tc.ct, "snappy", body)
				if err != nil {
					b.Fatal(err)
				}
				r.Release()
			}
		})
		b.Run(tc.name+"/prompb", func(b *testing.B) {
			b.SetBytes(int64(len(tc.raw)))
			b.ReportAllocs()
			for b.Loop() {
				raw, err := snappy.Decode(nil, body)
				if err != nil {
					b.Fatal(err)
				}
				if tc.v == V1 {
					var req prompb.WriteRequest
					err = req.Unmarshal(raw)
				} else {
					var req writev2.Request
					err = req.Unmarshal(raw)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSeriesKey measures the per-series cost a known series pays in
// the ingester: build the key and look it up.
func BenchmarkSeriesKey(b *testing.B) {
	for _, tc := range []struct {
		name string
		v    Version
		raw  []byte
	}{
		{"v1", V1, mustMarshal(b, nodeExporterV1(benchSeries))},
		{"v2", V2, mustMarshal(b, nodeExporterV2(benchSeries))},
	} {
		var r Request
		if err := r.Unmarshal(tc.v, tc.raw); err != nil {
			b.Fatal(err)
		}
		cache := map[string]int{}
		var key []byte
		for i := range r.Series {
			key = r.Series[i].AppendKey(key[:0])
			cache[string(key)] = i
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for i := range r.Series {
					key = r.Series[i].AppendKey(key[:0])
					if cache[string(key)] != i {
						b.Fatal("cache miss")
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(r.Series)), "ns/series")
		})
	}
}

// BenchmarkToLabels measures the slow path of a series not yet cached.
func BenchmarkToLabels(b *testing.B) {
	var r Request
	if err := r.Unmarshal(V1, mustMarshal(b, nodeExporterV1(benchSeries))); err != nil {
		b.Fatal(err)
	}
	sb := labels.NewScratchBuilder(16)
	b.ReportAllocs()
	for b.Loop() {
		for i := range r.Series {
			if _, err := r.Series[i].ToLabels(&sb); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(r.Series)), "ns/series")
}
