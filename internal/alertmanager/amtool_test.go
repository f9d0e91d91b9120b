package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/testutil"
)

// amtool (Debian's prometheus-alertmanager) against the API at the workspace's path
// prefix, as it talks to an Alertmanager: <url>/api/v2/...
func TestAmtool(t *testing.T) {
	bin := testutil.RequireBinary(t, "amtool", "apt-get install prometheus-alertmanager")
	f := newFixture(t)
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.createWorkspace("ws-b", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	home := t.TempDir() // no user or system amtool configuration
	amtool := func(workspace string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		args = append([]string{"--alertmanager.url=" + f.srv.URL + "/workspaces/" + workspace + "/alertmanager"}, args...)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home)
		cmd.Dir = home
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("amtool %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	id := strings.TrimSpace(amtool("ws-a", "silence", "add", "instance=silenced", "--comment=maintenance", "--author=amtool", "--duration=1h"))
	if len(id) != 36 {
		t.Fatalf("silence add printed %q, want the silence id", id)
	}
	var sils []struct {
		ID       string `json:"id"`
		Comment  string `json:"comment"`
		Matchers []struct {
			Name, Value string
		} `json:"matchers"`
		Status struct{ State string } `json:"status"`
	}
	if err := json.Unmarshal([]byte(amtool("ws-a", "silence", "query", "-o", "json")), &sils); err != nil {
		t.Fatal(err)
	}
	if len(sils) != 1 || sils[0].ID != id || sils[0].Comment != "maintenance" || sils[0].Status.State != "active" {
		t.Fatalf("silence query: %+v", sils)
	}
	if got := strings.TrimSpace(amtool("ws-b", "silence", "query", "-q")); got != "" {
		t.Errorf("another workspace's silence query: %q", got)
	}

	amtool("ws-a", "alert", "add", "alertname=FromAmtool", "instance=silenced", "--annotation=summary=from amtool")
	amtool("ws-a", "alert", "add", "alertname=FromAmtool", "instance=loud", "--end="+time.Now().Add(time.Hour).Format(time.RFC3339))
	if m := hook.next(t); joined(m.names("instance")) != "loud" {
		t.Fatalf("notification: %+v", m)
	}
	var alerts []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State      string   `json:"state"`
			SilencedBy []string `json:"silencedBy"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(amtool("ws-a", "alert", "query", "-o", "json", "alertname=FromAmtool")), &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Labels["instance"] != "loud" {
		t.Errorf("alert query (active, unsilenced): %+v", alerts)
	}
	if err := json.Unmarshal([]byte(amtool("ws-a", "alert", "query", "-o", "json", "--silenced", "instance=silenced")), &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Status.State != "suppressed" || len(alerts[0].Status.SilencedBy) != 1 || alerts[0].Status.SilencedBy[0] != id {
		t.Errorf("alert query --silenced: %+v", alerts)
	}
	if out := amtool("ws-a", "config", "show"); !strings.Contains(out, "receiver: hook") {
		t.Errorf("config show:\n%s", out)
	}

	amtool("ws-a", "silence", "expire", id)
	if got := strings.TrimSpace(amtool("ws-a", "silence", "query", "-q")); got != "" {
		t.Errorf("active silences after expire: %q", got)
	}
}
