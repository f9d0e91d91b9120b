package remotewrite

import (
	"encoding/binary"
	"math"
)

// Protobuf wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// Negative positions returned by uvarint on failure.
const (
	varintEOF      = -1
	varintOverflow = -2
)

// Every decoding helper below works on b, the bytes up to the end of the
// enclosing message, and an absolute position i in it: nested messages are
// decoded from b[:end] starting at their first byte, so offsets in errors
// are offsets in the whole body and aliases need no rebasing.
//
// None of these helpers fits Go's inlining budget, so the hottest loops
// (v1 labels, samples, v2 label references and metadata) repeat their fast
// paths by hand.
//
// Acceptance matches the gogo-generated Unmarshal that Prometheus uses (at
// most ten varint bytes with bits past 64 dropped, tag field numbers
// truncated to int32, groups skipped with depth counting), so the
// differential fuzz tests can demand equal results.

// uvarint decodes the varint at b[i]. It returns the value and the position
// after it, or a negative position (varintEOF, varintOverflow).
func uvarint(b []byte, i int) (uint64, int) {
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1
	}
	return uvarintSlow(b, i)
}

func uvarintSlow(b []byte, i int) (uint64, int) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= len(b) {
			return 0, varintEOF
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, varintOverflow
}

func varintErr(code, off int) error {
	if code == varintOverflow {
		return malformed(off, errVarintOverflow, "")
	}
	return malformed(off, errUnexpectedEOF, "")
}

// readTag reads a field tag at b[i] and returns the field number, wire type
// and the position after the tag. The fast path covers valid one-byte tags:
// every field of the remote write messages.
func readTag(b []byte, i int) (int32, int, int, error) {
	if i < len(b) {
		if c := b[i]; c < 0x80 && c >= 1<<3 && c&7 != wireEndGroup {
			return int32(c >> 3), int(c & 7), i + 1, nil
		}
	}
	return readTagSlow(b, i)
}

func readTagSlow(b []byte, i int) (int32, int, int, error) {
	v, j := uvarint(b, i)
	if j < 0 {
		return 0, 0, 0, varintErr(j, i)
	}
	wt := int(v & 7)
	num := int32(v >> 3)
	if wt == wireEndGroup {
		return 0, 0, 0, malformed(i, nil, "end group tag outside a group")
	}
	if num <= 0 {
		return 0, 0, 0, malformed(i, nil, "illegal field number %d", num)
	}
	return num, wt, j, nil
}

// readVarint reads a varint field value; wt is the field's wire type.
func readVarint(b []byte, i, wt int, field string) (uint64, int, error) {
	if wt != wireVarint {
		return 0, 0, wrongWireType(i, wt, field)
	}
	v, j := uvarint(b, i)
	if j < 0 {
		return 0, 0, varintErr(j, i)
	}
	return v, j, nil
}

// readDouble reads a double (fixed64) field value.
func readDouble(b []byte, i, wt int, field string) (float64, int, error) {
	if wt != wireFixed64 {
		return 0, 0, wrongWireType(i, wt, field)
	}
	if len(b)-i < 8 {
		return 0, 0, malformed(i, errUnexpectedEOF, "")
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b[i:])), i + 8, nil
}

// readLen reads a length-delimited field's length and returns the start and
// end of its payload.
func readLen(b []byte, i, wt int, field string) (int, int, error) {
	// Fast path: a one-byte length that fits.
	if wt == wireBytes && i < len(b) {
		if n := int(b[i]); n < 0x80 && n < len(b)-i {
			return i + 1, i + 1 + n, nil
		}
	}
	return readLenSlow(b, i, wt, field)
}

func readLenSlow(b []byte, i, wt int, field string) (int, int, error) {
	if wt != wireBytes {
		return 0, 0, wrongWireType(i, wt, field)
	}
	return readLenValue(b, i)
}

func readLenValue(b []byte, i int) (int, int, error) {
	v, s := uvarint(b, i)
	if s < 0 {
		return 0, 0, varintErr(s, i)
	}
	n := int(v)
	if n < 0 {
		return 0, 0, malformed(i, errInvalidLength, "length %d", v)
	}
	if n > len(b)-s {
		return 0, 0, malformed(i, errUnexpectedEOF, "length %d exceeds the %d bytes left", n, len(b)-s)
	}
	return s, s + n, nil
}

func wrongWireType(off, wt int, field string) error {
	return malformed(off, nil, "wrong wire type %d for field %s", wt, field)
}

// skipField skips the value of an unknown field whose tag (wire type wt)
// ended at i, including whole groups, and returns the position after it.
func skipField(b []byte, i, wt int) (int, error) {
	start := i
	depth := 0
	for {
		switch wt {
		case wireVarint:
			_, j := uvarint(b, i)
			if j < 0 {
				return 0, varintErr(j, i)
			}
			i = j
		case wireFixed64:
			i += 8
		case wireBytes:
			v, j := uvarint(b, i)
			if j < 0 {
				return 0, varintErr(j, i)
			}
			n := int(v)
			if n < 0 || j+n < j {
				return 0, malformed(i, errInvalidLength, "length %d", v)
			}
			i = j + n
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return 0, malformed(i, nil, "unexpected end group")
			}
			depth--
		case wireFixed32:
			i += 4
		default:
			return 0, malformed(i, nil, "illegal wire type %d", wt)
		}
		if depth == 0 {
			if i > len(b) {
				return 0, malformed(start, errUnexpectedEOF, "unknown field runs past the end")
			}
			return i, nil
		}
		if i >= len(b) {
			return 0, malformed(start, errUnexpectedEOF, "unterminated group")
		}
		v, j := uvarint(b, i)
		if j < 0 {
			return 0, varintErr(j, i)
		}
		wt = int(v & 7)
		i = j
	}
}

// packedVarints calls add for every varint of a repeated varint field,
// packed (wire type 2) or not (wire type 0), and returns the position after
// the field. Hot fields have hand-written loops; this serves the rest.
func packedVarints(b []byte, i, wt int, field string, add func(v uint64, off int) error) (int, error) {
	switch wt {
	case wireVarint:
		v, j := uvarint(b, i)
		if j < 0 {
			return 0, varintErr(j, i)
		}
		return j, add(v, i)
	case wireBytes:
		s, e, err := readLenValue(b, i)
		if err != nil {
			return 0, err
		}
		p := b[:e]
		for j := s; j < e; {
			v, k := uvarint(p, j)
			if k < 0 {
				if k == varintEOF {
					return 0, malformed(j, errPackedOverrun, "field %s", field)
				}
				return 0, varintErr(k, j)
			}
			if err := add(v, j); err != nil {
				return 0, err
			}
			j = k
		}
		return e, nil
	default:
		return 0, wrongWireType(i, wt, field)
	}
}

// appendDoubles appends the values of a repeated double field, packed or
// not, and returns the position after the field.
func appendDoubles(dst []float64, b []byte, i, wt int, field string) ([]float64, int, error) {
	switch wt {
	case wireFixed64:
		if len(b)-i < 8 {
			return dst, 0, malformed(i, errUnexpectedEOF, "")
		}
		return append(dst, math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))), i + 8, nil
	case wireBytes:
		s, e, err := readLenValue(b, i)
		if err != nil {
			return dst, 0, err
		}
		if (e-s)%8 != 0 {
			return dst, 0, malformed(s, errPackedOverrun, "field %s: %d bytes is not a whole number of doubles", field, e-s)
		}
		for j := s; j < e; j += 8 {
			dst = append(dst, math.Float64frombits(binary.LittleEndian.Uint64(b[j:])))
		}
		return dst, e, nil
	default:
		return dst, 0, wrongWireType(i, wt, field)
	}
}

func zigzag64(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

func zigzag32(v uint64) int32 {
	u := uint32(v)
	return int32(u>>1) ^ -int32(u&1)
}
