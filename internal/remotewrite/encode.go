package remotewrite

import (
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"google.golang.org/protobuf/encoding/protowire"
)

// AppendMarshal appends the request, as it is now, to dst as a protobuf message of its
// own version (prometheus.WriteRequest or io.prometheus.write.v2.Request), and returns
// the extended slice. Unmarshal with the same version gives back an equal request:
// the same series in the same order with the same labels, samples, histograms,
// exemplars and metadata, and for v1 the same request-level metadata.
//
// It is how a batch crosses a process boundary once the distributor has filtered it:
// dropped series, samples and metadata are left out. It writes what the request holds,
// not the sender's bytes, so fields unknown to the decoder are not carried. A v2 request
// keeps its symbols table (and its references); the labels of v2 exemplars, resolved at
// decoding, get symbols of their own appended to it.
func (r *Request) AppendMarshal(dst []byte) []byte {
	var e encoder
	return e.append(dst, r, nil, true, true)
}

// AppendMarshalSeries is AppendMarshal for a part of the request: the series at the
// given indexes of Series, in that order (none when it is empty), and for v1 the
// request-level metadata only when withMetadata is set. It is how a request is split
// into batches by series.
func (r *Request) AppendMarshalSeries(dst []byte, series []int, withMetadata bool) []byte {
	var e encoder
	return e.append(dst, r, series, false, withMetadata)
}

func (e *encoder) append(dst []byte, r *Request, idx []int, all, withMetadata bool) []byte {
	each := func(fn func(s *Series)) {
		if all {
			for i := range r.Series {
				fn(&r.Series[i])
			}
			return
		}
		for _, i := range idx {
			fn(&r.Series[i])
		}
	}
	if r.Version == V2 {
		return e.appendV2(dst, r, each)
	}
	return e.appendV1(dst, r, each, withMetadata)
}

// encoder holds the scratch space of one AppendMarshal: nested messages are encoded
// into scratch before their length is known.
type encoder struct {
	series, inner, hist []byte
	// extra maps the exemplar label strings of a v2 request to the references of the
	// symbols appended for them; nil until the first exemplar.
	extra     map[string]uint64
	extraSyms []string
	nsyms     int
}

func appendMessage(dst []byte, num protowire.Number, msg []byte) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, msg)
}

// varintFieldSize is the size appendVarint writes for a field number below 16.
func varintFieldSize(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func appendVarint(dst []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, v)
}

// appendDouble leaves out +0 only: -0 and NaN payloads (stale markers) keep their bits.
func appendDouble(dst []byte, num protowire.Number, v float64) []byte {
	if math.Float64bits(v) == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(dst, math.Float64bits(v))
}

func appendLabel(dst []byte, num protowire.Number, name, value []byte) []byte {
	n := protowire.SizeTag(1) + protowire.SizeBytes(len(name)) + protowire.SizeTag(2) + protowire.SizeBytes(len(value))
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendBytes(dst, name)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	return protowire.AppendBytes(dst, value)
}

// sampleSize is the size of a Sample message.
func sampleSize(smp Sample, v2 bool) int {
	n := 0
	if math.Float64bits(smp.Value) != 0 {
		n += 9
	}
	if smp.Timestamp != 0 {
		n += 1 + protowire.SizeVarint(uint64(smp.Timestamp))
	}
	if v2 && smp.StartTimestamp != 0 {
		n += 1 + protowire.SizeVarint(uint64(smp.StartTimestamp))
	}
	return n
}

// appendSamplesDirect appends the samples of a series as field num (2 in both versions)
// straight to dst, each message's size computed first.
func appendSamplesDirect(dst []byte, samples []Sample, v2 bool) []byte {
	for _, smp := range samples {
		dst = append(dst, 2<<3|byte(protowire.BytesType))
		dst = protowire.AppendVarint(dst, uint64(sampleSize(smp, v2)))
		dst = appendSample(dst, smp, v2)
	}
	return dst
}

// samplesSize is the size of the sample fields of a series.
func samplesSize(samples []Sample, v2 bool) int {
	n := 0
	for _, smp := range samples {
		sz := sampleSize(smp, v2)
		n += 1 + protowire.SizeVarint(uint64(sz)) + sz
	}
	return n
}

func (e *encoder) appendV1(dst []byte, r *Request, each func(func(*Series)), withMetadata bool) []byte {
	each(func(s *Series) {
		if s.layout == v1Contiguous && len(s.Exemplars) == 0 && len(s.Histograms) == 0 {
			// The common series, written in place: no scratch copy.
			size := len(s.labels) + samplesSize(s.Samples, false)
			dst = append(dst, 1<<3|byte(protowire.BytesType))
			dst = protowire.AppendVarint(dst, uint64(size))
			dst = append(dst, s.labels...)
			dst = appendSamplesDirect(dst, s.Samples, false)
			return
		}
		b := e.series[:0]
		if s.layout == v1Contiguous {
			// The sender's label fields, as they were validated.
			b = append(b, s.labels...)
		} else {
			for name, value := range s.Labels() {
				b = appendLabel(b, 1, name, value)
			}
		}
		for _, smp := range s.Samples {
			e.inner = appendSample(e.inner[:0], smp, false)
			b = appendMessage(b, 2, e.inner)
		}
		for k := range s.Exemplars {
			ex := &s.Exemplars[k]
			m := e.inner[:0]
			for _, l := range ex.Labels {
				m = appendLabel(m, 1, l.Name, l.Value)
			}
			m = appendDouble(m, 2, ex.Value)
			m = appendVarint(m, 3, uint64(ex.Timestamp))
			b = appendMessage(b, 3, m)
			e.inner = m
		}
		for k := range s.Histograms {
			e.hist = appendHistogram(e.hist[:0], &s.Histograms[k], false)
			b = appendMessage(b, 4, e.hist)
		}
		dst = appendMessage(dst, 1, b)
		e.series = b
	})
	if !withMetadata {
		return dst
	}
	for _, md := range r.Metadata {
		m := e.inner[:0]
		m = appendVarint(m, 1, uint64(md.Type))
		if len(md.MetricFamilyName) > 0 {
			m = protowire.AppendTag(m, 2, protowire.BytesType)
			m = protowire.AppendBytes(m, md.MetricFamilyName)
		}
		if len(md.Help) > 0 {
			m = protowire.AppendTag(m, 4, protowire.BytesType)
			m = protowire.AppendBytes(m, md.Help)
		}
		if len(md.Unit) > 0 {
			m = protowire.AppendTag(m, 5, protowire.BytesType)
			m = protowire.AppendBytes(m, md.Unit)
		}
		dst = appendMessage(dst, 3, m)
		e.inner = m
	}
	return dst
}

func (e *encoder) appendV2(dst []byte, r *Request, each func(func(*Series))) []byte {
	for _, sym := range r.Symbols {
		dst = protowire.AppendTag(dst, 4, protowire.BytesType)
		dst = protowire.AppendBytes(dst, sym)
	}
	e.nsyms = len(r.Symbols)
	each(func(s *Series) {
		if s.layout == v2Packed && len(s.Exemplars) == 0 && len(s.Histograms) == 0 {
			// The common series, written in place: no scratch copy.
			size := samplesSize(s.Samples, true)
			if len(s.labels) > 0 {
				size += 1 + protowire.SizeBytes(len(s.labels))
			}
			meta := !s.noMeta && (s.metaType != 0 || s.helpRef != 0 || s.unitRef != 0)
			var metaSize int
			if meta {
				metaSize = varintFieldSize(uint64(s.metaType)) + varintFieldSize(uint64(s.helpRef)) + varintFieldSize(uint64(s.unitRef))
				size += 1 + protowire.SizeBytes(metaSize)
			}
			dst = append(dst, 5<<3|byte(protowire.BytesType))
			dst = protowire.AppendVarint(dst, uint64(size))
			if len(s.labels) > 0 {
				dst = appendMessage(dst, 1, s.labels)
			}
			dst = appendSamplesDirect(dst, s.Samples, true)
			if meta {
				dst = append(dst, 5<<3|byte(protowire.BytesType))
				dst = protowire.AppendVarint(dst, uint64(metaSize))
				dst = appendVarint(dst, 1, uint64(s.metaType))
				dst = appendVarint(dst, 3, uint64(s.helpRef))
				dst = appendVarint(dst, 4, uint64(s.unitRef))
			}
			return
		}
		b := e.series[:0]
		switch {
		case s.layout == v2Packed && len(s.labels) > 0:
			b = appendMessage(b, 1, s.labels)
		case s.numLabels > 0:
			refs := e.inner[:0]
			c := s.cursor()
			for {
				ref, ok := c.nextRef()
				if !ok {
					break
				}
				refs = protowire.AppendVarint(refs, uint64(ref))
			}
			b = appendMessage(b, 1, refs)
			e.inner = refs
		}
		for _, smp := range s.Samples {
			e.inner = appendSample(e.inner[:0], smp, true)
			b = appendMessage(b, 2, e.inner)
		}
		for k := range s.Histograms {
			e.hist = appendHistogram(e.hist[:0], &s.Histograms[k], true)
			b = appendMessage(b, 3, e.hist)
		}
		for k := range s.Exemplars {
			ex := &s.Exemplars[k]
			refs := e.inner[:0]
			for _, l := range ex.Labels {
				refs = protowire.AppendVarint(refs, e.symbol(l.Name))
				refs = protowire.AppendVarint(refs, e.symbol(l.Value))
			}
			m := e.hist[:0]
			if len(refs) > 0 {
				m = appendMessage(m, 1, refs)
			}
			m = appendDouble(m, 2, ex.Value)
			m = appendVarint(m, 3, uint64(ex.Timestamp))
			b = appendMessage(b, 4, m)
			e.inner, e.hist = refs, m
		}
		if !s.noMeta && (s.metaType != 0 || s.helpRef != 0 || s.unitRef != 0) {
			m := e.inner[:0]
			m = appendVarint(m, 1, uint64(s.metaType))
			m = appendVarint(m, 3, uint64(s.helpRef))
			m = appendVarint(m, 4, uint64(s.unitRef))
			b = appendMessage(b, 5, m)
			e.inner = m
		}
		dst = appendMessage(dst, 5, b)
		e.series = b
	})
	// Symbols may follow the series that use them.
	for _, sym := range e.extraSyms {
		dst = protowire.AppendTag(dst, 4, protowire.BytesType)
		dst = protowire.AppendString(dst, sym)
	}
	return dst
}

// symbol returns the reference of an exemplar label string, appending a symbol for it
// the first time.
func (e *encoder) symbol(s []byte) uint64 {
	if ref, ok := e.extra[string(s)]; ok {
		return ref
	}
	if e.extra == nil {
		e.extra = map[string]uint64{}
	}
	ref := uint64(e.nsyms + len(e.extraSyms))
	e.extra[string(s)] = ref
	e.extraSyms = append(e.extraSyms, string(s))
	return ref
}

func appendSample(m []byte, smp Sample, v2 bool) []byte {
	m = appendDouble(m, 1, smp.Value)
	m = appendVarint(m, 2, uint64(smp.Timestamp))
	if v2 {
		m = appendVarint(m, 3, uint64(smp.StartTimestamp))
	}
	return m
}

func appendHistogram(m []byte, h *Histogram, v2 bool) []byte {
	if h.IsFloat {
		// Written even when zero: its presence is what makes a float histogram.
		m = protowire.AppendTag(m, 2, protowire.Fixed64Type)
		m = protowire.AppendFixed64(m, math.Float64bits(h.CountFloat))
	} else {
		m = appendVarint(m, 1, h.CountInt)
	}
	m = appendDouble(m, 3, h.Sum)
	m = appendVarint(m, 4, protowire.EncodeZigZag(int64(h.Schema)))
	m = appendDouble(m, 5, h.ZeroThreshold)
	if math.Float64bits(h.ZeroCountFloat) != 0 {
		m = appendDouble(m, 7, h.ZeroCountFloat)
	} else {
		m = appendVarint(m, 6, h.ZeroCountInt)
	}
	m = appendSpans(m, 8, h.NegativeSpans)
	m = appendDeltas(m, 9, h.NegativeDeltas)
	m = appendPackedDoubles(m, 10, h.NegativeCounts)
	m = appendSpans(m, 11, h.PositiveSpans)
	m = appendDeltas(m, 12, h.PositiveDeltas)
	m = appendPackedDoubles(m, 13, h.PositiveCounts)
	m = appendVarint(m, 14, uint64(h.ResetHint))
	m = appendVarint(m, 15, uint64(h.Timestamp))
	m = appendPackedDoubles(m, 16, h.CustomValues)
	if v2 {
		m = appendVarint(m, 17, uint64(h.StartTimestamp))
	}
	return m
}

func appendSpans(m []byte, num protowire.Number, spans []histogram.Span) []byte {
	for _, sp := range spans {
		off := protowire.EncodeZigZag(int64(sp.Offset))
		n := 0
		if off != 0 {
			n += protowire.SizeTag(1) + protowire.SizeVarint(off)
		}
		if sp.Length != 0 {
			n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(sp.Length))
		}
		m = protowire.AppendTag(m, num, protowire.BytesType)
		m = protowire.AppendVarint(m, uint64(n))
		m = appendVarint(m, 1, off)
		m = appendVarint(m, 2, uint64(sp.Length))
	}
	return m
}

func appendDeltas(m []byte, num protowire.Number, deltas []int64) []byte {
	if len(deltas) == 0 {
		return m
	}
	n := 0
	for _, d := range deltas {
		n += protowire.SizeVarint(protowire.EncodeZigZag(d))
	}
	m = protowire.AppendTag(m, num, protowire.BytesType)
	m = protowire.AppendVarint(m, uint64(n))
	for _, d := range deltas {
		m = protowire.AppendVarint(m, protowire.EncodeZigZag(d))
	}
	return m
}

func appendPackedDoubles(m []byte, num protowire.Number, vs []float64) []byte {
	if len(vs) == 0 {
		return m
	}
	m = protowire.AppendTag(m, num, protowire.BytesType)
	m = protowire.AppendVarint(m, uint64(8*len(vs)))
	for _, v := range vs {
		m = protowire.AppendFixed64(m, math.Float64bits(v))
	}
	return m
}
