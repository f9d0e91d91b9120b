package remotewrite

import (
	"fmt"
	"iter"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
)

// NumLabels returns the number of labels of the series.
func (s *Series) NumLabels() int { return int(s.numLabels) }

// Labels returns an iterator over the series' labels in wire order: not
// necessarily sorted, possibly with repeated names. Names and values alias
// the request buffer. Ranging over it does not allocate.
func (s *Series) Labels() iter.Seq2[[]byte, []byte] {
	return func(yield func(name, value []byte) bool) {
		c := s.cursor()
		for {
			name, value, ok := c.next()
			if !ok || !yield(name, value) {
				return
			}
		}
	}
}

// AppendLabels appends the series' labels, in wire order, to dst and
// returns the extended slice. Names and values alias the request buffer.
func (s *Series) AppendLabels(dst []Label) []Label {
	c := s.cursor()
	for {
		name, value, ok := c.next()
		if !ok {
			return dst
		}
		dst = append(dst, Label{Name: name, Value: value})
	}
}

// Metadata returns the series' v2 metadata, resolved against the symbols
// table; MetricFamilyName is always empty. It is zero for v1 series, whose
// metadata is request-level (Request.Metadata).
func (s *Series) Metadata() Metadata {
	if s.layout < v2Packed || s.noMeta {
		return Metadata{}
	}
	syms := s.req.Symbols
	return Metadata{Type: s.metaType, Help: syms[s.helpRef], Unit: syms[s.unitRef]}
}

// DropMetadata makes Metadata return zero from now on, as if the series had been sent
// without metadata; labels, samples, histograms and exemplars are unchanged. The
// distributor calls it for metadata it refuses, so that the series is still stored.
func (s *Series) DropMetadata() { s.noMeta = true }

// AppendKey appends to dst a byte string identifying the series' labels and
// returns the extended slice. It is meant as a cache key, for instance from
// series to TSDB series reference, looked up without allocating as
// m[string(key)]:
//
//   - Equal keys mean equal labels in equal order, whichever version and
//     request they came from, so one map can serve v1 and v2 series.
//   - The same labels sent in another order or encoding may give another
//     key: a cache miss, never a wrong hit.
//
// The key is the labels encoded as a run of remote write 1.0 Label fields.
// For a v1 series whose label fields are contiguous on the wire, as every
// known sender writes them, it is a copy of the sender's bytes. Otherwise
// (v2, or v1 with label fields interleaved with others) the labels are
// encoded as Prometheus' v1 encoder would, so a series gets the same key
// from a Prometheus sending v1 or v2.
func (s *Series) AppendKey(dst []byte) []byte {
	switch s.layout {
	case v1Contiguous:
		return append(dst, s.labels...)
	case v2Packed:
		// The common v2 case, without the cursor's per-label calls.
		syms, p := s.req.Symbols, s.labels
		for j := 0; j < len(p); {
			var n, v uint64
			if n, j = uvarint(p, j); j < 0 {
				break // Not reached: decoding checked the refs.
			}
			if v, j = uvarint(p, j); j < 0 {
				break
			}
			dst = appendKeyLabel(dst, syms[uint32(n)], syms[uint32(v)])
		}
		return dst
	}
	c := s.cursor()
	for {
		name, value, ok := c.next()
		if !ok {
			return dst
		}
		dst = appendKeyLabel(dst, name, value)
	}
}

// appendKeyLabel appends a Label field as gogo encodes it: empty strings
// are left out, which is what makes v2 keys equal to the bytes Prometheus
// sends over v1.
func appendKeyLabel(dst, name, value []byte) []byte {
	n := 0
	if len(name) > 0 {
		n += 1 + uvarintLen(len(name)) + len(name)
	}
	if len(value) > 0 {
		n += 1 + uvarintLen(len(value)) + len(value)
	}
	k := len(dst)
	size := 1 + uvarintLen(n) + n
	dst = slices.Grow(dst, size)[:k+size]
	dst[k] = 1<<3 | wireBytes
	k = putUvarint(dst, k+1, n)
	if len(name) > 0 {
		dst[k] = 1<<3 | wireBytes
		k = putUvarint(dst, k+1, len(name))
		k += copy(dst[k:], name)
	}
	if len(value) > 0 {
		dst[k] = 2<<3 | wireBytes
		k = putUvarint(dst, k+1, len(value))
		copy(dst[k:], value)
	}
	return dst
}

// putUvarint writes n at b[i:], which has room for it, and returns the
// position after it.
func putUvarint(b []byte, i, n int) int {
	for n >= 0x80 {
		b[i] = byte(n) | 0x80
		n >>= 7
		i++
	}
	b[i] = byte(n)
	return i + 1
}

// labelCursor walks the labels of a series where decoding found them.
// Decoding validated those bytes, so the cursor meets no errors; if it did,
// it would stop.
type labelCursor struct {
	b      []byte
	i      int
	layout labelLayout
	syms   [][]byte
	// packedEnd is the end of the packed labels_refs run being read
	// (v2Fields); i < packedEnd while inside one.
	packedEnd int
}

func (s *Series) cursor() labelCursor {
	c := labelCursor{b: s.labels, layout: s.layout}
	if s.layout >= v2Packed {
		c.syms = s.req.Symbols
		if s.layout == v2Packed {
			c.packedEnd = len(s.labels)
		}
	}
	return c
}

func (c *labelCursor) next() (name, value []byte, ok bool) {
	if c.layout >= v2Packed {
		n, ok1 := c.nextRef()
		v, ok2 := c.nextRef()
		if !ok1 || !ok2 {
			return nil, nil, false
		}
		return c.syms[n], c.syms[v], true
	}
	b := c.b
	for c.i < len(b) {
		num, wt, j, err := readTag(b, c.i)
		if err != nil {
			return nil, nil, false
		}
		if num != 1 {
			if c.i, err = skipField(b, j, wt); err != nil {
				return nil, nil, false
			}
			continue
		}
		s, e, err := readLen(b, j, wt, "labels")
		if err != nil {
			return nil, nil, false
		}
		c.i = e
		l, err := decodeLabel(b[:e], s)
		return l.Name, l.Value, err == nil
	}
	return nil, nil, false
}

// nextRef returns the next v2 label reference.
func (c *labelCursor) nextRef() (uint32, bool) {
	b := c.b
	for c.i >= c.packedEnd {
		// For v2Packed, packedEnd is len(b): the one run is over.
		if c.i >= len(b) {
			return 0, false
		}
		num, wt, j, err := readTag(b, c.i)
		if err != nil {
			return 0, false
		}
		switch {
		case num == 1 && wt == wireVarint:
			v, k := uvarint(b, j)
			if k < 0 {
				return 0, false
			}
			c.i = k
			return uint32(v), true
		case num == 1 && wt == wireBytes:
			s, e, err := readLenValue(b, j)
			if err != nil {
				return 0, false
			}
			c.i, c.packedEnd = s, e
		default:
			if c.i, err = skipField(b, j, wt); err != nil {
				return 0, false
			}
		}
	}
	if x := b[c.i]; x < 0x80 {
		c.i++
		return uint32(x), true
	}
	v, k := uvarintSlow(b[:c.packedEnd], c.i)
	if k < 0 {
		return 0, false
	}
	c.i = k
	return uint32(v), true
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// ToLabels builds the series' labels.Labels, sorted by name, in b. It
// returns an error wrapping ErrDuplicateLabelName if a name repeats. The
// result does not alias the request. ToLabels switches b to unsafe-add
// mode, because the strings it adds alias the request buffer; with the
// default stringlabels implementation that costs nothing.
func (s *Series) ToLabels(b *labels.ScratchBuilder) (labels.Labels, error) {
	b.SetUnsafeAdd(true)
	b.Reset()
	c := s.cursor()
	for {
		name, value, ok := c.next()
		if !ok {
			break
		}
		b.Add(yoloString(name), yoloString(value))
	}
	return finishLabels(b)
}

// ToLabels builds the exemplar's labels like Series.ToLabels.
func (e *Exemplar) ToLabels(b *labels.ScratchBuilder) (labels.Labels, error) {
	return buildLabels(b, e.Labels)
}

// ToExemplar converts the exemplar to the TSDB's form, like
// prompb.Exemplar.ToExemplar: a zero timestamp means none.
func (e *Exemplar) ToExemplar(b *labels.ScratchBuilder) (exemplar.Exemplar, error) {
	ls, err := buildLabels(b, e.Labels)
	if err != nil {
		return exemplar.Exemplar{}, err
	}
	return exemplar.Exemplar{
		Labels: ls,
		Value:  e.Value,
		Ts:     e.Timestamp,
		HasTs:  e.Timestamp != 0,
	}, nil
}

func buildLabels(b *labels.ScratchBuilder, ls []Label) (labels.Labels, error) {
	b.SetUnsafeAdd(true)
	b.Reset()
	for _, l := range ls {
		b.Add(yoloString(l.Name), yoloString(l.Value))
	}
	return finishLabels(b)
}

func finishLabels(b *labels.ScratchBuilder) (labels.Labels, error) {
	b.Sort()
	out := b.Labels()
	// Not out.HasDuplicateLabelNames: it takes a first empty name for a
	// duplicate.
	var prev, dup string
	n, found := 0, false
	out.Range(func(l labels.Label) {
		if n > 0 && l.Name == prev && !found {
			dup, found = l.Name, true
		}
		prev = l.Name
		n++
	})
	if found {
		return labels.EmptyLabels(), fmt.Errorf("%w %q in %s", ErrDuplicateLabelName, dup, out.String())
	}
	return out, nil
}

// yoloString views b as a string without copying. The labels builder
// copies what it keeps (see SetUnsafeAdd), so nothing outlives b.
func yoloString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Bounds of Series.String: it ends up in answers to clients and in logs, and a series
// may hold 70 labels of 2 KiB values.
const (
	maxStringValue  = 256  // bytes of one label name or value
	maxStringSeries = 2048 // bytes of the whole
)

// appendBounded appends s, quoted when quote is set, cut after maxStringValue bytes (at
// a rune boundary) with the cut marked.
func appendBounded(b, s []byte, quote bool) []byte {
	cut := len(s)
	if cut > maxStringValue {
		cut = maxStringValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
	}
	if quote {
		b = strconv.AppendQuote(b, string(s[:cut]))
	} else {
		b = append(b, s[:cut]...)
	}
	if cut < len(s) {
		b = fmt.Appendf(b, "…+%d bytes", len(s)-cut)
	}
	return b
}

// String renders the series' labels in wire order, {name="value", ...}, for messages,
// bounded: a name or value longer than 256 bytes is cut (marked "…+N bytes") and the
// labels beyond about 2 KiB are left out (marked "…N more labels").
func (s *Series) String() string {
	b := make([]byte, 0, 128)
	b = append(b, '{')
	n, shown := 0, 0
	for name, value := range s.Labels() {
		n++
		if len(b) >= maxStringSeries {
			continue
		}
		if shown > 0 {
			b = append(b, ", "...)
		}
		shown++
		b = appendBounded(b, name, false)
		b = append(b, '=')
		b = appendBounded(b, value, true)
	}
	if n > shown {
		b = fmt.Appendf(b, ", …%d more labels", n-shown)
	}
	return string(append(b, '}'))
}
