package remotewrite

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Unmarshal resets r and decodes data, an uncompressed protobuf message of
// the given version (prometheus.WriteRequest for V1,
// io.prometheus.write.v2.Request for V2). Afterwards r aliases data, which
// must not change while r is in use. On error r is left empty.
func (r *Request) Unmarshal(v Version, data []byte) error {
	r.Reset()
	var err error
	switch v {
	case V1:
		err = r.decodeV1(data)
	case V2:
		err = r.decodeV2(data)
	default:
		return fmt.Errorf("remote write version %d: %w", v, ErrUnsupportedContentType)
	}
	if err != nil {
		r.Reset()
		return err
	}
	r.Version = v
	return nil
}

// window returns the capacity-limited part of arena from start on, or nil
// if it is empty. Limiting the capacity keeps a caller's append to a series
// slice from overwriting the next series.
func window[T any](arena []T, start int) []T {
	if len(arena) == start {
		return nil
	}
	return arena[start:len(arena):len(arena)]
}

// decodeV1 decodes a prometheus.WriteRequest:
//
//	1: repeated TimeSeries timeseries
//	3: repeated MetricMetadata metadata
func (r *Request) decodeV1(b []byte) error {
	for i := 0; i < len(b); {
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1:
			var s, e int
			if s, e, err = readLen(b, j, wt, "timeseries"); err == nil {
				if err = r.decodeSeriesV1(b[:e], s); err != nil {
					return inField(err, "timeseries", len(r.Series))
				}
				j = e
			}
		case 3:
			var s, e int
			if s, e, err = readLen(b, j, wt, "metadata"); err == nil {
				if err = r.decodeMetadataV1(b[:e], s); err != nil {
					return inField(err, "metadata", len(r.Metadata))
				}
				j = e
			}
		default:
			j, err = skipField(b, j, wt)
		}
		if err != nil {
			return err
		}
		i = j
	}
	return nil
}

// decodeSeriesV1 decodes a prometheus.TimeSeries:
//
//	1: repeated Label labels
//	2: repeated Sample samples
//	3: repeated Exemplar exemplars
//	4: repeated Histogram histograms
//
// Labels are validated and located, not stored (see Series).
func (r *Request) decodeSeriesV1(b []byte, i int) error {
	smp0, ex0, h0 := len(r.samples), len(r.exemplars), len(r.histograms)
	// The label fields' extent in b.
	labStart, labEnd, layout := -1, -1, v1Contiguous
	var nlabels uint32
	for i < len(b) {
		// Fast path for a Label field with a one-byte length holding name
		// and value with one-byte lengths, the way senders write them.
		// It repeats decodeLabel's fast path by hand: the helpers are too
		// big to be inlined, and the calls cost a third of decoding.
		if b[i] == 1<<3|wireBytes && i+1 < len(b) {
			if n := int(b[i+1]); n < 0x80 && n <= len(b)-i-2 {
				s, e := i+2, i+2+n
				if n >= 4 && b[s] == 1<<3|wireBytes && b[s+1] < 0x80 {
					if ve := s + 2 + int(b[s+1]); ve+2 <= e && b[ve] == 2<<3|wireBytes && int(b[ve+1]) == e-ve-2 {
						if labStart < 0 {
							labStart = i
						} else if i != labEnd {
							layout = v1Mixed
						}
						labEnd = e
						nlabels++
						i = e
						continue
					}
				}
			}
		}
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1:
			var s, e int
			if s, e, err = readLen(b, j, wt, "labels"); err != nil {
				return err
			}
			if _, err = decodeLabel(b[:e], s); err != nil {
				return inField(err, "labels", int(nlabels))
			}
			if labStart < 0 {
				labStart = i
			} else if i != labEnd {
				layout = v1Mixed
			}
			labEnd = e
			nlabels++
			j = e
		case 2:
			var s, e int
			if s, e, err = readLen(b, j, wt, "samples"); err != nil {
				return err
			}
			if err = r.decodeSample(b[:e], s, false); err != nil {
				return inField(err, "samples", len(r.samples)-smp0)
			}
			j = e
		case 3:
			var s, e int
			if s, e, err = readLen(b, j, wt, "exemplars"); err != nil {
				return err
			}
			if err = r.decodeExemplarV1(b[:e], s); err != nil {
				return inField(err, "exemplars", len(r.exemplars)-ex0)
			}
			j = e
		case 4:
			var s, e int
			if s, e, err = readLen(b, j, wt, "histograms"); err != nil {
				return err
			}
			if err = r.decodeHistogram(b[:e], s, false); err != nil {
				return inField(err, "histograms", len(r.histograms)-h0)
			}
			j = e
		default:
			if j, err = skipField(b, j, wt); err != nil {
				return err
			}
		}
		i = j
	}
	s := Series{
		Samples:    window(r.samples, smp0),
		Exemplars:  window(r.exemplars, ex0),
		Histograms: window(r.histograms, h0),
		req:        r,
		numLabels:  nlabels,
		layout:     layout,
	}
	if labStart >= 0 {
		s.labels = b[labStart:labEnd:labEnd]
	}
	r.Series = append(r.Series, s)
	return nil
}

// decodeLabel decodes a prometheus.Label: 1: string name, 2: string value.
func decodeLabel(b []byte, i int) (Label, error) {
	// Fast path: name then value, each with a one-byte length.
	if len(b)-i >= 4 && b[i] == 1<<3|wireBytes && b[i+1] < 0x80 {
		ve := i + 2 + int(b[i+1])
		if ve+2 <= len(b) && b[ve] == 2<<3|wireBytes && b[ve+1] < 0x80 && int(b[ve+1]) == len(b)-ve-2 {
			return Label{Name: b[i+2 : ve : ve], Value: b[ve+2 : len(b) : len(b)]}, nil
		}
	}
	var l Label
	for i < len(b) {
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return l, err
		}
		switch num {
		case 1:
			var s, e int
			if s, e, err = readLen(b, j, wt, "name"); err == nil {
				l.Name, j = b[s:e:e], e
			}
		case 2:
			var s, e int
			if s, e, err = readLen(b, j, wt, "value"); err == nil {
				l.Value, j = b[s:e:e], e
			}
		default:
			j, err = skipField(b, j, wt)
		}
		if err != nil {
			return l, err
		}
		i = j
	}
	return l, nil
}

// decodeSample decodes a Sample: 1: double value, 2: int64 timestamp, and
// in v2 3: int64 start_timestamp.
func (r *Request) decodeSample(b []byte, i int, v2 bool) error {
	var smp Sample
	for i < len(b) {
		// Fast paths, by hand because the helpers are too big to inline.
		switch c := b[i]; {
		case c == 1<<3|wireFixed64 && len(b)-i > 8:
			smp.Value = math.Float64frombits(binary.LittleEndian.Uint64(b[i+1:]))
			i += 9
			continue
		case c == 2<<3|wireVarint || v2 && c == 3<<3|wireVarint:
			v, j := uvarint(b, i+1)
			if j < 0 {
				return varintErr(j, i+1)
			}
			if c == 2<<3|wireVarint {
				smp.Timestamp = int64(v)
			} else {
				smp.StartTimestamp = int64(v)
			}
			i = j
			continue
		}
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		switch {
		case num == 1:
			smp.Value, j, err = readDouble(b, j, wt, "value")
		case num == 2:
			var v uint64
			v, j, err = readVarint(b, j, wt, "timestamp")
			smp.Timestamp = int64(v)
		case num == 3 && v2:
			var v uint64
			v, j, err = readVarint(b, j, wt, "start_timestamp")
			smp.StartTimestamp = int64(v)
		default:
			j, err = skipField(b, j, wt)
		}
		if err != nil {
			return err
		}
		i = j
	}
	r.samples = append(r.samples, smp)
	return nil
}

// decodeExemplarV1 decodes a prometheus.Exemplar: 1: repeated Label labels,
// 2: double value, 3: int64 timestamp.
func (r *Request) decodeExemplarV1(b []byte, i int) error {
	lab0 := len(r.exemplarLabels)
	var ex Exemplar
	for i < len(b) {
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1:
			var s, e int
			if s, e, err = readLen(b, j, wt, "labels"); err == nil {
				var l Label
				if l, err = decodeLabel(b[:e], s); err != nil {
					return inField(err, "labels", len(r.exemplarLabels)-lab0)
				}
				r.exemplarLabels = append(r.exemplarLabels, l)
				j = e
			}
		case 2:
			ex.Value, j, err = readDouble(b, j, wt, "value")
		case 3:
			var v uint64
			v, j, err = readVarint(b, j, wt, "timestamp")
			ex.Timestamp = int64(v)
		default:
			j, err = skipField(b, j, wt)
		}
		if err != nil {
			return err
		}
		i = j
	}
	ex.Labels = window(r.exemplarLabels, lab0)
	r.exemplars = append(r.exemplars, ex)
	return nil
}

// decodeMetadataV1 decodes a prometheus.MetricMetadata: 1: MetricType type,
// 2: string metric_family_name, 4: string help, 5: string unit.
func (r *Request) decodeMetadataV1(b []byte, i int) error {
	var md Metadata
	for i < len(b) {
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		var s, e int
		switch num {
		case 1:
			var v uint64
			v, j, err = readVarint(b, j, wt, "type")
			md.Type = MetricType(v)
		case 2:
			if s, e, err = readLen(b, j, wt, "metric_family_name"); err == nil {
				md.MetricFamilyName, j = b[s:e:e], e
			}
		case 4:
			if s, e, err = readLen(b, j, wt, "help"); err == nil {
				md.Help, j = b[s:e:e], e
			}
		case 5:
			if s, e, err = readLen(b, j, wt, "unit"); err == nil {
				md.Unit, j = b[s:e:e], e
			}
		default:
			j, err = skipField(b, j, wt)
		}
		if err != nil {
			return err
		}
		i = j
	}
	r.Metadata = append(r.Metadata, md)
	return nil
}
