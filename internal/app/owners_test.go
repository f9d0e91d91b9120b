package app

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"

	"github.com/stratametrics/strata/internal/ingestlog"
	"github.com/stratametrics/strata/internal/testutil"
)

// In a cluster one process at a time evaluates a workspace's rules and runs its
// Alertmanager; the others forward its rules and Alertmanager API there. When that
// process stops, another takes the workspace over: its alert fires there again, and
// its silence, made through the first, holds.
func TestOneOwnerPerWorkspace(t *testing.T) {
	w, nats, common := jetStreamWriter(t, "--limits.ruler-min-evaluation-interval", "0")
	args := func() []string {
		return append([]string{"--data-dir", t.TempDir(), "--target", "all", "--jetstream.url", "nats://" + nats,
			"--limits.ruler-min-evaluation-interval", "0"}, common...)
	}
	p1, p2 := start(t, args()...), start(t, args()...)
	ws := newWorkspace(t, w)
	ctx := context.Background()
	rules := "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: AlwaysOn\n    expr: vector(1)\n    labels:\n      severity: page\n"
	if _, err := w.client().CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns"), Data: []byte(rules)}); err != nil {
		t.Fatal(err)
	}
	def := "alertmanager_config: |\n  route:\n    receiver: default\n  receivers:\n  - name: default\n"
	if _, err := w.client().CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws), Data: []byte(def)}); err != nil {
		t.Fatal(err)
	}
	var owner, other *running
	testutil.Eventually(t, 20*time.Second, "one of the two processes to own the workspace", func() bool {
		o1, o2 := p1.app.owners.Owns(ws), p2.app.owners.Owns(ws)
		switch {
		case o1 && !o2:
			owner, other = p1, p2
		case o2 && !o1:
			owner, other = p2, p1
		default:
			return false
		}
		return true
	})
	// Owning it weighs 1, plus its one rule.
	if got := owner.app.ownedWorkspaces(true, false); !slices.Contains(got, ingestlog.Weighted{ID: ws, Weight: 2}) {
		t.Fatalf("workspaces to own: %+v, want %s with weight 2", got, ws)
	}
	// A second workspace, weighing 1, goes to the other process: each owns its share.
	ws2 := newWorkspace(t, w)
	if _, err := w.client().CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws2), Data: []byte(def)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "each process to own one workspace", func() bool {
		return other.app.owners.Owns(ws2) && !owner.app.owners.Owns(ws2) && owner.app.owners.Owns(ws)
	})
	creds := &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	firing := func(r *running, what string) {
		t.Helper()
		var (
			code int
			body string
		)
		if !testutil.Poll(20*time.Second, 50*time.Millisecond, func() bool {
			code, body = signedGet(t, creds, r.url+"/workspaces/"+ws+"/alertmanager/api/v2/alerts?active=true&silenced=false")
			return code == 200 && strings.Contains(body, `"alertname":"AlwaysOn"`)
		}) {
			_, rules := signedGet(t, creds, owner.url+"/workspaces/"+ws+"/api/v1/rules")
			t.Fatalf("timed out waiting for %s: %d %s (owners: %v, %v; rules: %s)", what, code, body, p1.app.owners.Owned(), p2.app.owners.Owned(), rules)
		}
	}
	// Through either process: the other forwards to the owner.
	firing(owner, "the alert to fire in the owner's Alertmanager")
	firing(other, "the alert to show through the other process")
	if code, body := signedGet(t, creds, other.url+"/workspaces/"+ws+"/api/v1/rules"); code != 200 || !strings.Contains(body, `"name":"AlwaysOn"`) {
		t.Fatalf("rules through the other process: %d %s", code, body)
	}
	// Its Alertmanagers follow its ownership when it next syncs them.
	testutil.Eventually(t, 20*time.Second, "the process that owns only ws2 to run its Alertmanager alone", func() bool {
		return slices.Equal(other.app.am.Running(), []string{ws2})
	})
	if n := counterValue(t, other, "strata_ruler_rule_loads_total"); n != 0 {
		t.Fatalf("the process that does not own the workspace loaded rules %g times", n)
	}
	// A forwarded request without the caller's credentials is refused by the owner.
	if code, _ := signedGet(t, &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: "wrong"}, other.url+"/workspaces/"+ws+"/alertmanager/api/v2/alerts"); code != 403 {
		t.Fatalf("a badly signed request through the other process: %d, want 403", code)
	}
	code, _, _ := signedDo(t, nil, "GET", owner.url+ownerForwardPrefix+"/workspaces/"+ws+"/alertmanager/api/v2/alerts", nil, nil)
	if code != 401 {
		t.Fatalf("the owner's forwarded route without the cluster key: %d, want 401", code)
	}

	// A silence made through the other process, then the owner stops: the other takes
	// the workspace, its alert fires there again, silenced.
	silence := `{"matchers":[{"name":"alertname","value":"AlwaysOn","isRegex":false}],"startsAt":"` + time.Now().UTC().Format(time.RFC3339) +
		`","endsAt":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","createdBy":"test","comment":"owners"}`
	if code, body, _ := signedDo(t, creds, "POST", other.url+"/workspaces/"+ws+"/alertmanager/api/v2/silences", []byte(silence), http.Header{"Content-Type": {"application/json"}}); code != 200 {
		t.Fatalf("silence through the other process: %d %s", code, body)
	}
	owner.stop()
	testutil.Eventually(t, 20*time.Second, "the other process to own the workspace", func() bool { return other.app.owners.Owns(ws) })
	testutil.Eventually(t, 20*time.Second, "the alert to fire, silenced, in the new owner", func() bool {
		code, body := signedGet(t, creds, other.url+"/workspaces/"+ws+"/alertmanager/api/v2/alerts?silenced=true&active=false")
		return code == 200 && strings.Contains(body, `"alertname":"AlwaysOn"`) && strings.Contains(body, `"state":"suppressed"`)
	})
}
