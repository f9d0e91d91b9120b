package remotewrite

// decodeV2 decodes an io.prometheus.write.v2.Request:
//
//	4: repeated string symbols
//	5: repeated TimeSeries timeseries
//
// Symbols may legally follow the series that reference them, so a first
// pass collects the symbols and the series' byte ranges, and a second pass
// decodes the series with the whole table at hand. The first pass only
// reads tags and lengths.
func (r *Request) decodeV2(b []byte) error {
	for i := 0; i < len(b); {
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		var s, e int
		switch num {
		case 4:
			if s, e, err = readLen(b, j, wt, "symbols"); err == nil {
				r.Symbols = append(r.Symbols, b[s:e:e])
				j = e
			}
		case 5:
			if s, e, err = readLen(b, j, wt, "timeseries"); err == nil {
				r.tsRanges = append(r.tsRanges, [2]int{s, e})
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
	for k, rg := range r.tsRanges {
		if err := r.decodeSeriesV2(b[:rg[1]], rg[0]); err != nil {
			return inField(err, "timeseries", k)
		}
	}
	return nil
}

// checkRefs validates the label references of one labels_refs field,
// packed or not, against a table of nsyms symbols. It returns how many
// references the field holds, the extent of a packed payload (s == e for an
// unpacked field) and the position after the field.
func checkRefs(b []byte, i, wt int, nsyms uint64) (n, s, e int, err error) {
	switch wt {
	case wireVarint:
		v, j := uvarint(b, i)
		if j < 0 {
			return 0, 0, 0, varintErr(j, i)
		}
		// gogo decodes uint32 fields by dropping the high bits.
		if v = uint64(uint32(v)); v >= nsyms {
			return 0, 0, 0, badRef(i, "label reference %d outside the symbols table (size %d)", v, nsyms)
		}
		return 1, j, j, nil
	case wireBytes:
		if s, e, err = readLenValue(b, i); err != nil {
			return 0, 0, 0, err
		}
		p := b[:e]
		for j := s; j < e; n++ {
			at := j
			var v uint64
			if c := p[j]; c < 0x80 {
				v = uint64(c)
				j++
			} else {
				var k int
				if v, k = uvarintSlow(p, j); k < 0 {
					if k == varintEOF {
						return 0, 0, 0, malformed(j, errPackedOverrun, "field labels_refs")
					}
					return 0, 0, 0, varintErr(k, j)
				}
				v = uint64(uint32(v))
				j = k
			}
			if v >= nsyms {
				return 0, 0, 0, badRef(at, "label reference %d outside the symbols table (size %d)", v, nsyms)
			}
		}
		return n, s, e, nil
	default:
		return 0, 0, 0, wrongWireType(i, wt, "labels_refs")
	}
}

// decodeSeriesV2 decodes an io.prometheus.write.v2.TimeSeries:
//
//	1: repeated uint32 labels_refs
//	2: repeated Sample samples
//	3: repeated Histogram histograms
//	4: repeated Exemplar exemplars
//	5: Metadata metadata
//
// Label references are validated and located, not resolved (see Series).
func (r *Request) decodeSeriesV2(b []byte, i int) error {
	start := i
	smp0, ex0, h0 := len(r.samples), len(r.exemplars), len(r.histograms)
	nsyms := uint64(len(r.Symbols))
	series := Series{req: r, layout: v2Packed}
	// Label references: the run of labels_refs fields, and the packed
	// payload if there is exactly one packed field.
	refStart, refEnd, packedStart, packedEnd, nrefs := -1, -1, -1, -1, 0
	var helpRef, unitRef uint64
	for i < len(b) {
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1:
			var n, s, e int
			if n, s, e, err = checkRefs(b, j, wt, nsyms); err != nil {
				return inField(err, "labels_refs", -1)
			}
			if refStart < 0 && wt == wireBytes {
				packedStart, packedEnd = s, e
			} else {
				series.layout = v2Fields
			}
			if refStart < 0 {
				refStart = i
			}
			refEnd = e
			nrefs += n
			j = e
		case 2:
			var s, e int
			if s, e, err = readLen(b, j, wt, "samples"); err != nil {
				return err
			}
			if err = r.decodeSample(b[:e], s, true); err != nil {
				return inField(err, "samples", len(r.samples)-smp0)
			}
			j = e
		case 3:
			var s, e int
			if s, e, err = readLen(b, j, wt, "histograms"); err != nil {
				return err
			}
			if err = r.decodeHistogram(b[:e], s, true); err != nil {
				return inField(err, "histograms", len(r.histograms)-h0)
			}
			j = e
		case 4:
			var s, e int
			if s, e, err = readLen(b, j, wt, "exemplars"); err != nil {
				return err
			}
			if err = r.decodeExemplarV2(b[:e], s); err != nil {
				return inField(err, "exemplars", len(r.exemplars)-ex0)
			}
			j = e
		case 5:
			// A message field sent more than once is merged: each field
			// of Metadata keeps the last value seen.
			var s, e int
			if s, e, err = readLen(b, j, wt, "metadata"); err != nil {
				return err
			}
			for k := s; k < e; {
				// Fast path: a known field with a one-byte value.
				if c := b[k]; (c == 1<<3|wireVarint || c == 3<<3|wireVarint || c == 4<<3|wireVarint) && k+1 < e && b[k+1] < 0x80 {
					switch v := b[k+1]; c >> 3 {
					case 1:
						series.metaType = MetricType(v)
					case 3:
						helpRef = uint64(v)
					default:
						unitRef = uint64(v)
					}
					k += 2
					continue
				}
				var n int32
				var mwt, l int
				if n, mwt, l, err = readTag(b[:e], k); err != nil {
					return inField(err, "metadata", -1)
				}
				var v uint64
				switch n {
				case 1:
					v, l, err = readVarint(b[:e], l, mwt, "type")
					series.metaType = MetricType(v)
				case 3:
					v, l, err = readVarint(b[:e], l, mwt, "help_ref")
					helpRef = uint64(uint32(v))
				case 4:
					v, l, err = readVarint(b[:e], l, mwt, "unit_ref")
					unitRef = uint64(uint32(v))
				default:
					l, err = skipField(b[:e], l, mwt)
				}
				if err != nil {
					return inField(err, "metadata", -1)
				}
				k = l
			}
			j = e
		default:
			if j, err = skipField(b, j, wt); err != nil {
				return err
			}
		}
		i = j
	}
	if nrefs%2 != 0 {
		return inField(badRef(start, "odd number of label references"), "labels_refs", -1)
	}
	// Like Prometheus, check the metadata references even when no metadata
	// was sent: they then point at symbol 0, which must exist.
	if helpRef >= nsyms {
		return inField(badRef(start, "help_ref %d outside the symbols table (size %d)", helpRef, nsyms), "metadata", -1)
	}
	if unitRef >= nsyms {
		return inField(badRef(start, "unit_ref %d outside the symbols table (size %d)", unitRef, nsyms), "metadata", -1)
	}
	series.helpRef, series.unitRef = uint32(helpRef), uint32(unitRef)
	series.numLabels = uint32(nrefs / 2)
	switch {
	case refStart < 0:
	case series.layout == v2Packed:
		series.labels = b[packedStart:packedEnd:packedEnd]
	default:
		series.labels = b[refStart:refEnd:refEnd]
	}
	series.Samples = window(r.samples, smp0)
	series.Exemplars = window(r.exemplars, ex0)
	series.Histograms = window(r.histograms, h0)
	r.Series = append(r.Series, series)
	return nil
}

// decodeExemplarV2 decodes an io.prometheus.write.v2.Exemplar:
// 1: repeated uint32 labels_refs, 2: double value, 3: int64 timestamp.
// Exemplars are rare, so their labels are resolved at once.
func (r *Request) decodeExemplarV2(b []byte, i int) error {
	start := i
	lab0 := len(r.exemplarLabels)
	syms := r.Symbols
	var name uint64
	odd := false // A name reference waits for its value.
	addRef := func(v uint64, off int) error {
		ref := uint64(uint32(v)) // gogo drops the high bits of uint32 fields.
		if ref >= uint64(len(syms)) {
			return badRef(off, "label reference %d outside the symbols table (size %d)", ref, len(syms))
		}
		if !odd {
			name, odd = ref, true
			return nil
		}
		odd = false
		r.exemplarLabels = append(r.exemplarLabels, Label{Name: syms[name], Value: syms[ref]})
		return nil
	}
	var ex Exemplar
	for i < len(b) {
		num, wt, j, err := readTag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1:
			j, err = packedVarints(b, j, wt, "labels_refs", addRef)
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
	if odd {
		return badRef(start, "odd number of label references")
	}
	ex.Labels = window(r.exemplarLabels, lab0)
	r.exemplars = append(r.exemplars, ex)
	return nil
}
