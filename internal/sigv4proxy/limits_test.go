package sigv4proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/testutil"
)

// dialProxy opens a raw connection to the proxy at base.
func dialProxy(t *testing.T, base string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostOf(t, base), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn
}

func readResponse(t *testing.T, conn net.Conn, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// waitBudgetEmpty waits until every body byte is given back to the in-flight budget
// (the handler gives them back as it returns, which may be after the client has its
// answer).
func waitBudgetEmpty(t *testing.T, p *Proxy) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "the body budget given back", func() bool {
		p.bodyBytes.mu.Lock()
		defer p.bodyBytes.mu.Unlock()
		return p.bodyBytes.used == 0
	})
}

// TestProxyRefusesLargeBodies: a body over MaxBodyBytes is answered 413,
// never streamed: with a Content-Length before any of it is read, chunked as
// soon as it outgrows the limit.
func TestProxyRefusesLargeBodies(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	const limit = 64 << 10
	p, base := startProxy(t, Config{Upstream: up.URL, MaxBodyBytes: limit})
	_, defBase := startProxy(t, Config{Upstream: up.URL})
	want := fmt.Sprintf("larger than --max-body-bytes (%d bytes)", limit)

	t.Run("content-length, body never sent", func(t *testing.T) {
		// Only the headers are sent: the answer cannot wait for the body.
		conn := dialProxy(t, base)
		fmt.Fprintf(conn, "POST /workspaces/ws-1/api/v1/remote_write HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\n\r\n", limit+1)
		resp, body := readResponse(t, conn, "POST")
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, want) {
			t.Fatalf("got %d %q, want 413", resp.StatusCode, body)
		}
	})
	t.Run("default limit, expect 100-continue", func(t *testing.T) {
		conn := dialProxy(t, defBase)
		fmt.Fprintf(conn, "POST /workspaces/ws-1/api/v1/remote_write HTTP/1.1\r\nHost: p\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", DefaultMaxBodyBytes+1)
		resp, body := readResponse(t, conn, "POST")
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, fmt.Sprintf("(%d bytes)", DefaultMaxBodyBytes)) {
			t.Fatalf("got %d %q, want 413", resp.StatusCode, body)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		conn := dialProxy(t, base)
		fmt.Fprintf(conn, "POST /workspaces/ws-1/api/v1/remote_write HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := strings.Repeat("x", 16<<10)
		for range limit/len(chunk) + 1 { // one chunk beyond the limit, and no end
			fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		resp, body := readResponse(t, conn, "POST")
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, want) {
			t.Fatalf("got %d %q, want 413", resp.StatusCode, body)
		}
	})
	t.Run("chunked, one byte over", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, base+"/workspaces/ws-1/api/v1/remote_write",
			io.MultiReader(strings.NewReader(strings.Repeat("y", limit+1)))) // chunked: no length
		resp, err := newClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), want) {
			t.Fatalf("got %d %q, want 413", resp.StatusCode, body)
		}
	})
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
	waitBudgetEmpty(t, p)
}

// TestProxyBodyTimeout: a client that stops sending its body gets 408 once
// BodyTimeout passes, and nothing reaches the upstream. A body that arrives
// in time is not cut off by the deadline while the upstream answers slowly.
func TestProxyBodyTimeout(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	const timeout = 200 * time.Millisecond
	p, base := startProxy(t, Config{Upstream: up.URL, BodyTimeout: timeout})
	for name, head := range map[string]string{
		"content-length": "Content-Length: 100\r\n\r\nonly ten b",
		"chunked":        "Transfer-Encoding: chunked\r\n\r\na\r\nonly ten b\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			conn := dialProxy(t, base)
			// The body stalls: only the proxy's deadline can end the wait.
			fmt.Fprintf(conn, "POST /workspaces/ws-1/api/v1/remote_write HTTP/1.1\r\nHost: p\r\n%s", head)
			resp, body := readResponse(t, conn, "POST")
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "did not arrive within --body-timeout (200ms)") {
				t.Fatalf("got %d %q, want 408", resp.StatusCode, body)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
	waitBudgetEmpty(t, p)

	// The deadline covers the body only: an upstream slower than it still answers.
	up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * timeout):
			_, _ = io.WriteString(w, "slow but fine")
		case <-r.Context().Done():
		}
	})
	resp, err := newClient(t).Post(base+"/workspaces/ws-1/api/v1/remote_write", "application/x-protobuf", strings.NewReader("batch"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "slow but fine" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	up.last(t)
}

// awaitStarted waits for the upstream to hold a request.
func awaitStarted(t *testing.T, started <-chan string) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}
}

// blockUpstream makes the upstream hold each request until release is
// closed, announcing each on started.
func blockUpstream(up *fakeUpstream) (started chan string, release chan struct{}) {
	started, release = make(chan string, 10), make(chan struct{})
	up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		started <- r.URL.Path
		select {
		case <-release:
			_, _ = io.WriteString(w, "ok")
		case <-r.Context().Done():
		}
	})
	return started, release
}

// TestProxyConcurrencyCap: beyond MaxConcurrent requests in flight the proxy
// answers 503 with Retry-After at once, forwards nothing, and takes requests
// again when one finishes.
func TestProxyConcurrencyCap(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	started, release := blockUpstream(up)
	_, base := startProxy(t, Config{Upstream: up.URL, MaxConcurrent: 2})
	client := newClient(t)
	first := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := client.Get(base + "/workspaces/ws-1/api/v1/query?query=up")
			if err != nil {
				first <- 0
				return
			}
			resp.Body.Close()
			first <- resp.StatusCode
		}()
		awaitStarted(t, started) // in flight at the upstream
	}
	resp, err := client.Post(base+"/workspaces/ws-2/api/v1/remote_write", "application/x-protobuf", strings.NewReader("batch"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(string(body), "2 requests are in flight, the most --max-concurrent allows") {
		t.Fatalf("third request: %d Retry-After %q %q, want 503", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := len(up.requests()); n != 2 {
		t.Fatalf("upstream got %d requests, want the 2 in flight", n)
	}
	close(release)
	for range 2 {
		if code := <-first; code != http.StatusOK {
			t.Errorf("request in flight: status %d", code)
		}
	}
	// The slots are given back as the handlers return.
	testutil.Eventually(t, 10*time.Second, "a slot after the requests in flight finished", func() bool {
		resp, err := client.Get(base + "/workspaces/ws-1/api/v1/labels")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestProxyInFlightBodyBytes: bodies held in memory are bounded over all
// requests; a body that does not fit is answered 503 with Retry-After, with
// a Content-Length or chunked, and the bytes are given back afterwards.
func TestProxyInFlightBodyBytes(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	started, release := blockUpstream(up)
	const budget = 4 << 10
	p, base := startProxy(t, Config{Upstream: up.URL, MaxBodyBytes: budget, MaxInFlightBodyBytes: budget})
	client := newClient(t)
	post := func(body io.Reader) (int, string, string) {
		resp, err := client.Post(base+"/workspaces/ws-1/api/v1/remote_write", "application/x-protobuf", body)
		if err != nil {
			t.Error(err)
			return 0, "", ""
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	held := make(chan int, 1)
	go func() {
		code, _, _ := post(strings.NewReader(strings.Repeat("a", budget-10)))
		held <- code
	}()
	awaitStarted(t, started)
	for name, body := range map[string]io.Reader{
		"content-length": strings.NewReader(strings.Repeat("b", 11)),
		"chunked":        io.MultiReader(strings.NewReader(strings.Repeat("b", 11))),
	} {
		code, retry, msg := post(body)
		if code != http.StatusServiceUnavailable || retry != "1" || !strings.Contains(msg, "--max-in-flight-body-bytes") {
			t.Errorf("%s: %d Retry-After %q %q, want 503", name, code, retry, msg)
		}
	}
	// A body that fits in what is left goes through.
	up.setRespond(nil)
	if code, _, msg := post(strings.NewReader(strings.Repeat("c", 10))); code != http.StatusOK {
		t.Errorf("a body that fits: %d %q", code, msg)
	}
	close(release)
	if code := <-held; code != http.StatusOK {
		t.Errorf("the body held: status %d", code)
	}
	waitBudgetEmpty(t, p)
	if code, _, msg := post(strings.NewReader(strings.Repeat("d", budget))); code != http.StatusOK {
		t.Errorf("after release: %d %q", code, msg)
	}
	waitBudgetEmpty(t, p)
}

// TestMainListenNonLoopback: a non-loopback --listen needs
// --allow-non-loopback, and is then logged as a warning.
func TestMainListenNonLoopback(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	var stderr syncBuffer
	code := runMain(context.Background(), []string{"--upstream", up.URL, "--listen", "0.0.0.0:0"}, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "is not a loopback address") || !strings.Contains(stderr.String(), "--allow-non-loopback") {
		t.Fatalf("exit %d, want 2 naming --allow-non-loopback:\n%s", code, stderr.String())
	}

	addr, log := startMain(t, "--upstream", up.URL, "--listen", "0.0.0.0:0", "--allow-non-loopback")
	if !strings.Contains(log.String(), `level=WARN msg="listening on a non-loopback address`) {
		t.Errorf("no warning:\n%s", log.String())
	}
	_, port, _ := net.SplitHostPort(addr)
	resp, err := newClient(t).Get("http://127.0.0.1:" + port + "/workspaces/ws-1/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	up.last(t)

	// Loopback by name is loopback: no flag, no warning.
	_, log = startMain(t, "--upstream", up.URL, "--listen", "localhost:0")
	if strings.Contains(log.String(), "non-loopback") {
		t.Errorf("localhost taken for non-loopback:\n%s", log.String())
	}
}

// TestMainHeaderLimit: the command line's server refuses oversized headers.
func TestMainHeaderLimit(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	addr, _ := startMain(t, "--upstream", up.URL)
	resp, _ := rawRequest(t, addr, "GET /workspaces/ws-1/api/v1/query?query=up HTTP/1.1\r\nHost: p\r\nX-Big: "+
		strings.Repeat("x", 2*maxHeaderBytes)+"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
}
