package migrate

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/controlplane"
	"github.com/stratametrics/strata/internal/meta"
)

// controlPlane serves Strata's control plane over a filesystem bucket, with its
// reconciler, and returns its URL and an SDK client for it.
func controlPlane(t *testing.T) (string, *amp.Client) {
	t.Helper()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := meta.New(meta.Config{PollInterval: time.Hour}, bkt, nil, prometheus.NewRegistry())
	if err := store.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	api := controlplane.New(controlplane.Config{MaxRequestBodyBytes: 4 << 20}, controlplane.Env{Region: "us-east-1", AccountID: "123456789012", ExternalURL: srv.URL}, store, nil)
	for _, r := range api.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, r.Handler)
	}
	recon := controlplane.NewReconciler(store, nil, 20*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = recon.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv.URL, amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE0000001", "secret-secret-secret", "")})
}

func activeWorkspace(t *testing.T, c *amp.Client) string {
	t.Helper()
	out, err := c.CreateWorkspace(context.Background(), &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatal(err)
	}
	w := amp.NewWorkspaceActiveWaiter(c, func(o *amp.WorkspaceActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	})
	if err := w.Wait(context.Background(), &amp.DescribeWorkspaceInput{WorkspaceId: out.WorkspaceId}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.WorkspaceId)
}

const teamRules = `groups:
  - name: api
    interval: 1m
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
  - name: node
    rules:
      - alert: NodeDown
        expr: up{job="node"} == 0
        for: 5m
`

func writeRules(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func actions(chs []RuleChange) string {
	var b strings.Builder
	for _, ch := range chs {
		b.WriteString(ch.Namespace + "=" + ch.Action + " ")
	}
	return strings.TrimSpace(b.String())
}

// Rule files become namespaces of the workspace: created, then left alone, replaced
// when they change (after a dry run that shows the difference and changes nothing),
// one per group when asked; a file the workspace refuses fails alone.
func TestRulesIntoAWorkspace(t *testing.T) {
	_, c := controlPlane(t)
	ws := activeWorkspace(t, c)
	dir := t.TempDir()
	team := writeRules(t, dir, "team-a.yml", teamRules)
	infra := writeRules(t, dir, "infra.rules.yaml", "groups:\n  - name: disk\n    rules:\n      - record: disk:free:ratio\n        expr: node_filesystem_avail_bytes / node_filesystem_size_bytes\n")
	ctx := context.Background()
	run := func(cfg RulesConfig) []RuleChange {
		t.Helper()
		cfg.Workspace, cfg.Client = ws, c
		chs, err := Rules(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return chs
	}
	data := func(name string) string {
		out, err := c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return string(out.RuleGroupsNamespace.Data)
	}

	if got := actions(run(RulesConfig{Files: []string{team, infra}})); got != "infra.rules=create team-a=create" {
		t.Fatalf("first run: %s", got)
	}
	if data("team-a") != teamRules {
		t.Fatalf("namespace team-a holds %q", data("team-a"))
	}
	if got := actions(run(RulesConfig{Files: []string{team, infra}})); got != "infra.rules=unchanged team-a=unchanged" {
		t.Fatalf("second run: %s", got)
	}

	changed := strings.Replace(teamRules, "rate(http_requests_total[5m])", "rate(http_requests_total[10m])", 1)
	writeRules(t, dir, "team-a.yml", changed)
	dry := run(RulesConfig{Files: []string{team}, DryRun: true})
	wantDiff := "-         expr: sum by (job) (rate(http_requests_total[5m]))\n+         expr: sum by (job) (rate(http_requests_total[10m]))\n"
	if actions(dry) != "team-a=update" || dry[0].Diff != wantDiff {
		t.Fatalf("dry run: %s\n%s", actions(dry), dry[0].Diff)
	}
	if data("team-a") != teamRules {
		t.Fatal("the dry run changed the namespace")
	}
	if got := actions(run(RulesConfig{Files: []string{team}})); got != "team-a=update" || data("team-a") != changed {
		t.Fatalf("update: %s, namespace holds %q", got, data("team-a"))
	}

	perGroup := run(RulesConfig{Files: []string{team}, PerGroup: true})
	if got := actions(perGroup); got != "team-a-api=create team-a-node=create" {
		t.Fatalf("per group: %s", got)
	}
	if d := data("team-a-node"); !strings.Contains(d, "NodeDown") || strings.Contains(d, "job:http_requests") {
		t.Fatalf("namespace team-a-node holds %q", d)
	}

	// A file Prometheus would not load fails before any request; one the workspace
	// refuses (an interval under its 30 s minimum) fails alone.
	bad := writeRules(t, dir, "bad.yml", "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(rate(x[5m])\n")
	if _, err := Rules(ctx, RulesConfig{Files: []string{bad}, Workspace: ws, Client: c}); err == nil || !strings.Contains(err.Error(), "bad.yml") {
		t.Fatalf("an unparsable file: %v", err)
	}
	fast := writeRules(t, dir, "fast.yml", "groups:\n  - name: fast\n    interval: 10s\n    rules:\n      - record: r\n        expr: vector(1)\n")
	chs := run(RulesConfig{Files: []string{fast, infra}})
	if actions(chs) != "fast=failed infra.rules=unchanged" || !strings.Contains(chs[0].Err.Error(), "ValidationException") {
		t.Fatalf("a file the workspace refuses: %s %v", actions(chs), chs[0].Err)
	}
}

// The command line: flags, the standard credential chain, the report, the exit code.
func TestRulesCommand(t *testing.T) {
	url, c := controlPlane(t)
	ws := activeWorkspace(t, c)
	team := writeRules(t, t.TempDir(), "team-a.yml", teamRules)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE0000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-secret-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"rules", "--from", team, "--workspace", ws, "--endpoint-url", url, "--region", "us-east-1", "--dry-run"}, &stdout, &stderr)
	if code != 0 || stdout.String() != "team-a: would be created\n" {
		t.Fatalf("dry run: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := Main([]string{"rules", "--from", team, "--workspace", ws, "--endpoint-url", url, "--region", "us-east-1"}, &stdout, &stderr); code != 0 || stdout.String() != "team-a: created\n" {
		t.Fatalf("run: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := Main([]string{"rules", "--from", team, "--workspace", "ws-nope", "--endpoint-url", url, "--region", "us-east-1"}, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), "FAILED") {
		t.Fatalf("unknown workspace: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if code := Main([]string{"rules", "--workspace", ws}, &stdout, &stderr); code != 2 {
		t.Fatalf("no --from: exit %d", code)
	}
}

// kube-prometheus keeps its rules as the Prometheus Operator's PrometheusRule manifests:
// each becomes a namespace named after it, its spec.groups the namespace's rules; other
// manifests in the same file are passed over.
const prometheusRules = `apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  labels:
    app.kubernetes.io/name: node-exporter
  name: node-exporter-rules
  namespace: monitoring
spec:
  groups:
  - name: node-exporter.rules
    rules:
    - expr: |
        1 - avg without (cpu) (sum without (mode) (rate(node_cpu_seconds_total{job="node-exporter", mode=~"idle|iowait|steal"}[5m])))
      record: instance:node_cpu_utilisation:rate5m
  - name: node-exporter
    rules:
    - alert: NodeFilesystemAlmostOutOfSpace
      annotations:
        summary: Filesystem has less than 5% space left.
      expr: |
        node_filesystem_avail_bytes{job="node-exporter",fstype!=""} / node_filesystem_size_bytes{job="node-exporter",fstype!=""} * 100 < 5
      for: 30m
      labels:
        severity: warning
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: unrelated
data:
  x: "1"
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: kube-state-metrics-rules
spec:
  groups:
  - name: kube-state-metrics
    rules:
    - alert: KubeStateMetricsListErrors
      expr: |
        (sum(rate(kube_state_metrics_list_total{job="kube-state-metrics",result="error"}[5m])) by (cluster)
          / sum(rate(kube_state_metrics_list_total{job="kube-state-metrics"}[5m])) by (cluster)) > 0.01
      for: 15m
      labels:
        severity: critical
`

func TestPrometheusRuleManifests(t *testing.T) {
	_, c := controlPlane(t)
	ws := activeWorkspace(t, c)
	dir := t.TempDir()
	file := writeRules(t, dir, "kube-prometheus.yaml", prometheusRules)
	chs, err := Rules(context.Background(), RulesConfig{Files: []string{file}, Workspace: ws, Client: c})
	if err != nil || actions(chs) != "kube-state-metrics-rules=create node-exporter-rules=create" {
		t.Fatalf("%s %v", actions(chs), err)
	}
	out, err := c.DescribeRuleGroupsNamespace(context.Background(), &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("node-exporter-rules")})
	if err != nil {
		t.Fatal(err)
	}
	data := string(out.RuleGroupsNamespace.Data)
	if !strings.HasPrefix(data, "groups:") || !strings.Contains(data, "instance:node_cpu_utilisation:rate5m") || strings.Contains(data, "KubeStateMetrics") || strings.Contains(data, "apiVersion") {
		t.Fatalf("namespace node-exporter-rules holds:\n%s", data)
	}
	per, err := Rules(context.Background(), RulesConfig{Files: []string{file}, Workspace: ws, Client: c, PerGroup: true, DryRun: true})
	if err != nil || actions(per) != "kube-state-metrics-rules-kube-state-metrics=create node-exporter-rules-node-exporter=create node-exporter-rules-node-exporter.rules=create" {
		t.Fatalf("per group: %s %v", actions(per), err)
	}
	// A manifest whose rules Prometheus would not load fails, naming it.
	bad := writeRules(t, dir, "bad.yaml", strings.Replace(prometheusRules, "[5m])) by (cluster)\n", "[5m] by (cluster)\n", 1))
	if _, err := Rules(context.Background(), RulesConfig{Files: []string{bad}, Workspace: ws, Client: c}); err == nil || !strings.Contains(err.Error(), "kube-state-metrics-rules") {
		t.Fatalf("an invalid PrometheusRule: %v", err)
	}
	onlyConfig := writeRules(t, dir, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
	if _, err := Rules(context.Background(), RulesConfig{Files: []string{onlyConfig}, Workspace: ws, Client: c}); err == nil || !strings.Contains(err.Error(), "without a PrometheusRule") {
		t.Fatalf("manifests without rules: %v", err)
	}
}
