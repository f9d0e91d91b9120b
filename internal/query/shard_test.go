package query

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

func TestPlanShards(t *testing.T) {
	cases := []struct {
		query    string
		merge    string // "" when not sharded
		partials []string
	}{
		{"sum by (job) (rate(x[5m]))", `sum by (job) (__strata_partial_0)`, []string{`sum by (job) (rate(x[5m]))`}},
		{"count without (instance) (x)", `sum without (instance, __strata_shard__) (__strata_partial_0)`, []string{`count without (instance) (x)`}},
		{"avg(x)", `(sum(__strata_partial_0) / sum(__strata_partial_1))`, []string{`sum(__strata_inner) of x`, `count(__strata_inner) of x`}},
		{"2 / avg by (job) (rate(x[5m]))", `2 / (sum by (job) (__strata_partial_0) / sum by (job) (__strata_partial_1))`,
			[]string{`sum by (job) (__strata_inner) of rate(x[5m])`, `count by (job) (__strata_inner) of rate(x[5m])`}},
		{"topk(5, rate(x[5m]))", `topk(5, __strata_partial_0)`, []string{`topk(5, rate(x[5m]))`}},
		{"histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))", `histogram_quantile(0.9, sum by (le) (__strata_partial_0))`, []string{`sum by (le) (rate(h_bucket[5m]))`}},
		{"sum(a) / max(b offset 1h)", `sum(__strata_partial_0) / max(__strata_partial_1)`, []string{`sum(a)`, `max(b offset 1h)`}},
		{"max(sum by (job) (x))", `max(sum by (job) (__strata_partial_0))`, []string{`sum by (job) (x)`}},
		{"min(clamp(x, 0, 1) * 2)", `min(__strata_partial_0)`, []string{`min(clamp(x, 0, 1) * 2)`}},
		// Not sharded.
		{"sum(a) / b", "", nil},                                // a selector outside
		{"sum(a * b)", "", nil},                                // vector meets vector
		{`sum(rate({__name__=~"a|b"}[5m]))`, "", nil},          // two names may become one series
		{`sum(label_replace(a, "x", "", "y", ".*"))`, "", nil}, // may make two series one
		{"sum(max_over_time(rate(a[5m])[1h:1m]))", "", nil},    // subquery
		{"quantile(0.9, a)", "", nil},                          // not mergeable
		{"topk(scalar(b), a)", "", nil},                        // k from a query
		{"sum(hour())", "", nil},                               // no selector
		{"sum(__strata_partial_0)", "", nil},                   // our own names
		{"a", "", nil},                                         // no aggregation
		{"sum(absent(a))", "", nil},                            // across series
		{"count(sort(a))", "", nil},                            // unknown to be per series
		{"stddev(a)", "", nil},                                 // not mergeable
		{"max_over_time(sum(rate(a[5m]))[30m:1m])", "", nil},   // its aggregation is at subquery steps
		{"sum(a) and on() sum(vector(1))", "sum(__strata_partial_0) and on () sum(vector(1))", []string{"sum(a)"}},
		{"histogram_count(sum(rate(h[5m])))", "", nil}, // the engine skips buckets under histogram_count
		{"count_values(\"v\", a)", "", nil},            // not merged (yet)
		{"limitk(2, a)", "", nil},                      // experimental, not merged
		{"sum(a @ 100)", "sum(__strata_partial_0)", []string{"sum(a @ 100.000)"}},
		{"avg by (__name__) (a)", "", nil}, // the merge's division would drop the name
	}
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true})
	for _, c := range cases {
		expr, err := p.ParseExpr(c.query)
		if err != nil {
			t.Fatal(err)
		}
		plan, ok := planShards(expr, c.query, p.ParseExpr)
		if ok != (c.merge != "") {
			t.Errorf("%s: sharded %v, want %v", c.query, ok, c.merge != "")
			continue
		}
		if !ok {
			continue
		}
		var partials []string
		for _, part := range plan.partials {
			e, err := p.ParseExpr(part.query)
			if err != nil {
				t.Fatalf("%s: partial %q: %v", c.query, part.query, err)
			}
			// What a shard evaluates over its series keeps the offsets of the query as
			// written: the partial, or avg's inner expression.
			over := part.query
			if part.inner != nil {
				over = part.inner.query
				in, err := p.ParseExpr(over)
				if err != nil || part.positioned || !part.inner.positioned {
					t.Fatalf("%s: inner %q: %v, positioned %v", c.query, over, err, part.inner.positioned)
				}
				partials = append(partials, e.String()+" of "+in.String())
			} else {
				partials = append(partials, e.String())
				if !part.positioned {
					t.Errorf("%s: partial %q not positioned", c.query, part.query)
				}
			}
			if body := strings.TrimLeft(over, " "); !strings.HasSuffix(c.query[:len(over)], body) {
				t.Errorf("%s: %q is not at its place in the query", c.query, over)
			}
		}
		if plan.merge != c.merge || !slices.Equal(partials, c.partials) {
			t.Errorf("%s:\n got %s with %q\nwant %s with %q", c.query, plan.merge, partials, c.merge, c.partials)
		}
	}
}

// Sharded queries answer as unsharded ones: exactly for count, min, max, group, topk and
// bottomk; sum and avg within float rounding. Instant queries, and range queries too
// short to split by steps, over floats, classic and native histograms, counters with a
// reset and special values; queries that cannot be sharded, or whose shards warn, are
// answered whole.
func TestShardedEqualsWhole(t *testing.T) {
	whole := newEnv(t, func(c *Config, _ *Deps) { c.ResultsCacheSize = 0 })
	sharded := newEnv(t, func(c *Config, _ *Deps) { c.ResultsCacheSize = 0; c.Shards = 3 })
	count := func(outcome string) float64 {
		return testutil.ToFloat64(sharded.api.metrics.sharded.WithLabelValues(outcome))
	}
	samples := func(e *env) float64 {
		return testutil.ToFloat64(e.api.metrics.samplesProcessed.WithLabelValues(testWS))
	}
	cases := []struct {
		query   string
		outcome string // the sharded env's: sharded, whole (fell back) or "" (not sharded)
		exact   bool
	}{
		{"sum by (job) (rate(http_requests_total[5m]))", "sharded", false},
		{"sum(http_requests_total)", "sharded", false},
		{"count by (code) (http_requests_total)", "sharded", true},
		{"count without (instance) (http_requests_total)", "sharded", true},
		{"max by (job) (http_requests_total)", "sharded", true},
		{"min without (method) (rate(http_requests_total[2m]))", "sharded", true},
		{"group by (instance) (http_requests_total)", "sharded", true},
		{"avg by (method) (http_requests_total)", "sharded", false},
		{"avg(rate(rpc_latency_seconds[5m]))", "sharded", false},
		{"avg without (instance) (clamp_min(http_requests_total offset 5m, 100))", "sharded", false},
		{"topk(3, http_requests_total)", "sharded", true},
		{"bottomk by (job) (2, rate(http_requests_total[5m]))", "sharded", true},
		{"histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))", "sharded", false},
		{"sum(histogram_count(rate(rpc_latency_seconds[5m])))", "sharded", false},
		{"histogram_count(sum(rate(rpc_latency_seconds[5m])))", "", false},
		{"avg(rate(node_memory_bytes[5m])) + sum(rate(node_memory_bytes[1m]))", "sharded", false}, // the info at the last position
		// Fall back: counter histograms added in another order may warn otherwise.
		{"sum(rpc_latency_seconds)", "whole", false},
		// Series leave the answer between steps (the merge must not look back to them).
		{"max without () (http_requests_total < 2000)", "sharded", true},
		{"count(special_values)", "sharded", true},
		{"max(special_values)", "sharded", true},
		{"sum by (job) (http_requests_total) / on (job) group_left count by (job) (http_requests_total)", "sharded", false},
		{"max(sum by (job) (http_requests_total))", "sharded", false},
		{"count(http_requests_total offset 10m) - count(http_requests_total)", "sharded", true},
		// The unsharded query notes that the metric might not be a counter: so do the
		// shards, at the same place in the query.
		{"sum(rate(node_memory_bytes[5m]))", "sharded", false},
		{"2 * avg by (job) (rate(node_memory_bytes[5m]))", "sharded", false},
		{"  max by (job) (\n    rate(node_memory_bytes[5m])\n  ) > 0", "sharded", true},
		// Fall back: max ignores histograms, an annotation of the aggregation's own.
		{"max(rpc_latency_seconds)", "whole", true},
		// Not sharded.
		{"http_requests_total", "", true},
		{"sum(http_requests_total) + scalar(node_memory_bytes)", "", true},
		{"quantile(0.5, http_requests_total)", "", true},
	}
	for _, c := range cases {
		for _, instant := range []bool{true, false} {
			name := fmt.Sprintf("%s/instant=%v", c.query, instant)
			t.Run(name, func(t *testing.T) {
				path, params := "query", p("query", c.query, "time", at(47*time.Minute))
				if !instant {
					// 12 steps: fewer than a split needs (30 per part), so sharded.
					path, params = "query_range", p("query", c.query, "start", at(20*time.Minute), "end", at(31*time.Minute), "step", "60")
				}
				before := map[string]float64{"sharded": count("sharded"), "whole": count("whole")}
				sw, ss := samples(whole), samples(sharded)
				w := whole.do(t, http.MethodGet, testWS, path, params)
				s := sharded.do(t, http.MethodGet, testWS, path, params)
				if w.status != http.StatusOK || s.status != w.status {
					t.Fatalf("status %d, sharded %d: %s", w.status, s.status, s.body)
				}
				tol := 0.0
				if !c.exact {
					tol = 1e-12
				}
				// PromQL leaves the order of an instant vector to storage, but for topk's.
				sorted := instant && !strings.Contains(c.query, "topk") && !strings.Contains(c.query, "bottomk")
				if err := sameAnswer(w.body, s.body, tol, sorted); err != nil {
					t.Fatalf("%v\nwhole:   %s\nsharded: %s", err, w.body, s.body)
				}
				for _, o := range []string{"sharded", "whole"} {
					if got, want := count(o)-before[o], b2f(o == c.outcome); got != want {
						t.Errorf("%s: %v, want %v", o, got, want)
					}
				}
				if got, want := samples(sharded)-ss, samples(whole)-sw; got != want {
					t.Errorf("samples processed %v, unsharded %v", got, want)
				}
			})
		}
	}
	if n := sharded.store.openQueriers(); n != 0 {
		t.Errorf("%d queriers left open", n)
	}
}

// A shard over its share of the samples limit sends the query whole, which answers as
// unsharded: the answer of avg's inner expression counts against the share too.
func TestShardOverItsShareAnswersWhole(t *testing.T) {
	// The 16 series of http_requests_total fit the limit; 3 shards × 2 partials share it.
	limit := func(c *Config, _ *Deps) { c.ResultsCacheSize = 0; c.MaxSamples = 18 }
	whole := newEnv(t, limit)
	sharded := newEnv(t, func(c *Config, d *Deps) { limit(c, d); c.Shards = 3 })
	params := p("query", "avg by (method) (http_requests_total)", "time", at(47*time.Minute))
	w := whole.do(t, http.MethodGet, testWS, "query", params)
	s := sharded.do(t, http.MethodGet, testWS, "query", params)
	if w.status != http.StatusOK || s.status != w.status {
		t.Fatalf("status %d, sharded %d: %s", w.status, s.status, s.body)
	}
	if err := sameAnswer(w.body, s.body, 1e-12, true); err != nil {
		t.Fatalf("%v\nwhole:   %s\nsharded: %s", err, w.body, s.body)
	}
	if got := testutil.ToFloat64(sharded.api.metrics.sharded.WithLabelValues("whole")); got != 1 {
		t.Fatalf("%v queries fell back whole, want 1", got)
	}
}

// avg merged as a sum over a count overflows where Prometheus' avg turns to an incremental
// mean: a sharded avg whose answer overflowed is evaluated whole.
func TestShardedAvgOverflowAnswersWhole(t *testing.T) {
	const ws = "ws-huge"
	mk := func(shards int) *env {
		e := newEnv(t, func(c *Config, _ *Deps) { c.ResultsCacheSize = 0; c.Shards = shards })
		var data []fixtureSeries
		for i := range 8 {
			s := fixtureSeries{lset: labels.FromStrings("__name__", "huge", "i", strconv.Itoa(i))}
			for k := range fixtureScrapes {
				s.samples = append(s.samples, fixtureSample{t: fixtureTime(k), v: 1.5e308})
			}
			data = append(data, s)
		}
		db := openTSDB(t)
		appendFixture(t, db, data)
		e.store.add(ws, db)
		return e
	}
	whole, sharded := mk(0), mk(3)
	params := p("query", "avg(huge)", "time", at(47*time.Minute))
	w := whole.do(t, http.MethodGet, ws, "query", params)
	s := sharded.do(t, http.MethodGet, ws, "query", params)
	if w.status != http.StatusOK || string(s.body) != string(w.body) || !strings.Contains(string(w.body), `"1.5e+308"`) {
		t.Fatalf("whole %d %s\nsharded %d %s", w.status, w.body, s.status, s.body)
	}
	if got := testutil.ToFloat64(sharded.api.metrics.sharded.WithLabelValues("whole")); got != 1 {
		t.Fatalf("%v queries fell back whole, want 1", got)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sameAnswer compares two JSON answers: equal, but for numbers given as strings (sample
// values), which may differ by tol relative to their size.
func sameAnswer(a, b []byte, tol float64, sorted bool) error {
	x, err := parseJSON(a)
	if err != nil {
		return err
	}
	y, err := parseJSON(b)
	if err != nil {
		return err
	}
	if sorted {
		for _, n := range []*jnode{x, y} {
			if r := n.get("data").get("result"); r != nil && r.kind == 'a' {
				r.sortArray()
			}
		}
	}
	return sameNode(x, y, tol)
}

func sameNode(x, y *jnode, tol float64) error {
	if x.kind != y.kind || len(x.obj) != len(y.obj) || len(x.arr) != len(y.arr) {
		return fmt.Errorf("%s differs from %s", x, y)
	}
	switch x.kind {
	case 's':
		if string(x.raw) == string(y.raw) {
			return nil
		}
		u, err1 := strconv.Unquote(string(x.raw))
		v, err2 := strconv.Unquote(string(y.raw))
		f, err3 := strconv.ParseFloat(u, 64)
		g, err4 := strconv.ParseFloat(v, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || math.Abs(f-g) > tol*math.Max(math.Abs(f), math.Abs(g)) {
			return fmt.Errorf("%s differs from %s", x.raw, y.raw)
		}
	case 'o':
		for i := range x.obj {
			if x.obj[i].key != y.obj[i].key {
				return fmt.Errorf("key %s differs from %s", x.obj[i].key, y.obj[i].key)
			}
			if err := sameNode(x.obj[i].val, y.obj[i].val, tol); err != nil {
				return err
			}
		}
	case 'a':
		for i := range x.arr {
			if err := sameNode(x.arr[i], y.arr[i], tol); err != nil {
				return err
			}
		}
	}
	return nil
}

// selectCounter serves n series of one sample each and counts its selects.
type selectCounter struct {
	storage.Querier
	n       int
	selects *atomic.Int32
}

func (q selectCounter) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	q.selects.Add(1)
	var ss []storage.Series
	for i := range q.n {
		ss = append(ss, storage.NewListSeries(labels.FromStrings("i", strconv.Itoa(i)), []chunks.Sample{partialSample{t: 1, f: float64(i)}}))
	}
	return &listSeriesSet{series: ss, i: -1}
}

func (selectCounter) Close() error { return nil }

// A shard's partials of one selector (`sum(x) / count(x)`) read its series once, each
// iterating them on its own; the series budget counts them as the whole query reads
// them: twice for a selector the query names twice.
func TestSharedSelects(t *testing.T) {
	for _, c := range []struct {
		name   string
		reads  int
		budget int64
	}{{"named once", 1, 10}, {"named twice", 2, 20}, {"named three times", 3, 30}} {
		t.Run(c.name, func(t *testing.T) {
			var selects atomic.Int32
			budget := &seriesBudget{limit: 1000}
			under := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) {
				return limitQuerier(selectCounter{n: 10, selects: &selects}, budget), nil
			})
			shared := shareSelects(under, budget)
			defer shared.close()
			m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "x")
			for range c.reads {
				q, err := shared.view().Querier(0, 100)
				if err != nil {
					t.Fatal(err)
				}
				set := q.Select(context.Background(), false, &storage.SelectHints{Start: 0, End: 100}, m)
				n := 0
				for set.Next() {
					it := set.At().Iterator(nil)
					for it.Next() != chunkenc.ValNone {
						n++
					}
				}
				if err := set.Err(); err != nil || n != 10 {
					t.Fatalf("read %d samples, %v; want 10", n, err)
				}
				q.Close()
			}
			if got := selects.Load(); got != 1 {
				t.Fatalf("%d selects of the storage, want 1", got)
			}
			if got := budget.read.Load(); got != c.budget {
				t.Fatalf("series budget counted %d, want %d", got, c.budget)
			}
		})
	}
}
