package alertmanager

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stratametrics/strata/internal/testutil/goaws"
)

// An alert reaches an SNS topic, as AMP delivers them (sns_configs with sigv4), on a real
// SNS/SQS server: published to the topic, read from a queue subscribed to it.
func TestSNSReceiver(t *testing.T) {
	srv := goaws.Start(t)
	// goaws does not check signatures: a proxy in front checks that the request is
	// signed with the configured key for SNS in the region.
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var signed, unsigned atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDSNSTEST/") || !strings.Contains(auth, "/"+goaws.Region+"/sns/aws4_request") {
			unsigned.Add(1)
			http.Error(w, "not signed for sns", http.StatusForbidden)
			return
		}
		signed.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	f := newFixture(t)
	cfg := fmt.Sprintf(`route:
  receiver: sns
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 300ms
receivers:
- name: sns
  sns_configs:
  - api_url: %s
    topic_arn: %s
    sigv4:
      region: %s
      access_key: AKIDSNSTEST
      secret_key: sns-test-secret
    subject: '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}'
    message: '{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}'
    attributes:
      severity: '{{ .CommonLabels.severity }}'
`, front.URL, srv.TopicARN, goaws.Region)
	f.createWorkspace("ws-a", definition(t, cfg, nil))
	f.sync()
	if code, b := f.postAlerts("ws-a", map[string]string{"alertname": "QueueBacklog", "severity": "critical"}); code != http.StatusOK {
		t.Fatalf("POST alerts: %d %s", code, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	n, err := srv.Receive(ctx)
	if err != nil {
		t.Fatalf("reading the queue: %v (signed requests %d, unsigned %d)", err, signed.Load(), unsigned.Load())
	}
	if n.TopicArn != srv.TopicARN || n.Subject != "[FIRING] QueueBacklog" || n.Message != "test" {
		t.Errorf("notification: %+v", n)
	}
	if a := n.MessageAttributes["severity"]; a.Value != "critical" {
		t.Errorf("attributes: %+v", n.MessageAttributes)
	}
	if unsigned.Load() != 0 {
		t.Errorf("%d requests were not signed for SNS", unsigned.Load())
	}
	if v, _ := f.metric("strata_alertmanager_notifications_total", map[string]string{"workspace": "ws-a", "integration": "sns"}); v != 1 {
		t.Errorf("sns notifications %v, want 1", v)
	}
}
