package remotewrite

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// checkMarshal checks that AppendMarshal's encoding of r decodes to a request equal to
// r as it is now. A v2 request keeps its symbols table and may gain symbols after it.
func checkMarshal(t *testing.T, r *Request) {
	t.Helper()
	enc := r.AppendMarshal([]byte("prefix"))
	if string(enc[:6]) != "prefix" {
		t.Fatal("AppendMarshal overwrote dst")
	}
	var back Request
	if err := back.Unmarshal(r.Version, enc[6:]); err != nil {
		t.Fatalf("AppendMarshal's %v encoding does not decode: %v", r.Version, err)
	}
	want, got := normOurs(r), normOurs(&back)
	if len(got.Symbols) < len(want.Symbols) || !reflect.DeepEqual(got.Symbols[:len(want.Symbols)], want.Symbols) {
		t.Fatalf("symbols table %q does not start with the original %q", got.Symbols, want.Symbols)
	}
	want.Symbols, got.Symbols = nil, nil
	if d := diffReq(got, want); d != "" {
		t.Fatalf("%v request after AppendMarshal and Unmarshal: %s", r.Version, d)
	}
}

// The distributor filters a request in place (series, samples, histograms, metadata)
// before it hands it on: the encoding carries what is left, nothing else.
func TestAppendMarshalFiltered(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		for seed := range 200 {
			rng := rand.New(rand.NewPCG(uint64(seed), 3))
			r := randRequest(t, v, rng)
			checkMarshal(t, r)
			kept := r.Series[:0]
			for i := range r.Series {
				s := r.Series[i]
				switch rng.IntN(4) {
				case 0:
					continue
				case 1:
					s.Samples = s.Samples[len(s.Samples)/2:]
					s.Histograms = s.Histograms[:len(s.Histograms)/2]
				case 2:
					s.DropMetadata()
				}
				kept = append(kept, s)
			}
			r.Series = kept
			if len(r.Metadata) > 0 {
				r.Metadata = r.Metadata[1:]
			}
			checkMarshal(t, r)
		}
	}
}

// An empty request encodes to nothing, which decodes to an empty request.
func TestAppendMarshalEmpty(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		r := Request{Version: v}
		if enc := r.AppendMarshal(nil); len(enc) != 0 {
			t.Fatalf("%v: %x", v, enc)
		}
	}
}

// A request split by series into parts (as the ingest log partitions it) loses and
// duplicates nothing: the parts' series are the request's, the metadata goes with the
// part asked to carry it.
func TestAppendMarshalSeries(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		for seed := range 100 {
			rng := rand.New(rand.NewPCG(uint64(seed), 4))
			r := randRequest(t, v, rng)
			want := normOurs(r)
			parts := [2][]int{{}, {}}
			for i := range r.Series {
				k := rng.IntN(2)
				parts[k] = append(parts[k], i)
			}
			var got nReq
			for k, idx := range parts {
				var back Request
				if err := back.Unmarshal(v, r.AppendMarshalSeries(nil, idx, k == 1)); err != nil {
					t.Fatal(err)
				}
				n := normOurs(&back)
				got.Series = append(got.Series, n.Series...)
				got.Meta = append(got.Meta, n.Meta...)
			}
			// The parts' series, concatenated, in the order the parts hold them.
			want.Symbols = nil
			var ordered []nSeries
			for _, idx := range parts {
				for _, i := range idx {
					ordered = append(ordered, want.Series[i])
				}
			}
			want.Series = ordered
			if d := diffReq(got, want); d != "" {
				t.Fatalf("%v seed %d: %s", v, seed, d)
			}
		}
	}
}

// randRequest decodes a random request of version v with 1 to 20 series.
func randRequest(t *testing.T, v Version, rng *rand.Rand) *Request {
	t.Helper()
	var data []byte
	if v == V1 {
		data = mustMarshal(t, randWriteRequestV1(rng, 1+rng.IntN(20)))
	} else {
		data = mustMarshal(t, randWriteRequestV2(rng, 1+rng.IntN(20)))
	}
	var r Request
	if err := r.Unmarshal(v, data); err != nil {
		t.Fatal(err)
	}
	return &r
}
