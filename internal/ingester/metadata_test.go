package ingester

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/remotewrite"
	stratatest "github.com/stratametrics/strata/internal/testutil"
)

func md(help string) *remotewrite.Metadata {
	return &remotewrite.Metadata{Type: remotewrite.MetricTypeCounter, Help: []byte(help)}
}

func TestMetadataStoreBounds(t *testing.T) {
	var s metadataStore
	for i := range 3 {
		if !s.add(fmt.Appendf(nil, "f%d", i), md("h"), 3, 1) {
			t.Fatalf("family %d refused under the limit", i)
		}
	}
	if s.add([]byte("f3"), md("h"), 3, 1) {
		t.Fatal("a fourth family was accepted with a limit of 3")
	}
	// A known family takes new declarations at the limit; the newest ten win.
	for i := range 15 {
		if !s.add([]byte("f0"), md(fmt.Sprint("h", i)), 3, 2) {
			t.Fatal("a known family was refused")
		}
	}
	got := s.get("f0", 0)["f0"]
	if len(got) != maxMetadataPerMetric || got[0].Help != "h5" || got[9].Help != "h14" {
		t.Fatalf("f0 keeps %v", got)
	}
	// The limit is read on every call: raised, or 0 for none, the family gets in.
	if !s.add([]byte("f3"), md("h"), 0, 3) || s.families() != 4 {
		t.Fatal("no limit refused a family")
	}
	if !s.add(nil, md("h"), 1, 3) || s.families() != 4 {
		t.Fatal("metadata without a family was stored")
	}
}

func TestMetadataStoreKnownDeclarationAllocatesNothing(t *testing.T) {
	var s metadataStore
	fam, m := []byte("http_requests_total"), &remotewrite.Metadata{Type: remotewrite.MetricTypeCounter, Help: []byte("Requests."), Unit: []byte("requests")}
	s.add(fam, m, 10, 1)
	if n := testing.AllocsPerRun(100, func() { s.add(fam, m, 10, 2) }); n != 0 {
		t.Fatalf("%v allocations per known declaration", n)
	}
}

func TestMetadataStorePurge(t *testing.T) {
	var s metadataStore
	s.add([]byte("old"), md("h"), 0, 100)
	s.add([]byte("old_active"), md("h"), 0, 100)
	s.add([]byte("fresh"), md("h"), 0, 200)
	active := func(name string) bool { return name == "old_active" }
	if n := s.purge(150, active); n != 1 {
		t.Fatalf("purged %d, want 1", n)
	}
	if got := s.get("", 0); len(got) != 2 || got["old"] != nil {
		t.Fatalf("left %v", got)
	}
}

// metadataRequest builds a decoded v1 request with one sample of each series and
// metadata for each family.
func metadataRequest(t *testing.T, ts int64, series []string, families ...string) *remotewrite.Request {
	t.Helper()
	wr := &prompb.WriteRequest{}
	for _, name := range series {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}, Samples: []prompb.Sample{{Value: 1, Timestamp: ts}}})
	}
	for _, f := range families {
		wr.Metadata = append(wr.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: f, Help: "help of " + f})
	}
	return stratatest.DecodeV1(t, wr)
}

// max_metrics_with_metadata bounds the families per workspace; over it metadata is
// dropped and counted and the samples are stored. Families not declared for the retain
// period and without active series are forgotten, which makes room again.
func TestPushMetadataFamiliesLimitAndExpiry(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, func(l *limits.Limits) { l.MaxMetricsWithMetadata = 2 }), ws)
	now := time.Unix(1_800_000_000, 0)
	i.now = func() time.Time { return now }
	ctx := context.Background()
	push := func(series []string, families ...string) ingest.Result {
		t.Helper()
		res, err := i.Push(ctx, "ws-1", metadataRequest(t, now.UnixMilli(), series, families...), ingest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	refused := func() float64 {
		return testutil.ToFloat64(i.usage.DiscardedMetadata.WithLabelValues("ws-1", "per_user_metadata_limit"))
	}
	families := func() []string {
		t.Helper()
		md, err := i.Metadata(ctx, "ws-1", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range []string{"up", "a", "b", "c"} {
			if md[f] != nil {
				out = append(out, f)
			}
		}
		return out
	}

	// "up" has an active series; "a" has none.
	if res := push([]string{"up"}, "up", "a", "b"); res.Samples != 1 || res.Invalid != nil {
		t.Fatalf("push: %+v", res)
	}
	if got := fmt.Sprint(families()); got != "[up a]" || refused() != 1 {
		t.Fatalf("families %s, refused %v; want [up a] and b refused", got, refused())
	}

	// Within the retain period nothing is forgotten.
	now = now.Add(metadataRetainPeriod / 2)
	i.housekeeping(ctx)
	push([]string{"up"}, "c")
	if got := fmt.Sprint(families()); got != "[up a]" || refused() != 2 {
		t.Fatalf("families %s, refused %v", got, refused())
	}

	// "a" is not declared again and has no series: forgotten. "up" is not declared
	// again either, but its series is active (remote write 2.0 declares metadata with
	// new series only): kept.
	now = now.Add(metadataRetainPeriod/2 + time.Second)
	push([]string{"up"})
	i.housekeeping(ctx)
	if got := fmt.Sprint(families()); got != "[up]" {
		t.Fatalf("after the retain period: %s", got)
	}
	push(nil, "c")
	if got := fmt.Sprint(families()); got != "[up c]" || refused() != 2 {
		t.Fatalf("families %s, refused %v; want c in the freed slot", got, refused())
	}
}

// Remote write 2.0 metadata of new series counts against the same limit; the series is
// stored either way.
func TestPushV2MetadataFamiliesLimit(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, func(l *limits.Limits) { l.MaxMetricsWithMetadata = 1 }), ws)
	st := writev2.NewSymbolTable()
	now := time.Now().UnixMilli()
	wr := &writev2.Request{}
	for _, name := range []string{"a_total", "b_total"} {
		wr.Timeseries = append(wr.Timeseries, writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", name), nil),
			Samples:    []writev2.Sample{{Value: 1, Timestamp: now}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("help")},
		})
	}
	wr.Symbols = st.Symbols()
	b, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := decoder.Decode(remotewrite.V2, b)
	if err != nil {
		t.Fatal(err)
	}
	defer req.Release()
	res, err := i.Push(context.Background(), "ws-1", req, ingest.Options{})
	if err != nil || res.Samples != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	md, _ := i.Metadata(context.Background(), "ws-1", "", 0)
	if len(md) != 1 || md["a_total"] == nil {
		t.Fatalf("metadata %v", md)
	}
	if v := testutil.ToFloat64(i.usage.DiscardedMetadata.WithLabelValues("ws-1", "per_user_metadata_limit")); v != 1 {
		t.Fatalf("refused %v", v)
	}
}
