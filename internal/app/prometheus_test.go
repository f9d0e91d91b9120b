package app

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/stratametrics/strata/internal/sigv4proxy"
	"github.com/stratametrics/strata/internal/testutil"
)

// requirePrometheus returns Debian's prometheus binary (.ci/run installs it).
func requirePrometheus(t *testing.T) string {
	return testutil.RequireBinary(t, "prometheus", "apt-get install prometheus")
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A real Prometheus scrapes itself and remote-writes to a workspace: its up and
// prometheus_tsdb_head_series series arrive, and its HA external labels are deduplicated.
func TestRealPrometheusRemoteWrite(t *testing.T) {
	bin := requirePrometheus(t)
	r := start(t, "--data-dir", t.TempDir())
	ws := newWorkspace(t, r)

	// Debian's Prometheus 2.42 accepts a sigv4 block but sends requests unsigned (its
	// build replaces the signer with a pass-through), so it signs through the signing
	// proxy, as AMP users without SigV4 in their sender do.
	p, err := sigv4proxy.New(context.Background(), sigv4proxy.Config{
		Upstream:    r.url,
		Region:      "us-east-1",
		Service:     "aps",
		Credentials: credentials.NewStaticCredentialsProvider(testKeyID, testSecret, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(p)
	defer proxy.Close()
	defer p.Close()

	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf(`
global:
  scrape_interval: 1s
  external_labels:
    cluster: e2e
    __replica__: replica-a
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["%s"]
remote_write:
  - url: %s
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
`, addr, proxy.URL+"/workspaces/"+ws+"/api/v1/remote_write")
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--config.file", cfgFile, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	want := []string{
		`{__name__="up", cluster="e2e", instance="` + addr + `", job="prometheus"}`,
		`prometheus_tsdb_head_series`,
	}
	var (
		got map[string][]sample
		all string
	)
	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("stored: %s\nprometheus log:\n%s", all, log)
		}
	}()
	// Prometheus scrapes and sends on its own timers.
	testutil.Eventually(t, 60*time.Second, "Prometheus' series to arrive", func() bool {
		got = stored(t, r, ws, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "up|prometheus_tsdb_head_series"))
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		all = strings.Join(keys, "\n")
		return strings.Contains(all, want[0]) && strings.Contains(all, want[1])
	})
	if strings.Contains(all, "__replica__") {
		t.Fatalf("the replica label was stored: %s", all)
	}
	for k, v := range got {
		if strings.HasPrefix(k, `{__name__="up"`) && v[len(v)-1].v != 1 {
			t.Fatalf("up is %v", v)
		}
	}
}
