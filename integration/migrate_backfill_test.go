package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/stratametrics/strata/internal/testutil"
)

// historyBlock writes a block of n series (history_metric{i}) with a sample a minute over
// two hours from `from` into dir.
func historyBlock(t *testing.T, dir string, from time.Time, n int) string {
	t.Helper()
	return testutil.WriteBlock(t, dir, "history_metric", from, 2*time.Hour, n, "job", "history")
}

// historyPrometheus is a Prometheus with three days of history written as blocks into
// its data directory, scraping itself every second.
type historyPrometheus struct {
	data, addr, cfg string
	day             time.Time // today, 00:00: the history is at 00:00–02:00 of the three days before
	cmd             *exec.Cmd
	log             func() string
}

// startHistoryPrometheus starts bin as a historyPrometheus and waits for its scrapes.
func startHistoryPrometheus(t *testing.T, bin string) historyPrometheus {
	t.Helper()
	h := historyPrometheus{data: t.TempDir(), day: time.Now().Truncate(24 * time.Hour), addr: freeAddr(t)}
	for d := 3; d >= 1; d-- {
		historyBlock(t, h.data, h.day.Add(-time.Duration(d)*24*time.Hour), 20)
	}
	h.cfg = fmt.Sprintf("global: {scrape_interval: 1s}\nscrape_configs: [{job_name: prometheus, static_configs: [{targets: [%q]}]}]\n", h.addr)
	h.cmd, h.log = startPrometheus(t, bin, t.TempDir(), h.cfg, h.data, h.addr)
	waitFor(t, "Prometheus' scrapes of itself", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + h.addr + "/api/v1/query?query=" + url.QueryEscape(`prometheus_tsdb_head_samples_appended_total > 2000`))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"__name__":"prometheus_tsdb_head_samples_appended_total"`)
	}, h.log)
	return h
}

// samplesIn counts the samples of a Prometheus data directory, stale markers left out
// (queries do not see them).
func samplesIn(t *testing.T, dir string) int {
	t.Helper()
	db, err := tsdb.OpenDBReadOnly(dir, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	n := 0
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			if _, v := it.At(); !value.IsStaleNaN(v) {
				n++
			}
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// A Prometheus data directory — three days of history written as blocks, and what
// Debian's Prometheus scraped of itself in its WAL — moves into a workspace: refused
// while Prometheus runs, interrupted and resumed without a sample twice, a corrupt block
// named and the rest imported; the workspace then holds exactly the data directory's
// samples, and `strata migrate verify` finds no difference with the Prometheus.
func TestMigrateBackfill(t *testing.T) {
	bin := requireTool(t, "prometheus")
	// Samples of any age (the last step writes one two days old).
	p := startStrata(t, "--data-dir", t.TempDir(), "--store-gateway.sync-interval=1s", "--limits.max-sample-age=0")
	ws := createWorkspace(t, p.URL)
	h := startHistoryPrometheus(t, bin)
	data, day, addr, cfg, prom, promLog := h.data, h.day, h.addr, h.cfg, h.cmd, h.log

	endpoint := p.URL + "/workspaces/" + ws
	backfill := func(extra ...string) []string {
		return append([]string{"migrate", "backfill", "--from", data, "--workspace-endpoint", endpoint, "--work-dir", filepath.Join(data, "..", "work"), "--part-size", "65536"}, extra...)
	}
	// While Prometheus runs: refused, with the advice.
	out, errOut, code := runStrata(t, backfill()...)
	if code != 2 || !strings.Contains(errOut, "in use by a running Prometheus") || !strings.Contains(errOut, "snapshot") {
		t.Fatalf("a data directory in use: exit %d\n%s%s", code, out, errOut)
	}
	_ = prom.Process.Signal(syscall.SIGTERM)
	_ = prom.Wait()
	stopped := time.Now()
	want := samplesIn(t, data)

	// A corrupt block, added after Prometheus stopped (it would not start with it).
	corrupt := historyBlock(t, data, day.Add(-5*24*time.Hour), 5)
	testutil.CorruptChunks(t, corrupt)

	// Interrupted after its first block (kill -9), then run again.
	cmd := exec.Command(strataBin, backfill()...)
	cmd.Env = append(withoutAWSEnv(), "AWS_ACCESS_KEY_ID="+rootKeyID, "AWS_SECRET_ACCESS_KEY="+rootSecret, "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var first strings.Builder
	for sc.Scan() {
		first.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), ": imported") {
			_ = cmd.Process.Kill()
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	_ = cmd.Wait()
	var blocksTotal int
	if _, err := fmt.Sscanf(first.String(), "%d blocks", &blocksTotal); err != nil || blocksTotal < 5 {
		t.Fatalf("the interrupted run (want the 4 blocks written, and the head, at least):\n%s", first.String())
	}

	out, errOut, code = runStrata(t, backfill()...)
	t.Logf("resumed:\n%s%s", out, errOut)
	if code != 1 || !strings.Contains(out, filepath.Base(corrupt)+" (") || !strings.Contains(out, ": REFUSED") ||
		!strings.Contains(out, "already in the workspace") || !strings.Contains(out, "1 refused") {
		t.Fatalf("resumed: exit %d\n%s%s", code, out, errOut)
	}

	// Exactly the data directory's samples, once the store-gateway has seen the blocks.
	var got int
	waitFor(t, "the workspace holding the data directory's samples", 30*time.Second, func() bool {
		got = workspaceSamples(t, p.URL, ws)
		return got == want
	}, func() string { return fmt.Sprintf("workspace %d samples, data directory %d", got, want) }, p.Log)

	// Again: nothing is sent twice; --verify finds every block's series and samples.
	out, _, _ = runStrata(t, backfill("--verify")...)
	if !strings.Contains(out, "0 blocks imported") || strings.Count(out, ": already in the workspace") != blocksTotal-1 ||
		!strings.Contains(out, fmt.Sprintf("verified: %d blocks alike, 0 different", blocksTotal-1)) {
		t.Fatalf("a third run:\n%s", out)
	}
	if got := workspaceSamples(t, p.URL, ws); got != want {
		t.Fatalf("after a third run the workspace holds %d samples, want %d", got, want)
	}

	// Prometheus on its data directory again (the corrupt block left out): `strata migrate
	// verify` finds no difference over the four days before it stopped.
	if err := os.RemoveAll(corrupt); err != nil {
		t.Fatal(err)
	}
	end := stopped.Truncate(time.Second).Add(time.Second)
	waitFor(t, "a second past the stop", 5*time.Second, func() bool { return time.Now().After(end) })
	prom, promLog = startPrometheus(t, bin, t.TempDir(), cfg, data, addr)
	waitFor(t, "Prometheus ready again", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, promLog)
	queries := filepath.Join(t.TempDir(), "queries")
	if err := os.WriteFile(queries, []byte("sum by (i) (history_metric)\ncount by (job) ({__name__=~\".+\"})\nsum by (job) (up)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--queries", queries}} { // the default queries: the largest metrics of its head
		out, errOut, code = runStrata(t, append([]string{"migrate", "verify", "--prometheus", "http://" + addr, "--workspace-endpoint", endpoint,
			"--end", end.UTC().Format(time.RFC3339), "--window", "96h", "--step", "10m"}, extra...)...)
		if code != 0 || !strings.Contains(out, "no differences in") || (extra != nil && !strings.Contains(out, "ok    sum by (i) (history_metric) (20 series, ")) {
			t.Fatalf("verify after the backfill: exit %d\n%s%s", code, out, errOut)
		}
	}

	// A series written to the workspace inside a history block's window: --verify (of the
	// history only, Prometheus stopped again) says which block and metric differ.
	_ = prom.Process.Signal(syscall.SIGTERM)
	_ = prom.Wait()
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "history_metric"}, {Name: "i", Value: "extra"}, {Name: "job", Value: "history"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: day.Add(-24*time.Hour + 30*time.Minute).UnixMilli()}},
	}}}
	raw, _ := wr.Marshal()
	body := snappy.Encode(nil, raw)
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/api/v1/remote_write", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp := signedDo(t, req, body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("writing a sample: %d", resp.StatusCode)
	}
	out, _, code = runStrata(t, backfill("--verify", "--verify-timeout", "0s",
		"--start", day.Add(-72*time.Hour).UTC().Format(time.RFC3339), "--end", day.UTC().Format(time.RFC3339))...)
	if code != 1 || !strings.Contains(out, "verified: 2 blocks alike, 1 different") ||
		!strings.Contains(out, "    history_metric: 20 series and 2400 samples in the block, 21 and 2401 in the workspace") {
		t.Fatalf("verify with a series more in the workspace: exit %d\n%s", code, out)
	}
}

// workspaceSamples counts the workspace's samples of the last 30 days, metric by metric
// (count_over_time drops the names: all at once, series would collide).
func workspaceSamples(t *testing.T, base, ws string) int {
	t.Helper()
	api := base + "/workspaces/" + ws + "/api/v1/"
	code, b := signedJSON(t, "GET", api+"label/__name__/values", nil)
	var names struct{ Data []string }
	if code != 200 || json.Unmarshal(b, &names) != nil {
		t.Fatalf("metric names: %d %s", code, b)
	}
	total := 0
	for _, name := range names.Data {
		code, b := signedJSON(t, "GET", api+"query?query="+url.QueryEscape(fmt.Sprintf(`sum(count_over_time({__name__=%q}[30d]))`, name)), nil)
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if code != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("counting %s: %d %s", name, code, b)
		}
		for _, v := range r.Data.Result {
			s, _ := v.Value[1].(string)
			n, _ := strconv.Atoi(s)
			total += n
		}
	}
	return total
}

// From a running Prometheus' remote-read API: three days of history and what it scrapes,
// a two-hour window at a time, into a workspace where `strata migrate verify` then finds
// no difference; a second run stores nothing twice.
func TestMigrateBackfillRemoteRead(t *testing.T) {
	bin := requireTool(t, "prometheus")
	p := startStrata(t, "--data-dir", t.TempDir(), "--store-gateway.sync-interval=1s")
	ws := createWorkspace(t, p.URL)
	h := startHistoryPrometheus(t, bin)
	day, addr := h.day, h.addr

	end := time.Now().Truncate(time.Second)
	endpoint := p.URL + "/workspaces/" + ws
	args := []string{"migrate", "backfill", "--remote-read", "http://" + addr + "/api/v1/read", "--workspace-endpoint", endpoint,
		"--start", day.Add(-4 * 24 * time.Hour).UTC().Format(time.RFC3339), "--end", end.UTC().Format(time.RFC3339),
		"--work-dir", t.TempDir(), "--verify"}
	out, errOut, code := runStrata(t, args...)
	if code != 0 || !strings.Contains(out, "0 refused") || !strings.Contains(out, "verified: ") || !strings.Contains(out, " 0 different") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("remote read:\n%s", out)

	queries := filepath.Join(t.TempDir(), "queries")
	if err := os.WriteFile(queries, []byte("sum by (i) (history_metric)\ncount by (job) ({__name__=~\".+\"})\nsum by (job) (up)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runStrata(t, "migrate", "verify", "--prometheus", "http://"+addr, "--workspace-endpoint", endpoint,
		"--end", end.Add(-time.Second).UTC().Format(time.RFC3339), "--window", "96h", "--step", "10m", "--queries", queries)
	if code != 0 || !strings.Contains(out, "no differences in 3 queries") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	// Again, after the work directory went with the first run's success: the windows are
	// read again, written as the same blocks, and found in the workspace.
	out, _, code = runStrata(t, args...)
	if code != 0 || !strings.Contains(out, "0 blocks imported") || !strings.Contains(out, "4 already in the workspace") {
		t.Fatalf("a second run: exit %d\n%s", code, out)
	}
}
