package integration

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/stratametrics/strata/internal/loadgen"
)

// The load generator writes (signed) while the server is killed with SIGKILL and
// restarted on the same port and data directory; afterwards it reads back every sample
// it got a 2xx for, through the query API.
func TestLoadgenSurvivesKill9(t *testing.T) {
	addr := freeAddr(t)
	dataDir := t.TempDir()
	p := startStrata(t, "--data-dir", dataDir, "--listen", addr)
	ws := createWorkspace(t, p.URL)

	type result struct {
		rep loadgen.Report
		err error
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8 // one per worker and verifier, as loadgen's own client
	writes := &writeCounter{next: tr}
	hc := &http.Client{Transport: writes}
	defer hc.CloseIdleConnections()
	done := make(chan result, 1)
	go func() {
		cfg := verifiedLoad(hc, p.URL+"/workspaces/"+ws+"/api/v1/remote_write")
		cfg.ActiveSeries, cfg.Backfill, cfg.Duration, cfg.Concurrency = 2000, 2*time.Minute, 12*time.Second, 4
		rep, err := loadgen.Run(context.Background(), cfg)
		done <- result{rep, err}
	}()
	// Kill the server once 100 writes (50,000 samples) are acknowledged: early in the
	// 2-minute backfill, so the load generator is still sending.
	waitFor(t, "the load generator to get 100 writes acknowledged", time.Minute, func() bool { return writes.acked.Load() >= 100 }, p.Log)
	p.kill()
	t.Logf("killed after %d acknowledged writes", writes.acked.Load())
	// Restart it once a write was refused: the load generator has found it down, and
	// retries across the gap.
	waitFor(t, "a write to be refused while the server is down", time.Minute, func() bool { return writes.refused.Load() > 0 })
	startStrata(t, "--data-dir", dataDir, "--listen", addr)

	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	v := res.rep.Verify
	if v == nil || res.rep.AcceptedSamples == 0 {
		t.Fatalf("nothing accepted or verified: %+v", res.rep)
	}
	if !v.OK() {
		t.Fatalf("after kill -9: %d of %d acknowledged samples missing, %d wrong", v.MissingSamples, v.CheckedSamples, v.WrongValues)
	}
	t.Logf("%d samples accepted across a kill -9, %d checked, none missing", res.rep.AcceptedSamples, v.CheckedSamples)
}

// verifiedLoad is a signed load on url through hc, one sample per series a second in
// batches of 500, retried across a server's absence, every acknowledged sample read back
// at the end.
func verifiedLoad(hc *http.Client, url string) loadgen.Config {
	return loadgen.Config{
		HTTPClient:     hc,
		URL:            url,
		ScrapeInterval: time.Second,
		BatchSize:      500,
		MaxRetries:     200,
		MinBackoff:     50 * time.Millisecond,
		MaxBackoff:     500 * time.Millisecond,
		SigV4:          true,
		Credentials:    credentials.NewStaticCredentialsProvider(rootKeyID, rootSecret, ""),
		Verify:         true,
		VerifyTimeout:  2 * time.Minute,
	}
}

// writeCounter counts the remote writes next answered 2xx and those it could not
// connect for.
type writeCounter struct {
	next           http.RoundTripper
	acked, refused atomic.Int64
}

func (c *writeCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if !strings.HasSuffix(req.URL.Path, "/remote_write") {
		return resp, err
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		c.refused.Add(1)
	case err == nil && resp.StatusCode/100 == 2:
		c.acked.Add(1)
	}
	return resp, err
}

func (c *writeCounter) CloseIdleConnections() {
	if ci, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
