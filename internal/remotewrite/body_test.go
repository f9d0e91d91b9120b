package remotewrite

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

func TestParseContentType(t *testing.T) {
	tests := []struct {
		ct   string
		want Version
		err  string // Substring of the error; empty for success.
	}{
		// What Prometheus' remote write client sends (storage/remote/client.go).
		{ct: "application/x-protobuf", want: V1},
		{ct: "application/x-protobuf;proto=io.prometheus.write.v2.Request", want: V2},
		// The rest of the specification's forms.
		{ct: "", want: V1},
		{ct: "application/x-protobuf;proto=prometheus.WriteRequest", want: V1},
		// Lenient where RFC 9110 allows it.
		{ct: "  application/x-protobuf  ", want: V1},
		{ct: "application/x-protobuf; proto=io.prometheus.write.v2.Request", want: V2},
		{ct: "application/x-protobuf ; proto = io.prometheus.write.v2.Request ", want: V2},
		{ct: "Application/X-Protobuf;PROTO=io.prometheus.write.v2.Request", want: V2},
		{ct: `application/x-protobuf;proto="io.prometheus.write.v2.Request"`, want: V2},
		{ct: "application/x-protobuf;charset=utf-8", want: V1},
		{ct: "application/x-protobuf;charset=utf-8;proto=io.prometheus.write.v2.Request", want: V2},
		{ct: "application/x-protobuf;proto=io.prometheus.write.v2.Request;proto=prometheus.WriteRequest", want: V2},
		{ct: "application/x-protobuf;", want: V1},
		// Refused, naming what is accepted.
		{ct: "application/json", err: `unsupported content type "application/json"; accepted: application/x-protobuf, application/x-protobuf;proto=prometheus.WriteRequest, application/x-protobuf;proto=io.prometheus.write.v2.Request`},
		{ct: "application/x-protobuf-v2", err: "accepted: application/x-protobuf,"},
		{ct: "text/plain;proto=io.prometheus.write.v2.Request", err: "unsupported content type"},
		{ct: "application/x-protobuf;proto=io.prometheus.write.v3.Request", err: `unknown proto "io.prometheus.write.v3.Request"; accepted: application/x-protobuf,`},
		{ct: "application/x-protobuf;proto=io.prometheus.write.V2.Request", err: "unknown proto"},
		{ct: "application/x-protobuf;proto=", err: `unknown proto ""`},
		{ct: "application/x-protobuf;proto", err: `parameter "proto" is not name=value`},
	}
	for _, tc := range tests {
		t.Run(tc.ct, func(t *testing.T) {
			v, err := ParseContentType(tc.ct)
			if tc.err == "" {
				if err != nil || v != tc.want {
					t.Fatalf("got %v, %v; want %v", v, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrUnsupportedContentType) {
				t.Fatalf("got %v, %v; want ErrUnsupportedContentType", v, err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %q does not contain %q", err, tc.err)
			}
		})
	}
}

func snappyBody(t testing.TB, m interface{ Marshal() ([]byte, error) }) []byte {
	return snappy.Encode(nil, mustMarshal(t, m))
}

func TestDecodeBody(t *testing.T) {
	d := NewDecoder(Options{})
	rng := rand.New(rand.NewPCG(1, 1))
	reqV1 := randWriteRequestV1(rng, 10)
	reqV2 := randWriteRequestV2(rng, 10)
	wantV2, _ := normV2(reqV2)

	for _, enc := range []string{"snappy", "", "SNAPPY", " snappy "} {
		r, err := d.DecodeBody("application/x-protobuf", enc, snappyBody(t, reqV1))
		if err != nil {
			t.Fatalf("encoding %q: %v", enc, err)
		}
		if r.Version != V1 {
			t.Fatalf("version %v", r.Version)
		}
		if diff := diffReq(normOurs(r), normV1(reqV1)); diff != "" {
			t.Fatal(diff)
		}
		r.Release()
	}
	r, err := d.DecodeBody(ContentTypeV2, ContentEncodingSnappy, snappyBody(t, reqV2))
	if err != nil {
		t.Fatal(err)
	}
	if diff := diffReq(normOurs(r), wantV2); diff != "" {
		t.Fatal(diff)
	}
	r.Release()

	// The body is not retained: clobbering it after decoding changes nothing.
	body := snappyBody(t, reqV1)
	r, err = d.DecodeBody(ContentTypeV1, "snappy", body)
	if err != nil {
		t.Fatal(err)
	}
	clear(body)
	if diff := diffReq(normOurs(r), normV1(reqV1)); diff != "" {
		t.Fatal(diff)
	}
	r.Release()

	// The wrong message type for the body: fields of the other version are
	// unknown, so the result is empty, as the 2.0 specification intends
	// with its reserved field numbers.
	r, err = d.DecodeBody(ContentTypeV1, "snappy", snappyBody(t, reqV2))
	if err != nil || len(r.Series) != 0 {
		t.Fatalf("v2 body as v1: %v, %d series", err, len(r.Series))
	}
	r.Release()
	r, err = d.DecodeBody(ContentTypeV2, "snappy", snappyBody(t, reqV1))
	if err != nil || len(r.Series) != 0 {
		t.Fatalf("v1 body as v2: %v, %d series", err, len(r.Series))
	}
	r.Release()

	// Decode takes uncompressed bytes.
	r, err = d.Decode(V2, mustMarshal(t, reqV2))
	if err != nil {
		t.Fatal(err)
	}
	if diff := diffReq(normOurs(r), wantV2); diff != "" {
		t.Fatal(diff)
	}
	r.Release()
	if r, err := d.Decode(V1, []byte{0x0a, 0x05}); r != nil || !errors.Is(err, ErrMalformedRequest) {
		t.Fatalf("Decode of a malformed body: %v, %v", r, err)
	}
	var nilReq *Request
	nilReq.Release()
}

func TestDecodeBodyErrors(t *testing.T) {
	d := NewDecoder(Options{MaxDecodedSize: 1 << 20})
	valid := snappyBody(t, nodeExporterV1(3))
	malformed := snappy.Encode(nil, []byte{0x0a, 0x05, 0x00})
	tests := []struct {
		name     string
		ct, enc  string
		body     []byte
		sentinel error
		msg      string
	}{
		{"gzip", ContentTypeV1, "gzip", valid, ErrUnsupportedContentEncoding, `unsupported content encoding "gzip"; only "snappy" is accepted`},
		{"zstd", ContentTypeV2, "zstd", valid, ErrUnsupportedContentEncoding, `"zstd"`},
		{"identity", ContentTypeV1, "identity", valid, ErrUnsupportedContentEncoding, `"identity"`},
		{"list of encodings", ContentTypeV1, "snappy, gzip", valid, ErrUnsupportedContentEncoding, `"snappy, gzip"`},
		{"content type before encoding", "application/json", "gzip", valid, ErrUnsupportedContentType, "accepted: application/x-protobuf"},
		{"empty body", ContentTypeV1, "snappy", nil, ErrInvalidSnappy, "invalid snappy-compressed body: reading the decoded length"},
		{"not snappy", ContentTypeV1, "snappy", mustMarshal(t, nodeExporterV1(3)), ErrInvalidSnappy, "invalid snappy-compressed body"},
		{"truncated snappy", ContentTypeV1, "snappy", valid[:len(valid)/2], ErrInvalidSnappy, "snappy: corrupt input"},
		{"bad header varint", ContentTypeV1, "snappy", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrInvalidSnappy, "reading the decoded length"},
		{"over the cap", ContentTypeV1, "snappy", append(binary64(1<<20+1), 0, 0, 0), ErrBodyTooLarge, "decoded request body too large: 1048577 bytes announced, the limit is 1048576"},
		{"announces 4 GiB", ContentTypeV2, "snappy", append(binary64(1<<32-1), 0), ErrBodyTooLarge, "4294967295 bytes announced"},
		{"malformed protobuf", ContentTypeV1, "snappy", malformed, ErrMalformedRequest, "decoding prometheus.WriteRequest: malformed remote write request: length 5 exceeds the 1 bytes left (unexpected end of data) at offset 1"},
		{"bad symbol", ContentTypeV2, "snappy", snappy.Encode(nil, pbuf{}.str(4, "").bytes(5, pbuf{}.bytes(1, []byte{0, 1}))), ErrInvalidSymbolRef, "decoding io.prometheus.write.v2.Request: invalid symbol reference: timeseries[0].labels_refs: label reference 1 outside the symbols table (size 1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := d.DecodeBody(tc.ct, tc.enc, tc.body)
			if r != nil {
				t.Fatal("request returned with an error")
			}
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("got %v, want %v", err, tc.sentinel)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

// The cap is checked against the snappy header before anything is
// allocated for the body, so a bomb costs nothing.
func TestSnappyBombAllocatesNothing(t *testing.T) {
	d := NewDecoder(Options{})
	bomb := append(binary64(1<<31), 0, 0, 0, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := d.DecodeBody("", "", bomb); !errors.Is(err, ErrBodyTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 100<<10 {
		t.Fatalf("100 refused bombs allocated %d bytes", got)
	}
}

func TestDecodedSizeCap(t *testing.T) {
	raw := mustMarshal(t, nodeExporterV1(10))
	body := snappy.Encode(nil, raw)
	if _, err := NewDecoder(Options{MaxDecodedSize: len(raw)}).DecodeBody("", "snappy", body); err != nil {
		t.Fatalf("body of exactly the cap: %v", err)
	}
	if _, err := NewDecoder(Options{MaxDecodedSize: len(raw) - 1}).DecodeBody("", "snappy", body); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("body one byte over the cap: %v", err)
	}
	if got := NewDecoder(Options{}).MaxDecodedSize(); got != DefaultMaxDecodedSize {
		t.Fatalf("default cap %d", got)
	}
}

// Pooled requests are reused across sizes and versions: nothing of an
// earlier request may show through, and concurrent use must be race-free.
func TestDecoderPoolReuse(t *testing.T) {
	d := NewDecoder(Options{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 60 {
				n := rng.IntN(30)
				if rng.IntN(2) == 0 {
					req := randWriteRequestV1(rng, n)
					r, err := d.DecodeBody(ContentTypeV1, "snappy", snappyBody(t, req))
					if err != nil {
						t.Error(err)
						return
					}
					if diff := diffReq(normOurs(r), normV1(req)); diff != "" {
						t.Error(diff)
					}
					r.Release()
				} else {
					req := randWriteRequestV2(rng, n)
					want, _ := normV2(req)
					r, err := d.DecodeBody(ContentTypeV2, "snappy", snappyBody(t, req))
					if err != nil {
						t.Error(err)
						return
					}
					if diff := diffReq(normOurs(r), want); diff != "" {
						t.Error(diff)
					}
					r.Release()
				}
			}
		})
	}
	wg.Wait()
}

func TestDecodeBodySteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	d := NewDecoder(Options{})
	for _, tc := range []struct {
		ct   string
		body []byte
	}{
		{ContentTypeV1, snappyBody(t, nodeExporterV1(2000))},
		{ContentTypeV2, snappyBody(t, nodeExporterV2(2000))},
	} {
		allocs := testing.AllocsPerRun(20, func() {
			r, err := d.DecodeBody(tc.ct, "snappy", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			r.Release()
		})
		// A GC during the run may empty the pool; allow for that.
		if allocs > 1 {
			t.Fatalf("%s: %v allocations per request", tc.ct, allocs)
		}
	}
}

func TestVersionAndMetricTypeStrings(t *testing.T) {
	if V1.String() != "prometheus.WriteRequest" || V2.String() != "io.prometheus.write.v2.Request" || Version(9).String() != "unknown" {
		t.Fatal("Version.String")
	}
	// The names are Prometheus' model.MetricType values; both protos number
	// the types alike.
	want := map[MetricType]string{
		MetricType(prompb.MetricMetadata_UNKNOWN): "unknown", MetricType(prompb.MetricMetadata_COUNTER): "counter",
		MetricType(prompb.MetricMetadata_GAUGE): "gauge", MetricType(prompb.MetricMetadata_HISTOGRAM): "histogram",
		MetricType(prompb.MetricMetadata_GAUGEHISTOGRAM): "gaugehistogram", MetricType(prompb.MetricMetadata_SUMMARY): "summary",
		MetricType(prompb.MetricMetadata_INFO): "info", MetricType(writev2.Metadata_METRIC_TYPE_STATESET): "stateset",
		MetricType(42): "unknown", MetricType(-1): "unknown",
	}
	for mt, s := range want {
		if mt.String() != s {
			t.Errorf("%d: %q, want %q", mt, mt.String(), s)
		}
		// Valid: every type the protos define, unknown/unspecified included.
		if valid := mt >= 0 && mt <= 7; mt.Valid() != valid {
			t.Errorf("%d: Valid() = %v", mt, mt.Valid())
		}
	}
	for _, mt := range []MetricType{MetricType(writev2.Metadata_METRIC_TYPE_UNSPECIFIED), MetricType(writev2.Metadata_METRIC_TYPE_STATESET), MetricType(prompb.MetricMetadata_STATESET)} {
		if !mt.Valid() {
			t.Errorf("%d is a protocol type", mt)
		}
	}
	var r Request
	if err := r.Unmarshal(Version(3), nil); !errors.Is(err, ErrUnsupportedContentType) {
		t.Fatalf("unknown version: %v", err)
	}
}
