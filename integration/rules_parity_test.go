package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parityRules is evaluated by Prometheus 3.x and by Strata over the same samples. Its
// expressions have values that do not depend on when they are evaluated (constant
// gauges, counters growing linearly), so the two agree though their groups run at
// different instants.
const parityRules = `
groups:
  - name: recording
    interval: 1s
    rules:
      - record: code:parity_requests:rate10s
        expr: sum by (code) (rate(parity_requests_total[10s]))
      - record: room:parity_temperature:max
        expr: max by (room) (parity_temperature)
      - record: le:parity_latency_seconds:p90
        expr: histogram_quantile(0.9, sum by (le) (rate(parity_latency_seconds_bucket[10s])))
      - record: job:parity_temperature:count
        expr: count by (job) (parity_temperature)
      - record: parity:missing:absent
        expr: absent(parity_missing)
      - record: parity:temperature:relabelled
        expr: label_replace(parity_temperature, "where", "in-$1", "room", "(.*)")
        labels:
          team: infra
      - record: parity:rooms:doubled
        expr: vector(scalar(count(parity_temperature)) * 2)
      - record: parity:increase:topk
        expr: topk(1, increase(parity_requests_total[10s]))
  - name: alerts
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: code:parity_requests:rate10s{code="500"} > 1
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.code }} answers at {{ $value | humanize }}/s"
      - alert: Cold
        expr: parity_temperature < 10
        annotations:
          description: "{{ $labels.room }} is at {{ $value }} degrees ({{ $labels.instance | reReplaceAll \":.*\" \"\" }})"
      - alert: NeverFires
        expr: parity_temperature > 100
      - alert: LongPending
        expr: parity_temperature > 0
        for: 1h
        labels:
          room_copy: "{{ $labels.room }}"
      - alert: KeepsFiring
        expr: vector(1)
        keep_firing_for: 5m
`

// parityTarget serves samples with explicit timestamps: gauges that never change and
// counters whose value is a linear function of their timestamp, so rates are exact.
func parityTarget(t *testing.T) *httptest.Server {
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts := time.Now().UnixMilli()
		sec := float64(ts-t0) / 1000
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, "# TYPE parity_requests_total counter\n")
		fmt.Fprintf(w, "parity_requests_total{code=\"200\"} %g %d\n", 10*sec, ts)
		fmt.Fprintf(w, "parity_requests_total{code=\"500\"} %g %d\n", 2.5*sec, ts)
		fmt.Fprintf(w, "# TYPE parity_temperature gauge\n")
		fmt.Fprintf(w, "parity_temperature{room=\"kitchen\"} 21.5 %d\n", ts)
		fmt.Fprintf(w, "parity_temperature{room=\"cellar\"} 4 %d\n", ts)
		fmt.Fprintf(w, "# TYPE parity_latency_seconds histogram\n")
		for _, b := range []struct {
			le    string
			slope float64
		}{{"0.1", 2}, {"0.5", 5}, {"1", 9}, {"+Inf", 10}} {
			fmt.Fprintf(w, "parity_latency_seconds_bucket{le=%q} %g %d\n", b.le, b.slope*sec, ts)
		}
		fmt.Fprintf(w, "parity_latency_seconds_sum %g %d\nparity_latency_seconds_count %g %d\n", 3*sec, ts, 10*sec, ts)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// createNamespace creates a rule groups namespace over signed HTTP.
func createNamespace(t *testing.T, base, ws, name, data string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name, "data": base64.StdEncoding.EncodeToString([]byte(data))})
	req, _ := http.NewRequest(http.MethodPost, base+"/workspaces/"+ws+"/rulegroupsnamespaces", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp := signedDo(t, req, body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("CreateRuleGroupsNamespace: %d %s", resp.StatusCode, b)
	}
}

// getJSON fetches a Prometheus API answer's data, signed when signed is set.
func getJSON(t *testing.T, u string, signed bool) (any, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	var resp *http.Response
	if signed {
		resp = signedDo(t, req, nil)
	} else {
		var err error
		if resp, err = http.DefaultClient.Do(req); err != nil {
			return nil, err
		}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Status string
		Data   any
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Status != "success" {
		return nil, fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return out.Data, nil
}

// normalize drops what legitimately differs between two servers (when they evaluated,
// how long it took, the rule file's name) and rounds values to 9 significant digits
// (rates of the same linear counter at different instants differ in the last bits).
// Lists are sorted by their JSON so that order does not matter.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			switch k {
			case "file", "evaluationTime", "lastEvaluation", "activeAt", "keepFiringSince":
				continue
			case "value":
				if s, ok := x.(string); ok {
					if f, err := strconv.ParseFloat(s, 64); err == nil {
						x = strconv.FormatFloat(f, 'g', 9, 64)
					}
				}
			}
			out[k] = normalize(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalize(x)
		}
		slices.SortFunc(out, func(a, b any) int {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			return strings.Compare(string(ja), string(jb))
		})
		return out
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) || v == 0 {
			return v
		}
		f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 9, 64), 64)
		return f
	}
	return v
}

// The same rule file over the same samples gives the same recorded series, the same
// ALERTS, and the same /api/v1/rules and /api/v1/alerts in Prometheus 3.x and Strata.
// Prometheus scrapes the samples and remote-writes them to Strata, so both hold
// exactly the same ones.
func TestRuleEvaluationParityWithPrometheus3(t *testing.T) {
	bin := requirePrometheus3(t)
	p := startStrata(t, "--data-dir", t.TempDir(), "--limits.ruler-min-evaluation-interval=0s", "--ruler.resync-interval=1s")
	ws := createWorkspace(t, p.URL)
	target := parityTarget(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(parityRules), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: parity
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s/workspaces/%s/api/v1/remote_write
    sigv4:
      region: us-east-1
      access_key: %s
      secret_key: %s
    write_relabel_configs:
      - source_labels: [__name__]
        regex: "parity_(requests_total|temperature|latency_seconds_.*)|up"
        action: keep
    queue_config:
      batch_send_deadline: 200ms
      min_backoff: 100ms
      max_backoff: 1s
`, strings.TrimPrefix(target.URL, "http://"), p.URL, ws, rootKeyID, rootSecret)
	_, promLog := startPrometheus(t, bin, dir, cfg, filepath.Join(dir, "prom"), addr)
	createNamespace(t, p.URL, ws, "parity", parityRules)

	prom := "http://" + addr + "/api/v1/"
	strata := p.URL + "/workspaces/" + ws + "/api/v1/"
	// settled says Prometheus' answer is final: every rate has its 10s of samples, every
	// alert has waited its `for`. Strata must then answer the same.
	firing := `"alertname":"HighErrorRate","alertstate":"firing"`
	checks := []struct {
		name, path string
		settled    func(j string) bool
	}{
		{"recorded series", "query?query=" + url.QueryEscape(`{__name__=~".+:.+"}`), func(j string) bool {
			return strings.Count(j, `"__name__"`) == 11 && !strings.Contains(j, "NaN") && strings.Contains(j, `"value":"2.5"`)
		}},
		{"ALERTS", "query?query=ALERTS", func(j string) bool { return strings.Count(j, `"__name__"`) == 5 && strings.Contains(j, firing) }},
		{"ALERTS_FOR_STATE label sets", "query?query=" + url.QueryEscape(`group by (__name__, alertname, room, code, severity, room_copy, instance, job) (ALERTS_FOR_STATE)`),
			func(j string) bool { return strings.Contains(j, "HighErrorRate") && strings.Contains(j, "LongPending") }},
		{"/api/v1/alerts", "alerts", func(j string) bool {
			return strings.Count(j, `"state"`) == 5 && strings.Contains(j, `"HighErrorRate","code":"500","severity":"page"},"state":"firing"`)
		}},
		{"/api/v1/rules", "rules", func(j string) bool { return strings.Count(j, `"state":"firing"`) == 6 }},
	}
	// Until Prometheus' answer has settled and Strata's equals it (or the deadline says
	// it never will).
	deadline := time.Now().Add(90 * time.Second)
	for _, c := range checks {
		var pn, sn any
		var perr, serr error
		waitFor(t, c.name+" alike", time.Until(deadline), func() bool {
			var pd, sd any
			pd, perr = getJSON(t, prom+c.path, false)
			sd, serr = getJSON(t, strata+c.path, true)
			if perr != nil || serr != nil {
				return false
			}
			pn, sn = normalize(stripTime(pd)), normalize(stripTime(sd))
			pj, _ := json.Marshal(pn)
			return c.settled(string(pj)) && reflect.DeepEqual(pn, sn)
		}, func() string {
			pj, _ := json.MarshalIndent(pn, "", " ")
			sj, _ := json.MarshalIndent(sn, "", " ")
			return fmt.Sprintf("errors: prometheus %v, strata %v\nprometheus:\n%s\nstrata:\n%s", perr, serr, pj, sj)
		}, p.Log, promLog)
	}
}

// stripTime removes the evaluation timestamps of instant-query samples ([t, "v"]),
// keeping the value.
func stripTime(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if k == "value" {
				if pair, ok := x.([]any); ok && len(pair) == 2 {
					out[k] = pair[1]
					continue
				}
			}
			out[k] = stripTime(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = stripTime(x)
		}
		return out
	}
	return v
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
