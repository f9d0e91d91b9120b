package alertmanager

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	"github.com/prometheus/alertmanager/notify"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// capturedRequest is what a webhook endpoint received.
type capturedRequest struct {
	method, path, contentType, userAgent string
	body                                 string
}

// Our notifier for literal webhook URLs sends what the library's webhook notifier sends,
// byte for byte, and returns the same verdicts: success on 2xx, retry on 5xx, give up on
// 4xx, retry with a redacted URL when the endpoint cannot be reached.
func TestPlainWebhookSendsWhatTheLibrarySends(t *testing.T) {
	status := make(chan int, 1)
	got := make(chan capturedRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- capturedRequest{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), string(body)}
		w.WriteHeader(<-status)
	}))
	t.Cleanup(srv.Close)

	tmpl, err := template.New()
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExternalURL = mustURL(t, "https://strata.example/workspaces/ws-a/alertmanager")
	now := time.Now().UTC().Truncate(time.Second)
	var alerts []*alert.Alert
	for i := range 3 {
		alerts = append(alerts, alert.New(model.Alert{
			Labels:       model.LabelSet{"alertname": "HighLatency", "instance": model.LabelValue(fmt.Sprintf("i-%d", i))},
			Annotations:  model.LabelSet{"summary": "p99 above 2 s"},
			StartsAt:     now.Add(-time.Duration(i) * time.Minute),
			EndsAt:       now.Add(time.Duration(i-1) * time.Hour), // the first resolved, the others firing
			GeneratorURL: "http://prometheus/graph",
		}, now, false))
	}
	ctx := notify.WithGroupKey(context.Background(), `{}:{alertname="HighLatency"}`)
	ctx = notify.WithReceiverName(ctx, "team-a")
	ctx = notify.WithGroupLabels(ctx, model.LabelSet{"alertname": "HighLatency"})
	ctx = notify.WithNotificationReason(ctx, notify.ReasonNewAlertsInGroup)
	logger := slog.New(slog.DiscardHandler)

	send := func(n notify.Notifier, code int) (capturedRequest, notify.NotifyVerdict) {
		t.Helper()
		status <- code
		v := n.Notify(ctx, alerts...)
		select {
		case r := <-got:
			return r, v
		default:
			t.Fatalf("no request reached the endpoint")
			return capturedRequest{}, v
		}
	}
	for _, tc := range []struct {
		name      string
		maxAlerts uint64
		code      int
		retry     bool
		ok        bool
	}{
		{"delivered", 0, http.StatusOK, false, true},
		{"truncated", 2, http.StatusNoContent, false, true},
		{"server error", 0, http.StatusServiceUnavailable, true, false},
		{"refused", 0, http.StatusBadRequest, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := &amwebhook.WebhookConfig{
				HTTPConfig: &commoncfg.HTTPClientConfig{},
				URL:        amcommoncfg.SecretTemplateURL(srv.URL + "/hook?token=secret"),
				MaxAlerts:  tc.maxAlerts,
				Timeout:    5 * time.Second,
			}
			lib, err := amwebhook.New(conf, tmpl, logger)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := newPlainWebhook(conf, tmpl, logger, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, wantV := send(lib, tc.code)
			have, haveV := send(ours, tc.code)
			if have != want {
				t.Fatalf("request differs from the library's\nours:    %+v\nlibrary: %+v", have, want)
			}
			if tc.maxAlerts != 0 && !strings.Contains(have.body, `"truncatedAlerts":1`) {
				t.Fatalf("truncation not in the payload: %s", have.body)
			}
			if haveV.ShouldRetry() != tc.retry || (haveV.Err() == nil) != tc.ok || haveV.Reason() != wantV.Reason() {
				t.Fatalf("verdict: retry %v err %v reason %v; want retry %v ok %v reason %v", haveV.ShouldRetry(), haveV.Err(), haveV.Reason(), tc.retry, tc.ok, wantV.Reason())
			}
			if (wantV.Err() == nil) != (haveV.Err() == nil) || wantV.ShouldRetry() != haveV.ShouldRetry() {
				t.Fatalf("verdict %v/%v, the library's %v/%v", haveV.Err(), haveV.ShouldRetry(), wantV.Err(), wantV.ShouldRetry())
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		conf := &amwebhook.WebhookConfig{
			HTTPConfig: &commoncfg.HTTPClientConfig{},
			URL:        amcommoncfg.SecretTemplateURL("http://" + addr + "/hook?token=secret"),
		}
		ours, err := newPlainWebhook(conf, tmpl, logger, nil)
		if err != nil {
			t.Fatal(err)
		}
		v := ours.Notify(ctx, alerts...)
		if v.Err() == nil || !v.ShouldRetry() {
			t.Fatalf("verdict %v (retry %v), want an error to retry", v.Err(), v.ShouldRetry())
		}
		if strings.Contains(v.Err().Error(), "secret") {
			t.Fatalf("the error shows the URL: %v", v.Err())
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
