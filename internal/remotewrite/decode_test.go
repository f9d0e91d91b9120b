package remotewrite

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// checkV1 decodes data with prompb and with r and fails unless both agree.
// It returns our error.
func checkV1(t *testing.T, r *Request, data []byte) error {
	t.Helper()
	var theirs prompb.WriteRequest
	errTheirs := theirs.Unmarshal(data)
	errOurs := r.Unmarshal(V1, data)
	switch {
	case errTheirs == nil && errOurs == nil:
		if d := diffReq(normOurs(r), normV1(&theirs)); d != "" {
			t.Fatalf("decoded request differs from prompb's: %s", d)
		}
		if r.Version != V1 {
			t.Fatalf("version %v, want V1", r.Version)
		}
	case errTheirs != nil && errOurs == nil:
		t.Fatalf("prompb rejects (%v) but we accept", errTheirs)
	case errTheirs == nil && errOurs != nil:
		if !errors.Is(errOurs, errPackedOverrun) {
			t.Fatalf("prompb accepts but we reject: %v", errOurs)
		}
	}
	if errOurs != nil {
		assertMalformed(t, errOurs)
	}
	return errOurs
}

// checkV2 is checkV1 for v2; prompb's own reference checks (ToLabels,
// ToMetadata) stand in for our decode-time ones.
func checkV2(t *testing.T, r *Request, data []byte) error {
	t.Helper()
	var theirs writev2.Request
	errTheirs := theirs.Unmarshal(data)
	errOurs := r.Unmarshal(V2, data)
	var want nReq
	refsOK := true
	if errTheirs == nil {
		want, refsOK = normV2(&theirs)
	}
	switch {
	case errTheirs == nil && refsOK && errOurs == nil:
		if d := diffReq(normOurs(r), want); d != "" {
			t.Fatalf("decoded request differs from prompb's: %s", d)
		}
	case errTheirs != nil && errOurs == nil:
		t.Fatalf("prompb rejects (%v) but we accept", errTheirs)
	case errTheirs == nil && !refsOK && errOurs == nil:
		t.Fatalf("prompb finds bad symbol references but we accept")
	case errTheirs == nil && refsOK && errOurs != nil:
		if !errors.Is(errOurs, errPackedOverrun) {
			t.Fatalf("prompb accepts but we reject: %v", errOurs)
		}
	case errTheirs == nil && !refsOK && errOurs != nil:
		if !errors.Is(errOurs, ErrInvalidSymbolRef) && !errors.Is(errOurs, errPackedOverrun) {
			t.Fatalf("want a symbol reference error, got %v", errOurs)
		}
	}
	if errOurs != nil {
		assertMalformed(t, errOurs)
	}
	return errOurs
}

// assertMalformed checks the shape of a decoding error and that it left the
// request empty.
func assertMalformed(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformedRequest) && !errors.Is(err, ErrInvalidSymbolRef) {
		t.Fatalf("error %v wraps neither ErrMalformedRequest nor ErrInvalidSymbolRef", err)
	}
	if !strings.Contains(err.Error(), "at offset ") {
		t.Fatalf("error %q does not say where", err)
	}
}

func TestRoundTripV1(t *testing.T) {
	var r Request // Reused on purpose: decoding must not depend on a fresh Request.
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		req := randWriteRequestV1(rng, rng.IntN(20))
		data := mustMarshal(t, req)
		if err := checkV1(t, &r, data); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		// And what we decoded is what was sent, not just what prompb reads.
		if d := diffReq(normOurs(&r), normV1(req)); d != "" {
			t.Fatalf("seed %d: %s", seed, d)
		}
		if s, h, e := r.Counts(); s != countV1(req, 0) || h != countV1(req, 1) || e != countV1(req, 2) {
			t.Fatalf("seed %d: Counts() = %d, %d, %d", seed, s, h, e)
		}
	}
}

func countV1(req *prompb.WriteRequest, what int) int {
	n := 0
	for _, ts := range req.Timeseries {
		n += [3]int{len(ts.Samples), len(ts.Histograms), len(ts.Exemplars)}[what]
	}
	return n
}

func TestRoundTripV2(t *testing.T) {
	var r Request
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 2))
		req := randWriteRequestV2(rng, rng.IntN(20))
		data := mustMarshal(t, req)
		if err := checkV2(t, &r, data); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		want, ok := normV2(req)
		if !ok {
			t.Fatalf("seed %d: generator made bad references", seed)
		}
		if d := diffReq(normOurs(&r), want); d != "" {
			t.Fatalf("seed %d: %s", seed, d)
		}
		// Prometheus' queue manager sends OptimizedMarshal's encoding.
		opt, err := req.OptimizedMarshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkV2(t, &r, opt); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if d := diffReq(normOurs(&r), want); d != "" {
			t.Fatalf("seed %d, OptimizedMarshal: %s", seed, d)
		}
		if r.Version != V2 {
			t.Fatalf("version %v, want V2", r.Version)
		}
	}
}

// Symbols may come after the series that use them; gogo accepts that and so
// must we.
func TestV2SymbolsAfterSeries(t *testing.T) {
	ts := pbuf{}.bytes(1, []byte{1, 2, 3, 4}).bytes(2, pbuf{}.double(1, 42).varint(2, 7)).bytes(5, pbuf{}.varint(3, 5).varint(4, 6))
	data := pbuf{}.bytes(5, ts).str(4, "").str(4, "__name__").str(4, "up").str(4, "job").str(4, "api").str(4, "help").str(4, "unit")
	var r Request
	if err := checkV2(t, &r, data); err != nil {
		t.Fatal(err)
	}
	s := r.Series[0]
	if got := normLabels(s.AppendLabels(nil)); !reflect.DeepEqual(got, []nLabel{{"__name__", "up"}, {"job", "api"}}) {
		t.Fatalf("labels %v", got)
	}
	if md := s.Metadata(); string(md.Help) != "help" || string(md.Unit) != "unit" {
		t.Fatalf("metadata %+v", md)
	}
}

// DropMetadata removes a series' metadata and nothing else.
func TestDropMetadata(t *testing.T) {
	ts := pbuf{}.bytes(1, []byte{1, 2, 3, 4}).bytes(2, pbuf{}.double(1, 42).varint(2, 7)).bytes(5, pbuf{}.varint(1, 1).varint(3, 5).varint(4, 6))
	data := pbuf{}.str(4, "").str(4, "__name__").str(4, "up").str(4, "job").str(4, "api").str(4, "help").str(4, "unit").bytes(5, ts)
	var r Request
	if err := r.Unmarshal(V2, data); err != nil {
		t.Fatal(err)
	}
	s := &r.Series[0]
	if md := s.Metadata(); md.Type != MetricTypeCounter || string(md.Help) != "help" {
		t.Fatalf("metadata before %+v", md)
	}
	key := string(s.AppendKey(nil))
	s.DropMetadata()
	if md := s.Metadata(); md.Type != MetricTypeUnknown || md.Help != nil || md.Unit != nil || md.MetricFamilyName != nil {
		t.Fatalf("metadata after DropMetadata %+v", md)
	}
	if got := normLabels(s.AppendLabels(nil)); !reflect.DeepEqual(got, []nLabel{{"__name__", "up"}, {"job", "api"}}) || string(s.AppendKey(nil)) != key {
		t.Fatalf("labels changed: %v", got)
	}
	if len(s.Samples) != 1 || s.Samples[0].Value != 42 || s.Samples[0].Timestamp != 7 {
		t.Fatalf("samples changed: %v", s.Samples)
	}
	// Reusing the request starts from the sent metadata again.
	if err := r.Unmarshal(V2, data); err != nil {
		t.Fatal(err)
	}
	if md := r.Series[0].Metadata(); string(md.Help) != "help" {
		t.Fatalf("metadata after reuse %+v", md)
	}
}

// Hand-made encodings prompb's Marshal never produces but a decoder must
// read the same way: unpacked repeated scalars, repeated singular fields
// (last wins), merged sub-messages, oneof switches, unknown fields of every
// wire type including groups, and interleaved fields.
func TestUnusualEncodings(t *testing.T) {
	unknowns := pbuf{}.varint(99, 1).double(98, 1).str(97, "x").tag(96, wireStartGroup).varint(1, 5).tag(2, wireStartGroup).tag(2, wireEndGroup).tag(96, wireEndGroup).raw(0xad, 0x06, 1, 2, 3, 4) // field 101, fixed32
	v1 := map[string][]byte{
		"unknown fields everywhere": pbuf{}.raw(unknowns...).bytes(1, pbuf{}.raw(unknowns...).
			bytes(1, append(label("a", "b"), unknowns...)).
			bytes(2, pbuf{}.raw(unknowns...).double(1, 1).varint(2, 2))).
			bytes(3, pbuf{}.varint(1, 2).raw(unknowns...).str(2, "fam")),
		"repeated singular fields, last wins": pbuf{}.bytes(1, pbuf{}.
			bytes(1, pbuf{}.str(1, "first").str(1, "name").str(2, "v1").str(2, "value")).
			bytes(2, pbuf{}.double(1, 1).double(1, 2).varint(2, 5).varint(2, 6))),
		"labels interleaved with samples": pbuf{}.bytes(1, pbuf{}.
			bytes(1, label("a", "1")).bytes(2, pbuf{}.double(1, 1)).bytes(1, label("b", "2")).bytes(2, pbuf{}.double(1, 2))),
		"histogram unpacked, interleaved, oneof switching": pbuf{}.bytes(1, pbuf{}.bytes(4, pbuf{}.
			varint(1, 10).double(2, 2.5).varint(1, 11). // count: int wins
			double(7, 1.5).varint(6, 3).                // zero count: int wins
			bytes(11, pbuf{}.varint(1, 3).varint(2, 2)).bytes(8, pbuf{}.varint(1, 1).varint(2, 1)).bytes(11, pbuf{}.varint(1, 4).varint(2, 1)).
			varint(12, 2).varint(9, 5).bytes(12, pbuf{}.raw(4, 3)).            // deltas: unpacked then packed
			double(13, 1).bytes(13, pbuf{}.raw(0, 0, 0, 0, 0, 0, 0xf0, 0x3f)). // counts: both forms
			double(16, 0.5).varint(17, 99).                                    // field 17 is unknown in v1
			varint(4, 7).varint(14, 3).varint(15, 1000)).
			bytes(4, pbuf{}.varint(6, 3).double(7, 1.5).varint(1, 4).double(2, 0.25))), // Both oneofs end as floats.
		"negative int32 enums and huge varints": pbuf{}.bytes(3, pbuf{}.varint(1, math.MaxUint64)).
			bytes(1, pbuf{}.bytes(4, pbuf{}.varint(14, 1<<40|2).varint(4, 1<<33|3))),
		"empty messages":                                  pbuf{}.bytes(1, nil).bytes(1, pbuf{}.bytes(1, nil).bytes(2, nil).bytes(3, nil).bytes(4, nil)).bytes(3, nil),
		"ten-byte varint with high bits dropped":          pbuf{}.bytes(1, pbuf{}.bytes(2, pbuf{}.tag(2, 0).raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))),
		"tag with a long field number truncated to int32": pbuf{}.raw(binary64(uint64(1)<<35 | 1<<3 | wireBytes)...).raw(0),
	}
	var r Request
	for name, data := range v1 {
		t.Run("v1/"+name, func(t *testing.T) {
			if err := checkV1(t, &r, data); err != nil {
				t.Fatal(err)
			}
		})
	}
	syms := pbuf{}.str(4, "").str(4, "a").str(4, "b")
	v2 := map[string][]byte{
		"unpacked refs split over fields": pbuf{}.raw(syms...).bytes(5, pbuf{}.varint(1, 1).bytes(1, []byte{2, 1}).varint(1, 2)),
		"refs split around other fields": pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(1, []byte{1}).bytes(2, pbuf{}.double(1, 1)).bytes(1, nil).
			varint(99, 7).bytes(1, []byte{2, 2}).bytes(5, pbuf{}.varint(3, 1)).varint(1, 1)),
		"empty packed refs":          pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(1, nil).bytes(2, pbuf{}.double(1, 1))),
		"metadata merged":            pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(5, pbuf{}.varint(1, 2).varint(3, 1)).bytes(5, pbuf{}.varint(4, 2))),
		"unknown fields":             pbuf{}.raw(unknowns...).raw(syms...).bytes(5, pbuf{}.raw(unknowns...).bytes(2, pbuf{}.raw(unknowns...).varint(3, 9)).bytes(5, unknowns)),
		"refs truncated to uint32":   pbuf{}.raw(syms...).bytes(5, pbuf{}.varint(1, 1<<32|1).varint(1, 1<<33|2)),
		"reserved v1 fields ignored": pbuf{}.raw(syms...).bytes(1, pbuf{}.bytes(1, label("a", "b"))),
		"exemplar and histogram":     pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(4, pbuf{}.varint(1, 1).varint(1, 2).double(2, 3).varint(3, 4)).bytes(3, pbuf{}.double(2, 1).varint(17, 5).double(16, 1))),
	}
	for name, data := range v2 {
		t.Run("v2/"+name, func(t *testing.T) {
			if err := checkV2(t, &r, data); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func binary64(v uint64) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name string
		v    Version
		data []byte
		want string // Substring of the error.
	}{
		{"field number zero", V1, []byte{0x02, 0x00}, "illegal field number 0"},
		{"end group at top level", V1, pbuf{}.tag(5, wireEndGroup), "end group tag outside a group"},
		{"wire type 6", V1, pbuf{}.tag(1, 6), "wrong wire type 6 for field timeseries"},
		{"unknown field wire type 7", V1, pbuf{}.tag(9, 7), "illegal wire type 7"},
		{"timeseries as varint", V1, pbuf{}.varint(1, 1), "wrong wire type 0 for field timeseries"},
		{"label as fixed64", V1, pbuf{}.bytes(1, pbuf{}.double(1, 1)), "timeseries[0]: wrong wire type 1 for field labels"},
		{"label name as varint", V1, pbuf{}.bytes(1, pbuf{}.bytes(1, pbuf{}.varint(1, 1))), "timeseries[0].labels[0]: wrong wire type 0 for field name"},
		{"sample value as varint", V1, pbuf{}.bytes(1, pbuf{}.bytes(2, pbuf{}.varint(1, 1))), "samples[0]: wrong wire type 0 for field value"},
		{"sample timestamp as fixed64", V1, pbuf{}.bytes(1, pbuf{}.bytes(2, pbuf{}.double(2, 1))), "wrong wire type 1 for field timestamp"},
		{"histogram span as varint", V1, pbuf{}.bytes(1, pbuf{}.bytes(4, pbuf{}.varint(11, 1))), "histograms[0]: wrong wire type 0 for field positive_spans"},
		{"histogram deltas as fixed64", V1, pbuf{}.bytes(1, pbuf{}.bytes(4, pbuf{}.double(12, 1))), "wrong wire type 1 for field positive_deltas"},
		{"histogram counts as varint", V1, pbuf{}.bytes(1, pbuf{}.bytes(4, pbuf{}.varint(13, 1))), "wrong wire type 0 for field positive_counts"},
		{"metadata type as bytes", V1, pbuf{}.bytes(3, pbuf{}.str(1, "x")), "metadata[0]: wrong wire type 2 for field type"},
		{"varint overflow", V1, pbuf{}.bytes(1, pbuf{}.bytes(2, pbuf{}.tag(2, 0).raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))), "varint overflows 64 bits"},
		{"length past end", V1, []byte{0x0a, 0x05, 0x00}, "length 5 exceeds the 1 bytes left"},
		{"negative length", V1, pbuf{}.tag(1, wireBytes).raw(binary64(math.MaxUint64)...), "invalid length"},
		{"truncated double", V1, pbuf{}.bytes(1, pbuf{}.bytes(2, []byte{0x09, 1, 2, 3})), "unexpected end of data"},
		{"double one byte short", V1, pbuf{}.bytes(1, pbuf{}.bytes(2, []byte{0x09, 1, 2, 3, 4, 5, 6, 7})), "samples[0]: unexpected end of data at offset 5"},
		{"v2 double one byte short", V2, pbuf{}.str(4, "").bytes(5, pbuf{}.bytes(2, []byte{0x09, 1, 2, 3, 4, 5, 6, 7})), "samples[0]: unexpected end of data"},
		{"truncated timestamp", V1, pbuf{}.bytes(1, pbuf{}.bytes(2, []byte{0x10, 0x80})), "samples[0]: unexpected end of data at offset 5"},
		{"truncated label", V1, pbuf{}.bytes(1, pbuf{}.bytes(1, []byte{0x0a, 0x05, 'a', 0x12, 0x01, 'b'})), "labels[0]: length 5 exceeds the 4 bytes left"},
		{"truncated metadata ref", V2, pbuf{}.str(4, "").bytes(5, pbuf{}.bytes(5, []byte{0x18})), "timeseries[0].metadata: unexpected end of data"},
		{"unterminated group", V1, pbuf{}.tag(9, wireStartGroup).varint(1, 1), "unterminated group"},
		{"unknown fixed64 past end", V1, pbuf{}.tag(9, wireFixed64).raw(1, 2), "unknown field runs past the end"},
		{"v2 symbols as varint", V2, pbuf{}.varint(4, 1), "wrong wire type 0 for field symbols"},
		{"v2 refs as fixed64", V2, pbuf{}.str(4, "").bytes(5, pbuf{}.double(1, 1)), "wrong wire type 1 for field labels_refs"},
		{"v2 metadata as varint", V2, pbuf{}.str(4, "").bytes(5, pbuf{}.varint(5, 1)), "wrong wire type 0 for field metadata"},
		{"v2 metadata help_ref as fixed64", V2, pbuf{}.str(4, "").bytes(5, pbuf{}.bytes(5, pbuf{}.double(3, 1))), "timeseries[0].metadata: wrong wire type 1 for field help_ref"},
		{"v2 start_timestamp as fixed64", V2, pbuf{}.str(4, "").bytes(5, pbuf{}.bytes(2, pbuf{}.double(3, 1))), "wrong wire type 1 for field start_timestamp"},
		{"v2 histogram start_timestamp as bytes", V2, pbuf{}.str(4, "").bytes(5, pbuf{}.bytes(3, pbuf{}.str(17, ""))), "wrong wire type 2 for field start_timestamp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			var err error
			if tc.v == V1 {
				err = checkV1(t, &r, tc.data)
			} else {
				err = checkV2(t, &r, tc.data)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("%v does not wrap ErrMalformedRequest", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if len(r.Series) != 0 || r.Version != 0 {
				t.Fatal("failed decode left data in the request")
			}
		})
	}
}

// Packed fields whose elements overrun the field: gogo reads on into the
// following bytes and may accept; we reject (the one intended difference in
// what is accepted, besides symbol references).
func TestPackedOverrun(t *testing.T) {
	tests := map[string][]byte{
		"varint straddles the end":    pbuf{}.bytes(1, pbuf{}.bytes(4, pbuf{}.bytes(12, []byte{0x80}).raw(0x01).varint(15, 1))),
		"doubles not a multiple of 8": pbuf{}.bytes(1, pbuf{}.bytes(4, pbuf{}.bytes(13, []byte{1, 2, 3}).raw(4, 5, 6, 7, 8))),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			var theirs prompb.WriteRequest
			if err := theirs.Unmarshal(data); err != nil {
				t.Fatalf("test input no longer shows the difference: prompb rejects it: %v", err)
			}
			var r Request
			err := r.Unmarshal(V1, data)
			if !errors.Is(err, errPackedOverrun) || !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("got %v, want a packed overrun", err)
			}
		})
	}
	var r Request
	err := r.Unmarshal(V2, pbuf{}.str(4, "").bytes(5, pbuf{}.bytes(1, []byte{0x80}).varint(3, 0)))
	if !errors.Is(err, errPackedOverrun) {
		t.Fatalf("labels_refs: got %v, want a packed overrun", err)
	}
}

func TestV2BadReferences(t *testing.T) {
	syms := pbuf{}.str(4, "").str(4, "a").str(4, "b")
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"label ref out of range", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(1, []byte{1, 3})), "timeseries[0].labels_refs: label reference 3 outside the symbols table (size 3)"},
		{"unpacked label ref out of range", pbuf{}.raw(syms...).bytes(5, pbuf{}.varint(1, 1).varint(1, 1000)), "label reference 1000 outside"},
		{"odd label refs", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(1, []byte{1, 2, 1})), "timeseries[0].labels_refs: odd number of label references"},
		{"exemplar ref out of range", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(4, pbuf{}.bytes(1, []byte{1, 9}))), "timeseries[0].exemplars[0]: label reference 9 outside"},
		{"odd exemplar refs", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(4, pbuf{}.varint(1, 1))), "exemplars[0]: odd number of label references"},
		{"help_ref out of range", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(5, pbuf{}.varint(3, 3))), "timeseries[0].metadata: help_ref 3 outside"},
		{"unit_ref out of range", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(5, pbuf{}.varint(4, 1<<32+7))), "unit_ref 7 outside"},
		{"help_ref one past the end", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(5, pbuf{}.varint(3, 3).varint(4, 2))), "help_ref 3 outside"},
		{"unit_ref one past the end", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(5, pbuf{}.varint(3, 2).varint(4, 3))), "unit_ref 3 outside"},
		{"label ref one past the end", pbuf{}.raw(syms...).bytes(5, pbuf{}.varint(1, 2).varint(1, 3)), "label reference 3 outside"},
		{"exemplar ref one past the end", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(4, pbuf{}.varint(1, 3).varint(1, 0))), "label reference 3 outside"},
		{"no symbols at all", pbuf{}.bytes(5, nil), "help_ref 0 outside the symbols table (size 0)"},
		{"second series bad", pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(1, []byte{1, 2})).bytes(5, pbuf{}.bytes(1, []byte{1, 5})), "timeseries[1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := checkV2(t, &r, tc.data)
			if !errors.Is(err, ErrInvalidSymbolRef) {
				t.Fatalf("got %v, want ErrInvalidSymbolRef", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// Every prefix of a valid request is either a valid request (cut at a field
// boundary), and then decodes like prompb decodes it, or an error; never a
// panic.
func TestTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, v := range []Version{V1, V2} {
		var data []byte
		if v == V1 {
			data = mustMarshal(t, randWriteRequestV1(rng, 6))
		} else {
			data = mustMarshal(t, randWriteRequestV2(rng, 6))
		}
		var r Request
		rejected := 0
		for n := range len(data) {
			var err error
			if v == V1 {
				err = checkV1(t, &r, data[:n])
			} else {
				err = checkV2(t, &r, data[:n])
			}
			if err != nil {
				rejected++
			}
		}
		// Only cuts between top-level fields are valid.
		if rejected < len(data)*9/10 {
			t.Fatalf("%v: only %d of %d prefixes rejected", v, rejected, len(data))
		}
	}
}

// Flipping any single byte must not panic and must agree with prompb.
func TestCorrupted(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	v1 := mustMarshal(t, randWriteRequestV1(rng, 3))
	v2 := mustMarshal(t, randWriteRequestV2(rng, 3))
	var r Request
	for _, x := range []byte{0x00, 0xff, 0x80, 0x07, 0x0a} {
		for i := range v1 {
			c := bytes.Clone(v1)
			c[i] = x
			checkV1(t, &r, c)
		}
		for i := range v2 {
			c := bytes.Clone(v2)
			c[i] = x
			checkV2(t, &r, c)
		}
	}
}

func TestHistogramConversion(t *testing.T) {
	var r Request
	for seed := range 300 {
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		for _, v := range []Version{V1, V2} {
			var data []byte
			var wantInt []*histogram.Histogram
			var wantFloat []*histogram.FloatHistogram
			if v == V1 {
				h := randHistogramV1(rng)
				data = mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Histograms: []prompb.Histogram{h}}}})
				wantInt, wantFloat = append(wantInt, h.ToIntHistogram()), append(wantFloat, h.ToFloatHistogram())
			} else {
				h := randHistogramV2(rng)
				data = mustMarshal(t, &writev2.Request{Symbols: []string{""}, Timeseries: []writev2.TimeSeries{{Histograms: []writev2.Histogram{h}}}})
				wantInt, wantFloat = append(wantInt, h.ToIntHistogram()), append(wantFloat, h.ToFloatHistogram())
			}
			if err := r.Unmarshal(v, data); err != nil {
				t.Fatal(err)
			}
			h := &r.Series[0].Histograms[0]
			gotInt, gotFloat := h.ToIntHistogram(), h.ToFloatHistogram()
			if (gotInt == nil) != (wantInt[0] == nil) {
				t.Fatalf("seed %d %v: ToIntHistogram nil = %v, want %v", seed, v, gotInt == nil, wantInt[0] == nil)
			}
			if gotInt != nil && !reflect.DeepEqual(normIntHist(gotInt), normIntHist(wantInt[0])) {
				t.Fatalf("seed %d %v: ToIntHistogram\n got %+v\nwant %+v", seed, v, gotInt, wantInt[0])
			}
			if !reflect.DeepEqual(normFloatHist(gotFloat), normFloatHist(wantFloat[0])) {
				t.Fatalf("seed %d %v: ToFloatHistogram\n got %+v\nwant %+v", seed, v, gotFloat, wantFloat[0])
			}
			// The conversions copy: scribbling over the request must not
			// show through.
			before := normFloatHist(gotFloat)
			for _, s := range [][]float64{h.PositiveCounts, h.NegativeCounts, h.CustomValues} {
				for i := range s {
					s[i] = 12345
				}
			}
			for _, s := range [][]int64{h.PositiveDeltas, h.NegativeDeltas} {
				for i := range s {
					s[i] = 12345
				}
			}
			for _, s := range [][]histogram.Span{h.PositiveSpans, h.NegativeSpans} {
				for i := range s {
					s[i].Length = 12345
				}
			}
			if !reflect.DeepEqual(normFloatHist(gotFloat), before) {
				t.Fatalf("seed %d: ToFloatHistogram result aliases the request", seed)
			}
		}
	}
}

type nConvHist struct {
	Hint                       histogram.CounterResetHint
	Schema                     int32
	ZeroThreshold, Sum         uint64
	ZeroCount, Count           uint64
	PosSpans, NegSpans         []histogram.Span
	PosInt, NegInt             []int64
	PosFloat, NegFloat, Custom []uint64
}

func normIntHist(h *histogram.Histogram) nConvHist {
	return nConvHist{
		Hint: h.CounterResetHint, Schema: h.Schema, ZeroThreshold: fbits(h.ZeroThreshold), Sum: fbits(h.Sum),
		ZeroCount: h.ZeroCount, Count: h.Count,
		PosSpans: nilIfEmpty(h.PositiveSpans), NegSpans: nilIfEmpty(h.NegativeSpans),
		PosInt: nilIfEmpty(h.PositiveBuckets), NegInt: nilIfEmpty(h.NegativeBuckets), Custom: fbitsAll(h.CustomValues),
	}
}

func normFloatHist(h *histogram.FloatHistogram) nConvHist {
	return nConvHist{
		Hint: h.CounterResetHint, Schema: h.Schema, ZeroThreshold: fbits(h.ZeroThreshold), Sum: fbits(h.Sum),
		ZeroCount: fbits(h.ZeroCount), Count: fbits(h.Count),
		PosSpans: nilIfEmpty(h.PositiveSpans), NegSpans: nilIfEmpty(h.NegativeSpans),
		PosFloat: fbitsAll(h.PositiveBuckets), NegFloat: fbitsAll(h.NegativeBuckets), Custom: fbitsAll(h.CustomValues),
	}
}

func TestToLabels(t *testing.T) {
	data := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "job", Value: "api"}, {Name: "__name__", Value: "up"}, {Name: "a", Value: ""}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: 5}, {Value: 2}}},
		{Labels: []prompb.Label{{Name: "x", Value: "1"}, {Name: "y", Value: "2"}, {Name: "x", Value: "3"}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "t", Value: "1"}, {Name: "t", Value: "2"}}}}},
	}})
	var r Request
	if err := r.Unmarshal(V1, data); err != nil {
		t.Fatal(err)
	}
	b := labels.NewScratchBuilder(0)
	ls, err := r.Series[0].ToLabels(&b)
	if err != nil {
		t.Fatal(err)
	}
	if want := labels.FromStrings("__name__", "up", "a", "", "job", "api"); !labels.Equal(ls, want) {
		t.Fatalf("got %v, want %v", ls, want)
	}
	// Same as Prometheus' own conversion.
	var theirs prompb.WriteRequest
	if err := theirs.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	if want := theirs.Timeseries[0].ToLabels(&b, nil); !labels.Equal(ls, want) {
		t.Fatalf("got %v, prompb gives %v", ls, want)
	}
	ex, err := r.Series[0].Exemplars[0].ToExemplar(&b)
	if err != nil {
		t.Fatal(err)
	}
	if want := theirs.Timeseries[0].Exemplars[0].ToExemplar(&b, nil); !ex.Equals(want) || ex.HasTs != want.HasTs {
		t.Fatalf("exemplar %+v, prompb gives %+v", ex, want)
	}
	ex2, err := r.Series[0].Exemplars[1].ToExemplar(&b)
	if err != nil || ex2.HasTs || !ex2.Labels.IsEmpty() {
		t.Fatalf("exemplar without timestamp and labels: %+v, %v", ex2, err)
	}
	if _, err := r.Series[1].ToLabels(&b); !errors.Is(err, ErrDuplicateLabelName) || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("duplicate labels: got %v", err)
	}
	if _, err := r.Series[1].Exemplars[0].ToExemplar(&b); !errors.Is(err, ErrDuplicateLabelName) {
		t.Fatalf("exemplar with duplicate labels: got %v", err)
	}
	// The result owns its memory.
	for i := range data {
		data[i] = 'X'
	}
	if ls.Get("job") != "api" || ex.Labels.Get("trace_id") != "abc" {
		t.Fatalf("labels alias the request buffer: %v %v", ls, ex.Labels)
	}
}

func TestAppendKey(t *testing.T) {
	lsA := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "empty", Value: ""}, {Name: "job", Value: strings.Repeat("j", 200)}, {Name: "", Value: "nameless"}}
	v1 := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lsA, Samples: []prompb.Sample{{Value: 1}}},
		{Labels: []prompb.Label{{Name: "a", Value: "bc"}}},
		{Labels: []prompb.Label{{Name: "ab", Value: "c"}}},
		{Labels: []prompb.Label{{Name: "a", Value: ""}}},
		{Labels: []prompb.Label{{Name: "a", Value: "bc"}}, Samples: []prompb.Sample{{Value: 2, Timestamp: 3}}},
		{},
	}})
	st := writev2.NewSymbolTable()
	v2 := mustMarshal(t, &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: st.SymbolizeLabels(labelsOf(lsA), nil)},
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("a", "bc"), nil)},
	}, Symbols: st.Symbols()})
	// Labels interleaved with samples, which forces canonical encoding.
	interleaved := pbuf{}.bytes(1, pbuf{}.bytes(1, pbuf{}.str(1, "a").str(2, "bc")).bytes(2, pbuf{}.double(1, 1))).
		bytes(1, pbuf{}.bytes(1, label("__name__", "up")).bytes(2, pbuf{}.double(1, 1)).bytes(1, label("empty", "")).
			bytes(1, label("job", strings.Repeat("j", 200))).varint(99, 1).bytes(1, pbuf{}.str(2, "nameless"))).
		bytes(1, pbuf{}.bytes(1, label("a", "1")).bytes(2, pbuf{}.double(1, 1)).bytes(1, label("b", "2")))
	short := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}}}}})
	// A non-canonical but valid encoding of a="bc": value before name.
	reordered := pbuf{}.bytes(1, pbuf{}.bytes(1, pbuf{}.str(2, "bc").str(1, "a")))

	keys := func(v Version, data []byte) []string {
		var r Request
		if err := r.Unmarshal(v, data); err != nil {
			t.Fatal(err)
		}
		var out []string
		var buf []byte
		for i := range r.Series {
			buf = r.Series[i].AppendKey(buf[:0])
			out = append(out, string(buf))
			// The key decodes back to the series' labels.
			var ts prompb.TimeSeries
			if err := ts.Unmarshal(buf); err != nil {
				t.Fatalf("key %q: %v", buf, err)
			}
			if got, want := normV1Labels(ts.Labels), normLabels(r.Series[i].AppendLabels(nil)); !reflect.DeepEqual(got, want) {
				t.Fatalf("key decodes to %v, labels are %v", got, want)
			}
		}
		return out
	}
	k1, k2 := keys(V1, v1), keys(V2, v2)
	ki, kr, ks := keys(V1, interleaved), keys(V1, reordered), keys(V1, short)

	if k1[0] != k2[0] || k1[1] != k2[1] {
		t.Fatalf("v1 and v2 keys of the same series differ:\n%q\n%q", k1[0], k2[0])
	}
	if k1[1] == k1[2] || k1[1] == k1[3] || k1[2] == k1[3] {
		t.Fatal("different label sets share a key")
	}
	if k1[1] != k1[4] {
		t.Fatal("samples leak into the key")
	}
	if k1[5] != "" {
		t.Fatalf("series without labels has key %q", k1[5])
	}
	if ki[0] != k1[1] || ki[1] != k1[0] || ki[2] != ks[0] {
		t.Fatalf("canonical keys %q differ from Prometheus' encoding %q", ki, k1[:2])
	}
	if kr[0] == k1[1] {
		t.Fatal("reordered encoding expected to give another key (it is the sender's bytes)")
	}
	// Appending keeps what dst held.
	var r Request
	if err := r.Unmarshal(V2, v2); err != nil {
		t.Fatal(err)
	}
	if got := string(r.Series[1].AppendKey([]byte("prefix"))); got != "prefix"+k2[1] {
		t.Fatalf("AppendKey dropped dst: %q", got)
	}
}

func labelsOf(ls []prompb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels() // Unsorted on purpose: the wire order is what counts.
}

// Series slices are capacity-limited, so appending to one cannot overwrite
// the next series.
func TestSeriesSlicesAreIsolated(t *testing.T) {
	data := mustMarshal(t, nodeExporterV1(3))
	var r Request
	if err := r.Unmarshal(V1, data); err != nil {
		t.Fatal(err)
	}
	before := normOurs(&r)
	_ = append(r.Series[0].Samples, Sample{Value: 99})
	if d := diffReq(normOurs(&r), before); d != "" {
		t.Fatal(d)
	}
}

func TestSteadyStateAllocs(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		var data []byte
		if v == V1 {
			data = mustMarshal(t, nodeExporterV1(2000))
		} else {
			data = mustMarshal(t, nodeExporterV2(2000))
		}
		var r Request
		if err := r.Unmarshal(v, data); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if err := r.Unmarshal(v, data); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v: %v allocations per decode in steady state", v, allocs)
		}
	}
}

func TestLabelsIterator(t *testing.T) {
	st := writev2.NewSymbolTable()
	ls := labels.FromStrings("__name__", "up", "instance", "a:9100", "job", "api")
	v2 := mustMarshal(t, &writev2.Request{Timeseries: []writev2.TimeSeries{{LabelsRefs: st.SymbolizeLabels(ls, nil)}}, Symbols: st.Symbols()})
	v1 := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: prompb.FromLabels(ls, nil)}}})
	for _, tc := range []struct {
		v    Version
		data []byte
	}{{V1, v1}, {V2, v2}} {
		var r Request
		if err := r.Unmarshal(tc.v, tc.data); err != nil {
			t.Fatal(err)
		}
		s := &r.Series[0]
		if s.NumLabels() != 3 {
			t.Fatalf("%v: NumLabels() = %d", tc.v, s.NumLabels())
		}
		// Stopping early stops the iterator.
		var names []string
		for name := range s.Labels() {
			names = append(names, string(name))
			if string(name) == "instance" {
				break
			}
		}
		if !reflect.DeepEqual(names, []string{"__name__", "instance"}) {
			t.Fatalf("%v: got %v", tc.v, names)
		}
		var found []byte
		allocs := testing.AllocsPerRun(100, func() {
			for name, value := range s.Labels() {
				if string(name) == "job" {
					found = value
				}
			}
		})
		if allocs != 0 || string(found) != "api" {
			t.Fatalf("%v: %v allocations, found %q", tc.v, allocs, found)
		}
		if got := s.AppendLabels([]Label{{Name: []byte("kept")}}); len(got) != 4 || string(got[0].Name) != "kept" || string(got[3].Value) != "api" {
			t.Fatalf("%v: AppendLabels = %v", tc.v, normLabels(got))
		}
		if md := s.Metadata(); tc.v == V1 && (md.Type != 0 || md.Help != nil || md.Unit != nil) {
			t.Fatalf("v1 series metadata %+v", md)
		}
	}
}

// The package doc promises 128 bytes per series.
func TestSeriesSize(t *testing.T) {
	if size := unsafe.Sizeof(Series{}); size > 128 {
		t.Fatalf("Series is %d bytes", size)
	}
}
