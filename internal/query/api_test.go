package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

func TestRoutes(t *testing.T) {
	e := newEnv(t, nil)
	want := map[string]string{
		"query": "QueryMetrics", "query_range": "QueryMetrics", "query_exemplars": "QueryMetrics",
		"format_query": "QueryMetrics", "parse_query": "QueryMetrics", "status/buildinfo": "QueryMetrics",
		"status/tsdb": "QueryMetrics", "series": "GetSeries", "labels": "GetLabels",
		"label/{name}/values": "GetLabels", "metadata": "GetMetricMetadata",
	}
	seen := map[string]int{}
	for _, r := range e.api.Routes() {
		path, ok := strings.CutPrefix(r.Pattern, "/workspaces/{workspaceId}/api/v1/")
		if !ok {
			t.Fatalf("pattern %s", r.Pattern)
		}
		if want[path] != r.Operation {
			t.Errorf("%s %s: operation %s, want %s", r.Method, r.Pattern, r.Operation, want[path])
		}
		seen[path+" "+r.Method]++
	}
	for path := range want {
		if seen[path+" GET"] != 1 || seen[path+" POST"] != 1 {
			t.Errorf("%s is not served by GET and POST once each: %v", path, seen)
		}
	}
}

// Every endpoint answers 404 in Prometheus' shape for a workspace that does not exist,
// before it reads any storage.
func TestUnknownWorkspace(t *testing.T) {
	e := newEnv(t, nil)
	for _, r := range e.api.Routes() {
		path := strings.TrimPrefix(r.Pattern, "/workspaces/{workspaceId}/api/v1/")
		path = strings.ReplaceAll(path, "{name}", "job")
		a := e.do(t, r.Method, "ws-nope", path, p("query", "up", "match[]", "up"))
		want := `{"status":"error","errorType":"not_found","error":"workspace ws-nope does not exist"}`
		if a.status != http.StatusNotFound || string(a.body) != want {
			t.Errorf("%s %s: %d %s", r.Method, path, a.status, a.body)
		}
	}
	if n := e.store.openQueriers(); n != 0 {
		t.Errorf("%d queriers left open", n)
	}
}

func TestGzip(t *testing.T) {
	e := newEnv(t, nil)
	params := p("query", "http_requests_total", "time", t30)
	plain := e.do(t, http.MethodGet, testWS, "query", params)
	for _, enc := range []string{"gzip", "deflate, gzip", "gzip;q=1.0, br"} {
		u := e.srv.URL + "/workspaces/" + testWS + "/api/v1/query"
		z := doHTTP(t, http.MethodGet, u, params, http.Header{"Accept-Encoding": {enc}})
		if got := z.header.Get("Content-Encoding"); got != strings.TrimSpace(strings.Split(strings.Split(enc, ",")[0], ";")[0]) {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", enc, got)
		}
		if enc != "deflate, gzip" && !bytes.Equal(z.body, plain.body) {
			t.Errorf("Accept-Encoding %q: decompressed body differs", enc)
		}
	}
	// Errors are compressed too, and 204 has no body.
	u := e.srv.URL + "/workspaces/" + testWS + "/api/v1/query_exemplars"
	a := doHTTP(t, http.MethodGet, u, p("query", "1"), http.Header{"Accept-Encoding": {"gzip"}})
	if a.status != http.StatusNoContent || len(a.body) != 0 {
		t.Errorf("204: %d %q", a.status, a.body)
	}
}

// blockingStore delays every select (of workspace only, when set) until released or
// until its context ends, and reports how each context ended; the other workspaces
// read freely.
type blockingStore struct {
	*tsdbStore
	only    string
	release chan struct{}
	started chan struct{}
	ended   chan error
}

func newBlockingStore(s *tsdbStore) *blockingStore {
	return &blockingStore{tsdbStore: s, release: make(chan struct{}),
		started: make(chan struct{}, 100), ended: make(chan error, 100)}
}

func (b *blockingStore) Querier(ctx context.Context, ws string, mint, maxt int64) (storage.Querier, error) {
	q, err := b.tsdbStore.Querier(ctx, ws, mint, maxt)
	if err != nil || (b.only != "" && ws != b.only) {
		return q, err
	}
	return &blockingQuerier{Querier: q, b: b}, nil
}

type blockingQuerier struct {
	storage.Querier
	b *blockingStore
}

func (q *blockingQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q.b.started <- struct{}{}
	select {
	case <-q.b.release:
		q.b.end(nil)
		return q.Querier.Select(ctx, sortSeries, hints, ms...)
	case <-ctx.Done():
		q.b.end(ctx.Err())
		return storage.ErrSeriesSet(ctx.Err())
	}
}

// end reports how a select ended, to tests that read ended (others need not).
func (b *blockingStore) end(err error) {
	select {
	case b.ended <- err:
	default:
	}
}

func TestTimeout(t *testing.T) {
	var bs *blockingStore
	e := newEnv(t, func(c *Config, d *Deps) {
		c.Timeout = 400 * time.Millisecond
		bs = newBlockingStore(d.Queryables.(*tsdbStore))
		d.Queryables = bs
	})
	want := `{"status":"error","errorType":"timeout","error":"query timed out - consider simplifying your query"}`
	for _, tc := range []struct {
		path   string
		params url.Values
	}{
		{"query", p("query", "sum(http_requests_total)", "time", t30)},
		{"query_range", p("query", "sum(http_requests_total)", "start", tZero, "end", tEnd, "step", "60")},
		// The request's own timeout parameter is shorter: it applies.
		{"query", p("query", "sum(http_requests_total)", "time", t30, "timeout", "20ms")},
		{"series", p("match[]", "http_requests_total")},
	} {
		start := time.Now()
		a := e.do(t, http.MethodGet, testWS, tc.path, tc.params)
		if a.status != http.StatusUnprocessableEntity || string(a.body) != want {
			t.Errorf("%s %v: %d %s", tc.path, tc.params, a.status, a.body)
		}
		if err := <-bs.ended; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("storage context ended with %v", err)
		}
		if tc.params.Get("timeout") != "" && time.Since(start) > 300*time.Millisecond {
			t.Errorf("the timeout parameter was not applied: %s", time.Since(start))
		}
	}
	if v := testutil.ToFloat64(e.api.metrics.rejected.WithLabelValues(testWS, "timeout")); v != 3 {
		t.Errorf("rejected{limit=timeout} = %v, want 3", v)
	}
}

// A client that goes away cancels its query: the storage sees the request's context end.
func TestClientDisconnectCancelsQuery(t *testing.T) {
	var bs *blockingStore
	e := newEnv(t, func(_ *Config, d *Deps) {
		bs = newBlockingStore(d.Queryables.(*tsdbStore))
		d.Queryables = bs
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		e.srv.URL+"/workspaces/"+testWS+"/api/v1/query?"+p("query", "sum(http_requests_total)", "time", t30).Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := testTransport.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-bs.started
	cancel()
	select {
	case err := <-bs.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("storage context ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the query was not canceled when the client went away")
	}
	if err := <-done; err == nil {
		t.Error("the canceled request succeeded")
	}
	// The handler records the outcome after it returns; wait for it.
	waitFor(t, "requests{outcome=canceled} to be counted", func() bool {
		return testutil.ToFloat64(e.api.metrics.requests.WithLabelValues(testWS, "query", "canceled")) == 1
	})
	if n := e.store.openQueriers(); n != 0 {
		t.Errorf("%d queriers left open", n)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	var bs *blockingStore
	e := newEnv(t, func(c *Config, d *Deps) {
		c.MaxConcurrent, c.MaxQueued = 1, 1
		bs = newBlockingStore(d.Queryables.(*tsdbStore))
		d.Queryables = bs
	})
	params := p("query", "sum(http_requests_total)", "time", t30)
	results := make(chan answer, 2)
	go func() { results <- e.do(t, http.MethodGet, testWS, "query", params) }()
	<-bs.started // the first runs
	go func() { results <- e.do(t, http.MethodGet, testWS, "query", params) }()
	gauge := e.api.metrics.queued.WithLabelValues(testWS)
	waitFor(t, "the second request to be queued", func() bool { return testutil.ToFloat64(gauge) == 1 })
	// The queue is full: the third is refused at once.
	a := e.do(t, http.MethodGet, testWS, "query", params)
	want := `{"status":"error","errorType":"unavailable","error":"too many outstanding requests: more than 1 queries of this workspace are running and 1 are queued"}`
	if a.status != http.StatusTooManyRequests || string(a.body) != want {
		t.Errorf("third request: %d %s", a.status, a.body)
	}
	close(bs.release)
	for range 2 {
		if a := <-results; a.status != http.StatusOK {
			t.Errorf("queued request: %d %s", a.status, a.body)
		}
	}
	if w := testutil.ToFloat64(e.api.metrics.queueWait.WithLabelValues(testWS)); w <= 0 {
		t.Errorf("queue wait = %v s after a request waited", w)
	}
	if v := testutil.ToFloat64(e.api.metrics.rejected.WithLabelValues(testWS, "max_queued")); v != 1 {
		t.Errorf("rejected{limit=max_queued} = %v", v)
	}
}

func TestSlots(t *testing.T) {
	s := newSlots()
	noop := func(float64) {}
	ctx := context.Background()
	r1, err := s.acquire(ctx, "a", 2, 1, noop)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.acquire(ctx, "a", 2, 1, noop)
	if err != nil {
		t.Fatal(err)
	}
	// Another workspace has its own slots.
	rb, err := s.acquire(ctx, "b", 1, 0, noop)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.acquire(ctx, "b", 1, 0, noop); !errors.Is(err, errTooManyQueued) {
		t.Fatalf("b over its limit: %v", err)
	}
	// A waiter whose context ends leaves the queue.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.acquire(cctx, "a", 2, 1, noop); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter: %v", err)
	}
	// Slots go to waiters in order.
	got := make(chan int, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := s.acquire(ctx, "a", 2, 2, noop)
			if err != nil {
				t.Error(err)
				return
			}
			got <- i
			rel()
		}()
		// Queue them in order.
		waitFor(t, fmt.Sprintf("waiter %d to be queued", i), func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.ws["a"].waiting.Len() == i+1
		})
	}
	r1()
	r1() // releasing twice gives back one slot
	if first := <-got; first != 0 {
		t.Errorf("waiter %d ran first", first)
	}
	r2()
	wg.Wait()
	rb()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ws) != 0 {
		t.Errorf("idle workspaces kept: %v", s.ws)
	}
}

// overrideLimits applies different limits to one workspace.
type overrideLimits struct {
	def       QueryLimits
	ws        string
	overrides QueryLimits
}

func (o overrideLimits) QueryLimits(ws string) QueryLimits {
	if ws == o.ws {
		return o.overrides
	}
	return o.def
}

func TestSampleAndSeriesLimits(t *testing.T) {
	const small = "ws-small"
	e := newEnv(t, func(c *Config, d *Deps) {
		l := c.Limits()
		l.MaxSamples = 10
		l.MaxSeries = 5
		d.Limits = overrideLimits{def: c.Limits(), ws: small, overrides: l}
	})
	db, _ := e.store.db(testWS)
	e.store.add(small, db)
	for _, tc := range []struct {
		path, ws string
		params   url.Values
		status   int
		body     string
	}{
		{"query", small, p("query", "sum(rate(node_memory_bytes[5m]))", "time", t30), 422,
			`{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}`},
		{"query", small, p("query", "http_requests_total", "time", t30), 422,
			`{"status":"error","errorType":"execution","error":"the query hit the max number of series limit (limit: 5 series)"}`},
		// Selectors add up: 3 + 3 series.
		{"query", small, p("query", "node_memory_bytes + node_memory_bytes", "time", t30), 422,
			`{"status":"error","errorType":"execution","error":"the query hit the max number of series limit (limit: 5 series)"}`},
		{"series", small, p("match[]", "http_requests_total"), 422,
			`{"status":"error","errorType":"execution","error":"the query hit the max number of series limit (limit: 5 series)"}`},
		{"query", small, p("query", "node_memory_bytes", "time", t30), 200, ""},
		// The default workspace keeps the default limits, with the shared engine.
		{"query", testWS, p("query", "sum(rate(http_requests_total[5m]))", "time", t30), 200, ""},
	} {
		a := e.do(t, http.MethodGet, tc.ws, tc.path, tc.params)
		if a.status != tc.status || (tc.body != "" && string(a.body) != tc.body) {
			t.Errorf("%s %s %v: %d %s", tc.ws, tc.path, tc.params, a.status, a.body)
		}
	}
	e.api.engMu.Lock()
	n := len(e.api.engines)
	e.api.engMu.Unlock()
	if n != 2 {
		t.Errorf("%d engines, want the default and the overridden workspace's", n)
	}
	if n := e.store.openQueriers(); n != 0 {
		t.Errorf("%d queriers left open", n)
	}
}

func TestTimeRangeLimits(t *testing.T) {
	e := newEnv(t, nil)
	const day = 24 * time.Hour
	end := fixtureStart.Add(100 * day)
	unix := func(t time.Time) string { return fmt.Sprint(t.Unix()) }
	for _, tc := range []struct {
		path   string
		params url.Values
		err    string
	}{
		{"query", p("query", "rate(http_requests_total[31d])", "time", unix(end)), ""},
		{"query", p("query", "rate(http_requests_total[32d])", "time", unix(end)),
			"the query time range exceeds the limit (query length: 32d, limit: 32d)"},
		{"query", p("query", "max_over_time(sum(node_memory_bytes)[40d:1h])", "time", unix(end)),
			"the query time range exceeds the limit (query length: 40d, limit: 32d)"},
		// The lookback delta does not count; offsets do not widen the range.
		{"query", p("query", "node_memory_bytes offset 90d", "time", unix(end)), ""},
		{"query_range", p("query", "node_memory_bytes", "start", unix(end.Add(-95*day)), "end", unix(end), "step", "1h"), ""},
		{"query_range", p("query", "node_memory_bytes", "start", unix(end.Add(-96*day)), "end", unix(end), "step", "1h"),
			"the query time range exceeds the limit (query length: 96d, limit: 95d)"},
		// A range selector widens what a range query reads.
		{"query_range", p("query", "rate(node_memory_bytes[1d])", "start", unix(end.Add(-95*day)), "end", unix(end), "step", "1h"),
			"the query time range exceeds the limit (query length: 96d, limit: 95d)"},
	} {
		a := e.do(t, http.MethodGet, testWS, tc.path, tc.params)
		if tc.err == "" {
			if a.status != http.StatusOK {
				t.Errorf("%v: %d %s", tc.params, a.status, a.body)
			}
			continue
		}
		want := `{"status":"error","errorType":"execution","error":"` + tc.err + `"}`
		if a.status != http.StatusUnprocessableEntity || string(a.body) != want {
			t.Errorf("%v: %d %s, want %s", tc.params, a.status, a.body, want)
		}
	}
}

func TestSamplesProcessedThresholds(t *testing.T) {
	e := newEnv(t, nil)
	// sum(rate(x[5m])) over 16 series at 15s reads 320 samples.
	q := func(kv ...string) answer {
		return e.do(t, http.MethodPost, testWS, "query", p(append([]string{"query", "sum(rate(http_requests_total[5m]))", "time", t30}, kv...)...))
	}
	counter := e.api.metrics.samplesProcessed.WithLabelValues(testWS)

	a := q(paramWarnThreshold, "1000", paramErrorThreshold, "1000")
	if a.status != 200 || bytes.Contains(a.body, []byte("warnings")) {
		t.Errorf("under both thresholds: %d %s", a.status, a.body)
	}
	if v := testutil.ToFloat64(counter); v != 320 {
		t.Errorf("samples processed %v, want 320", v)
	}
	a = q(paramWarnThreshold, "300")
	want := `"warnings":["query processed 320 samples, more than max_samples_processed_warning_threshold=300"]`
	if a.status != 200 || !bytes.Contains(a.body, []byte(want)) {
		t.Errorf("over the warning threshold: %d %s", a.status, a.body)
	}
	a = q(paramErrorThreshold, "319")
	if want := `{"status":"error","errorType":"execution","error":"query processed 320 samples, more than max_samples_processed_error_threshold=319"}`; a.status != 422 || string(a.body) != want {
		t.Errorf("over the error threshold: %d %s", a.status, a.body)
	}
	// A refused query is not charged.
	if v := testutil.ToFloat64(counter); v != 640 {
		t.Errorf("samples processed %v, want 640", v)
	}
	for _, bad := range []string{"0", "-1", "many", "1.5"} {
		a = q(paramErrorThreshold, bad)
		if a.status != 400 || !bytes.Contains(a.body, []byte(`invalid parameter \"max_samples_processed_error_threshold\"`)) {
			t.Errorf("threshold %q: %d %s", bad, a.status, a.body)
		}
	}
	// Range queries too.
	a = e.do(t, http.MethodGet, testWS, "query_range", p("query", "sum(rate(http_requests_total[5m]))",
		"start", t30, "end", at(31*time.Minute), "step", "60", paramWarnThreshold, "100"))
	if a.status != 200 || !bytes.Contains(a.body, []byte("query processed 640 samples")) {
		t.Errorf("range query over the warning threshold: %d %s", a.status, a.body)
	}
}

func TestSlowQueryLog(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) {
		c.SlowQueryLogThreshold = time.Nanosecond
		d.Principal = func(r *http.Request) string { return "arn:aws:iam::123456789012:user/alice" }
	})
	e.do(t, http.MethodGet, testWS, "query", p("query", "sum(rate(http_requests_total[5m]))", "time", t30))
	log := e.logs.String()
	for _, want := range []string{"msg=\"slow query\"", "workspace=" + testWS, "principal=arn:aws:iam::123456789012:user/alice",
		`query=sum(rate(http_requests_total[5m]))`, "samples_processed=320", "duration="} {
		if !strings.Contains(log, want) {
			t.Errorf("slow-query log lacks %s:\n%s", want, log)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.do(t, http.MethodGet, testWS, "query", p("query", "sum(rate(http_requests_total[5m]))", "time", t30))
	e.do(t, http.MethodGet, testWS, "query", p("query", "sum(", "time", t30))
	e.do(t, http.MethodGet, testWS, "labels", nil)
	e.do(t, http.MethodGet, "ws-nope", "labels", nil)
	want := `
# HELP strata_workspace_query_requests_total Query API requests per workspace, endpoint and outcome (success or the errorType answered).
# TYPE strata_workspace_query_requests_total counter
strata_workspace_query_requests_total{endpoint="labels",outcome="success",workspace="ws-fixture"} 1
strata_workspace_query_requests_total{endpoint="query",outcome="bad_data",workspace="ws-fixture"} 1
strata_workspace_query_requests_total{endpoint="query",outcome="success",workspace="ws-fixture"} 1
# HELP strata_workspace_query_samples_processed_total Query samples processed (AMP's billing unit: the totalQueryableSamples of successful PromQL queries), per workspace.
# TYPE strata_workspace_query_samples_processed_total counter
strata_workspace_query_samples_processed_total{workspace="ws-fixture"} 320
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want),
		"strata_workspace_query_requests_total", "strata_workspace_query_samples_processed_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(e.reg, "strata_query_request_duration_seconds", "prometheus_engine_queries"); err != nil || n < 2 {
		t.Errorf("duration and engine metrics: %d, %v", n, err)
	}
}

// Without a HeadStatsSource, /status/tsdb computes the head's figures from the series of
// the last two hours; they equal the head's own.
func TestTSDBStatusFromSeries(t *testing.T) {
	withSource := newEnv(t, nil)
	without := newEnv(t, func(_ *Config, d *Deps) { d.HeadStats = nil })
	without.api.now = func() time.Time { return fixtureStart.Add(time.Hour) }
	c := apiCase{path: "status/tsdb", params: p("limit", "100")}
	a := withSource.do(t, http.MethodGet, testWS, c.path, c.params)
	b := without.do(t, http.MethodGet, testWS, c.path, c.params)
	na, nb := normalize(c, a.status, a.body), normalize(c, b.status, b.body)
	// The window's bounds stand for the head's sample times.
	ja, _ := parseJSON(na)
	jb, _ := parseJSON(nb)
	for _, k := range []string{"minTime", "maxTime"} {
		ja.get("data").get("headStats").set(k, scalar("0"))
		jb.get("data").get("headStats").set(k, scalar("0"))
	}
	if ja.String() != jb.String() {
		t.Errorf("computed status differs from the head's:\nhead     %s\ncomputed %s", ja, jb)
	}
	// The memory figures are left out by normalize; they must agree too.
	ma, _ := parseJSON(a.body)
	mb, _ := parseJSON(b.body)
	mema, memb := ma.get("data").get("memoryInBytesByLabelName"), mb.get("data").get("memoryInBytesByLabelName")
	mema.sortArray()
	memb.sortArray()
	if mema.String() != memb.String() {
		t.Errorf("memory by label name:\nhead     %s\ncomputed %s", mema, memb)
	}
	for _, bad := range []string{"0", "-3", "x", "10001"} {
		a := withSource.do(t, http.MethodGet, testWS, "status/tsdb", p("limit", bad))
		if a.status != 400 {
			t.Errorf("limit=%s: %d %s", bad, a.status, a.body)
		}
	}
}

func TestOptionalSources(t *testing.T) {
	e := newEnv(t, func(_ *Config, d *Deps) {
		d.Metadata, d.Exemplars, d.BuildInfo = nil, nil, nil
	})
	if a := e.do(t, http.MethodGet, testWS, "metadata", nil); string(a.body) != `{"status":"success","data":{}}` {
		t.Errorf("metadata without a source: %s", a.body)
	}
	if a := e.do(t, http.MethodGet, testWS, "query_exemplars", p("query", "up")); string(a.body) != `{"status":"success","data":[]}` {
		t.Errorf("exemplars without a source: %s", a.body)
	}
	a := e.do(t, http.MethodGet, testWS, "status/buildinfo", nil)
	if a.status != 200 || !bytes.HasPrefix(a.body, []byte(`{"status":"success","data":{"version":"3.`)) ||
		!bytes.Contains(a.body, []byte(`"revision":`)) || !bytes.Contains(a.body, []byte(`"goVersion":"go1.`)) {
		t.Errorf("buildinfo: %s", a.body)
	}
}

func TestBuildInfo(t *testing.T) {
	e := newEnv(t, nil)
	a := e.do(t, http.MethodGet, testWS, "status/buildinfo", nil)
	want := `{"status":"success","data":{"version":"3.16.0","revision":"test","branch":"","buildUser":"","buildDate":"","goVersion":"go1.26"}}`
	if string(a.body) != want {
		t.Errorf("got %s", a.body)
	}
}

// Every request closes the queriers it opened, whatever its outcome.
func TestQueriersClosed(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range apiCases {
		e.do(t, http.MethodGet, testWS, c.path, c.params)
	}
	if n := e.store.openQueriers(); n != 0 {
		t.Errorf("%d queriers left open", n)
	}
}
