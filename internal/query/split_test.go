package query

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestSplitSteps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		steps, parts, minSteps int
		want                   []int // steps per part
	}{
		{steps: 1, parts: 4, minSteps: 1, want: []int{1}},
		{steps: 3, parts: 4, minSteps: 1, want: []int{3}}, // parts of one step are not made
		{steps: 4, parts: 4, minSteps: 2, want: []int{2, 2}},
		{steps: 59, parts: 2, minSteps: 30, want: []int{59}},
		{steps: 60, parts: 2, minSteps: 30, want: []int{30, 30}},
		{steps: 61, parts: 2, minSteps: 30, want: []int{30, 31}},
		{steps: 1441, parts: 2, minSteps: 30, want: []int{720, 721}},
		{steps: 1441, parts: 8, minSteps: 30, want: []int{180, 180, 180, 180, 180, 180, 180, 181}},
		{steps: 100, parts: 8, minSteps: 30, want: []int{33, 33, 34}},
		{steps: 10, parts: 1, minSteps: 2, want: []int{10}},
	} {
		t.Run(fmt.Sprintf("%d/%d/%d", tc.steps, tc.parts, tc.minSteps), func(t *testing.T) {
			const step = 15 * time.Second
			end := t0.Add(time.Duration(tc.steps-1) * step)
			got := splitSteps(t0, end, step, tc.parts, tc.minSteps)
			if len(got) != len(tc.want) {
				t.Fatalf("%d parts %v, want %d", len(got), got, len(tc.want))
			}
			next := t0 // every step once, in order
			for i, r := range got {
				if !r.start.Equal(next) {
					t.Fatalf("part %d starts at %v, want %v", i, r.start, next)
				}
				if n := int(r.end.Sub(r.start)/step) + 1; n != tc.want[i] {
					t.Errorf("part %d has %d steps, want %d", i, n, tc.want[i])
				}
				next = r.end.Add(step)
			}
			if !next.Equal(end.Add(step)) {
				t.Errorf("parts end at %v, want %v", next.Add(-step), end)
			}
		})
	}
}

func TestSplittable(t *testing.T) {
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true})
	for q, want := range map[string]bool{
		`sum by (job) (rate(http_requests_total[5m]))`:              true,
		`histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))`: true,
		`topk(3, x) or on() vector(1) + time()`:                     true,
		`x offset 5m`:                                               true,
		`x offset (5m + 1m)`:                                        true,
		`rate(x[5m + 1m])`:                                          true,
		`sort(x)`:                                                   true,
		`"a string"`:                                                true,
		`max_over_time(rate(x[5m])[1h:1m])`:                         false, // subquery
		`x @ 100`:                                                   false,
		`x @ start()`:                                               false,
		`rate(x[5m] @ end())`:                                       false,
		`x + start()`:                                               false,
		`vector(step())`:                                            false,
		`count_over_time(x[range()])`:                               false,
		`x offset step()`:                                           false,
		`x offset (2 * step())`:                                     false,
		`sum(x) / scalar(sum(y offset 1h))`:                         true,
		`label_replace(x, "a", "$1", "b", "(.*)") > bool on(a) group_left y`: true,
	} {
		expr, err := p.ParseExpr(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got := splittable(expr); got != want {
			t.Errorf("splittable(%s) = %v, want %v", q, got, want)
		}
	}
}

func TestConcatMatrices(t *testing.T) {
	a, b, c := labels.FromStrings("n", "a"), labels.FromStrings("n", "b"), labels.FromStrings("n", "c")
	pts := func(ts ...int64) []promql.FPoint {
		var out []promql.FPoint
		for _, t := range ts {
			out = append(out, promql.FPoint{T: t, F: float64(t)})
		}
		return out
	}
	got := concatMatrices([]promql.Matrix{
		{{Metric: b, Floats: pts(1, 2)}, {Metric: c, Floats: pts(2)}},
		{{Metric: a, Floats: pts(3)}, {Metric: b, Floats: pts(3, 4)}}, // a appears late
		{{Metric: c, Floats: pts(5)}},
	})
	want := promql.Matrix{{Metric: a, Floats: pts(3)}, {Metric: b, Floats: pts(1, 2, 3, 4)}, {Metric: c, Floats: pts(2, 5)}}
	if got.String() != want.String() {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// TestSplitEqualsWhole: range queries answered by parts evaluated in parallel are byte
// for byte the answers of the whole query, with the same samples processed; queries that
// cannot be split run whole; a part over its share of the samples limit makes the query
// run whole, so the limit still decides as it would unsplit.
func TestSplitEqualsWhole(t *testing.T) {
	whole := newEnv(t, func(c *Config, _ *Deps) { c.Parallelism = 1 })
	split := newEnv(t, func(c *Config, _ *Deps) { c.Parallelism = 4 })
	split.api.minStepsPerPart = 2
	rangeOf := func(q, start, end, step string, extra ...string) url.Values {
		return p(append([]string{"query", q, "start", start, "end", end, "step", step}, extra...)...)
	}
	tests := []struct {
		params url.Values
		split  bool
	}{
		{rangeOf("sum by (job) (rate(http_requests_total[5m]))", tZero, tEnd, "60"), true},
		{rangeOf("http_requests_total", tZero, tEnd, "15s"), true},
		{rangeOf("http_requests_total", tZero, tEnd, "7s", "limit", "3"), true},
		{rangeOf("rate(http_requests_total[1m])", t30, at(31*time.Minute), "1s"), true},
		{rangeOf("histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))", tZero, tEnd, "60"), true},
		{rangeOf("rpc_latency_seconds", tZero, tEnd, "2m"), true},
		{rangeOf("histogram_count(rate(rpc_latency_seconds[5m]))", tZero, tEnd, "90s"), true},
		{rangeOf("special_values * 2 - 1", tZero, tEnd, "5m"), true},
		{rangeOf("topk(3, http_requests_total)", tZero, tEnd, "60"), true},
		{rangeOf("sort_desc(node_memory_bytes)", tZero, tEnd, "60"), true}, // its warning once
		{rangeOf("rate(node_memory_bytes[5m])", tZero, tEnd, "60"), true},  // an info annotation
		{rangeOf("absent(no_such_metric)", tZero, tEnd, "60"), true},
		{rangeOf("count_over_time(http_requests_total[2m]) > 4", tZero, tEnd, "45s"), true},
		{rangeOf(`label_replace(node_memory_bytes, "host", "h-$1", "instance", "(.*)")`, tZero, tEnd, "60"), true},
		{rangeOf("scalar(sum(node_memory_bytes)) + time()", tZero, tEnd, "60"), true},
		{rangeOf("node_memory_bytes offset 10m", tZero, tEnd, "60"), true},
		{rangeOf("1", tZero, tEnd, "60"), true},
		{rangeOf("no_such_metric", tZero, tEnd, "60"), true},
		// Runs whole: a subquery, an @ modifier, statistics asked for, too few steps.
		{rangeOf("max_over_time(sum(rate(http_requests_total[5m]))[10m:1m])", tZero, tEnd, "60"), false},
		{rangeOf("node_memory_bytes @ "+at(10*time.Minute), tZero, tEnd, "60"), false},
		{rangeOf("sum(rate(http_requests_total[5m]))", tZero, tEnd, "60", "stats", "true"), false},
		{rangeOf("sum(http_requests_total)", t30, t30, "60"), false},
		// Errors are the whole query's.
		{rangeOf("http_requests_total / on(job) http_requests_total", tZero, tEnd, "60"), true},
		{rangeOf("sum(x", tZero, tEnd, "60"), false},
	}
	for _, tc := range tests {
		t.Run(tc.params.Get("query")+"/"+tc.params.Get("step"), func(t *testing.T) {
			before := testutil.ToFloat64(split.api.metrics.split.WithLabelValues("split"))
			w := whole.do(t, http.MethodGet, testWS, "query_range", tc.params)
			s := split.do(t, http.MethodGet, testWS, "query_range", tc.params)
			if w.status != s.status || string(withoutTimings(w.body)) != string(withoutTimings(s.body)) {
				t.Fatalf("whole: %d %s\nsplit: %d %s", w.status, w.body, s.status, s.body)
			}
			if n := testutil.ToFloat64(split.api.metrics.split.WithLabelValues("split")) - before; (n == 1) != tc.split {
				t.Errorf("split %v times, want split=%v", n, tc.split)
			}
			ws := testutil.ToFloat64(whole.api.metrics.samplesProcessed.WithLabelValues(testWS))
			ss := testutil.ToFloat64(split.api.metrics.samplesProcessed.WithLabelValues(testWS))
			if ws != ss {
				t.Errorf("samples processed: whole %v, split %v", ws, ss)
			}
		})
	}
	if n := split.store.openQueriers(); n != 0 {
		t.Errorf("%d queriers left open", n)
	}
}

// TestSplitSampleLimit: the samples limit bounds the whole query. A query that fits
// the limit whole but not in a part's share runs whole and succeeds; one over the limit
// whole fails as it would unsplit.
func TestSplitSampleLimit(t *testing.T) {
	const q = "http_requests_total" // the answer holds 16 series × steps points
	params := p("query", q, "start", tZero, "end", tEnd, "step", "60")
	probe := newEnv(t, func(c *Config, _ *Deps) { c.Parallelism = 1; c.MaxSamples = 0 })
	peak := func() int { // the whole query's peak, from its stats
		a := probe.do(t, http.MethodGet, testWS, "query_range", p("query", q, "start", tZero, "end", tEnd, "step", "60", "stats", "all"))
		var n int
		if _, err := fmt.Sscanf(string(a.body[indexOf(a.body, `"peakSamples":`)+len(`"peakSamples":`):]), "%d", &n); err != nil {
			t.Fatalf("%v: %s", err, a.body)
		}
		return n
	}()
	for _, tc := range []struct {
		limit   int
		status  int
		outcome string
	}{
		{limit: peak, status: http.StatusOK, outcome: "whole"},
		{limit: peak - 1, status: 422, outcome: "whole"},
		{limit: 4 * peak, status: http.StatusOK, outcome: "split"},
	} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			whole := newEnv(t, func(c *Config, _ *Deps) { c.Parallelism = 1; c.MaxSamples = tc.limit })
			split := newEnv(t, func(c *Config, _ *Deps) { c.Parallelism = 4; c.MaxSamples = tc.limit })
			w := whole.do(t, http.MethodGet, testWS, "query_range", params)
			s := split.do(t, http.MethodGet, testWS, "query_range", params)
			if w.status != tc.status || s.status != tc.status || string(w.body) != string(s.body) {
				t.Fatalf("whole: %d %.200s\nsplit: %d %.200s", w.status, w.body, s.status, s.body)
			}
			if n := testutil.ToFloat64(split.api.metrics.split.WithLabelValues(tc.outcome)); n != 1 {
				t.Errorf("outcome %s counted %v times, want 1", tc.outcome, n)
			}
		})
	}
}

func indexOf(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

// withoutTimings drops the "timings" of an answer's stats, which differ from run to run.
func withoutTimings(b []byte) []byte {
	return timingsRE.ReplaceAll(b, nil)
}

var timingsRE = regexp.MustCompile(`"timings":\{[^}]*\},?`)
