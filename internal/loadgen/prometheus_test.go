package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/testutil"
)

const prometheusBinary = "/usr/bin/prometheus"

// startPrometheus runs a real Prometheus with its remote write receiver on a
// free loopback port and returns its base URL. It is killed when the test
// ends.
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
	for try := 1; ; try++ { // the free port may be taken before Prometheus binds it
		base, err := tryStartPrometheus(t, cfgFile, filepath.Join(dir, fmt.Sprintf("data%d", try)))
		if err == nil {
			return base
		}
		if !errors.Is(err, testutil.ErrPortTaken) || try == 3 {
			t.Fatalf("starting prometheus: %v", err)
		}
		t.Logf("starting prometheus: %v; retrying on another port", err)
	}
}

// tryStartPrometheus starts one Prometheus on a port free a moment ago and
// waits until it is ready.
func tryStartPrometheus(t *testing.T, cfgFile, dataDir string) (string, error) {
	t.Helper()
	port, err := testutil.FreePort()
	if err != nil {
		return "", err
	}
	base := "http://127.0.0.1:" + port
	proc, err := testutil.StartProcess(t, "prometheus", exec.Command(prometheusBinary,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address=127.0.0.1:"+port,
		"--web.enable-remote-write-receiver",
	))
	if err != nil {
		return "", err
	}
	return base, proc.WaitReady(30*time.Second, testutil.GetOK(base+"/-/ready"))
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
