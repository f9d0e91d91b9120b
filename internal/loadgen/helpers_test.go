package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// receivedSample is one sample as a fake server decoded it.
type receivedSample struct {
	t int64
	v float64
}

// fakeStore is a remote write receiver (1.0 and 2.0, decoded with
// Prometheus' generated code) and a minimal Prometheus query API that
// answers the range-selector queries verification sends.
type fakeStore struct {
	t *testing.T

	// status, when set, picks the answer to the n-th request (1-based);
	// samples are stored only on 2xx.
	status func(n int) int
	// hide, when set, hides stored samples from queries; mutate changes
	// the values queries return.
	hide   func(series string, ts int64) bool
	mutate func(series string, ts int64, v float64) float64
	// check, when set, sees every request (writes and queries) before it
	// is answered.
	check func(r *http.Request, body []byte)

	mu       sync.Mutex
	requests int
	series   map[string][]receivedSample // labels.String() → samples in arrival order
	meta     map[string]writev2.Metadata_MetricType
	stale    int
}

func newFakeStore(t *testing.T) (*fakeStore, *httptest.Server) {
	f := &fakeStore{t: t, series: map[string][]receivedSample{}, meta: map[string]writev2.Metadata_MetricType{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if f.check != nil {
		f.check(r, body)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	switch r.URL.Path {
	case "/api/v1/remote_write":
		f.write(w, r)
	case "/api/v1/query":
		f.query(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeStore) write(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.mu.Unlock()
	status := http.StatusNoContent
	if f.status != nil {
		status = f.status(n)
	}
	if status/100 != 2 {
		http.Error(w, "fake says "+strconv.Itoa(status), status)
		return
	}
	if r.Header.Get("Content-Encoding") != "snappy" {
		f.t.Errorf("Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		f.t.Errorf("snappy: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	type got struct {
		ls  labels.Labels
		s   []receivedSample
		typ writev2.Metadata_MetricType
	}
	var all []got
	switch ct, ver := r.Header.Get("Content-Type"), r.Header.Get(versionHeader); {
	case ct == contentTypeV1 && ver == "0.1.0":
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			f.t.Errorf("v1 unmarshal: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		for _, ts := range req.Timeseries {
			g := got{ls: labelsFromProto(ts.Labels)}
			for _, s := range ts.Samples {
				g.s = append(g.s, receivedSample{s.Timestamp, s.Value})
			}
			all = append(all, g)
		}
	case ct == contentTypeV2 && ver == "2.0.0":
		var req writev2.Request
		if err := req.Unmarshal(raw); err != nil {
			f.t.Errorf("v2 unmarshal: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		if len(req.Symbols) == 0 || req.Symbols[0] != "" {
			f.t.Errorf("v2 symbols must start with \"\": %q", req.Symbols[:min(3, len(req.Symbols))])
		}
		var b labels.ScratchBuilder
		for _, ts := range req.Timeseries {
			ls, err := ts.ToLabels(&b, req.Symbols)
			if err != nil {
				f.t.Errorf("v2 labels: %v", err)
				return
			}
			g := got{ls: ls, typ: ts.Metadata.Type}
			for _, s := range ts.Samples {
				g.s = append(g.s, receivedSample{s.Timestamp, s.Value})
			}
			all = append(all, g)
		}
	default:
		f.t.Errorf("Content-Type %q with version %q", ct, ver)
		http.Error(w, "unsupported", http.StatusUnsupportedMediaType)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	written := 0
	for _, g := range all {
		k := g.ls.String()
		for _, s := range g.s {
			written++
			if value.IsStaleNaN(s.v) {
				f.stale++
				continue
			}
			f.series[k] = append(f.series[k], s)
		}
		if g.typ != 0 {
			f.meta[g.ls.Get(labels.MetricName)] = g.typ
		}
	}
	w.Header().Set(samplesWrittenHdr, strconv.Itoa(written))
	w.WriteHeader(status)
}

func labelsFromProto(lp []prompb.Label) labels.Labels {
	var b labels.ScratchBuilder
	for _, l := range lp {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

var selectorRE = regexp.MustCompile(`^\{instance="([^"]+)",loadgen_seed="([^"]+)"\}\[(\d+)ms\]$`)

func (f *fakeStore) query(w http.ResponseWriter, r *http.Request) {
	m := selectorRE.FindStringSubmatch(r.FormValue("query"))
	if m == nil {
		f.t.Errorf("unexpected query %q", r.FormValue("query"))
		http.Error(w, `{"status":"error","errorType":"bad_data","error":"unexpected query"}`, 400)
		return
	}
	end, err := parseUnixMs(r.FormValue("time"))
	if err != nil {
		f.t.Errorf("time: %v", err)
	}
	rng, _ := strconv.ParseInt(m[3], 10, 64)
	type result struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	results := []result{}
	f.mu.Lock()
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var p labelsParser
	for _, k := range keys {
		ls := p.parse(k)
		if ls.Get("instance") != m[1] || ls.Get(labelSeed) != m[2] {
			continue
		}
		res := result{Metric: ls.Map()}
		for _, s := range f.series[k] {
			if s.t > end-rng && s.t <= end && (f.hide == nil || !f.hide(k, s.t)) {
				v := s.v
				if f.mutate != nil {
					v = f.mutate(k, s.t, v)
				}
				res.Values = append(res.Values, [2]any{json.RawMessage(formatUnixMs(s.t)), strconv.FormatFloat(v, 'f', -1, 64)})
			}
		}
		if len(res.Values) > 0 {
			results = append(results, res)
		}
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": results}})
}

// labelsParser reads back labels.String() output of our own series (values
// have no quotes or commas).
type labelsParser struct{ cache map[string]labels.Labels }

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"`)

func (p *labelsParser) parse(s string) labels.Labels {
	if ls, ok := p.cache[s]; ok {
		return ls
	}
	if p.cache == nil {
		p.cache = map[string]labels.Labels{}
	}
	var b labels.ScratchBuilder
	for _, m := range labelRE.FindAllStringSubmatch(s, -1) {
		b.Add(m[1], m[2])
	}
	b.Sort()
	ls := b.Labels()
	p.cache[s] = ls
	return ls
}

func (f *fakeStore) total() (samples int, series int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.series {
		samples += len(s)
	}
	return samples, len(f.series)
}

// testConfig is a small, fast run against url.
func testConfig(url string) Config {
	return Config{
		URL:            url,
		ActiveSeries:   300,
		ScrapeInterval: 100 * time.Millisecond,
		Backfill:       2 * time.Second,
		Duration:       500 * time.Millisecond,
		BatchSize:      100,
		Concurrency:    4,
		Seed:           42,
		MinBackoff:     time.Millisecond,
		MaxBackoff:     10 * time.Millisecond,
		DrainTimeout:   time.Second,
	}
}

func approx(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b)) }

func fmtSamples(s []receivedSample) string {
	out := ""
	for i, x := range s {
		if i == 5 {
			return out + "..."
		}
		out += fmt.Sprintf("%d=%g ", x.t, x.v)
	}
	return out
}

// stepStartClock runs at real speed but reads 1ms past a multiple of
// interval now, so a run shorter than interval has exactly one step.
func stepStartClock(interval time.Duration) func() time.Time {
	start := time.Now()
	target := time.UnixMilli((start.UnixMilli()/interval.Milliseconds()+1)*interval.Milliseconds() + 1)
	offset := target.Sub(start)
	return func() time.Time { return time.Now().Add(offset) }
}
