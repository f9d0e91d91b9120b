package remotewrite

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The differential tests turn both prompb's and our decoding into this
// normalised form and compare with reflect.DeepEqual. Floats are kept as bit
// patterns so NaN payloads (stale markers) compare exactly; empty slices are
// always nil.
type (
	nLabel  struct{ Name, Value string }
	nSample struct {
		V     uint64
		T, ST int64
	}
	nExemplar struct {
		Labels []nLabel
		V      uint64
		T      int64
	}
	nHist struct {
		IsFloat                      bool
		CountInt, CountFloat         uint64
		ZeroCountInt, ZeroCountFloat uint64
		Sum                          uint64
		Schema                       int32
		ZeroThreshold                uint64
		NegSpans, PosSpans           []histogram.Span
		NegDeltas, PosDeltas         []int64
		NegCounts, PosCounts, Custom []uint64
		ResetHint                    int32
		T, ST                        int64
	}
	nMeta struct {
		Type               int32
		Family, Help, Unit string
	}
	nSeries struct {
		Labels    []nLabel
		Samples   []nSample
		Exemplars []nExemplar
		Hists     []nHist
		Meta      nMeta
	}
	nReq struct {
		Series  []nSeries
		Meta    []nMeta
		Symbols []string
	}
)

func fbits(f float64) uint64 { return math.Float64bits(f) }

func fbitsAll(fs []float64) []uint64 {
	var out []uint64
	for _, f := range fs {
		out = append(out, fbits(f))
	}
	return out
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func spansOf[T any](s []T, conv func(T) histogram.Span) []histogram.Span {
	var out []histogram.Span
	for _, x := range s {
		out = append(out, conv(x))
	}
	return out
}

// --- ours ---

func normLabels(ls []Label) []nLabel {
	var out []nLabel
	for _, l := range ls {
		out = append(out, nLabel{string(l.Name), string(l.Value)})
	}
	return out
}

func normHist(h *Histogram) nHist {
	return nHist{
		IsFloat: h.IsFloat, CountInt: h.CountInt, CountFloat: fbits(h.CountFloat),
		ZeroCountInt: h.ZeroCountInt, ZeroCountFloat: fbits(h.ZeroCountFloat),
		Sum: fbits(h.Sum), Schema: h.Schema, ZeroThreshold: fbits(h.ZeroThreshold),
		NegSpans: nilIfEmpty(h.NegativeSpans), PosSpans: nilIfEmpty(h.PositiveSpans),
		NegDeltas: nilIfEmpty(h.NegativeDeltas), PosDeltas: nilIfEmpty(h.PositiveDeltas),
		NegCounts: fbitsAll(h.NegativeCounts), PosCounts: fbitsAll(h.PositiveCounts),
		Custom:    fbitsAll(h.CustomValues),
		ResetHint: int32(h.ResetHint), T: h.Timestamp, ST: h.StartTimestamp,
	}
}

func normMeta(m Metadata) nMeta {
	return nMeta{int32(m.Type), string(m.MetricFamilyName), string(m.Help), string(m.Unit)}
}

func normOurs(r *Request) nReq {
	var out nReq
	for i := range r.Series {
		s := &r.Series[i]
		ns := nSeries{Labels: normLabels(s.AppendLabels(nil)), Meta: normMeta(s.Metadata())}
		if s.NumLabels() != len(ns.Labels) {
			panic(fmt.Sprintf("NumLabels() = %d for %d labels", s.NumLabels(), len(ns.Labels)))
		}
		// The iterator yields what AppendLabels does.
		var viaIter []nLabel
		for name, value := range s.Labels() {
			viaIter = append(viaIter, nLabel{string(name), string(value)})
		}
		if !reflect.DeepEqual(viaIter, ns.Labels) {
			panic(fmt.Sprintf("Labels() yields %v, AppendLabels %v", viaIter, ns.Labels))
		}
		for _, smp := range s.Samples {
			ns.Samples = append(ns.Samples, nSample{fbits(smp.Value), smp.Timestamp, smp.StartTimestamp})
		}
		for _, e := range s.Exemplars {
			ns.Exemplars = append(ns.Exemplars, nExemplar{normLabels(e.Labels), fbits(e.Value), e.Timestamp})
		}
		for k := range s.Histograms {
			ns.Hists = append(ns.Hists, normHist(&s.Histograms[k]))
		}
		out.Series = append(out.Series, ns)
	}
	for _, m := range r.Metadata {
		out.Meta = append(out.Meta, normMeta(m))
	}
	for _, s := range r.Symbols {
		out.Symbols = append(out.Symbols, string(s))
	}
	return out
}

// --- prompb v1 ---

func normV1Labels(ls []prompb.Label) []nLabel {
	var out []nLabel
	for _, l := range ls {
		out = append(out, nLabel{l.Name, l.Value})
	}
	return out
}

func normV1Hist(h *prompb.Histogram) nHist {
	return nHist{
		IsFloat: h.IsFloatHistogram(), CountInt: h.GetCountInt(), CountFloat: fbits(h.GetCountFloat()),
		ZeroCountInt: h.GetZeroCountInt(), ZeroCountFloat: fbits(h.GetZeroCountFloat()),
		Sum: fbits(h.Sum), Schema: h.Schema, ZeroThreshold: fbits(h.ZeroThreshold),
		NegSpans:  spansOf(h.NegativeSpans, func(s prompb.BucketSpan) histogram.Span { return histogram.Span{Offset: s.Offset, Length: s.Length} }),
		PosSpans:  spansOf(h.PositiveSpans, func(s prompb.BucketSpan) histogram.Span { return histogram.Span{Offset: s.Offset, Length: s.Length} }),
		NegDeltas: nilIfEmpty(h.NegativeDeltas), PosDeltas: nilIfEmpty(h.PositiveDeltas),
		NegCounts: fbitsAll(h.NegativeCounts), PosCounts: fbitsAll(h.PositiveCounts),
		Custom:    fbitsAll(h.CustomValues),
		ResetHint: int32(h.ResetHint), T: h.Timestamp,
	}
}

func normV1(r *prompb.WriteRequest) nReq {
	var out nReq
	for i := range r.Timeseries {
		ts := &r.Timeseries[i]
		ns := nSeries{Labels: normV1Labels(ts.Labels)}
		for _, s := range ts.Samples {
			ns.Samples = append(ns.Samples, nSample{fbits(s.Value), s.Timestamp, 0})
		}
		for _, e := range ts.Exemplars {
			ns.Exemplars = append(ns.Exemplars, nExemplar{normV1Labels(e.Labels), fbits(e.Value), e.Timestamp})
		}
		for k := range ts.Histograms {
			ns.Hists = append(ns.Hists, normV1Hist(&ts.Histograms[k]))
		}
		out.Series = append(out.Series, ns)
	}
	for _, m := range r.Metadata {
		out.Meta = append(out.Meta, nMeta{int32(m.Type), m.MetricFamilyName, m.Help, m.Unit})
	}
	return out
}

// --- prompb v2 ---

func normV2Hist(h *writev2.Histogram) nHist {
	return nHist{
		IsFloat: h.IsFloatHistogram(), CountInt: h.GetCountInt(), CountFloat: fbits(h.GetCountFloat()),
		ZeroCountInt: h.GetZeroCountInt(), ZeroCountFloat: fbits(h.GetZeroCountFloat()),
		Sum: fbits(h.Sum), Schema: h.Schema, ZeroThreshold: fbits(h.ZeroThreshold),
		NegSpans:  spansOf(h.NegativeSpans, func(s writev2.BucketSpan) histogram.Span { return histogram.Span{Offset: s.Offset, Length: s.Length} }),
		PosSpans:  spansOf(h.PositiveSpans, func(s writev2.BucketSpan) histogram.Span { return histogram.Span{Offset: s.Offset, Length: s.Length} }),
		NegDeltas: nilIfEmpty(h.NegativeDeltas), PosDeltas: nilIfEmpty(h.PositiveDeltas),
		NegCounts: fbitsAll(h.NegativeCounts), PosCounts: fbitsAll(h.PositiveCounts),
		Custom:    fbitsAll(h.CustomValues),
		ResetHint: int32(h.ResetHint), T: h.Timestamp, ST: h.StartTimestamp,
	}
}

// resolveV2 resolves label references the way prompb's desymbolizeLabels
// does; ok is false where prompb's ToLabels would fail.
func resolveV2(refs []uint32, syms []string) (out []nLabel, ok bool) {
	if len(refs)%2 != 0 {
		return nil, false
	}
	for i := 0; i < len(refs); i += 2 {
		if int(refs[i]) >= len(syms) || int(refs[i+1]) >= len(syms) {
			return nil, false
		}
		out = append(out, nLabel{syms[refs[i]], syms[refs[i+1]]})
	}
	return out, true
}

// normV2 normalises a prompb v2 request. refsOK is false if any reference
// (labels, exemplar labels, metadata) would fail prompb's own resolution.
func normV2(r *writev2.Request) (out nReq, refsOK bool) {
	refsOK = true
	for _, s := range r.Symbols {
		out.Symbols = append(out.Symbols, s)
	}
	for i := range r.Timeseries {
		ts := &r.Timeseries[i]
		ls, ok := resolveV2(ts.LabelsRefs, r.Symbols)
		refsOK = refsOK && ok
		ns := nSeries{Labels: ls}
		md, err := ts.ToMetadata(r.Symbols)
		if err != nil {
			refsOK = false
		} else {
			ns.Meta = nMeta{Type: int32(ts.Metadata.Type), Help: md.Help, Unit: md.Unit}
		}
		for _, s := range ts.Samples {
			ns.Samples = append(ns.Samples, nSample{fbits(s.Value), s.Timestamp, s.StartTimestamp})
		}
		for _, e := range ts.Exemplars {
			els, ok := resolveV2(e.LabelsRefs, r.Symbols)
			refsOK = refsOK && ok
			ns.Exemplars = append(ns.Exemplars, nExemplar{els, fbits(e.Value), e.Timestamp})
		}
		for k := range ts.Histograms {
			ns.Hists = append(ns.Hists, normV2Hist(&ts.Histograms[k]))
		}
		out.Series = append(out.Series, ns)
	}
	return out, refsOK
}

// diffReq describes the first difference between two normalised requests.
func diffReq(got, want nReq) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	if !reflect.DeepEqual(got.Symbols, want.Symbols) {
		return fmt.Sprintf("symbols:\n got %q\nwant %q", got.Symbols, want.Symbols)
	}
	if !reflect.DeepEqual(got.Meta, want.Meta) {
		return fmt.Sprintf("metadata:\n got %+v\nwant %+v", got.Meta, want.Meta)
	}
	if len(got.Series) != len(want.Series) {
		return fmt.Sprintf("got %d series, want %d", len(got.Series), len(want.Series))
	}
	for i := range got.Series {
		g, w := got.Series[i], want.Series[i]
		for _, f := range []struct {
			name      string
			got, want any
		}{{"labels", g.Labels, w.Labels}, {"samples", g.Samples, w.Samples}, {"exemplars", g.Exemplars, w.Exemplars}, {"histograms", g.Hists, w.Hists}, {"metadata", g.Meta, w.Meta}} {
			if !reflect.DeepEqual(f.got, f.want) {
				return fmt.Sprintf("series %d %s:\n got %+v\nwant %+v", i, f.name, f.got, f.want)
			}
		}
	}
	return "differs (unknown where)"
}

// --- request generators ---

// staleNaN is Prometheus' staleness marker (value.StaleNaN).
var staleNaN = math.Float64frombits(0x7ff0000000000002)

var specialFloats = []float64{0, -0.0, 1, -1, 0.5, 1e-300, 1e300, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1), math.NaN(), staleNaN}

var specialInts = []int64{0, 1, -1, 1700000000000, -1700000000000, math.MaxInt64, math.MinInt64, 127, 128, 1 << 35}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

var sampleStrings = []string{
	"", "a", "job", "node", "instance", "le", "0.5", "+Inf", "__name__", "quantile",
	"höst-ünicode", "日本語のラベル", "emoji 📈", "with\nnewline", "quote\"and\\backslash",
	strings.Repeat("long", 40), // 160 bytes: two-byte length varint.
	"\x00nul", "label_with_a_rather_long_name_used_by_kube_state_metrics",
}

func randString(rng *rand.Rand) string {
	if rng.IntN(4) == 0 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(' ' + rng.IntN(95))
		}
		return string(b)
	}
	return pick(rng, sampleStrings)
}

func randLabelsV1(rng *rand.Rand, n int) []prompb.Label {
	var ls []prompb.Label
	for range n {
		ls = append(ls, prompb.Label{Name: randString(rng), Value: randString(rng)})
	}
	return ls
}

func randHistogramV1(rng *rand.Rand) prompb.Histogram {
	hh := randHistogram(rng)
	switch h := hh.(type) {
	case *histogram.Histogram:
		return prompb.FromIntHistogram(pick(rng, specialInts), h)
	default:
		return prompb.FromFloatHistogram(pick(rng, specialInts), h.(*histogram.FloatHistogram))
	}
}

func randHistogramV2(rng *rand.Rand) writev2.Histogram {
	hh := randHistogram(rng)
	st := int64(0)
	if rng.IntN(2) == 0 {
		st = pick(rng, specialInts)
	}
	switch h := hh.(type) {
	case *histogram.Histogram:
		return writev2.FromIntHistogram(st, pick(rng, specialInts), h)
	default:
		return writev2.FromFloatHistogram(st, pick(rng, specialInts), h.(*histogram.FloatHistogram))
	}
}

// randHistogram returns a *histogram.Histogram or *histogram.FloatHistogram
// with random, not necessarily valid, contents: the decoder must carry
// whatever is sent.
func randHistogram(rng *rand.Rand) any {
	spans := func() []histogram.Span {
		var s []histogram.Span
		for range rng.IntN(4) {
			s = append(s, histogram.Span{Offset: int32(rng.IntN(200) - 100), Length: uint32(rng.IntN(5))})
		}
		return s
	}
	schema := int32(rng.IntN(13) - 4)
	var custom []float64
	if rng.IntN(4) == 0 {
		schema = histogram.CustomBucketsSchema
		for i := range rng.IntN(6) + 1 {
			custom = append(custom, float64(i)*0.25)
		}
	}
	hint := histogram.CounterResetHint(rng.IntN(4))
	if rng.IntN(2) == 0 {
		h := &histogram.Histogram{
			CounterResetHint: hint, Schema: schema, ZeroThreshold: pick(rng, specialFloats),
			ZeroCount: rng.Uint64() >> rng.IntN(64), Count: rng.Uint64() >> rng.IntN(64), Sum: pick(rng, specialFloats),
			PositiveSpans: spans(), NegativeSpans: spans(), CustomValues: custom,
		}
		for range rng.IntN(10) {
			h.PositiveBuckets = append(h.PositiveBuckets, int64(rng.IntN(2000)-1000))
		}
		for range rng.IntN(10) {
			h.NegativeBuckets = append(h.NegativeBuckets, pick(rng, specialInts))
		}
		return h
	}
	h := &histogram.FloatHistogram{
		CounterResetHint: hint, Schema: schema, ZeroThreshold: pick(rng, specialFloats),
		ZeroCount: pick(rng, specialFloats), Count: pick(rng, specialFloats), Sum: pick(rng, specialFloats),
		PositiveSpans: spans(), NegativeSpans: spans(), CustomValues: custom,
	}
	for range rng.IntN(10) {
		h.PositiveBuckets = append(h.PositiveBuckets, pick(rng, specialFloats))
	}
	for range rng.IntN(10) {
		h.NegativeBuckets = append(h.NegativeBuckets, rng.Float64()*100)
	}
	return h
}

// randWriteRequestV1 builds a v1 request exercising every field.
func randWriteRequestV1(rng *rand.Rand, nSeries int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for range nSeries {
		ts := prompb.TimeSeries{Labels: randLabelsV1(rng, rng.IntN(12))}
		for range rng.IntN(4) {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: pick(rng, specialFloats), Timestamp: pick(rng, specialInts)})
		}
		for range rng.IntN(3) {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: randLabelsV1(rng, rng.IntN(3)), Value: pick(rng, specialFloats), Timestamp: pick(rng, specialInts)})
		}
		for range rng.IntN(3) {
			ts.Histograms = append(ts.Histograms, randHistogramV1(rng))
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	for range rng.IntN(5) {
		req.Metadata = append(req.Metadata, prompb.MetricMetadata{
			Type:             prompb.MetricMetadata_MetricType(rng.IntN(9)),
			MetricFamilyName: randString(rng), Help: randString(rng), Unit: randString(rng),
		})
	}
	return req
}

// randWriteRequestV2 builds a v2 request exercising every field, with a
// symbols table built the way Prometheus builds it.
func randWriteRequestV2(rng *rand.Rand, nSeries int) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	refs := func(n int) []uint32 {
		var out []uint32
		for range n {
			out = append(out, st.Symbolize(randString(rng)), st.Symbolize(randString(rng)))
		}
		return out
	}
	for range nSeries {
		ts := writev2.TimeSeries{LabelsRefs: refs(rng.IntN(12))}
		for range rng.IntN(4) {
			s := writev2.Sample{Value: pick(rng, specialFloats), Timestamp: pick(rng, specialInts)}
			if rng.IntN(2) == 0 {
				s.StartTimestamp = pick(rng, specialInts)
			}
			ts.Samples = append(ts.Samples, s)
		}
		for range rng.IntN(3) {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{LabelsRefs: refs(rng.IntN(3)), Value: pick(rng, specialFloats), Timestamp: pick(rng, specialInts)})
		}
		for range rng.IntN(3) {
			ts.Histograms = append(ts.Histograms, randHistogramV2(rng))
		}
		if rng.IntN(4) != 0 {
			ts.Metadata = writev2.Metadata{
				Type:    writev2.Metadata_MetricType(rng.IntN(9)),
				HelpRef: st.Symbolize(randString(rng)),
				UnitRef: st.Symbolize(randString(rng)),
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	return req
}

// nodeExporterV1 returns a realistic request of n series with one sample
// each and about ten labels, like a node exporter scraped by Prometheus
// with Kubernetes service discovery.
func nodeExporterV1(n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := range n {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  nodeExporterLabels(i),
			Samples: []prompb.Sample{{Value: float64(i) * 1.5, Timestamp: 1700000000000 + int64(i)}},
		})
	}
	return req
}

func nodeExporterV2(n int) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for i := range n {
		var refs []uint32
		for _, l := range nodeExporterLabels(i) {
			refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		name := nodeExporterNames[i%len(nodeExporterNames)]
		req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
			LabelsRefs: refs,
			Samples:    []writev2.Sample{{Value: float64(i) * 1.5, Timestamp: 1700000000000 + int64(i)}},
			Metadata: writev2.Metadata{
				Type:    writev2.Metadata_METRIC_TYPE_COUNTER,
				HelpRef: st.Symbolize("Help text for " + name + "."),
				UnitRef: st.Symbolize("seconds"),
			},
		})
	}
	req.Symbols = st.Symbols()
	return req
}

var nodeExporterNames = []string{
	"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
	"node_network_receive_bytes_total", "node_network_transmit_bytes_total", "node_disk_read_bytes_total",
	"node_disk_written_bytes_total", "node_load1", "node_context_switches_total", "node_vmstat_pgfault",
}

func nodeExporterLabels(i int) []prompb.Label {
	// 200 distinct series per node: ten metric names times twenty CPUs.
	name := nodeExporterNames[i%len(nodeExporterNames)]
	node, cpu := i/200, (i%200)/10
	return []prompb.Label{
		{Name: "__name__", Value: name},
		{Name: "cluster", Value: "prod-eu-west-1"},
		{Name: "container", Value: "node-exporter"},
		{Name: "cpu", Value: fmt.Sprint(cpu)},
		{Name: "device", Value: fmt.Sprintf("nvme%dn1", cpu%4)},
		{Name: "instance", Value: fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal:9100", node/256, node%256)},
		{Name: "job", Value: "node-exporter"},
		{Name: "mode", Value: []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}[cpu%8]},
		{Name: "namespace", Value: "monitoring"},
		{Name: "pod", Value: fmt.Sprintf("node-exporter-%05x", node*7919)},
	}
}

// --- a tiny protobuf writer for hand-made inputs ---

type pbuf []byte

func (p pbuf) tag(num, wt int) pbuf { return binary.AppendUvarint(p, uint64(num)<<3|uint64(wt)) }
func (p pbuf) varint(num int, v uint64) pbuf {
	return binary.AppendUvarint(p.tag(num, wireVarint), v)
}
func (p pbuf) double(num int, f float64) pbuf {
	return binary.LittleEndian.AppendUint64(p.tag(num, wireFixed64), math.Float64bits(f))
}
func (p pbuf) bytes(num int, b []byte) pbuf {
	p = binary.AppendUvarint(p.tag(num, wireBytes), uint64(len(b)))
	return append(p, b...)
}
func (p pbuf) str(num int, s string) pbuf { return p.bytes(num, []byte(s)) }
func (p pbuf) raw(b ...byte) pbuf         { return append(p, b...) }

func label(name, value string) []byte { return pbuf{}.str(1, name).str(2, value) }

func mustMarshal(t testing.TB, m interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
