package auth

// Regression tests for the holes an outside review found in the request path: bodies
// read (and allocated) before the signature was checked, with no deadline and no cap;
// unsigned payloads accepted everywhere; unbounded audit records of junk requests, each
// costing a resource lookup.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/testutil"
)

// rawConn opens a TCP connection to the harness and writes head (request line and
// headers, without the blank line) plus the given first bytes of a body.
func (h *harness) rawConn(head string, body []byte) (net.Conn, *bufio.Reader) {
	h.t.Helper()
	c, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		h.t.Fatal(err)
	}
	if _, err := c.Write(body); err != nil {
		h.t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// signedHead returns the request line and headers of a request signed by creds over
// body (which the test may then send only in part).
func (h *harness) signedHead(method, path string, creds aws.Credentials, body []byte) string {
	h.t.Helper()
	r := h.newRequest(method, path, body)
	h.sign(r, creds, body)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, path, r.Host, len(body))
	for k, vs := range r.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	return b.String()
}

// A request that cannot be authenticated gets its answer without the server reading
// the body it announced, and the connection is closed instead of waiting for it.
func TestBodyNotReadBeforeAuthentication(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Env) { c.MaxInflightBodyBytes = 64 << 20 })
	unknown := aws.Credentials{AccessKeyID: "AKIDUNKNOWN00000001", SecretAccessKey: "unknownSECRET/+000000000000"}
	for name, head := range map[string]string{
		"no signature": "POST /workspaces/ws-a/api/v1/remote_write HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n",
		"unknown key":  h.signedHead(http.MethodPost, "/workspaces/ws-a/api/v1/remote_write", unknown, make([]byte, 900000)),
	} {
		c, br := h.rawConn(head, []byte("only the start of the body"))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: no answer while the body was incomplete (was the body read first?): %v", name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
		// The server closes the connection rather than draining the body.
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("%s: connection left open after the answer: %v", name, err)
		}
		_ = c.Close()
	}
	if n := h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times", n)
	}
	if v := h.counter("strata_auth_inflight_body_bytes"); v != 0 {
		t.Fatalf("%v body bytes held after the requests ended", v)
	}
}

// A declared Content-Length is not allocated up front, and a body that trickles in is
// cut off by the body read timeout.
func TestSlowBodyTimesOutAndAllocatesAsItArrives(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Env) {
		c.BodyReadTimeout = 500 * time.Millisecond
		c.MaxInflightBodyBytes = 64 << 20
	})
	body := make([]byte, 900000)
	_, br := h.rawConn(h.signedHead(http.MethodPost, "/workspaces/ws-a/api/v1/remote_write", testKeys["admin"], body), body[:10])
	// While the body trickles, the server holds 16 KiB for it, not the 900 kB announced.
	testutil.Eventually(t, 5*time.Second, "the body's first bytes reserved", func() bool { return h.counter("strata_auth_inflight_body_bytes") > 0 })
	if v := h.counter("strata_auth_inflight_body_bytes"); v == 0 || v > 16<<10 {
		t.Fatalf("%v bytes reserved for a body of which 10 bytes arrived", v)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer after the body read timeout: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "auth.body-read-timeout") {
		t.Fatalf("slow body: %d %s", resp.StatusCode, msg)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection left open after a timed-out body: %v", err)
	}
	if v := h.counter("strata_auth_inflight_body_bytes"); v != 0 {
		t.Fatalf("%v body bytes still held", v)
	}
	if n := h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times", n)
	}
}

// The bytes of bodies held at once are capped server-wide; over the cap a request gets
// 503 with Retry-After, and the budget comes back when requests end.
func TestInflightBodyBudget(t *testing.T) {
	const budget = 64 << 10
	h := newHarness(t, func(c *Config, _ *Env) { c.MaxInflightBodyBytes = budget })
	// A holds 32 KiB of the budget while its body trickles in.
	slow := make([]byte, 200000)
	_, brA := h.rawConn(h.signedHead(http.MethodPost, "/workspaces/ws-a/api/v1/remote_write", testKeys["admin"], slow), slow[:20000])
	testutil.Eventually(t, 5*time.Second, "A's 32 KiB reserved", func() bool { return h.counter("strata_auth_inflight_body_bytes") >= 32<<10 })
	if v := h.counter("strata_auth_inflight_body_bytes"); v != 32<<10 {
		t.Fatalf("A holds %v bytes, want 32 KiB", v)
	}
	// B needs more than what is left.
	big := bytes.Repeat([]byte("b"), 60000)
	resp := h.call("admin", http.MethodPost, "/workspaces/ws-a/api/v1/remote_write", big)
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
		t.Fatalf("over the budget: %d %s (Retry-After %q)", resp.status, resp.body, resp.header.Get("Retry-After"))
	}
	// A small one still fits.
	if resp := h.call("admin", http.MethodPost, "/workspaces/ws-a/api/v1/remote_write", []byte("small")); resp.status != http.StatusOK {
		t.Fatalf("small body under the budget: %d %s", resp.status, resp.body)
	}
	if v := h.counter("strata_auth_inflight_body_rejections_total"); v != 1 {
		t.Fatalf("rejections counted: %v", v)
	}
	_ = brA
}

// presignFor presigns method path for payloadHash with the Go SDK.
func (h *harness) presignFor(method, path string, creds aws.Credentials, payloadHash string) string {
	h.t.Helper()
	r := h.newRequest(method, path, nil)
	q := r.URL.Query()
	q.Set("X-Amz-Expires", "300")
	r.URL.RawQuery = q.Encode()
	uri, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, r, payloadHash, "aps", testRegion, h.now())
	if err != nil {
		h.t.Fatal(err)
	}
	return uri
}

// Only an empty GET (or HEAD) may leave its payload unsigned: UNSIGNED-PAYLOAD in the
// header, or a presigned URL signed for no body, on anything else is refused.
func TestUnsignedPayloadOnlyForEmptyReads(t *testing.T) {
	h := newHarness(t)
	admin := testKeys["admin"]
	body := []byte("a remote write body")
	unsigned := func(method, path string, body []byte) response {
		r := h.newRequest(method, path, body)
		r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		signAt(t, r, admin, "UNSIGNED-PAYLOAD", "aps", testRegion, h.now())
		return h.do(r)
	}
	if resp := unsigned(http.MethodPost, "/workspaces/ws-a/api/v1/remote_write", body); resp.status != http.StatusForbidden {
		t.Errorf("header-signed UNSIGNED-PAYLOAD POST with a body: %d %s", resp.status, resp.body)
	}
	if resp := unsigned(http.MethodPost, "/workspaces", nil); resp.status != http.StatusForbidden {
		t.Errorf("header-signed UNSIGNED-PAYLOAD POST without a body: %d %s", resp.status, resp.body)
	}
	if resp := unsigned(http.MethodGet, "/workspaces", nil); resp.status != http.StatusOK {
		t.Errorf("header-signed UNSIGNED-PAYLOAD GET: %d %s", resp.status, resp.body)
	}

	// A URL presigned for no body, sent with one: the body is not covered.
	uri := h.presignFor(http.MethodPost, "/workspaces/ws-a/api/v1/remote_write", admin, hexSHA256(nil))
	r, _ := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if resp := h.do(r); resp.status != http.StatusForbidden {
		t.Errorf("presigned POST with an unsigned body: %d %s", resp.status, resp.body)
	}
	uri = h.presignFor(http.MethodGet, "/workspaces/ws-a/api/v1/query", admin, hexSHA256(nil))
	r, _ = http.NewRequest(http.MethodGet, uri, bytes.NewReader(body))
	if resp := h.do(r); resp.status != http.StatusForbidden {
		t.Errorf("presigned GET with a body: %d %s", resp.status, resp.body)
	}
	// A presigned URL that signs its body's hash covers it.
	uri = h.presignFor(http.MethodPost, "/workspaces/ws-a/api/v1/remote_write", admin, hexSHA256(body))
	r, _ = http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if resp := h.do(r); resp.status != http.StatusOK {
		t.Errorf("presigned POST with its body signed: %d %s", resp.status, resp.body)
	}
	// And the everyday presigned GET still works.
	r, _ = http.NewRequest(http.MethodGet, h.presignFor(http.MethodGet, "/workspaces/ws-a/api/v1/query", admin, hexSHA256(nil)), nil)
	if resp := h.do(r); resp.status != http.StatusOK {
		t.Errorf("presigned GET: %d %s", resp.status, resp.body)
	}
}

// Junk requests write bounded audit records at a bounded rate, and never make the
// server look up the resource in their path.
func TestAuditOfUnauthenticatedRequestsIsBounded(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Env) { c.AuditUnauthenticatedRate = 10 })
	h.setClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)) // no refill during the test
	var lookups, peeks atomic.Int64
	route := h.auth.Wrap(RouteInfo{
		Action:       "aps:QueryMetrics",
		Resource:     func(r *http.Request) string { lookups.Add(1); return wsARN(acctA, r.PathValue("id")) },
		PeekResource: func(r *http.Request) string { peeks.Add(1); return wsARN(acctA, r.PathValue("id")) },
		DataPlane:    true,
	}, http.HandlerFunc(h.handle))
	mux := http.NewServeMux()
	mux.Handle("GET /w/{id}/{rest...}", route)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	long := strings.Repeat("x", 8000)
	for i := range 150 {
		resp, err := http.Get(fmt.Sprintf("%s/w/ws-%d/%s", srv.URL, i, long))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("unsigned request: %d", resp.StatusCode)
		}
	}
	recs := h.auditRecords()
	if len(recs) != 100 {
		t.Fatalf("%d audit records for 150 junk requests at 10/s (burst 100)", len(recs))
	}
	for _, rec := range recs {
		if p := rec["path"].(string); len(p) > maxAuditField+3 {
			t.Fatalf("audit path of %d bytes", len(p))
		}
	}
	if v := h.counter("strata_auth_audit_records_dropped_total"); v != 50 {
		t.Fatalf("dropped records counted: %v", v)
	}
	if n := lookups.Load(); n != 0 {
		t.Fatalf("the resource of unauthenticated requests was looked up %d times", n)
	}
	if n := peeks.Load(); n != 100 {
		t.Fatalf("peeked %d times, want one per audit record", n)
	}
}

// A secret every user of the machine can read is refused, not merely warned about: in a
// secret file, and in an identities file that holds secrets inline.
func TestWorldReadableSecretsRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		file       string // which file to open up
		secretFile bool
	}{
		"secret_file":             {"secret.key", true},
		"inline secret":           {"identities.yaml", false},
		"identities, secret file": {"identities.yaml", true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ids := filepath.Join(dir, "identities.yaml")
			key := `{id: AKIDPERMS0000000001, secret: "permsSECRETvalue/+000000001"}`
			if tc.secretFile {
				key = `{id: AKIDPERMS0000000001, secret_file: secret.key}`
			}
			writeFile(t, filepath.Join(dir, "secret.key"), "permsSECRETvalue/+000000001\n")
			writeFile(t, ids, "users:\n  - name: u\n    access_keys: ["+key+"]\n")
			if err := os.Chmod(filepath.Join(dir, tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := Config{IdentitiesFile: ids}
			env := Env{Region: testRegion, AccountID: acctA, DataDir: dir, Getenv: func(string) string { return "" }}
			_, err := New(cfg, env, nil, nil, prometheus.NewRegistry())
			refused := err != nil && strings.Contains(err.Error(), "chmod 600")
			// The identities file without an inline secret may be world-readable.
			if want := !(tc.file == "identities.yaml" && tc.secretFile); refused != want {
				t.Fatalf("refused=%v (%v), want %v", refused, err, want)
			}
		})
	}
}

// A reload that fails keeps the last good identities but says so: metric, log, and
// Ready (which /-/ready reports).
func TestIdentitiesReloadFailureIsLoud(t *testing.T) {
	h := newHarness(t)
	if err := h.auth.Ready(); err != nil {
		t.Fatalf("ready at start: %v", err)
	}
	idFile := filepath.Join(h.dir, "identities.yaml")
	writeFile(t, idFile, "users: [this is not valid")
	if err := h.auth.Store().Reload(); err == nil {
		t.Fatal("a broken identities file loaded")
	}
	if err := h.auth.Ready(); err != ErrIdentitiesStale {
		t.Fatalf("Ready after a failed reload: %v", err)
	}
	if v := h.counter("strata_auth_identities_last_reload_successful"); v != 0 {
		t.Fatalf("strata_auth_identities_last_reload_successful %v", v)
	}
	if !strings.Contains(h.logs.String(), "identities file not loaded; keeping the last good version") {
		t.Fatalf("no error logged:\n%s", h.logs.String())
	}
	// The last good version still serves: that is the documented choice.
	if resp := h.call("admin", http.MethodGet, "/workspaces", nil); resp.status != http.StatusOK {
		t.Fatalf("admin after a failed reload: %d", resp.status)
	}
	writeFile(t, idFile, testIdentities)
	if err := h.auth.Store().Reload(); err != nil {
		t.Fatal(err)
	}
	if err := h.auth.Ready(); err != nil {
		t.Fatalf("Ready after the file was fixed: %v", err)
	}
}
