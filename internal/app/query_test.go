package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/prometheus/prompb"
)

// queryAPI sends a signed GET to the workspace's Prometheus API and decodes the answer.
func queryAPI(t testing.TB, r *running, ws, path string, params url.Values) (int, map[string]any) {
	t.Helper()
	return queryAPIAs(t, &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}, r, ws, path, params)
}

// queryAPIAs is queryAPI signed with creds.
func queryAPIAs(t testing.TB, creds *aws.Credentials, r *running, ws, path string, params url.Values) (int, map[string]any) {
	t.Helper()
	u := r.url + "/workspaces/" + ws + "/api/v1/" + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	code, b, _ := signedDo(t, creds, http.MethodGet, u, nil, nil)
	var out map[string]any
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		t.Fatalf("%s: not JSON: %s", path, b)
	}
	return code, out
}

func TestQueryWhatWasWritten(t *testing.T) {
	r := start(t, "--data-dir", t.TempDir())
	ws := newWorkspace(t, r)
	now := time.Now().Truncate(time.Second)
	var series []prompb.TimeSeries
	for i := range 3 {
		series = append(series, prompb.TimeSeries{
			Labels:  ts("http_requests_total", "job", "api", "instance", fmt.Sprint(i)),
			Samples: []prompb.Sample{{Value: float64(10 * i), Timestamp: now.Add(-time.Minute).UnixMilli()}, {Value: float64(10*i + 60), Timestamp: now.UnixMilli()}},
		})
	}
	code, msg, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{
		Timeseries: series,
		Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests."}},
	}))
	if code != 204 {
		t.Fatalf("write: %d %s", code, msg)
	}
	at := fmt.Sprint(now.Unix())

	code, out := queryAPI(t, r, ws, "query", url.Values{"query": {"sum(http_requests_total)"}, "time": {at}})
	res := out["data"].(map[string]any)["result"].([]any)
	if code != 200 || len(res) != 1 || res[0].(map[string]any)["value"].([]any)[1] != "210" {
		t.Fatalf("instant query: %d %v", code, out)
	}
	code, out = queryAPI(t, r, ws, "query_range", url.Values{"query": {"http_requests_total"}, "start": {fmt.Sprint(now.Add(-time.Minute).Unix())}, "end": {at}, "step": {"60"}})
	if code != 200 || len(out["data"].(map[string]any)["result"].([]any)) != 3 {
		t.Fatalf("range query: %d %v", code, out)
	}
	code, out = queryAPI(t, r, ws, "series", url.Values{"match[]": {`{job="api"}`}})
	if code != 200 || len(out["data"].([]any)) != 3 {
		t.Fatalf("series: %d %v", code, out)
	}
	code, out = queryAPI(t, r, ws, "labels", nil)
	if code != 200 || fmt.Sprint(out["data"]) != "[__name__ instance job]" {
		t.Fatalf("labels: %d %v", code, out)
	}
	code, out = queryAPI(t, r, ws, "label/instance/values", nil)
	if code != 200 || fmt.Sprint(out["data"]) != "[0 1 2]" {
		t.Fatalf("label values: %d %v", code, out)
	}
	code, out = queryAPI(t, r, ws, "metadata", nil)
	if code != 200 || !strings.Contains(fmt.Sprint(out["data"]), "counter") {
		t.Fatalf("metadata: %d %v", code, out)
	}
	code, out = queryAPI(t, r, ws, "status/tsdb", nil)
	if code != 200 || !strings.Contains(fmt.Sprint(out["data"]), "http_requests_total") {
		t.Fatalf("status/tsdb: %d %v", code, out)
	}
	code, out = queryAPI(t, r, ws, "query", url.Values{"query": {"sum(("}})
	if code != 400 || out["errorType"] != "bad_data" {
		t.Fatalf("bad query: %d %v", code, out)
	}
	code, _ = queryAPI(t, r, "ws-00000000-0000-0000-0000-000000000000", "query", url.Values{"query": {"up"}})
	if code != 404 {
		t.Fatalf("unknown workspace: %d", code)
	}
	_, metrics := get(t, r.internal+"/metrics")
	if want := fmt.Sprintf(`strata_workspace_query_samples_processed_total{workspace="%s"}`, ws); !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestQueryLimitsPerWorkspace(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "runtime.yaml")
	writeOverrides(t, rc, "overrides: {}\n")
	r := start(t, "--data-dir", dir, "--limits.runtime-config-file", rc, "--limits.runtime-config-reload-period", "50ms")
	limited, free := newWorkspace(t, r), newWorkspace(t, r)
	now := time.Now()
	for _, ws := range []string{limited, free} {
		var series []prompb.TimeSeries
		for i := range 3 {
			series = append(series, prompb.TimeSeries{Labels: ts("m", "i", fmt.Sprint(i)), Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}}})
		}
		if code, msg, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: series})); code != 204 {
			t.Fatalf("write: %d %s", code, msg)
		}
	}
	setOverrides(t, r, rc, limited, fmt.Sprintf("overrides:\n  %s:\n    max_query_series: 2\n", limited))
	params := url.Values{"query": {"m"}, "time": {fmt.Sprint(now.Unix() + 1)}}
	code, out := queryAPI(t, r, limited, "query", params)
	if code != 422 || !strings.Contains(fmt.Sprint(out["error"]), "series") {
		t.Fatalf("over the workspace's series limit: %d %v", code, out)
	}
	if code, out := queryAPI(t, r, free, "query", params); code != 200 {
		t.Fatalf("the other workspace: %d %v", code, out)
	}
}

// The usage series are written into a monitoring workspace and answer PromQL, so the
// seed's quota alerts (active series against the limit, discards by reason) work.
func TestUsageQueryableInMonitoringWorkspace(t *testing.T) {
	dir := t.TempDir()
	r := start(t, "--data-dir", dir)
	mon, tenant := newWorkspace(t, r), newWorkspace(t, r)
	r.stop()
	// The export runs when the test says, not on the exporter's ticker.
	r = start(t, "--data-dir", dir, "--usage.monitoring-workspace", mon, "--usage.interval", "1h", "--ingester.active-series-window", "2h")
	now := time.Now()
	code, msg, _ := post(t, rwURL(r, tenant), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: ts("m"), Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}}},
		{Labels: ts("bad-name"), Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}}},
	}}))
	if code != 400 {
		t.Fatalf("write: %d %s", code, msg)
	}
	if err := r.app.exporter.ExportOnce(context.Background()); err != nil {
		t.Fatalf("exporting usage: %v", err)
	}
	q := fmt.Sprintf(`sum by (reason) (strata_workspace_discarded_samples_total{workspace=%q})`, tenant)
	code, out := queryAPI(t, r, mon, "query", url.Values{"query": {q}})
	if code != 200 || !strings.Contains(fmt.Sprint(out["data"]), "metric_name_invalid") {
		t.Fatalf("usage not queryable in the monitoring workspace: %d %v", code, out)
	}
	code, out = queryAPI(t, r, mon, "query", url.Values{"query": {fmt.Sprintf(`strata_workspace_ingested_samples_total{workspace=%q}`, tenant)}})
	if code != 200 || !strings.Contains(fmt.Sprint(out["data"]), `value:[`) {
		t.Fatalf("ingested samples: %d %v", code, out)
	}
}
