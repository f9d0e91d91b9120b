package sigv4proxy

import (
	"bufio"
	"context"
	"github.com/stratametrics/strata/internal/testutil"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/auth/sigv4"
)

// Test credentials. Secrets are made up.
const (
	testKeyID  = "AKIDSTRATAPROXYTEST"
	testSecret = "proxy/test/secret/0123456789abcdefghijKL"
)

func staticStore(keyID, secret, token string) sigv4.StaticCredentials {
	return sigv4.StaticCredentials{keyID: {SecretAccessKey: secret, SessionToken: token, Principal: keyID}}
}

// received is one request as the fake upstream saw it.
type received struct {
	Method     string
	Proto      string
	RequestURI string // exactly as on the wire
	Host       string
	Header     http.Header
	Body       []byte
	Chunked    bool
	Identity   sigv4.Identity
	VerifyErr  error
}

// upstream is a fake SigV4-requiring server: it reads the body, verifies
// the signature with internal/auth/sigv4 as Strata does, records what it
// got, answers 403 when verification fails and otherwise calls respond (nil:
// 200 "ok").
type fakeUpstream struct {
	*httptest.Server
	verifier *sigv4.Verifier

	mu      sync.Mutex
	got     []received
	respond func(w http.ResponseWriter, r *http.Request)
}

func newUpstream(t *testing.T, store sigv4.CredentialStore) *fakeUpstream {
	return startUpstream(t, store, false)
}

// newTLSUpstream is newUpstream over HTTPS with HTTP/2.
func newTLSUpstream(t *testing.T, store sigv4.CredentialStore) *fakeUpstream {
	return startUpstream(t, store, true)
}

func startUpstream(t *testing.T, store sigv4.CredentialStore, tls bool) *fakeUpstream {
	t.Helper()
	v, err := sigv4.New(sigv4.Config{Region: "us-east-1"}, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUpstream{verifier: v}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	if tls {
		u.EnableHTTP2 = true
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(u.Close)
	return u
}

func (u *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, verr := u.verifier.Verify(r, body)
	rec := received{
		Method:     r.Method,
		Proto:      r.Proto,
		RequestURI: r.RequestURI,
		Host:       r.Host,
		Header:     r.Header.Clone(),
		Body:       body,
		Chunked:    len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked",
		Identity:   id,
		VerifyErr:  verr,
	}
	u.mu.Lock()
	u.got = append(u.got, rec)
	respond := u.respond
	u.mu.Unlock()
	if verr != nil {
		code, status := sigv4.AWSErrorCode(verr)
		http.Error(w, code+": "+verr.Error(), status)
		return
	}
	if respond != nil {
		respond(w, r)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

func (u *fakeUpstream) setRespond(f func(w http.ResponseWriter, r *http.Request)) {
	u.mu.Lock()
	u.respond = f
	u.mu.Unlock()
}

func (u *fakeUpstream) requests() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.got...)
}

// last returns the one request the upstream got since the previous call.
func (u *fakeUpstream) last(t *testing.T) received {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(u.got))
	}
	r := u.got[0]
	u.got = nil
	if r.VerifyErr != nil {
		t.Fatalf("upstream could not verify %s %s: %v\nheaders: %v", r.Method, r.RequestURI, r.VerifyErr, r.Header)
	}
	return r
}

// isolateAWSEnv clears every variable the AWS credential chain reads, points
// the shared files at an empty directory, disables IMDS, then sets kv.
func isolateAWSEnv(t *testing.T, kv ...string) (dir string) {
	dir = t.TempDir()
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for i := 0; i+1 < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
	return dir
}

type syncBuffer = testutil.SyncBuffer

// testLogger logs at debug level into a buffer that is printed if the test
// fails.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proxy log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// startProxy serves a Proxy for cfg (Logger filled in) on a local port and
// returns its base URL.
func startProxy(t *testing.T, cfg Config) (*Proxy, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger, _ = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		_ = p.Close()
	})
	return p, srv.URL
}

func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// rawRequest writes raw to addr (host:port) as is and reads the response,
// for request targets an http.Client would re-encode.
func rawRequest(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response to %q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, body
}

// storeFunc is a CredentialStore backed by a function.
type storeFunc func(accessKeyID string) (sigv4.Credential, bool)

func (f storeFunc) LookupCredential(_ context.Context, id string) (sigv4.Credential, bool, error) {
	c, ok := f(id)
	return c, ok, nil
}
