package integration

// The control plane of rules and alerting through the real binary: the 9 AMP operations
// of rule groups namespaces and the alert manager definition with the AWS CLI, and their
// authorization (namespace ARNs, their tags, aps:TagResource on a tagged create) with
// aws-sdk-go-v2 and an identities file.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/smithy-go"
)

const cliRules = `groups:
  - name: api
    interval: 1m
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - alert: HighErrorRate
        expr: job:http_requests:rate5m > 100
        for: 10m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.job }} is failing"
`

const cliDefinition = `template_files:
  default_template: |
    {{ define "sns.default.message" }}{{ .CommonAnnotations.summary }}{{ end }}
alertmanager_config: |
  templates: [default_template]
  route:
    receiver: sns
  receivers:
    - name: sns
      sns_configs:
        - topic_arn: arn:aws:sns:us-east-1:000000000000:alerts
          sigv4:
            region: us-east-1
`

type namespaceJSON struct {
	Name   string
	ARN    string `json:"arn"`
	Status struct {
		StatusCode   string
		StatusReason string
	}
	Data string // base64, as the CLI prints blobs
	Tags map[string]string
}

// writeFile writes body to name in a new temporary directory and returns the path.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// awsFails runs an aws amp command that must fail and returns its stderr.
func awsFails(t *testing.T, url string, wantCode string, args ...string) string {
	t.Helper()
	_, stderr, code := awsCLI(t, url, args...)
	if code == 0 || !strings.Contains(stderr, "("+wantCode+")") {
		t.Fatalf("aws amp %s: exit %d, want %s:\n%s", strings.Join(args, " "), code, wantCode, stderr)
	}
	return stderr
}

// waitCLI runs a describe command until check accepts its output.
func waitCLI[T any](t *testing.T, url string, check func(T) bool, args ...string) T {
	t.Helper()
	var out T
	waitFor(t, "aws amp "+strings.Join(args, " "), 20*time.Second, func() bool {
		out = *new(T)
		mustAWS(t, url, &out, args...)
		return check(out)
	}, func() string { return fmt.Sprintf("last answer: %+v", out) })
	return out
}

func TestAWSCLIRulesAndAlerting(t *testing.T) {
	requireTool(t, "aws")
	dataDir := t.TempDir()
	p := startStrata(t, "--data-dir", dataDir)
	var ws workspaceJSON
	mustAWS(t, p.URL, &ws, "create-workspace", "--alias", "rules")
	id := ws.WorkspaceID
	mustAWS(t, p.URL, nil, "wait", "workspace-active", "--workspace-id", id)

	// Rule groups namespaces: create, describe, put, list, tags, delete.
	rules := writeFile(t, "rules.yaml", cliRules)
	var created namespaceJSON
	mustAWS(t, p.URL, &created, "create-rule-groups-namespace", "--workspace-id", id, "--name", "team-a",
		"--data", "fileb://"+rules, "--tags", "team=a")
	wantARN := "arn:aws:aps:us-east-1:000000000000:rulegroupsnamespace/" + id + "/team-a"
	if created.ARN != wantARN || created.Status.StatusCode != "CREATING" || created.Tags["team"] != "a" {
		t.Fatalf("create-rule-groups-namespace: %+v", created)
	}
	describe := []string{"describe-rule-groups-namespace", "--workspace-id", id, "--name", "team-a"}
	d := waitCLI(t, p.URL, func(o struct{ RuleGroupsNamespace namespaceJSON }) bool {
		return o.RuleGroupsNamespace.Status.StatusCode == "ACTIVE"
	}, describe...).RuleGroupsNamespace
	if data, _ := base64.StdEncoding.DecodeString(d.Data); string(data) != cliRules {
		t.Fatalf("described data %q, want the file", data)
	}

	replaced := strings.Replace(cliRules, "interval: 1m", "interval: 2m", 1)
	var put namespaceJSON
	mustAWS(t, p.URL, &put, "put-rule-groups-namespace", "--workspace-id", id, "--name", "team-a", "--data", "fileb://"+writeFile(t, "rules.yaml", replaced))
	if put.Status.StatusCode != "UPDATING" {
		t.Fatalf("put-rule-groups-namespace: %+v", put)
	}
	d = waitCLI(t, p.URL, func(o struct{ RuleGroupsNamespace namespaceJSON }) bool {
		return o.RuleGroupsNamespace.Status.StatusCode == "ACTIVE"
	}, describe...).RuleGroupsNamespace
	if data, _ := base64.StdEncoding.DecodeString(d.Data); string(data) != replaced {
		t.Fatalf("data after put: %q", data)
	}

	for _, name := range []string{"team-b", "team-c", "infra"} {
		mustAWS(t, p.URL, nil, "create-rule-groups-namespace", "--workspace-id", id, "--name", name, "--data", "fileb://"+rules)
	}
	// --page-size 1 makes the CLI follow nextToken page by page.
	var listed struct{ RuleGroupsNamespaces []namespaceJSON }
	mustAWS(t, p.URL, &listed, "list-rule-groups-namespaces", "--workspace-id", id, "--name", "team", "--page-size", "1")
	var names []string
	for _, ns := range listed.RuleGroupsNamespaces {
		names = append(names, ns.Name)
	}
	if strings.Join(names, ",") != "team-a,team-b,team-c" {
		t.Fatalf("list-rule-groups-namespaces --name team --page-size 1: %v", names)
	}

	mustAWS(t, p.URL, nil, "tag-resource", "--resource-arn", wantARN, "--tags", "env=prod")
	mustAWS(t, p.URL, nil, "untag-resource", "--resource-arn", wantARN, "--tag-keys", "team")
	var tags struct{ Tags map[string]string }
	mustAWS(t, p.URL, &tags, "list-tags-for-resource", "--resource-arn", wantARN)
	if fmt.Sprint(tags.Tags) != "map[env:prod]" {
		t.Fatalf("namespace tags: %v", tags.Tags)
	}

	// Invalid rule files get AMP's error, naming what is wrong.
	for name, tc := range map[string]struct{ file, want string }{
		"bad PromQL":      {"groups:\n- name: g1\n  rules:\n  - record: r1\n    expr: sum(rate(x[5m])\n", `group "g1", rule 1, "r1": could not parse expression`},
		"duplicate group": {"groups:\n- name: g1\n  rules: [{record: r1, expr: up}]\n- name: g1\n  rules: [{record: r2, expr: up}]\n", `"g1" is repeated`},
		"bad template":    {"groups:\n- name: g1\n  rules:\n  - alert: A1\n    expr: up == 0\n    annotations: {summary: '{{ .Labels.job '}\n", `"A1"`},
		"interval 10s":    {"groups:\n- name: fast\n  interval: 10s\n  rules: [{record: r1, expr: up}]\n", "minimum rule evaluation interval of 30s"},
	} {
		stderr := awsFails(t, p.URL, "ValidationException", "create-rule-groups-namespace", "--workspace-id", id, "--name", "bad",
			"--data", "fileb://"+writeFile(t, "bad.yaml", tc.file))
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: %s", name, stderr)
		}
	}
	// A group over AMP's 20 rules is over a quota.
	var big strings.Builder
	big.WriteString("groups:\n- name: big\n  rules:\n")
	for i := range 21 {
		fmt.Fprintf(&big, "  - {record: r%d, expr: up}\n", i)
	}
	awsFails(t, p.URL, "ServiceQuotaExceededException", "create-rule-groups-namespace", "--workspace-id", id, "--name", "big",
		"--data", "fileb://"+writeFile(t, "big.yaml", big.String()))
	awsFails(t, p.URL, "ConflictException", "create-rule-groups-namespace", "--workspace-id", id, "--name", "team-b", "--data", "fileb://"+rules)

	mustAWS(t, p.URL, nil, "delete-rule-groups-namespace", "--workspace-id", id, "--name", "team-c")
	waitFor(t, "team-c deleted", 20*time.Second, func() bool {
		_, stderr, code := awsCLI(t, p.URL, "describe-rule-groups-namespace", "--workspace-id", id, "--name", "team-c")
		return code != 0 && strings.Contains(stderr, "ResourceNotFoundException")
	}, p.Log)

	// The alert manager definition: create, describe, put, invalid ones, delete.
	awsFails(t, p.URL, "ResourceNotFoundException", "describe-alert-manager-definition", "--workspace-id", id)
	def := writeFile(t, "alertmanager.yaml", cliDefinition)
	var status struct{ Status struct{ StatusCode string } }
	mustAWS(t, p.URL, &status, "create-alert-manager-definition", "--workspace-id", id, "--data", "fileb://"+def)
	if status.Status.StatusCode != "CREATING" {
		t.Fatalf("create-alert-manager-definition: %+v", status)
	}
	type definitionJSON struct {
		AlertManagerDefinition struct {
			Status struct{ StatusCode string }
			Data   string
		}
	}
	am := waitCLI(t, p.URL, func(o definitionJSON) bool { return o.AlertManagerDefinition.Status.StatusCode == "ACTIVE" },
		"describe-alert-manager-definition", "--workspace-id", id)
	// Described as the Alertmanager reads it (secrets hidden; this one has none).
	if data, _ := base64.StdEncoding.DecodeString(am.AlertManagerDefinition.Data); !strings.Contains(string(data), "topic_arn: arn:aws:sns:us-east-1:000000000000:alerts") ||
		!strings.Contains(string(data), `{{ define "sns.default.message" }}{{ .CommonAnnotations.summary }}{{ end }}`) {
		t.Fatalf("described definition %q", data)
	}
	awsFails(t, p.URL, "ConflictException", "create-alert-manager-definition", "--workspace-id", id, "--data", "fileb://"+def)
	for name, tc := range map[string]struct{ file, want string }{
		"bad YAML":         {"alertmanager_config: [oops\n", "not an alert manager definition"},
		"unknown receiver": {"alertmanager_config: |\n  route: {receiver: nobody}\n  receivers: [{name: sns}]\n", `undefined receiver "nobody" used in route`},
		"a *_file field": {"alertmanager_config: |\n  route: {receiver: hook}\n  receivers:\n  - name: hook\n    webhook_configs:\n    - url: http://127.0.0.1:9/\n      http_config: {authorization: {credentials_file: /etc/token}}\n",
			"receivers[0].webhook_configs[0].http_config.authorization.credentials_file is not allowed"},
	} {
		stderr := awsFails(t, p.URL, "ValidationException", "put-alert-manager-definition", "--workspace-id", id, "--data", "fileb://"+writeFile(t, "am.yaml", tc.file))
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: %s", name, stderr)
		}
	}
	second := strings.Replace(cliDefinition, "receiver: sns\n", "receiver: sns\n    group_by: [alertname]\n", 1)
	mustAWS(t, p.URL, &status, "put-alert-manager-definition", "--workspace-id", id, "--data", "fileb://"+writeFile(t, "am.yaml", second))
	if status.Status.StatusCode != "UPDATING" {
		t.Fatalf("put-alert-manager-definition: %+v", status)
	}
	waitCLI(t, p.URL, func(o definitionJSON) bool { return o.AlertManagerDefinition.Status.StatusCode == "ACTIVE" },
		"describe-alert-manager-definition", "--workspace-id", id)

	// Everything survives a kill -9 and a restart.
	p.kill()
	p = startStrata(t, "--data-dir", dataDir)
	mustAWS(t, p.URL, &listed, "list-rule-groups-namespaces", "--workspace-id", id)
	if len(listed.RuleGroupsNamespaces) != 3 {
		t.Fatalf("after restart: %+v", listed)
	}
	mustAWS(t, p.URL, nil, "delete-alert-manager-definition", "--workspace-id", id)
	waitFor(t, "the definition deleted", 20*time.Second, func() bool {
		_, stderr, code := awsCLI(t, p.URL, "describe-alert-manager-definition", "--workspace-id", id)
		return code != 0 && strings.Contains(stderr, "ResourceNotFoundException")
	}, p.Log)
	p.stop(t)
}

// Per-namespace operations are authorized on the namespace's ARN and its own tags;
// creating one with tags also needs aps:TagResource.
func TestRuleGroupsNamespaceAuthorization(t *testing.T) {
	dir := t.TempDir()
	ids := writeFile(t, "identities.yaml", `
users:
  - name: rules-admin   # everything on rules, but no tagging, and not on locked namespaces
    access_keys: [{id: AKIDRULESADMIN000001, secret: rules-admin-secret-0000000}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: [aps:CreateRuleGroupsNamespace, aps:DescribeRuleGroupsNamespace, aps:ListRuleGroupsNamespaces,
                     aps:PutRuleGroupsNamespace, aps:DeleteRuleGroupsNamespace]
            Resource: "*"
          - Effect: Deny
            Action: aps:PutRuleGroupsNamespace
            Resource: "*"
            Condition: {StringEquals: {"aws:ResourceTag/locked": "yes"}}
  - name: team-a       # may create only the namespaces named team-a-*
    access_keys: [{id: AKIDRULESTEAMA000001, secret: rules-team-a-secret-000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:CreateRuleGroupsNamespace", "Resource": "arn:aws:aps:us-east-1:000000000000:rulegroupsnamespace/*/team-a-*"}]}
  - name: rules-reader  # may describe only the namespaces named public-*
    access_keys: [{id: AKIDRULESREADER00001, secret: rules-reader-secret-000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:DescribeRuleGroupsNamespace", "Resource": "arn:aws:aps:us-east-1:000000000000:rulegroupsnamespace/*/public-*"}]}
`)
	p := startStrata(t, "--data-dir", filepath.Join(dir, "data"), "--auth.identities-file", ids)
	ctx := context.Background()
	client := func(id, secret string) *amp.Client {
		return amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(p.URL),
			Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
	}
	root := client(rootKeyID, rootSecret)
	admin := client("AKIDRULESADMIN000001", "rules-admin-secret-0000000")
	reader := client("AKIDRULESREADER00001", "rules-reader-secret-000000")
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}

	out, err := root.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Tags: map[string]string{"locked": "no"}})
	if err != nil {
		t.Fatal(err)
	}
	ws := out.WorkspaceId
	w := amp.NewWorkspaceActiveWaiter(root, func(o *amp.WorkspaceActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: ws}, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	create := func(c *amp.Client, name string, tags map[string]string) error {
		_, err := c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(name), Data: []byte(cliRules), Tags: tags})
		return err
	}
	waitActive := func(name string) {
		t.Helper()
		waitFor(t, name+" ACTIVE", 20*time.Second, func() bool {
			d, err := root.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(name)})
			return err == nil && d.RuleGroupsNamespace.Status.StatusCode == "ACTIVE"
		})
	}
	if err := create(root, "locked", map[string]string{"locked": "yes"}); err != nil {
		t.Fatal(err)
	}
	if err := create(admin, "open", nil); err != nil {
		t.Fatalf("untagged create by the admin: %v", err)
	}
	err = create(admin, "tagged", map[string]string{"team": "a"})
	if code(err) != "AccessDeniedException" || !strings.Contains(err.Error(), "aps:TagResource") ||
		!strings.Contains(err.Error(), "rulegroupsnamespace/"+aws.ToString(ws)+"/tagged") {
		t.Fatalf("tagged create without aps:TagResource: %v", err)
	}
	if err := create(root, "public-rules", nil); err != nil {
		t.Fatal(err)
	}
	// As AMP, creating is authorized on the new namespace's ARN, named in the body.
	teamA := client("AKIDRULESTEAMA000001", "rules-team-a-secret-000000")
	if err := create(teamA, "team-a-alerts", nil); err != nil {
		t.Fatalf("create allowed by the namespace's ARN: %v", err)
	}
	err = create(teamA, "team-b-alerts", nil)
	if code(err) != "AccessDeniedException" || !strings.Contains(err.Error(), "rulegroupsnamespace/"+aws.ToString(ws)+"/team-b-alerts") {
		t.Fatalf("create of a namespace the policy does not name: %v", err)
	}
	for _, name := range []string{"locked", "open", "public-rules"} {
		waitActive(name)
	}

	put := func(name string) error {
		_, err := admin.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(name), Data: []byte(cliRules)})
		return err
	}
	if err := put("open"); err != nil {
		t.Fatalf("put on an untagged namespace: %v", err)
	}
	// The namespace's own tag denies; the workspace's locked=no does not matter.
	if err := put("locked"); code(err) != "AccessDeniedException" {
		t.Fatalf("put on a locked namespace: %v", err)
	}

	describe := func(name string) error {
		_, err := reader.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(name)})
		return err
	}
	if err := describe("public-rules"); err != nil {
		t.Fatalf("reader on public-rules: %v", err)
	}
	if err := describe("open"); code(err) != "AccessDeniedException" {
		t.Fatalf("reader on open: %v", err)
	}
	if _, err := reader.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws}); code(err) != "AccessDeniedException" {
		t.Fatalf("reader lists: %v", err)
	}
}
