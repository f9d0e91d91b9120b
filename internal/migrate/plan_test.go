package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/testutil"
)

// requirePrometheus returns Debian's prometheus binary (.ci/run installs it).
func requirePrometheus(t *testing.T) string {
	return testutil.RequireBinary(t, "prometheus", "apt-get install prometheus")
}

// startPrometheus runs a Prometheus scraping itself every second, with an HA pair's
// external labels and two rule groups, one at an interval a workspace refuses; it stops
// with the test.
func startPrometheus(t *testing.T) string {
	t.Helper()
	bin := requirePrometheus(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	rules := `groups:
- name: fine
  interval: 1m
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: Down
    expr: up == 0
- name: too-often
  interval: 5s
  rules:
  - record: job:samples:rate
    expr: rate(prometheus_tsdb_head_samples_appended_total[1m])
`
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  external_labels:
    cluster: prod
    replica: a
rule_files: [%q]
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
`, filepath.Join(dir, "rules.yml"), addr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	// Ready once two scrapes are in: the rate of appended samples has two points.
	if !testutil.Poll(60*time.Second, 200*time.Millisecond, func() bool {
		v, err := query(base, `sum(rate(prometheus_tsdb_head_samples_appended_total[5m]))`)
		return err == nil && v > 0
	}) {
		t.Fatalf("Prometheus did not start scraping within 60s:\n%s", logs.String())
	}
	return base
}

// query returns the single value of an instant query.
func query(base, q string) (float64, error) {
	c := &promClient{base: base, hc: http.DefaultClient}
	v, err := c.vector(context.Background(), q)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("%d samples", len(v))
	}
	return v[0].Value, nil
}

// The plan of a real Prometheus reports its cardinality, rate, HA pair and rules as it
// reports them itself, within quotas, and cardinality cuts that Prometheus' own counts
// confirm; as text, JSON and Markdown; with a quota below its series it exits 1 and names
// the override to request.
// Cuts merge series exactly as dropping the label does; identity and histogram labels
// are not cut, nor labels that save under a tenth of the series.
func TestCutsOf(t *testing.T) {
	var series []map[string]string
	for i := range 40 {
		series = append(series, map[string]string{"__name__": "http_requests_total", "job": "api", "instance": fmt.Sprint("h", i%2),
			"path": fmt.Sprint("/p", i), "code": fmt.Sprint(200 + i%2*300), "le": fmt.Sprint(i % 4)})
	}
	got := map[string]Cut{}
	for _, c := range cutsOf("http_requests_total", series) {
		got[c.Label] = c
	}
	if len(got) != 1 || got["path"].After != 4 || got["path"].Series != 40 || got["path"].Saved() != 36 {
		t.Fatalf("cuts %+v, want only path (40 → 4 series: instance, code and le remain)", got)
	}
	if want := "- source_labels: [__name__]\n  regex: http_requests_total\n  target_label: path\n  replacement: \"\"\n"; got["path"].Relabel != want {
		t.Fatalf("relabel\n%s\nwant\n%s", got["path"].Relabel, want)
	}
}

func TestPlanRealPrometheus(t *testing.T) {
	base := startPrometheus(t)
	var out, errOut bytes.Buffer
	code := Main([]string{"plan", "--prometheus", base, "--format", "json", "--workspace-endpoint", "http://strata:8080/workspaces/ws-1", "--region", "us-east-1"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, errOut.String(), out.String())
	}
	var r Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err, out.String())
	}
	head, err := query(base, "prometheus_tsdb_head_series")
	if err != nil {
		t.Fatal(err)
	}
	// The head grows a little between the two reads.
	if r.ActiveSeries < int(head)*9/10 || r.ActiveSeries > int(head)*11/10 {
		t.Errorf("active series %d, Prometheus says %v", r.ActiveSeries, head)
	}
	if len(r.SeriesByJob) == 0 || r.SeriesByJob[0].Name != "prometheus" || r.SeriesByJob[0].Series < r.ActiveSeries/2 {
		t.Errorf("series by job: %+v", r.SeriesByJob)
	}
	if len(r.SeriesByMetric) == 0 || r.IngestionRate <= 0 || r.MaxLabels < 3 {
		t.Errorf("by metric %+v, rate %v, max labels %d", r.SeriesByMetric, r.IngestionRate, r.MaxLabels)
	}
	if !r.HA || r.ReplicaLabel != "replica" || r.ExternalLabels["cluster"] != "prod" {
		t.Errorf("HA pair not detected: %+v %q %v", r.ExternalLabels, r.ReplicaLabel, r.HA)
	}
	if r.RuleGroups != 2 || r.Rules != 3 || r.AlertingRules != 1 || len(r.Unconvertible) != 1 || !strings.Contains(r.Unconvertible[0], `"too-often"`) {
		t.Errorf("rules: %d groups, %d rules, %d alerting, unconvertible %q", r.RuleGroups, r.Rules, r.AlertingRules, r.Unconvertible)
	}
	if len(r.Exceeded) != 0 || !strings.Contains(r.RemoteWrite, "url: http://strata:8080/workspaces/ws-1/api/v1/remote_write") || !strings.Contains(r.RemoteWrite, "region: us-east-1") {
		t.Errorf("exceeded %q; remote_write:\n%s", r.Exceeded, r.RemoteWrite)
	}

	// Cuts: each checked against the Prometheus' own count of the metric without the label.
	if len(r.Cuts) == 0 {
		t.Errorf("no cardinality cuts suggested for metrics %+v", r.SeriesByMetric)
	}
	for _, c := range r.Cuts {
		after, err := query(base, fmt.Sprintf(`count(count without (%s) (%s))`, c.Label, c.Metric))
		if err != nil || int(after) != c.After || c.Saved() <= 0 || !strings.Contains(c.Relabel, "target_label: "+c.Label) {
			t.Errorf("cut %+v: Prometheus counts %v series without the label (%v)", c, after, err)
		}
	}
	out.Reset()
	if code := Main([]string{"plan", "--prometheus", base, "--format", "markdown"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "| active series |") || !strings.Contains(out.String(), "## Cardinality") || !strings.Contains(out.String(), "```yaml\n- source_labels: [__name__]") {
		t.Errorf("markdown: exit %d\n%s", code, out.String())
	}

	// Below its series: exit 1, and the override to request.
	out.Reset()
	limit := r.ActiveSeries / 2
	code = Main([]string{"plan", "--prometheus", base, "--max-active-series", strconv.Itoa(limit)}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "active series:") || !strings.Contains(out.String(), "request at least") {
		t.Fatalf("with a quota of %d series: exit %d\n%s", limit, code, out.String())
	}
	// Unreachable: exit 2 with the error.
	out.Reset()
	errOut.Reset()
	if code := Main([]string{"plan", "--prometheus", "http://127.0.0.1:1"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "TSDB status") {
		t.Fatalf("unreachable Prometheus: exit %d, %s", code, errOut.String())
	}
}

// With --alertmanager, the plan reads a real Alertmanager's configuration (Debian's
// example) and says what moving it takes: its receivers, its templates on that host, and
// what AMP would refuse.
func TestPlanAlertmanager(t *testing.T) {
	bin := testutil.RequireBinary(t, "prometheus-alertmanager", "apt-get install prometheus-alertmanager")
	const example = "/etc/prometheus/alertmanager.yml"
	if _, err := os.Stat(example); err != nil {
		t.Fatalf("%s (Debian's prometheus-alertmanager): %v", example, err)
	}
	base := startPrometheus(t)
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + port
	cmd := exec.Command(bin, "--config.file", example, "--storage.path", t.TempDir(), "--web.listen-address", addr, "--cluster.listen-address=")
	p, err := testutil.StartProcess(t, "alertmanager", cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(30*time.Second, testutil.GetOK("http://"+addr+"/-/ready")); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Main([]string{"plan", "--prometheus", base, "--alertmanager", "http://" + addr, "--format", "json"}, &out, &errOut)
	var r Report
	if code != 0 || json.Unmarshal(out.Bytes(), &r) != nil || r.Alertmanager == nil {
		t.Fatalf("exit %d: %s %s", code, errOut.String(), out.String())
	}
	am := r.Alertmanager
	notAMP := strings.Join(am.NotAMP, "\n")
	if am.Receivers != 5 || am.Refused != "" || len(am.Templates) != 1 || !strings.Contains(am.Templates[0], "alertmanager_templates") ||
		!strings.Contains(notAMP, `receiver "team-X-mails": email_configs`) || !strings.Contains(notAMP, `receiver "team-DB-pager": pagerduty_configs`) {
		t.Fatalf("alertmanager plan: %+v", am)
	}
	out.Reset()
	if code := Main([]string{"plan", "--prometheus", base, "--alertmanager", "http://" + addr, "--format", "markdown"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "## Alertmanager") {
		t.Fatalf("markdown: exit %d\n%s", code, out.String())
	}
}
