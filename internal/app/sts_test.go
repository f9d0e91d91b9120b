package app

// STS through the whole server with aws-sdk-go-v2's own STS client and credential
// providers: AssumeRole (same account, cross-account with an external id, chained,
// with session policies and tags), AssumeRoleWithWebIdentity (the SDK's IRSA provider),
// GetSessionToken and GetCallerIdentity; then the temporary credentials used on AMP's
// APIs, and revoked.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/testutil/oidctest"
)

const (
	stsIssuer = "https://oidc.test.example/cluster"
	stsPrefix = "oidc.test.example/cluster"
)

// stsIdentities is the identities file of the STS tests; %s is the JWKS file, %s the
// revocation line of role prom-writer.
const stsIdentities = `
accounts:
  - id: "222222222222"
policies:
  - name: QueryOnly
    document: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:QueryMetrics", "Resource": "*"}]}
users:
  - name: deployer
    access_keys: [{id: AKIDDEPLOYER00000001, secret: deployer-secret-0000000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "arn:aws:iam::000000000000:role/*"}]}
  - name: stranger
    access_keys: [{id: AKIDSTRANGER00000001, secret: stranger-secret-0000000000}]
  - name: partner
    account: "222222222222"
    access_keys: [{id: AKIDPARTNER000000001, secret: partner-secret-00000000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
roles:
  - name: prom-writer
    max_session_duration: 2h
    tags: {team: obs}
%[2]s
    trust_policy:
      Version: "2012-10-17"
      Statement:
        - {Effect: Allow, Principal: {AWS: "000000000000"}, Action: [sts:AssumeRole, sts:TagSession]}
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: [aps:RemoteWrite, aps:QueryMetrics], Resource: "*"}
          - {Effect: Allow, Action: aps:ListWorkspaces, Resource: "*", Condition: {StringEquals: {"aws:PrincipalTag/env": prod}}}
  - name: cross-reader
    trust_policy:
      Version: "2012-10-17"
      Statement:
        - {Effect: Allow, Principal: {AWS: "222222222222"}, Action: sts:AssumeRole, Condition: {StringEquals: {"sts:ExternalId": the-external-id}}}
    policies: [QueryOnly]
  - name: chained
    trust_policy:
      Version: "2012-10-17"
      Statement:
        - {Effect: Allow, Principal: {AWS: "arn:aws:iam::000000000000:role/prom-writer"}, Action: sts:AssumeRole}
    policies: [QueryOnly]
  - name: irsa
    trust_policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Principal: {Federated: "arn:aws:iam::000000000000:oidc-provider/` + stsPrefix + `"}
          Action: sts:AssumeRoleWithWebIdentity
          Condition:
            StringEquals:
              "` + stsPrefix + `:sub": system:serviceaccount:monitoring:prometheus
              "` + stsPrefix + `:aud": sts.amazonaws.com
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": "*"}]}
  - name: irsa-mfa
    trust_policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Principal: {Federated: "arn:aws:iam::000000000000:oidc-provider/` + stsPrefix + `"}
          Action: [sts:AssumeRoleWithWebIdentity, sts:TagSession]
          Condition:
            ForAnyValue:StringEquals: {"` + stsPrefix + `:amr": mfa}
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:QueryMetrics", "Resource": "*",
          "Condition": {"StringEquals": {"aws:PrincipalTag/team": "blue"}}}]}
oidc_providers:
  - url: ` + stsIssuer + `
    client_ids: [sts.amazonaws.com]
    jwks_file: %[1]s
`

type stsFixture struct {
	r     *running
	dir   string
	ids   string
	jwks  string
	idp   *oidctest.IdP
	ws    string
	users map[string]aws.Credentials
}

func newSTSFixture(t *testing.T) *stsFixture {
	t.Helper()
	f := &stsFixture{dir: t.TempDir(), idp: oidctest.New(t, stsIssuer)}
	f.jwks = f.idp.WriteJWKS(t, f.dir)
	f.ids = filepath.Join(f.dir, "identities.yaml")
	f.writeIdentities(t, "")
	f.r = start(t, "--data-dir", f.dir, "--auth.identities-file", f.ids)
	f.ws = newWorkspace(t, f.r)
	f.users = map[string]aws.Credentials{
		"deployer": {AccessKeyID: "AKIDDEPLOYER00000001", SecretAccessKey: "deployer-secret-0000000000"},
		"stranger": {AccessKeyID: "AKIDSTRANGER00000001", SecretAccessKey: "stranger-secret-0000000000"},
		"partner":  {AccessKeyID: "AKIDPARTNER000000001", SecretAccessKey: "partner-secret-00000000000"},
		"root":     {AccessKeyID: testKeyID, SecretAccessKey: testSecret},
	}
	return f
}

func (f *stsFixture) writeIdentities(t *testing.T, revoke string) {
	t.Helper()
	if revoke != "" {
		revoke = "    revoke_sessions_issued_before: " + revoke
	}
	if err := os.WriteFile(f.ids, []byte(fmt.Sprintf(stsIdentities, f.jwks, revoke)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *stsFixture) sts(creds aws.Credentials) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.r.url),
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)})
}

func (f *stsFixture) assume(t *testing.T, who aws.Credentials, in *sts.AssumeRoleInput) (aws.Credentials, error) {
	t.Helper()
	out, err := f.sts(who).AssumeRole(context.Background(), in)
	if err != nil {
		return aws.Credentials{}, err
	}
	c := out.Credentials
	return aws.Credentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken, Expires: *c.Expiration}, nil
}

// write sends a one-sample remote write signed with creds.
func (f *stsFixture) write(t *testing.T, creds aws.Credentials) (int, string) {
	t.Helper()
	body := encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: ts("sts_test"), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}}})
	code, msg, _ := postAs(t, &creds, rwURL(f.r, f.ws), "application/x-protobuf", body)
	return code, msg
}

func (f *stsFixture) query(t *testing.T, creds aws.Credentials) int {
	t.Helper()
	code, _ := queryAPIAs(t, &creds, f.r, f.ws, "query", url.Values{"query": {"up"}})
	return code
}

func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "not an API error: " + err.Error()
	}
	return ""
}

func TestSTSAssumeRole(t *testing.T) {
	f := newSTSFixture(t)
	ctx := context.Background()
	writer := "arn:aws:iam::000000000000:role/prom-writer"

	creds, err := f.assume(t, f.users["deployer"], &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("deploy-1")})
	if err != nil {
		t.Fatalf("deployer assuming prom-writer: %v", err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "ASIA") || creds.SessionToken == "" || time.Until(creds.Expires) > time.Hour+time.Minute {
		t.Fatalf("credentials %s, expires in %v", creds.AccessKeyID, time.Until(creds.Expires))
	}
	who, err := f.sts(creds).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(who.Arn) != "arn:aws:sts::000000000000:assumed-role/prom-writer/deploy-1" || aws.ToString(who.Account) != "000000000000" ||
		!strings.HasPrefix(aws.ToString(who.UserId), "AROA") || !strings.HasSuffix(aws.ToString(who.UserId), ":deploy-1") {
		t.Fatalf("GetCallerIdentity: %s %s %s", aws.ToString(who.Arn), aws.ToString(who.Account), aws.ToString(who.UserId))
	}
	// The session has the role's permissions: write and query, not the control plane.
	if code, msg := f.write(t, creds); code != 204 {
		t.Fatalf("remote write with session credentials: %d %s", code, msg)
	}
	if code := f.query(t, creds); code != 200 {
		t.Fatalf("query with session credentials: %d", code)
	}
	sessAMP := amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.r.url),
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)})
	if _, err := sessAMP.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(f.ws)}); apiCode(err) != "AccessDeniedException" {
		t.Fatalf("describe with the role's session: %v", err)
	}
	// aws:PrincipalTag comes from session tags: env=prod opens ListWorkspaces.
	if _, err := sessAMP.ListWorkspaces(ctx, &amp.ListWorkspacesInput{}); apiCode(err) != "AccessDeniedException" {
		t.Fatalf("list without the env tag: %v", err)
	}
	tagged, err := f.assume(t, f.users["deployer"], &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("tagged"),
		Tags: []ststypes.Tag{{Key: aws.String("env"), Value: aws.String("prod")}}})
	if err != nil {
		t.Fatal(err)
	}
	taggedAMP := amp.New(amp.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.r.url),
		Credentials: credentials.NewStaticCredentialsProvider(tagged.AccessKeyID, tagged.SecretAccessKey, tagged.SessionToken)})
	if _, err := taggedAMP.ListWorkspaces(ctx, &amp.ListWorkspacesInput{}); err != nil {
		t.Fatalf("list with env=prod session tag: %v", err)
	}

	// A session policy narrows the session to queries.
	narrow, err := f.assume(t, f.users["deployer"], &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("narrow"),
		Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"*"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := f.write(t, narrow); code != 403 {
		t.Fatalf("write with a query-only session policy: %d", code)
	}
	if code := f.query(t, narrow); code != 200 {
		t.Fatalf("query with a query-only session policy: %d", code)
	}
	// Managed session policies by ARN.
	managed, err := f.assume(t, f.users["deployer"], &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("managed"),
		PolicyArns: []ststypes.PolicyDescriptorType{{Arn: aws.String("arn:aws:iam::000000000000:policy/QueryOnly")}}})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := f.write(t, managed); code != 403 {
		t.Fatalf("write with the QueryOnly managed session policy: %d", code)
	}

	for name, tc := range map[string]struct {
		who  string
		in   *sts.AssumeRoleInput
		code string
		msg  string
	}{
		"not trusted":        {"stranger", &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("s1")}, "AccessDenied", "is not authorized to perform: sts:AssumeRole"},
		"no such role":       {"deployer", &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/nope"), RoleSessionName: aws.String("s1")}, "AccessDenied", ""},
		"too long":           {"deployer", &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(7201)}, "ValidationError", "MaxSessionDuration"},
		"too short":          {"deployer", &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(600)}, "ValidationError", "greater than or equal to 900"},
		"bad session name":   {"deployer", &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("a b")}, "ValidationError", "roleSessionName"},
		"bad policy":         {"deployer", &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("s1"), Policy: aws.String(`{"Statement": 3}`)}, "MalformedPolicyDocument", ""},
		"cross, no ext id":   {"partner", &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/cross-reader"), RoleSessionName: aws.String("p1")}, "AccessDenied", ""},
		"cross, wrong ext":   {"partner", &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/cross-reader"), RoleSessionName: aws.String("p1"), ExternalId: aws.String("guessed")}, "AccessDenied", ""},
		"tags without trust": {"partner", &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/cross-reader"), RoleSessionName: aws.String("p1"), ExternalId: aws.String("the-external-id"), Tags: []ststypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}, "AccessDenied", "sts:TagSession"},
	} {
		_, err := f.assume(t, f.users[tc.who], tc.in)
		if errCode(err) != tc.code || !strings.Contains(fmt.Sprint(err), tc.msg) {
			t.Errorf("%s: %v, want %s containing %q", name, err, tc.code, tc.msg)
		}
	}

	// Cross-account with the external id: a session of the role, in the role's account.
	cross, err := f.assume(t, f.users["partner"], &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/cross-reader"),
		RoleSessionName: aws.String("partner-1"), ExternalId: aws.String("the-external-id")})
	if err != nil {
		t.Fatalf("cross-account with the external id: %v", err)
	}
	if code := f.query(t, cross); code != 200 {
		t.Fatalf("cross-account session query: %d", code)
	}
	if code, _ := f.write(t, cross); code != 403 {
		t.Fatalf("cross-account session write: %d", code)
	}

	// Role chaining: an hour at most.
	if _, err := f.assume(t, creds, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/chained"), RoleSessionName: aws.String("c1"), DurationSeconds: aws.Int32(7200)}); errCode(err) != "ValidationError" ||
		!strings.Contains(err.Error(), "role chaining") {
		t.Fatalf("chained for 2h: %v", err)
	}
	chained, err := f.assume(t, creds, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/chained"), RoleSessionName: aws.String("c1")})
	if err != nil {
		t.Fatalf("chained: %v", err)
	}
	if code := f.query(t, chained); code != 200 {
		t.Fatalf("chained session query: %d", code)
	}

	// Tampered or replayed tokens are refused.
	bad := creds
	bad.SessionToken = creds.SessionToken[:len(creds.SessionToken)-2] + "AA"
	if code, msg := f.write(t, bad); code != 403 || !strings.Contains(msg, "security token included in the request is invalid") {
		t.Fatalf("tampered token: %d %s", code, msg)
	}
	replay := narrow
	replay.SessionToken = creds.SessionToken // another session's token with this key
	if code, _ := f.write(t, replay); code != 403 {
		t.Fatalf("a token replayed with another access key: %d", code)
	}
	noToken := creds
	noToken.SessionToken = ""
	if code, _ := f.write(t, noToken); code != 403 {
		t.Fatalf("session key without its token: %d", code)
	}

	// Revoking the role's older sessions denies them at once; later sessions work.
	// Sessions issued before this instant are revoked; one issued at it or later is not.
	f.writeIdentities(t, time.Now().UTC().Format(time.RFC3339Nano))
	bump(t, f.ids)
	if err := f.r.app.auth.Store().Reload(); err != nil {
		t.Fatal(err)
	}
	if code, msg := f.write(t, creds); code != 403 || !strings.Contains(msg, "explicit deny") {
		t.Fatalf("revoked session: %d %s", code, msg)
	}
	fresh, err := f.assume(t, f.users["deployer"], &sts.AssumeRoleInput{RoleArn: aws.String(writer), RoleSessionName: aws.String("after")})
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := f.write(t, fresh); code != 204 {
		t.Fatalf("session issued after the revocation: %d %s", code, msg)
	}
}

// bump moves a file's modification time forward, so that a reload sees the change
// even within the file system's timestamp resolution.
func bump(t *testing.T, path string) {
	t.Helper()
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

func TestSTSGetSessionToken(t *testing.T) {
	f := newSTSFixture(t)
	ctx := context.Background()
	out, err := f.sts(f.users["deployer"]).GetSessionToken(ctx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(7200)})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	if d := time.Until(*c.Expiration); d < 119*time.Minute || d > 121*time.Minute {
		t.Fatalf("user session for %v", d)
	}
	sess := aws.Credentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken}
	who, err := f.sts(sess).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != "arn:aws:iam::000000000000:user/deployer" || !strings.HasPrefix(aws.ToString(who.UserId), "AIDA") {
		t.Fatalf("GetCallerIdentity of a user session: %v %v", who, err)
	}
	if _, err := f.sts(sess).GetSessionToken(ctx, &sts.GetSessionTokenInput{}); errCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "Cannot call GetSessionToken with session credentials") {
		t.Fatalf("GetSessionToken with session credentials: %v", err)
	}
	// The user session may assume a role as the user could.
	if _, err := f.assume(t, sess, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/prom-writer"), RoleSessionName: aws.String("via-session")}); err != nil {
		t.Fatalf("AssumeRole with a user session: %v", err)
	}
	// Root sessions last an hour at most.
	out, err = f.sts(f.users["root"]).GetSessionToken(ctx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(7200)})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(*out.Credentials.Expiration); d > time.Hour+time.Minute {
		t.Fatalf("root session for %v", d)
	}
	root := aws.Credentials{AccessKeyID: *out.Credentials.AccessKeyId, SecretAccessKey: *out.Credentials.SecretAccessKey, SessionToken: *out.Credentials.SessionToken}
	if code, msg := f.write(t, root); code != 204 {
		t.Fatalf("root session write: %d %s", code, msg)
	}
	// A presigned GetCallerIdentity (what EKS-style authenticators hand around).
	pre, err := sts.NewPresignClient(f.sts(f.users["deployer"])).PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(pre.Method, pre.URL, nil)
	for k, vs := range pre.SignedHeader {
		if k != "Host" {
			req.Header[k] = vs
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<Arn>arn:aws:iam::000000000000:user/deployer</Arn>") {
		t.Fatalf("presigned GetCallerIdentity (%s): %d %s", pre.Method, resp.StatusCode, body)
	}
	// Unsigned calls other than AssumeRoleWithWebIdentity are refused.
	anon := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.r.url), Credentials: aws.AnonymousCredentials{}})
	if _, err := anon.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); errCode(err) != "MissingAuthenticationToken" {
		t.Fatalf("anonymous GetCallerIdentity: %v", err)
	}
	bad := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.r.url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDDEPLOYER00000001", "not-the-secret-000000000", "")})
	if _, err := bad.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); errCode(err) != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: %v", err)
	}
	unknown := sts.New(sts.Options{Region: "eu-west-3", BaseEndpoint: aws.String(f.r.url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDNOBODY0000000001", "whatever-secret-0000000", "")})
	if _, err := unknown.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); errCode(err) != "InvalidClientTokenId" {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestSTSWebIdentity(t *testing.T) {
	f := newSTSFixture(t)
	ctx := context.Background()
	role := "arn:aws:iam::000000000000:role/irsa"
	good := oidctest.Claims{"sub": "system:serviceaccount:monitoring:prometheus", "aud": "sts.amazonaws.com"}
	tokenFile := filepath.Join(f.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(f.idp.Token(t, good)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The SDK's own web identity provider, as IRSA pods use it.
	client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.r.url)})
	prov := stscreds.NewWebIdentityRoleProvider(client, role, stscreds.IdentityTokenFile(tokenFile),
		func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = "prometheus-0" })
	got, err := prov.Retrieve(ctx)
	if err != nil {
		t.Fatalf("web identity: %v", err)
	}
	creds := aws.Credentials{AccessKeyID: got.AccessKeyID, SecretAccessKey: got.SecretAccessKey, SessionToken: got.SessionToken}
	if code, msg := f.write(t, creds); code != 204 {
		t.Fatalf("remote write with web identity credentials: %d %s", code, msg)
	}
	if code := f.query(t, creds); code != 403 {
		t.Fatalf("query with write-only web identity credentials: %d", code)
	}
	who, err := f.sts(creds).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != "arn:aws:sts::000000000000:assumed-role/irsa/prometheus-0" {
		t.Fatalf("GetCallerIdentity: %v %v", who, err)
	}
	// The same token again (the SDK rereads the same file on refresh).
	if _, err := prov.Retrieve(ctx); err != nil {
		t.Fatalf("token reused: %v", err)
	}
	out, err := client.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(role),
		RoleSessionName: aws.String("direct"), WebIdentityToken: aws.String(f.idp.Token(t, good))})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.SubjectFromWebIdentityToken) != good["sub"] || aws.ToString(out.Audience) != "sts.amazonaws.com" ||
		aws.ToString(out.Provider) != "arn:aws:iam::000000000000:oidc-provider/"+stsPrefix {
		t.Fatalf("answer: %+v", out)
	}

	// amr is multi-valued (ForAnyValue), and the token's session tags become
	// aws:PrincipalTag (with sts:TagSession in the trust policy).
	mfa := good.With(oidctest.Claims{"amr": []string{"pwd", "mfa"},
		"https://aws.amazon.com/tags": map[string]any{"principal_tags": map[string][]string{"team": {"blue"}}}})
	out2, err := client.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/irsa-mfa"),
		RoleSessionName: aws.String("mfa"), WebIdentityToken: aws.String(f.idp.Token(t, mfa))})
	if err != nil {
		t.Fatalf("amr contains mfa: %v", err)
	}
	tagged := aws.Credentials{AccessKeyID: *out2.Credentials.AccessKeyId, SecretAccessKey: *out2.Credentials.SecretAccessKey, SessionToken: *out2.Credentials.SessionToken}
	if code := f.query(t, tagged); code != 200 {
		t.Fatalf("query with the token's team=blue session tag: %d", code)
	}
	if _, err := client.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/irsa-mfa"),
		RoleSessionName: aws.String("nomfa"), WebIdentityToken: aws.String(f.idp.Token(t, good.With(oidctest.Claims{"amr": []string{"pwd"}})))}); errCode(err) != "AccessDenied" {
		t.Fatalf("amr without mfa: %v", err)
	}

	other := oidctest.New(t, "https://elsewhere.example")
	for name, tc := range map[string]struct {
		token string
		code  string
	}{
		"expired":        {f.idp.Token(t, good.With(oidctest.Claims{"exp": time.Now().Add(-time.Minute).Unix()})), "ExpiredTokenException"},
		"wrong audience": {f.idp.Token(t, good.With(oidctest.Claims{"aud": "another-client"})), "InvalidIdentityToken"},
		"wrong issuer":   {other.Token(t, good), "InvalidIdentityToken"},
		"forged":         {f.idp.TokenSignedBy(t, other, good), "InvalidIdentityToken"},
		"tampered":       {oidctest.Tamper(f.idp.Token(t, good)), "InvalidIdentityToken"},
		"wrong subject":  {f.idp.Token(t, good.With(oidctest.Claims{"sub": "system:serviceaccount:default:intruder"})), "AccessDenied"},
	} {
		_, err := client.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(role),
			RoleSessionName: aws.String("x1"), WebIdentityToken: aws.String(tc.token)})
		if errCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
}

// STS calls are audited like the control plane: who assumed which role, and refusals.
func TestSTSAudited(t *testing.T) {
	f := &stsFixture{dir: t.TempDir(), idp: oidctest.New(t, stsIssuer)}
	f.jwks = f.idp.WriteJWKS(t, f.dir)
	f.ids = filepath.Join(f.dir, "identities.yaml")
	f.writeIdentities(t, "")
	auditFile := filepath.Join(f.dir, "audit.log")
	f.r = start(t, "--data-dir", f.dir, "--auth.identities-file", f.ids, "--auth.audit-log", auditFile)
	deployer := aws.Credentials{AccessKeyID: "AKIDDEPLOYER00000001", SecretAccessKey: "deployer-secret-0000000000"}
	stranger := aws.Credentials{AccessKeyID: "AKIDSTRANGER00000001", SecretAccessKey: "stranger-secret-0000000000"}
	role := "arn:aws:iam::000000000000:role/prom-writer"
	if _, err := f.assume(t, deployer, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("audited")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.assume(t, stranger, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("refused")}); err == nil {
		t.Fatal("stranger assumed the role")
	}
	f.r.stop() // flushes and closes the audit log
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	var allowed, denied bool
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if rec["action"] != "sts:AssumeRole" || rec["resource"] != role {
			continue
		}
		switch {
		case rec["outcome"] == "allowed" && rec["principal_arn"] == "arn:aws:iam::000000000000:user/deployer" && rec["access_key_id"] == "AKIDDEPLOYER00000001":
			allowed = true
		case rec["outcome"] == "denied" && rec["principal_arn"] == "arn:aws:iam::000000000000:user/stranger" && rec["error_code"] == "AccessDenied":
			denied = true
		}
	}
	if !allowed || !denied {
		t.Fatalf("audit log lacks the AssumeRole records (allowed %v, denied %v):\n%s", allowed, denied, b)
	}
}
