package auth

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/auth/session"
)

const sessionIdentities = testIdentities + `
roles:
  - name: ingest
    trust_policy: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "111111111111"}, "Action": "sts:AssumeRole"}]}'
    tags: {team: blue}
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: aps:RemoteWrite, Resource: "*"}
          - {Effect: Allow, Action: aps:QueryMetrics, Resource: "*", Condition: {StringEquals: {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}}}
`

func sessionRing(t testing.TB) *session.Ring {
	t.Helper()
	r, err := session.NewRing(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sessionCreds seals s and returns the credentials a client would hold.
func sessionCreds(t testing.TB, ring *session.Ring, s *session.Session) aws.Credentials {
	t.Helper()
	akid, _ := session.NewAccessKeyID()
	s.Secret, _ = session.NewSecret()
	tok, err := ring.Seal(akid, s)
	if err != nil {
		t.Fatal(err)
	}
	return aws.Credentials{AccessKeyID: akid, SecretAccessKey: s.Secret, SessionToken: tok}
}

func TestSessionCredentials(t *testing.T) {
	ring := sessionRing(t)
	h := newHarness(t, func(c *Config, e *Env) { e.Sessions = ring })
	writeFile(t, filepath.Join(h.dir, "identities.yaml"), sessionIdentities)
	if err := h.auth.Store().Reload(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	h.setClock(now)
	role := "arn:aws:iam::111111111111:role/ingest"
	creds := sessionCreds(t, ring, &session.Session{Kind: session.KindRole, Principal: role, Name: "s1",
		Issued: now.Add(-time.Minute).UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()})
	call := func(c aws.Credentials, method, path string) response {
		return h.do(h.sign(h.newRequest(method, path, nil), c, nil))
	}
	if resp := call(creds, http.MethodPost, "/workspaces/ws-a/api/v1/remote_write"); resp.status != http.StatusOK {
		t.Fatalf("role session write: %d %s", resp.status, resp.body)
	}
	if p := h.last().principal; p.ARN != "arn:aws:sts::111111111111:assumed-role/ingest/s1" || !p.Temporary() || p.UserID[:4] != "AROA" {
		t.Fatalf("principal %+v", p)
	}
	// aws:PrincipalTag/team (the role's tag) against the workspace's tag.
	h.res.tags[wsARN(acctA, "ws-blue")] = map[string]string{"team": "blue"}
	h.res.tags[wsARN(acctA, "ws-red")] = map[string]string{"team": "red"}
	if resp := call(creds, http.MethodGet, "/workspaces/ws-blue/api/v1/query"); resp.status != http.StatusOK {
		t.Fatalf("query of the team's workspace: %d %s", resp.status, resp.body)
	}
	if resp := call(creds, http.MethodGet, "/workspaces/ws-red/api/v1/query"); resp.status != http.StatusForbidden {
		t.Fatalf("query of another team's workspace: %d", resp.status)
	}
	// The first use opened the token; later ones come from the cache.
	before := h.counter("strata_auth_session_tokens_refused_total")

	// Expired: ExpiredTokenException.
	h.setClock(now.Add(2 * time.Hour))
	resp := call(creds, http.MethodPost, "/workspaces/ws-a/api/v1/remote_write")
	if resp.status != http.StatusForbidden || resp.errorType() != "ExpiredTokenException" {
		t.Fatalf("expired session: %d %s %s", resp.status, resp.errorType(), resp.body)
	}
	h.setClock(now)

	// The token of one session with the key of another: refused.
	other := sessionCreds(t, ring, &session.Session{Kind: session.KindRole, Principal: role, Name: "s2",
		Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()})
	swapped := other
	swapped.SessionToken = creds.SessionToken
	if resp := call(swapped, http.MethodPost, "/workspaces/ws-a/api/v1/remote_write"); resp.status != http.StatusForbidden || resp.errorType() != "UnrecognizedClientException" {
		t.Fatalf("swapped token: %d %s", resp.status, resp.errorType())
	}
	// Sealed by another server's key: refused.
	foreign := sessionCreds(t, sessionRingOther(t), &session.Session{Kind: session.KindRole, Principal: role, Name: "s3",
		Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()})
	if resp := call(foreign, http.MethodPost, "/workspaces/ws-a/api/v1/remote_write"); resp.status != http.StatusForbidden {
		t.Fatalf("foreign token: %d", resp.status)
	}
	if v := h.counter("strata_auth_session_tokens_refused_total"); v != before+2 {
		t.Fatalf("refused tokens counted: %v, want %v", v, before+2)
	}
	// A user's own session (GetSessionToken) has the user's permissions.
	user := sessionCreds(t, ring, &session.Session{Kind: session.KindUser, Principal: "arn:aws:iam::111111111111:user/reader",
		Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()})
	if resp := call(user, http.MethodGet, "/workspaces/ws-a/api/v1/query"); resp.status != http.StatusOK {
		t.Fatalf("reader's session query: %d %s", resp.status, resp.body)
	}
	if resp := call(user, http.MethodPost, "/workspaces/ws-a/api/v1/remote_write"); resp.status != http.StatusForbidden {
		t.Fatalf("reader's session write: %d", resp.status)
	}
	// The role goes away: its sessions stop working with the next request.
	writeFile(t, filepath.Join(h.dir, "identities.yaml"), testIdentities)
	if err := h.auth.Store().Reload(); err != nil {
		t.Fatal(err)
	}
	if resp := call(creds, http.MethodPost, "/workspaces/ws-a/api/v1/remote_write"); resp.status != http.StatusForbidden {
		t.Fatalf("session of a deleted role: %d", resp.status)
	}
	// Without a ring (STS off), a session token is never accepted.
	plain := newHarness(t)
	if resp := plain.do(plain.sign(plain.newRequest(http.MethodGet, "/workspaces", nil), creds, nil)); resp.status != http.StatusForbidden {
		t.Fatalf("session token with STS off: %d", resp.status)
	}
}

func sessionRingOther(t testing.TB) *session.Ring {
	t.Helper()
	r, _ := session.NewRing(bytes.Repeat([]byte{8}, 32))
	return r
}

// BenchmarkVerifySessionToken is SigV4 verification of a request signed with temporary
// credentials (the X-Amz-Security-Token header): the figure is under 5 µs and
// 20 allocations, once the session is known (its token opened on first use).
func BenchmarkVerifySessionToken(b *testing.B) {
	dir := b.TempDir()
	idFile := filepath.Join(dir, "identities.yaml")
	writeFile(b, filepath.Join(dir, "filesecret.key"), testKeys["filesecret"].SecretAccessKey)
	writeFile(b, idFile, sessionIdentities)
	ring := sessionRing(b)
	signedAt := time.Date(2026, 12, 5, 10, 20, 30, 0, time.UTC)
	a, err := New(Config{IdentitiesFile: idFile}, Env{Region: testRegion, AccountID: acctA, Getenv: func(string) string { return "" },
		Now: func() time.Time { return signedAt.Add(time.Second) }, Sessions: ring},
		nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	creds := sessionCreds(b, ring, &session.Session{Kind: session.KindRole, Principal: "arn:aws:iam::111111111111:role/ingest", Name: "bench",
		Issued: signedAt.UnixMilli(), Expires: signedAt.Add(time.Hour).UnixMilli(),
		Policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"aps:*","Resource":"*"}]}`, Tags: map[string]string{"env": "prod"}})
	r := httptest.NewRequest(http.MethodGet, "/workspaces/ws-a/api/v1/query?query=up", nil)
	r.Host = "aps-workspaces.us-east-1.amazonaws.com"
	signAt(b, r, creds, hexSHA256(nil), "aps", testRegion, signedAt)
	if r.Header.Get("X-Amz-Security-Token") == "" {
		b.Fatal("no security token header")
	}
	if _, err := a.verifier.Verify(r, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id, err := a.verifier.Verify(r, nil)
		if err != nil || !id.Temporary {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenSessionToken is the first use of a session: opening its token and
// building its principal (then cached).
func BenchmarkOpenSessionToken(b *testing.B) {
	ring := sessionRing(b)
	ids, err := ParseIdentities([]byte(sessionIdentities), ParseOptions{DefaultAccount: acctA, ReadFile: func(string) ([]byte, error) {
		return []byte(testKeys["filesecret"].SecretAccessKey), nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	creds := sessionCreds(b, ring, &session.Session{Kind: session.KindRole, Principal: "arn:aws:iam::111111111111:role/ingest", Name: "bench",
		Issued: 1, Expires: 2, Policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"aps:*","Resource":"*"}]}`})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s, err := ring.Open(creds.AccessKeyID, creds.SessionToken)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := ids.SessionPrincipal(s); !ok {
			b.Fatal("no principal")
		}
	}
}

func TestIdentitiesRoleAndProviderValidation(t *testing.T) {
	role := func(extra string) string {
		return "roles:\n  - name: r\n    trust_policy: '{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": \"111111111111\"}, \"Action\": \"sts:AssumeRole\"}]}'\n" + extra
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"duration too short":  {role("    max_session_duration: 30m\n"), "max_session_duration"},
		"duration too long":   {role("    max_session_duration: 13h\n"), "max_session_duration"},
		"bad revoke time":     {role("    revoke_sessions_issued_before: yesterday\n"), "revoke_sessions_issued_before"},
		"aws: tag":            {role("    tags: {\"aws:x\": y}\n"), "tags"},
		"bad tag value":       {role("    tags: {k: \"a;b\"}\n"), "tags"},
		"duplicate tag keys":  {role("    tags: {Team: a, team: b}\n"), "appears twice"},
		"http provider":       {"oidc_providers:\n  - {url: http://idp.example, client_ids: [a]}\n", "https"},
		"provider port":       {"oidc_providers:\n  - {url: https://idp.example:8443, client_ids: [a]}\n", "port"},
		"no client ids":       {"oidc_providers:\n  - {url: https://idp.example}\n", "client_ids"},
		"bad thumbprint":      {"oidc_providers:\n  - {url: https://idp.example, client_ids: [a], thumbprints: [xyz]}\n", "thumbprints"},
		"unknown account":     {"oidc_providers:\n  - {url: https://idp.example, client_ids: [a], account: \"999999999999\"}\n", "not listed"},
		"duplicate providers": {"oidc_providers:\n  - {url: https://idp.example, client_ids: [a]}\n  - {url: https://idp.example, client_ids: [b]}\n", "already has"},
	} {
		_, err := ParseIdentities([]byte(tc.doc), ParseOptions{DefaultAccount: acctA})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
	ids, err := ParseIdentities([]byte(role("    max_session_duration: 12h\n    tags: {team: blue}\n")), ParseOptions{DefaultAccount: acctA})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ids.Role("arn:aws:iam::111111111111:role/r")
	if r.MaxSessionDuration != 12*time.Hour || r.Tags["team"] != "blue" || r.UniqueID[:4] != "AROA" {
		t.Fatalf("role %+v", r)
	}
}
