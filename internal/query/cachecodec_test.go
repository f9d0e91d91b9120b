package query

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
)

// testExtent has what an extent may hold: float points with NaN payloads (the stale
// marker), -0 and infinities; histograms with every field set, custom buckets, nil and
// empty slices, a nil histogram; a series without labels; DropName.
func testExtent() *extent {
	negZero := math.Copysign(0, -1)
	odd := math.Float64frombits(0x7ff8_dead_beef_0001) // a NaN of another payload
	h := &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType,
		Schema:           -2,
		ZeroThreshold:    0.001,
		ZeroCount:        3,
		Count:            math.Float64frombits(value.StaleNaN),
		Sum:              negZero,
		PositiveSpans:    []histogram.Span{{Offset: -3, Length: 2}, {Offset: 1 << 30, Length: math.MaxUint32}},
		NegativeSpans:    []histogram.Span{},
		PositiveBuckets:  []float64{1, odd},
		NegativeBuckets:  nil,
	}
	custom := &histogram.FloatHistogram{
		CounterResetHint: histogram.NotCounterReset,
		Schema:           histogram.CustomBucketsSchema,
		Count:            5,
		Sum:              math.Inf(-1),
		PositiveSpans:    []histogram.Span{{Offset: 0, Length: 3}},
		PositiveBuckets:  []float64{1, 2, 2},
		CustomValues:     []float64{0.1, 1, math.Inf(1)},
	}
	return &extent{
		key:  "ws-1:0123abcd",
		from: -120_000,
		to:   1_700_000_000_000,
		mat: promql.Matrix{
			{
				Metric:   labels.FromStrings("__name__", "up", "job", "api", "ünïcode", "a\x00b"),
				Floats:   []promql.FPoint{{T: -120_000, F: math.Float64frombits(value.StaleNaN)}, {T: -60_000, F: negZero}, {T: 0, F: odd}, {T: 1_700_000_000_000, F: math.Inf(1)}},
				DropName: true,
			},
			{
				Metric:     labels.EmptyLabels(),
				Histograms: []promql.HPoint{{T: 5, H: h}, {T: 6, H: custom}, {T: 7, H: nil}},
			},
			{
				Metric:     labels.FromStrings("le", ""),
				Floats:     []promql.FPoint{{T: 1, F: 1}},
				Histograms: []promql.HPoint{{T: 2, H: &histogram.FloatHistogram{}}},
			},
		},
	}
}

// bitsEqual compares extents exactly: floats by their bits, nil and empty apart.
func bitsEqual(t *testing.T, got, want *extent) {
	t.Helper()
	if got.key != want.key || got.from != want.from || got.to != want.to || len(got.mat) != len(want.mat) {
		t.Fatalf("got %s [%d, %d] %d series, want %s [%d, %d] %d", got.key, got.from, got.to, len(got.mat), want.key, want.from, want.to, len(want.mat))
	}
	for i := range want.mat {
		g, w := got.mat[i], want.mat[i]
		if !labels.Equal(g.Metric, w.Metric) || g.DropName != w.DropName || len(g.Floats) != len(w.Floats) || len(g.Histograms) != len(w.Histograms) {
			t.Fatalf("series %d: got %+v, want %+v", i, g, w)
		}
		for j, p := range w.Floats {
			if g.Floats[j].T != p.T || math.Float64bits(g.Floats[j].F) != math.Float64bits(p.F) {
				t.Errorf("series %d float %d: got %v %x, want %v %x", i, j, g.Floats[j].T, math.Float64bits(g.Floats[j].F), p.T, math.Float64bits(p.F))
			}
		}
		for j, p := range w.Histograms {
			if g.Histograms[j].T != p.T || !reflect.DeepEqual(histogramBits(g.Histograms[j].H), histogramBits(p.H)) {
				t.Errorf("series %d histogram %d: got %v %+v, want %v %+v", i, j, g.Histograms[j].T, g.Histograms[j].H, p.T, p.H)
			}
		}
	}
}

// histogramBits is h with its floats as bits, for reflect.DeepEqual (which tells nil
// from empty slices, and would find NaN unequal to itself).
func histogramBits(h *histogram.FloatHistogram) any {
	if h == nil {
		return nil
	}
	bits := func(fs []float64) []uint64 {
		if fs == nil {
			return nil
		}
		out := make([]uint64, len(fs))
		for i, f := range fs {
			out[i] = math.Float64bits(f)
		}
		return out
	}
	return []any{h.CounterResetHint, h.Schema, bits([]float64{h.ZeroThreshold, h.ZeroCount, h.Count, h.Sum}),
		h.PositiveSpans, h.NegativeSpans, bits(h.PositiveBuckets), bits(h.NegativeBuckets), bits(h.CustomValues)}
}

func TestExtentEncodingRoundTrip(t *testing.T) {
	want := testExtent()
	b := appendExtent([]byte("prefix"), want)
	if string(b[:6]) != "prefix" {
		t.Fatal("appendExtent overwrote dst")
	}
	b = b[6:]
	got, err := decodeExtent(b, want.key)
	if err != nil {
		t.Fatal(err)
	}
	bitsEqual(t, got, want)
	// The decoded extent shares no memory with the item.
	clear(b)
	bitsEqual(t, got, want)

	empty := &extent{key: "k", from: 1, to: 1}
	got, err = decodeExtent(appendExtent(nil, empty), "k")
	if err != nil {
		t.Fatal(err)
	}
	bitsEqual(t, got, empty)
}

// An item of another key is a miss, never another query's answer; so is any item not
// whole: truncated, a byte changed, bytes added.
func TestExtentDecodingRefuses(t *testing.T) {
	e := testExtent()
	b := appendExtent(nil, e)
	if _, err := decodeExtent(b, "ws-1:0123abce"); !errors.Is(err, errOtherKey) {
		t.Errorf("another key: %v, want errOtherKey", err)
	}
	for n := range len(b) {
		if _, err := decodeExtent(b[:n], e.key); !errors.Is(err, errCorruptExtent) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x10
		if _, err := decodeExtent(c, e.key); err == nil {
			t.Fatalf("byte %d changed: decoded", i)
		}
	}
	if _, err := decodeExtent(append(append([]byte(nil), b...), 0), e.key); !errors.Is(err, errCorruptExtent) {
		t.Errorf("a byte appended: %v", err)
	}
}

// The decoder neither panics nor allocates beyond its input on any item, and what it
// accepts encodes back to the same bytes.
func FuzzDecodeExtent(f *testing.F) {
	e := testExtent()
	f.Add(appendExtent(nil, e), e.key)
	f.Add(appendExtent(nil, &extent{key: "k"}), "k")
	f.Add([]byte(extentMagic), "")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		// Items without a valid checksum stop at it: fix it, so that the fuzzer
		// reaches the decoder proper.
		if len(b) >= len(extentMagic)+4 {
			b = append([]byte(nil), b...)
			binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		}
		got, err := decodeExtent(b, key)
		if err != nil {
			return
		}
		if again := appendExtent(nil, got); string(again) != string(b) {
			// Varints have one shortest form; others decode too. Decoding again must
			// give the same extent.
			back, err := decodeExtent(again, key)
			if err != nil {
				t.Fatalf("re-encoded extent does not decode: %v", err)
			}
			bitsEqual(t, back, got)
		}
	})
}

func BenchmarkExtentEncoding(b *testing.B) {
	e := &extent{key: "ws-1:" + string(make([]byte, 64)), from: 0, to: 86_340_000}
	for i := range 50 {
		s := promql.Series{Metric: labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", string(rune('a'+i%26)))}
		for t := int64(0); t <= 86_340_000; t += 60_000 {
			s.Floats = append(s.Floats, promql.FPoint{T: t, F: float64(t) / 7})
		}
		e.mat = append(e.mat, s)
	}
	buf := appendExtent(nil, e)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		dst := buf[:0:len(buf)]
		for b.Loop() {
			dst = appendExtent(dst[:0], e)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if _, err := decodeExtent(buf, e.key); err != nil {
				b.Fatal(err)
			}
		}
	})
}
