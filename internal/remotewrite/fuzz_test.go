package remotewrite

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the seed corpora under testdata/fuzz")

// FuzzDecodeV1 decodes arbitrary bytes as prometheus.WriteRequest, with
// prompb's generated Unmarshal as the oracle: where prompb accepts, we must
// decode the same request or reject with a packed-field overrun (see
// doc.go); where prompb rejects, we must reject.
func FuzzDecodeV1(f *testing.F) {
	for _, seed := range handSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		if checkV1(t, &r, data) == nil {
			checkDecoded(t, &r, data)
		}
	})
}

// FuzzDecodeV2 is FuzzDecodeV1 for io.prometheus.write.v2.Request; where
// prompb accepts but its own reference resolution (ToLabels, ToMetadata)
// would fail, we must reject with ErrInvalidSymbolRef.
func FuzzDecodeV2(f *testing.F) {
	for _, seed := range handSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		if checkV2(t, &r, data) == nil {
			checkDecoded(t, &r, data)
		}
	})
}

// handSeeds are small inputs aimed at the decoder's branches; the realistic
// seeds are committed under testdata/fuzz.
func handSeeds() [][]byte {
	syms := pbuf{}.str(4, "").str(4, "__name__").str(4, "up")
	return [][]byte{
		nil,
		pbuf{}.bytes(1, pbuf{}.bytes(1, label("__name__", "up")).bytes(2, pbuf{}.double(1, 1).varint(2, 1000))),
		pbuf{}.bytes(1, pbuf{}.bytes(1, label("a", "b")).bytes(2, pbuf{}.double(1, 1)).bytes(1, label("c", ""))),
		pbuf{}.bytes(1, pbuf{}.bytes(4, pbuf{}.varint(1, 3).bytes(11, pbuf{}.varint(1, 2).varint(2, 2)).bytes(12, []byte{2, 1}).double(16, 1))),
		pbuf{}.raw(syms...).bytes(5, pbuf{}.bytes(1, []byte{1, 2}).bytes(2, pbuf{}.double(1, 1).varint(2, 5).varint(3, 4)).bytes(5, pbuf{}.varint(1, 1).varint(3, 2))),
		pbuf{}.bytes(5, pbuf{}.varint(1, 1).varint(1, 2).bytes(4, pbuf{}.varint(1, 1).varint(1, 2))).raw(syms...),
		pbuf{}.tag(9, wireStartGroup).varint(1, 1).tag(9, wireEndGroup),
	}
}

// checkDecoded checks what a successful decode offers beyond the fields
// the differential check compared.
func checkDecoded(t *testing.T, r *Request, data []byte) {
	// Bounded memory: every element the arenas hold took at least two
	// input bytes (a tag and a length or value), except packed varints and
	// doubles, which take one and eight.
	elems := len(r.Series) + len(r.Metadata) + len(r.Symbols) + len(r.samples) + len(r.exemplars) +
		len(r.exemplarLabels) + len(r.histograms) + len(r.spans)
	if 2*elems+len(r.ints)+8*len(r.floats) > len(data) {
		t.Fatalf("%d elements, %d varints and %d doubles from %d bytes", elems, len(r.ints), len(r.floats), len(data))
	}
	// What the distributor hands on across a process boundary decodes back to it.
	checkMarshal(t, r)
	var sb labels.ScratchBuilder
	var key []byte
	for i := range r.Series {
		s := &r.Series[i]
		// The key decodes, as v1 labels, to the series' labels.
		key = s.AppendKey(key[:0])
		var ts prompb.TimeSeries
		if err := ts.Unmarshal(key); err != nil {
			t.Fatalf("series %d: key %q does not decode: %v", i, key, err)
		}
		if len(ts.Samples)+len(ts.Exemplars)+len(ts.Histograms)+len(ts.XXX_unrecognized) > 0 {
			t.Fatalf("series %d: key %q holds more than labels", i, key)
		}
		if got, want := normV1Labels(ts.Labels), normLabels(s.AppendLabels(nil)); !reflect.DeepEqual(got, want) {
			t.Fatalf("series %d: key decodes to %v, labels are %v", i, got, want)
		}
		ls, err := s.ToLabels(&sb)
		checkToLabels(t, s.AppendLabels(nil), ls, err)
		for k := range s.Exemplars {
			ls, err := s.Exemplars[k].ToLabels(&sb)
			checkToLabels(t, s.Exemplars[k].Labels, ls, err)
		}
		for k := range s.Histograms {
			h := &s.Histograms[k]
			if ih := h.ToIntHistogram(); (ih == nil) != h.IsFloat {
				t.Fatalf("ToIntHistogram nil = %v for IsFloat = %v", ih == nil, h.IsFloat)
			}
			if fh := h.ToFloatHistogram(); len(fh.PositiveSpans) != len(h.PositiveSpans) {
				t.Fatal("ToFloatHistogram lost spans")
			}
		}
	}
}

// checkToLabels checks ToLabels against the labels it was built from: sorted
// and complete, or a duplicate name reported.
func checkToLabels(t *testing.T, in []Label, got labels.Labels, err error) {
	names := map[string]bool{}
	dup := false
	for _, l := range in {
		dup = dup || names[string(l.Name)]
		names[string(l.Name)] = true
	}
	if dup != (err != nil) {
		t.Fatalf("labels %v: duplicate %v, ToLabels error %v", normLabels(in), dup, err)
	}
	if err != nil {
		if !errors.Is(err, ErrDuplicateLabelName) {
			t.Fatalf("ToLabels error %v", err)
		}
		return
	}
	b := labels.NewScratchBuilder(len(in))
	for _, l := range in {
		b.Add(string(l.Name), string(l.Value))
	}
	b.Sort()
	if want := b.Labels(); !labels.Equal(got, want) {
		t.Fatalf("ToLabels = %v, want %v", got, want)
	}
}

// seedRequests are the realistic requests committed as seed corpus.
func seedRequests(t testing.TB) map[string]map[string][]byte {
	rng := rand.New(rand.NewPCG(42, 42))
	v1 := map[string][]byte{
		"node_exporter":  mustMarshal(t, nodeExporterV1(4)),
		"everything":     mustMarshal(t, randWriteRequestV1(rng, 3)),
		"histograms":     mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: nodeExporterLabels(1)[:3], Histograms: []prompb.Histogram{randHistogramV1(rng), randHistogramV1(rng)}}}}),
		"metadata_stale": mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: nodeExporterLabels(2)[:2], Samples: []prompb.Sample{{Value: staleNaN, Timestamp: 1}}}}, Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "node_cpu_seconds_total", Help: "Seconds the CPUs spent in each mode.", Unit: "seconds"}}}),
	}
	v2 := map[string][]byte{
		"node_exporter": mustMarshal(t, nodeExporterV2(4)),
		"everything":    mustMarshal(t, randWriteRequestV2(rng, 3)),
		"histograms":    mustMarshal(t, &writev2.Request{Symbols: []string{"", "__name__", "latency_seconds"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2}, Histograms: []writev2.Histogram{randHistogramV2(rng), randHistogramV2(rng)}}}}),
	}
	return map[string]map[string][]byte{"FuzzDecodeV1": v1, "FuzzDecodeV2": v2}
}

// TestSeedCorpus keeps the committed seed corpora in step with the
// generators (go test -run TestSeedCorpus -update-fuzz-corpus rewrites
// them) and checks that every seed decodes.
func TestSeedCorpus(t *testing.T) {
	for target, seeds := range seedRequests(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range seeds {
			path := filepath.Join(dir, name)
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
			if *updateFuzzCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-fuzz-corpus)", err)
			}
			if string(got) != want {
				t.Fatalf("%s is stale (run with -update-fuzz-corpus)", path)
			}
			var r Request
			v := V1
			if strings.HasSuffix(target, "V2") {
				v = V2
			}
			if err := r.Unmarshal(v, data); err != nil || len(r.Series) == 0 {
				t.Fatalf("%s: %d series, %v", path, len(r.Series), err)
			}
		}
	}
}
