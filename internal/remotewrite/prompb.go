package remotewrite

import (
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// AppendPrompbSample adds a series of one sample to wr: a float, or the histogram h or
// fh when one is set. It is how in-process writers (the ruler, the scrapers) build the
// remote write request they hand to the distributor.
func AppendPrompbSample(wr *prompb.WriteRequest, ls labels.Labels, t int64, f float64, h *histogram.Histogram, fh *histogram.FloatHistogram) {
	ts := prompb.TimeSeries{Labels: make([]prompb.Label, 0, ls.Len())}
	ls.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
	switch {
	case fh != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(t, fh)}
	case h != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(t, h)}
	default:
		ts.Samples = []prompb.Sample{{Value: f, Timestamp: t}}
	}
	wr.Timeseries = append(wr.Timeseries, ts)
}
