package app

// Regression tests, through the whole server, for holes an outside review found.

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/smithy-go"

	"github.com/stratametrics/strata/internal/testutil"
)

func ampAs(r *running, id, secret string) *amp.Client {
	return amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(r.url),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
}

// apiCode is the AWS error code of err, "" for nil.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// aws:RequestTag/<key> and aws:TagKeys are set from what a request tags, and tagging on
// create needs aps:TagResource, as in IAM. Before, neither key was ever set: a Deny on
// a tag key never applied, ForAllValues always held and RequestTag never matched.
func TestTagConditionKeys(t *testing.T) {
	dir := t.TempDir()
	ids := filepath.Join(dir, "identities.yaml")
	if err := os.WriteFile(ids, []byte(`
users:
  - name: blue-creator   # may create only workspaces tagged team=blue, with no other tag than env
    access_keys: [{id: AKIDBLUECREATOR00001, secret: blue-creator-secret-000000}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: [aps:CreateWorkspace, aps:TagResource]
            Resource: "*"
            Condition:
              StringEquals: {"aws:RequestTag/team": blue}
              ForAllValues:StringEquals: {"aws:TagKeys": [team, env]}
  - name: no-tagging     # may create workspaces, but not tag anything
    access_keys: [{id: AKIDNOTAGGING0000001, secret: no-tagging-secret-00000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:CreateWorkspace", "Resource": "*"}]}
  - name: guarded        # may do anything but touch the "protected" tag
    access_keys: [{id: AKIDGUARDED000000001, secret: guarded-secret-0000000000}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: "aps:*", Resource: "*"}
          - Effect: Deny
            Action: [aps:TagResource, aps:UntagResource]
            Resource: "*"
            Condition: {ForAnyValue:StringEquals: {"aws:TagKeys": protected}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "--data-dir", dir, "--auth.identities-file", ids)
	ctx := context.Background()
	blue := ampAs(r, "AKIDBLUECREATOR00001", "blue-creator-secret-000000")
	noTag := ampAs(r, "AKIDNOTAGGING0000001", "no-tagging-secret-00000000")
	guarded := ampAs(r, "AKIDGUARDED000000001", "guarded-secret-0000000000")

	for name, tc := range map[string]struct {
		c    *amp.Client
		tags map[string]string
		want string // "" allowed, else the error code
	}{
		"blue":                 {blue, map[string]string{"team": "blue"}, ""},
		"blue with env":        {blue, map[string]string{"team": "blue", "env": "prod"}, ""},
		"red":                  {blue, map[string]string{"team": "red"}, "AccessDeniedException"},
		"blue with owner":      {blue, map[string]string{"team": "blue", "owner": "x"}, "AccessDeniedException"},
		"no tags at all":       {blue, nil, "AccessDeniedException"}, // aws:RequestTag/team absent: StringEquals is false
		"untagged create":      {noTag, nil, ""},
		"tagged create":        {noTag, map[string]string{"team": "blue"}, "AccessDeniedException"}, // needs aps:TagResource
		"guarded, other tag":   {guarded, map[string]string{"team": "x"}, ""},
		"guarded, protected":   {guarded, map[string]string{"protected": "x"}, "AccessDeniedException"},
		"guarded, no tags":     {guarded, nil, ""},
		"guarded, mixed":       {guarded, map[string]string{"team": "x", "protected": "y"}, "AccessDeniedException"},
		"blue, lower-case key": {blue, map[string]string{"Team": "blue"}, "AccessDeniedException"},
	} {
		_, err := tc.c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Tags: tc.tags})
		if got := apiCode(err); got != tc.want {
			t.Errorf("%s: CreateWorkspace got %q (%v), want %q", name, got, err, tc.want)
		}
		if name == "tagged create" && err != nil && !strings.Contains(err.Error(), "aps:TagResource") {
			t.Errorf("tagged create: the denial does not name aps:TagResource: %v", err)
		}
	}

	out, err := guarded.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatal(err)
	}
	arn := out.Arn
	if _, err := guarded.TagResource(ctx, &amp.TagResourceInput{ResourceArn: arn, Tags: map[string]string{"team": "x"}}); err != nil {
		t.Errorf("TagResource team: %v", err)
	}
	if _, err := guarded.TagResource(ctx, &amp.TagResourceInput{ResourceArn: arn, Tags: map[string]string{"protected": "x"}}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("TagResource protected: %v", err)
	}
	if _, err := r.client().TagResource(ctx, &amp.TagResourceInput{ResourceArn: arn, Tags: map[string]string{"protected": "root-set"}}); err != nil {
		t.Fatal(err)
	}
	// UntagResource names the keys it removes in aws:TagKeys.
	if _, err := guarded.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"protected"}}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("UntagResource protected: %v", err)
	}
	if _, err := guarded.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"team"}}); err != nil {
		t.Errorf("UntagResource team: %v", err)
	}
	l, err := r.client().ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: arn})
	if err != nil || len(l.Tags) != 1 || l.Tags["protected"] != "root-set" {
		t.Fatalf("tags after the attempts: %v %v", l.Tags, err)
	}
}

// A {workspaceId} that is not a workspace id is refused at the edge, before it names a
// bucket object: here a crafted object outside meta/workspaces/ that the old lookup
// (meta/workspaces/<id>.json) reached with "../".
func TestWorkspaceIDValidatedAtTheEdge(t *testing.T) {
	dir := t.TempDir()
	r := start(t, "--data-dir", dir)
	crafted := filepath.Join(dir, "bucket", "meta", "evil.json")
	if err := os.MkdirAll(filepath.Dir(crafted), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crafted, []byte(`{"id":"../evil","arn":"arn:aws:aps:us-east-1:000000000000:workspace/evil","status":"ACTIVE","accountId":"000000000000"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	root := &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	for _, path := range []string{
		"/workspaces/..%2Fevil/api/v1/query?query=up",
		"/workspaces/..%2Fevil",
		"/workspaces/ws-1%2F..%2F..%2Fevil/api/v1/labels",
		"/workspaces/" + strings.Repeat("a", 65) + "/api/v1/query?query=up",
		"/workspaces/-ws/api/v1/query?query=up",
	} {
		for _, creds := range []*aws.Credentials{nil, root} {
			var code int
			var body string
			if creds == nil {
				code, body = get(t, r.url+path)
			} else {
				code, body = signedGet(t, creds, r.url+path)
			}
			if code != http.StatusBadRequest || !strings.Contains(body, "not a valid workspace id") {
				t.Errorf("GET %s (signed %v): %d %s", path, creds != nil, code, body)
			}
		}
	}
	// And the store itself never makes a bucket key of an invalid id.
	if _, err := r.app.store.GetWorkspace(context.Background(), "../evil"); err == nil {
		t.Fatal("the metadata store read ../evil")
	}
}

// An account holds at most --controlplane.max-workspaces-per-account workspaces (AMP:
// 25 per Region); others are not affected.
func TestWorkspacesPerAccountQuota(t *testing.T) {
	dir := t.TempDir()
	ids := filepath.Join(dir, "identities.yaml")
	if err := os.WriteFile(ids, []byte(`
accounts: [{id: "222222222222"}]
users:
  - name: other
    account: "222222222222"
    access_keys: [{id: AKIDOTHERACCOUNT0001, secret: other-account-secret-00000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:*", "Resource": "*"}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "--data-dir", dir, "--auth.identities-file", ids, "--controlplane.max-workspaces-per-account", "2")
	ctx := context.Background()
	for i := range 2 {
		if _, err := r.client().CreateWorkspace(ctx, &amp.CreateWorkspaceInput{}); err != nil {
			t.Fatalf("workspace %d: %v", i, err)
		}
	}
	_, err := r.client().CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	if apiCode(err) != "ServiceQuotaExceededException" || !strings.Contains(err.Error(), "Maximum workspaces per account") {
		t.Fatalf("third workspace: %v", err)
	}
	if _, err := ampAs(r, "AKIDOTHERACCOUNT0001", "other-account-secret-00000").CreateWorkspace(ctx, &amp.CreateWorkspaceInput{}); err != nil {
		t.Fatalf("another account's first workspace: %v", err)
	}
}

// A broken identities file keeps the last good version serving, and /-/ready says so.
func TestReadyReportsStaleIdentities(t *testing.T) {
	dir := t.TempDir()
	ids := filepath.Join(dir, "identities.yaml")
	good := "users:\n  - name: u\n    access_keys: [{id: AKIDREADYUSER0000001, secret: ready-user-secret-000000}]\n"
	if err := os.WriteFile(ids, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "--data-dir", dir, "--auth.identities-file", ids)
	if code, _ := get(t, r.url+"/-/ready"); code != http.StatusOK {
		t.Fatalf("ready: %d", code)
	}
	if err := os.WriteFile(ids, []byte("users: [broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.app.auth.Store().Reload(); err == nil {
		t.Fatal("a broken file loaded")
	}
	for _, base := range []string{r.url, r.internal} {
		code, body := get(t, base+"/-/ready")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "identities file does not load") || strings.Contains(body, dir) {
			t.Fatalf("%s/-/ready with a broken identities file: %d %q", base, code, body)
		}
	}
}

// The data directory is private, also when it existed with looser permissions.
func TestDataDirectoryIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start(t, "--data-dir", dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Fatalf("data directory mode %04o, want 0700", perm)
	}
}

// TLS on the listener: AWS clients work over it, prometheusEndpoint is https, and
// aws:SecureTransport is true for policies that insist on it.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, "strata CA")
	certFile, keyFile := ca.Issue(t, "strata", false).WriteFiles(t, dir, "server")
	ids := filepath.Join(dir, "identities.yaml")
	if err := os.WriteFile(ids, []byte(`
users:
  - name: tls-only
    access_keys: [{id: AKIDTLSONLY000000001, secret: tls-only-secret-000000000}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: "aps:*", Resource: "*"}
          - {Effect: Deny, Action: "aps:*", Resource: "*", Condition: {Bool: {"aws:SecureTransport": "false"}}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "--data-dir", dir, "--tls.cert-file", certFile, "--tls.key-file", keyFile, "--auth.identities-file", ids)
	base := "https://" + r.app.Addr()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer hc.CloseIdleConnections()
	c := amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(base), HTTPClient: hc,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTLSONLY000000001", "tls-only-secret-000000000", "")})
	ctx := context.Background()
	out, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatalf("over TLS, with a policy that wants it: %v", err)
	}
	d, err := c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: out.WorkspaceId})
	if err != nil || !strings.HasPrefix(aws.ToString(d.Workspace.PrometheusEndpoint), "https://") {
		t.Fatalf("describe over TLS: %v %v", err, d)
	}
	// The same user on a plain HTTP listener is denied by the policy.
	plain := start(t, "--data-dir", t.TempDir(), "--auth.identities-file", ids)
	if _, err := ampAs(plain, "AKIDTLSONLY000000001", "tls-only-secret-000000000").CreateWorkspace(ctx, &amp.CreateWorkspaceInput{}); apiCode(err) != "AccessDeniedException" {
		t.Fatalf("over plain HTTP: %v", err)
	}
	// Plain HTTP on the TLS port gets no answer a client could use.
	if resp, err := http.Get("http://" + r.app.Addr() + "/workspaces"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP on the TLS listener: %d", resp.StatusCode)
		}
	}
}
