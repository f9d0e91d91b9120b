package alertmanager

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/testutil"
)

// A receiver that cannot be reached, and templates that fail or panic, cost their own
// workspace its notifications (retried, counted, logged) and nothing else.
func TestFailingReceiversStayInTheirWorkspace(t *testing.T) {
	f := newFixture(t)
	gone := httptest.NewServer(nil)
	unreachable := gone.URL + "/hook"
	gone.Close()
	hookB := newWebhook(t)
	cfgA := `route:
  receiver: unreachable
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 300ms
  routes:
  - matchers: [kind="template"]
    receiver: bad-template
receivers:
- name: unreachable
  webhook_configs:
  - url: ` + unreachable + `
- name: bad-template
  webhook_configs:
  - url: '` + hookB.url() + `?x={{ template "boom" . }}'
templates: [boom]
`
	// reReplaceAll compiles its pattern with regexp.MustCompile: "(" panics while the
	// template runs.
	f.createWorkspace("ws-a", definition(t, cfgA, map[string]string{"boom": `{{ define "boom" }}{{ reReplaceAll "(" "x" "y" }}{{ end }}`}))
	f.createWorkspace("ws-b", definition(t, hookConfig(hookB.url()), nil))
	f.sync()

	f.postAlerts("ws-a", map[string]string{"alertname": "Unreachable"})
	f.postAlerts("ws-a", map[string]string{"alertname": "Template", "kind": "template"})
	waitFor(t, "failed notifications of both receivers", func() bool {
		v, _ := f.metric("strata_alertmanager_notification_requests_failed_total", map[string]string{"workspace": "ws-a", "integration": "webhook"})
		return v >= 3 // retries of the unreachable one, and the template's
	})
	// Meanwhile another workspace notifies as usual.
	f.postAlerts("ws-b", map[string]string{"alertname": "Healthy"})
	if m := hookB.next(t); joined(m.names("alertname")) != "Healthy" {
		t.Fatalf("notification of the healthy workspace: %+v", m)
	}
	waitFor(t, "the failures logged with the workspace", func() bool {
		logs := f.logs.String()
		return strings.Contains(logs, "workspace=ws-a") && strings.Contains(logs, "connection refused") &&
			strings.Contains(logs, "error parsing regexp: missing closing )")
	})
	if v, _ := f.metric("strata_alertmanager_notifications_total", map[string]string{"workspace": "ws-b", "integration": "webhook"}); v != 1 {
		t.Errorf("ws-b notifications %v, want 1", v)
	}
}

type panicNotifier struct{}

func (panicNotifier) Notify(context.Context, ...*alert.Alert) notify.NotifyVerdict { panic("bug") }

type sendResolved bool

func (s sendResolved) SendResolved() bool { return bool(s) }

func TestSafeNotifierRecovers(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	tn := &tenant{
		id:     "ws-a",
		logger: slog.New(slog.NewTextHandler(logs, nil)).With("workspace", "ws-a"),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "p"}, []string{"integration"}),
	}
	sn := newSafeNotifier(notify.NewIntegration(panicNotifier{}, sendResolved(true), "webhook", 0, "r"), tn, "r", 1)
	v := sn.Notify(context.Background())
	if v.Err() == nil || v.ShouldRetry() || !strings.Contains(v.Err().Error(), "panicked: bug") {
		t.Fatalf("verdict: err %v, retry %v", v.Err(), v.ShouldRetry())
	}
	if !sn.SendResolved() {
		t.Error("SendResolved not passed through")
	}
	if got := logs.String(); !strings.Contains(got, "workspace=ws-a") || !strings.Contains(got, "panicked") {
		t.Errorf("log: %s", got)
	}
}
