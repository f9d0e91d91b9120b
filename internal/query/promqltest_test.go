package query

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
)

// Prometheus' own PromQL test scripts (promql/promqltest/testdata/*.test, embedded in the
// module) run through the query path of the API: the engine built by the API, and for
// every query the storage.Queryable the API builds for a request — the workspace bound
// through Queryables, the series budget on every select. Upstream's expectations assume
// the options of promqltest.NewTestEngine (experimental functions and modifiers, delayed
// __name__ removal, start timestamps, 10,000 samples per query), so the engine is built
// with those; what is under test is that PromQL over our storage path agrees with
// upstream. No upstream case fails or is skipped.
//
// The scripts run twice: range queries evaluated whole, and cut into parts of their
// steps evaluated in parallel (split.go) down to one step per part, so every upstream
// range case also checks that splitting gives the whole's answer.
func TestPromQLUpstreamScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	for _, mode := range []struct {
		name        string
		parallelism int
	}{{"whole", 1}, {"split", 3}} {
		t.Run(mode.name, func(t *testing.T) {
			routes := &routedQueryables{byWS: map[string]storage.Queryable{}}
			cfg := testConfig()
			cfg.MaxSamples = promqltest.DefaultMaxSamplesPerQuery
			cfg.Parallelism = mode.parallelism
			a, err := newAPI(cfg, Deps{Queryables: routes, Workspaces: routes}, func(o *promql.EngineOpts) {
				o.Parser = parser.NewParser(promqltest.TestParserOpts)
				o.EnableDelayedNameRemoval = true
				o.UseStartTimestamps = true
				o.NoStepSubqueryIntervalFn = func(int64) int64 { return time.Minute.Milliseconds() }
			})
			if err != nil {
				t.Fatal(err)
			}
			a.minStepsPerPart = 2
			a.parser = parser.NewParser(promqltest.TestParserOpts) // the engine's, for splittable
			t.Cleanup(func() { _ = a.Close() })
			promqltest.RunBuiltinTests(t, &apiEngine{api: a, routes: routes})
			if mode.parallelism > 1 {
				n := testutil.ToFloat64(a.metrics.split.WithLabelValues("split"))
				t.Logf("%v range queries split, %v ran whole after a part hit its share of the samples limit",
					n, testutil.ToFloat64(a.metrics.split.WithLabelValues("whole")))
				if n < 150 {
					t.Errorf("only %v range queries split: the split path is not what the scripts test", n)
				}
			}
		})
	}
}

// apiEngine is a promql.QueryEngine that runs queries the way the API does, over the
// storage promqltest hands it.
type apiEngine struct {
	api    *API
	routes *routedQueryables
}

func (e *apiEngine) request(q storage.Queryable) *request {
	ws := e.routes.route(q)
	return &request{ws: ws, lim: e.api.limits.QueryLimits(ws)}
}

func (e *apiEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	req := e.request(q)
	return e.api.engineFor(req.lim.MaxSamples).NewInstantQuery(ctx, e.api.queryable(ctx, req.ws, req.seriesBudget()), opts, qs, ts)
}

func (e *apiEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	req := e.request(q)
	return e.api.newRangeQuery(ctx, req.ws, req.lim, req.seriesBudget(), opts, qs, start, end, step, false, false)
}

// routedQueryables serves each storage it is handed as a workspace of its own.
type routedQueryables struct {
	mu   sync.Mutex
	byWS map[string]storage.Queryable
}

func (r *routedQueryables) route(q storage.Queryable) string {
	ws := fmt.Sprintf("ws-%p", q)
	r.mu.Lock()
	r.byWS[ws] = q
	r.mu.Unlock()
	return ws
}

func (r *routedQueryables) Querier(_ context.Context, ws string, mint, maxt int64) (storage.Querier, error) {
	r.mu.Lock()
	q, ok := r.byWS[ws]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown workspace %s", ws)
	}
	return q.Querier(mint, maxt)
}

func (r *routedQueryables) Exists(_ context.Context, ws string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.byWS[ws]
	return ok, nil
}

// testConfig is the configuration with its flag defaults.
func testConfig() Config {
	var cfg Config
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	return cfg
}
