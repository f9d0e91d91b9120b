package remotewrite

import (
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// AppendV1Sample appends to dst a series of one sample as a field of a remote write 1.0
// request (prometheus.WriteRequest's timeseries): a float, or the histogram h or fh when
// one is set. Appending several builds the request in place, with no intermediate
// structures; it is how in-process writers (the ruler, the scrapers) hand their samples
// to the distributor. The bytes equal prompb's marshalling of the same series.
func AppendV1Sample(dst []byte, ls labels.Labels, t int64, f float64, h *histogram.Histogram, fh *histogram.FloatHistogram) []byte {
	var hist []byte
	switch {
	case fh != nil:
		hp := prompb.FromFloatHistogram(t, fh)
		hist, _ = hp.Marshal() // marshalling a message built in memory does not fail
	case h != nil:
		hp := prompb.FromIntHistogram(t, h)
		hist, _ = hp.Marshal()
	}
	size := 0
	ls.Range(func(l labels.Label) {
		n := labelSize(l)
		size += 1 + protowire.SizeVarint(uint64(n)) + n
	})
	sample := Sample{Value: f, Timestamp: t}
	if hist != nil {
		size += 1 + protowire.SizeBytes(len(hist))
	} else {
		n := sampleSize(sample, false)
		size += 1 + protowire.SizeVarint(uint64(n)) + n
	}
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	ls.Range(func(l labels.Label) {
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(labelSize(l)))
		if l.Name != "" {
			dst = protowire.AppendTag(dst, 1, protowire.BytesType)
			dst = protowire.AppendString(dst, l.Name)
		}
		if l.Value != "" {
			dst = protowire.AppendTag(dst, 2, protowire.BytesType)
			dst = protowire.AppendString(dst, l.Value)
		}
	})
	if hist != nil {
		return appendMessage(dst, 4, hist)
	}
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(sampleSize(sample, false)))
	return appendSample(dst, sample, false)
}

// labelSize is the size of a Label message (empty strings left out, as proto3 does).
func labelSize(l labels.Label) int {
	n := 0
	if l.Name != "" {
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(l.Name))
	}
	if l.Value != "" {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(l.Value))
	}
	return n
}
