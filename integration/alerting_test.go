package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/testutil/goaws"
)

// pushGauge remote-writes one sample of a gauge, signed, and fails unless it is stored.
func pushGauge(t *testing.T, base, ws string, v float64, lbls ...string) {
	t.Helper()
	pushGaugeAt(t, base, ws, v, time.Now(), lbls...)
}

// pushGaugeAt is pushGauge with the sample's time.
func pushGaugeAt(t *testing.T, base, ws string, v float64, at time.Time, lbls ...string) {
	t.Helper()
	ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: v, Timestamp: at.UnixMilli()}}}
	for i := 0; i+1 < len(lbls); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: lbls[i], Value: lbls[i+1]})
	}
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body := snappy.Encode(nil, raw)
	req, _ := http.NewRequest(http.MethodPost, base+"/workspaces/"+ws+"/api/v1/remote_write", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp := signedDo(t, req, body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("remote write: %d %s", resp.StatusCode, b)
	}
}

// signedJSON sends a signed request with a JSON body and returns the status and body.
func signedJSON(t *testing.T, method, u string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp := signedDo(t, req, body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// webhook records the notifications an Alertmanager posts to it.
type webhook struct {
	mu   sync.Mutex
	msgs []webhookMessage
}

type webhookMessage struct {
	Status string
	Alerts []struct {
		Status string
		Labels map[string]string
	}
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m webhookMessage
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
}

// has reports whether a notification about alertname with status was received.
func (h *webhook) has(alertname, status string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] == alertname && a.Status == status {
				return true
			}
		}
	}
	return false
}

const alertingRules = `
groups:
  - name: availability
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        for: 4s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} is down"
      - alert: Maintenance
        expr: vector(1)
      - alert: SlowBurn
        expr: vector(1)
        for: 1h
`

// The whole path through the real binary: samples in, a recording rule's series, an
// alert pending → firing → resolved, delivered to a webhook and to SNS (goaws), a
// silence added with amtool through the signing proxy suppressing another alert, and
// after a restart the rules, the silence and the `for` state of a pending alert kept.
func TestAlertingEndToEnd(t *testing.T) {
	amtool := requireTool(t, "amtool")
	sns := goaws.Start(t)
	dataDir := t.TempDir()
	args := []string{"--data-dir", dataDir, "--limits.ruler-min-evaluation-interval=0s", "--ruler.resync-interval=1s",
		"--alertmanager.resync-interval=1s", "--ruler.for-grace-period=1s"}
	p := startStrata(t, args...)
	ws := createWorkspace(t, p.URL)
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)

	definition := fmt.Sprintf(`alertmanager_config: |
  route:
    receiver: everyone
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: everyone
      webhook_configs:
        - url: %s
          send_resolved: true
      sns_configs:
        - api_url: %s
          topic_arn: %s
          sigv4:
            region: %s
            access_key: AKIDSNSTEST
            secret_key: sns-test-secret
          subject: '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}'
`, hookSrv.URL, sns.URL, sns.TopicARN, goaws.Region)
	body, _ := json.Marshal(map[string][]byte{"data": []byte(definition)})
	if code, b := signedJSON(t, http.MethodPost, p.URL+"/workspaces/"+ws+"/alertmanager/definition", body); code != http.StatusAccepted {
		t.Fatalf("CreateAlertManagerDefinition: %d %s", code, b)
	}
	amBase := p.URL + "/workspaces/" + ws + "/alertmanager/api/v2/"
	waitFor(t, "the workspace's Alertmanager", 20*time.Second, func() bool {
		code, _ := signedJSON(t, http.MethodGet, amBase+"status", nil)
		return code == http.StatusOK
	}, p.Log)

	// A silence from amtool, signed by the proxy with the root key.
	proxy, proxyLog := startProxy(t, []string{"AWS_ACCESS_KEY_ID=" + rootKeyID, "AWS_SECRET_ACCESS_KEY=" + rootSecret},
		"--upstream", p.URL, "--region", "us-east-1")
	amURL := proxy + "/workspaces/" + ws + "/alertmanager"
	runAmtool := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(amtool, append([]string{"--alertmanager.url=" + amURL}, args...)...)
		cmd.Env = []string{"HOME=" + t.TempDir()}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("amtool %v: %v\n%s%s\nproxy log:\n%s", args, err, out, stderr.String(), proxyLog.String())
		}
		return strings.TrimSpace(string(out))
	}
	silenceID := runAmtool("silence", "add", "alertname=Maintenance", "--comment=planned", "--author=ops", "--duration=2h")
	if len(silenceID) < 8 {
		t.Fatalf("amtool silence add printed %q", silenceID)
	}

	pushGauge(t, p.URL, ws, 0, "__name__", "up", "job", "node", "instance", "b")
	pushGauge(t, p.URL, ws, 1, "__name__", "up", "job", "node", "instance", "a")
	createNamespace(t, p.URL, ws, "availability", alertingRules)

	query := func(q string) string {
		code, b := signedJSON(t, http.MethodGet, p.URL+"/workspaces/"+ws+"/api/v1/query?query="+url.QueryEscape(q), nil)
		if code != http.StatusOK {
			t.Fatalf("query %s: %d %s", q, code, b)
		}
		return string(b)
	}
	// The recording rule's series holds the expression's value.
	waitFor(t, "job:up:sum = 1", 30*time.Second, func() bool {
		return strings.Contains(query(`job:up:sum`), `"job":"node"},"value":[`) && strings.Contains(query(`job:up:sum == 1`), `"job":"node"`)
	}, p.Log)

	// Firing, delivered to the webhook and to the SNS topic.
	waitFor(t, "InstanceDown firing at the webhook", 30*time.Second, func() bool { return hook.has("InstanceDown", "firing") }, p.Log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var subjects []string
	for !slicesContains(subjects, "[FIRING] InstanceDown") {
		n, err := sns.Receive(ctx)
		if err != nil {
			t.Fatalf("reading the SNS topic's queue: %v (got %v)\n%s", err, subjects, tail(p.Log(), 4000))
		}
		subjects = append(subjects, n.Subject)
	}
	// It was pending first: ALERTS keeps the history. (As in Prometheus, a new group
	// writes ALERTS only from its third evaluation on, once `for` state is restored.)
	if got := query(`count_over_time(ALERTS{alertname="InstanceDown",alertstate="pending"}[5m])`); !strings.Contains(got, `"instance":"b"`) {
		t.Errorf("no pending ALERTS sample for InstanceDown: %s; ALERTS: %s", got, query(`count_over_time(ALERTS[5m])`))
	}

	// The silenced alert is in the Alertmanager, suppressed by amtool's silence.
	var lastAlerts []byte
	waitFor(t, "Maintenance suppressed by the silence", 30*time.Second, func() bool {
		_, lastAlerts = signedJSON(t, http.MethodGet, amBase+"alerts?filter="+url.QueryEscape(`alertname="Maintenance"`), nil)
		return strings.Contains(string(lastAlerts), `"state":"suppressed"`) && strings.Contains(string(lastAlerts), silenceID)
	}, p.Log, func() string { return string(lastAlerts) })

	// The instance comes back: the alert resolves, and the webhook hears of it.
	pushGauge(t, p.URL, ws, 1, "__name__", "up", "job", "node", "instance", "b")
	waitFor(t, "InstanceDown resolved at the webhook", 30*time.Second, func() bool { return hook.has("InstanceDown", "resolved") }, p.Log)

	// SlowBurn has been pending for a while; after a restart it carries on.
	activeAt := func(base string) (time.Time, bool) {
		code, b := signedJSON(t, http.MethodGet, base+"/workspaces/"+ws+"/api/v1/alerts", nil)
		if code != http.StatusOK {
			return time.Time{}, false
		}
		var out struct {
			Data struct {
				Alerts []struct {
					Labels   map[string]string
					State    string
					ActiveAt time.Time
				}
			}
		}
		_ = json.Unmarshal(b, &out)
		for _, a := range out.Data.Alerts {
			if a.Labels["alertname"] == "SlowBurn" && a.State == "pending" {
				return a.ActiveAt, true
			}
		}
		return time.Time{}, false
	}
	var before time.Time
	waitFor(t, "SlowBurn pending for 3s", 30*time.Second, func() bool {
		at, ok := activeAt(p.URL)
		before = at
		return ok && time.Since(at) > 3*time.Second
	}, p.Log)
	p.stop(t)
	restarted := time.Now()
	p = startStrata(t, args...)

	// The rules, the silence and the alert state are all still there.
	waitFor(t, "SlowBurn restored as pending since before the restart", 30*time.Second, func() bool {
		at, ok := activeAt(p.URL)
		return ok && at.Before(restarted)
	}, p.Log)
	t.Logf("SlowBurn active at %s before the restart, pending for %s when stopped", before.Format(time.RFC3339Nano), restarted.Sub(before))
	code, b := signedJSON(t, http.MethodGet, p.URL+"/workspaces/"+ws+"/api/v1/rules", nil)
	if code != http.StatusOK || !strings.Contains(string(b), `"name":"InstanceDown"`) || !strings.Contains(string(b), `"file":"availability"`) {
		t.Fatalf("rules after restart: %d %s", code, b)
	}
	proxy2, _ := startProxy(t, []string{"AWS_ACCESS_KEY_ID=" + rootKeyID, "AWS_SECRET_ACCESS_KEY=" + rootSecret}, "--upstream", p.URL, "--region", "us-east-1")
	amURL = proxy2 + "/workspaces/" + ws + "/alertmanager"
	if got := runAmtool("silence", "query", "-q"); got != silenceID {
		t.Fatalf("silences after restart: %q, want %q", got, silenceID)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
