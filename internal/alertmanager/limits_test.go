package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
)

// AMP's quota: 1,000 active alerts per workspace. The 1,001st is refused with 429.
func TestAlertsQuota(t *testing.T) {
	f := newFixture(t) // DefaultLimits: AMP's
	hook := newWebhook(t)
	cfg := strings.Replace(hookConfig(hook.url()), "group_wait: 50ms", "group_wait: 1h", 1) // no notification needed
	f.createWorkspace("ws-a", definition(t, cfg, nil))
	f.createWorkspace("ws-b", definition(t, cfg, nil))
	f.sync()

	batch := make([]map[string]string, 0, DefaultMaxAlerts)
	for i := range DefaultMaxAlerts {
		batch = append(batch, map[string]string{"alertname": "Many", "i": fmt.Sprint(i)})
	}
	if code, b := f.postAlerts("ws-a", batch...); code != http.StatusOK {
		t.Fatalf("posting %d alerts: %d %s", len(batch), code, b)
	}
	// Sending an alert again is an update, not one more.
	if code, b := f.postAlerts("ws-a", batch[:10]...); code != http.StatusOK {
		t.Fatalf("updating alerts: %d %s", code, b)
	}
	code, b := f.postAlerts("ws-a", map[string]string{"alertname": "OneTooMany"}, batch[0])
	if code != http.StatusTooManyRequests {
		t.Fatalf("the 1,001st alert: %d %s, want 429", code, b)
	}
	var e struct {
		Message   string `json:"message"`
		QuotaCode string `json:"quotaCode"`
	}
	if err := json.Unmarshal(b, &e); err != nil || !strings.Contains(e.Message, "at most 1000 active alerts") || !strings.Contains(e.Message, "1 of 2 alerts refused") || e.QuotaCode != quotaCodeAlerts {
		t.Errorf("answer %s (%v), want the limit named", b, err)
	}
	err := f.m.SendAlerts(context.Background(), "ws-a", []*notifier.Alert{{Labels: labels.FromStrings("alertname", "FromRuler")}})
	var qe *QuotaError
	if !errors.Is(err, ErrTooManyAlerts) || !errors.As(err, &qe) || qe.Limit != DefaultMaxAlerts || qe.Refused != 1 {
		t.Errorf("SendAlerts over the quota: %v", err)
	}
	if v, _ := f.metric("strata_alertmanager_alerts_quota_refused_total", map[string]string{"workspace": "ws-a", "quota": "count"}); v != 2 {
		t.Errorf("refused count %v, want 2", v)
	}
	// The quota is per workspace.
	if code, b := f.postAlerts("ws-b", map[string]string{"alertname": "OtherWorkspace"}); code != http.StatusOK {
		t.Errorf("another workspace: %d %s", code, b)
	}
}

func TestAlertSizeQuota(t *testing.T) {
	f := newFixture(t, withLimits(StaticLimits{MaxAlertBytes: 100}))
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	// Each takes alertname+Small, i+1 and summary+test: 27 bytes.
	if code, b := f.postAlerts("ws-a", map[string]string{"alertname": "Small", "i": "1"}, map[string]string{"alertname": "Small", "i": "2"}); code != http.StatusOK {
		t.Fatalf("%d %s", code, b)
	}
	code, b := f.postAlerts("ws-a", map[string]string{"alertname": "Big", "text": strings.Repeat("x", 60)})
	if code != http.StatusTooManyRequests || !strings.Contains(string(b), "at most 100 bytes") || !strings.Contains(string(b), quotaCodeAlertBytes) {
		t.Fatalf("an alert over the size quota: %d %s", code, b)
	}
	err := f.m.SendAlerts(context.Background(), "ws-a", []*notifier.Alert{{
		Labels: labels.FromStrings("alertname", "Big", "text", strings.Repeat("x", 60)),
		EndsAt: time.Now().Add(time.Hour),
	}})
	if !errors.Is(err, ErrAlertsTooBig) {
		t.Errorf("SendAlerts over the size quota: %v", err)
	}
}

func TestSilencesQuota(t *testing.T) {
	f := newFixture(t, withLimits(StaticLimits{MaxSilences: 2}))
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	first := f.createSilence("ws-a", map[string]string{"instance": "1"})
	f.createSilence("ws-a", map[string]string{"instance": "2"})
	code, b := f.do(http.MethodPost, "ws-a", "silences", silenceBody(map[string]string{"instance": "3"}))
	if code != http.StatusBadRequest || !strings.Contains(string(b), "2 active and pending silences") {
		t.Fatalf("a third silence: %d %s, want 400 naming the quota", code, b)
	}
	// Updating one is not one more. Clients send it back as they read it (an active
	// silence keeps its start).
	var upd map[string]any
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "silence/"+first, nil), &upd); err != nil {
		t.Fatal(err)
	}
	upd["comment"] = "updated"
	b = f.mustDo(http.StatusOK, http.MethodPost, "ws-a", "silences", upd)
	if !strings.Contains(string(b), first) {
		t.Fatalf("the update made another silence: %s", b)
	}
	// Expired silences do not count.
	f.mustDo(http.StatusOK, http.MethodDelete, "ws-a", "silence/"+first, nil)
	f.createSilence("ws-a", map[string]string{"instance": "3"})
}

func TestInvalidAlerts(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	err := f.m.SendAlerts(context.Background(), "ws-a", []*notifier.Alert{
		{Labels: labels.FromStrings("alertname", "Good")},
		{Labels: labels.FromStrings("alertname", "Backwards"), StartsAt: time.Now(), EndsAt: time.Now().Add(-time.Hour)},
	})
	if !errors.Is(err, ErrInvalidAlert) {
		t.Fatalf("SendAlerts with an invalid alert: %v", err)
	}
	if m := hook.next(t); joined(m.names("alertname")) != "Good" {
		t.Errorf("the valid alert of the call: %+v", m)
	}
	if code, b := f.postAlerts("ws-a", map[string]string{}); code != http.StatusBadRequest {
		t.Errorf("POST of an alert without labels: %d %s", code, b)
	}
}

func TestAggregationGroupsQuota(t *testing.T) {
	f := newFixture(t, withLimits(StaticLimits{MaxAggregationGroups: 1}))
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	f.postAlerts("ws-a", map[string]string{"alertname": "First"})
	if m := hook.next(t); joined(m.names("alertname")) != "First" {
		t.Fatalf("notification: %+v", m)
	}
	f.postAlerts("ws-a", map[string]string{"alertname": "Second"})
	waitFor(t, "the group limit to be hit", func() bool {
		v, _ := f.metric("strata_alertmanager_dispatcher_aggregation_group_limit_reached_total", map[string]string{"workspace": "ws-a"})
		return v >= 1
	})
	var groups []json.RawMessage
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "alerts/groups", nil), &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 {
		t.Errorf("%d groups, want 1", len(groups))
	}
}
