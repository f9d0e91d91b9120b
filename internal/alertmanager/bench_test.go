package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/testutil"
)

// The load of issue #10: 10,000 active alerts across 100 workspaces.
const (
	benchWorkspaces         = 100
	benchAlertsPerWorkspace = 100
	benchGroupWait          = time.Second
	// benchNotifyTimeout bounds the wait for every alert of an iteration to be notified.
	benchNotifyTimeout = time.Minute
)

// BenchmarkNotificationLatency answers issue #10: with 10,000 active alerts across 100
// workspaces, is the notification latency p99 under 2 s after group_wait? Each
// iteration sends 100 alerts with new alertnames to each of 100 workspaces, one
// SendAlerts call per alert as fast as it goes, one goroutine per workspace, and waits
// until a webhook has received every one. The definition groups by alertname; in
// groups=10000 every alert has an alertname of its own (100 new aggregation groups per
// workspace), in groups=1000 ten alerts share each alertname (told apart by instance).
//
// An alert's latency is its arrival at the webhook minus group_wait (1s) and the return
// of the SendAlerts call of the first alert of its group (which started the wait). It
// reports p50-ms, p99-ms and max-ms over the alerts of all iterations, and cpu-µs/alert,
// the CPU time of the process (the webhook's included) from the first send to the last
// arrival, per alert; it logs the latencies per iteration. ns/op is the time of a whole
// burst (sending, group_wait, the last notification), not a latency.
//
// groups=10000 is the worst case of the issue: 10,000 groups whose group_wait ends
// within the few hundred milliseconds the sending takes, so 10,000 notifications at
// once. The webhook runs in the same process and takes its share of the CPU.
//
// The alerts of earlier iterations stay active (resolve timeout 5m), so iteration k runs
// with k×10,000 active alerts, and the default quotas (1,000 alerts and aggregation
// groups per workspace) allow 10 iterations.
//
//	go test -run '^$' -bench BenchmarkNotificationLatency -benchtime 3x ./internal/alertmanager/
func BenchmarkNotificationLatency(b *testing.B) {
	for _, groupSize := range []int{1, 10} {
		b.Run(fmt.Sprintf("groups=%d", benchWorkspaces*benchAlertsPerWorkspace/groupSize), func(b *testing.B) {
			benchmarkNotificationLatency(b, groupSize)
		})
	}
}

// benchmarkNotificationLatency runs BenchmarkNotificationLatency with groupSize alerts
// per aggregation group.
func benchmarkNotificationLatency(b *testing.B, groupSize int) {
	maxIters := min(DefaultMaxAlerts/benchAlertsPerWorkspace, DefaultMaxAggregationGroups*groupSize/benchAlertsPerWorkspace)
	hook := newLatencyHook(b)
	m, reg := newBenchMultiTenant(b, hook)
	var all []time.Duration
	var cpu time.Duration
	iter := 0
	for b.Loop() {
		if iter == maxIters {
			b.Fatalf("iteration %d would exceed the default quotas of %d alerts and %d aggregation groups per workspace: run at most %d (e.g. -benchtime 3x)",
				iter+1, DefaultMaxAlerts, DefaultMaxAggregationGroups, maxIters)
		}
		before := cpuTime(b)
		lat := sendAndWait(b, m, hook, iter, groupSize)
		cpu += cpuTime(b) - before
		all = append(all, lat...)
		iter++
		b.StopTimer()
		settle(b, reg, iter*benchWorkspaces*benchAlertsPerWorkspace/groupSize)
		b.StartTimer()
	}
	slices.Sort(all)
	b.ReportMetric(ms(quantile(all, 0.5)), "p50-ms")
	b.ReportMetric(ms(quantile(all, 0.99)), "p99-ms")
	b.ReportMetric(ms(quantile(all, 1)), "max-ms")
	b.ReportMetric(float64(len(all)), "alerts")
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/alert")
}

// cpuTime is the CPU time (user and system) of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sendAndWait sends one iteration's alerts and returns their latencies once all are
// notified, sorted.
func sendAndWait(b *testing.B, m *MultiTenant, hook *latencyHook, iter, groupSize int) []time.Duration {
	b.Helper()
	done := hook.expect(benchWorkspaces * benchAlertsPerWorkspace)
	sent := make([][]time.Time, benchWorkspaces)
	errs := make([]error, benchWorkspaces)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range benchWorkspaces {
		wg.Go(func() {
			ws := benchWorkspace(w)
			sent[w] = make([]time.Time, benchAlertsPerWorkspace)
			for i := range benchAlertsPerWorkspace {
				err := m.SendAlerts(context.Background(), ws, []*notifier.Alert{{
					Labels:      labels.FromStrings("alertname", benchAlertName(iter, i/groupSize), "instance", benchInstance(i%groupSize), "severity", "critical", "job", "bench"),
					Annotations: labels.FromStrings("summary", "benchmark alert"),
				}})
				if err != nil {
					errs[w] = fmt.Errorf("workspace %s, alert %d: %w", ws, i, err)
					return
				}
				sent[w][i] = time.Now()
			}
		})
	}
	wg.Wait()
	sending := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(benchNotifyTimeout):
		b.Fatalf("iteration %d: %d of %d alerts not notified %s after they were sent (%s)",
			iter+1, hook.missing(), benchWorkspaces*benchAlertsPerWorkspace, benchNotifyTimeout, hook.stats())
	}
	lat := make([]time.Duration, 0, benchWorkspaces*benchAlertsPerWorkspace)
	for w := range benchWorkspaces {
		for i := range sent[w] {
			// The group's wait starts with its first alert, sent before the others.
			at := sent[w][i-i%groupSize]
			name, instance := benchAlertName(iter, i/groupSize), benchInstance(i%groupSize)
			arrived, ok := hook.arrival(benchWorkspace(w), name, instance)
			if !ok {
				b.Fatalf("iteration %d: alert %s/%s of workspace %s was never notified", iter+1, name, instance, benchWorkspace(w))
			}
			lat = append(lat, arrived.Sub(at.Add(benchGroupWait)))
		}
	}
	slices.Sort(lat)
	b.Logf("iteration %d: %d alerts sent in %s; latency after group_wait: min %s p50 %s p99 %s max %s; webhook: %s",
		iter+1, len(lat), sending.Round(time.Millisecond), quantile(lat, 0).Round(time.Millisecond),
		quantile(lat, 0.5).Round(time.Millisecond), quantile(lat, 0.99).Round(time.Millisecond),
		quantile(lat, 1).Round(time.Millisecond), hook.stats())
	return lat
}

func benchWorkspace(w int) string { return fmt.Sprintf("ws-bench-%03d", w) }

func benchAlertName(iter, i int) string { return fmt.Sprintf("BenchAlert_%d_%03d", iter, i) }

func benchInstance(i int) string { return fmt.Sprintf("host-%d", i) }

// quantile returns the nearest-rank q-quantile of sorted; 0 when it is empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// settle waits until the Alertmanagers have seen the answers to all the webhook
// requests so far, want (the webhook records an alert before it answers), so that the
// end of an iteration does not slow the next one down.
func settle(b *testing.B, reg *prometheus.Registry, want int) {
	b.Helper()
	testutil.Eventually(b, benchNotifyTimeout, fmt.Sprintf("%d successful webhook requests", want), func() bool {
		ok, err := notifyRequests(reg)
		if err != nil {
			b.Fatal(err)
		}
		return ok >= want
	})
}

// notifyRequests returns the number of successful notification requests of all the
// Alertmanagers, from their metrics.
func notifyRequests(reg *prometheus.Registry) (int, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	var n float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "strata_alertmanager_notification_requests_total":
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		case "strata_alertmanager_notification_requests_failed_total":
			for _, m := range mf.GetMetric() {
				n -= m.GetCounter().GetValue()
			}
		}
	}
	return int(n), nil
}

// newBenchMultiTenant builds, as newFixture does for tests, a MultiTenant over a meta
// store on a filesystem bucket, with benchWorkspaces workspaces whose definitions route
// to hook, and starts their Alertmanagers. It returns the registry of its metrics.
func newBenchMultiTenant(b *testing.B, hook *latencyHook) (*MultiTenant, *prometheus.Registry) {
	b.Helper()
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	store := meta.New(meta.Config{PollInterval: time.Hour}, bkt, nil, prometheus.NewRegistry())
	if err := store.Load(ctx); err != nil {
		b.Fatal(err)
	}
	for w := range benchWorkspaces {
		id := benchWorkspace(w)
		doc, err := yaml.Marshal(map[string]any{"alertmanager_config": benchConfig(hook.url(id))})
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		ws := meta.Workspace{
			ID: id, ARN: "arn:aws:aps:us-east-1:123456789012:workspace/" + id, Status: meta.StatusActive, CreatedAt: now,
			AlertManagerDefinition: &meta.AlertManagerDefinition{Data: doc, Status: meta.StatusActive, CreatedAt: now, ModifiedAt: now},
		}
		if err := store.CreateWorkspace(ctx, ws); err != nil {
			b.Fatal(err)
		}
	}
	logs := &testutil.SyncBuffer{}
	reg := prometheus.NewRegistry()
	m, err := New(testConfig(), Deps{
		Workspaces:  store,
		Bucket:      bkt,
		DataDir:     b.TempDir(),
		ExternalURL: "http://strata.example:8080",
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer:  reg,
	})
	if err != nil {
		b.Fatal(err)
	}
	// Registered after the webhook's, so it runs first: no notification is in flight when
	// the webhook closes.
	b.Cleanup(func() {
		if err := m.Close(); err != nil {
			b.Error(err)
		}
		if b.Failed() {
			s := logs.String()
			if len(s) > 64<<10 {
				s = s[:64<<10] + "\n[…]"
			}
			b.Logf("logs:\n%s", s)
		}
	})
	m.Sync(ctx)
	if n := len(m.Running()); n != benchWorkspaces {
		b.Fatalf("%d alertmanagers running, want %d:\n%s", n, benchWorkspaces, logs.String())
	}
	return m, reg
}

// benchConfig is the definition of issue #10: everything to one webhook, grouped by
// alertname, group_wait 1s.
func benchConfig(url string) string {
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: %s
  group_interval: 1m
  repeat_interval: 4h
receivers:
- name: hook
  webhook_configs:
  - url: %s
`, benchGroupWait, url)
}

// latencyHook is a webhook receiver that records when each alert first arrives, by
// workspace (the last element of the URL path), alertname and instance.
type latencyHook struct {
	srv *httptest.Server

	mu sync.Mutex // guards the fields below
	// arrived is the first arrival of each firing alert, keyed by
	// workspace/alertname/instance.
	arrived map[string]time.Time
	// notifications counts the requests; repeats the alerts that arrived again;
	// bad the requests that did not decode.
	notifications, repeats, bad int
	// conns is the number of open connections, peakConns the most at once, opened all
	// that were opened; serverErrs counts the server's errors (accept failures: too many
	// open files).
	conns, peakConns, opened, serverErrs int
	// want is the number of alerts expect waits for; done is closed when arrived reaches
	// it (nil once closed).
	want int
	done chan struct{}
}

func newLatencyHook(b *testing.B) *latencyHook {
	b.Helper()
	h := &latencyHook{arrived: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook/{workspace}", h.serve)
	h.srv = httptest.NewUnstartedServer(mux)
	// A burst opens about one connection per aggregation group flushing at once; kept
	// idle, 10,000 of them on each side take all the files a process may open here
	// (20,000), and notifications fail until one closes. A receiver closes idle ones too.
	h.srv.Config.IdleTimeout = time.Second
	h.srv.Config.ConnState = h.connState
	h.srv.Config.ErrorLog = log.New(writerFunc(h.serverError), "", 0)
	h.srv.Start()
	b.Cleanup(h.srv.Close)
	return h
}

func (h *latencyHook) connState(_ net.Conn, s http.ConnState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch s {
	case http.StateNew:
		h.conns++
		h.opened++
		h.peakConns = max(h.peakConns, h.conns)
	case http.StateClosed, http.StateHijacked:
		h.conns--
	}
}

func (h *latencyHook) serverError(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.serverErrs++
	return len(p), nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (h *latencyHook) url(workspace string) string { return h.srv.URL + "/hook/" + workspace }

func (h *latencyHook) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ws := r.PathValue("workspace")
	var m hookMessage
	err := json.NewDecoder(r.Body).Decode(&m)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notifications++
	if err != nil {
		h.bad++
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, a := range m.Alerts {
		if a.Status != "firing" {
			continue
		}
		k := ws + "/" + a.Labels.Alertname + "/" + a.Labels.Instance
		if _, ok := h.arrived[k]; ok {
			h.repeats++
			continue
		}
		h.arrived[k] = now
	}
	if h.done != nil && len(h.arrived) >= h.want {
		close(h.done)
		h.done = nil
	}
}

// hookMessage is the part of a webhook notification latencyHook reads: decoding no more
// keeps the receiver's share of the CPU small.
type hookMessage struct {
	Alerts []struct {
		Status string `json:"status"`
		Labels struct {
			Alertname string `json:"alertname"`
			Instance  string `json:"instance"`
		} `json:"labels"`
	} `json:"alerts"`
}

// expect returns a channel closed once n more alerts than so far have arrived.
func (h *latencyHook) expect(n int) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.want = len(h.arrived) + n
	h.done = make(chan struct{})
	return h.done
}

func (h *latencyHook) missing() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.want - len(h.arrived)
}

func (h *latencyHook) arrival(workspace, alertname, instance string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.arrived[workspace+"/"+alertname+"/"+instance]
	return t, ok
}

func (h *latencyHook) stats() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("%d notifications so far, %d alerts notified again, %d bad requests; %d connections opened, %d open (peak %d); %d server errors",
		h.notifications, h.repeats, h.bad, h.opened, h.conns, h.peakConns, h.serverErrs)
}
