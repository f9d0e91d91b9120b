package remotewrite

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
)

// AppendV1Sample, and AppendV1Encoded with AppendV1Labels, write what prompb marshals
// for the same series, and the result decodes into them.
func TestAppendV1SampleEqualsPrompb(t *testing.T) {
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "http_requests_total", "code", "200", "instance", "10.0.0.1:9100", "job", "node"),
		// Series longer than 127 and 16383 bytes: their sizes take two and three bytes.
		labels.FromStrings("__name__", "m", "long", strings.Repeat("x", 300)),
		labels.FromStrings("__name__", "m", "longer", strings.Repeat("y", 17000)),
	} {
		testAppendV1Sample(t, ls)
	}
}

func testAppendV1Sample(t *testing.T, ls labels.Labels) {
	h := &histogram.Histogram{Count: 5, Sum: 12.5, Schema: 1, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0}}
	fh := h.ToFloat(nil)
	var got, encoded []byte
	labelFields := AppendV1Labels(nil, ls)
	var want prompb.WriteRequest
	for _, c := range []struct {
		t  int64
		f  float64
		h  *histogram.Histogram
		fh *histogram.FloatHistogram
	}{
		{1796556621825, 42, nil, nil},
		{1796556621825, 0, nil, nil},
		{0, 1.5, nil, nil},
		{-1000, math.Float64frombits(value.StaleNaN), nil, nil},
		{1796556621825, 0, h, nil},
		{1796556621825, 0, nil, fh},
	} {
		got = AppendV1Sample(got, ls, c.t, c.f, c.h, c.fh)
		encoded = AppendV1Encoded(encoded, labelFields, c.t, c.f, c.h, c.fh)
		ts := prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil)}
		switch {
		case c.fh != nil:
			ts.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(c.t, c.fh)}
		case c.h != nil:
			ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(c.t, c.h)}
		default:
			ts.Samples = []prompb.Sample{{Value: c.f, Timestamp: c.t}}
		}
		want.Timeseries = append(want.Timeseries, ts)
	}
	wantBytes, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wantBytes) {
		t.Fatalf("bytes differ from prompb's\n got %x\nwant %x", got, wantBytes)
	}
	if !bytes.Equal(encoded, wantBytes) {
		t.Fatalf("AppendV1Encoded's bytes differ from prompb's\n got %x\nwant %x", encoded, wantBytes)
	}
	var r Request
	if err := r.Unmarshal(V1, got); err != nil {
		t.Fatal(err)
	}
	if len(r.Series) != 6 {
		t.Fatalf("%d series decoded, want 6", len(r.Series))
	}
}
