package alertmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
)

// heldHook is a webhook receiver that holds every request until the test releases one,
// counting the requests in flight.
type heldHook struct {
	srv     *httptest.Server
	release chan struct{}

	mu             sync.Mutex
	inFlight, peak int
	names          []string
}

func newHeldHook(t *testing.T) *heldHook {
	t.Helper()
	h := &heldHook{release: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m message
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook: decoding: %v", err)
		}
		h.mu.Lock()
		h.inFlight++
		h.peak = max(h.peak, h.inFlight)
		h.mu.Unlock()
		<-h.release
		h.mu.Lock()
		h.inFlight--
		h.names = append(h.names, m.names("alertname")...)
		h.mu.Unlock()
	}))
	t.Cleanup(func() {
		close(h.release)
		h.srv.Close()
	})
	return h
}

func (h *heldHook) state() (inFlight, peak, done int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inFlight, h.peak, len(h.names)
}

// Groups that flush together are notified at most MaxConcurrentNotifications at a time
// per receiver; the others wait their turn and are all notified.
func TestConcurrentNotificationsBounded(t *testing.T) {
	const limit, groups = 2, 6
	f := newFixture(t, withConfig(func(c *Config) { c.MaxConcurrentNotifications = limit }))
	hook := newHeldHook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.srv.URL+"/hook"), nil))
	f.sync()
	var alerts []map[string]string
	for i := range groups {
		alerts = append(alerts, map[string]string{"alertname": fmt.Sprintf("A%d", i)})
	}
	if code, body := f.postAlerts("ws-a", alerts...); code != http.StatusOK {
		t.Fatalf("posting alerts: %d %s", code, body)
	}
	// Without the bound all six would be held at once; with it, two are, and each
	// release lets exactly one more in.
	for released := range groups {
		want := min(limit, groups-released)
		waitFor(t, fmt.Sprintf("%d notifications in flight after %d released", want, released), func() bool {
			inFlight, _, _ := hook.state()
			return inFlight == want
		})
		hook.release <- struct{}{}
	}
	waitFor(t, "every group notified", func() bool {
		_, _, done := hook.state()
		return done == groups
	})
	if _, peak, _ := hook.state(); peak != limit {
		t.Fatalf("peak of %d notifications in flight, want %d", peak, limit)
	}
}

// A webhook URL that is a template is rendered with the definition's templates (the
// webhooks with a literal URL get a template set without them).
func TestTemplatedWebhookURL(t *testing.T) {
	f := newFixture(t)
	paths := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.RequestURI()
	}))
	t.Cleanup(srv.Close)
	cfg := fmt.Sprintf(`route:
  receiver: both
  group_by: [alertname]
  group_wait: 50ms
receivers:
- name: both
  webhook_configs:
  - url: '{{ template "base" . }}/templated?name={{ .GroupLabels.alertname }}'
  - url: %s/plain
templates: [urls]
`, srv.URL)
	f.createWorkspace("ws-a", definition(t, cfg, map[string]string{"urls": fmt.Sprintf(`{{ define "base" }}%s{{ end }}`, srv.URL)}))
	f.sync()
	f.postAlerts("ws-a", map[string]string{"alertname": "Templated"})
	got := map[string]bool{}
	for range 2 {
		select {
		case p := <-paths:
			got[p] = true
		case <-time.After(waitTimeout):
			t.Fatalf("timed out; requests so far: %v", got)
		}
	}
	if !got["/templated?name=Templated"] || !got["/plain"] {
		t.Fatalf("requests %v, want /templated?name=Templated and /plain", got)
	}
}

// blockingStage is a pipeline whose flushes hold until released, recording their end.
type blockingStage struct {
	entered, release chan struct{}
	log              func(string)
}

func (s blockingStage) Exec(ctx context.Context, _ *slog.Logger, alerts ...*alert.Alert) (context.Context, []*alert.Alert, error) {
	s.entered <- struct{}{}
	<-s.release
	s.log("flush ended")
	return ctx, alerts, nil
}

// Stopping waits for the flushes in progress (the library's dispatcher does not), so
// the notification log they write is in the last persist.
func TestStopWaitsForFlushes(t *testing.T) {
	var mu sync.Mutex
	var events []string
	log := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	f := &flights{waiting: make(chan struct{})}
	inner := blockingStage{entered: make(chan struct{}), release: make(chan struct{}), log: log}
	s := trackedStage{inner, f}
	ctx := notify.WithReceiverName(context.Background(), "hook")
	go func() { _, _, _ = s.Exec(ctx, slog.New(slog.DiscardHandler)) }()
	<-inner.entered
	waited := make(chan error, 1)
	go func() {
		err := f.wait(context.Background())
		log("wait returned")
		waited <- err
	}()
	select {
	case <-f.waiting: // wait is blocked on the flush in progress
	case err := <-waited:
		t.Fatalf("wait returned (%v) while a flush was in progress", err)
	}
	close(inner.release)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, ", ") != "flush ended, wait returned" {
		t.Fatalf("events %v, want the flush to end before the wait returns", events)
	}
	if err := f.wait(context.Background()); err != nil { // idle: returns at once
		t.Fatal(err)
	}
}

// A tenant's stop waits for its flushes in progress before it returns (and the last
// persist follows).
func TestTenantStopWaitsForFlights(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	tn := f.m.tenant("ws-a")
	tn.flights.waiting = make(chan struct{})
	tn.flights.start() // a flush in progress
	stopped := make(chan struct{})
	go func() {
		tn.stop(context.Background())
		close(stopped)
	}()
	select {
	case <-tn.flights.waiting:
	case <-stopped:
		t.Fatal("stop returned while a flush was in progress")
	}
	tn.flights.end()
	<-stopped
}
