package loadgen

import (
	"math"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// testBatch builds a worker owning every series of `instances` instances
// (one worker) and a batch of one step of them, plus a staleness marker.
func testBatch(tb testing.TB, protocol string, instances, steps int) (*worker, []sample) {
	tb.Helper()
	w := testWorker(protocol, instances)
	var all []*series
	for i := range instances {
		all = w.newSeries(all, uint32(i), 103, 100)
	}
	var batch []sample
	for k := int64(100); k < int64(100+steps); k++ {
		for _, s := range all {
			batch = append(batch, sample{s: s, step: k, v: s.params.next(&s.state, k, 15_000)})
		}
	}
	batch = append(batch, sample{s: all[0], step: int64(100 + steps), v: staleNaN, stale: true})
	return w, batch
}

// testWorker is a lone worker (it owns every series) of a 15s-interval
// workload, not started.
func testWorker(protocol string, instances int) *worker {
	wl := newWorkload(workloadOptions{seed: 9, activeSeries: instances * 103, interval: 15_000, firstStep: 100})
	r := &runner{cfg: Config{Protocol: protocol, Concurrency: 1, BatchSize: 2000}, wl: wl, intervalMs: 15_000}
	return newWorker(r, 0)
}

func checkDecoded(t *testing.T, w *worker, batch []sample, got []labels.Labels, ts [][]receivedSample) {
	t.Helper()
	if len(got) != len(batch) {
		t.Fatalf("%d series decoded, want %d", len(got), len(batch))
	}
	var b labels.ScratchBuilder
	for i, p := range batch {
		want := w.r.wl.seriesLabels(&b, p.s.id, int(p.s.tmpl))
		if !labels.Equal(got[i], want) {
			t.Fatalf("series %d: labels %s, want %s", i, got[i], want)
		}
		if len(ts[i]) != 1 || ts[i][0].t != p.step*15_000 || math.Float64bits(ts[i][0].v) != math.Float64bits(p.v) {
			t.Fatalf("series %d: samples %v, want %d=%v", i, ts[i], p.step*15_000, p.v)
		}
	}
	if !value.IsStaleNaN(ts[len(ts)-1][0].v) {
		t.Fatalf("staleness marker lost")
	}
}

func TestEncodeV1RoundTrip(t *testing.T) {
	w, batch := testBatch(t, ProtocolV1, 3, 2)
	raw := encodeV1(nil, batch, 15_000)
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	var ls []labels.Labels
	var ss [][]receivedSample
	for _, x := range req.Timeseries {
		ls = append(ls, labelsFromProto(x.Labels))
		var s []receivedSample
		for _, y := range x.Samples {
			s = append(s, receivedSample{y.Timestamp, y.Value})
		}
		ss = append(ss, s)
	}
	checkDecoded(t, w, batch, ls, ss)

	// Byte for byte what the generated marshaller writes.
	want, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(raw) {
		t.Errorf("encoding differs from gogo's: %d vs %d bytes", len(raw), len(want))
	}
}

func TestEncodeV2RoundTrip(t *testing.T) {
	w, batch := testBatch(t, ProtocolV2, 3, 2)
	// Encode twice with the same encoder: the request-local symbol table
	// must be reset between requests.
	for round := range 2 {
		raw := w.v2.encode(nil, batch, 15_000)
		var req writev2.Request
		if err := req.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		if req.Symbols[0] != "" {
			t.Fatalf("symbols[0] = %q", req.Symbols[0])
		}
		seen := map[string]bool{}
		for _, s := range req.Symbols {
			if seen[s] {
				t.Fatalf("round %d: symbol %q twice", round, s)
			}
			seen[s] = true
		}
		var b labels.ScratchBuilder
		var ls []labels.Labels
		var ss [][]receivedSample
		for i, x := range req.Timeseries {
			l, err := x.ToLabels(&b, req.Symbols)
			if err != nil {
				t.Fatal(err)
			}
			ls = append(ls, l)
			var s []receivedSample
			for _, y := range x.Samples {
				s = append(s, receivedSample{y.Timestamp, y.Value})
			}
			ss = append(ss, s)
			tmpl := w.r.wl.templates[batch[i].s.tmpl]
			md, err := x.ToMetadata(req.Symbols)
			if err != nil {
				t.Fatal(err)
			}
			if md.Help != tmpl.help || int(x.Metadata.Type) != int(tmpl.typ) {
				t.Fatalf("metadata %+v, want %q type %d", md, tmpl.help, tmpl.typ)
			}
		}
		checkDecoded(t, w, batch, ls, ss)
	}
}

func TestCompressReusesBuffer(t *testing.T) {
	_, batch := testBatch(t, ProtocolV1, 1, 1)
	raw := encodeV1(nil, batch, 15_000)
	buf := compress(nil, raw)
	again := compress(buf, raw)
	if &again[0] != &buf[0] {
		t.Error("compress allocated although the buffer was big enough")
	}
	if dec, err := snappy.Decode(nil, again); err != nil || string(dec) != string(raw) {
		t.Fatalf("snappy round trip: %v", err)
	}
}

// BenchmarkEncode measures what a worker spends per request besides the
// network: encoding a 2000-sample batch and compressing it. The samples/s
// metric is per core.
func BenchmarkEncode(b *testing.B) {
	for _, proto := range []string{ProtocolV1, ProtocolV2} {
		b.Run("protocol="+proto, func(b *testing.B) {
			w, batch := testBatch(b, proto, 20, 1) // 2060 series, one sample each
			batch = batch[:2000]
			var raw, snap []byte
			encode := func() {
				if proto == ProtocolV1 {
					raw = encodeV1(raw[:0], batch, 15_000)
				} else {
					raw = w.v2.encode(raw[:0], batch, 15_000)
				}
				snap = compress(snap, raw)
			}
			encode()
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				encode()
			}
			b.ReportMetric(float64(len(batch))*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(len(snap)), "compressed-bytes/op")
		})
	}
}

// BenchmarkGenerateStep adds generation: values for every owned series of
// one step, appended to batches and encoded, as worker.step does.
func BenchmarkGenerateStep(b *testing.B) {
	for _, proto := range []string{ProtocolV1, ProtocolV2} {
		b.Run("protocol="+proto, func(b *testing.B) {
			w := testWorker(proto, 20)
			var raw, snap []byte
			var n int
			k := int64(100)
			b.ReportAllocs()
			for b.Loop() {
				for i := range w.slots {
					sl := &w.slots[i]
					if !sl.init {
						sl.init, sl.series = true, w.newSeries(nil, uint32(i), 103, k)
					}
					for _, s := range sl.series {
						w.batch = append(w.batch, sample{s: s, step: k, v: s.params.next(&s.state, k, 15_000)})
						if len(w.batch) == 2000 {
							if proto == ProtocolV1 {
								raw = encodeV1(raw[:0], w.batch, 15_000)
							} else {
								raw = w.v2.encode(raw[:0], w.batch, 15_000)
							}
							snap = compress(snap, raw)
							n += len(w.batch)
							w.batch = w.batch[:0]
						}
					}
				}
				k++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
