package sigv4proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// envCreds isolates the AWS environment and gives the proxy the test key
// through AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
func envCreds(t *testing.T) {
	isolateAWSEnv(t, "AWS_ACCESS_KEY_ID", testKeyID, "AWS_SECRET_ACCESS_KEY", testSecret)
}

func hostOf(t *testing.T, base string) string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// signedHeaders returns the SignedHeaders list of an Authorization header.
func signedHeaders(t *testing.T, authz string) []string {
	t.Helper()
	_, after, ok := strings.Cut(authz, "SignedHeaders=")
	if !ok {
		t.Fatalf("no SignedHeaders in %q", authz)
	}
	list, _, _ := strings.Cut(after, ",")
	return strings.Split(list, ";")
}

// TestProxyForwardsTargetsExactly sends request targets that a careless
// proxy would re-encode, byte for byte over a raw connection, and checks the
// upstream gets the same bytes (after the upstream's path prefix) and can
// verify them. Dot segments and empty segments are resolved: the upstream
// gets the canonical path the allow-list checked (want).
func TestProxyForwardsTargetsExactly(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	cases := []struct {
		name, method, target string
		want                 string // "": target
	}{
		{"encoded query", "GET", `/workspaces/ws-1/api/v1/query?query=sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29%29&time=1700000000.123`, ""},
		{"unencoded query characters", "GET", `/workspaces/ws-1/api/v1/query?query=sum(rate(x{a="b%20c"}[5m]))&time=1700000000`, ""},
		{"escapes", "GET", `/workspaces/ws-1/api/v1/label/a%3Ab/values?match%5B%5D=up`, ""},
		{"lowercase escapes", "GET", `/workspaces/ws-1/api/v1/label/a%3ab/values?match[]=x%2fy`, ""},
		{"escaped route", "GET", `/workspaces/ws%2D1/api/v1/qu%65ry?query=up`, ""},
		{"plus in path and query", "GET", `/workspaces/ws-1/api/v1/label/a+b/values?match%5B%5D=up%7Bx%3D%22a%2Bb+c%22%7D&start=1+2`, ""},
		{"repeated and unsorted parameters", "GET", `/workspaces/ws-1/api/v1/series?match[]=b&match[]=a&end=2&start=1&flag&=v&&`, ""},
		{"dot segments", "GET", `/workspaces/ws-1/./api/../api/v1/query?query=up`, `/workspaces/ws-1/api/v1/query?query=up`},
		{"encoded dot segments", "GET", `/workspaces/ws-1/%2e/api/%2E%2e/api/v1/query?query=up`, `/workspaces/ws-1/api/v1/query?query=up`},
		{"double slashes", "GET", `//workspaces//ws-1/api/v1/query?query=up`, `/workspaces/ws-1/api/v1/query?query=up`},
		{"sub-delims and UTF-8", "GET", `/workspaces/ws-1/api/v1/label/%C3%A9t%C3%A9;x=1,y!$&'()*@:~/values?x=%E2%82%AC&y=~`, ""},
		{"characters net/url would escape", "GET", "/workspaces/ws-1/api/v1/label/x{y}|\"z\"^`<>/values?q=\"{|}\"\\", ""},
		{"raw UTF-8", "GET", "/workspaces/ws-1/api/v1/label/\u00e9t\u00e9/values?x=\u20ac", ""},
		{"empty query", "GET", `/workspaces/ws-1/api/v1/query?`, ""},
		{"no query", "GET", `/workspaces/ws-1/api/v1/status/buildinfo`, ""},
		{"delete", "DELETE", `/workspaces/ws-1/alertmanager/api/v2/silence/abc%20d`, ""},
		{"head", "HEAD", `/workspaces/ws-1/api/v1/labels?start=1`, ""},
	}
	for _, prefix := range []string{"", "/prefix/v1", "/pre%20fix/"} {
		_, base := startProxy(t, Config{Upstream: up.URL + prefix})
		wantPrefix := strings.TrimSuffix(prefix, "/")
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s prefix=%q", tc.name, prefix), func(t *testing.T) {
				resp, body := rawRequest(t, hostOf(t, base),
					tc.method+" "+tc.target+" HTTP/1.1\r\nHost: proxy.example\r\nConnection: close\r\n\r\n")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				got := up.last(t)
				if got.Method != tc.method {
					t.Errorf("method %q, want %q", got.Method, tc.method)
				}
				want := tc.want
				if want == "" {
					want = tc.target
				}
				if want := wantPrefix + want; got.RequestURI != want {
					t.Errorf("upstream got target\n  %s\nwant\n  %s", got.RequestURI, want)
				}
				if want := hostOf(t, up.URL); got.Host != want {
					t.Errorf("upstream got Host %q, want %q", got.Host, want)
				}
				if !got.Identity.PayloadSigned || got.Identity.AccessKeyID != testKeyID {
					t.Errorf("identity %+v", got.Identity)
				}
			})
		}
	}
}

// TestProxyBodies sends the bodies Prometheus and friends send and checks
// they arrive byte for byte, signed with their SHA-256.
func TestProxyBodies(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	_, base := startProxy(t, Config{Upstream: up.URL})                             // default limit, 8 MiB
	_, smallBase := startProxy(t, Config{Upstream: up.URL, MaxBodyBytes: 1 << 20}) // 1 MiB
	client := newClient(t)

	remoteWrite := randomBytes(t, 2<<20)
	full := randomBytes(t, DefaultMaxBodyBytes)
	form := []byte(`query=sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29%29&time=1700000000.5`)
	cases := []struct {
		name       string
		base       string
		path       string
		body       []byte
		hideLength bool // send chunked
		headers    map[string]string
	}{
		{name: "form", base: base, path: "/workspaces/ws-1/api/v1/query", body: form,
			headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{name: "remote write 2 MiB", base: base, path: "/workspaces/ws-1/api/v1/remote_write", body: remoteWrite,
			headers: map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
				"X-Prometheus-Remote-Write-Version": "0.1.0"}},
		{name: "remote write 2 MiB chunked", base: base, path: "/workspaces/ws-1/api/v1/remote_write", body: remoteWrite,
			hideLength: true, headers: map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}},
		{name: "at the default limit", base: base, path: "/workspaces/ws-1/api/v1/remote_write", body: full},
		{name: "at the default limit, chunked", base: base, path: "/workspaces/ws-1/api/v1/remote_write", body: full, hideLength: true},
		{name: "at the limit, known length", base: smallBase, path: "/workspaces/ws-1/api/v1/remote_write", body: remoteWrite[:1<<20]},
		{name: "at the limit, chunked", base: smallBase, path: "/workspaces/ws-1/api/v1/remote_write", body: remoteWrite[:1<<20],
			hideLength: true},
		{name: "alertmanager", base: base, path: "/workspaces/ws-1/alertmanager/api/v2/silences", body: []byte(`{"comment":"x"}`),
			headers: map[string]string{"Content-Type": "application/json"}},
		{name: "empty chunked", base: base, path: "/workspaces/ws-1/api/v1/remote_write", body: []byte{},
			hideLength: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.hideLength {
				body = io.MultiReader(body) // http.NewRequest cannot see the length: chunked
			}
			req, err := http.NewRequest(http.MethodPost, tc.base+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			respBody, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, respBody)
			}
			got := up.last(t)
			if !bytes.Equal(got.Body, tc.body) {
				t.Fatalf("upstream got %d bytes (sha256 %s), want %d (sha256 %s)",
					len(got.Body), sha256Hex(got.Body), len(tc.body), sha256Hex(tc.body))
			}
			if got.RequestURI != tc.path {
				t.Errorf("target %q, want %q", got.RequestURI, tc.path)
			}
			if !got.Identity.PayloadSigned {
				t.Errorf("payload not signed")
			}
			if h, want := got.Header.Get("X-Amz-Content-Sha256"), sha256Hex(tc.body); h != want {
				t.Errorf("x-amz-content-sha256 %q, want %q", h, want)
			}
			if got.Chunked { // buffered, so it goes out with a Content-Length
				t.Errorf("forwarded chunked")
			}
			if len(tc.body) > 0 && got.Header.Get("Content-Length") != fmt.Sprint(len(tc.body)) {
				t.Errorf("Content-Length %q, want %d", got.Header.Get("Content-Length"), len(tc.body))
			}
			for k, v := range tc.headers {
				if got.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v)
				}
			}
		})
	}
}

// TestProxyStreamsResponses checks a response is passed on as the upstream
// flushes it, not when it ends.
func TestProxyStreamsResponses(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	release := make(chan struct{})
	up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	})
	_, base := startProxy(t, Config{Upstream: up.URL})
	resp, err := newClient(t).Get(base + "/workspaces/ws-1/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line := make(chan string, 1)
	go func() { l, _ := br.ReadString('\n'); line <- l }()
	select {
	case l := <-line:
		if l != "first\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the first chunk did not arrive before the upstream finished: the proxy does not flush")
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Fatalf("rest %q", rest)
	}
	up.last(t)
}

// TestProxyStripsClientSigningHeaders: whatever the client sends as
// Authorization or X-Amz-* signing headers, the upstream sees only the
// proxy's signature, over the real body.
func TestProxyStripsClientSigningHeaders(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	_, base := startProxy(t, Config{Upstream: up.URL})
	body := []byte("remote write payload")
	req, _ := http.NewRequest(http.MethodPost, base+"/workspaces/ws-1/api/v1/remote_write", bytes.NewReader(body))
	evil := map[string]string{
		"Authorization":        "AWS4-HMAC-SHA256 Credential=AKIDEVIL/20000101/us-east-1/aps/aws4_request, SignedHeaders=host, Signature=00",
		"X-Amz-Date":           "20000101T000000Z",
		"X-Amz-Security-Token": "evil-token",
		"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD", // would leave the body unsigned
		"X-Amz-Signature":      "00",
		"X-Amz-Credential":     "AKIDEVIL/20000101/us-east-1/aps/aws4_request",
	}
	for k, v := range evil {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Amz-User-Agent", "kept") // not a signing header
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := up.last(t)
	if a := got.Header.Values("Authorization"); len(a) != 1 || !strings.Contains(a[0], "Credential="+testKeyID+"/") {
		t.Errorf("Authorization %q", a)
	}
	if d := got.Header.Values("X-Amz-Date"); len(d) != 1 || d[0] == evil["X-Amz-Date"] {
		t.Errorf("X-Amz-Date %q", d)
	}
	for _, k := range []string{"X-Amz-Security-Token", "X-Amz-Signature", "X-Amz-Credential"} {
		if v, ok := got.Header[k]; ok {
			t.Errorf("%s forwarded: %q", k, v)
		}
	}
	if h := got.Header.Values("X-Amz-Content-Sha256"); len(h) != 1 || h[0] != sha256Hex(body) {
		t.Errorf("x-amz-content-sha256 %q", h)
	}
	if !got.Identity.PayloadSigned || got.Identity.Temporary {
		t.Errorf("identity %+v", got.Identity)
	}
	if got.Header.Get("X-Amz-User-Agent") != "kept" {
		t.Errorf("X-Amz-User-Agent not forwarded")
	}
}

// TestProxyHopByHopHeaders: connection-scoped headers stay with the
// connection; end-to-end headers are forwarded and signed.
func TestProxyHopByHopHeaders(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	_, base := startProxy(t, Config{Upstream: up.URL})
	resp, body := rawRequest(t, hostOf(t, base), "GET /workspaces/ws-1/api/v1/query?query=up HTTP/1.1\r\n"+
		"Host: proxy.example\r\n"+
		"Connection: close, X-Hop, Upgrade\r\n"+
		"Upgrade: websocket\r\n"+
		"X-Hop: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Authorization: Basic eDp5\r\n"+
		"Expect: 100-continue\r\n"+
		"Accept: application/json\r\n"+
		"X-Scope-OrgID: team-a\r\n"+
		"X-Multi: a\r\nX-Multi: b\r\n"+
		"User-Agent: curl/8\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := up.last(t)
	for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Upgrade", "Expect"} {
		if v, ok := got.Header[k]; ok {
			t.Errorf("%s forwarded: %q", k, v)
		}
	}
	if got.Header.Get("X-Scope-Orgid") != "team-a" || got.Header.Get("Accept") != "application/json" ||
		strings.Join(got.Header.Values("X-Multi"), ",") != "a,b" || got.Header.Get("User-Agent") != "curl/8" {
		t.Errorf("end-to-end headers not forwarded: %v", got.Header)
	}
	signed := strings.Join(signedHeaders(t, got.Header.Get("Authorization")), ";")
	for _, h := range []string{"accept", "host", "x-amz-content-sha256", "x-amz-date", "x-multi", "x-scope-orgid"} {
		if !strings.Contains(";"+signed+";", ";"+h+";") {
			t.Errorf("%s not signed: SignedHeaders=%s", h, signed)
		}
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	envCreds(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, base := startProxy(t, Config{Upstream: "http://" + addr + "/prefix"})
	resp, err := newClient(t).Get(base + "/workspaces/ws-1/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if want := "sigv4-proxy: upstream http://" + addr; !strings.HasPrefix(string(body), want) || !strings.Contains(string(body), "refused") {
		t.Errorf("body %q, want it to start with %q and say why", body, want)
	}
}

func TestProxyPassesUpstreamErrorsThrough(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	_, base := startProxy(t, Config{Upstream: up.URL})
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		want := fmt.Sprintf(`{"message":"status %d from upstream"}`, status)
		up.setRespond(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "7")
			w.Header().Set("X-Amzn-Errortype", "ThrottlingException")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, want)
		})
		resp, err := newClient(t).Post(base+"/workspaces/ws-1/api/v1/remote_write", "application/x-protobuf", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status || string(body) != want || resp.Header.Get("Retry-After") != "7" ||
			resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Amzn-Errortype") != "ThrottlingException" {
			t.Errorf("got %d %v %q, want %d and the upstream's headers and body", resp.StatusCode, resp.Header, body, status)
		}
		up.last(t)
	}
}

func TestProxyTimeout(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	_, base := startProxy(t, Config{Upstream: up.URL, Timeout: 200 * time.Millisecond})
	resp, err := newClient(t).Get(base + "/workspaces/ws-1/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "did not answer within 200ms") {
		t.Fatalf("got %d %q, want 504", resp.StatusCode, body)
	}
}

// TestProxyRejectsUnsignableQueries: a query Go's parser drops parts of
// would be signed differently from what the upstream reads.
func TestProxyRejectsUnsignableQueries(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	_, base := startProxy(t, Config{Upstream: up.URL})
	for _, q := range []string{"a=1;b=2", "a=%zz", "a=%4"} {
		resp, body := rawRequest(t, hostOf(t, base), "GET /workspaces/ws-1/api/v1/query?"+q+" HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "cannot be signed") {
			t.Errorf("?%s: got %d %q, want 400", q, resp.StatusCode, body)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
}

func TestProxyHealth(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	_, base := startProxy(t, Config{Upstream: up.URL + "/prefix"})
	resp, err := newClient(t).Get(base + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Healthy") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("health check reached the upstream (%d requests)", n)
	}
}

// TestProxySessionTokenFromEnv: AWS_SESSION_TOKEN goes out as
// X-Amz-Security-Token, and the upstream accepts the temporary credentials.
func TestProxySessionTokenFromEnv(t *testing.T) {
	const token = "IQoJb3JpZ2luX2VjEXAMPLE/token+with=odd/characters"
	isolateAWSEnv(t, "AWS_ACCESS_KEY_ID", "ASIASTRATATEMP", "AWS_SECRET_ACCESS_KEY", testSecret, "AWS_SESSION_TOKEN", token)
	up := newUpstream(t, staticStore("ASIASTRATATEMP", testSecret, token))
	_, base := startProxy(t, Config{Upstream: up.URL})
	resp, err := newClient(t).Get(base + "/workspaces/ws-1/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := up.last(t)
	if got.Header.Get("X-Amz-Security-Token") != token || !got.Identity.Temporary || got.Identity.AccessKeyID != "ASIASTRATATEMP" {
		t.Errorf("token %q, identity %+v", got.Header.Get("X-Amz-Security-Token"), got.Identity)
	}
}

func TestNewFailsWithoutCredentials(t *testing.T) {
	isolateAWSEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := New(ctx, Config{Upstream: "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "retrieving AWS credentials") {
		t.Fatalf("err %v, want a credentials error", err)
	}
	_, err = New(ctx, Config{Upstream: "http://127.0.0.1:1", Profile: "no-such-profile"})
	if err == nil || !strings.Contains(err.Error(), "no-such-profile") {
		t.Fatalf("err %v, want it to name the missing profile", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "upstream is required"},
		{Config{Upstream: "ftp://h"}, "scheme"},
		{Config{Upstream: "127.0.0.1:8080"}, "upstream"},
		{Config{Upstream: "localhost:8080"}, "scheme"},
		{Config{Upstream: "http://"}, "no host"},
		{Config{Upstream: "http://h/p?q=1"}, "query"},
		{Config{Upstream: "http://h/p?"}, "query"},
		{Config{Upstream: "http://u:p@h"}, "user info"},
		{Config{Upstream: "http://h/#f"}, "fragment"},
		{Config{Upstream: "http://h", Region: "us east"}, "region"},
		{Config{Upstream: "http://h", Service: "a/b"}, "service"},
		{Config{Upstream: "http://h", Timeout: -1}, "timeout"},
		{Config{Upstream: "http://h", RoleARN: "role"}, "role_arn"},
		{Config{Upstream: "http://h", MaxBodyBytes: -1}, "max_body_bytes"},
		{Config{Upstream: "http://h", BodyTimeout: -1}, "body_timeout"},
		{Config{Upstream: "http://h", MaxConcurrent: -1}, "max_concurrent"},
		{Config{Upstream: "http://h", MaxInFlightBodyBytes: -1}, "max_in_flight_body_bytes"},
		{Config{Upstream: "http://h", MaxBodyBytes: 2 << 20, MaxInFlightBodyBytes: 1 << 20}, "less than max_body_bytes"},
		{Config{Upstream: "http://h", MaxBodyBytes: 100 << 20}, "less than max_body_bytes"}, // over the default in-flight budget
		{Config{Upstream: "http://h", Allow: []string{"/workspaces"}}, "METHOD /path/prefix"},
		{Config{Upstream: "http://h", Allow: []string{"GET workspaces"}}, "must start with '/'"},
		{Config{Upstream: "http://h", Allow: []string{"GET /a/../b"}}, "canonical form"},
		{Config{Upstream: "http://h", Allow: []string{"G3T /a"}}, "not an HTTP method"},
		{Config{Upstream: "http://h", Allow: []string{"GET /a?x"}}, "no query"},
		{Config{Upstream: "http://h", Allow: []string{"get /workspaces/*/api/v1/rules", "* /x/"}, AllowControlPlane: true}, ""},
		{Config{Upstream: "https://aps-workspaces.us-east-1.amazonaws.com/"}, ""},
		{Config{Upstream: "http://127.0.0.1:8080/prefix/v1/", RoleARN: "arn:aws:iam::123456789012:role/r"}, ""},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestProxyHTTPSUpstream: an https upstream speaking HTTP/2 gets the same
// exact, verifiable requests (the opaque path must survive :path).
func TestProxyHTTPSUpstream(t *testing.T) {
	envCreds(t)
	up := newTLSUpstream(t, staticStore(testKeyID, testSecret, ""))
	p, base := startProxy(t, Config{Upstream: up.URL + "/prefix"})
	p.transport.TLSClientConfig = up.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	client := newClient(t)
	for _, target := range []string{
		`/workspaces/ws-1/api/v1/label/a%3Ab/values?match%5B%5D=up%7Bx%3D%22a+b%22%7D`,
		"/workspaces/ws-1/api/v1/label/x{y}|\"z\"/values?q=\"{|}\"",
	} {
		resp, body := rawRequest(t, hostOf(t, base), "GET "+target+" HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", target, resp.StatusCode, body)
		}
		got := up.last(t)
		if got.Proto != "HTTP/2.0" || got.RequestURI != "/prefix"+target {
			t.Errorf("upstream got %s %s, want HTTP/2.0 /prefix%s", got.Proto, got.RequestURI, target)
		}
	}
	payload := randomBytes(t, 2<<20)
	resp, err := client.Post(base+"/workspaces/ws-1/api/v1/remote_write", "application/x-protobuf", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := up.last(t); resp.StatusCode != http.StatusOK || !bytes.Equal(got.Body, payload) || !got.Identity.PayloadSigned {
		t.Errorf("remote write over HTTP/2: status %d, %d bytes, signed %v", resp.StatusCode, len(got.Body), got.Identity.PayloadSigned)
	}
}

// TestProxyTruncatedBody: a client that sends less than its Content-Length
// gets a 400 and nothing reaches the upstream.
func TestProxyTruncatedBody(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	_, base := startProxy(t, Config{Upstream: up.URL})
	conn, err := net.Dial("tcp", hostOf(t, base))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(conn, "POST /workspaces/ws-1/api/v1/remote_write HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\nonly ten b")
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "reading request body") {
		t.Fatalf("got %d %q, want 400", resp.StatusCode, body)
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
}
