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

// AppendV1Sample writes what prompb marshals for the same series, and the result
// decodes into them; AppendV1Series with AppendV1Labels builds the same request.
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
	var got []byte
	var built Request // the same series appended in process (AppendV1Series)
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
		if err := built.AppendV1Series(labelFields, c.t, c.f, c.h, c.fh); err != nil {
			t.Fatal(err)
		}
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
	var r Request
	if err := r.Unmarshal(V1, got); err != nil {
		t.Fatal(err)
	}
	if len(r.Series) != 6 {
		t.Fatalf("%d series decoded, want 6", len(r.Series))
	}
	// The built request is the decoded one: it marshals to the same bytes, and its series
	// give the same keys, labels, samples and histograms.
	if b := built.AppendMarshal(nil); built.Version != V1 || !bytes.Equal(b, wantBytes) {
		t.Fatalf("the built request (version %d) marshals to\n %x\nwant %x", built.Version, b, wantBytes)
	}
	var sb labels.ScratchBuilder
	for i := range r.Series {
		d, b := &r.Series[i], &built.Series[i]
		dl, err1 := d.ToLabels(&sb)
		bl, err2 := b.ToLabels(&sb)
		if err1 != nil || err2 != nil || !labels.Equal(dl, bl) || !bytes.Equal(d.AppendKey(nil), b.AppendKey(nil)) ||
			len(d.Samples) != len(b.Samples) || len(d.Histograms) != len(b.Histograms) {
			t.Fatalf("series %d: built %v (%d samples, %d histograms), decoded %v (%d, %d)", i, bl, len(b.Samples), len(b.Histograms), dl, len(d.Samples), len(d.Histograms))
		}
		for k := range d.Samples {
			if math.Float64bits(d.Samples[k].Value) != math.Float64bits(b.Samples[k].Value) || d.Samples[k].Timestamp != b.Samples[k].Timestamp {
				t.Fatalf("series %d: sample %+v, decoded %+v", i, b.Samples[k], d.Samples[k])
			}
		}
		for k := range d.Histograms {
			if d.Histograms[k].IsFloat != b.Histograms[k].IsFloat || !d.Histograms[k].ToFloatHistogram().Equals(b.Histograms[k].ToFloatHistogram()) {
				t.Fatalf("series %d: histogram %+v, decoded %+v", i, b.Histograms[k], d.Histograms[k])
			}
		}
	}
	if err := built.AppendV1Series([]byte{0x0a, 0x05}, 0, 1, nil, nil); err == nil || len(built.Series) != 6 {
		t.Fatalf("truncated label fields: %v, %d series", err, len(built.Series))
	}
}
