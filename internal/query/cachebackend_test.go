package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	stratatest "github.com/stratametrics/strata/internal/testutil"
)

// remoteServer is a memcached or Redis server a test started.
type remoteServer struct {
	backend string
	*stratatest.CacheServer
}

// configure points cfg's results cache at the server, with 10m "days".
func (s *remoteServer) configure(cfg *Config) {
	cfg.SplitInterval = 10 * time.Minute
	cfg.ResultsCache.Backend = s.backend
	cfg.ResultsCache.Memcached.Addresses = s.Socket
	cfg.ResultsCache.Redis.Endpoint = s.Socket
}

// startRemote starts a server of backend; it is killed when the test ends.
func startRemote(t *testing.T, backend string) *remoteServer {
	t.Helper()
	if backend == CacheBackendMemcached {
		return &remoteServer{backend, stratatest.StartMemcached(t)}
	}
	return &remoteServer{backend, stratatest.StartRedis(t)}
}

var remoteBackends = []string{CacheBackendMemcached, CacheBackendRedis}

// versions is a workspace version every instance of a test reads, as processes read the
// workspace's record: bump changes it, as a reconfiguration does.
type versions struct{ n atomic.Int64 }

func (v *versions) cacheVersion(deps *Deps) {
	deps.CacheVersion = func(_ context.Context, ws string) (string, bool) { return fmt.Sprint(ws, "@", v.n.Load()), true }
}

func (v *versions) bump() { v.n.Add(1) }

func backendErrors(e *env, backend string) float64 {
	var n float64
	for _, r := range []string{"get", "set", "corrupt", "wrong_key", "too_large"} {
		n += testutil.ToFloat64(e.api.metrics.cacheBackendErrors.WithLabelValues(backend, r))
	}
	return n
}

// Each remote backend answers as evaluation does, by TestResultsCacheEqualsEvaluation's
// checks, and without a failure.
func TestResultsCacheRemoteEqualsEvaluation(t *testing.T) {
	for _, backend := range remoteBackends {
		t.Run(backend, func(t *testing.T) {
			srv := startRemote(t, backend)
			var v versions
			cached := newEnv(t, func(c *Config, d *Deps) { srv.configure(c); v.cacheVersion(d) })
			testResultsCacheEquals(t, cached, v.bump)
			if n := backendErrors(cached, backend); n != 0 {
				t.Errorf("%v backend errors", n)
			}
		})
	}
}

// Two instances sharing a server find each other's extents; a reconfiguration seen by
// both (a new version) makes them evaluate again, even when it restores an earlier
// retention; a server that dies gives misses, counted, and right answers.
func TestResultsCacheShared(t *testing.T) {
	for _, backend := range remoteBackends {
		t.Run(backend, func(t *testing.T) {
			srv := startRemote(t, backend)
			plain := newEnv(t, func(c *Config, _ *Deps) { c.ResultsCacheSize = 0 })
			var v versions
			a := newEnv(t, func(c *Config, d *Deps) { srv.configure(c); v.cacheVersion(d) })
			b := newEnv(t, func(c *Config, d *Deps) { srv.configure(c); v.cacheVersion(d) })
			steps := func(e *env, result string) float64 {
				return testutil.ToFloat64(e.api.metrics.cacheSteps.WithLabelValues(result))
			}
			u := "/workspaces/" + testWS + "/api/v1/query_range"
			query := func(e *env, q string) {
				t.Helper()
				params := p("query", q, "start", at(0), "end", at(40*time.Minute), "step", "60")
				want := doHTTP(t, http.MethodGet, plain.srv.URL+u, params, nil)
				got := doHTTP(t, http.MethodGet, e.srv.URL+u, params, nil)
				if want.status != http.StatusOK || got.status != want.status || string(got.body) != string(want.body) {
					t.Fatalf("%s\nevaluated: %d %s\ncached:    %d %s", q, want.status, want.body, got.status, got.body)
				}
			}
			const q = "sum by (job) (rate(http_requests_total[5m]))"
			query(a, q)
			if n := steps(a, "miss"); n != 41 {
				t.Fatalf("first instance evaluated %v steps, want 41", n)
			}
			query(b, q)
			if hit, miss := steps(b, "hit"), steps(b, "miss"); hit != 41 || miss != 0 {
				t.Fatalf("second instance: %v steps hit, %v evaluated; want 41 hit", hit, miss)
			}

			// A reconfiguration (retention 150d → 7d → 150d, each a new record): the
			// extents made before are not used, by either instance.
			v.bump()
			v.bump()
			query(b, q)
			if miss := steps(b, "miss"); miss != 41 {
				t.Fatalf("after the workspace changed, the second instance evaluated %v steps, want 41", miss)
			}
			query(a, q)
			if hit := steps(a, "hit"); hit != 41 {
				t.Fatalf("the first instance hit %v steps of the second's new extents, want 41", hit)
			}

			// The server dies: misses, counted; the answers stay right.
			srv.Kill(t)
			before := steps(a, "miss")
			query(a, q)
			query(a, "http_requests_total")
			if miss := steps(a, "miss") - before; miss != 82 {
				t.Errorf("with the server down %v steps evaluated, want 82", miss)
			}
			// One get and one set per "day" of each query.
			gets := testutil.ToFloat64(a.api.metrics.cacheBackendErrors.WithLabelValues(backend, "get"))
			sets := testutil.ToFloat64(a.api.metrics.cacheBackendErrors.WithLabelValues(backend, "set"))
			if gets < 2 || sets != gets {
				t.Errorf("%v get and %v set errors counted, want as many, one a day", gets, sets)
			}
		})
	}
}

// An extent whose encoding is over the maximum item size is evaluated every time, and
// counted.
func TestResultsCacheRemoteTooLarge(t *testing.T) {
	srv := startRemote(t, CacheBackendRedis)
	e := newEnv(t, func(c *Config, _ *Deps) { srv.configure(c); c.ResultsCache.MaxItemSize = 100 })
	params := p("query", "http_requests_total", "start", at(0), "end", at(9*time.Minute), "step", "60")
	for range 2 {
		if a := e.do(t, http.MethodGet, testWS, "query_range", params); a.status != http.StatusOK {
			t.Fatalf("%d %s", a.status, a.body)
		}
	}
	if n := testutil.ToFloat64(e.api.metrics.cacheBackendErrors.WithLabelValues(CacheBackendRedis, "too_large")); n != 2 {
		t.Errorf("%v too_large, want 2", n)
	}
	if n := testutil.ToFloat64(e.api.metrics.cacheSteps.WithLabelValues("hit")); n != 0 {
		t.Errorf("%v steps hit, want 0", n)
	}
}

// fakeKV is a kvClient whose answers the test sets.
type fakeKV struct {
	err   error
	calls int
}

func (f *fakeKV) get(context.Context, string) ([]byte, bool, error) {
	f.calls++
	return nil, false, f.err
}

func (f *fakeKV) set(context.Context, string, []byte, time.Duration) error {
	f.calls++
	return f.err
}

func (f *fakeKV) close() error { return nil }

// A server that failed is not asked for a second, so that one that hangs does not cost
// every query its timeout; a request whose own context ended does not count against it.
func TestRemoteExtentsBackOff(t *testing.T) {
	now := time.Unix(1000, 0)
	kv := &fakeKV{err: errors.New("i/o timeout")}
	r := &remoteExtents{kv: kv, maxItemSize: 1 << 20, now: func() time.Time { return now }}
	ctx := context.Background()

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for range 2 {
		if _, err := r.get(canceled, "ws:00"); err == nil || errors.Is(err, errBackendDown) {
			t.Fatalf("get with an ended context: %v", err)
		}
	}
	if _, err := r.get(ctx, "ws:00"); err == nil || errors.Is(err, errBackendDown) {
		t.Fatalf("first failure: %v", err)
	}
	calls := kv.calls
	if _, err := r.get(ctx, "ws:00"); !errors.Is(err, errBackendDown) {
		t.Fatalf("get right after a failure: %v, want errBackendDown", err)
	}
	if err := r.put(ctx, &extent{key: "ws:00"}); !errors.Is(err, errBackendDown) {
		t.Fatalf("put right after a failure: %v, want errBackendDown", err)
	}
	if kv.calls != calls {
		t.Fatal("the server was asked while taken as down")
	}
	now = now.Add(remoteRetryAfter)
	kv.err = nil
	if e, err := r.get(ctx, "ws:00"); e != nil || err != nil {
		t.Fatalf("after %v: %v %v, want a plain miss", remoteRetryAfter, e, err)
	}
	if err := r.put(ctx, &extent{key: "ws:00"}); err != nil {
		t.Fatal(err)
	}
}
