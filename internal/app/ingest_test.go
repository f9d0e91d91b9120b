package app

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/sigv4"

	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/testutil"
)

// newWorkspace creates an ACTIVE workspace and returns its id.
func newWorkspace(t testing.TB, r *running) string {
	t.Helper()
	ctx := context.Background()
	out, err := r.client().CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatal(err)
	}
	w := amp.NewWorkspaceActiveWaiter(r.client(), func(o *amp.WorkspaceActiveWaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 50 * time.Millisecond
	})
	if err := w.Wait(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: out.WorkspaceId}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.WorkspaceId)
}

// waitConfigurationActive returns once the reconciler has applied the workspace's last
// UpdateWorkspaceConfiguration, which leaves the configuration UPDATING until then.
func waitConfigurationActive(t testing.TB, r *running, ws string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "the configuration of "+ws+" to become ACTIVE", func() bool {
		out, err := r.client().DescribeWorkspaceConfiguration(context.Background(), &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(ws)})
		if err != nil {
			t.Fatal(err)
		}
		switch code := out.WorkspaceConfiguration.Status.StatusCode; code {
		case types.WorkspaceConfigurationStatusCodeActive:
			return true
		case types.WorkspaceConfigurationStatusCodeUpdating:
			return false
		default:
			t.Fatalf("configuration of %s is %s", ws, code)
			return false
		}
	})
}

func rwURL(r *running, ws string) string {
	return r.url + "/workspaces/" + ws + "/api/v1/remote_write"
}

// promClient is Prometheus' own remote-write client, as a real sender uses it.
func promClient(t *testing.T, target string, msg remoteapi.WriteMessageType) remote.WriteClient {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c, err := remote.NewWriteClient("test", &remote.ClientConfig{
		URL:           &config_util.URL{URL: u},
		Timeout:       model.Duration(10 * time.Second),
		WriteProtoMsg: msg,
		SigV4Config:   &sigv4.SigV4Config{Region: "us-east-1", AccessKey: testKeyID, SecretKey: config_util.Secret(testSecret)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func encodeV1(t *testing.T, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// post sends a raw remote-write body, signed with the test root key, and returns the
// status and response text.
func post(t *testing.T, target, contentType string, body []byte) (int, string, http.Header) {
	t.Helper()
	return postAs(t, &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}, target, contentType, body)
}

// postAs is post signed with creds; nil creds send the request unsigned.
func postAs(t *testing.T, creds *aws.Credentials, target, contentType string, body []byte) (int, string, http.Header) {
	t.Helper()
	return signedDo(t, creds, http.MethodPost, target, body, http.Header{"Content-Type": {contentType}, "Content-Encoding": {"snappy"}})
}

type sample struct {
	t int64
	v float64
}

// stored reads back every float sample of the workspace, by series.
func stored(t *testing.T, r *running, ws string, matchers ...*labels.Matcher) map[string][]sample {
	t.Helper()
	q, err := r.app.Ingester().Querier(context.Background(), ws, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if len(matchers) == 0 {
		matchers = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}
	}
	ss := q.Select(context.Background(), true, nil, matchers...)
	out := map[string][]sample{}
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt == chunkenc.ValFloat {
				ts, v := it.At()
				out[s.Labels().String()] = append(out[s.Labels().String()], sample{ts, v})
			} else {
				ts := it.AtT()
				out[s.Labels().String()] = append(out[s.Labels().String()], sample{ts, math.Inf(1)})
			}
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func ts(name string, lbls ...string) []prompb.Label {
	out := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(lbls); i += 2 {
		out = append(out, prompb.Label{Name: lbls[i], Value: lbls[i+1]})
	}
	return out
}

func TestRemoteWriteV1AndV2(t *testing.T) {
	r := start(t, "--data-dir", t.TempDir())
	ws := newWorkspace(t, r)
	now := time.Now().UnixMilli()
	ctx := context.Background()

	// Remote write 1.0 through Prometheus' client; labels deliberately unsorted.
	v1 := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "job", Value: "node"}, {Name: "__name__", Value: "up"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: now - 2000}, {Value: 0, Timestamp: now - 1000}}},
		{Labels: ts("temp_celsius", "room", "b"), Samples: []prompb.Sample{{Value: 21.5, Timestamp: now}}},
	}, Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "temp_celsius", Help: "Temperature."}}}
	c1 := promClient(t, rwURL(r, ws), remoteapi.WriteV1MessageType)
	if _, err := c1.Store(ctx, encodeV1(t, v1), 0); err != nil {
		t.Fatalf("v1 write: %v", err)
	}
	got := stored(t, r, ws)
	if fmt.Sprint(got[`{__name__="up", job="node"}`]) != fmt.Sprint([]sample{{now - 2000, 1}, {now - 1000, 0}}) ||
		fmt.Sprint(got[`{__name__="temp_celsius", room="b"}`]) != fmt.Sprint([]sample{{now, 21.5}}) {
		t.Fatalf("stored after v1: %v", got)
	}

	// Remote write 2.0: symbols, a native histogram, an exemplar, metadata.
	h := &histogram.Histogram{Count: 5, Sum: 12, Schema: 0, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0}}
	st := writev2.NewSymbolTable()
	v2 := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "req_total", "code", "200"), nil),
			Samples:   []writev2.Sample{{Value: 7, Timestamp: now}},
			Exemplars: []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "abc"), nil), Value: 7, Timestamp: now}},
			Metadata:  writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Requests.")}},
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "latency_seconds"), nil),
			Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, now, h)}},
	}}
	v2.Symbols = st.Symbols()
	b, err := v2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2 := promClient(t, rwURL(r, ws), remoteapi.WriteV2MessageType)
	stats, err := c2.Store(ctx, snappy.Encode(nil, b), 0)
	if err != nil {
		t.Fatalf("v2 write: %v", err)
	}
	if !stats.Confirmed || stats.Samples != 1 || stats.Histograms != 1 || stats.Exemplars != 1 {
		t.Fatalf("v2 written stats: %+v", stats)
	}
	got = stored(t, r, ws)
	if len(got[`{__name__="req_total", code="200"}`]) != 1 || len(got[`{__name__="latency_seconds"}`]) != 1 {
		t.Fatalf("stored after v2: %v", got)
	}

	// The same batch again stores nothing twice: the write path is replayable.
	if _, err := c1.Store(ctx, encodeV1(t, v1), 0); err != nil {
		t.Fatalf("v1 replay: %v", err)
	}
	if again := stored(t, r, ws); len(again[`{__name__="up", job="node"}`]) != 2 {
		t.Fatalf("replay duplicated samples: %v", again)
	}

	code, metrics := get(t, r.internal+"/metrics")
	if code != 200 {
		t.Fatal(code)
	}
	for _, want := range []string{
		// The replayed request counts again: a sender is billed for what it sends.
		fmt.Sprintf(`strata_workspace_ingested_samples_total{workspace="%s"} 7`, ws),
		fmt.Sprintf(`strata_workspace_ingested_histograms_total{workspace="%s"} 1`, ws),
		fmt.Sprintf(`strata_workspace_ingested_exemplars_total{workspace="%s"} 1`, ws),
		`strata_http_requests_total{method="POST",route="RemoteWrite",status="204"} 3`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRemoteWriteRejections(t *testing.T) {
	r := start(t, "--data-dir", t.TempDir(), "--distributor.max-request-body-bytes", "4096")
	ws := newWorkspace(t, r)
	target := rwURL(r, ws)
	now := time.Now().UnixMilli()
	good := prompb.TimeSeries{Labels: ts("good_metric", "a", "1"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}

	cases := []struct {
		name        string
		series      []prompb.TimeSeries
		status      int
		inMessage   []string
		storedGood  bool
		contentType string
		body        []byte
		target      string
	}{
		{name: "invalid metric name", series: []prompb.TimeSeries{good, {Labels: ts("bad-name"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}},
			status: 400, inMessage: []string{"metric_name_invalid", `bad-name`, "1 samples"}, storedGood: true},
		{name: "missing metric name", series: []prompb.TimeSeries{good, {Labels: []prompb.Label{{Name: "job", Value: "x"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}},
			status: 400, inMessage: []string{"missing_metric_name", `job="x"`}, storedGood: true},
		{name: "invalid label name", series: []prompb.TimeSeries{good, {Labels: ts("m", "0bad", "x"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}},
			status: 400, inMessage: []string{"label_invalid", "0bad"}, storedGood: true},
		{name: "duplicate label", series: []prompb.TimeSeries{good, {Labels: ts("m", "a", "1", "a", "2"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}},
			status: 400, inMessage: []string{"duplicate_label_names"}, storedGood: true},
		{name: "too old", series: []prompb.TimeSeries{good, {Labels: ts("old_metric"), Samples: []prompb.Sample{{Value: 1, Timestamp: now - 2*3600*1000}}}},
			status: 400, inMessage: []string{"greater_than_max_sample_age", "old_metric"}, storedGood: true},
		{name: "future", series: []prompb.TimeSeries{good, {Labels: ts("future_metric"), Samples: []prompb.Sample{{Value: 1, Timestamp: now + 3600*1000}}}},
			status: 400, inMessage: []string{"too_far_in_future"}, storedGood: true},
		{name: "unsupported content type", contentType: "application/json", body: []byte("{}"), status: 415, inMessage: []string{"application/x-protobuf"}},
		{name: "bad snappy", contentType: "application/x-protobuf", body: []byte("not snappy at all"), status: 400, inMessage: []string{"snappy"}},
		{name: "malformed protobuf", contentType: "application/x-protobuf", body: snappy.Encode(nil, []byte{0x0a, 0xff, 0xff}), status: 400, inMessage: []string{"malformed"}},
		{name: "body too large", contentType: "application/x-protobuf", body: make([]byte, 5000), status: 413, inMessage: []string{"4096"}},
		{name: "snappy bomb", contentType: "application/x-protobuf", body: snappy.Encode(nil, make([]byte, 64<<20)), status: 413, inMessage: []string{"limit"}},
		{name: "unknown workspace", target: rwURL(r, "ws-00000000-0000-0000-0000-000000000000"), contentType: "application/x-protobuf", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{good}}), status: 404, inMessage: []string{"not found"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, ct, tgt := tc.body, tc.contentType, tc.target
			if body == nil {
				body = encodeV1(t, &prompb.WriteRequest{Timeseries: tc.series})
				ct = "application/x-protobuf"
			}
			if tgt == "" {
				tgt = target
			}
			code, msg, _ := post(t, tgt, ct, body)
			if code != tc.status {
				t.Fatalf("status %d (%s), want %d", code, msg, tc.status)
			}
			for _, want := range tc.inMessage {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
		})
	}
	got := stored(t, r, ws)
	if len(got) != 1 || len(got[`{__name__="good_metric", a="1"}`]) != 1 {
		t.Fatalf("stored: %v (want only the good series, once)", got)
	}
	_, metrics := get(t, r.internal+"/metrics")
	for _, reason := range []string{"metric_name_invalid", "missing_metric_name", "label_invalid", "duplicate_label_names", "greater_than_max_sample_age", "too_far_in_future"} {
		if want := fmt.Sprintf(`strata_workspace_discarded_samples_total{reason="%s",workspace="%s"} 1`, reason, ws); !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func writeOverrides(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// setOverrides replaces the runtime limits file at path with body and returns once the
// limits body sets for ws are in force. The file is reloaded on the limits' own ticker
// (--limits.runtime-config-reload-period), with no way to reload now from outside their
// package, so this waits for the reload to show rather than for a guessed time.
func setOverrides(t *testing.T, r *running, path, ws, body string) {
	t.Helper()
	want, err := limits.ParseRuntimeConfig([]byte(body), *r.app.limits.Defaults())
	if err != nil || want[ws] == nil {
		t.Fatalf("the runtime limits set nothing for %s: %v", ws, err)
	}
	writeOverrides(t, path, body)
	testutil.Eventually(t, 10*time.Second, "the runtime limits of "+ws+" to be reloaded", func() bool {
		return *r.app.limits.For(ws) == *want[ws]
	})
}

func TestQuotas(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "runtime.yaml")
	writeOverrides(t, rc, "overrides: {}\n")
	r := start(t, "--data-dir", dir, "--limits.runtime-config-file", rc, "--limits.runtime-config-reload-period", "50ms")
	ws := newWorkspace(t, r)
	target := rwURL(r, ws)
	now := time.Now().UnixMilli()
	send := func(series ...prompb.TimeSeries) (int, string, http.Header) {
		return post(t, target, "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: series}))
	}
	one := func(name string, n int, lbls ...string) prompb.TimeSeries {
		return prompb.TimeSeries{Labels: ts(name, lbls...), Samples: []prompb.Sample{{Value: float64(n), Timestamp: now + int64(n)}}}
	}
	waitLimits := func(body string) { setOverrides(t, r, rc, ws, body) }

	// Active series: 3 per workspace. New series beyond are refused, known ones keep going.
	waitLimits(fmt.Sprintf("overrides:\n  %s:\n    max_active_series: 3\n", ws))
	if code, msg, _ := send(one("a", 1), one("b", 1), one("c", 1)); code != 204 {
		t.Fatalf("first three series: %d %s", code, msg)
	}
	code, msg, _ := send(one("a", 2), one("d", 2))
	if code != 429 || !strings.Contains(msg, "series limit of 3") || !strings.Contains(msg, "max_active_series") {
		t.Fatalf("fourth series: %d %s", code, msg)
	}
	if got := stored(t, r, ws); len(got) != 3 || len(got[`{__name__="a"}`]) != 2 {
		t.Fatalf("after series limit: %v", got)
	}

	// Per metric: 2 series of one metric name.
	waitLimits(fmt.Sprintf("overrides:\n  %s:\n    max_active_series_per_metric: 2\n", ws))
	send(one("m", 1, "i", "1"), one("m", 1, "i", "2"))
	code, msg, _ = send(one("m", 2, "i", "3"), one("other", 2))
	if code != 429 || !strings.Contains(msg, "per-metric series limit of 2 exceeded for metric m") {
		t.Fatalf("per-metric limit: %d %s", code, msg)
	}
	if got := stored(t, r, ws); len(got[`{__name__="other"}`]) != 1 || got[`{__name__="m", i="3"}`] != nil {
		t.Fatalf("after per-metric limit: %v", got)
	}

	// Label sets from UpdateWorkspaceConfiguration: team="x" at most 1 series.
	ctx := context.Background()
	if _, err := r.client().UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{
		WorkspaceId:       aws.String(ws),
		LimitsPerLabelSet: []types.LimitsPerLabelSet{{LabelSet: map[string]string{"team": "x"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1)}}},
	}); err != nil {
		t.Fatal(err)
	}
	waitConfigurationActive(t, r, ws)
	send(one("ls", 1, "team", "x", "i", "1"))
	code, msg, _ = send(one("ls", 2, "team", "x", "i", "2"), one("ls", 2, "team", "y", "i", "3"))
	if code != 429 || !strings.Contains(msg, `per-labelset series limit of 1 exceeded for label set {team="x"}`) {
		t.Fatalf("label-set limit: %d %s", code, msg)
	}
	if got := stored(t, r, ws); got[`{__name__="ls", i="3", team="y"}`] == nil || got[`{__name__="ls", i="2", team="x"}`] != nil {
		t.Fatalf("after label-set limit: %v", got)
	}

	// Ingestion rate: 10 samples/s, burst 20.
	waitLimits(fmt.Sprintf("overrides:\n  %s:\n    ingestion_rate: 10\n    ingestion_burst_size: 20\n", ws))
	var series []prompb.TimeSeries
	for i := range 15 {
		series = append(series, one("a", 100+i))
	}
	if code, msg, _ := send(series[:1]...); code != 204 {
		t.Fatalf("under the rate: %d %s", code, msg)
	}
	code, msg, hdr := send(series...)
	if code != 204 {
		t.Fatalf("within the burst: %d %s", code, msg)
	}
	code, msg, hdr = send(series...)
	if code != 429 || !strings.Contains(msg, "ingestion rate limit of 10 samples/s") || hdr.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %s (Retry-After %q)", code, msg, hdr.Get("Retry-After"))
	}
	code, msg, _ = send(append(series, series...)...)
	if code != 400 || !strings.Contains(msg, "burst size of 20") {
		t.Fatalf("larger than the burst: %d %s", code, msg)
	}
	_, metrics := get(t, r.internal+"/metrics")
	for _, q := range []string{"active_series", "active_series_per_metric", "active_series_per_label_set", "ingestion_rate"} {
		if want := fmt.Sprintf(`strata_workspace_throttled_requests_total{quota="%s",workspace="%s"}`, q, ws); !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestHADeduplication(t *testing.T) {
	const failover = time.Second
	r := start(t, "--data-dir", t.TempDir(), "--ha-tracker.failover-timeout", failover.String(), "--ha-tracker.update-timeout", "100ms")
	ws := newWorkspace(t, r)
	target := rwURL(r, ws)
	// Samples carry their own timestamps, one millisecond apart, so that no two collide
	// however fast they are sent.
	t0 := time.Now().UnixMilli()
	send := func(replica string, v float64, at int64) (int, string) {
		code, msg, _ := post(t, target, "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: ts("ha_metric", "cluster", "prod", "__replica__", replica), Samples: []prompb.Sample{{Value: v, Timestamp: at}}},
		}}))
		return code, msg
	}
	var leaderLast time.Time
	for i := range 3 {
		if code, msg := send("r1", float64(i), t0+int64(i)); code != 204 {
			t.Fatalf("leader: %d %s", code, msg)
		}
		leaderLast = time.Now()
		if code, msg := send("r2", 100+float64(i), t0+int64(i)); code != 204 {
			t.Fatalf("follower must get 2xx too: %d %s", code, msg)
		}
	}
	got := stored(t, r, ws)
	vals := got[`{__name__="ha_metric", cluster="prod"}`]
	if len(got) != 1 || len(vals) != 3 || vals[2].v != 2 {
		t.Fatalf("only the leader's samples, without the replica label: %v", got)
	}
	// Leader stops; after the failover timeout the other replica takes over. The tracker
	// reads the distributor's clock, which cannot be set from this package, so this waits
	// for the timeout to pass on the same clock: the leader's last sample was received
	// before leaderLast, so from here on the follower is at least failover behind it.
	testutil.Eventually(t, failover+5*time.Second, "the failover timeout to pass since the leader's last sample", func() bool {
		return time.Since(leaderLast) >= failover
	})
	if code, msg := send("r2", 200, t0+3); code != 204 {
		t.Fatalf("failover: %d %s", code, msg)
	}
	if code, msg := send("r1", 3, t0+4); code != 204 {
		t.Fatalf("old leader: %d %s", code, msg)
	}
	vals = stored(t, r, ws)[`{__name__="ha_metric", cluster="prod"}`]
	if len(vals) != 4 || vals[3].v != 200 {
		t.Fatalf("after failover: %v", vals)
	}
	_, metrics := get(t, r.internal+"/metrics")
	if want := fmt.Sprintf(`strata_workspace_discarded_samples_total{reason="ha_non_elected_replica",workspace="%s"} 4`, ws); !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestHAElectionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--ha-tracker.failover-timeout", "30s", "--ha-tracker.update-timeout", "100ms"}
	r := start(t, args...)
	ws := newWorkspace(t, r)
	body := func(replica string) []byte {
		return encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: ts("ha_metric", "cluster", "c", "__replica__", replica), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}}})
	}
	post(t, rwURL(r, ws), "application/x-protobuf", body("r1"))
	r.stop()
	r2 := start(t, args...)
	post(t, rwURL(r2, ws), "application/x-protobuf", body("r2"))
	got := stored(t, r2, ws)
	if n := len(got[`{__name__="ha_metric", cluster="c"}`]); n != 1 {
		t.Fatalf("after restart the follower's sample was stored: %v", got)
	}
}

func TestDeleteWorkspaceRemovesData(t *testing.T) {
	dir := t.TempDir()
	r := start(t, "--data-dir", dir)
	ws := newWorkspace(t, r)
	code, msg, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: ts("m"), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}}}))
	if code != 204 {
		t.Fatalf("%d %s", code, msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "tsdb", ws)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.client().DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(ws)}); err != nil {
		t.Fatal(err)
	}
	w := amp.NewWorkspaceDeletedWaiter(r.client(), func(o *amp.WorkspaceDeletedWaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 50 * time.Millisecond
	})
	if err := w.Wait(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tsdb", ws)); !os.IsNotExist(err) {
		t.Fatalf("TSDB directory still there: %v", err)
	}
	code, _, _ = post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{}))
	if code != 404 {
		t.Fatalf("write to a deleted workspace: %d", code)
	}
	_, metrics := get(t, r.internal+"/metrics")
	if strings.Contains(metrics, ws) {
		t.Fatal("/metrics still has series of the deleted workspace")
	}
}

func TestHAClusterLimit(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "runtime.yaml")
	writeOverrides(t, rc, "overrides: {}\n")
	r := start(t, "--data-dir", dir, "--limits.runtime-config-file", rc, "--limits.runtime-config-reload-period", "50ms")
	ws := newWorkspace(t, r)
	setOverrides(t, r, rc, ws, fmt.Sprintf("overrides:\n  %s:\n    max_ha_clusters: 1\n", ws))
	// Each request's samples are a millisecond after the previous one's, so that "plain"
	// is stored twice however fast they are sent.
	t0 := time.Now().UnixMilli()
	send := func(cluster string, at int64) (int, string) {
		code, msg, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: ts("m", "cluster", cluster, "__replica__", "a"), Samples: []prompb.Sample{{Value: 1, Timestamp: at}}},
			{Labels: ts("plain"), Samples: []prompb.Sample{{Value: 1, Timestamp: at}}},
		}}))
		return code, msg
	}
	if code, msg := send("one", t0); code != 204 {
		t.Fatalf("first cluster: %d %s", code, msg)
	}
	code, msg := send("two", t0+1)
	if code != 400 || !strings.Contains(msg, "limit of 1 clusters") || !strings.Contains(msg, "max_ha_clusters") || !strings.Contains(msg, "1 samples") {
		t.Fatalf("second cluster: %d %s", code, msg)
	}
	if got := stored(t, r, ws); len(got[`{__name__="plain"}`]) != 2 || got[`{__name__="m", cluster="two"}`] != nil {
		t.Fatalf("stored: %v", got)
	}
}
