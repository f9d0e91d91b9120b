package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/thanos-io/objstore"
	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/testutil"

	"github.com/stratametrics/strata/internal/vendedlogs"
)

// waitTimeout bounds every wait for something asynchronous (a notification, a state).
const waitTimeout = 15 * time.Second

// fixture is a meta store on a filesystem bucket, a MultiTenant over it and its API
// served over HTTP, as the app mounts it.
type fixture struct {
	t       *testing.T
	bktDir  string
	bkt     objstore.Bucket
	store   *meta.Store
	dataDir string
	limits  Limits
	m       *MultiTenant
	reg     *prometheus.Registry
	logs    *testutil.SyncBuffer
	events  *eventRecorder
	srv     *httptest.Server
	wrap    func(objstore.Bucket) objstore.Bucket
	cfg     Config
}

type fixtureOption func(*fixture)

// eventRecorder keeps the events vended to workspaces' log groups.
type eventRecorder struct {
	mu     sync.Mutex
	events []vendedEvent
}

type vendedEvent struct {
	workspace, component, level, msg string
	fields                           map[string]any
}

func (r *eventRecorder) Event(workspace, component, level, msg string, fields ...vendedlogs.Field) {
	e := vendedEvent{workspace, component, level, msg, map[string]any{}}
	for _, f := range fields {
		e.fields[f.Key] = f.Value
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *eventRecorder) all() []vendedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// withBucket wraps the bucket the MultiTenant sees (the meta store sees the plain one).
func withBucket(wrap func(objstore.Bucket) objstore.Bucket) fixtureOption {
	return func(f *fixture) { f.wrap = wrap }
}

func withLimits(l Limits) fixtureOption { return func(f *fixture) { f.limits = l } }

// withConfig changes the MultiTenant's configuration (testConfig's defaults).
func withConfig(change func(*Config)) fixtureOption { return func(f *fixture) { change(&f.cfg) } }

// withBucketDir shares the bucket of an earlier fixture (a restart).
func withBucketDir(dir string) fixtureOption { return func(f *fixture) { f.bktDir = dir } }

func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	f := &fixture{t: t, bktDir: t.TempDir(), dataDir: t.TempDir(), logs: &testutil.SyncBuffer{}, events: &eventRecorder{}, cfg: testConfig()}
	for _, o := range opts {
		o(f)
	}
	bkt, err := bucket.NewFilesystem(f.bktDir)
	if err != nil {
		t.Fatal(err)
	}
	f.bkt = bkt
	f.store = meta.New(meta.Config{PollInterval: time.Hour}, bkt, nil, prometheus.NewRegistry())
	if err := f.store.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.start()
	return f
}

// start builds the MultiTenant and its HTTP server; restart closes them and starts anew
// on the same bucket.
func (f *fixture) start() {
	t := f.t
	t.Helper()
	f.reg = prometheus.NewRegistry()
	bkt := f.bkt
	if f.wrap != nil {
		bkt = f.wrap(bkt)
	}
	m, err := New(f.cfg, Deps{
		Workspaces:  f.store,
		Bucket:      bkt,
		DataDir:     f.dataDir,
		ExternalURL: "http://strata.example:8080",
		Limits:      f.limits,
		Events:      f.events,
		Logger:      slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Registerer:  f.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	mux := http.NewServeMux()
	for _, r := range m.Routes() {
		mux.HandleFunc(r.Method+" "+r.Pattern, r.Handler)
	}
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
	if err := f.m.Close(); err != nil {
		f.t.Error(err)
	}
	if f.t.Failed() {
		f.t.Logf("logs:\n%s", f.logs.String())
	}
}

func (f *fixture) restart(dataDir string) {
	f.t.Helper()
	f.stop()
	f.dataDir = dataDir
	f.start()
}

func testConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("test", flag.ContinueOnError))
	return c
}

// createWorkspace stores a workspace with the definition (none when empty).
func (f *fixture) createWorkspace(id, definition string) {
	f.t.Helper()
	ws := meta.Workspace{ID: id, ARN: "arn:aws:aps:us-east-1:123456789012:workspace/" + id, Status: meta.StatusActive, CreatedAt: time.Now()}
	if definition != "" {
		ws.AlertManagerDefinition = &meta.AlertManagerDefinition{Data: []byte(definition), Status: meta.StatusActive, CreatedAt: time.Now(), ModifiedAt: time.Now()}
	}
	if err := f.store.CreateWorkspace(context.Background(), ws); err != nil {
		f.t.Fatal(err)
	}
}

// setDefinition replaces (or, with "", removes) the workspace's definition.
func (f *fixture) setDefinition(id, definition string) {
	f.t.Helper()
	_, err := f.store.UpdateWorkspace(context.Background(), id, func(ws *meta.Workspace) error {
		if definition == "" {
			ws.AlertManagerDefinition = nil
			return nil
		}
		ws.AlertManagerDefinition = &meta.AlertManagerDefinition{Data: []byte(definition), Status: meta.StatusActive, ModifiedAt: time.Now()}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) sync() { f.m.Sync(context.Background()) }

// do sends a request to the workspace's Alertmanager API (path relative to api/v2/).
func (f *fixture) do(method, workspace, path string, body any) (int, []byte) {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.srv.URL+"/workspaces/"+workspace+"/alertmanager/api/v2/"+path, r)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// mustDo is do that expects status want.
func (f *fixture) mustDo(want int, method, workspace, path string, body any) []byte {
	f.t.Helper()
	code, b := f.do(method, workspace, path, body)
	if code != want {
		f.t.Fatalf("%s %s %s: status %d, want %d: %s", method, workspace, path, code, want, b)
	}
	return b
}

// postAlerts posts alerts given as label sets (firing, no end).
func (f *fixture) postAlerts(workspace string, labelSets ...map[string]string) (int, []byte) {
	f.t.Helper()
	var alerts []map[string]any
	for _, ls := range labelSets {
		alerts = append(alerts, map[string]any{"labels": ls, "annotations": map[string]string{"summary": "test"}})
	}
	return f.do(http.MethodPost, workspace, "alerts", alerts)
}

// createSilence creates a silence of the equality matchers for an hour and returns its id.
func (f *fixture) createSilence(workspace string, matchers map[string]string) string {
	f.t.Helper()
	code, b := f.do(http.MethodPost, workspace, "silences", silenceBody(matchers))
	if code != http.StatusOK {
		f.t.Fatalf("creating a silence: status %d: %s", code, b)
	}
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.SilenceID == "" {
		f.t.Fatalf("creating a silence: %s (%v)", b, err)
	}
	return out.SilenceID
}

func silenceBody(matchers map[string]string) map[string]any {
	var ms []map[string]any
	for k, v := range matchers {
		ms = append(ms, map[string]any{"name": k, "value": v, "isRegex": false, "isEqual": true})
	}
	return map[string]any{
		"matchers":  ms,
		"startsAt":  time.Now().UTC().Format(time.RFC3339),
		"endsAt":    time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"createdBy": "test",
		"comment":   "test",
	}
}

// gauge reads a metric of the fixture's registry: the value of the series of name whose
// labels include want, summed over the series that match.
func (f *fixture) metric(name string, want map[string]string) (float64, bool) {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			found = true
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				sum += m.GetGauge().GetValue()
			default:
				sum += m.GetUntyped().GetValue()
			}
		}
	}
	return sum, found
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, waitTimeout, what, cond)
}

// definition builds AMP's definition document.
func definition(t *testing.T, amConfig string, templates map[string]string) string {
	t.Helper()
	doc := map[string]any{"alertmanager_config": amConfig}
	if len(templates) > 0 {
		doc["template_files"] = templates
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hookConfig routes everything to one webhook, grouped by alertname, with short timers.
func hookConfig(url string) string {
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 300ms
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
`, url)
}

// webhook is a webhook receiver recording what it receives.
type webhook struct {
	srv *httptest.Server
	ch  chan message
}

// message is the part of a webhook notification the tests read.
type message struct {
	Receiver    string            `json:"receiver"`
	Status      string            `json:"status"`
	ExternalURL string            `json:"externalURL"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// names returns the value of label of each alert, sorted as received.
func (m message) names(label string) []string {
	var out []string
	for _, a := range m.Alerts {
		out = append(out, a.Labels[label])
	}
	return out
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	w := &webhook{ch: make(chan message, 100)}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var m message
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook: decoding: %v", err)
		}
		w.ch <- m
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) url() string { return w.srv.URL + "/hook" }

// next waits for the next notification.
func (w *webhook) next(t *testing.T) message {
	t.Helper()
	select {
	case m := <-w.ch:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a notification")
		return message{}
	}
}

func joined(ss []string) string { return strings.Join(ss, ",") }
