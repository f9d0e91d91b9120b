package controlplane

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/limits"
)

const minimalDefinition = `alertmanager_config: |
  route:
    receiver: default
  receivers:
    - name: default
`

// fullDefinition is AMP's format with what Strata accepts beyond AMP: a webhook with an
// inline secret, which Describe does not show.
const fullDefinition = `template_files:
  default_template: |
    {{ define "sns.default.message" }}{{ .CommonAnnotations.summary }}{{ end }}
alertmanager_config: |
  global:
    resolve_timeout: 5m
  templates:
    - default_template
  route:
    receiver: sns
    group_by: [alertname]
    routes:
      - receiver: hook
        matchers: [severity="page"]
      - receiver: sns
        match:
          log_file: app.log
  inhibit_rules:
    - source_matchers: [severity="page"]
      target_matchers: [severity="ticket"]
      equal: [alertname]
  receivers:
    - name: sns
      sns_configs:
        - topic_arn: arn:aws:sns:us-east-1:123456789012:alerts
          sigv4:
            region: us-east-1
          attributes:
            source_file: rules.yaml
    - name: hook
      webhook_configs:
        - url: http://127.0.0.1:9999/hook
          http_config: &http
            basic_auth:
              username: u
              password: s3cret-inline
        - url: http://127.0.0.1:9999/other
          http_config: *http
`

// definitionWithTemplates is a valid definition with n template files.
func definitionWithTemplates(n int) string {
	var b strings.Builder
	b.WriteString("template_files:\n")
	for i := range n {
		fmt.Fprintf(&b, "  t%d: '{{ define \"t%d\" }}x{{ end }}'\n", i, i)
	}
	b.WriteString(minimalDefinition)
	return b.String()
}

// withConfig wraps an Alertmanager configuration in AMP's format.
func withConfig(config string) string {
	return "alertmanager_config: |\n  " + strings.ReplaceAll(strings.TrimSpace(config), "\n", "\n  ") + "\n"
}

func TestAlertManagerDefinitionLifecycle(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig(), manual)
	ctx := context.Background()
	c := f.client
	ws := aws.String(f.activeWorkspace(t))

	_, err := c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(minimalDefinition)})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.DeleteAlertManagerDefinition(ctx, &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)

	in := &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(fullDefinition), ClientToken: aws.String("am-1")}
	created, err := c.CreateAlertManagerDefinition(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if created.Status.StatusCode != types.AlertManagerDefinitionStatusCodeCreating {
		t.Fatalf("create: %s", created.Status.StatusCode)
	}
	retry, err := c.CreateAlertManagerDefinition(ctx, in)
	if err != nil || retry.Status.StatusCode != types.AlertManagerDefinitionStatusCodeCreating {
		t.Fatalf("idempotent retry: %+v %v", retry, err)
	}
	_, err = c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(minimalDefinition), ClientToken: aws.String("am-1")})
	apiError(t, err, awsapi.ConflictException)
	_, err = c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(fullDefinition)})
	apiError(t, err, awsapi.ConflictException)
	_, err = c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(minimalDefinition)})
	apiError(t, err, awsapi.ConflictException) // still CREATING

	f.recon.ReconcileOnce(ctx)
	d, err := c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	if err != nil {
		t.Fatal(err)
	}
	am := d.AlertManagerDefinition
	// Described as the Alertmanager reads it, with no secret in it, webhook URLs
	// included (AMP answers the upload as it was, secrets included).
	if am.Status.StatusCode != types.AlertManagerDefinitionStatusCodeActive || am.CreatedAt == nil || !am.ModifiedAt.Equal(*am.CreatedAt) {
		t.Fatalf("describe: %+v %q", am, am.Data)
	}
	if strings.Contains(string(am.Data), "s3cret-inline") || !strings.Contains(string(am.Data), "<secret>") {
		t.Fatalf("describe shows the secret, or no mark of it:\n%s", am.Data)
	}
	var described amDefinition
	if err := yaml.Unmarshal(am.Data, &described); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(described.TemplateFiles["default_template"], `define "sns.default.message"`) ||
		!strings.Contains(described.AlertmanagerConfig, "receiver: hook") || strings.Contains(described.AlertmanagerConfig, "127.0.0.1:9999") ||
		!strings.Contains(described.AlertmanagerConfig, "arn:aws:sns:us-east-1:123456789012:alerts") {
		t.Fatalf("described definition lost settings:\n%s", am.Data)
	}

	put, err := c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(minimalDefinition), ClientToken: aws.String("put-1")})
	if err != nil || put.Status.StatusCode != types.AlertManagerDefinitionStatusCodeUpdating {
		t.Fatalf("put: %+v %v", put, err)
	}
	put, err = c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(minimalDefinition), ClientToken: aws.String("put-1")})
	if err != nil || put.Status.StatusCode != types.AlertManagerDefinitionStatusCodeUpdating {
		t.Fatalf("put retry: %+v %v", put, err)
	}
	f.recon.ReconcileOnce(ctx)
	d, _ = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	want, err := alertmanager.RedactDefinition([]byte(minimalDefinition))
	if err != nil {
		t.Fatal(err)
	}
	if d.AlertManagerDefinition.Status.StatusCode != types.AlertManagerDefinitionStatusCodeActive || string(d.AlertManagerDefinition.Data) != string(want) {
		t.Fatalf("after put: %s %q", d.AlertManagerDefinition.Status.StatusCode, d.AlertManagerDefinition.Data)
	}

	del := &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: ws, ClientToken: aws.String("del-1")}
	for range 2 {
		if _, err := c.DeleteAlertManagerDefinition(ctx, del); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.DeleteAlertManagerDefinition(ctx, &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ConflictException)
	d, _ = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	if d.AlertManagerDefinition.Status.StatusCode != types.AlertManagerDefinitionStatusCodeDeleting {
		t.Fatalf("after delete: %s", d.AlertManagerDefinition.Status.StatusCode)
	}
	f.recon.ReconcileOnce(ctx)
	_, err = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)
	// And a new one can be created.
	if _, err := c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(minimalDefinition)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String("ws-missing"), Data: []byte(minimalDefinition)})
	apiError(t, err, awsapi.ResourceNotFoundException)
}

func TestAlertManagerDefinitionValidation(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig(), func(f *fixture) {
		f.api.Limits = newSwapLimits(func(l *limits.Limits) {
			l.AlertmanagerMaxTemplatesCount, l.AlertmanagerMaxInhibitionRules, l.AlertmanagerMaxRoutingTreeNodes = 2, 1, 3
			l.AlertmanagerMaxConfigSizeBytes = 4096
		})
	})
	ctx := context.Background()
	ws := aws.String(f.activeWorkspace(t))
	webhook := func(extra string) string {
		return withConfig("route: {receiver: hook}\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: http://127.0.0.1:9/\n" + extra)
	}
	invalid := []struct {
		name, data string
		want       []string
	}{
		{"bad YAML", "alertmanager_config: [unclosed\n", []string{"not an alert manager definition"}},
		{"bad YAML inside", "alertmanager_config: |\n  route: [\n", []string{"alertmanager_config is not valid YAML"}},
		{"no alertmanager_config", "template_files: {}\n", []string{"no alertmanager_config"}},
		{"alertmanager_config not a string", "alertmanager_config:\n  route: {receiver: x}\n", []string{"alertmanager_config: |"}},
		{"unknown top-level key", minimalDefinition + "extra: 1\n", []string{"extra"}},
		{"unknown receiver in route", withConfig("route: {receiver: nobody}\nreceivers: [{name: default}]"), []string{`undefined receiver "nobody" used in route`}},
		{"no route", withConfig("receivers: [{name: default}]"), []string{"no route"}},
		{"unknown field", withConfig("route: {receiver: default, colour: red}\nreceivers: [{name: default}]"), []string{"colour"}},
		{"password_file", webhook("    http_config: {basic_auth: {username: u, password_file: /etc/shadow}}"),
			[]string{"receivers[0].webhook_configs[0].http_config.basic_auth.password_file is not allowed"}},
		{"credentials_file", webhook("    http_config: {authorization: {credentials_file: /var/run/token}}"), []string{"authorization.credentials_file"}},
		{"bearer_token_file", webhook("    http_config: {bearer_token_file: /var/run/token}"), []string{"http_config.bearer_token_file"}},
		{"ca_file", webhook("    http_config: {tls_config: {ca_file: /etc/ssl/ca.pem}}"), []string{"tls_config.ca_file"}},
		{"header files", webhook("    http_config: {http_headers: {X-Token: {files: [/etc/token]}}}"), []string{"http_headers.X-Token.files"}},
		{"global smtp_auth_password_file", withConfig("global: {smtp_auth_password_file: /etc/p}\nroute: {receiver: d}\nreceivers: [{name: d}]"), []string{"global.smtp_auth_password_file"}},
		{"url_file", withConfig("route: {receiver: hook}\nreceivers:\n- name: hook\n  webhook_configs:\n  - url_file: /etc/url"), []string{"webhook_configs[0].url_file"}},
		{"bad template", "template_files:\n  bad: '{{ define \"x\" }}{{ .Foo }'\n" + minimalDefinition, []string{"template_files: bad", "not a valid template"}},
		{"template name is a path", "template_files:\n  a/b: x\n" + minimalDefinition, []string{`"a/b"`}},
		{"templates names a path", withConfig("templates: [/etc/alertmanager/*.tmpl]\nroute: {receiver: d}\nreceivers: [{name: d}]"), []string{"templates[0]", "is a path"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(tc.data)})
			ae := apiError(t, err, awsapi.ValidationException)
			for _, w := range tc.want {
				if !strings.Contains(ae.ErrorMessage(), w) {
					t.Fatalf("message %q does not hold %q", ae.ErrorMessage(), w)
				}
			}
		})
	}
	quotas := []struct {
		name, data, code string
	}{
		{"templates", definitionWithTemplates(3), quotaTemplates},
		{"inhibition rules", withConfig("route: {receiver: d}\nreceivers: [{name: d}]\ninhibit_rules:\n- {source_matchers: [a=b], target_matchers: [c=d]}\n- {source_matchers: [a=b], target_matchers: [e=f]}"), quotaInhibitionRules},
		{"routing tree nodes", withConfig("route:\n  receiver: d\n  routes:\n  - {receiver: d, routes: [{receiver: d}, {receiver: d}]}\nreceivers: [{name: d}]"), quotaRoutingTreeNodes},
		{"file size", minimalDefinition + "#" + strings.Repeat("x", 4096) + "\n", quotaAlertManagerFileSize},
	}
	for _, tc := range quotas {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(tc.data)})
			quotaError(t, err, tc.code)
		})
	}
	_, err := f.client.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)

	// At the quotas, and with keys that only look like files (a label, an SNS attribute).
	for _, ok := range []string{
		definitionWithTemplates(2),
		withConfig("route:\n  receiver: d\n  routes: [{receiver: d, routes: [{receiver: d}]}]\nreceivers: [{name: d}]\ninhibit_rules:\n- {source_matchers: [a=b], target_matchers: [c=d]}"),
		strings.Replace(fullDefinition, "  inhibit_rules:\n    - source_matchers: [severity=\"page\"]\n      target_matchers: [severity=\"ticket\"]\n      equal: [alertname]\n", "", 1),
	} {
		if _, err := f.client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(ok)}); err != nil {
			t.Fatalf("%v\n%s", err, ok)
		}
		if _, err := f.client.DeleteAlertManagerDefinition(ctx, &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: ws}); err != nil {
			t.Fatal(err)
		}
		waitDefinitionGone(t, f, ws)
	}
}

func waitDefinitionGone(t *testing.T, f *fixture, ws *string) {
	t.Helper()
	for range 500 {
		_, err := f.client.DescribeAlertManagerDefinition(context.Background(), &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
		if err != nil {
			apiError(t, err, awsapi.ResourceNotFoundException)
			return
		}
		f.recon.ReconcileOnce(context.Background())
	}
	t.Fatal("the definition was never deleted")
}

func TestFileField(t *testing.T) {
	for doc, want := range map[string]string{
		"a: 1":                                      "",
		"a: {b_file: x}":                            "a.b_file",
		"a: [{b: 1}, {c: {d_file: x}}]":             "a[1].c.d_file",
		"x: &a {p_file: y}\nz: *a":                  "x.p_file",
		"z: {<<: {q_file: y}}":                      "z.<<.q_file",
		"match: {log_file: x}":                      "",
		"attributes: {a_file: x}":                   "",
		"http_headers: {X_file: {values: [a]}}":     "",
		"http_headers: {X: {files: [/etc/passwd]}}": "http_headers.X.files",
		"route: {match_re: {service_file: .*}}":     "",
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatal(err)
		}
		if got := fileField(&n, ""); got != want {
			t.Errorf("%q: %q, want %q", doc, got, want)
		}
	}
}

// Aliases are not followed: a document of nested aliases costs its size, not its
// expansion.
func TestFileFieldIgnoresAliasExpansion(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(b.String()), &n); err != nil {
		t.Fatal(err)
	}
	if got := fileField(&n, ""); got != "" {
		t.Fatal(got)
	}
}
