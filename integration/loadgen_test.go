package integration

import (
	"context"
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
	done := make(chan result, 1)
	go func() {
		rep, err := loadgen.Run(context.Background(), loadgen.Config{
			URL:            p.URL + "/workspaces/" + ws + "/api/v1/remote_write",
			ActiveSeries:   2000,
			ScrapeInterval: time.Second,
			Backfill:       2 * time.Minute,
			Duration:       12 * time.Second,
			BatchSize:      500,
			Concurrency:    4,
			MaxRetries:     100,
			MinBackoff:     50 * time.Millisecond,
			MaxBackoff:     500 * time.Millisecond,
			SigV4:          true,
			Credentials:    credentials.NewStaticCredentialsProvider(rootKeyID, rootSecret, ""),
			Verify:         true,
			VerifyTimeout:  time.Minute,
		})
		done <- result{rep, err}
	}()
	time.Sleep(4 * time.Second)
	p.kill()
	time.Sleep(500 * time.Millisecond)
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
