package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func load(t testing.TB, args ...string) *Config {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := Load(fs, args)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	cfg := load(t)
	if cfg.Server.Listen != "127.0.0.1:8080" || cfg.DataDir != "./data" || cfg.Region != "us-east-1" ||
		cfg.Bucket.Backend != "filesystem" || cfg.Target != "all" || cfg.Limits.RetentionPeriodDays != 150 {
		t.Fatalf("defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestFlagsOverrideFileOverridesDefaults(t *testing.T) {
	file := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(file, []byte(`
region: eu-west-1
data_dir: /from/file
server:
  listen: 127.0.0.1:9999
bucket:
  s3:
    bucket: from-file
meta:
  poll_interval: 7s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := load(t, "--config.file", file, "--data-dir", "/from/flag", "-meta.poll-interval=9s")
	if cfg.Region != "eu-west-1" || cfg.Server.Listen != "127.0.0.1:9999" || cfg.Bucket.S3.Bucket != "from-file" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if cfg.DataDir != "/from/flag" || cfg.Meta.PollInterval != 9*time.Second {
		t.Fatalf("flags did not win: data dir %q poll %v", cfg.DataDir, cfg.Meta.PollInterval)
	}
	if cfg.AccountID != "000000000000" {
		t.Fatalf("default lost: %q", cfg.AccountID)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("regoin: us-east-1\n"), 0o644)
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := Load(fs, []string{"--config.file", bad}); err == nil || !strings.Contains(err.Error(), "regoin") {
		t.Fatalf("misspelt key: %v", err)
	}
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := Load(fs, []string{"--config.file", filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Fatal("missing file accepted")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--region", "moon"}, "region"},
		{[]string{"--account-id", "12"}, "account_id"},
		{[]string{"--target", "nope"}, "target"},
		{[]string{"--bucket.backend", "s3"}, "bucket"},
		{[]string{"--listen", "nope"}, "server"},
		{[]string{"--meta.poll-interval", "0s"}, "meta"},
		{[]string{"--log.level", "loud"}, "log.level"},
	} {
		err := load(t, tc.args...).Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

// The reference in docs/ is generated from the code; this fails when they drift.
func TestConfigReferenceUpToDate(t *testing.T) {
	want, err := ConfigReference()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("docs/configuration.md is out of date: run `make docs`")
	}
	opts, _ := Options()
	for _, must := range []string{"listen", "data-dir", "config.file", "bucket.backend", "bucket.filesystem.dir", "bucket.s3.endpoint", "region", "account-id", "external-url"} {
		found := false
		for _, o := range opts {
			found = found || o.Flag.Name == must
		}
		if !found {
			t.Errorf("flag --%s missing from the reference", must)
		}
	}
}

func TestSecurityReferenceUpToDate(t *testing.T) {
	t.Setenv("STRATA_ROOT_ACCESS_KEY_ID", testKeyID)
	t.Setenv("STRATA_ROOT_SECRET_ACCESS_KEY", testSecret)
	want, err := SecurityReference()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("docs/security.md is out of date: run `make docs`")
	}
	for _, action := range []string{"aps:CreateWorkspace", "aps:RemoteWrite", "aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata", "aps:PutResourcePolicy"} {
		if !strings.Contains(want, action) {
			t.Errorf("no route with %s", action)
		}
	}
}

type running struct {
	app *App
	url string
	// internal is the internal listener's base URL: /metrics without a signature.
	internal string
	cancel   context.CancelFunc
	done     chan error
}

// The root key every test server runs with; clients sign with it.
const (
	testKeyID  = "AKIDSTRATATEST000001"
	testSecret = "strata-test-secret-0000000000000000000000"
)

func start(t testing.TB, args ...string) *running {
	t.Helper()
	t.Setenv("STRATA_ROOT_ACCESS_KEY_ID", testKeyID)
	t.Setenv("STRATA_ROOT_SECRET_ACCESS_KEY", testSecret)
	cfg := load(t, append([]string{"--listen", "127.0.0.1:0", "--internal.listen", "127.0.0.1:0", "--log.level", "error"}, args...)...)
	a, err := New(context.Background(), cfg, NewLogger(cfg.Log, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{app: a, url: "http://" + a.Addr(), internal: "http://" + a.InternalAddr(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	<-r.done
}

func (r *running) client() *amp.Client {
	return amp.New(amp.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(r.url),
		Credentials:  credentials.NewStaticCredentialsProvider(testKeyID, testSecret, ""),
	})
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signedGet sends a GET signed with creds (service aps, us-east-1).
func signedGet(t *testing.T, creds *aws.Credentials, url string) (int, string) {
	t.Helper()
	code, body, _ := signedDo(t, creds, http.MethodGet, url, nil, nil)
	return code, body
}

// signedDo sends a request with body and headers, signed with creds (service aps,
// us-east-1) over the body's SHA-256, or unsigned when creds is nil.
func signedDo(t testing.TB, creds *aws.Credentials, method, url string, body []byte, header http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if creds != nil {
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(context.Background(), *creds, req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

const emptySHA256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestServerEndToEnd(t *testing.T) {
	dir := t.TempDir()
	r := start(t, "--data-dir", dir)
	ctx := context.Background()
	c := r.client()

	if code, body := get(t, r.url+"/-/healthy"); code != 200 || !strings.Contains(body, "Healthy") {
		t.Fatalf("healthy: %d %q", code, body)
	}
	if code, _ := get(t, r.url+"/-/ready"); code != 200 {
		t.Fatalf("ready: %d", code)
	}
	out, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("persist")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.WorkspaceId)
	w := amp.NewWorkspaceActiveWaiter(c, func(o *amp.WorkspaceActiveWaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: out.WorkspaceId}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	d, _ := c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: out.WorkspaceId})
	if want := r.url + "/workspaces/" + id + "/"; aws.ToString(d.Workspace.PrometheusEndpoint) != want {
		t.Fatalf("prometheusEndpoint %q, want %q", aws.ToString(d.Workspace.PrometheusEndpoint), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "bucket", "meta", "workspaces", id+".json")); err != nil {
		t.Fatalf("workspace object not in the default bucket under the data dir: %v", err)
	}

	code, body := get(t, r.url+"/nope")
	if code != 404 || !strings.Contains(body, "GET /nope") {
		t.Fatalf("unknown route: %d %q", code, body)
	}
	code, metrics := get(t, r.internal+"/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	// On the public listener /metrics (which names every workspace) needs a signature.
	if code, body := get(t, r.url+"/metrics"); code != http.StatusForbidden || strings.Contains(body, id) {
		t.Fatalf("unsigned public /metrics: %d %.200q", code, body)
	}
	if code, body := signedGet(t, &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}, r.url+"/metrics"); code != 200 || !strings.Contains(body, "strata_build_info") {
		t.Fatalf("signed public /metrics: %d %.200q", code, body)
	}
	for _, want := range []string{
		`strata_http_requests_total{method="POST",route="CreateWorkspace",status="202"} 1`,
		`strata_http_requests_total{method="GET",route="unknown",status="404"} 1`,
		`strata_http_request_duration_seconds_count{method="POST",route="CreateWorkspace"} 1`,
		`strata_build_info{`,
		`strata_meta_workspaces 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Restart on the same data dir: the workspace is still there, ACTIVE.
	r.stop()
	r2 := start(t, "--data-dir", dir)
	d, err = r2.client().DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: out.WorkspaceId})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.Workspace.Alias) != "persist" || d.Workspace.Status.StatusCode != "ACTIVE" {
		t.Fatalf("after restart: %+v", d.Workspace)
	}
}

func TestTwoServersShareOneBucket(t *testing.T) {
	bkt := t.TempDir()
	a := start(t, "--data-dir", t.TempDir(), "--bucket.filesystem.dir", bkt, "--meta.poll-interval", "50ms")
	b := start(t, "--data-dir", t.TempDir(), "--bucket.filesystem.dir", bkt, "--meta.poll-interval", "50ms")
	ctx := context.Background()
	out, err := a.client().CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("shared")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client().DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: out.WorkspaceId}); err != nil {
		t.Fatalf("b describes a's workspace: %v", err)
	}
	// Each process learns of the other's changes on its own: polling the bucket, reconciling.
	testutil.Eventually(t, 5*time.Second, "b to list a's workspace as ACTIVE", func() bool {
		l, err := b.client().ListWorkspaces(ctx, &amp.ListWorkspacesInput{})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Workspaces) == 1 && l.Workspaces[0].Status.StatusCode == "ACTIVE"
	})
	if _, err := b.client().DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: out.WorkspaceId}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "a to list no workspace once b deleted it", func() bool {
		l, err := a.client().ListWorkspaces(ctx, &amp.ListWorkspacesInput{})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Workspaces) == 0
	})
}
