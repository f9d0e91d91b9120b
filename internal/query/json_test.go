package query

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// The expectations below are what Prometheus' jsoniter codec writes (jsonutil.MarshalFloat,
// jsonutil.MarshalTimestamp, jsoniter's WriteFloat64).
func TestAppendSampleValue(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, `"0"`}, {math.Copysign(0, -1), `"-0"`}, {1, `"1"`}, {-42.5, `"-42.5"`}, {0.1, `"0.1"`},
		{1e-6, `"0.000001"`}, {9.99e-7, `"9.99e-07"`}, {1.5e-7, `"1.5e-07"`}, {5e-324, `"5e-324"`},
		{1e20, `"100000000000000000000"`}, {1e21, `"1e+21"`}, {2.5e21, `"2.5e+21"`},
		{123456789.123, `"123456789.123"`}, {0.30000000000000004, `"0.30000000000000004"`},
		{math.NaN(), `"NaN"`}, {math.Inf(1), `"+Inf"`}, {math.Inf(-1), `"-Inf"`},
	} {
		if got := string(appendSampleValue(nil, tc.f)); got != tc.want {
			t.Errorf("%v: got %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want string
	}{
		{0, "0"}, {1, "0.001"}, {10, "0.010"}, {100, "0.100"}, {999, "0.999"}, {1000, "1"}, {1500, "1.500"},
		{-1500, "-1.500"}, {-1, "-0.001"}, {1704069000000, "1704069000"}, {1704069000123, "1704069000.123"},
	} {
		if got := string(appendTimestamp(nil, tc.ms)); got != tc.want {
			t.Errorf("%d: got %s, want %s", tc.ms, got, tc.want)
		}
	}
}

func TestAppendNumber(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, "0"}, {4.3e-07, "4.3e-07"}, {0.000236991, "0.000236991"}, {1.5, "1.5"}, {1e21, "1e+21"},
	} {
		if got := string(appendNumber(nil, tc.f)); got != tc.want {
			t.Errorf("%v: got %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"<a href='x'>&amp;</a>", `"\u003ca href='x'\u003e\u0026amp;\u003c/a\u003e"`},
		{"\n\r\t\b\f\x00\x1f\x7f", `"\n\r\t\u0008\u000c\u0000\u001f` + "\x7f" + `"`},
		{"日本語 ü", `"日本語 ü"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"bad \xff utf8", `"bad \ufffd utf8"`},
	} {
		if got := string(appendString(nil, tc.in)); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.in, got, tc.want)
		}
	}
}

// jsoniterString is what Prometheus writes for s: encoding/json's escaping, except that
// \b and \f are written as \u0008 and \u000c.
func jsoniterString(s string) []byte {
	std, _ := json.Marshal(s)
	var out []byte
	for i := 0; i < len(std); i++ {
		if std[i] != '\\' {
			out = append(out, std[i])
			continue
		}
		switch std[i+1] {
		case 'b':
			out = append(out, `\u0008`...)
		case 'f':
			out = append(out, `\u000c`...)
		default:
			out = append(out, std[i], std[i+1])
		}
		i++
	}
	return out
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a<b>&c", "\b\f\n\x00", "\xff\xfe", "\u2028", `\b`, "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString(nil, s)
		if want := jsoniterString(s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

// The time and duration parsers take any string without panicking, and a time they
// accept in RFC 3339 form is accepted again in the form they return.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"1704069000.123", "2024-01-01T00:30:00Z", "-1.5", "NaN", "1e30", "5m", minTimeText, maxTimeText, "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseDuration(s)
		ts, err := parseTime(s)
		if err != nil {
			return
		}
		if _, ferr := parseDuration(s); ferr != nil && ts.Year() >= 0 && ts.Year() <= 9999 {
			if _, err := parseTime(ts.Format(time.RFC3339Nano)); err != nil {
				t.Fatalf("%q parsed to %v, whose RFC 3339 form does not parse: %v", s, ts, err)
			}
		}
	})
}

func TestAppendMatrixAllocs(t *testing.T) {
	m := benchMatrix(100, 60)
	buf := make([]byte, 0, 1<<20)
	if n := testing.AllocsPerRun(10, func() { buf = appendMatrix(buf[:0], m) }); n != 0 {
		t.Errorf("appendMatrix allocates %v times", n)
	}
}

func benchMatrix(series, points int) promql.Matrix {
	m := make(promql.Matrix, series)
	for i := range m {
		m[i].Metric = labels.FromStrings("__name__", "http_requests_total", "instance", "10.0.0.1:9100", "job", "api", "series", string(rune('a'+i%26)))
		for j := range points {
			m[i].Floats = append(m[i].Floats, promql.FPoint{T: 1704069000000 + int64(j)*60000, F: float64(i*j) / 7})
		}
	}
	return m
}
