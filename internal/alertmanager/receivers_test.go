package alertmanager

import (
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stratametrics/strata/internal/vendedlogs"
)

// request is what a receiver's endpoint got.
type request struct {
	path, auth, body string
}

// endpoint records every request to it; it answers with status.
type endpoint struct {
	srv    *httptest.Server
	ch     chan request
	status int
}

func newEndpoint(t *testing.T, status int) *endpoint {
	t.Helper()
	e := &endpoint{ch: make(chan request, 100), status: status}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("endpoint: reading: %v", err)
		}
		e.ch <- request{path: r.URL.Path, auth: r.Header.Get("Authorization"), body: string(b)}
		w.WriteHeader(e.status)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// requests waits for n requests and returns them by path.
func (e *endpoint) requests(t *testing.T, n int) map[string]request {
	t.Helper()
	out := map[string]request{}
	for range n {
		select {
		case r := <-e.ch:
			out[r.path] = r
		case <-time.After(waitTimeout):
			t.Fatalf("timed out after %d of %d requests: %v", len(out), n, out)
		}
	}
	return out
}

// smtpSink is an SMTP server that passes each message it receives to ch.
type smtpSink struct {
	addr string
	ch   chan mail
}

type mail struct {
	from string
	to   []string
	data string
}

func newSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	s := &smtpSink{ch: make(chan mail, 10)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{sink: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = waitTimeout, waitTimeout
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	go srv.Serve(l) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return s
}

type smtpSession struct {
	sink *smtpSink
	m    mail
}

func (s *smtpSession) Reset()        { s.m = mail{} }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.m.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.to = append(s.m.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.data = string(b)
	s.sink.ch <- s.m
	return nil
}

// The receivers AMP lacks, each the library's own notifier, reach their services: email
// through a real SMTP server, Slack, PagerDuty, OpsGenie and Microsoft Teams (both
// kinds) at local endpoints speaking their APIs.
func TestReceivers(t *testing.T) {
	f := newFixture(t)
	ep := newEndpoint(t, http.StatusOK)
	mailSink := newSMTPSink(t)
	cfg := fmt.Sprintf(`route:
  receiver: email
  group_by: [alertname]
  group_wait: 50ms
  routes:
  - {matchers: [to="slack"], receiver: slack}
  - {matchers: [to="pagerduty"], receiver: pagerduty}
  - {matchers: [to="opsgenie"], receiver: opsgenie}
  - {matchers: [to="teams"], receiver: teams}
  - {matchers: [to="teamsv2"], receiver: teamsv2}
receivers:
- name: email
  email_configs:
  - to: oncall@example.com
    from: strata@example.com
    smarthost: %[2]s
    require_tls: false
- name: slack
  slack_configs:
  - api_url: %[1]s/slack/T000/B000/slack-secret
    channel: '#alerts'
- name: pagerduty
  pagerduty_configs:
  - url: %[1]s/pagerduty/v2/enqueue
    routing_key: pd-routing-key
- name: opsgenie
  opsgenie_configs:
  - api_url: %[1]s/opsgenie/
    api_key: og-api-key
- name: teams
  msteams_configs:
  - webhook_url: %[1]s/teams/teams-secret
- name: teamsv2
  msteamsv2_configs:
  - webhook_url: %[1]s/teamsv2/teamsv2-secret
`, ep.srv.URL, mailSink.addr)
	f.createWorkspace("ws-a", definition(t, cfg, nil))
	f.sync()
	f.postAlerts("ws-a",
		map[string]string{"alertname": "ToEmail"},
		map[string]string{"alertname": "ToSlack", "to": "slack"},
		map[string]string{"alertname": "ToPagerDuty", "to": "pagerduty"},
		map[string]string{"alertname": "ToOpsGenie", "to": "opsgenie"},
		map[string]string{"alertname": "ToTeams", "to": "teams"},
		map[string]string{"alertname": "ToTeamsV2", "to": "teamsv2"},
	)

	got := ep.requests(t, 5)
	for _, c := range []struct {
		path, auth string
		body       []string
	}{
		{"/slack/T000/B000/slack-secret", "", []string{`"channel":"#alerts"`, `[FIRING:1] ToSlack`}},
		{"/pagerduty/v2/enqueue", "", []string{`"routing_key":"pd-routing-key"`, `"event_action":"trigger"`, `ToPagerDuty`}},
		{"/opsgenie/v2/alerts", "GenieKey og-api-key", []string{`"message":"[FIRING:1] ToOpsGenie (opsgenie)"`}},
		{"/teams/teams-secret", "", []string{`"type":"MessageCard"`, `ToTeams`}},
		{"/teamsv2/teamsv2-secret", "", []string{`AdaptiveCard`, `ToTeamsV2`}},
	} {
		r, ok := got[c.path]
		if !ok {
			t.Errorf("no request to %s; got %v", c.path, got)
			continue
		}
		if r.auth != c.auth {
			t.Errorf("%s: Authorization %q, want %q", c.path, r.auth, c.auth)
		}
		for _, want := range c.body {
			if !strings.Contains(r.body, want) {
				t.Errorf("%s: body lacks %s:\n%s", c.path, want, r.body)
			}
		}
	}

	select {
	case m := <-mailSink.ch:
		if m.from != "strata@example.com" || strings.Join(m.to, ",") != "oncall@example.com" {
			t.Errorf("mail from %q to %v", m.from, m.to)
		}
		// The parts are quoted-printable; the headers read the same decoded.
		data, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.data)))
		if err != nil {
			t.Fatalf("decoding the mail: %v\n%s", err, m.data)
		}
		for _, want := range []string{"Subject: [FIRING:1] ToEmail", "To: oncall@example.com", `href="http://strata.example:8080/workspaces/ws-a/alertmanager"`} {
			if !strings.Contains(string(data), want) {
				t.Errorf("mail lacks %q:\n%s", want, m.data)
			}
		}
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for the mail")
	}
}

// When a receiver cannot be reached, the log says so without its secrets: the URLs
// that carry a token (Go's errors quote the URL) and the API keys.
func TestReceiverSecretsStayOutOfLogs(t *testing.T) {
	f := newFixture(t)
	gone := httptest.NewServer(nil)
	gone.Close()
	cfg := fmt.Sprintf(`route:
  receiver: slack
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 1h
  routes:
  - {matchers: [to="opsgenie"], receiver: opsgenie}
  - {matchers: [to="teams"], receiver: teams}
receivers:
- name: slack
  slack_configs:
  - api_url: %[1]s/slack/slack-secret
- name: opsgenie
  opsgenie_configs:
  - api_url: %[1]s/opsgenie/
    api_key: og-api-key-secret
- name: teams
  msteams_configs:
  - webhook_url: %[1]s/teams/teams-secret
`, gone.URL)
	f.createWorkspace("ws-a", definition(t, cfg, nil))
	f.sync()
	f.postAlerts("ws-a",
		map[string]string{"alertname": "ToSlack"},
		map[string]string{"alertname": "ToOpsGenie", "to": "opsgenie"},
		map[string]string{"alertname": "ToTeams", "to": "teams"},
	)
	waitFor(t, "the failures of the three receivers logged", func() bool {
		logs := f.logs.String()
		return strings.Contains(logs, "receiver=slack") && strings.Contains(logs, "receiver=opsgenie") &&
			strings.Contains(logs, "receiver=teams") && strings.Count(logs, "connection refused") >= 3
	})
	logs := f.logs.String()
	for _, secret := range []string{"slack-secret", "og-api-key-secret", "teams-secret"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs show %q:\n%s", secret, logs)
		}
	}
	// The failures are vended to the workspace's log group too, naming the receiver,
	// without the secrets.
	failed := map[string]bool{}
	for _, e := range f.events.all() {
		for _, secret := range []string{"slack-secret", "og-api-key-secret", "teams-secret"} {
			if strings.Contains(e.msg, secret) || strings.Contains(fmt.Sprint(e.fields), secret) {
				t.Errorf("a vended event shows %q: %+v", secret, e)
			}
		}
		if e.workspace == "ws-a" && e.component == vendedlogs.ComponentAlertmanager && strings.Contains(e.msg, "connection refused") {
			failed[fmt.Sprint(e.fields["receiver"])] = true
		}
	}
	if !failed["slack"] || !failed["opsgenie"] || !failed["teams"] {
		t.Errorf("vended failures by receiver: %v, want slack, opsgenie and teams; events: %+v", failed, f.events.all())
	}
}
