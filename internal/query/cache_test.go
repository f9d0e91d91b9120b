package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/storage"
)

// The results cache answers byte for byte as evaluation does: cold, warm, over ranges
// that grow an extent before and after, sub-ranges, across "days" (10m here), and with
// steps off the day grid. Queries it must not cache are evaluated: answers with
// annotations, negative offsets, Cache-Control: no-store, steps too new.
func TestResultsCacheEqualsEvaluation(t *testing.T) {
	cached := newEnv(t, func(c *Config, _ *Deps) { c.SplitInterval = 10 * time.Minute })
	testResultsCacheEquals(t, cached, func() { cached.api.Invalidate(testWS) })
}

// testResultsCacheEquals runs TestResultsCacheEqualsEvaluation's checks on cached, an env
// with a results cache of 10m "days"; invalidate must make the workspace's cached extents
// unusable, as deleting or reconfiguring it does.
func testResultsCacheEquals(t *testing.T, cached *env, invalidate func()) {
	plain := newEnv(t, func(c *Config, _ *Deps) { c.ResultsCacheSize = 0 })
	steps := func(result string) float64 {
		return testutil.ToFloat64(cached.api.metrics.cacheSteps.WithLabelValues(result))
	}
	check := func(t *testing.T, params url.Values, header http.Header) {
		t.Helper()
		u := "/workspaces/" + testWS + "/api/v1/query_range"
		w := doHTTP(t, http.MethodGet, plain.srv.URL+u, params, nil)
		c := doHTTP(t, http.MethodGet, cached.srv.URL+u, params, header)
		if w.status != c.status || string(w.body) != string(c.body) {
			t.Fatalf("%v\nevaluated: %d %s\ncached:    %d %s", params, w.status, w.body, c.status, c.body)
		}
	}
	exprs := []string{
		"sum by (job) (rate(http_requests_total[5m]))",
		"http_requests_total",
		"histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
		"rpc_latency_seconds",
		"histogram_count(rate(rpc_latency_seconds[5m]))",
		"special_values * 2 - 1",
		"topk(3, http_requests_total)",
		"sort_desc(node_memory_bytes)",
		"rate(node_memory_bytes[5m])",
		"absent(no_such_metric)",
		"count_over_time(http_requests_total[2m]) > 4",
		"node_memory_bytes offset 10m",
		"scalar(sum(node_memory_bytes)) + time()",
	}
	// Their answers carry a warning or an info: not cached.
	annotated := map[string]bool{"sort_desc(node_memory_bytes)": true, "rate(node_memory_bytes[5m])": true}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 60 {
		expr := exprs[i%len(exprs)]
		step := []time.Duration{7 * time.Second, 15 * time.Second, time.Minute, 90 * time.Second}[rng.IntN(4)]
		start := time.Duration(rng.IntN(40*60)) * time.Second
		if rng.IntN(2) == 0 {
			start = start.Truncate(10 * time.Minute) // on a "day" boundary
		}
		end := start + time.Duration(rng.IntN(30*60)+60)*time.Second
		params := func(s, e time.Duration) url.Values {
			return p("query", expr, "start", at(s), "end", at(e), "step", fmt.Sprint(step.Seconds()))
		}
		t.Run(fmt.Sprintf("%d/%s", i, expr), func(t *testing.T) {
			check(t, params(start, end), nil) // cold, or growing an extent of an earlier case
			hits := steps("hit")
			check(t, params(start, end), nil) // warm
			if hit := steps("hit") != hits; hit == annotated[expr] {
				t.Errorf("the same query again: hit %v, want %v", hit, !annotated[expr])
			}
			shift := time.Duration(rng.IntN(20)-10) * step
			check(t, params(start+shift, end+shift+step), nil) // overlaps: grows the extents
			check(t, params(start+step, end-step), nil)        // inside: hits only
		})
	}

	// Not cached: a negative offset (reads samples after its step), no-store.
	before := steps("hit") + steps("miss")
	check(t, p("query", "node_memory_bytes offset -5m", "start", at(0), "end", at(30*time.Minute), "step", "60"), nil)
	check(t, p("query", "node_memory_bytes offset -5m", "start", at(0), "end", at(30*time.Minute), "step", "60"), nil)
	check(t, p("query", "http_requests_total", "start", at(0), "end", at(30*time.Minute), "step", "60"), http.Header{"Cache-Control": {"no-store"}})
	if got := steps("hit") + steps("miss"); got != before {
		t.Errorf("uncacheable requests used the cache: %v steps", got-before)
	}

	// A workspace invalidated (deleted, reconfigured) is evaluated again.
	params := p("query", "sum(http_requests_total)", "start", at(0), "end", at(40*time.Minute), "step", "60")
	check(t, params, nil)
	misses := steps("miss")
	invalidate()
	check(t, params, nil)
	if steps("miss") != misses+41 {
		t.Errorf("after invalidating %v steps evaluated, want all 41", steps("miss")-misses)
	}

	// Steps newer than the freshness bound are evaluated every time.
	cached.api.now = func() time.Time { return fixtureStart.Add(30 * time.Minute) }
	fresh := steps("uncacheable")
	params = p("query", "sum(http_requests_total)", "start", at(0), "end", at(40*time.Minute), "step", "60")
	check(t, params, nil)
	if n := steps("uncacheable") - fresh; n != 20 {
		t.Errorf("%v steps evaluated as too new to cache, want 20 (after 30m - 10m)", n)
	}
	if n := cached.store.openQueriers(); n != 0 {
		t.Errorf("%d queriers left open", n)
	}
}

// The cache stays within its size: the least recently used extents go, and answers
// stay exact.
func TestResultsCacheEvicts(t *testing.T) {
	plain := newEnv(t, func(c *Config, _ *Deps) { c.ResultsCacheSize = 0 })
	const size = 8 << 10
	cached := newEnv(t, func(c *Config, _ *Deps) { c.SplitInterval = 10 * time.Minute; c.ResultsCacheSize = size })
	u := "/workspaces/" + testWS + "/api/v1/query_range"
	for i := range 3 {
		for _, q := range []string{"http_requests_total", "sum by (job) (rate(http_requests_total[5m]))", "rpc_latency_seconds"} {
			params := p("query", q, "start", at(time.Duration(i)*time.Minute), "end", at(45*time.Minute), "step", "15")
			w := doHTTP(t, http.MethodGet, plain.srv.URL+u, params, nil)
			c := doHTTP(t, http.MethodGet, cached.srv.URL+u, params, nil)
			if w.status != c.status || string(w.body) != string(c.body) {
				t.Fatalf("%v\nevaluated: %d %.300s\ncached:    %d %.300s", params, w.status, w.body, c.status, c.body)
			}
		}
	}
	if n := testutil.ToFloat64(cached.api.metrics.cacheEvictions); n == 0 {
		t.Error("nothing evicted from a cache of 8 KiB")
	}
	if b := testutil.ToFloat64(cached.api.metrics.cacheBytes); b > size {
		t.Errorf("the cache holds %v bytes, more than its %d", b, size)
	}
}

// retentionQueryables drops samples older than the retention, as the querier does.
type retentionQueryables struct {
	Queryables
	now func() time.Time
	ret time.Duration
}

func (q retentionQueryables) Querier(ctx context.Context, ws string, mint, maxt int64) (storage.Querier, error) {
	return q.Queryables.Querier(ctx, ws, max(mint, q.now().Add(-q.ret).UnixMilli()), maxt)
}

func (q retentionQueryables) Retention(context.Context, string) (time.Duration, bool, error) {
	return q.ret, true, nil
}

// Steps that read samples near the retention's cutoff are evaluated: the cutoff moves on,
// and an extent made earlier holds samples the workspace no longer answers with.
func TestResultsCacheRetentionEdge(t *testing.T) {
	now := fixtureStart.Add(80 * time.Minute)
	clock := func() time.Time { return now }
	withRetention := func(c *Config, d *Deps) {
		q := retentionQueryables{Queryables: d.Queryables, now: clock, ret: time.Hour}
		d.Queryables, d.Retentions = q, q
	}
	plain := newEnv(t, func(c *Config, d *Deps) { c.ResultsCacheSize = 0; withRetention(c, d) })
	cached := newEnv(t, func(c *Config, d *Deps) { c.SplitInterval = 10 * time.Minute; withRetention(c, d) })
	cached.api.now, cached.api.retentionEdge = clock, time.Minute
	steps := func(result string) float64 {
		return testutil.ToFloat64(cached.api.metrics.cacheSteps.WithLabelValues(result))
	}
	u := "/workspaces/" + testWS + "/api/v1/query_range"
	for _, expr := range []string{"sum(http_requests_total)", "sum(rate(http_requests_total[5m]))", "http_requests_total offset 3m"} {
		params := p("query", expr, "start", at(0), "end", at(50*time.Minute), "step", "60")
		check := func(wantEdge float64) {
			t.Helper()
			edge := steps("uncacheable")
			w := doHTTP(t, http.MethodGet, plain.srv.URL+u, params, nil)
			c := doHTTP(t, http.MethodGet, cached.srv.URL+u, params, nil)
			if w.status != 200 || string(w.body) != string(c.body) {
				t.Fatalf("%s at %v\nevaluated: %d %s\ncached:    %d %s", expr, now, w.status, w.body, c.status, c.body)
			}
			if got := steps("uncacheable") - edge; got != wantEdge {
				t.Errorf("%s at %v: %v steps evaluated near the retention's cutoff, want %v", expr, now, got, wantEdge)
			}
		}
		reach := map[string]float64{"sum(http_requests_total)": 5, "sum(rate(http_requests_total[5m]))": 5, "http_requests_total offset 3m": 8}[expr]
		now = fixtureStart.Add(80 * time.Minute) // cutoff at 20m: steps before 21m + reach evaluated
		check(21 + reach)
		check(21 + reach)               // the rest from the cache
		now = now.Add(15 * time.Minute) // cutoff at 35m: the extents hold steps that no longer read the same samples
		check(36 + reach)
	}
}
