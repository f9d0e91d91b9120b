package distributor

// Regression tests for two holes an outside review found, driven through the real
// remote-write handler with protobuf+snappy bodies, over the limits' flag defaults:
//
//   - remote-write metadata was neither validated nor bounded (memory exhaustion);
//   - HA cluster/replica label values skipped the label limits and reached the HA
//     tracker, and its persisted state, whole.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/hatracker"
	"github.com/stratametrics/strata/internal/limits"
)

func discardedMetadata(t *testing.T, e *env, reason string) float64 {
	t.Helper()
	return e.counter(t, "strata_workspace_discarded_metadata_total", map[string]string{"workspace": testWS, "reason": reason})
}

func discardedSamples(t *testing.T, e *env, reason string) float64 {
	t.Helper()
	return e.counter(t, "strata_workspace_discarded_samples_total", map[string]string{"workspace": testWS, "reason": reason})
}

// Metadata longer than max_metadata_length (default 1024 bytes, for the family name, the
// help and the unit) or of an unknown type is not stored, is counted, and answers 400
// like an invalid series; the samples of the request are stored all the same.
func TestRemoteWriteV1InvalidMetadataIsRefusedSamplesKept(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UnixMilli()
	long := strings.Repeat("x", 1025)
	code, msg := e.postV1(t, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{Labels: lbls("good"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "good", Help: "Fine.", Unit: "seconds"},
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "long_help", Help: long},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "long_unit", Help: "h", Unit: long},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "m" + long, Help: "h"},
			{Type: prompb.MetricMetadata_MetricType(42), MetricFamilyName: "bad_type", Help: "h"},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "", Help: "h"},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "bad-name", Help: "h"},
		},
	})
	if code != http.StatusBadRequest || !contains(msg, "help_too_long", "max_metadata_length", "long_help", "1 samples") {
		t.Fatalf("got %d %q, want 400 naming the first bad metadata and what was stored", code, msg)
	}
	if len(msg) > 2048 {
		t.Errorf("answer of %d bytes repeats the oversized value", len(msg))
	}
	if got := e.stored(t); got[`{__name__="good"}`] != 1 {
		t.Fatalf("the sample was not stored: %v", got)
	}
	if got := e.metadata(t); len(got) != 1 || fmt.Sprint(got["good"]) != "[gauge|Fine.|seconds]" {
		t.Fatalf("stored metadata %v, want only the valid entry", got)
	}
	for reason, want := range map[string]float64{
		"help_too_long": 1, "unit_too_long": 1, "metric_name_too_long": 1,
		"metadata_type_invalid": 1, "missing_metric_name": 1, "metric_name_invalid": 1,
	} {
		if got := discardedMetadata(t, e, reason); got != want {
			t.Errorf("discarded metadata %s = %v, want %v", reason, got, want)
		}
	}
	if got := discardedSamples(t, e, "help_too_long"); got != 0 {
		t.Errorf("metadata problems counted as discarded samples: %v", got)
	}
}

// Remote write 2.0 carries metadata per series: an invalid one is dropped from the
// series, whose samples are stored.
func TestRemoteWriteV2InvalidMetadataIsRefusedSamplesKept(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UnixMilli()
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "long_help_total"), nil),
			Samples:  []writev2.Sample{{Value: 1, Timestamp: now}},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize(strings.Repeat("h", 4096))}},
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "bad_type"), nil),
			Samples:  []writev2.Sample{{Value: 1, Timestamp: now}},
			Metadata: writev2.Metadata{Type: writev2.Metadata_MetricType(99), HelpRef: st.Symbolize("Typed.")}},
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "good_total"), nil),
			Samples:  []writev2.Sample{{Value: 1, Timestamp: now}},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Good."), UnitRef: st.Symbolize("requests")}},
	}}
	req.Symbols = st.Symbols()
	code, msg := e.postV2(t, req)
	if code != http.StatusBadRequest || !contains(msg, "help_too_long", "max_metadata_length", "3 samples") {
		t.Fatalf("got %d %q", code, msg)
	}
	if got := e.stored(t); len(got) != 3 {
		t.Fatalf("samples lost: %v", got)
	}
	if got := e.metadata(t); len(got) != 1 || fmt.Sprint(got["good_total"]) != "[counter|Good.|requests]" {
		t.Fatalf("stored metadata %v, want only good_total's", got)
	}
	if a, b := discardedMetadata(t, e, "help_too_long"), discardedMetadata(t, e, "metadata_type_invalid"); a != 1 || b != 1 {
		t.Fatalf("discarded metadata: help_too_long %v, metadata_type_invalid %v", a, b)
	}
}

// Prometheus sends remote write 1.0 metadata in requests of their own, without series.
func TestRemoteWriteV1MetadataOnlyRequestIsStored(t *testing.T) {
	e := newEnv(t, nil)
	code, msg := e.postV1(t, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests."},
	}})
	if code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	if got := e.metadata(t); fmt.Sprint(got["http_requests_total"]) != "[counter|Requests.|]" {
		t.Fatalf("stored metadata %v", got)
	}
}

// At most max_metrics_with_metadata (AMP: 20,000) metric families per workspace keep
// metadata; beyond it metadata of new families is dropped and counted, silently, as in
// AMP, and the samples are stored. Families already known keep being updated.
func TestRemoteWriteMetadataFamiliesPerWorkspaceAreBounded(t *testing.T) {
	e := newEnv(t, nil)
	const limit, over = 20000, 25
	now := time.Now().UnixMilli()
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls("up"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}}
	for i := range limit + over {
		wr.Metadata = append(wr.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: fmt.Sprintf("m%d", i), Help: "h"})
	}
	if code, msg := e.postV1(t, wr); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	md := e.metadata(t)
	if len(md) != limit {
		t.Fatalf("%d families with metadata, want the limit of %d", len(md), limit)
	}
	if got := discardedMetadata(t, e, "per_user_metadata_limit"); got != over {
		t.Fatalf("discarded per_user_metadata_limit = %v, want %d", got, over)
	}
	if got := e.stored(t); got[`{__name__="up"}`] != 1 {
		t.Fatalf("sample lost: %v", got)
	}
	// A known family still takes a new declaration at the limit.
	code, _ := e.postV1(t, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "m0", Help: "new"}}})
	if md := e.metadata(t); code != http.StatusNoContent || len(md) != limit || len(md["m0"]) != 2 {
		t.Fatalf("update of a known family at the limit: %d, %d families, m0 %v", code, len(md), md["m0"])
	}
}

// haState reads the HA elections as persisted in the bucket.
func haState(t *testing.T, e *env) []hatracker.Entry {
	t.Helper()
	e.d.persistHA(context.Background())
	rc, err := e.bkt.Get(context.Background(), haObject)
	if e.bkt.IsObjNotFoundErr(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	var entries []hatracker.Entry
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	return entries
}

func checkHAState(t *testing.T, e *env, maxLen int) []hatracker.Entry {
	t.Helper()
	entries := haState(t, e)
	for _, en := range entries {
		if len(en.Cluster) > maxLen || len(en.Replica) > maxLen || !utf8.ValidString(en.Cluster) || !utf8.ValidString(en.Replica) {
			t.Errorf("persisted HA state holds an invalid value: cluster of %d bytes, replica of %d bytes", len(en.Cluster), len(en.Replica))
		}
	}
	return entries
}

// HA cluster and replica values obey the label limits like every other label, before they
// reach the HA tracker: the series is refused (400, counted), the rest of the request is
// stored, and nothing is elected or persisted.
func TestRemoteWriteHALabelsObeyLabelLimits(t *testing.T) {
	e := newEnv(t, nil) // max_label_value_length 2048
	now := time.Now().UnixMilli()
	junk := strings.Repeat("c", 3000)
	send := func(series ...prompb.TimeSeries) (int, string) {
		t.Helper()
		plain := prompb.TimeSeries{Labels: lbls("plain"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}
		now++
		return e.postV1(t, &prompb.WriteRequest{Timeseries: append(series, plain)})
	}
	ha := func(cluster, replica string, extra ...string) prompb.TimeSeries {
		return prompb.TimeSeries{Labels: lbls("m", append([]string{"cluster", cluster, "__replica__", replica}, extra...)...), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}
	}
	tooManyLabels := make([]string, 0, 2*80)
	for i := range 80 {
		tooManyLabels = append(tooManyLabels, fmt.Sprintf("l%d", i), "v")
	}
	for _, tc := range []struct {
		name   string
		series prompb.TimeSeries
		reason string
	}{
		{"over-length cluster", ha(junk, "r1"), "label_value_too_long"},
		{"over-length replica", ha("prod", junk), "label_value_too_long"},
		{"invalid UTF-8 cluster", ha("\xff\xfe", "r1"), "label_invalid"},
		{"invalid UTF-8 replica", ha("prod", "r\xff"), "label_invalid"},
		// With too many labels the label scan stops early; the HA values must still be checked.
		{"over-length cluster, too many labels", ha(junk, "r1", tooManyLabels...), "label_value_too_long"},
	} {
		before := discardedSamples(t, e, tc.reason)
		code, msg := send(tc.series)
		if code != http.StatusBadRequest || !contains(msg, tc.reason, "1 samples") {
			t.Errorf("%s: got %d %.300q, want 400 naming %s, the valid rest stored", tc.name, code, msg, tc.reason)
		}
		if got := discardedSamples(t, e, tc.reason) - before; got != 1 {
			t.Errorf("%s: discarded %s grew by %v, want 1", tc.name, tc.reason, got)
		}
		if n := e.d.ha.Clusters(testWS); n != 0 {
			t.Fatalf("%s: %d HA clusters tracked, want none", tc.name, n)
		}
	}
	if got := e.stored(t); got[`{__name__="plain"}`] != 5 || len(got) != 1 {
		t.Fatalf("stored %v, want the 5 valid samples only", got)
	}

	// Many distinct junk clusters: nothing tracked, nothing persisted.
	for i := range 200 {
		if code, _ := send(ha(fmt.Sprintf("%s%d", junk, i), "r1")); code != http.StatusBadRequest {
			t.Fatalf("junk cluster %d: %d", i, code)
		}
	}
	if n := e.d.ha.Clusters(testWS); n != 0 {
		t.Fatalf("%d HA clusters tracked after junk", n)
	}
	if entries := checkHAState(t, e, 2048); len(entries) != 0 {
		t.Fatalf("%d HA elections persisted after junk", len(entries))
	}
}

// The HA label names obey max_label_name_length too (they are set by the operator, but
// the same limit applies to every label that is stored or persisted).
func TestRemoteWriteHALabelNamesObeyNameLength(t *testing.T) {
	e := newEnv(t, func(l *limits.Limits) { l.MaxLabelNameLength = 8 }) // "__replica__" is 11 bytes
	code, msg := e.postV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("m", "cluster", "prod", "__replica__", "r1"), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}},
	}})
	if code != http.StatusBadRequest || !contains(msg, "label_name_too_long") {
		t.Fatalf("%d %s", code, msg)
	}
	if n := e.d.ha.Clusters(testWS); n != 0 {
		t.Fatalf("%d HA clusters tracked", n)
	}
	if entries := checkHAState(t, e, 2048); len(entries) != 0 {
		t.Fatalf("persisted %+v", entries)
	}
}

// Distinct valid cluster values beyond max_ha_clusters are refused before anything is
// kept: the tracker and the persisted state hold exactly the limit.
func TestRemoteWriteHAClustersBoundedByLimit(t *testing.T) {
	const limit = 3
	e := newEnv(t, func(l *limits.Limits) { l.MaxHAClusters = limit })
	now := time.Now().UnixMilli()
	long := strings.Repeat("c", 2000) // valid: under max_label_value_length
	for i := range 100 {
		code, msg := e.postV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("m", "cluster", fmt.Sprintf("%s%03d", long, i), "__replica__", "r1"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}},
		}})
		if want := http.StatusNoContent; i >= limit {
			if code != http.StatusBadRequest || !contains(msg, "max_ha_clusters") {
				t.Fatalf("cluster %d: %d %s", i, code, msg)
			}
		} else if code != want {
			t.Fatalf("cluster %d: %d %s", i, code, msg)
		}
		if i%10 == 0 {
			checkHAState(t, e, 2048)
		}
	}
	if n := e.d.ha.Clusters(testWS); n != limit {
		t.Fatalf("%d HA clusters tracked, want %d", n, limit)
	}
	if entries := checkHAState(t, e, 2048); len(entries) != limit {
		t.Fatalf("%d HA elections persisted, want %d", len(entries), limit)
	}
	if got := discardedSamples(t, e, "too_many_ha_clusters"); got != 100-limit {
		t.Fatalf("too_many_ha_clusters = %v", got)
	}
}

// Elections persisted before the label limits applied to HA values (or by hand) with
// values no request could now elect are dropped when loaded, so they neither count
// towards max_ha_clusters nor get persisted again.
func TestLoadHADropsInvalidElections(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UTC()
	entries := []hatracker.Entry{
		{Workspace: testWS, Cluster: "prod", Replica: "r1", ReceivedAt: now, ElectedAt: now},
		{Workspace: testWS, Cluster: strings.Repeat("c", 5000), Replica: "r1", ReceivedAt: now, ElectedAt: now},
		{Workspace: testWS, Cluster: "other", Replica: strings.Repeat("r", 5000), ReceivedAt: now, ElectedAt: now},
	}
	body, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bkt.Upload(context.Background(), haObject, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := e.d.LoadHA(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.d.ha.Clusters(testWS); n != 1 {
		t.Fatalf("%d clusters restored, want the one valid election", n)
	}
	if _, ok := e.d.ha.Elected(testWS, "prod"); !ok {
		t.Fatal("the valid election was lost")
	}
	// The persisted state is rewritten without them.
	if got := checkHAState(t, e, 2048); len(got) != 1 || got[0].Cluster != "prod" {
		t.Fatalf("persisted after load: %d entries", len(got))
	}
}

// failingUploads fails the first fail uploads to its bucket.
type failingUploads struct {
	objstore.Bucket
	fail int
}

func (b *failingUploads) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if b.fail > 0 {
		b.fail--
		return errors.New("bucket unavailable")
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// An election whose write to the bucket failed is written at the next try even when
// nothing else changed since.
func TestHAElectionsPersistAfterAFailedWrite(t *testing.T) {
	e := newEnv(t, nil)
	e.d.bkt = &failingUploads{Bucket: e.bkt, fail: 1}
	code, msg := e.postV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("m", "cluster", "prod", "__replica__", "r1"), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}},
	}})
	if code != http.StatusNoContent {
		t.Fatalf("write: %d %s", code, msg)
	}
	e.d.persistHA(context.Background()) // fails
	if got := haState(t, e); len(got) != 1 || got[0].Cluster != "prod" || got[0].Replica != "r1" {
		t.Fatalf("persisted after the retry: %+v", got)
	}
	if _, ok := e.d.ha.Elected(testWS, "prod"); !ok {
		t.Fatal("the election was lost in memory")
	}
}
