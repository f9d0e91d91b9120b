package auth

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/awsapi"
)

// BenchmarkWrap measures the middleware's cost per request for a signed
// 100 KiB remote-write POST: reading and hashing the body, verifying the
// signature, looking up the resource policy and tags, evaluating policies,
// and handing the body to a handler that reads it. The handler's own work is
// io.Copy to io.Discard. body=0 shows the fixed cost without body hashing.
func BenchmarkWrap(b *testing.B) {
	for _, bc := range []struct {
		name  string
		size  int
		audit bool
	}{
		{"body=100KiB/audit=off", 100 << 10, false},
		{"body=100KiB/audit=on", 100 << 10, true},
		{"body=0/audit=off", 0, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchmarkWrap(b, bc.size, bc.audit)
		})
	}
}

func benchmarkWrap(b *testing.B, size int, audit bool) {
	dir := b.TempDir()
	idFile := filepath.Join(dir, "identities.yaml")
	writeFile(b, filepath.Join(dir, "filesecret.key"), testKeys["filesecret"].SecretAccessKey)
	writeFile(b, idFile, testIdentities)
	signedAt := time.Date(2025, 11, 25, 10, 20, 30, 0, time.UTC)
	cfg := Config{IdentitiesFile: idFile}
	if audit {
		cfg.AuditLog, cfg.AuditDataPlane = AuditLogStdout, true
	}
	a, err := New(cfg, Env{Region: testRegion, AccountID: acctA, Getenv: func(string) string { return "" },
		Now: func() time.Time { return signedAt.Add(time.Second) }, Stdout: io.Discard},
		newFakeResources(b), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()

	handled := 0
	h := a.Wrap(RouteInfo{
		Action:    "aps:RemoteWrite",
		Resource:  func(r *http.Request) string { return wsARN(acctA, r.PathValue("workspaceId")) },
		DataPlane: true,
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			b.Fatal(err)
		}
		handled++
		w.WriteHeader(http.StatusNoContent)
	}))
	mux := http.NewServeMux()
	mux.Handle("POST /workspaces/{workspaceId}/api/v1/remote_write", h)

	body := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	const target = "/workspaces/ws-a/api/v1/remote_write"
	// The xacct user: cross-account, so both its identity policy and ws-a's
	// resource policy are evaluated.
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	r.Host = "aps-workspaces.us-east-1.amazonaws.com"
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	signAt(b, r, testKeys["xacct"], hexSHA256(body), "aps", testRegion, signedAt)

	rd := bytes.NewReader(body)
	rc := io.NopCloser(rd)
	w := &discardWriter{h: http.Header{}}
	if size > 0 {
		b.SetBytes(int64(len(body)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rd.Reset(body)
		r.Body = rc
		w.status = 0
		clear(w.h)
		w.h.Set(awsapi.RequestIDHeader, "8b2c8b1e-6f9b-4bd4-9a0e-0d6f0d7c1a2b")
		mux.ServeHTTP(w, r)
		if w.status != http.StatusNoContent {
			b.Fatalf("status %d", w.status)
		}
	}
	if handled != b.N {
		b.Fatalf("handled %d of %d", handled, b.N)
	}
}

// discardWriter is a ResponseWriter that allocates nothing.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}
