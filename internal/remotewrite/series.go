package remotewrite

import (
	"encoding/binary"
	"fmt"

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
	hist := marshalV1Histogram(t, h, fh)
	// The labels go at the end of dst first, then move behind the series' tag and size:
	// one pass over them, and no buffer of their own.
	at := len(dst)
	dst = AppendV1Labels(dst, ls)
	n := len(dst) - at
	var head [2 * binary.MaxVarintLen64]byte
	hdr := protowire.AppendTag(head[:0], 1, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(n+v1SampleFieldSize(hist, t, f)))
	dst = append(dst, hdr...)
	copy(dst[at+len(hdr):], dst[at:at+n])
	copy(dst[at:], hdr)
	return appendV1SampleField(dst, hist, t, f)
}

// AppendV1Labels appends ls as the labels fields of a remote write 1.0 series: what
// AppendV1Series takes, for a writer that sends the same series again and again.
func AppendV1Labels(dst []byte, ls labels.Labels) []byte {
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
	return dst
}

// marshalV1Histogram is h or fh as a remote write 1.0 histogram; nil for a float sample.
func marshalV1Histogram(t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) []byte {
	var hist []byte
	switch {
	case fh != nil:
		hp := prompb.FromFloatHistogram(t, fh)
		hist, _ = hp.Marshal() // marshalling a message built in memory does not fail
	case h != nil:
		hp := prompb.FromIntHistogram(t, h)
		hist, _ = hp.Marshal()
	}
	return hist
}

// v1SampleFieldSize is the size of the field appendV1SampleField appends, tag included.
func v1SampleFieldSize(hist []byte, t int64, f float64) int {
	if hist != nil {
		return 1 + protowire.SizeBytes(len(hist))
	}
	n := sampleSize(Sample{Value: f, Timestamp: t}, false)
	return 1 + protowire.SizeVarint(uint64(n)) + n
}

// appendV1SampleField appends a series' one sample: the histogram hist, or the float f.
func appendV1SampleField(dst, hist []byte, t int64, f float64) []byte {
	if hist != nil {
		return appendMessage(dst, 4, hist)
	}
	sample := Sample{Value: f, Timestamp: t}
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

// V1LabelsSeries returns a series of no samples whose labels are labelFields, remote
// write 1.0 label fields (AppendV1Labels), validated as a request's would be: for a
// writer that checks each series once, when it first encodes it.
func V1LabelsSeries(labelFields []byte) (Series, error) {
	var r Request
	if err := r.decodeSeriesV1(labelFields, 0); err != nil {
		return Series{}, err
	}
	return r.Series[0], nil
}

// AppendV1Series appends to r, a remote write 1.0 request built in process rather than
// decoded, a series whose labels are labelFields (AppendV1Labels) with one sample: a
// float, or the histogram h or fh when one is set. The result is what decoding
// AppendV1Sample's bytes gives, without encoding and decoding the series: for writers
// that keep each series' labels encoded (the scrapers). r aliases labelFields, which must
// not change until r is reset.
func (r *Request) AppendV1Series(labelFields []byte, t int64, f float64, h *histogram.Histogram, fh *histogram.FloatHistogram) error {
	if r.Version != V1 && len(r.Series) > 0 {
		return fmt.Errorf("appending a remote write 1.0 series to a request of version %d", r.Version)
	}
	// The labels are located and checked as decoding does; the series gets no sample.
	if err := r.decodeSeriesV1(labelFields, 0); err != nil {
		return err
	}
	r.Version = V1
	s := &r.Series[len(r.Series)-1]
	if h == nil && fh == nil {
		smp0 := len(r.samples)
		r.samples = append(r.samples, Sample{Value: f, Timestamp: t})
		s.Samples = window(r.samples, smp0)
		return nil
	}
	h0 := len(r.histograms)
	if err := r.decodeHistogram(marshalV1Histogram(t, h, fh), 0, false); err != nil {
		r.Series = r.Series[:len(r.Series)-1]
		return err
	}
	s.Histograms = window(r.histograms, h0)
	return nil
}
