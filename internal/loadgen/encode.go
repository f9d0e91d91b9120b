package loadgen

import (
	"encoding/binary"
	"math"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
)

// Hand-written protobuf encoders for remote write 1.0 (prometheus.WriteRequest)
// and 2.0 (io.prometheus.write.v2.Request). They append to a caller's buffer
// and allocate nothing in steady state: the constant part of each series (its
// labels in 1.0, its symbol ids in 2.0) is encoded once when the series is
// created, so encoding a sample is mostly a copy. The generated gogo code
// would need a []prompb.TimeSeries rebuilt per request and a Size pass.
//
// Field numbers, from prompb/remote.proto, prompb/types.proto and
// prompb/io/prometheus/write/v2/types.proto:
//
//	v1 WriteRequest  1: repeated TimeSeries
//	   TimeSeries    1: repeated Label  2: repeated Sample
//	   Label         1: name  2: value
//	   Sample        1: double value  2: int64 timestamp
//	v2 Request       4: repeated string symbols  5: repeated TimeSeries
//	   TimeSeries    1: packed uint32 labels_refs  2: repeated Sample  5: Metadata
//	   Sample        1: double value  2: int64 timestamp
//	   Metadata      1: type  3: help_ref

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
)

func tag(field, wire int) byte { return byte(field<<3 | wire) }

// sample is one value waiting in a worker's batch.
type sample struct {
	s     *series
	step  int64
	v     float64
	stale bool // v is a staleness marker; queries never return it, so it is not recorded for verification
}

// appendV1Labels encodes ls as the repeated Label fields of a v1 TimeSeries.
func appendV1Labels(dst []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) {
		n := 1 + uvarintLen(uint64(len(l.Name))) + len(l.Name) + 1 + uvarintLen(uint64(len(l.Value))) + len(l.Value)
		dst = append(dst, tag(1, wireBytes))
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = append(dst, tag(1, wireBytes))
		dst = binary.AppendUvarint(dst, uint64(len(l.Name)))
		dst = append(dst, l.Name...)
		dst = append(dst, tag(2, wireBytes))
		dst = binary.AppendUvarint(dst, uint64(len(l.Value)))
		dst = append(dst, l.Value...)
	})
	return dst
}

// appendSample appends the body of a Sample message (both versions share
// it). A zero value is omitted, as proto3 encoders do.
func appendSample(dst []byte, v float64, ts int64) []byte {
	if bits := math.Float64bits(v); bits != 0 {
		dst = append(dst, tag(1, wireFixed64))
		dst = binary.LittleEndian.AppendUint64(dst, bits)
	}
	dst = append(dst, tag(2, wireVarint))
	return binary.AppendUvarint(dst, uint64(ts))
}

func sampleLen(v float64, ts int64) int {
	n := 1 + uvarintLen(uint64(ts))
	if math.Float64bits(v) != 0 {
		n += 1 + 8
	}
	return n
}

// encodeV1 appends a WriteRequest with one TimeSeries per sample, as
// Prometheus' own sender does.
func encodeV1(dst []byte, batch []sample, intervalMs int64) []byte {
	for i := range batch {
		p := &batch[i]
		ts := p.step * intervalMs
		sl := sampleLen(p.v, ts)
		n := len(p.s.v1Labels) + 1 + uvarintLen(uint64(sl)) + sl
		dst = append(dst, tag(1, wireBytes))
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = append(dst, p.s.v1Labels...)
		dst = append(dst, tag(2, wireBytes), byte(sl)) // sl < 128
		dst = appendSample(dst, p.v, ts)
	}
	return dst
}

// symbolTable interns the strings of one worker's series, so a series keeps
// its labels as small integer ids. Id 0 is the empty string, as in a v2
// request. Not safe for concurrent use: each worker has its own.
type symbolTable struct {
	ids  map[string]uint32
	strs []string
}

func newSymbolTable() *symbolTable {
	return &symbolTable{ids: map[string]uint32{"": 0}, strs: []string{""}}
}

func (t *symbolTable) intern(s string) uint32 {
	if id, ok := t.ids[s]; ok {
		return id
	}
	id := uint32(len(t.strs))
	t.ids[s] = id
	t.strs = append(t.strs, s)
	return id
}

// v2Encoder builds a v2 request's symbols table on the fly: worker-wide ids
// are mapped to request-local refs through a dense slice (no hashing per
// label), which is reset by walking the ids the request used.
type v2Encoder struct {
	syms   *symbolTable
	local  []uint32 // worker id → request ref+1; 0 means not yet in this request
	order  []uint32 // worker ids in request-ref order; order[0] is ""
	series []byte   // encoded TimeSeries fields, appended after the symbols
	refs   []uint32
}

func (e *v2Encoder) ref(id uint32) uint32 {
	if r := e.local[id]; r != 0 {
		return r - 1
	}
	r := uint32(len(e.order))
	e.order = append(e.order, id)
	e.local[id] = r + 1
	return r
}

// encode appends a v2 Request: the symbols, then one TimeSeries per sample
// with its metadata (type and help), as Prometheus' 2.0 sender does.
// Symbols go first so a streaming decoder can resolve refs in one pass.
func (e *v2Encoder) encode(dst []byte, batch []sample, intervalMs int64) []byte {
	if n := len(e.syms.strs); len(e.local) < n {
		e.local = append(e.local, make([]uint32, n-len(e.local))...)
	}
	e.series = e.series[:0]
	e.order = append(e.order[:0], 0)
	e.local[0] = 1
	for i := range batch {
		p := &batch[i]
		refs, refsLen := e.refs[:0], 0
		for _, id := range p.s.v2Refs {
			r := e.ref(id)
			refs = append(refs, r)
			refsLen += uvarintLen(uint64(r))
		}
		e.refs = refs
		help := e.ref(p.s.v2Help)
		metaLen := 2 + 1 + uvarintLen(uint64(help))
		ts := p.step * intervalMs
		sl := sampleLen(p.v, ts)
		n := 1 + uvarintLen(uint64(refsLen)) + refsLen + 2 + sl + 2 + metaLen

		b := append(e.series, tag(5, wireBytes))
		b = binary.AppendUvarint(b, uint64(n))
		b = append(b, tag(1, wireBytes))
		b = binary.AppendUvarint(b, uint64(refsLen))
		for _, r := range refs {
			b = binary.AppendUvarint(b, uint64(r))
		}
		b = append(b, tag(2, wireBytes), byte(sl))
		b = appendSample(b, p.v, ts)
		b = append(b, tag(5, wireBytes), byte(metaLen), tag(1, wireVarint), byte(p.s.v2Type), tag(3, wireVarint))
		e.series = binary.AppendUvarint(b, uint64(help))
	}
	for _, id := range e.order {
		s := e.syms.strs[id]
		dst = append(dst, tag(4, wireBytes))
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
		e.local[id] = 0
	}
	return append(dst, e.series...)
}

// compress snappy-encodes src (block format, as remote write requires) into
// dst's storage, growing it only when too small.
func compress(dst, src []byte) []byte {
	n := snappy.MaxEncodedLen(len(src))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	return snappy.Encode(dst[:n], src)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
