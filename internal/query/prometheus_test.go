package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/stratametrics/strata/internal/testutil"
)

// prometheusBinary is Debian's Prometheus 2.42, the reference the API is compared with.
const prometheusBinary = "/usr/bin/prometheus"

// requirePrometheus returns the reference Prometheus (.ci/run installs it).
func requirePrometheus(t *testing.T) string {
	return testutil.RequireBinary(t, prometheusBinary, "apt-get install prometheus")
}

// promProcess is a Prometheus started by a test.
type promProcess struct {
	url  string
	proc *testutil.Process
}

// startPrometheus runs Prometheus with config on a free port and a fresh TSDB, with the
// remote-write receiver and the features the fixture needs, and waits until it is ready.
// It is killed when the test ends.
func startPrometheus(t *testing.T, config string) *promProcess {
	t.Helper()
	bin := requirePrometheus(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		p, err := tryStartPrometheus(t, bin, cfgFile, filepath.Join(dir, fmt.Sprintf("data%d", attempt)))
		if err == nil {
			return p
		}
		if !errors.Is(err, testutil.ErrPortTaken) || attempt == 3 {
			t.Fatalf("starting Prometheus: %v", err)
		}
		t.Logf("starting Prometheus: %v; retrying on another port", err)
	}
}

// tryStartPrometheus starts one Prometheus process on a port free a moment ago and waits
// until it is ready.
func tryStartPrometheus(t *testing.T, bin, cfgFile, dataDir string) (*promProcess, error) {
	t.Helper()
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + port
	proc, err := testutil.StartProcess(t, "prometheus", exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
		"--enable-feature=native-histograms,exemplar-storage,promql-per-step-stats",
		"--query.lookback-delta=5m",
	))
	if err != nil {
		return nil, err
	}
	p := &promProcess{url: "http://" + addr, proc: proc}
	return p, proc.WaitReady(60*time.Second, testutil.GetOK(p.url+"/-/ready"))
}

// remoteWrite sends data to Prometheus' receiver with Prometheus' own remote-write client,
// in one request: Prometheus' head accepts old samples only into an empty head or within
// an hour of its newest one.
func (p *promProcess) remoteWrite(t *testing.T, data []fixtureSeries) {
	t.Helper()
	var req prompb.WriteRequest
	for _, s := range data {
		ts := prompb.TimeSeries{}
		s.lset.Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		for _, smp := range s.samples {
			if smp.h != nil {
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(smp.t, smp.h))
			} else {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: smp.t, Value: smp.v})
			}
		}
		for _, e := range s.exemplars {
			pe := prompb.Exemplar{Value: e.Value, Timestamp: e.Ts}
			e.Labels.Range(func(l labels.Label) {
				pe.Labels = append(pe.Labels, prompb.Label{Name: l.Name, Value: l.Value})
			})
			ts.Exemplars = append(ts.Exemplars, pe)
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(p.url + "/api/v1/write")
	if err != nil {
		t.Fatal(err)
	}
	c, err := remote.NewWriteClient("fixture", &remote.ClientConfig{
		URL:     &config_util.URL{URL: u},
		Timeout: model.Duration(30 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(context.Background(), snappy.Encode(nil, raw), 0); err != nil {
		t.Fatalf("remote write to Prometheus: %v\n%s", err, p.proc.Log())
	}
}

func (p *promProcess) do(t testing.TB, method, path string, params url.Values) answer {
	return doHTTP(t, method, p.url+"/api/v1/"+path, params, nil)
}

// openMetricsFixture exposes the fixture's metadata (fixtureMetadata) for a Prometheus to
// scrape: Prometheus 2.42 keeps metadata from scrapes only, not from remote write.
const openMetricsFixture = `# TYPE http_requests counter
# HELP http_requests Requests served, by code.
http_requests_total{code="200"} 1
# TYPE node_memory_bytes gauge
# UNIT node_memory_bytes bytes
# HELP node_memory_bytes Memory in use.
node_memory_bytes 1
# TYPE request_duration_seconds histogram
# UNIT request_duration_seconds seconds
# HELP request_duration_seconds Request latency <in seconds> & more.
request_duration_seconds_bucket{le="+Inf"} 1
request_duration_seconds_sum 1
request_duration_seconds_count 1
# TYPE special_values gauge
# HELP special_values Values with \"special\" formatting.
special_values 1
# EOF
`

// TestPrometheus242 loads the fixture into a real Prometheus 2.42 (remote write, with
// Prometheus' own client) and into Strata, sends every case to both and compares the
// normalized answers byte for byte; see apiCase and normalize for the documented
// differences between Prometheus 2.42 and Prometheus 3, whose behaviour Strata has. It
// also checks that the goldens are Prometheus' current answers (-update rewrites them).
func TestPrometheus242(t *testing.T) {
	requirePrometheus(t)
	prom := startPrometheus(t, "global:\n  scrape_interval: 1h\n")
	prom.remoteWrite(t, fixture())

	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		_, _ = w.Write([]byte(openMetricsFixture))
	}))
	defer target.Close()
	metaProm := startPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: fixture
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(target.URL, "http://")))
	testutil.Eventually(t, 30*time.Second, "Prometheus to scrape the metadata of the fixture", func() bool {
		a := metaProm.do(t, http.MethodGet, "metadata", nil)
		return bytes.Count(a.body, []byte(`"type"`)) == len(fixtureMetadata())
	})

	e := newEnv(t, nil)
	for _, c := range apiCases {
		t.Run(c.name, func(t *testing.T) {
			ref := prom
			if c.metadata {
				ref = metaProm
			}
			theirs := ref.do(t, http.MethodGet, c.path, c.params)
			ours := e.ours(t, c)
			if c.only3x != "" {
				if theirs.status == ours.status && bytes.Equal(theirs.body, ours.body) {
					t.Errorf("documented as differing (%s), but Prometheus 2.42 answers the same: %s", c.only3x, ours.body)
				}
				t.Logf("Prometheus 2.42 answers differently, as documented (%s): %d %s", c.only3x, theirs.status, theirs.body)
				return
			}
			want := normalize(c, theirs.status, theirs.body)
			got := comparable(t, c, ours)
			if theirs.status != ours.status || !bytes.Equal(got, want) {
				t.Errorf("answers differ:\nPrometheus 2.42 %d %s\nStrata          %d %s", theirs.status, want, ours.status, got)
			}
			if *update {
				writeGolden(t, c, theirs.status, want)
				return
			}
			status, golden := readGolden(t, c)
			if status != theirs.status || !bytes.Equal(golden, want) {
				t.Errorf("%s is stale (run with -update):\ngolden     %d %s\nPrometheus %d %s", goldenPath(c), status, golden, theirs.status, want)
			}
		})
	}
}
