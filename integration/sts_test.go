package integration

// Temporary credentials through the real binary with clients we do not control: the
// AWS CLI (assume-role, and its web identity provider configured only by environment
// variables), aws-sdk-go-v2's default credential chain, Prometheus 3.x remote_write
// with sigv4 role_arn, and `strata sigv4-proxy --role-arn`.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/amp"

	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/testutil/oidctest"
)

const (
	oidcIssuer = "https://oidc.integration.example/cluster"
	oidcPrefix = "oidc.integration.example/cluster"

	deployerKey    = "AKIDDEPLOYER00000001"
	deployerSecret = "deployer-secret-0000000000"
)

// stsServer starts strata with an identities file of users, roles and an OIDC provider
// whose key set it fetches over TLS from a test IdP (pinned by thumbprint).
func stsServer(t *testing.T) (*proc, *oidctest.IdP, string) {
	t.Helper()
	dir := t.TempDir()
	ca := testutil.NewCA(t, "idp CA")
	idp := oidctest.New(t, oidcIssuer)
	srv := idp.Serve(t, ca)
	ids := filepath.Join(dir, "identities.yaml")
	if err := os.WriteFile(ids, []byte(fmt.Sprintf(`
users:
  - name: deployer   # may only assume roles
    access_keys: [{id: %s, secret: %s}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
  - name: stranger
    access_keys: [{id: AKIDSTRANGER00000001, secret: stranger-secret-0000000000}]
roles:
  - name: monitoring
    trust_policy:
      Version: "2012-10-17"
      Statement:
        - {Effect: Allow, Principal: {AWS: "000000000000"}, Action: sts:AssumeRole}
        - Effect: Allow
          Principal: {Federated: "arn:aws:iam::000000000000:oidc-provider/%s"}
          Action: sts:AssumeRoleWithWebIdentity
          Condition: {StringEquals: {"%s:sub": "system:serviceaccount:monitoring:prometheus", "%s:aud": "sts.amazonaws.com"}}
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["aps:RemoteWrite", "aps:QueryMetrics", "aps:ListWorkspaces", "aps:DescribeWorkspace"], "Resource": "*"}]}
oidc_providers:
  - url: %s
    client_ids: [sts.amazonaws.com]
    jwks_url: %s/jwks
    thumbprints: [%s]
`, deployerKey, deployerSecret, oidcPrefix, oidcPrefix, oidcPrefix, oidcIssuer, srv.URL, ca.Thumbprint())), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startStrata(t, "--data-dir", filepath.Join(dir, "data"), "--auth.identities-file", ids)
	return p, idp, dir
}

func TestAWSCLIAssumeRoleThenAMP(t *testing.T) {
	requireTool(t, "aws")
	p, _, _ := stsServer(t)
	ws := createWorkspace(t, p.URL)
	deployer := []string{"AWS_ACCESS_KEY_ID=" + deployerKey, "AWS_SECRET_ACCESS_KEY=" + deployerSecret}

	// The deployer alone may not use AMP...
	if _, stderr, code := awsRun(t, deployer, "amp", "describe-workspace", "--workspace-id", ws, "--endpoint-url", p.URL); code == 0 || !strings.Contains(stderr, "AccessDeniedException") {
		t.Fatalf("deployer describing: exit %d %s", code, stderr)
	}
	// ...but may assume the monitoring role.
	stdout, stderr, code := awsRun(t, deployer, "sts", "assume-role", "--role-arn", "arn:aws:iam::000000000000:role/monitoring",
		"--role-session-name", "cli-session", "--endpoint-url", p.URL)
	if code != 0 {
		t.Fatalf("assume-role: exit %d %s", code, stderr)
	}
	var out struct {
		Credentials struct {
			AccessKeyID     string `json:"AccessKeyId"`
			SecretAccessKey string
			SessionToken    string
			Expiration      string
		}
		AssumedRoleUser struct{ Arn, AssumedRoleId string }
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("assume-role output: %v\n%s", err, stdout)
	}
	if out.AssumedRoleUser.Arn != "arn:aws:sts::000000000000:assumed-role/monitoring/cli-session" || !strings.HasPrefix(out.Credentials.AccessKeyID, "ASIA") {
		t.Fatalf("assume-role answer: %+v", out)
	}
	session := []string{"AWS_ACCESS_KEY_ID=" + out.Credentials.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + out.Credentials.SecretAccessKey,
		"AWS_SESSION_TOKEN=" + out.Credentials.SessionToken}
	stdout, stderr, code = awsRun(t, session, "amp", "describe-workspace", "--workspace-id", ws, "--endpoint-url", p.URL)
	if code != 0 || !strings.Contains(stdout, ws) {
		t.Fatalf("describe-workspace with the role's session: exit %d %s %s", code, stdout, stderr)
	}
	stdout, stderr, code = awsRun(t, session, "sts", "get-caller-identity", "--endpoint-url", p.URL)
	if code != 0 || !strings.Contains(stdout, "assumed-role/monitoring/cli-session") {
		t.Fatalf("get-caller-identity: exit %d %s %s", code, stdout, stderr)
	}
	// The session may not do what the role may not (here: delete the workspace).
	if _, stderr, code := awsRun(t, session, "amp", "delete-workspace", "--workspace-id", ws, "--endpoint-url", p.URL); code == 0 || !strings.Contains(stderr, "AccessDeniedException") {
		t.Fatalf("delete-workspace with the role's session: exit %d %s", code, stderr)
	}
	// A tampered session token, and a stranger assuming the role, are refused.
	bad := append(session[:2:2], "AWS_SESSION_TOKEN="+out.Credentials.SessionToken[:len(out.Credentials.SessionToken)-4]+"AAAA")
	if _, stderr, code := awsRun(t, bad, "amp", "list-workspaces", "--endpoint-url", p.URL); code == 0 || !strings.Contains(stderr, "UnrecognizedClientException") {
		t.Fatalf("tampered token: exit %d %s", code, stderr)
	}
	stranger := []string{"AWS_ACCESS_KEY_ID=AKIDSTRANGER00000001", "AWS_SECRET_ACCESS_KEY=stranger-secret-0000000000"}
	if _, stderr, code := awsRun(t, stranger, "sts", "assume-role", "--role-arn", "arn:aws:iam::000000000000:role/monitoring",
		"--role-session-name", "nope", "--endpoint-url", p.URL); code == 0 || !strings.Contains(stderr, "AccessDenied") {
		t.Fatalf("stranger assume-role: exit %d %s", code, stderr)
	}
}

// IRSA as pods have it: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and (to reach Strata's
// STS) AWS_ENDPOINT_URL_STS, nothing else. The AWS CLI and aws-sdk-go-v2 use them
// unchanged.
func TestWebIdentityProviderUnchanged(t *testing.T) {
	requireTool(t, "aws")
	p, idp, dir := stsServer(t)
	ws := createWorkspace(t, p.URL)
	tokenFile := filepath.Join(dir, "token")
	writeToken := func(c oidctest.Claims) {
		t.Helper()
		claims := oidctest.Claims{"sub": "system:serviceaccount:monitoring:prometheus", "aud": "sts.amazonaws.com"}
		for k, v := range c {
			claims[k] = v
		}
		if err := os.WriteFile(tokenFile, []byte(idp.Token(t, claims)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeToken(nil)
	env := []string{
		"AWS_ROLE_ARN=arn:aws:iam::000000000000:role/monitoring",
		"AWS_WEB_IDENTITY_TOKEN_FILE=" + tokenFile,
		"AWS_ROLE_SESSION_NAME=prometheus-0",
		"AWS_ENDPOINT_URL_STS=" + p.URL,
	}
	stdout, stderr, code := awsRun(t, env, "sts", "get-caller-identity")
	if code != 0 || !strings.Contains(stdout, "arn:aws:sts::000000000000:assumed-role/monitoring/prometheus-0") {
		t.Fatalf("CLI web identity get-caller-identity: exit %d %s %s", code, stdout, stderr)
	}
	stdout, stderr, code = awsRun(t, env, "amp", "describe-workspace", "--workspace-id", ws, "--endpoint-url", p.URL)
	if code != 0 || !strings.Contains(stdout, ws) {
		t.Fatalf("CLI web identity describe-workspace: exit %d %s %s", code, stdout, stderr)
	}
	if idp.JWKSFetches.Load() == 0 {
		t.Fatal("strata never fetched the IdP's key set")
	}

	// aws-sdk-go-v2's default chain, with the same variables.
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_REGION", "us-east-1")
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := amp.NewFromConfig(cfg, func(o *amp.Options) { o.BaseEndpoint = aws.String(p.URL) })
	got, err := c.DescribeWorkspace(context.Background(), &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)})
	if err != nil || aws.ToString(got.Workspace.WorkspaceId) != ws {
		t.Fatalf("Go SDK web identity: %v", err)
	}

	// Refused tokens, with STS's error codes, through the CLI's provider.
	other := oidctest.New(t, "https://elsewhere.example")
	for name, tc := range map[string]struct {
		write func()
		code  string
	}{
		"expired":        {func() { writeToken(oidctest.Claims{"exp": time.Now().Add(-time.Minute).Unix()}) }, "ExpiredTokenException"},
		"wrong audience": {func() { writeToken(oidctest.Claims{"aud": "someone-else"}) }, "InvalidIdentityToken"},
		"wrong issuer": {func() {
			_ = os.WriteFile(tokenFile, []byte(other.Token(t, oidctest.Claims{"sub": "system:serviceaccount:monitoring:prometheus", "aud": "sts.amazonaws.com"})), 0o600)
		}, "InvalidIdentityToken"},
		"tampered": {func() {
			tok := idp.Token(t, oidctest.Claims{"sub": "system:serviceaccount:monitoring:prometheus", "aud": "sts.amazonaws.com"})
			_ = os.WriteFile(tokenFile, []byte(oidctest.Tamper(tok)), 0o600)
		}, "InvalidIdentityToken"},
		"wrong subject": {func() { writeToken(oidctest.Claims{"sub": "system:serviceaccount:default:intruder"}) }, "AccessDenied"},
	} {
		tc.write()
		_, stderr, code := awsRun(t, env, "sts", "get-caller-identity")
		if code == 0 || !strings.Contains(stderr, tc.code) {
			t.Errorf("%s: exit %d, %s (want %s)", name, code, stderr, tc.code)
		}
	}
}

// requirePrometheus3 returns a Prometheus 3.x binary (built by .ci/install-prometheus3.sh
// as prometheus3): Debian's 2.42 does not sign sigv4 remote writes.
func requirePrometheus3(t *testing.T) string {
	t.Helper()
	if p, err := testutil.FindBinary("prometheus3"); err == nil {
		return p
	}
	return requireTool(t, "prometheus3")
}

// Prometheus 3.x with `sigv4: {role_arn: …}` assumes the role through Strata's STS
// (AWS_ENDPOINT_URL_STS) with a user that may do nothing else, and remote-writes with
// the session's credentials.
func TestPrometheus3RemoteWriteWithRole(t *testing.T) {
	bin := requirePrometheus3(t)
	p, _, dir := stsServer(t)
	ws := createWorkspace(t, p.URL)
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["%s"]
remote_write:
  - url: %s/workspaces/%s/api/v1/remote_write
    sigv4:
      region: us-east-1
      role_arn: arn:aws:iam::000000000000:role/monitoring
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
`, addr, p.URL, ws)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--config.file", cfgFile, "--storage.tsdb.path", filepath.Join(dir, "prom"), "--web.listen-address", addr)
	cmd.Env = append(withoutAWSEnv(), "AWS_ACCESS_KEY_ID="+deployerKey, "AWS_SECRET_ACCESS_KEY="+deployerSecret,
		"AWS_ENDPOINT_URL_STS="+p.URL, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	waitFor(t, "Prometheus 3's samples through the role", 90*time.Second, func() bool {
		return countSeries(t, p.URL, ws, `up{job="prometheus"}`) > 0
	}, p.Log, func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) })
}

// countSeries runs an instant query as root and returns the number of series.
func countSeries(t *testing.T, base, ws, query string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/workspaces/"+ws+"/api/v1/query?query="+url.QueryEscape(query), nil)
	resp := signedDo(t, req, nil)
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []json.RawMessage
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("query %s: %d %v", query, resp.StatusCode, err)
	}
	return len(out.Data.Result)
}

// The signing proxy assumes a role (--role-arn) through Strata's STS and signs with the
// session: a user who may only assume the role queries through it.
func TestSigningProxyWithRole(t *testing.T) {
	curl := requireTool(t, "curl")
	p, _, _ := stsServer(t)
	ws := createWorkspace(t, p.URL)
	base, proxyLog := startProxy(t, []string{"AWS_ACCESS_KEY_ID=" + deployerKey, "AWS_SECRET_ACCESS_KEY=" + deployerSecret, "AWS_ENDPOINT_URL_STS=" + p.URL},
		"--upstream", p.URL, "--region", "us-east-1", "--role-arn", "arn:aws:iam::000000000000:role/monitoring")
	out, err := exec.Command(curl, "-sS", "--fail-with-body", "--noproxy", "*", "-G", "--data-urlencode", "query=vector(7)",
		base+"/workspaces/"+ws+"/api/v1/query").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"7"`) {
		t.Fatalf("query through the proxy with a role: %v %s\nproxy log:\n%s", err, out, proxyLog.String())
	}
	if !strings.Contains(proxyLog.String(), "role_arn=arn:aws:iam::000000000000:role/monitoring") {
		t.Fatalf("the proxy did not say it signs with the role:\n%s", proxyLog.String())
	}
}
