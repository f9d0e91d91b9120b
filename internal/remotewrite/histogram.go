package remotewrite

import (
	"github.com/prometheus/prometheus/model/histogram"
)

// decodeHistogram decodes the Histogram message at b[i:] (b ends where the
// message ends) and appends it to r.histograms. Fields 1-16 are shared by
// both protocol versions; field 17 (start_timestamp) exists only in v2.
func (r *Request) decodeHistogram(b []byte, i int, v2 bool) error {
	var h Histogram
	sc := &r.hs
	sc.reset()
	for i < len(b) {
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1:
			var v uint64
			if v, j, err = readVarint(b, j, wt, "count_int"); err == nil {
				h.IsFloat, h.CountInt, h.CountFloat = false, v, 0
			}
		case 2:
			var v float64
			if v, j, err = readDouble(b, j, wt, "count_float"); err == nil {
				h.IsFloat, h.CountInt, h.CountFloat = true, 0, v
			}
		case 3:
			h.Sum, j, err = readDouble(b, j, wt, "sum")
		case 4:
			var v uint64
			if v, j, err = readVarint(b, j, wt, "schema"); err == nil {
				h.Schema = zigzag32(v)
			}
		case 5:
			h.ZeroThreshold, j, err = readDouble(b, j, wt, "zero_threshold")
		case 6:
			var v uint64
			if v, j, err = readVarint(b, j, wt, "zero_count_int"); err == nil {
				h.ZeroCountInt, h.ZeroCountFloat = v, 0
			}
		case 7:
			var v float64
			if v, j, err = readDouble(b, j, wt, "zero_count_float"); err == nil {
				h.ZeroCountInt, h.ZeroCountFloat = 0, v
			}
		case 8:
			sc.negSpans, j, err = appendSpan(sc.negSpans, b, j, wt, "negative_spans")
		case 9:
			j, err = packedVarints(b, j, wt, "negative_deltas", func(v uint64, _ int) error {
				sc.negDeltas = append(sc.negDeltas, zigzag64(v))
				return nil
			})
		case 10:
			sc.negCounts, j, err = appendDoubles(sc.negCounts, b, j, wt, "negative_counts")
		case 11:
			sc.posSpans, j, err = appendSpan(sc.posSpans, b, j, wt, "positive_spans")
		case 12:
			j, err = packedVarints(b, j, wt, "positive_deltas", func(v uint64, _ int) error {
				sc.posDeltas = append(sc.posDeltas, zigzag64(v))
				return nil
			})
		case 13:
			sc.posCounts, j, err = appendDoubles(sc.posCounts, b, j, wt, "positive_counts")
		case 14:
			var v uint64
			if v, j, err = readVarint(b, j, wt, "reset_hint"); err == nil {
				h.ResetHint = ResetHint(v)
			}
		case 15:
			var v uint64
			if v, j, err = readVarint(b, j, wt, "timestamp"); err == nil {
				h.Timestamp = int64(v)
			}
		case 16:
			sc.custom, j, err = appendDoubles(sc.custom, b, j, wt, "custom_values")
		case 17:
			if !v2 {
				j, err = skipField(b, j, wt)
				break
			}
			var v uint64
			if v, j, err = readVarint(b, j, wt, "start_timestamp"); err == nil {
				h.StartTimestamp = int64(v)
			}
		default:
			j, err = skipField(b, j, wt)
		}
		if err != nil {
			return err
		}
		i = j
	}
	h.NegativeSpans, r.spans = moveTo(r.spans, sc.negSpans)
	h.PositiveSpans, r.spans = moveTo(r.spans, sc.posSpans)
	h.NegativeDeltas, r.ints = moveTo(r.ints, sc.negDeltas)
	h.PositiveDeltas, r.ints = moveTo(r.ints, sc.posDeltas)
	h.NegativeCounts, r.floats = moveTo(r.floats, sc.negCounts)
	h.PositiveCounts, r.floats = moveTo(r.floats, sc.posCounts)
	h.CustomValues, r.floats = moveTo(r.floats, sc.custom)
	r.histograms = append(r.histograms, h)
	return nil
}

// moveTo appends src to the arena and returns the capacity-limited window
// holding it (nil when src is empty) and the grown arena.
func moveTo[T any](arena, src []T) ([]T, []T) {
	if len(src) == 0 {
		return nil, arena
	}
	n := len(arena)
	arena = append(arena, src...)
	return arena[n:len(arena):len(arena)], arena
}

// appendSpan decodes one BucketSpan message.
func appendSpan(dst []histogram.Span, b []byte, i, wt int, field string) ([]histogram.Span, int, error) {
	s, e, err := readLen(b, i, wt, field)
	if err != nil {
		return dst, 0, err
	}
	var sp histogram.Span
	p := b[:e]
	for k := s; k < e; {
		num, wt, j, err := readTag(p, k)
		if err != nil {
			return dst, 0, inField(err, field, len(dst))
		}
		switch num {
		case 1:
			var v uint64
			if v, j, err = readVarint(p, j, wt, "offset"); err == nil {
				sp.Offset = zigzag32(v)
			}
		case 2:
			var v uint64
			if v, j, err = readVarint(p, j, wt, "length"); err == nil {
				sp.Length = uint32(v)
			}
		default:
			j, err = skipField(p, j, wt)
		}
		if err != nil {
			return dst, 0, inField(err, field, len(dst))
		}
		k = j
	}
	return append(dst, sp), e, nil
}

// ToIntHistogram converts an integer histogram to the TSDB's form, copying
// every slice so the result may outlive the request. It returns nil for a
// float histogram. It matches prompb.Histogram.ToIntHistogram.
func (h *Histogram) ToIntHistogram() *histogram.Histogram {
	if h.IsFloat {
		return nil
	}
	return &histogram.Histogram{
		CounterResetHint: histogram.CounterResetHint(h.ResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCountInt,
		Count:            h.CountInt,
		Sum:              h.Sum,
		PositiveSpans:    clone(h.PositiveSpans),
		PositiveBuckets:  clone(h.PositiveDeltas),
		NegativeSpans:    clone(h.NegativeSpans),
		NegativeBuckets:  clone(h.NegativeDeltas),
		CustomValues:     clone(h.CustomValues),
	}
}

// ToFloatHistogram converts the histogram to a float histogram, copying
// every slice; an integer histogram's deltas become absolute counts. It
// matches prompb.Histogram.ToFloatHistogram.
func (h *Histogram) ToFloatHistogram() *histogram.FloatHistogram {
	fh := &histogram.FloatHistogram{
		CounterResetHint: histogram.CounterResetHint(h.ResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		Sum:              h.Sum,
		PositiveSpans:    clone(h.PositiveSpans),
		NegativeSpans:    clone(h.NegativeSpans),
		CustomValues:     clone(h.CustomValues),
	}
	if h.IsFloat {
		fh.ZeroCount = h.ZeroCountFloat
		fh.Count = h.CountFloat
		fh.PositiveBuckets = clone(h.PositiveCounts)
		fh.NegativeBuckets = clone(h.NegativeCounts)
		return fh
	}
	fh.ZeroCount = float64(h.ZeroCountInt)
	fh.Count = float64(h.CountInt)
	fh.PositiveBuckets = deltasToCounts(h.PositiveDeltas)
	fh.NegativeBuckets = deltasToCounts(h.NegativeDeltas)
	return fh
}

func clone[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

func deltasToCounts(deltas []int64) []float64 {
	if len(deltas) == 0 {
		return nil
	}
	counts := make([]float64, len(deltas))
	var cur float64
	for i, d := range deltas {
		cur += float64(d)
		counts[i] = cur
	}
	return counts
}
