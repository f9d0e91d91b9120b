package ruler

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/stratametrics/strata/internal/meta"
)

// env is a ruler over a real TSDB (the workspace's storage), the real PromQL engine
// and a real metadata store on a filesystem bucket.
//
// Groups do not evaluate on their schedule: the test says when (evalAt, restoreAt),
// with timestamps it chooses, as the schedule would. Rule files use `interval: 1h` so
// that the schedule's first tick never comes during a test.
type env struct {
	t      *testing.T
	db     *tsdb.DB
	eng    *promql.Engine
	store  *meta.Store
	alerts *alertLog
	// t0 is the test's time origin: samples and evaluations are placed relative to it.
	t0 time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := meta.New(meta.Config{PollInterval: time.Hour}, bkt, nil, nil)
	if err := store.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	return &env{t: t, db: db, eng: eng, store: store, alerts: &alertLog{}, t0: time.Now().Truncate(time.Second)}
}

// at is t0 plus d.
func (e *env) at(d time.Duration) time.Time { return e.t0.Add(d) }

// start runs a ruler until the test ends (or the returned stop is called). Its groups
// only evaluate when evalAt says.
func (e *env) start(cfg Config) (*Ruler, func()) {
	e.t.Helper()
	r := e.newRuler(cfg)
	return r, e.run(r)
}

func (e *env) newRuler(cfg Config) *Ruler {
	e.t.Helper()
	cfg.Enabled = true
	r, err := New(cfg, Deps{
		Store:       e.store,
		Querier:     e,
		Queryables:  e,
		Writer:      e,
		Alerts:      e.alerts,
		ExternalURL: "http://strata.example:8080/",
		Registerer:  prometheus.NewRegistry(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	r.iterate = func(context.Context, *rules.Group, time.Time) {}
	return r
}

func (e *env) run(r *Ruler) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	r.Sync(context.Background()) // the namespaces now, not when Run gets to it
	return stop
}

// evalAt evaluates every group of the workspace at ts, as its schedule would.
func evalAt(r *Ruler, ws string, ts time.Time) {
	for _, g := range r.groups(ws) {
		rules.DefaultEvalIterationFunc(context.Background(), g, ts)
	}
}

// restoreAt restores the `for` state of the workspace's groups at ts, as the schedule
// does after a group's second evaluation; until then no ALERTS are written.
func restoreAt(r *Ruler, ws string, ts time.Time) {
	for _, g := range r.groups(ws) {
		g.RestoreForState(ts)
	}
}

func (e *env) RuleQuery(ctx context.Context, ws, q string, t time.Time) (promql.Vector, error) {
	if ws != "ws-1" {
		e.t.Errorf("query for workspace %q", ws)
	}
	return rules.EngineQueryFunc(e.eng, e.db)(ctx, q, t)
}

func (e *env) Querier(_ context.Context, ws string, mint, maxt int64) (storage.Querier, error) {
	return e.db.Querier(mint, maxt)
}

func (e *env) WriteRuleSamples(ctx context.Context, ws string, samples []Sample) error {
	app := e.db.Appender(ctx)
	for _, s := range samples {
		var err error
		switch {
		case s.FH != nil:
			_, err = app.AppendHistogram(0, s.Labels, s.T, nil, s.FH)
		case s.H != nil:
			_, err = app.AppendHistogram(0, s.Labels, s.T, s.H, nil)
		default:
			_, err = app.Append(0, s.Labels, s.T, s.F)
		}
		if err != nil {
			_ = app.Rollback()
			return err
		}
	}
	return app.Commit()
}

func (e *env) add(ls labels.Labels, t time.Time, v float64) {
	e.t.Helper()
	app := e.db.Appender(context.Background())
	if _, err := app.Append(0, ls, t.UnixMilli(), v); err != nil {
		e.t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) instant(q string, ts time.Time) promql.Vector {
	e.t.Helper()
	v, err := rules.EngineQueryFunc(e.eng, e.db)(context.Background(), q, ts)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) putNamespace(ws, name, data string) {
	e.t.Helper()
	ctx := context.Background()
	if _, ok := e.store.PeekWorkspace(ws); !ok {
		if err := e.store.CreateWorkspace(ctx, meta.Workspace{ID: ws, Status: meta.StatusActive}); err != nil {
			e.t.Fatal(err)
		}
	}
	_, err := e.store.UpdateWorkspace(ctx, ws, func(w *meta.Workspace) error {
		if w.RuleGroupsNamespaces == nil {
			w.RuleGroupsNamespaces = map[string]*meta.RuleGroupsNamespace{}
		}
		if data == "" {
			delete(w.RuleGroupsNamespaces, name)
			return nil
		}
		w.RuleGroupsNamespaces[name] = &meta.RuleGroupsNamespace{Name: name, Data: []byte(data), Status: meta.StatusActive}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// alertLog records what the ruler sends, per workspace.
type alertLog struct {
	mu   sync.Mutex
	sent []*notifier.Alert
	err  error
}

func (l *alertLog) SendAlerts(_ context.Context, ws string, alerts []*notifier.Alert) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.sent = append(l.sent, alerts...)
	return nil
}

func (l *alertLog) find(f func(*notifier.Alert) bool) *notifier.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.sent {
		if f(a) {
			return a
		}
	}
	return nil
}

const rulesFile = `
groups:
  - name: g1
    interval: 1h
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} is down ({{ $value }})"
`

func up(inst string) labels.Labels {
	return labels.FromStrings("__name__", "up", "job", "node", "instance", inst)
}

func TestRecordingAndAlertingRules(t *testing.T) {
	e := newEnv(t)
	e.add(up("a"), e.at(0), 1)
	e.add(up("b"), e.at(0), 0)
	e.putNamespace("ws-1", "ns1", rulesFile)
	r, _ := e.start(Config{EvaluationInterval: time.Hour})

	// The recording rule's series is stored with the value of its expression; the alert
	// is pending. (A new group writes ALERTS once its `for` state is restored.)
	evalAt(r, "ws-1", e.at(0))
	if v := e.instant(`job:up:sum{job="node"}`, e.at(0)); len(v) != 1 || v[0].F != 1 {
		t.Fatalf("job:up:sum at t0 = %v", v)
	}
	restoreAt(r, "ws-1", e.at(0))
	evalAt(r, "ws-1", e.at(time.Second))
	if v := e.instant(`ALERTS{alertname="InstanceDown",alertstate="pending",instance="b"}`, e.at(time.Second)); len(v) != 1 {
		t.Fatalf("pending ALERTS at t0+1s = %v", v)
	}
	if len(e.alerts.sent) != 0 {
		t.Fatalf("a pending alert was sent: %v", e.alerts.sent)
	}

	// After its `for`, it fires (starting then) and is sent with its labels, annotations
	// and a link to the workspace; ALERTS and ALERTS_FOR_STATE say so.
	evalAt(r, "ws-1", e.at(2*time.Second))
	a := e.alerts.find(func(a *notifier.Alert) bool { return a.Labels.Get("alertname") == "InstanceDown" })
	if a == nil || a.Labels.Get("instance") != "b" || !a.StartsAt.Equal(e.at(2*time.Second)) || !a.EndsAt.After(e.at(2*time.Second)) {
		t.Fatalf("firing alert sent: %+v", a)
	}
	if got := a.Annotations.Get("summary"); got != "b of node is down (0)" {
		t.Errorf("summary = %q", got)
	}
	if a.Labels.Get("severity") != "page" {
		t.Errorf("labels = %v", a.Labels)
	}
	if !strings.HasPrefix(a.GeneratorURL, "http://strata.example:8080/workspaces/ws-1/graph?g0.expr=") {
		t.Errorf("generator URL = %q", a.GeneratorURL)
	}
	if v := e.instant(`ALERTS{alertname="InstanceDown",alertstate="firing",instance="b"}`, e.at(2*time.Second)); len(v) != 1 {
		t.Errorf("firing ALERTS = %v", v)
	}
	if v := e.instant(`ALERTS_FOR_STATE{alertname="InstanceDown",instance="b"}`, e.at(2*time.Second)); len(v) != 1 || v[0].F != float64(e.at(0).Unix()) {
		t.Errorf("ALERTS_FOR_STATE = %v, want the time it became active", v)
	}

	// The instance comes back: the alert is sent resolved, ending then.
	e.add(up("b"), e.at(3*time.Second), 1)
	evalAt(r, "ws-1", e.at(3*time.Second))
	if a := e.alerts.find(func(a *notifier.Alert) bool { return a.EndsAt.Equal(e.at(3 * time.Second)) }); a == nil || a.Labels.Get("instance") != "b" {
		t.Fatalf("resolved alert not sent: %v", e.alerts.sent)
	}
	if v := e.instant(`job:up:sum{job="node"}`, e.at(3*time.Second)); len(v) != 1 || v[0].F != 2 {
		t.Errorf("job:up:sum at t0+3s = %v", v)
	}
}

func TestSyncFollowsNamespaces(t *testing.T) {
	e := newEnv(t)
	e.putNamespace("ws-1", "ns1", rulesFile)
	r, _ := e.start(Config{EvaluationInterval: time.Hour})
	r.Sync(context.Background())
	names := func() []string {
		var out []string
		for _, g := range r.groups("ws-1") {
			for _, rule := range g.Rules() {
				out = append(out, namespaceOf(g.File())+"/"+g.Name()+"/"+rule.Name())
			}
		}
		return out
	}
	if got := strings.Join(names(), ","); got != "ns1/g1/job:up:sum,ns1/g1/InstanceDown" {
		t.Fatalf("rules = %s", got)
	}

	// A second namespace and a changed first one are loaded together.
	e.putNamespace("ws-1", "ns2", "groups:\n  - name: g2\n    rules:\n      - record: a:b\n        expr: vector(1)\n")
	e.putNamespace("ws-1", "ns1", "groups:\n  - name: g1\n    rules:\n      - record: c:d\n        expr: vector(2)\n")
	r.Sync(context.Background())
	if got := strings.Join(names(), ","); got != "ns1/g1/c:d,ns2/g2/a:b" {
		t.Fatalf("rules after update = %s", got)
	}
	if got := testutil.ToFloat64(r.m.syncs.WithLabelValues("success")); got < 2 {
		t.Errorf("successful loads = %v", got)
	}

	// A namespace that does not load leaves the previous rules running.
	e.putNamespace("ws-1", "ns2", "groups:\n  - name: g2\n    rules:\n      - record: a:b\n        expr: sum(\n")
	r.Sync(context.Background())
	if got := strings.Join(names(), ","); got != "ns1/g1/c:d,ns2/g2/a:b" {
		t.Fatalf("rules after a bad update = %s", got)
	}
	if got := testutil.ToFloat64(r.m.syncs.WithLabelValues("failure")); got != 1 {
		t.Errorf("failed loads = %v", got)
	}

	// Without namespaces the workspace's manager stops; deleting a workspace stops it at once.
	e.putNamespace("ws-1", "ns1", "")
	e.putNamespace("ws-1", "ns2", "")
	r.Sync(context.Background())
	if g := r.groups("ws-1"); g != nil {
		t.Fatalf("groups after removing every namespace: %v", g)
	}
	e.putNamespace("ws-1", "ns1", rulesFile)
	r.Sync(context.Background())
	if len(r.groups("ws-1")) != 1 {
		t.Fatal("namespace not loaded again")
	}
	if _, err := e.store.UpdateWorkspace(context.Background(), "ws-1", func(w *meta.Workspace) error {
		w.Status = meta.StatusDeleting
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.DeleteWorkspace("ws-1")
	if g := r.groups("ws-1"); g != nil {
		t.Fatalf("groups after DeleteWorkspace: %v", g)
	}
}

// The store's change signal alone brings a new namespace in, without a Sync call.
func TestRunFollowsStoreChanges(t *testing.T) {
	e := newEnv(t)
	r := e.newRuler(Config{EvaluationInterval: time.Hour, ResyncInterval: 0})
	synced := make(chan struct{}, 16)
	r.onSync = func() { synced <- struct{}{} }
	e.run(r)
	<-synced // the first Sync, before the change
	e.putNamespace("ws-1", "ns1", rulesFile)
	timeout := time.After(20 * time.Second)
	for len(r.groups("ws-1")) == 0 {
		select {
		case <-synced:
		case <-timeout:
			t.Fatal("the store's change signal did not bring the namespace in")
		}
	}
}

// After a restart, an alert that was pending carries on from where it was, from
// ALERTS_FOR_STATE, instead of starting its `for` again.
func TestForStateRestoredAfterRestart(t *testing.T) {
	e := newEnv(t)
	e.add(up("b"), e.at(0), 0)
	e.putNamespace("ws-1", "ns1", `
groups:
  - name: g1
    interval: 1h
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 1h
`)
	cfg := Config{EvaluationInterval: time.Hour, OutageTolerance: time.Hour, ForGracePeriod: time.Minute}
	r, stop := e.start(cfg)
	evalAt(r, "ws-1", e.at(0))
	restoreAt(r, "ws-1", e.at(0))
	evalAt(r, "ws-1", e.at(10*time.Second)) // pending for 10s, in ALERTS_FOR_STATE
	stop()

	// Restarted 10s later: without a restore the alert would be new, active at t0+20s.
	r2, _ := e.start(cfg)
	evalAt(r2, "ws-1", e.at(20*time.Second))
	restoreAt(r2, "ws-1", e.at(20*time.Second))
	var active []time.Time
	for _, g := range r2.groups("ws-1") {
		for _, a := range g.AlertingRules() {
			for _, al := range a.ActiveAlerts() {
				active = append(active, al.ActiveAt)
			}
		}
	}
	// Pending 10s before the restart, the outage not counted: active since t0+10s.
	if len(active) != 1 || !active[0].Equal(e.at(10*time.Second)) {
		t.Fatalf("active at %v, want %v", active, e.at(10*time.Second))
	}
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	e.add(up("b"), e.at(0), 0)
	e.putNamespace("ws-1", "ns1", rulesFile)
	e.putNamespace("ws-1", "ns2", "groups:\n  - name: g2\n    rules:\n      - record: a:b\n        expr: vector(1)\n  - name: g3\n    rules:\n      - record: c:d\n        expr: vector(1)\n")
	r, _ := e.start(Config{EvaluationInterval: time.Hour})
	mux := http.NewServeMux()
	for _, rt := range r.Routes() {
		mux.HandleFunc(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	get := func(path string, params url.Values) (int, map[string]any) {
		t.Helper()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v: %s", path, err, rec.Body)
		}
		return rec.Code, body
	}
	groupNames := func(body map[string]any) string {
		var out []string
		for _, g := range body["data"].(map[string]any)["groups"].([]any) {
			g := g.(map[string]any)
			out = append(out, g["file"].(string)+"/"+g["name"].(string))
		}
		return strings.Join(out, ",")
	}

	code, body := get("/workspaces/ws-1/api/v1/rules", nil)
	if code != 200 || groupNames(body) != "ns1/g1,ns2/g2,ns2/g3" {
		t.Fatalf("rules: %d %v", code, body)
	}
	_, body = get("/workspaces/ws-1/api/v1/rules", url.Values{"type": {"alert"}})
	if groupNames(body) != "ns1/g1" {
		t.Errorf("type=alert: %v", groupNames(body))
	}
	_, body = get("/workspaces/ws-1/api/v1/rules", url.Values{"file[]": {"ns2"}, "rule_name[]": {"c:d"}})
	if groupNames(body) != "ns2/g3" {
		t.Errorf("file[] and rule_name[]: %v", groupNames(body))
	}
	// Pagination: one group a page, with Prometheus' tokens.
	_, body = get("/workspaces/ws-1/api/v1/rules", url.Values{"group_limit": {"1"}})
	next, _ := body["data"].(map[string]any)["groupNextToken"].(string)
	if groupNames(body) != "ns1/g1" || next != groupToken("ns2", "g2") {
		t.Errorf("page 1: %v next %q", groupNames(body), next)
	}
	_, body = get("/workspaces/ws-1/api/v1/rules", url.Values{"group_limit": {"1"}, "group_next_token": {next}})
	if groupNames(body) != "ns2/g2" {
		t.Errorf("page 2: %v", groupNames(body))
	}
	for _, bad := range []url.Values{
		{"type": {"x"}},
		{"group_limit": {"0"}},
		{"group_next_token": {"abc"}},
		{"group_limit": {"1"}, "group_next_token": {"abc"}},
		{"match[]": {`{job=""}`}},
		{"exclude_alerts": {"maybe"}},
	} {
		if code, body := get("/workspaces/ws-1/api/v1/rules", bad); code != 400 || body["errorType"] != "bad_data" {
			t.Errorf("%v: %d %v", bad, code, body)
		}
	}
	if code, _ := get("/workspaces/ws-nope/api/v1/rules", nil); code != 404 {
		t.Errorf("unknown workspace: %d", code)
	}
	// A workspace without rules has none, and no alerts.
	if err := e.store.CreateWorkspace(context.Background(), meta.Workspace{ID: "ws-2", Status: meta.StatusActive}); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/workspaces/ws-2/api/v1/alerts", nil); code != 200 || len(body["data"].(map[string]any)["alerts"].([]any)) != 0 {
		t.Errorf("alerts of ws-2: %d %v", code, body)
	}

	evalAt(r, "ws-1", e.at(0))
	_, body = get("/workspaces/ws-1/api/v1/alerts", nil)
	alerts := body["data"].(map[string]any)["alerts"].([]any)
	if len(alerts) != 1 || alerts[0].(map[string]any)["labels"].(map[string]any)["instance"] != "b" || alerts[0].(map[string]any)["state"] != "pending" {
		t.Errorf("alerts: %v", alerts)
	}
	_, body = get("/workspaces/ws-1/api/v1/rules", url.Values{"type": {"alert"}, "exclude_alerts": {"true"}})
	rule := body["data"].(map[string]any)["groups"].([]any)[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
	if rule["type"] != "alerting" || rule["alerts"] != nil || rule["duration"] != 2.0 || rule["health"] != "ok" {
		t.Errorf("alerting rule with exclude_alerts: %v", rule)
	}
}

// A workspace whose Alertmanager refuses alerts: the evaluations go on, the failures
// are counted.
func TestSendFailuresCounted(t *testing.T) {
	e := newEnv(t)
	e.alerts.err = context.DeadlineExceeded
	e.add(up("b"), e.at(0), 0)
	e.putNamespace("ws-1", "ns1", rulesFile)
	r, _ := e.start(Config{EvaluationInterval: time.Hour})
	for _, d := range []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second} {
		evalAt(r, "ws-1", e.at(d))
	}
	if got := testutil.ToFloat64(r.m.sendErrors.WithLabelValues("ws-1", "refused")); got != 2 {
		t.Errorf("refused alerts counted: %v, want 2 (the firing alert, sent at t0+2s and t0+3s)", got)
	}
	if v := e.instant(`job:up:sum`, e.at(3*time.Second)); len(v) != 1 {
		t.Errorf("recording rule not evaluated: %v", v)
	}
}

// A template that panics (reReplaceAll compiles its regexp with MustCompile) does not
// stop the rule: the alert fires with the error as the annotation, as in Prometheus.
func TestPanickingTemplate(t *testing.T) {
	e := newEnv(t)
	e.putNamespace("ws-1", "ns1", `
groups:
  - name: g
    interval: 1h
    rules:
      - alert: Broken
        expr: vector(1)
        annotations:
          summary: '{{ "x" | reReplaceAll "(" "" }}'
      - record: still:evaluated
        expr: vector(2)
`)
	r, _ := e.start(Config{EvaluationInterval: time.Hour})
	evalAt(r, "ws-1", e.at(0))
	if a := e.alerts.find(func(a *notifier.Alert) bool { return a.Labels.Get("alertname") == "Broken" }); a == nil ||
		!strings.Contains(a.Annotations.Get("summary"), "error expanding template") {
		t.Fatalf("alert sent: %+v", a)
	}
	if v := e.instant(`still:evaluated`, e.at(0)); len(v) != 1 {
		t.Fatalf("the next rule was not evaluated: %v", v)
	}
}

// RuleCount counts the rules of the namespaces in force, the weight by which a
// cluster's processes share the workspaces.
func TestRuleCount(t *testing.T) {
	two := "groups:\n- name: g1\n  rules:\n  - record: a:sum\n    expr: sum(a)\n  - alert: Down\n    expr: up == 0\n- name: g2\n  rules:\n  - record: b:sum\n    expr: sum(b)\n"
	one := "groups:\n- name: g\n  rules:\n  - record: c:sum\n    expr: sum(c)\n"
	ws := meta.Workspace{ID: "ws-1", Status: meta.StatusActive, RuleGroupsNamespaces: map[string]*meta.RuleGroupsNamespace{
		"a": {Name: "a", Data: []byte(two), Status: meta.StatusActive},
		"b": {Name: "b", Data: []byte(one), Status: meta.StatusUpdating},
		"c": {Name: "c", Data: []byte(one), Status: meta.StatusDeleting},       // no longer in force
		"d": {Name: "d", Data: []byte("groups: ["), Status: meta.StatusActive}, // does not decode
	}}
	if n := RuleCount(ws); n != 4 {
		t.Fatalf("RuleCount = %d, want 4 (3 + 1)", n)
	}
	if n := RuleCount(meta.Workspace{ID: "ws-2", Status: meta.StatusActive}); n != 0 {
		t.Fatalf("RuleCount of a workspace without rules = %d", n)
	}
}
