package migrate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"

	"github.com/stratametrics/strata/internal/alertmanager"
)

const teamAlertmanager = `global:
  resolve_timeout: 5m
  smtp_smarthost: mail.example.org:25
  smtp_from: alerts@example.org
templates: ['tmpl/*.tmpl']
route:
  receiver: sns
  group_by: [alertname]
  routes:
    - matchers: ['team="web"']
      receiver: hook
      repeat_interval: 7d
    - matchers: ['severity="page"']
      receiver: mail
receivers:
  - name: sns
    sns_configs:
      - topic_arn: arn:aws:sns:us-east-1:123456789012:alerts
        sigv4: {region: us-east-1}
        message: '{{ template "team.message" . }}'
  - name: hook
    webhook_configs:
      - url_file: secrets/hook-url
  - name: mail
    email_configs:
      - to: oncall@example.org
        auth_username: alerts
        auth_password_file: /ABS/secrets/mail-password
`

// writeAlertmanager lays out an Alertmanager configuration with two templates and two
// secret files, and returns its path.
func writeAlertmanager(t *testing.T, dir string) string {
	t.Helper()
	for name, body := range map[string]string{
		"tmpl/team.tmpl":        `{{ define "team.message" }}{{ .CommonLabels.alertname }} is {{ .Status }}{{ end }}`,
		"tmpl/extra.tmpl":       `{{ define "extra.title" }}[{{ .Status | toUpper }}]{{ end }}`,
		"tmpl/README":           "not a template",
		"secrets/hook-url":      "https://hooks.example.org/T000/secret-path\n",
		"secrets/mail-password": "s3cr3t\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(teamAlertmanager, "/ABS", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// An Alertmanager configuration becomes the workspace's definition: templates and
// secret files inlined, checked as the server checks it, what AMP would refuse listed;
// created, then left alone, replaced when it changes (after a dry run that changes
// nothing).
func TestAlertmanagerIntoAWorkspace(t *testing.T) {
	_, c := controlPlane(t)
	ws := activeWorkspace(t, c)
	dir := t.TempDir()
	file := writeAlertmanager(t, dir)
	ctx := context.Background()
	run := func(dry bool) (*Conversion, AlertmanagerChange) {
		t.Helper()
		conv, ch, err := Alertmanager(ctx, AlertmanagerConfig{File: file, Workspace: ws, DryRun: dry, Client: c})
		if err != nil {
			t.Fatal(err)
		}
		return conv, ch
	}
	stored := func() string {
		out, err := c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(ws)})
		if err != nil {
			t.Fatal(err)
		}
		return string(out.AlertManagerDefinition.Data)
	}

	conv, ch := run(false)
	if ch.Action != "create" {
		t.Fatalf("first run: %+v", ch)
	}
	// What was sent (Describe hides the secrets; the templates it shows as stored).
	def, err := alertmanager.ParseDefinition(conv.Definition)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stored(), "team.message") {
		t.Fatalf("the stored definition lacks the templates:\n%s", stored())
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range def.Templates {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"extra.tmpl", "team.tmpl"}) || !strings.Contains(def.Templates["team.tmpl"], "team.message") {
		t.Fatalf("template files %v", def.Templates)
	}
	if !slices.Equal(def.Config.Templates, []string{"extra.tmpl", "team.tmpl"}) {
		t.Fatalf("templates %v, want the inlined files' names", def.Config.Templates)
	}
	var hook, mail bool
	for _, r := range def.Config.Receivers {
		for _, w := range r.WebhookConfigs {
			hook = string(w.URL) == "https://hooks.example.org/T000/secret-path"
		}
		for _, e := range r.EmailConfigs {
			mail = string(e.AuthPassword) == "s3cr3t"
		}
	}
	if !hook || !mail || strings.Contains(string(conv.Definition), "_file:") {
		t.Fatalf("secret files not inlined (webhook %v, email %v):\n%s", hook, mail, conv.Definition)
	}
	if len(conv.Inlined) != 2 {
		t.Fatalf("inlined %v", conv.Inlined)
	}
	wantNotAMP := []string{
		`receiver "hook": webhook_configs (AMP sends to Amazon SNS only)`,
		`receiver "mail": email_configs (AMP sends to Amazon SNS only)`,
		`route.routes[0].repeat_interval 7d (AMP repeats after 5 days at most)`,
	}
	if got := slices.Sorted(slices.Values(conv.NotAMP)); !slices.Equal(got, wantNotAMP) {
		t.Fatalf("not for AMP:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantNotAMP, "\n"))
	}

	// Its secrets are hidden by Describe: the same definition is put again, with no
	// difference to show.
	if _, ch := run(false); ch.Action != "update" || ch.Diff != "" || !ch.Secrets {
		t.Fatalf("second run: %+v", ch)
	}
	before := stored()
	if err := os.WriteFile(filepath.Join(dir, "tmpl/extra.tmpl"), []byte(`{{ define "extra.title" }}[{{ .Status }}]{{ end }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ch := run(true); ch.Action != "update" || !strings.Contains(ch.Diff, "toUpper") || stored() != before {
		t.Fatalf("dry run: %+v (definition changed: %v)", ch, stored() != before)
	}
	if _, ch := run(false); ch.Action != "update" || strings.Contains(stored(), "toUpper") {
		t.Fatalf("update: %+v\n%s", ch, stored())
	}

	// Without secrets, the same definition is left alone.
	plain := filepath.Join(dir, "plain.yml")
	if err := os.WriteFile(plain, []byte("route: {receiver: sns}\nreceivers:\n  - name: sns\n    sns_configs: [{topic_arn: 'arn:aws:sns:us-east-1:123456789012:a', sigv4: {region: us-east-1}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ws2 := activeWorkspace(t, c)
	for _, want := range []string{"create", "unchanged"} {
		conv, ch, err := Alertmanager(ctx, AlertmanagerConfig{File: plain, Workspace: ws2, Client: c})
		if err != nil || ch.Action != want || ch.Secrets || len(conv.NotAMP) != 0 {
			t.Fatalf("a definition without secrets: %+v %v, want %s", ch, err, want)
		}
	}
}

// Configurations that cannot move fail with what is wrong, before any request.
func TestAlertmanagerBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("broken.tmpl", `{{ define "x" }}{{ .Oops `)
	for _, c := range []struct{ name, body, want string }{
		{"unknown-receiver.yml", "route: {receiver: nobody}\nreceivers: [{name: somebody}]\n", `undefined receiver "nobody"`},
		{"missing-secret.yml", "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url_file: nope/url}]}]\n", "receivers[0].webhook_configs[0].url_file"},
		{"bad-template.yml", "templates: [broken.tmpl]\nroute: {receiver: r}\nreceivers: [{name: r}]\n", "template"},
		{"not-a-mapping.yml", "- just a list\n", "not an Alertmanager configuration"},
	} {
		_, err := ConvertAlertmanager(write(c.name, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: %v, want an error naming the file and %q", c.name, err, c.want)
		}
	}
}

// Debian's example configuration (prometheus-alertmanager) converts; its email and
// PagerDuty receivers are listed as what AMP would refuse.
func TestDebianAlertmanagerConfiguration(t *testing.T) {
	const file = "/etc/prometheus/alertmanager.yml"
	if _, err := os.Stat(file); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: .ci/run installs prometheus-alertmanager", file)
		}
		t.Skipf("%s is missing (Debian's prometheus-alertmanager): %v", file, err)
	}
	_, c := controlPlane(t)
	ws := activeWorkspace(t, c)
	var stdout, stderr bytes.Buffer
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE0000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-secret-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	url := c.Options().BaseEndpoint
	code := Main([]string{"alertmanager", "--from", file, "--workspace", ws, "--endpoint-url", aws.ToString(url), "--region", "us-east-1"}, &stdout, &stderr)
	out := stdout.String()
	if code != 0 || !strings.Contains(out, "alert manager definition of "+ws+": created") ||
		!strings.Contains(out, `receiver "team-X-mails": email_configs`) || !strings.Contains(out, `receiver "team-Y-pager": pagerduty_configs`) {
		t.Fatalf("exit %d\n%s%s", code, out, stderr.String())
	}
	if code := Main([]string{"alertmanager", "--from", file, "--workspace", ws, "--endpoint-url", aws.ToString(url), "--region", "us-east-1", "--dry-run"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), ": would be replaced (it looks the same, but its secrets cannot be compared") {
		t.Fatalf("second run: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}
