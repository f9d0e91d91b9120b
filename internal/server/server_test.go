package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/tlsutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type running struct {
	s    *Server
	done chan error
	stop context.CancelFunc
}

func startServer(t *testing.T, cfg Config, ready func() error) *running {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.ShutdownTimeout = 5 * time.Second
	reg := prometheus.NewRegistry()
	s, err := New(cfg, nil, reg, reg, ready)
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("hello", "GET /hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, done: make(chan error, 1), stop: cancel}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func fetch(t *testing.T, c *http.Client, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Arbitrary methods and paths must not each become series of their own: before the
// method label was bounded, every one of these added two series to /metrics.
func TestRequestMetricsAreBounded(t *testing.T) {
	r := startServer(t, Config{InternalListen: "127.0.0.1:0"}, nil)
	base := "http://" + r.s.Addr().String()
	metricsURL := "http://" + r.s.InternalAddr().String() + "/metrics"
	series := func() int {
		_, body := fetch(t, http.DefaultClient, http.MethodGet, metricsURL)
		n := 0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "strata_http_requests_total{") {
				n++
			}
		}
		return n
	}
	for i := range 20 {
		fetch(t, http.DefaultClient, fmt.Sprintf("X%dMETHOD", i), base+"/hello")
	}
	before := series()
	for i := range 200 {
		code, body := fetch(t, http.DefaultClient, fmt.Sprintf("JUNK%d", i), fmt.Sprintf("%s/junk/%d/%s", base, i, strings.Repeat("p", 1000)))
		if code != http.StatusNotFound || len(body) > 1024 {
			t.Fatalf("junk request: %d, %d-byte answer", code, len(body))
		}
	}
	if after := series(); after != before {
		t.Fatalf("200 junk methods and paths grew strata_http_requests_total from %d to %d series", before, after)
	}
	_, body := fetch(t, http.DefaultClient, http.MethodGet, metricsURL)
	if !strings.Contains(body, `strata_http_requests_total{method="other",route="unknown",status="404"} 220`) {
		t.Fatalf("junk not counted under method=other:\n%s", grepLines(body, "strata_http_requests_total"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestInternalListener(t *testing.T) {
	r := startServer(t, Config{InternalListen: "127.0.0.1:0", EnablePprof: true}, func() error { return errors.New("identities file not loaded") })
	public := "http://" + r.s.Addr().String()
	internal := "http://" + r.s.InternalAddr().String()
	// The public listener serves /metrics and pprof only where the app mounts them
	// (behind SigV4); the server itself mounts them on the internal listener only.
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		if code, _ := fetch(t, http.DefaultClient, http.MethodGet, public+p); code != http.StatusNotFound {
			t.Errorf("public %s: %d, want 404", p, code)
		}
		if code, _ := fetch(t, http.DefaultClient, http.MethodGet, internal+p); code != http.StatusOK {
			t.Errorf("internal %s: %d", p, code)
		}
	}
	for _, base := range []string{public, internal} {
		code, body := fetch(t, http.DefaultClient, http.MethodGet, base+"/-/ready")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "identities file not loaded") {
			t.Errorf("%s/-/ready: %d %q", base, code, body)
		}
		if code, _ := fetch(t, http.DefaultClient, http.MethodGet, base+"/-/healthy"); code != http.StatusOK {
			t.Errorf("%s/-/healthy: %d", base, code)
		}
	}
}

func TestConnectionCap(t *testing.T) {
	r := startServer(t, Config{MaxConnections: 3}, nil)
	addr := r.s.Addr().String()
	// Three idle connections take every slot.
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Make sure the server accepted all three before the fourth arrives.
	for _, c := range conns {
		if _, err := io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Fatal("a fourth connection was served with the cap at 3")
	} else if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the fourth connection was left hanging instead of closed: %v", err)
	}
	// A slot freed is a slot for the next client.
	conns[0].Close()
	// The server learns of the close when the kernel tells its connection goroutine.
	testutil.Eventually(t, 10*time.Second, "a slot after one connection closed", func() bool {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/hello")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "strata", false).WriteFiles(t, dir, "server")
	r := startServer(t, Config{TLS: tlsutil.Config{CertFile: certFile, KeyFile: keyFile}}, nil)
	if !strings.HasPrefix(r.s.ExternalURL(), "https://") {
		t.Fatalf("external URL %q with TLS on", r.s.ExternalURL())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
	code, body := fetch(t, client, http.MethodGet, r.s.ExternalURL()+"/hello")
	if code != 200 || body != "hello" {
		t.Fatalf("over TLS: %d %q", code, body)
	}
	// Plain HTTP on the TLS port is refused.
	resp, err := http.Get("http://" + r.s.Addr().String() + "/hello")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS listener")
		}
	}
	client.CloseIdleConnections()
}
