package query

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/stats"
)

// The encoders below append the JSON of Prometheus' HTTP API to a caller's buffer. They
// produce the bytes Prometheus' jsoniter codec produces — sample values as strings,
// timestamps as seconds with millisecond digits, strings escaped like encoding/json with
// HTML escaping — because clients and our comparison tests see the difference. They
// allocate nothing: a range query's matrix is the hot path of the API.

const hexDigits = "0123456789abcdef"

// safeASCII marks the ASCII bytes written as they are inside a JSON string: not a control
// character, not '"' or '\\', and not one of the HTML-sensitive '<', '>' and '&'.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped, as encoding/json and jsoniter do; \b and \f are written as \u0008
// and \u000c, as jsoniter does (encoding/json writes \b and \f).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendSampleValue appends a float as Prometheus writes sample values: a quoted string,
// in exponent form below 1e-6 and from 1e21 on, "NaN", "+Inf" and "-Inf" as they are.
func appendSampleValue(b []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = append(b, '"')
	b = strconv.AppendFloat(b, f, format, -1, 64)
	return append(b, '"')
}

// appendTimestamp appends milliseconds as seconds: "1435781451.781", "12.05", "7".
func appendTimestamp(b []byte, ms int64) []byte {
	if ms < 0 {
		b = append(b, '-')
		ms = -ms // math.MinInt64 stays negative; no sample has that timestamp.
	}
	b = strconv.AppendInt(b, ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		b = append(b, '.')
		if frac < 100 {
			b = append(b, '0')
		}
		if frac < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, frac, 10)
	}
	return b
}

// appendLabels appends a label set as an object in label order.
func appendLabels(b []byte, ls labels.Labels) []byte {
	b = append(b, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, l.Name)
		b = append(b, ':')
		b = appendString(b, l.Value)
	})
	return append(b, '}')
}

// appendHistogram appends a native histogram: count, sum and its non-empty buckets as
// [boundaries, lower, upper, count], where boundaries is 0 (lower open, upper closed),
// 1 (lower closed, upper open), 2 (both open) or 3 (both closed).
func appendHistogram(b []byte, h *histogram.FloatHistogram) []byte {
	b = append(b, `{"count":`...)
	b = appendSampleValue(b, h.Count)
	b = append(b, `,"sum":`...)
	b = appendSampleValue(b, h.Sum)
	n := 0
	it := h.AllBucketIterator()
	for it.Next() {
		bucket := it.At()
		if bucket.Count == 0 {
			continue
		}
		if n == 0 {
			b = append(b, `,"buckets":[`...)
		} else {
			b = append(b, ',')
		}
		n++
		bounds := byte('2')
		switch {
		case bucket.LowerInclusive && bucket.UpperInclusive:
			bounds = '3'
		case bucket.LowerInclusive:
			bounds = '1'
		case bucket.UpperInclusive:
			bounds = '0'
		}
		b = append(b, '[', bounds, ',')
		b = appendSampleValue(b, bucket.Lower)
		b = append(b, ',')
		b = appendSampleValue(b, bucket.Upper)
		b = append(b, ',')
		b = appendSampleValue(b, bucket.Count)
		b = append(b, ']')
	}
	if n > 0 {
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendVector appends [{"metric":{...},"value":[t,"v"]} or "histogram":[t,{...}], ...].
func appendVector(b []byte, v promql.Vector) []byte {
	b = append(b, '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"metric":`...)
		b = appendLabels(b, s.Metric)
		if s.H == nil {
			b = append(b, `,"value":[`...)
			b = appendTimestamp(b, s.T)
			b = append(b, ',')
			b = appendSampleValue(b, s.F)
		} else {
			b = append(b, `,"histogram":[`...)
			b = appendTimestamp(b, s.T)
			b = append(b, ',')
			b = appendHistogram(b, s.H)
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}

// appendMatrix appends [{"metric":{...},"values":[...],"histograms":[...]}, ...], leaving
// out an empty "values" or "histograms".
func appendMatrix(b []byte, m promql.Matrix) []byte {
	b = append(b, '[')
	for i, s := range m {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"metric":`...)
		b = appendLabels(b, s.Metric)
		if len(s.Floats) > 0 {
			b = append(b, `,"values":[`...)
			for j, p := range s.Floats {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, '[')
				b = appendTimestamp(b, p.T)
				b = append(b, ',')
				b = appendSampleValue(b, p.F)
				b = append(b, ']')
			}
			b = append(b, ']')
		}
		if len(s.Histograms) > 0 {
			b = append(b, `,"histograms":[`...)
			for j, p := range s.Histograms {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, '[')
				b = appendTimestamp(b, p.T)
				b = append(b, ',')
				b = appendHistogram(b, p.H)
				b = append(b, ']')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendStrings appends a JSON array of strings; nil is written as [].
func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendLabelSets appends the result of /series: an array of label objects.
func appendLabelSets(b []byte, sets []labels.Labels) []byte {
	b = append(b, '[')
	for i, ls := range sets {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabels(b, ls)
	}
	return append(b, ']')
}

// appendExemplars appends the result of /query_exemplars.
func appendExemplars(b []byte, res []exemplar.QueryResult) []byte {
	b = append(b, '[')
	for i, r := range res {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"seriesLabels":`...)
		b = appendLabels(b, r.SeriesLabels)
		b = append(b, `,"exemplars":[`...)
		for j, e := range r.Exemplars {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"labels":`...)
			b = appendLabels(b, e.Labels)
			b = append(b, `,"value":`...)
			b = appendSampleValue(b, e.Value)
			b = append(b, `,"timestamp":`...)
			b = appendTimestamp(b, e.Ts)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}

// appendNumber appends a float as jsoniter writes a float64 field: exponent form below
// 1e-6 and from 1e21 on, without encoding/json's trimming of the exponent ("4.3e-07", not
// "4.3e-7"). Prometheus' query timings come out this way.
func appendNumber(b []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// appendQueryStats appends the stats of a query, field for field as Prometheus writes
// stats.BuiltinStats. Per-step figures are [seconds, count] pairs, their seconds written as
// encoding/json writes float64(t)/1000.
func appendQueryStats(b []byte, qs stats.QueryStats) []byte {
	bs := qs.Builtin()
	t := bs.Timings
	b = append(b, `{"timings":{"evalTotalTime":`...)
	b = appendNumber(b, t.EvalTotalTime)
	b = append(b, `,"resultSortTime":`...)
	b = appendNumber(b, t.ResultSortTime)
	b = append(b, `,"queryPreparationTime":`...)
	b = appendNumber(b, t.QueryPreparationTime)
	b = append(b, `,"innerEvalTime":`...)
	b = appendNumber(b, t.InnerEvalTime)
	b = append(b, `,"execQueueTime":`...)
	b = appendNumber(b, t.ExecQueueTime)
	b = append(b, `,"execTotalTime":`...)
	b = appendNumber(b, t.ExecTotalTime)
	b = append(b, '}')
	s := bs.Samples
	if s == nil {
		return append(b, '}')
	}
	b = append(b, `,"samples":{`...)
	if len(s.TotalQueryableSamplesPerStep) > 0 {
		b = append(b, `"totalQueryableSamplesPerStep":[`...)
		for i, p := range s.TotalQueryableSamplesPerStep {
			b = appendStepStat(b, i, p.T, p.V)
		}
		b = append(b, "],"...)
	}
	b = append(b, `"totalQueryableSamples":`...)
	b = strconv.AppendInt(b, s.TotalQueryableSamples, 10)
	if len(s.SamplesReadPerStep) > 0 {
		b = append(b, `,"samplesReadPerStep":[`...)
		for i, p := range s.SamplesReadPerStep {
			b = appendStepStat(b, i, p.T, p.V)
		}
		b = append(b, ']')
	}
	b = append(b, `,"samplesRead":`...)
	b = strconv.AppendInt(b, s.SamplesRead, 10)
	b = append(b, `,"seriesTouched":`...)
	b = strconv.AppendInt(b, s.SeriesTouched, 10)
	b = append(b, `,"peakSamples":`...)
	b = strconv.AppendInt(b, int64(s.PeakSamples), 10)
	return append(b, "}}"...)
}

func appendStepStat(b []byte, i int, t, v int64) []byte {
	if i > 0 {
		b = append(b, ',')
	}
	b = append(b, '[')
	sec := float64(t) / 1000
	if a := math.Abs(sec); a != 0 && (a < 1e-6 || a >= 1e21) {
		// encoding/json's exponent form, as stepStat.MarshalJSON produces it.
		j, _ := json.Marshal(sec)
		b = append(b, j...)
	} else {
		b = strconv.AppendFloat(b, sec, 'f', -1, 64)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, v, 10)
	return append(b, ']')
}
