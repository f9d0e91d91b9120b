package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// runStrata runs the strata binary with args and the root key as the AWS credentials;
// it returns stdout, stderr and the exit code.
func runStrata(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(withoutAWSEnv(), "AWS_ACCESS_KEY_ID="+rootKeyID, "AWS_SECRET_ACCESS_KEY="+rootSecret, "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// The dual-write check: Prometheus 3 scrapes itself and remote-writes everything to a
// workspace; `strata migrate verify` finds no difference over the window both hold.
// A series written to the workspace alone is then found, and the exit code says so.
func TestMigrateVerifyDualWrite(t *testing.T) {
	bin := requirePrometheus3(t)
	p := startStrata(t, "--data-dir", t.TempDir())
	ws := createWorkspace(t, p.URL)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s/workspaces/%s/api/v1/remote_write
    sigv4:
      region: us-east-1
      access_key: %s
      secret_key: %s
    queue_config:
      batch_send_deadline: 200ms
      min_backoff: 100ms
      max_backoff: 1s
`, addr, p.URL, ws, rootKeyID, rootSecret)
	_, promLog := startPrometheus(t, bin, dir, cfg, filepath.Join(dir, "prom"), addr)

	// A window of 20 one-second steps, once Prometheus has scraped through it and a
	// second more for remote write to deliver.
	start := time.Now().Add(3 * time.Second).Truncate(time.Second)
	end := start.Add(20 * time.Second)
	waitFor(t, "the window to pass", 60*time.Second, func() bool { return time.Now().After(end.Add(3 * time.Second)) }, promLog)
	verify := func(extra ...string) (string, int) {
		args := append([]string{"migrate", "verify", "--prometheus", "http://" + addr, "--workspace-endpoint", p.URL + "/workspaces/" + ws,
			"--end", end.UTC().Format(time.RFC3339), "--window", "20s", "--step", "1s"}, extra...)
		out, errOut, code := runStrata(t, args...)
		return out + errOut, code
	}
	out, code := verify()
	if code != 0 || !strings.Contains(out, "no differences in 22 queries") || strings.Contains(out, "(0 series") {
		t.Fatalf("exit %d\n%s\nprometheus:\n%s", code, out, promLog())
	}
	t.Logf("dual write, default queries:\n%s", out)

	// A series only the workspace has, inside the window.
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "only_in_strata"}, {Name: "instance", Value: addr}, {Name: "job", Value: "prometheus"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: end.Add(-5 * time.Second).UnixMilli()}},
	}}}
	raw, _ := wr.Marshal()
	body := snappy.Encode(nil, raw)
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/workspaces/"+ws+"/api/v1/remote_write", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp := signedDo(t, req, body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("writing the extra series: %d", resp.StatusCode)
	}
	queries := filepath.Join(dir, "queries")
	if err := os.WriteFile(queries, []byte("# what the dashboards ask\nsum by (job) (up)\nonly_in_strata\ncount by (job) ({__name__=~\".+\"})\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = verify("--queries", queries)
	if code != 1 || !strings.Contains(out, "ok    sum by (job) (up)") ||
		!strings.Contains(out, `{__name__="only_in_strata", instance=`) || !strings.Contains(out, "only in the workspace (6 points)") ||
		!strings.Contains(out, `DIFF  count by (job) ({__name__=~".+"}): 6 differences`) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	t.Logf("with a series only in the workspace:\n%s", out)
}
