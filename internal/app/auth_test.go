package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/prometheus/prometheus/prompb"
)

// Authentication and authorization through the whole server: identities from a file,
// per-workspace grants, and the cross-account central-monitoring grant of the seed.
func TestAuthorizationEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ids := filepath.Join(dir, "identities.yaml")
	r := start(t, "--data-dir", dir, "--account-id", "111111111111")
	wsA, wsB := newWorkspace(t, r), newWorkspace(t, r)
	arnA := "arn:aws:aps:us-east-1:111111111111:workspace/" + wsA
	if err := os.WriteFile(ids, []byte(fmt.Sprintf(`
accounts:
  - id: "222222222222"
    name: central
users:
  - name: writer-a
    account: "111111111111"
    access_keys: [{id: AKIDWRITERA000000001, secret: writer-a-secret-000000000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": %q}]}
  - name: only-a
    account: "111111111111"
    access_keys: [{id: AKIDONLYA00000000001, secret: only-a-secret-0000000000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:*", "Resource": %q}]}
  - name: central
    account: "222222222222"
    access_keys: [{id: AKIDCENTRAL000000001, secret: central-secret-0000000000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["aps:RemoteWrite", "aps:DescribeWorkspace"], "Resource": "*"}]}
`, arnA, arnA)), 0o600); err != nil {
		t.Fatal(err)
	}
	r.stop()
	r = start(t, "--data-dir", dir, "--account-id", "111111111111", "--auth.identities-file", ids)

	writerA := &aws.Credentials{AccessKeyID: "AKIDWRITERA000000001", SecretAccessKey: "writer-a-secret-000000000000"}
	central := &aws.Credentials{AccessKeyID: "AKIDCENTRAL000000001", SecretAccessKey: "central-secret-0000000000000"}
	body := func() []byte {
		return encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: ts("m"), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}}})
	}
	expect := func(who string, creds *aws.Credentials, ws string, status int, inMsg string) {
		t.Helper()
		code, msg, hdr := postAs(t, creds, rwURL(r, ws), "application/x-protobuf", body())
		if code != status || !strings.Contains(msg, inMsg) {
			t.Fatalf("%s writing %s: %d %s (x-amzn-ErrorType %q), want %d containing %q", who, ws, code, msg, hdr.Get("x-amzn-ErrorType"), status, inMsg)
		}
	}
	expect("unsigned", nil, wsA, 403, "Missing Authentication Token")
	expect("wrong secret", &aws.Credentials{AccessKeyID: writerA.AccessKeyID, SecretAccessKey: "not-the-secret-00000000000"}, wsA, 403, "signature")
	expect("unknown key", &aws.Credentials{AccessKeyID: "AKIDNOBODY0000000001", SecretAccessKey: "whatever-secret-00000000"}, wsA, 403, "")
	expect("writer-a", writerA, wsA, 204, "")
	expect("writer-a", writerA, wsB, 403, "User: arn:aws:iam::111111111111:user/writer-a is not authorized to perform: aps:RemoteWrite on resource: arn:aws:aps:us-east-1:111111111111:workspace/"+wsB)

	// only-a may do anything on A and nothing on B: neither read, nor write, nor describe.
	onlyA := &aws.Credentials{AccessKeyID: "AKIDONLYA00000000001", SecretAccessKey: "only-a-secret-0000000000000"}
	expect("only-a", onlyA, wsA, 204, "")
	expect("only-a", onlyA, wsB, 403, "not authorized to perform: aps:RemoteWrite")
	for ws, want := range map[string]int{wsA: 200, wsB: 403} {
		if code, out := queryAPIAs(t, onlyA, r, ws, "query", url.Values{"query": {"m"}}); code != want {
			t.Fatalf("only-a querying %s: %d %v", ws, code, out)
		}
	}
	asOnlyA := amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(r.url),
		Credentials: credentials.NewStaticCredentialsProvider(onlyA.AccessKeyID, onlyA.SecretAccessKey, "")})
	if _, err := asOnlyA.DescribeWorkspace(context.Background(), &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(wsA)}); err != nil {
		t.Fatalf("only-a describing A: %v", err)
	}
	if _, err := asOnlyA.DescribeWorkspace(context.Background(), &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(wsB)}); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("only-a describing B: %v", err)
	}

	// writer-a cannot use the control plane at all.
	ctx := context.Background()
	asWriter := amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(r.url),
		Credentials: credentials.NewStaticCredentialsProvider(writerA.AccessKeyID, writerA.SecretAccessKey, "")})
	if _, err := asWriter.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(wsA)}); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("writer-a describing: %v", err)
	}
	if _, err := asWriter.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{}); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("writer-a creating: %v", err)
	}

	// Cross-account: account 222222222222's central user needs a resource policy on A.
	expect("central before the grant", central, wsA, 403, "because no resource-based policy allows")
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"aps:RemoteWrite","Resource":%q}]}`, arnA)
	if _, err := r.client().PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(wsA), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	expect("central after the grant", central, wsA, 204, "")
	expect("central on B", central, wsB, 403, "not authorized")
	asCentral := amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(r.url),
		Credentials: credentials.NewStaticCredentialsProvider(central.AccessKeyID, central.SecretAccessKey, "")})
	if _, err := asCentral.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(wsA)}); err == nil {
		t.Fatal("the grant of RemoteWrite let central describe the workspace")
	}
	// Each account lists its own workspaces.
	l, err := asCentral.ListWorkspaces(ctx, &amp.ListWorkspacesInput{})
	if err == nil && len(l.Workspaces) != 0 {
		t.Fatalf("central lists account 111111111111's workspaces: %+v", l.Workspaces)
	}
	if got := stored(t, r, wsA); len(got[`{__name__="m"}`]) != 3 {
		t.Fatalf("stored in A: %v", got)
	}
	if got := stored(t, r, wsB); len(got) != 0 {
		t.Fatalf("stored in B: %v", got)
	}
}

func TestGeneratedRootKey(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STRATA_ROOT_ACCESS_KEY_ID", "")
	t.Setenv("STRATA_ROOT_SECRET_ACCESS_KEY", "")
	cfg := load(t, "--listen", "127.0.0.1:0", "--data-dir", dir, "--log.level", "error")
	a, err := New(context.Background(), cfg, NewLogger(cfg.Log, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.bkt.Close() }()
	text := a.RootKeyInstructions()
	file := filepath.Join(dir, "root-credentials")
	if !strings.Contains(text, file) || !strings.Contains(text, "export AWS_ACCESS_KEY_ID=") {
		t.Fatalf("instructions: %s", text)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("root key file: %v %v", st, err)
	}
	secret, _ := os.ReadFile(file)
	for _, line := range strings.Split(string(secret), "\n") {
		if v, ok := strings.CutPrefix(line, "aws_secret_access_key = "); ok && strings.Contains(text, v) {
			t.Fatal("the instructions print the secret")
		}
	}
}

// CreateRuleGroupsNamespace is authorized on the namespace its body names, and the body
// authorization reads is the one the handler acts on: a body with anything after its JSON
// value is refused by both, so it cannot be authorized on the workspace while it creates
// the namespace a policy denies.
func TestCreateNamespaceAuthorizedOnTheBodyItActsOn(t *testing.T) {
	dir := t.TempDir()
	ids := filepath.Join(dir, "identities.yaml")
	if err := os.WriteFile(ids, []byte(`
users:
  - name: rules
    access_keys: [{id: AKIDRULESUSER0000001, secret: rules-user-secret-000000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [
          {"Effect": "Allow", "Action": "aps:*", "Resource": "*"},
          {"Effect": "Deny", "Action": "aps:CreateRuleGroupsNamespace", "Resource": "arn:aws:aps:us-east-1:*:rulegroupsnamespace/*/prod*"}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "--data-dir", dir, "--auth.identities-file", ids)
	ws := newWorkspace(t, r)
	rules := &aws.Credentials{AccessKeyID: "AKIDRULESUSER0000001", SecretAccessKey: "rules-user-secret-000000000"}
	data := base64.StdEncoding.EncodeToString([]byte("groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n"))
	create := func(body string) (int, string) {
		t.Helper()
		code, msg, _ := postJSONAs(t, rules, r.url+"/workspaces/"+ws+"/rulegroupsnamespaces", []byte(body))
		return code, msg
	}
	if code, msg := create(`{"name":"prod","data":"` + data + `"}`); code != http.StatusForbidden || !strings.Contains(msg, "rulegroupsnamespace/"+ws+"/prod") {
		t.Fatalf("denied namespace: %d %s", code, msg)
	}
	for _, trailing := range []string{"}", "]", `{"name":"dev"}`} {
		if code, msg := create(`{"name":"prod","data":"` + data + `"}` + trailing); code != http.StatusBadRequest && code != http.StatusForbidden {
			t.Fatalf("denied namespace, body followed by %q: %d %s", trailing, code, msg)
		}
	}
	if _, err := r.client().DescribeRuleGroupsNamespace(context.Background(), &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("prod")}); err == nil {
		t.Fatal("the denied namespace was created")
	}
	if code, msg := create(`{"name":"dev","data":"` + data + `"}`); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("allowed namespace: %d %s", code, msg)
	}
}

// postJSONAs sends a JSON body signed with creds.
func postJSONAs(t *testing.T, creds *aws.Credentials, target string, body []byte) (int, string, http.Header) {
	t.Helper()
	return signedDo(t, creds, http.MethodPost, target, body, http.Header{"Content-Type": {"application/json"}})
}
