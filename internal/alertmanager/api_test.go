package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
)

func TestAlertsReachTheReceiver(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()

	// Through the API, as Prometheus or amtool post them.
	if code, b := f.postAlerts("ws-a", map[string]string{"alertname": "FromAPI", "instance": "a"}); code != http.StatusOK {
		t.Fatalf("POST alerts: %d %s", code, b)
	}
	m := hook.next(t)
	if m.Receiver != "hook" || m.Status != "firing" || joined(m.names("alertname")) != "FromAPI" {
		t.Fatalf("notification: %+v", m)
	}
	// Links in notifications point at the workspace's Alertmanager.
	if want := "http://strata.example:8080/workspaces/ws-a/alertmanager"; m.ExternalURL != want {
		t.Errorf("externalURL %q, want %q", m.ExternalURL, want)
	}

	// In process, as the ruler sends them.
	err := f.m.SendAlerts(context.Background(), "ws-a", []*notifier.Alert{{
		Labels:       labels.FromStrings("alertname", "FromRuler", "severity", "page", "empty", ""),
		Annotations:  labels.FromStrings("summary", "from the ruler"),
		StartsAt:     time.Now().Add(-time.Minute),
		EndsAt:       time.Now().Add(time.Hour),
		GeneratorURL: "http://prometheus/graph",
	}})
	if err != nil {
		t.Fatal(err)
	}
	m = hook.next(t)
	if joined(m.names("alertname")) != "FromRuler" || m.Alerts[0].Labels["severity"] != "page" {
		t.Fatalf("notification: %+v", m)
	}
	if _, ok := m.Alerts[0].Labels["empty"]; ok {
		t.Errorf("an empty label was kept: %v", m.Alerts[0].Labels)
	}

	// Both are listed, and grouped by alertname.
	var alerts models.GettableAlerts
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "alerts", nil), &alerts); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range alerts {
		names = append(names, a.Labels["alertname"])
		if *a.Status.State != "active" || len(a.Receivers) != 1 || *a.Receivers[0].Name != "hook" {
			t.Errorf("alert %v: state %s, receivers %v", a.Labels, *a.Status.State, a.Receivers)
		}
	}
	slices.Sort(names)
	if joined(names) != "FromAPI,FromRuler" {
		t.Errorf("alerts %v", names)
	}
	var filtered models.GettableAlerts
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "alerts?filter=alertname%3D%22FromRuler%22&active=true&silenced=false&inhibited=false&receiver=hook", nil), &filtered); err != nil {
		t.Fatal(err)
	}
	if len(filtered) != 1 || filtered[0].Labels["alertname"] != "FromRuler" {
		t.Errorf("filtered alerts: %+v", filtered)
	}
	var groups models.AlertGroups
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "alerts/groups", nil), &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || *groups[0].Receiver.Name != "hook" {
		t.Errorf("groups: %+v", groups)
	}

	// Per-workspace metrics, exported with a workspace label.
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"strata_alertmanager_alerts_received_total", map[string]string{"workspace": "ws-a"}, 1},
		{"strata_alertmanager_inprocess_alerts_received_total", map[string]string{"workspace": "ws-a", "status": "firing"}, 1},
		{"strata_alertmanager_notifications_total", map[string]string{"workspace": "ws-a", "integration": "webhook"}, 2},
		{"strata_alertmanager_alerts_quota_alerts", map[string]string{"workspace": "ws-a"}, 2},
		{"strata_alertmanager_config_last_apply_successful", map[string]string{"workspace": "ws-a"}, 1},
		{"strata_alertmanager_workspaces", nil, 1},
	} {
		if v, ok := f.metric(c.name, c.labels); !ok || v < c.min {
			t.Errorf("%s%v = %v (found %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	if _, ok := f.metric("strata_alertmanager_silences", map[string]string{"workspace": "ws-a", "state": "active"}); !ok {
		t.Error("no strata_alertmanager_silences{state=active} series")
	}
}

func TestStatusAndReceivers(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	cfg := hookConfig(hook.url()) + `- name: slack
  slack_configs:
  - api_url: https://hooks.slack.example/services/T000/B000/very-secret-token
    channel: '#alerts'
`
	f.createWorkspace("ws-a", definition(t, cfg, nil))
	f.sync()
	var status models.AlertmanagerStatus
	b := f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "status", nil)
	if err := json.Unmarshal(b, &status); err != nil {
		t.Fatal(err)
	}
	if err := status.Validate(nil); err != nil {
		t.Errorf("status does not validate against the API's schema: %v", err)
	}
	if !strings.Contains(*status.Config.Original, "receiver: hook") {
		t.Errorf("config.original: %s", *status.Config.Original)
	}
	if strings.Contains(string(b), "very-secret-token") {
		t.Errorf("the status answer shows a secret: %s", b)
	}
	var receivers []models.Receiver
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "receivers", nil), &receivers); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range receivers {
		names = append(names, *r.Name)
	}
	if joined(names) != "hook,slack" {
		t.Errorf("receivers %v", names)
	}
}

func TestSilenceSuppresses(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	id := f.createSilence("ws-a", map[string]string{"instance": "silenced"})

	var sil models.GettableSilence
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "silence/"+id, nil), &sil); err != nil {
		t.Fatal(err)
	}
	if *sil.ID != id || *sil.Status.State != "active" || *sil.CreatedBy != "test" {
		t.Fatalf("silence: %+v", sil)
	}
	// The silence was written to the bucket before the API answered.
	if ok, err := f.bkt.Exists(context.Background(), objectName("ws-a", stateSilences)); err != nil || !ok {
		t.Fatalf("silences not in the bucket after POST (exists %v, %v)", ok, err)
	}

	// One group, two alerts: the notification holds only the one not silenced.
	f.postAlerts("ws-a",
		map[string]string{"alertname": "Down", "instance": "silenced"},
		map[string]string{"alertname": "Down", "instance": "loud"})
	m := hook.next(t)
	if got := joined(m.names("instance")); got != "loud" {
		t.Fatalf("notified %q, want only the unsilenced alert", got)
	}
	var alerts models.GettableAlerts
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "alerts?silenced=false", nil), &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Labels["instance"] != "loud" {
		t.Errorf("unsilenced alerts: %+v", alerts)
	}
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "alerts?filter=instance%3D%22silenced%22", nil), &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || *alerts[0].Status.State != "suppressed" || !slices.Equal(alerts[0].Status.SilencedBy, []string{id}) {
		t.Errorf("silenced alert: %+v", alerts)
	}

	// Expired with DELETE, it is listed as expired.
	f.mustDo(http.StatusOK, http.MethodDelete, "ws-a", "silence/"+id, nil)
	var sils models.GettableSilences
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "silences", nil), &sils); err != nil {
		t.Fatal(err)
	}
	if len(sils) != 1 || *sils[0].Status.State != "expired" {
		t.Errorf("silences after DELETE: %+v", sils)
	}
	f.mustDo(http.StatusNotFound, http.MethodGet, "ws-a", "silence/0d5a5b59-46d5-4b2c-9a38-2f3e9d0d1e7f", nil)
}

func TestInhibition(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	cfg := hookConfig(hook.url()) + `inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [cluster]
`
	cfg = strings.Replace(cfg, "group_by: [alertname]", "group_by: [cluster]", 1)
	// The inhibitor sees the source alert as the dispatcher does, on its own goroutine:
	// a longer group_wait leaves it time on a busy machine.
	cfg = strings.Replace(cfg, "group_wait: 50ms", "group_wait: 500ms", 1)
	f.createWorkspace("ws-a", definition(t, cfg, nil))
	f.sync()
	f.postAlerts("ws-a",
		map[string]string{"alertname": "ClusterDown", "severity": "critical", "cluster": "c1"},
		map[string]string{"alertname": "HighLatency", "severity": "warning", "cluster": "c1"},
		map[string]string{"alertname": "DiskFull", "severity": "info", "cluster": "c1"})
	m := hook.next(t)
	got := m.names("alertname")
	slices.Sort(got)
	if joined(got) != "ClusterDown,DiskFull" {
		t.Fatalf("notified %v, want the inhibited warning left out", got)
	}
	var alerts models.GettableAlerts
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "alerts?inhibited=false", nil), &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 2 {
		t.Errorf("uninhibited alerts: %d, want 2", len(alerts))
	}
}

func TestNoDefinition(t *testing.T) {
	f := newFixture(t)
	f.createWorkspace("ws-plain", "")
	f.sync()
	for _, ws := range []string{"ws-plain", "ws-missing"} {
		for _, r := range f.m.Routes() {
			path := strings.TrimPrefix(r.Pattern, RoutePrefix)
			path = strings.Replace(path, "{silenceID}", "0d5a5b59-46d5-4b2c-9a38-2f3e9d0d1e7f", 1)
			var body any
			if r.Method == http.MethodPost {
				body = []any{}
			}
			code, b := f.do(r.Method, ws, path, body)
			if code != http.StatusNotFound || !strings.Contains(string(b), "has no alert manager definition") {
				t.Errorf("%s %s on %s: %d %s, want 404 naming the missing definition", r.Method, path, ws, code, b)
			}
		}
	}
	err := f.m.SendAlerts(context.Background(), "ws-plain", []*notifier.Alert{{Labels: labels.FromStrings("alertname", "x")}})
	if !errors.Is(err, ErrNoAlertmanager) {
		t.Errorf("SendAlerts without a definition: %v, want ErrNoAlertmanager", err)
	}
}

func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	hookA, hookB := newWebhook(t), newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hookA.url()), nil))
	f.createWorkspace("ws-b", definition(t, hookConfig(hookB.url()), nil))
	f.sync()
	idA := f.createSilence("ws-a", map[string]string{"alertname": "OnlyA"})
	f.postAlerts("ws-a", map[string]string{"alertname": "AlertOfA"})
	if m := hookA.next(t); joined(m.names("alertname")) != "AlertOfA" {
		t.Fatalf("A's notification: %+v", m)
	}

	var alerts models.GettableAlerts
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-b", "alerts", nil), &alerts); err != nil {
		t.Fatal(err)
	}
	var groups models.AlertGroups
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-b", "alerts/groups", nil), &groups); err != nil {
		t.Fatal(err)
	}
	var sils models.GettableSilences
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-b", "silences", nil), &sils); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 0 || len(groups) != 0 || len(sils) != 0 {
		t.Errorf("B sees A's state: alerts %v, groups %v, silences %v", alerts, groups, sils)
	}
	f.mustDo(http.StatusNotFound, http.MethodGet, "ws-b", "silence/"+idA, nil)
	f.mustDo(http.StatusNotFound, http.MethodDelete, "ws-b", "silence/"+idA, nil)
}

// The API starts a workspace's Alertmanager on the first request after its definition
// is created, before any Sync has seen it.
func TestStartOnDemand(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	f.sync()
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "status", nil)
	if got := f.m.Running(); !slices.Equal(got, []string{"ws-a"}) {
		t.Errorf("running %v", got)
	}
}

// The requests Grafana's Alertmanager data source (implementation "Prometheus", as for
// AMP) sends besides status, receivers and silences: alert groups and alerts with its
// state, filter and receiver parameters. Grafana itself is not installable here.
func TestGrafanaDataSourceQueries(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	f.postAlerts("ws-a",
		map[string]string{"alertname": "Down", "instance": "a", "team": "db"},
		map[string]string{"alertname": "Down", "instance": "b", "team": "web"},
		map[string]string{"alertname": "Slow", "instance": "c", "team": "db"})
	hook.next(t)
	hook.next(t) // both groups flushed: the dispatcher has them
	var groups models.AlertGroups
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a",
		"alerts/groups?active=true&silenced=false&inhibited=false&filter=team%3D%22db%22&receiver=%5E%28hook%29%24", nil), &groups); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range groups {
		if *g.Receiver.Name != "hook" {
			t.Errorf("group of receiver %q", *g.Receiver.Name)
		}
		for _, a := range g.Alerts {
			got = append(got, g.Labels["alertname"]+"/"+a.Labels["instance"])
		}
	}
	slices.Sort(got)
	if joined(got) != "Down/a,Slow/c" {
		t.Errorf("groups of team db: %v", got)
	}
	var alerts models.GettableAlerts
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a",
		"alerts?active=true&silenced=false&inhibited=false&unprocessed=false&filter=alertname%3D~%22Do.%2A%22&receiver=hook", nil), &alerts); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, a := range alerts {
		got = append(got, a.Labels["instance"])
	}
	slices.Sort(got)
	if joined(got) != "a,b" {
		t.Errorf("alerts matching alertname=~\"Do.*\": %v", got)
	}
	f.mustDo(http.StatusBadRequest, http.MethodGet, "ws-a", "alerts/groups?filter=%7Bnot-a-matcher", nil)
}
