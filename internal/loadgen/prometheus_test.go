package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"github.com/stratametrics/strata/internal/testutil"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const prometheusBinary = "/usr/bin/prometheus"

type syncBuffer = testutil.SyncBuffer

// startPrometheus runs a real Prometheus with its remote write receiver on a
// free loopback port and returns its base URL. It is killed (by PID) when
// the test ends.
func startPrometheus(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(prometheusBinary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prometheus is not installed; .ci/run installs it (%v)", err)
		}
		t.Skipf("%s is absent (apt-get install prometheus); skipping the end-to-end test against a real Prometheus", prometheusBinary)
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for try := range 3 { // the free port may be taken before Prometheus binds it
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var logs syncBuffer
		cmd := exec.Command(prometheusBinary,
			"--config.file="+cfgFile,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data%d", try)),
			"--web.listen-address="+addr,
			"--web.enable-remote-write-receiver",
		)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		pid := cmd.Process.Pid
		t.Cleanup(func() {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
			<-exited
		})
		base := "http://" + addr
		if lastErr = waitReady(base, exited); lastErr == nil {
			return base
		}
		t.Logf("prometheus on %s did not start: %v\n%s", addr, lastErr, logs.String())
	}
	t.Fatalf("starting prometheus: %v", lastErr)
	return ""
}

func waitReady(base string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after 30s")
}

// TestAgainstPrometheus sends a backfilled, churning remote write 1.0 load
// to a real Prometheus 2.42 and verifies every acknowledged sample through
// its query API. (Prometheus 2.42 does not take remote write 2.0.)
func TestAgainstPrometheus(t *testing.T) {
	base := startPrometheus(t)
	cfg := Config{
		URL:            base + "/api/v1/write",
		QueryURL:       base + "/api/v1/",
		ActiveSeries:   200,
		Churn:          0.05,
		ScrapeInterval: time.Second,
		Backfill:       time.Minute,
		Duration:       5 * time.Second,
		Concurrency:    4,
		BatchSize:      500,
		Verify:         true,
		VerifyTimeout:  30 * time.Second,
	}
	rep, err := Run(context.Background(), cfg)
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	if err != nil {
		t.Fatal(err)
	}
	v := rep.Verify
	if !v.OK() || v.Rounds != 1 {
		t.Fatalf("verification failed: %+v", v)
	}
	// 60 or 61 backfilled steps and about 5 live ones of 200 series.
	if v.CheckedSamples < 200*60 || rep.DroppedSamples != 0 || rep.RequestsByStatus["204"] != rep.Requests {
		t.Errorf("checked %d samples, dropped %d, statuses %v", v.CheckedSamples, rep.DroppedSamples, rep.RequestsByStatus)
	}
	if !rep.CaughtUp || rep.SeriesCreated <= 200 {
		t.Errorf("caught up %v, series created %d", rep.CaughtUp, rep.SeriesCreated)
	}
}
