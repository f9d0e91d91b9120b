package auth

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/auth/sigv4"
	"github.com/stratametrics/strata/internal/awsapi"
)

// Policy evaluation end to end: requests signed by aws-sdk-go-v2's signer,
// over a real HTTP server, through Wrap, to a handler.
func TestAuthorization(t *testing.T) {
	h := newHarness(t)
	const (
		queryA  = "/workspaces/ws-a/api/v1/query?query=up"
		queryB  = "/workspaces/ws-b/api/v1/query?query=up"
		writeA  = "/workspaces/ws-a/api/v1/remote_write"
		writeB  = "/workspaces/ws-b/api/v1/remote_write"
		descA   = "/workspaces/ws-a"
		list    = "/workspaces"
		denyMsg = " is not authorized to perform: "
	)
	body := []byte("snappy-compressed remote write payload")
	tests := []struct {
		name, user, method, path string
		wantStatus               int
		wantMsg                  string // for denials: the message, exactly
	}{
		{name: "admin lists workspaces", user: "admin", method: "GET", path: list, wantStatus: 200},
		{name: "admin creates a workspace", user: "admin", method: "POST", path: list, wantStatus: 202},
		{name: "admin describes", user: "admin", method: "GET", path: descA, wantStatus: 200},
		{name: "admin writes", user: "admin", method: "POST", path: writeB, wantStatus: 200},
		{name: "secret from a secret_file", user: "filesecret", method: "GET", path: list, wantStatus: 200},
		{name: "root of another account lists", user: "rootB", method: "GET", path: list, wantStatus: 200},

		{name: "reader queries A", user: "reader", method: "GET", path: queryA, wantStatus: 200},
		{name: "reader queries A by POST", user: "reader", method: "POST", path: "/workspaces/ws-a/api/v1/query", wantStatus: 200},
		{name: "reader cannot query B", user: "reader", method: "GET", path: queryB, wantStatus: 403,
			wantMsg: "User: arn:aws:iam::111111111111:user/reader is not authorized to perform: aps:QueryMetrics on resource: " +
				wsARN(acctA, "ws-b") + " because no identity-based policy allows the aps:QueryMetrics action"},
		{name: "reader cannot write A", user: "reader", method: "POST", path: writeA, wantStatus: 403,
			wantMsg: "User: arn:aws:iam::111111111111:user/reader is not authorized to perform: aps:RemoteWrite on resource: " +
				wsARN(acctA, "ws-a") + " because no identity-based policy allows the aps:RemoteWrite action"},
		{name: "reader cannot describe A", user: "reader", method: "GET", path: descA, wantStatus: 403,
			wantMsg: "User: arn:aws:iam::111111111111:user/reader is not authorized to perform: aps:DescribeWorkspace on resource: " +
				wsARN(acctA, "ws-a") + " because no identity-based policy allows the aps:DescribeWorkspace action"},
		{name: "reader cannot list", user: "reader", method: "GET", path: list, wantStatus: 403,
			wantMsg: "User: arn:aws:iam::111111111111:user/reader is not authorized to perform: aps:ListWorkspaces on resource: * " +
				"because no identity-based policy allows the aps:ListWorkspaces action"},
		{name: "no policy, no access", user: "nopolicy", method: "GET", path: list, wantStatus: 403},

		{name: "explicit deny beats allow", user: "denied", method: "POST", path: writeA, wantStatus: 403,
			wantMsg: "User: arn:aws:iam::111111111111:user/denied is not authorized to perform: aps:RemoteWrite on resource: " +
				wsARN(acctA, "ws-a") + " with an explicit deny in an identity-based policy"},
		{name: "the deny is narrow", user: "denied", method: "POST", path: writeB, wantStatus: 200},
		{name: "the deny is only for writes", user: "denied", method: "GET", path: queryA, wantStatus: 200},

		{name: "cross-account: identity and resource policy", user: "xacct", method: "POST", path: writeA, wantStatus: 200},
		{name: "cross-account: no resource policy grant", user: "xacct", method: "POST", path: writeB, wantStatus: 403,
			wantMsg: "User: arn:aws:iam::222222222222:user/xacct is not authorized to perform: aps:RemoteWrite on resource: " +
				wsARN(acctA, "ws-b") + " because no resource-based policy allows the aps:RemoteWrite action"},
		{name: "cross-account: resource policy but no identity policy", user: "xacctnoid", method: "POST", path: writeA, wantStatus: 403,
			wantMsg: "User: arn:aws:iam::222222222222:user/xacctnoid is not authorized to perform: aps:RemoteWrite on resource: " +
				wsARN(acctA, "ws-a") + " because no identity-based policy allows the aps:RemoteWrite action"},
		{name: "cross-account: only the granted action", user: "xacct", method: "GET", path: queryA, wantStatus: 403},
		{name: "root of another account is not root here", user: "rootB", method: "GET", path: queryA, wantStatus: 403},

		{name: "aws:SourceIp matches loopback", user: "ipuser", method: "GET", path: queryB, wantStatus: 200},
		{name: "aws:SourceIp does not match", user: "ipother", method: "GET", path: queryB, wantStatus: 403},

		{name: "aws:ResourceTag matches", user: "taguser", method: "GET", path: descA, wantStatus: 200},
		{name: "aws:ResourceTag differs", user: "taguser", method: "GET", path: "/workspaces/ws-b", wantStatus: 403},
		{name: "aws:ResourceTag absent on *", user: "taguser", method: "GET", path: list, wantStatus: 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.calls.Load()
			var b []byte
			if tc.method == "POST" {
				b = body
			}
			resp := h.call(tc.user, tc.method, tc.path, b)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d (%s %s), want %d", resp.status, resp.errorType(), resp.body, tc.wantStatus)
			}
			called := h.calls.Load() != before
			if tc.wantStatus == 403 {
				if called {
					t.Error("handler called for a denied request")
				}
				if got := resp.errorType(); got != "AccessDeniedException" {
					t.Errorf("x-amzn-ErrorType %q", got)
				}
				msg := resp.message(t)
				if !strings.Contains(msg, denyMsg) {
					t.Errorf("message %q", msg)
				}
				if tc.wantMsg != "" && msg != tc.wantMsg {
					t.Errorf("message\n %q\nwant\n %q", msg, tc.wantMsg)
				}
				return
			}
			if !called {
				t.Fatal("handler not called")
			}
			seen := h.last()
			creds := testKeys[tc.user]
			p, _, _ := h.auth.Store().LookupCredential(context.Background(), creds.AccessKeyID)
			if seen.principal != p.Principal.(*Principal) {
				t.Errorf("handler saw principal %v", seen.principal)
			}
			if !bytes.Equal(seen.body, b) {
				t.Errorf("handler read body %q, want %q", seen.body, b)
			}
		})
	}
}

func TestPrincipalARNs(t *testing.T) {
	h := newHarness(t)
	for user, want := range map[string]struct{ arn, acct, typ string }{
		"admin": {"arn:aws:iam::111111111111:user/admin", acctA, policy.PrincipalTypeUser},
		"xacct": {"arn:aws:iam::222222222222:user/xacct", acctB, policy.PrincipalTypeUser},
		"rootB": {"arn:aws:iam::222222222222:root", acctB, policy.PrincipalTypeAccount},
	} {
		c, ok, err := h.auth.Store().LookupCredential(context.Background(), testKeys[user].AccessKeyID)
		if err != nil || !ok {
			t.Fatalf("%s: lookup %v %v", user, ok, err)
		}
		if c.SecretAccessKey != testKeys[user].SecretAccessKey {
			t.Errorf("%s: wrong secret", user)
		}
		p := c.Principal.(*Principal)
		if p.ARN != want.arn || p.AccountID != want.acct || p.Type != want.typ || p.IsRoot() != (want.typ == policy.PrincipalTypeAccount) {
			t.Errorf("%s: principal %+v", user, p)
		}
	}
}

// A resource policy that denies wins over the admin's Allow, and the
// message says the deny came from a resource-based policy.
func TestResourcePolicyDeny(t *testing.T) {
	h := newHarness(t)
	deny, err := policy.ParseResourcePolicy([]byte(`{"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
		"Principal": "*", "Action": "aps:DeleteWorkspace", "Resource": "*"}, {"Effect": "Deny",
		"Principal": {"AWS": "111111111111"}, "Action": "aps:QueryMetrics", "Resource": "*"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	h.res.mu.Lock()
	h.res.policies[wsARN(acctA, "ws-b")] = deny
	h.res.mu.Unlock()
	resp := h.call("admin", "GET", "/workspaces/ws-b/api/v1/query?query=up", nil)
	if resp.status != 403 || !strings.HasSuffix(resp.message(t), "with an explicit deny in a resource-based policy") {
		t.Fatalf("got %d %s", resp.status, resp.body)
	}
	if resp := h.call("admin", "GET", "/workspaces/ws-b", nil); resp.status != 200 {
		t.Fatalf("describe: %d %s", resp.status, resp.body)
	}
}

// aws:PrincipalAccount and aws:PrincipalArn come from the verified
// principal, so a resource policy can grant by them.
func TestPrincipalConditionKeys(t *testing.T) {
	h := newHarness(t)
	grant := func(cond string) *policy.Policy {
		p, err := policy.ParseResourcePolicy([]byte(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
			"Principal": "*", "Action": "aps:RemoteWrite", "Resource": "*", "Condition": ` + cond + `}]}`))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	h.res.mu.Lock()
	h.res.policies[wsARN(acctA, "ws-c")] = grant(`{"StringEquals": {"aws:PrincipalAccount": "222222222222"}, "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::222222222222:user/xacct*"}}`)
	h.res.policies[wsARN(acctA, "ws-d")] = grant(`{"StringEquals": {"aws:PrincipalAccount": "333333333333"}}`)
	h.res.mu.Unlock()
	if resp := h.call("xacct", "POST", "/workspaces/ws-c/api/v1/remote_write", []byte("x")); resp.status != 200 {
		t.Errorf("matching account and ARN: %d %s", resp.status, resp.body)
	}
	if resp := h.call("xacct", "POST", "/workspaces/ws-d/api/v1/remote_write", []byte("x")); resp.status != 403 {
		t.Errorf("other account: %d %s", resp.status, resp.body)
	}
}

// aws:SecureTransport is true only for requests that arrived over TLS.
func TestSecureTransport(t *testing.T) {
	h := newHarness(t)
	if resp := h.call("tlsonly", "GET", "/workspaces", nil); resp.status != 403 {
		t.Fatalf("plain HTTP: %d %s", resp.status, resp.body)
	}
	srv := httptest.NewTLSServer(h.handler)
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	r, err := http.NewRequest("GET", srv.URL+"/workspaces", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.sign(r, testKeys["tlsonly"], nil)
	resp, err := client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("TLS: %d", resp.StatusCode)
	}
}

// Temporary credentials (from STS, later) map their failures through the
// same path: ExpiredTokenException and a missing token.
func TestTemporaryCredentialRejections(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC().Truncate(time.Second)
	h.setClock(now)
	p, _ := h.auth.Store().Identities().User("arn:aws:iam::111111111111:user/admin")
	v, err := sigv4.New(sigv4.Config{Region: testRegion}, sigv4.StaticCredentials{
		"ASIDEXPIRED00000001": {SecretAccessKey: "expiredSECRET/+000000001", SessionToken: "token-1", Expires: now.Add(-time.Second), Principal: p},
		"ASIDVALID0000000001": {SecretAccessKey: "validtmpSECRET/+00000001", SessionToken: "token-2", Expires: now.Add(time.Hour), Principal: p},
	}, h.now)
	if err != nil {
		t.Fatal(err)
	}
	h.auth.verifier = v // no request is in flight
	for _, tc := range []struct {
		name   string
		creds  aws.Credentials
		status int
		code   string
	}{
		{"expired", aws.Credentials{AccessKeyID: "ASIDEXPIRED00000001", SecretAccessKey: "expiredSECRET/+000000001", SessionToken: "token-1"}, 403, "ExpiredTokenException"},
		{"no token", aws.Credentials{AccessKeyID: "ASIDVALID0000000001", SecretAccessKey: "validtmpSECRET/+00000001"}, 403, "UnrecognizedClientException"},
		{"other token", aws.Credentials{AccessKeyID: "ASIDVALID0000000001", SecretAccessKey: "validtmpSECRET/+00000001", SessionToken: "token-x"}, 403, "UnrecognizedClientException"},
		{"valid", aws.Credentials{AccessKeyID: "ASIDVALID0000000001", SecretAccessKey: "validtmpSECRET/+00000001", SessionToken: "token-2"}, 200, ""},
	} {
		before := h.calls.Load()
		resp := h.do(h.sign(h.newRequest("GET", "/workspaces", nil), tc.creds, nil))
		if resp.status != tc.status || resp.errorType() != tc.code {
			t.Errorf("%s: %d %q %s", tc.name, resp.status, resp.errorType(), resp.body)
		}
		if (h.calls.Load() != before) != (tc.status == 200) {
			t.Errorf("%s: handler calls", tc.name)
		}
	}
}

// A failing ResourceInfo is a 500 and the handler is not called.
func TestResourceInfoFailure(t *testing.T) {
	h := newHarness(t)
	h.res.mu.Lock()
	h.res.err = errors.New("metadata store unavailable")
	h.res.mu.Unlock()
	resp := h.call("admin", "GET", "/workspaces/ws-a", nil)
	if resp.status != 500 || resp.errorType() != awsapi.InternalServerException || h.calls.Load() != 0 {
		t.Fatalf("got %d %s, calls %d", resp.status, resp.body, h.calls.Load())
	}
	// "*" resources do not consult it.
	if resp := h.call("admin", "GET", "/workspaces", nil); resp.status != 200 {
		t.Fatalf("list: %d %s", resp.status, resp.body)
	}
	recs := h.auditRecords()
	if got := recs[0]["outcome"]; got != OutcomeError {
		t.Errorf("outcome %v", got)
	}
}

// aws:CurrentTime comes from the injected clock.
func TestCurrentTimeCondition(t *testing.T) {
	dir := t.TempDir()
	idFile := filepath.Join(dir, "ids.yaml")
	writeFile(t, idFile, `
users:
  - name: office-hours
    access_keys: [{id: AKIDOFFICEHOURS0001, secret: "officehoursSECRET/+0000001"}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: "aps:ListWorkspaces"
            Resource: "*"
            Condition: {DateLessThan: {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}
`)
	h2 := newHarness(t, func(c *Config, _ *Env) { c.IdentitiesFile = idFile })
	creds := aws.Credentials{AccessKeyID: "AKIDOFFICEHOURS0001", SecretAccessKey: "officehoursSECRET/+0000001"}
	h2.setClock(time.Date(2029, 12, 31, 23, 0, 0, 0, time.UTC))
	if resp := h2.do(h2.sign(h2.newRequest("GET", "/workspaces", nil), creds, nil)); resp.status != 200 {
		t.Fatalf("before: %d %s", resp.status, resp.body)
	}
	h2.setClock(time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC))
	if resp := h2.do(h2.sign(h2.newRequest("GET", "/workspaces", nil), creds, nil)); resp.status != 403 {
		t.Fatalf("after: %d %s", resp.status, resp.body)
	}
}

// Every way SigV4 verification can fail reaches the client as AWS answers
// it, and the handler never runs.
func TestSignatureRejections(t *testing.T) {
	h := newHarness(t)
	admin := testKeys["admin"]
	now := time.Now().UTC().Truncate(time.Second)
	h.setClock(now)
	body := []byte("remote write body")
	const path = "/workspaces/ws-a/api/v1/remote_write"

	signed := func(mutate func(r *http.Request)) *http.Request {
		r := h.newRequest("POST", path, body)
		h.sign(r, admin, body)
		if mutate != nil {
			mutate(r)
		}
		return r
	}
	editAuthz := func(old, new string) func(r *http.Request) {
		return func(r *http.Request) {
			a := r.Header.Get("Authorization")
			if !strings.Contains(a, old) {
				t.Fatalf("Authorization %q lacks %q", a, old)
			}
			r.Header.Set("Authorization", strings.Replace(a, old, new, 1))
		}
	}
	tests := []struct {
		name    string
		req     func() *http.Request
		status  int
		code    string
		msgHas  string
		noAudit bool
	}{
		{name: "no authentication", status: 403, code: "MissingAuthenticationTokenException", msgHas: "Missing Authentication Token",
			req: func() *http.Request { return h.newRequest("POST", path, body) }},
		{name: "malformed Authorization", status: 400, code: "IncompleteSignatureException", msgHas: "'Signature'",
			req: func() *http.Request {
				r := h.newRequest("POST", path, body)
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDADMIN0000000001/20250101/us-east-1/aps/aws4_request, SignedHeaders=host")
				r.Header.Set("X-Amz-Date", "20250101T000000Z")
				return r
			}},
		{name: "unsupported algorithm", status: 400, code: "IncompleteSignatureException", msgHas: "AWS4-ECDSA-P256-SHA256",
			req: func() *http.Request { return signed(editAuthz("AWS4-HMAC-SHA256 ", "AWS4-ECDSA-P256-SHA256 ")) }},
		{name: "host not signed", status: 400, code: "IncompleteSignatureException", msgHas: "'Host'",
			req: func() *http.Request { return signed(editAuthz(";host;", ";")) }},
		{name: "malformed query", status: 400, code: "MalformedQueryString", msgHas: "percent-encoding",
			req: func() *http.Request {
				// After signing: the SDK's signer would drop the bad pair.
				return signed(func(r *http.Request) { r.URL.RawQuery = "x=%zz" })
			}},
		{name: "wrong region", status: 403, code: "InvalidSignatureException", msgHas: "not 'eu-west-1'",
			req: func() *http.Request {
				r := h.newRequest("POST", path, body)
				signAt(t, r, admin, hexSHA256(body), "aps", "eu-west-1", now)
				return r
			}},
		{name: "wrong service", status: 403, code: "InvalidSignatureException", msgHas: "'aps'",
			req: func() *http.Request {
				r := h.newRequest("POST", path, body)
				signAt(t, r, admin, hexSHA256(body), "execute-api", testRegion, now)
				return r
			}},
		{name: "scope date is not the request date", status: 403, code: "InvalidSignatureException", msgHas: "Date in Credential scope",
			req: func() *http.Request {
				return signed(editAuthz("/"+now.Format("20060102")+"/", "/"+now.AddDate(0, 0, -1).Format("20060102")+"/"))
			}},
		{name: "signed too long ago", status: 403, code: "InvalidSignatureException", msgHas: "Signature expired",
			req: func() *http.Request {
				r := h.newRequest("POST", path, body)
				signAt(t, r, admin, hexSHA256(body), "aps", testRegion, now.Add(-6*time.Minute))
				return r
			}},
		{name: "signed in the future", status: 403, code: "InvalidSignatureException", msgHas: "not yet current",
			req: func() *http.Request {
				r := h.newRequest("POST", path, body)
				signAt(t, r, admin, hexSHA256(body), "aps", testRegion, now.Add(6*time.Minute))
				return r
			}},
		{name: "presigned URL expired", status: 403, code: "InvalidSignatureException", msgHas: "Request has expired",
			req: func() *http.Request { return h.presign("/workspaces", admin, time.Minute, now.Add(-2*time.Minute)) }},
		{name: "unknown access key", status: 403, code: "UnrecognizedClientException", msgHas: "not known",
			req: func() *http.Request {
				r := h.newRequest("POST", path, body)
				signAt(t, r, aws.Credentials{AccessKeyID: "AKIDNOBODY000000001", SecretAccessKey: "whatever/whatever/whatever"}, hexSHA256(body), "aps", testRegion, now)
				return r
			}},
		{name: "session token with a long-term key", status: 403, code: "UnrecognizedClientException", msgHas: "long-term",
			req: func() *http.Request {
				r := h.newRequest("POST", path, body)
				c := admin
				c.SessionToken = "IQoJb3JpZ2luX2VjEXAMPLETOKEN"
				signAt(t, r, c, hexSHA256(body), "aps", testRegion, now)
				return r
			}},
		{name: "signed header missing", status: 403, code: "InvalidSignatureException", msgHas: "'x-strata-test'",
			req: func() *http.Request {
				r := h.newRequest("POST", path, body)
				r.Header.Set("X-Strata-Test", "1")
				h.sign(r, admin, body)
				r.Header.Del("X-Strata-Test")
				return r
			}},
		{name: "body altered after signing, with x-amz-content-sha256", status: 403, code: "InvalidSignatureException", msgHas: "x-amz-content-sha256",
			req: func() *http.Request {
				r := h.newRequest("POST", path, []byte("remote write BODY"))
				r.Header.Set("X-Amz-Content-Sha256", hexSHA256(body))
				return h.sign(r, admin, body)
			}},
		{name: "body altered after signing", status: 403, code: "InvalidSignatureException", msgHas: "signature we calculated does not match",
			req: func() *http.Request {
				return h.sign(h.newRequest("POST", path, []byte("remote write BODY")), admin, body)
			}},
		{name: "wrong secret", status: 403, code: "InvalidSignatureException", msgHas: "signature we calculated does not match",
			req: func() *http.Request {
				c := admin
				c.SecretAccessKey = "notTheAdminSecret/+000000001"
				return h.sign(h.newRequest("POST", path, body), c, body)
			}},
		{name: "path changed after signing", status: 403, code: "InvalidSignatureException", msgHas: "signature we calculated does not match",
			req: func() *http.Request {
				return signed(func(r *http.Request) { r.URL.Path = "/workspaces/ws-b/api/v1/remote_write" })
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.calls.Load()
			resp := h.do(tc.req())
			if resp.status != tc.status || resp.errorType() != tc.code {
				t.Fatalf("got %d %q (%s), want %d %s", resp.status, resp.errorType(), resp.body, tc.status, tc.code)
			}
			if msg := resp.message(t); !strings.Contains(msg, tc.msgHas) {
				t.Errorf("message %q lacks %q", msg, tc.msgHas)
			}
			if h.calls.Load() != before {
				t.Error("handler called")
			}
		})
	}
	for _, rec := range h.auditRecords() {
		if rec["outcome"] != OutcomeUnauthenticated || rec["principal_arn"] != "" {
			t.Errorf("audit record %v", rec)
		}
	}
	if got := h.counter("strata_auth_requests_total", "outcome", OutcomeUnauthenticated); got != float64(len(tests)) {
		t.Errorf("unauthenticated requests counted %v, want %d", got, len(tests))
	}
}

func TestPresigned(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC().Truncate(time.Second)
	h.setClock(now)
	resp := h.do(h.presign("/workspaces", testKeys["admin"], 5*time.Minute, now.Add(-time.Minute)))
	if resp.status != 200 {
		t.Fatalf("presigned: %d %s", resp.status, resp.body)
	}
	if p := h.last().principal; p == nil || p.Name != "admin" {
		t.Fatalf("principal %v", p)
	}
	// The audit log holds neither the query string nor the signature.
	log := h.audit.String()
	for _, s := range []string{"X-Amz-Signature", "X-Amz-Credential", "Signature"} {
		if strings.Contains(log, s) {
			t.Errorf("audit log contains %q: %s", s, log)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Env) { c.MaxBodyBytes = 1024 })
	admin := testKeys["admin"]
	const path = "/workspaces/ws-a/api/v1/remote_write"

	exact := bytes.Repeat([]byte("x"), 1024)
	if resp := h.call("admin", "POST", path, exact); resp.status != 200 {
		t.Fatalf("body at the limit: %d %s", resp.status, resp.body)
	}
	if got := h.last().body; !bytes.Equal(got, exact) {
		t.Fatalf("handler read %d bytes", len(got))
	}

	big := bytes.Repeat([]byte("x"), 1025)
	calls := h.calls.Load()
	resp := h.call("admin", "POST", path, big)
	if resp.status != http.StatusRequestEntityTooLarge || resp.errorType() != RequestEntityTooLargeException {
		t.Fatalf("over the limit: %d %q %s", resp.status, resp.errorType(), resp.body)
	}
	if !strings.Contains(resp.message(t), "1024 bytes") {
		t.Errorf("message %q", resp.message(t))
	}
	// Without Content-Length (chunked), the limit holds too.
	r := h.newRequest("POST", path, nil)
	r.Body = readerOnly{bytes.NewReader(big)}
	r.ContentLength = -1
	h.sign(r, admin, big)
	r.Body = readerOnly{bytes.NewReader(big)}
	if resp := h.do(r); resp.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked over the limit: %d %s", resp.status, resp.body)
	}
	if h.calls.Load() != calls {
		t.Error("handler called for a body over the limit")
	}
}

type readerOnly struct{ r *bytes.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }
func (r readerOnly) Close() error               { return nil }

// The handler gets the whole body even when the client streams it.
func TestChunkedBody(t *testing.T) {
	h := newHarness(t)
	body := bytes.Repeat([]byte("0123456789"), 10000)
	r := h.newRequest("POST", "/workspaces/ws-a/api/v1/remote_write", nil)
	r.ContentLength = -1
	h.sign(r, testKeys["admin"], body)
	r.Body = readerOnly{bytes.NewReader(body)}
	if resp := h.do(r); resp.status != 200 {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if !bytes.Equal(h.last().body, body) {
		t.Fatal("handler read another body")
	}
}

func TestAuditLog(t *testing.T) {
	h := newHarness(t)
	ua := "aws-sdk-go-v2/test strata-auth-test"
	send := func(user, method, path string) {
		r := h.newRequest(method, path, nil)
		r.Header.Set("User-Agent", ua)
		if user != "" {
			h.sign(r, testKeys[user], nil)
		}
		h.do(r)
	}
	send("admin", "GET", "/workspaces")
	send("reader", "GET", "/workspaces/ws-b")
	send("", "GET", "/workspaces")
	send("admin", "GET", "/workspaces/ws-missing")
	send("reader", "GET", "/workspaces/ws-a/api/v1/query?query=up")

	recs := h.auditRecords()
	if len(recs) != 5 {
		t.Fatalf("%d audit records, want 5:\n%s", len(recs), h.audit.String())
	}
	fields := []string{"time", "request_id", "principal_arn", "account_id", "access_key_id", "source_ip", "user_agent",
		"method", "path", "action", "resource", "data_plane", "outcome", "status", "error_code"}
	for i, rec := range recs {
		for _, f := range fields {
			if _, ok := rec[f]; !ok {
				t.Errorf("record %d lacks %q: %v", i, f, rec)
			}
		}
		ts, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
		if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute {
			t.Errorf("record %d time %v: %v", i, rec["time"], err)
		}
		if id, _ := rec["request_id"].(string); len(id) != 36 {
			t.Errorf("record %d request_id %q", i, id)
		}
		if rec["user_agent"] != ua || rec["source_ip"] != "127.0.0.1" {
			t.Errorf("record %d user_agent/source_ip: %v %v", i, rec["user_agent"], rec["source_ip"])
		}
	}
	check := func(i int, want map[string]any) {
		t.Helper()
		for k, v := range want {
			if recs[i][k] != v {
				t.Errorf("record %d: %s = %v, want %v", i, k, recs[i][k], v)
			}
		}
	}
	check(0, map[string]any{"outcome": "allowed", "status": 200.0, "error_code": "", "action": "aps:ListWorkspaces", "resource": "*",
		"principal_arn": "arn:aws:iam::111111111111:user/admin", "account_id": acctA, "access_key_id": "AKIDADMIN0000000001",
		"method": "GET", "path": "/workspaces", "data_plane": false})
	check(1, map[string]any{"outcome": "denied", "status": 403.0, "error_code": "AccessDeniedException", "action": "aps:DescribeWorkspace",
		"resource": wsARN(acctA, "ws-b"), "principal_arn": "arn:aws:iam::111111111111:user/reader"})
	check(2, map[string]any{"outcome": "unauthenticated", "status": 403.0, "error_code": "MissingAuthenticationTokenException",
		"principal_arn": "", "account_id": "", "error_message": "Missing Authentication Token"})
	check(3, map[string]any{"outcome": "allowed", "status": 404.0, "error_code": "ResourceNotFoundException"})
	check(4, map[string]any{"outcome": "allowed", "status": 200.0, "data_plane": true, "action": "aps:QueryMetrics",
		"path": "/workspaces/ws-a/api/v1/query"})
	if d, _ := recs[4]["decision"].(string); !strings.Contains(d, "reader/inline-0") {
		t.Errorf("decision %q does not name the policy", d)
	}
	if d, _ := recs[1]["decision"].(string); !strings.HasPrefix(d, "ImplicitDeny") {
		t.Errorf("decision %q", d)
	}
	assertNoSecrets(t, h.audit.String())
	assertNoSecrets(t, h.logs.String())
}

func assertNoSecrets(t *testing.T, s string) {
	t.Helper()
	for name, c := range testKeys {
		if strings.Contains(s, c.SecretAccessKey) {
			t.Errorf("the secret of %s appears in:\n%s", name, s)
		}
	}
	for _, bad := range []string{"AWS4-HMAC-SHA256", "Signature=", "Authorization"} {
		if strings.Contains(s, bad) {
			t.Errorf("%q appears in:\n%s", bad, s)
		}
	}
}

// Data-plane requests are audited only when asked for.
func TestAuditDataPlaneFlag(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Env) { c.AuditDataPlane = false })
	h.call("admin", "GET", "/workspaces/ws-a/api/v1/query?query=up", nil)
	h.call("admin", "POST", "/workspaces/ws-a/api/v1/remote_write", []byte("x"))
	h.call("admin", "GET", "/workspaces/ws-a", nil)
	recs := h.auditRecords()
	if len(recs) != 1 || recs[0]["action"] != "aps:DescribeWorkspace" {
		t.Fatalf("records %v", recs)
	}
}

// Concurrent requests write whole lines to an audit file created 0600.
func TestAuditFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	h := newHarness(t, func(c *Config, _ *Env) { c.AuditLog = path })
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			user := "admin"
			if i%2 == 1 {
				user = "reader"
			}
			r := h.newRequest("POST", "/workspaces/ws-a/api/v1/query", []byte("query=up"))
			r.Header.Set("User-Agent", strings.Repeat("long user agent ", 20))
			h.sign(r, testKeys[user], []byte("query=up"))
			resp, err := h.client.Do(r)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}(i)
	}
	wg.Wait()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if recs := parseAudit(t, string(data)); len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	assertNoSecrets(t, string(data))
}

// X-Forwarded-For names the client only behind a trusted proxy.
func TestSourceIP(t *testing.T) {
	for _, tc := range []struct {
		name, proxies, remote, xff, want string
		xfp                              string
		secure                           bool
	}{
		{name: "direct", remote: "192.0.2.7:5555", want: "192.0.2.7"},
		{name: "XFF ignored by default", remote: "192.0.2.7:5555", xff: "10.1.1.1", want: "192.0.2.7"},
		{name: "XFF from an untrusted peer", proxies: "10.0.0.0/8", remote: "192.0.2.7:5555", xff: "10.1.1.1", want: "192.0.2.7"},
		{name: "XFF from a trusted proxy", proxies: "10.0.0.0/8", remote: "10.0.0.2:5555", xff: "203.0.113.9", want: "203.0.113.9", xfp: "https", secure: true},
		{name: "chain of proxies", proxies: "10.0.0.0/8, 192.168.1.1", remote: "10.0.0.2:1", xff: "198.51.100.1, 203.0.113.9, 192.168.1.1", want: "203.0.113.9"},
		{name: "spoofed first hop is ignored", proxies: "10.0.0.0/8", remote: "10.0.0.2:1", xff: "1.2.3.4, 203.0.113.9", want: "203.0.113.9"},
		{name: "IPv4-mapped IPv6", remote: "[::ffff:192.0.2.7]:5555", want: "192.0.2.7"},
		{name: "IPv6", remote: "[2001:db8::1]:5555", want: "2001:db8::1"},
		{name: "unparsable", remote: "pipe", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Auth{}
			a.proxies, _ = parseTrustedProxies(tc.proxies)
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.xfp != "" {
				r.Header.Set("X-Forwarded-Proto", tc.xfp)
			}
			ip, secure := a.clientFacts(r)
			if ip != tc.want || secure != tc.secure {
				t.Errorf("got %q %v, want %q %v", ip, secure, tc.want, tc.secure)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	h := newHarness(t)
	creds, _, _ := h.auth.Store().LookupCredential(context.Background(), testKeys["reader"].AccessKeyID)
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(WithPrincipal(r.Context(), creds.Principal.(*Principal)))
	if err := h.auth.Authorize(r, "aps:QueryMetrics", wsARN(acctA, "ws-a")); err != nil {
		t.Errorf("allowed action: %v", err)
	}
	err := h.auth.Authorize(r, "aps:TagResource", wsARN(acctA, "ws-a"))
	if err == nil || err.Status != 403 || err.Type != awsapi.AccessDeniedException {
		t.Errorf("denied action: %v", err)
	}
	if err := h.auth.Authorize(httptest.NewRequest("GET", "/", nil), "aps:QueryMetrics", "*"); err == nil || err.Status != 403 {
		t.Errorf("no principal: %v", err)
	}
}

func TestConfig(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.IdentitiesReloadPeriod != 10*time.Second || c.MaxClockSkew != 5*time.Minute || c.MaxBodyBytes != 8<<20 || c.AuditLog != "" || c.AuditDataPlane {
		t.Errorf("defaults %+v", c)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.IdentitiesReloadPeriod = -1 },
		func(c *Config) { c.MaxClockSkew = -1 },
		func(c *Config) { c.MaxBodyBytes = -1 },
		func(c *Config) { c.TrustedProxies = "10.0.0.0/33" },
		func(c *Config) { c.TrustedProxies = "proxy.local" },
		func(c *Config) { c.AuditLog = "a\nb" },
		func(c *Config) { c.MaxInflightBodyBytes = -1 },
		func(c *Config) { c.BodyReadTimeout = -1 },
		func(c *Config) { c.AuditUnauthenticatedRate = -1 },
	} {
		c2 := c
		bad(&c2)
		if err := c2.Validate(); err == nil {
			t.Errorf("%+v validated", c2)
		}
	}
	// Every field has a flag.
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if want := reflect.TypeOf(Config{}).NumField(); n != want {
		t.Errorf("%d flags, want %d (one per field)", n, want)
	}
	if _, err := New(c, Env{Region: testRegion, AccountID: "123"}, nil, nil, prometheus.NewRegistry()); err == nil {
		t.Error("New accepted a bad account id")
	}
	if _, err := New(c, Env{Region: "", AccountID: acctA, DataDir: t.TempDir()}, nil, nil, prometheus.NewRegistry()); err == nil {
		t.Error("New accepted an empty region")
	}
}

func TestWrapNeedsAction(t *testing.T) {
	h := newHarness(t)
	defer func() {
		if recover() == nil {
			t.Error("Wrap accepted a route without an action")
		}
	}()
	h.auth.Wrap(RouteInfo{}, http.NotFoundHandler())
}
