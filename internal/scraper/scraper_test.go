package scraper

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/value"

	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/testutil"
)

// workspaces is a settable set of workspace records.
type workspaces struct {
	mu  sync.Mutex
	wss []meta.Workspace
}

func (w *workspaces) ListWorkspaces() []meta.Workspace {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]meta.Workspace, len(w.wss))
	for i, ws := range w.wss {
		out[i] = ws.Clone()
	}
	return out
}

func (w *workspaces) set(wss ...meta.Workspace) {
	w.mu.Lock()
	w.wss = wss
	w.mu.Unlock()
}

// writer records what the scrapers write, by workspace.
type writer struct {
	mu     sync.Mutex
	series map[string]map[string]float64 // workspace → series → last value
	writes chan struct{}
}

func newWriter() *writer {
	return &writer{series: map[string]map[string]float64{}, writes: make(chan struct{}, 1000)}
}

func (w *writer) Write(_ context.Context, workspace string, req *remotewrite.Request, _ string) (int, error) {
	w.mu.Lock()
	m := w.series[workspace]
	if m == nil {
		m = map[string]float64{}
		w.series[workspace] = m
	}
	n := 0
	for k := range req.Series {
		ts := &req.Series[k]
		var b strings.Builder
		for name, value := range ts.Labels() {
			fmt.Fprintf(&b, "%s=%q,", name, value)
		}
		for _, s := range ts.Samples {
			m[b.String()] = s.Value
		}
		n += len(ts.Samples) + len(ts.Histograms)
	}
	w.mu.Unlock()
	select {
	case w.writes <- struct{}{}:
	default:
	}
	return n, nil
}

func (w *writer) value(workspace, series string) (float64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.series[workspace][series]
	return v, ok
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, what, cond)
}

func testConfig() Config {
	return Config{Enabled: true, DefaultSampleLimit: 5, DefaultBodyLimit: 1 << 20, SyncInterval: time.Hour, DiscoveryUpdate: 100 * time.Millisecond}
}

// startManager starts a scraper manager on wss writing to w, synced once; it stops with
// the test.
func startManager(t *testing.T, wss *workspaces, w *writer) *Manager {
	t.Helper()
	m, err := New(testConfig(), Deps{Workspaces: wss, Writer: w, Registerer: prometheus.NewRegistry(), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m.Sync(context.Background())
	t.Cleanup(m.stopAll)
	return m
}

func scraperOf(id, blob string) *meta.Scraper {
	return &meta.Scraper{ID: id, Config: []byte(blob), Status: meta.StatusActive, ClusterARN: "arn:aws:eks:us-east-1:123456789012:cluster/c1", ModifiedAt: time.Now()}
}

// A scraper's samples, up and the scrape's own series, reach its destination through
// the Writer; a target over the default sample limit fails its scrape; a scraper that
// is gone stops.
func TestScraperWritesIntoItsWorkspace(t *testing.T) {
	small := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# TYPE app_requests_total counter\napp_requests_total{code=\"200\"} 42\n")
	}))
	t.Cleanup(small.Close)
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 20 { // over the default sample limit of 5
			fmt.Fprintf(w, "big_metric{i=\"%d\"} 1\n", i)
		}
	}))
	t.Cleanup(big.Close)
	blob := fmt.Sprintf(`global:
  scrape_interval: 100ms
  scrape_timeout: 100ms
scrape_configs:
  - job_name: small
    static_configs: [{targets: [%q]}]
  - job_name: big
    static_configs: [{targets: [%q]}]
`, strings.TrimPrefix(small.URL, "http://"), strings.TrimPrefix(big.URL, "http://"))

	wss := &workspaces{}
	wss.set(meta.Workspace{ID: "ws-a", Status: meta.StatusActive, Scrapers: map[string]*meta.Scraper{"s-1": scraperOf("s-1", blob)}})
	w := newWriter()
	m := startManager(t, wss, w)
	ctx := context.Background()

	smallInstance := strings.TrimPrefix(small.URL, "http://")
	bigInstance := strings.TrimPrefix(big.URL, "http://")
	waitFor(t, "the small target's samples and up=1", func() bool {
		v, ok := w.value("ws-a", fmt.Sprintf(`__name__="app_requests_total",code="200",instance=%q,job="small",`, smallInstance))
		up, upOK := w.value("ws-a", fmt.Sprintf(`__name__="up",instance=%q,job="small",`, smallInstance))
		return ok && v == 42 && upOK && up == 1
	})
	waitFor(t, "the big target's scrape failing on the sample limit (up=0)", func() bool {
		up, ok := w.value("ws-a", fmt.Sprintf(`__name__="up",instance=%q,job="big",`, bigInstance))
		return ok && up == 0
	})
	if _, ok := w.value("ws-a", fmt.Sprintf(`__name__="big_metric",i="0",instance=%q,job="big",`, bigInstance)); ok {
		t.Fatal("samples of a scrape over the sample limit were written")
	}

	// Gone from the records: the collector stops, and with it every scrape.
	c := m.collectors["s-1"]
	wss.set(meta.Workspace{ID: "ws-a", Status: meta.StatusActive})
	m.Sync(ctx)
	select {
	case <-c.done:
	default:
		t.Fatal("the collector of a deleted scraper still runs")
	}
	if len(m.collectors) != 0 {
		t.Fatalf("collectors %v after the scraper is gone", m.collectors)
	}
	// Its series end with stale markers, as a target's do when it leaves discovery.
	for _, series := range []string{
		fmt.Sprintf(`__name__="app_requests_total",code="200",instance=%q,job="small",`, smallInstance),
		fmt.Sprintf(`__name__="up",instance=%q,job="small",`, smallInstance),
		fmt.Sprintf(`__name__="up",instance=%q,job="big",`, bigInstance),
	} {
		if v, _ := w.value("ws-a", series); !value.IsStaleNaN(v) {
			t.Fatalf("%s = %v after the scraper was deleted, want a stale marker", series, v)
		}
	}
}

// A changed configuration restarts the collector; a scraper not ACTIVE or UPDATING
// does not run.
func TestScraperFollowsChanges(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x 1\n") }))
	t.Cleanup(target.Close)
	blob := func(job string) string {
		return fmt.Sprintf("global: {scrape_interval: 100ms, scrape_timeout: 100ms}\nscrape_configs: [{job_name: %s, static_configs: [{targets: [%q]}]}]\n", job, strings.TrimPrefix(target.URL, "http://"))
	}
	wss := &workspaces{}
	s := scraperOf("s-1", blob("one"))
	wss.set(meta.Workspace{ID: "ws-a", Status: meta.StatusActive, Scrapers: map[string]*meta.Scraper{"s-1": s}})
	w := newWriter()
	m := startManager(t, wss, w)
	ctx := context.Background()
	instance := strings.TrimPrefix(target.URL, "http://")
	waitFor(t, "job one", func() bool {
		_, ok := w.value("ws-a", fmt.Sprintf(`__name__="x",instance=%q,job="one",`, instance))
		return ok
	})

	first := m.collectors["s-1"]
	s2 := scraperOf("s-1", blob("two"))
	s2.ModifiedAt = s.ModifiedAt.Add(time.Second)
	wss.set(meta.Workspace{ID: "ws-a", Status: meta.StatusActive, Scrapers: map[string]*meta.Scraper{"s-1": s2}})
	m.Sync(ctx)
	if m.collectors["s-1"] == first {
		t.Fatal("a changed configuration did not restart the collector")
	}
	waitFor(t, "job two", func() bool {
		_, ok := w.value("ws-a", fmt.Sprintf(`__name__="x",instance=%q,job="two",`, instance))
		return ok
	})
	// A restart is not an end: no stale markers (Prometheus writes none for a job that
	// a configuration reload removes either).
	if v, _ := w.value("ws-a", fmt.Sprintf(`__name__="x",instance=%q,job="one",`, instance)); v != 1 {
		t.Fatalf("job one's x = %v after the restart, want its last value", v)
	}

	s3 := *s2
	s3.Status = meta.StatusCreationFailed
	wss.set(meta.Workspace{ID: "ws-a", Status: meta.StatusActive, Scrapers: map[string]*meta.Scraper{"s-1": &s3}})
	m.Sync(ctx)
	if len(m.collectors) != 0 {
		t.Fatal("a failed scraper runs")
	}
	// Stopped for good, it ends its series, and those of the collector it replaced:
	// job one's too, which the new collector never scraped (after a restart the scraper
	// may stop before its first scrape).
	for _, job := range []string{"one", "two"} {
		if v, _ := w.value("ws-a", fmt.Sprintf(`__name__="x",instance=%q,job=%q,`, instance, job)); !value.IsStaleNaN(v) {
			t.Fatalf("job %s's x = %v after the scraper stopped, want a stale marker", job, v)
		}
	}
}

// What a scraper configuration may hold, as the control plane checks it.
func TestCheckBlob(t *testing.T) {
	ok := "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['localhost:9100']}]\n"
	if _, err := CheckBlob([]byte(ok)); err != nil {
		t.Fatalf("a static configuration: %v", err)
	}
	if _, err := CheckBlob([]byte(DefaultConfiguration)); err != nil {
		t.Fatalf("the default configuration: %v", err)
	}
	for name, tc := range map[string]struct{ blob, want string }{
		"unknown field":  {"scrape_configs:\n  - job_name: a\n    scrape_intervall: 1s\n", "scrape_intervall"},
		"remote_write":   {ok + "remote_write: [{url: 'http://x'}]\n", `"remote_write" is not allowed`},
		"rule_files":     {ok + "rule_files: [x.yml]\n", `"rule_files" is not allowed`},
		"password_file":  {"scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password_file: /etc/shadow}\n", `"password_file" reads a file`},
		"bearer file":    {"scrape_configs:\n  - job_name: a\n    authorization: {credentials_file: /var/run/secrets/token}\n", `"credentials_file" reads a file`},
		"no scrape":      {"global: {scrape_interval: 1m}\n", "no scrape_configs"},
		"not a mapping":  {"- a\n", "YAML mapping"},
		"bad duration":   {"global: {scrape_interval: soon}\nscrape_configs: [{job_name: a}]\n", "soon"},
		"duplicate jobs": {"scrape_configs: [{job_name: a}, {job_name: a}]\n", `"a"`},
	} {
		_, err := CheckBlob([]byte(tc.blob))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}

// kubernetes_sd_configs need the scraper's cluster mapped to a kubeconfig; file_sd_configs
// read only inside the file SD directory.
func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "c1.kubeconfig")
	clusters := filepath.Join(dir, "clusters.yaml")
	if err := os.WriteFile(clusters, []byte("clusters:\n  - arn: arn:aws:eks:us-east-1:123456789012:cluster/c1\n    kubeconfig: c1.kubeconfig\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.ClustersFile = clusters
	sdDir := filepath.Join(dir, "sd")
	m, err := New(cfg, Deps{Workspaces: &workspaces{}, Writer: newWriter(), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m.fileSDDir = sdDir
	k8s := "scrape_configs:\n  - job_name: pods\n    kubernetes_sd_configs: [{role: pod}]\n"
	pc, err := m.prepare(meta.Scraper{Config: []byte(k8s), ClusterARN: "arn:aws:eks:us-east-1:123456789012:cluster/c1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(pc.ScrapeConfigs[0].ServiceDiscoveryConfigs[0]); !strings.Contains(got, kubeconfig) {
		t.Fatalf("kubernetes SD config %s, want the kubeconfig %s", got, kubeconfig)
	}
	if pc.ScrapeConfigs[0].SampleLimit != 5 || pc.ScrapeConfigs[0].BodySizeLimit != 1<<20 {
		t.Fatalf("limits %d %d, want the defaults", pc.ScrapeConfigs[0].SampleLimit, pc.ScrapeConfigs[0].BodySizeLimit)
	}
	err = m.Check(context.Background(), meta.Scraper{Config: []byte(k8s), ClusterARN: "arn:aws:eks:us-east-1:123456789012:cluster/unmapped"})
	if err == nil || !strings.Contains(err.Error(), "does not map") {
		t.Fatalf("an unmapped cluster: %v", err)
	}
	// Limits set by the configuration stay.
	own := "scrape_configs:\n  - job_name: a\n    sample_limit: 100\n    static_configs: [{targets: ['h:1']}]\n"
	if pc, err := m.prepare(meta.Scraper{Config: []byte(own)}); err != nil || pc.ScrapeConfigs[0].SampleLimit != 100 {
		t.Fatalf("own sample limit: %v", err)
	}
	fileSD := func(p string) meta.Scraper {
		return meta.Scraper{Config: []byte(fmt.Sprintf("scrape_configs:\n  - job_name: f\n    file_sd_configs: [{files: [%q]}]\n", p))}
	}
	if pc, err := m.prepare(fileSD("targets/*.json")); err != nil || !strings.Contains(fmt.Sprint(pc.ScrapeConfigs[0].ServiceDiscoveryConfigs[0]), filepath.Join(sdDir, "targets/*.json")) {
		t.Fatalf("a relative file SD pattern: %v", err)
	}
	for _, p := range []string{"../secrets.json", "/etc/*.json", "a/../../b.json"} {
		if err := m.Check(context.Background(), fileSD(p)); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("file SD %q: %v, want it refused", p, err)
		}
	}
}

// A target that never answers fails its scrape at scrape_timeout, and one that would
// send a gigabyte is cut off at the body size limit: both are up 0, and the other
// targets are scraped as usual.
func TestBadTargets(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	var sent atomic.Int64
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		line := []byte(strings.Repeat("x", 1000) + " 1\n")
		for sent.Load() < 1<<30 { // a gigabyte, unless the scraper stops reading
			n, err := w.Write(line)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(huge.Close)
	fine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok_metric 1\n") }))
	t.Cleanup(fine.Close)
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	blob := fmt.Sprintf(`global: {scrape_interval: 200ms, scrape_timeout: 200ms}
scrape_configs:
  - {job_name: hang, static_configs: [{targets: [%q]}]}
  - {job_name: huge, static_configs: [{targets: [%q]}]}
  - {job_name: fine, static_configs: [{targets: [%q]}]}
`, host(hang), host(huge), host(fine))
	wss := &workspaces{}
	wss.set(meta.Workspace{ID: "ws-a", Status: meta.StatusActive, Scrapers: map[string]*meta.Scraper{"s-1": scraperOf("s-1", blob)}})
	w := newWriter()
	cfg := testConfig()
	cfg.DefaultSampleLimit = 0 // only the body size limit (1 MiB) stops the huge target
	m, err := New(cfg, Deps{Workspaces: wss, Writer: w, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m.Sync(context.Background())
	t.Cleanup(m.stopAll)
	up := func(job string, s *httptest.Server) (float64, bool) {
		return w.value("ws-a", fmt.Sprintf(`__name__="up",instance=%q,job=%q,`, host(s), job))
	}
	waitFor(t, "up of all three targets", func() bool {
		h, ok1 := up("hang", hang)
		g, ok2 := up("huge", huge)
		f, ok3 := up("fine", fine)
		return ok1 && ok2 && ok3 && h == 0 && g == 0 && f == 1
	})
	if n := sent.Load(); n >= 1<<30 {
		t.Fatalf("the huge target sent all of its %d bytes", n)
	}
	if _, ok := w.value("ws-a", fmt.Sprintf(`__name__="ok_metric",instance=%q,job="fine",`, host(fine))); !ok {
		t.Fatal("the fine target's samples are missing")
	}
}
