package query

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// The encoding of an extent in a remote backend (memcached, Redis). It is exact: floats
// are their IEEE 754 bits (NaN payloads such as the stale marker, -0), histograms keep
// every field (nil and empty slices apart), series their DropName. Integers are varints,
// timestamps deltas from the previous point, so a day of a one-minute step costs about
// 10 bytes a float point.
//
//	magic "SQX1"
//	key (uvarint length, bytes) · from, to (varint ms)
//	series count (uvarint), then per series:
//	  flags (1: DropName) · label count, then name, value (uvarint length, bytes)
//	  float count, then per point: Δt (varint), value (8 bytes, little endian)
//	  histogram count, then per point: Δt (varint), histogram (appendHistogramBits)
//	crc32c of all the above (4 bytes, little endian)
//
// A decoder checks every length against the bytes left before it allocates, so a corrupt
// item costs no more memory than its size.

const extentMagic = "SQX1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorruptExtent is any item that is not an extent this version wrote whole.
var errCorruptExtent = errors.New("corrupt cached extent")

// errOtherKey is an item holding another key's extent (a hash collision of the backend's
// key, or a misdirected item).
var errOtherKey = errors.New("cached extent of another key")

// appendExtent appends the encoding of e to dst.
func appendExtent(dst []byte, e *extent) []byte {
	start := len(dst)
	dst = append(dst, extentMagic...)
	dst = appendLenString(dst, e.key)
	dst = binary.AppendVarint(dst, e.from)
	dst = binary.AppendVarint(dst, e.to)
	dst = binary.AppendUvarint(dst, uint64(len(e.mat)))
	for i := range e.mat {
		s := &e.mat[i]
		var flags byte
		if s.DropName {
			flags |= 1
		}
		dst = append(dst, flags)
		dst = binary.AppendUvarint(dst, uint64(s.Metric.Len()))
		s.Metric.Range(func(l labels.Label) {
			dst = appendLenString(dst, l.Name)
			dst = appendLenString(dst, l.Value)
		})
		prev := e.from
		dst = binary.AppendUvarint(dst, uint64(len(s.Floats)))
		for _, p := range s.Floats {
			dst = binary.AppendVarint(dst, p.T-prev)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(p.F))
			prev = p.T
		}
		prev = e.from
		dst = binary.AppendUvarint(dst, uint64(len(s.Histograms)))
		for _, p := range s.Histograms {
			dst = binary.AppendVarint(dst, p.T-prev)
			dst = appendHistogramBits(dst, p.H)
			prev = p.T
		}
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func appendLenString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendHistogramBits encodes h: presence (0 nil, 1), counter reset hint, schema, zero
// threshold, zero count, count, sum, then positive and negative spans, positive and
// negative buckets, custom values, each a uvarint of length+1 (0: nil) and its elements.
func appendHistogramBits(dst []byte, h *histogram.FloatHistogram) []byte {
	if h == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1, byte(h.CounterResetHint))
	dst = binary.AppendVarint(dst, int64(h.Schema))
	for _, f := range [...]float64{h.ZeroThreshold, h.ZeroCount, h.Count, h.Sum} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	for _, spans := range [...][]histogram.Span{h.PositiveSpans, h.NegativeSpans} {
		dst = appendLen(dst, spans == nil, len(spans))
		for _, sp := range spans {
			dst = binary.AppendVarint(dst, int64(sp.Offset))
			dst = binary.AppendUvarint(dst, uint64(sp.Length))
		}
	}
	for _, fs := range [...][]float64{h.PositiveBuckets, h.NegativeBuckets, h.CustomValues} {
		dst = appendLen(dst, fs == nil, len(fs))
		for _, f := range fs {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
	}
	return dst
}

func appendLen(dst []byte, isNil bool, n int) []byte {
	if isNil {
		return append(dst, 0)
	}
	return binary.AppendUvarint(dst, uint64(n)+1)
}

// decodeExtent decodes an item stored for key. It returns errOtherKey when the item holds
// another key's extent and errCorruptExtent when it is not an extent whole; either is a
// miss. The extent shares no memory with b.
func decodeExtent(b []byte, key string) (*extent, error) {
	if len(b) < len(extentMagic)+4 || string(b[:len(extentMagic)]) != extentMagic {
		return nil, errCorruptExtent
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, errCorruptExtent
	}
	d := decoder{b: body[len(extentMagic):]}
	if k := d.bytes(d.uvarint()); d.err || string(k) != key {
		if d.err {
			return nil, errCorruptExtent
		}
		return nil, errOtherKey
	}
	e := &extent{key: key, from: d.varint(), to: d.varint()}
	n := d.count(3) // flags, label count, float count, histogram count: 3 bytes at least
	if d.err {
		return nil, errCorruptExtent
	}
	e.mat = make(promql.Matrix, n)
	var lb labels.ScratchBuilder
	for i := range e.mat {
		s := &e.mat[i]
		s.DropName = d.byte()&1 != 0
		s.Metric = d.labels(&lb)
		prev := e.from
		if nf := d.count(9); nf > 0 {
			s.Floats = make([]promql.FPoint, nf)
			for j := range s.Floats {
				prev += d.varint()
				s.Floats[j] = promql.FPoint{T: prev, F: d.float()}
			}
		}
		prev = e.from
		if nh := d.count(2); nh > 0 {
			s.Histograms = make([]promql.HPoint, nh)
			for j := range s.Histograms {
				prev += d.varint()
				s.Histograms[j] = promql.HPoint{T: prev, H: d.histogram()}
			}
		}
		if d.err {
			return nil, errCorruptExtent
		}
	}
	if d.err || len(d.b) != 0 {
		return nil, errCorruptExtent
	}
	return e, nil
}

// decoder reads an encoded extent. After the first error (err) every read returns zero.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return math.Float64frombits(v)
}

func (d *decoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// count reads a count of elements of at least minSize bytes each, failing when the bytes
// left cannot hold them.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail()
		return 0
	}
	return int(n)
}

// optCount reads appendLen's length: -1 for nil.
func (d *decoder) optCount(minSize int) int {
	n := d.uvarint()
	if n == 0 {
		return -1
	}
	if n-1 > uint64(len(d.b)/minSize) {
		d.fail()
		return -1
	}
	return int(n - 1)
}

func (d *decoder) fail() {
	d.err = true
	d.b = nil
}

// labels reads a label set: its strings in one allocation, copied by the builder.
func (d *decoder) labels(lb *labels.ScratchBuilder) labels.Labels {
	n := d.count(2)
	if n == 0 || d.err {
		return labels.EmptyLabels()
	}
	// First pass: the extent of the label bytes, to copy them once.
	all := d.b
	for range 2 * n {
		d.bytes(d.uvarint())
	}
	if d.err {
		return labels.EmptyLabels()
	}
	region := string(all[:len(all)-len(d.b)])
	lb.Reset()
	r := decoder{b: all[:len(all)-len(d.b)]}
	off := 0
	next := func() string {
		l := int(r.uvarint())
		off = len(region) - len(r.b)
		r.b = r.b[l:]
		return region[off : off+l]
	}
	for range n {
		name := next()
		lb.Add(name, next())
	}
	return lb.Labels()
}

func (d *decoder) histogram() *histogram.FloatHistogram {
	switch d.byte() {
	case 0:
		return nil
	case 1:
	default:
		d.fail()
		return nil
	}
	h := &histogram.FloatHistogram{CounterResetHint: histogram.CounterResetHint(d.byte())}
	schema := d.varint()
	if schema < math.MinInt32 || schema > math.MaxInt32 {
		d.fail()
		return nil
	}
	h.Schema = int32(schema)
	h.ZeroThreshold, h.ZeroCount, h.Count, h.Sum = d.float(), d.float(), d.float(), d.float()
	for _, spans := range [...]*[]histogram.Span{&h.PositiveSpans, &h.NegativeSpans} {
		n := d.optCount(2)
		if n < 0 {
			continue
		}
		*spans = make([]histogram.Span, n)
		for i := range *spans {
			off, l := d.varint(), d.uvarint()
			if off < math.MinInt32 || off > math.MaxInt32 || l > math.MaxUint32 {
				d.fail()
				return nil
			}
			(*spans)[i] = histogram.Span{Offset: int32(off), Length: uint32(l)}
		}
	}
	for _, fs := range [...]*[]float64{&h.PositiveBuckets, &h.NegativeBuckets, &h.CustomValues} {
		n := d.optCount(8)
		if n < 0 {
			continue
		}
		*fs = make([]float64, n)
		for i := range *fs {
			(*fs)[i] = d.float()
		}
	}
	if d.err {
		return nil
	}
	return h
}
