package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	stratatest "github.com/stratametrics/strata/internal/testutil"
)

// otherWS is a second workspace, holding the fixture too.
const otherWS = "ws-other"

// newGatedEnv is newEnv with testWS gated and otherWS added.
func newGatedEnv(t *testing.T, mod func(*Config, *Deps)) (*env, *blockingStore) {
	t.Helper()
	var gs *blockingStore
	e := newEnv(t, func(c *Config, d *Deps) {
		gs = newBlockingStore(d.Queryables.(*tsdbStore))
		gs.only = testWS
		d.Queryables = gs
		if mod != nil {
			mod(c, d)
		}
	})
	db := openTSDB(t)
	appendFixture(t, db, fixture())
	e.store.add(otherWS, db)
	return e, gs
}

func awaitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}

// waitFor polls cond, which the handlers make true as they finish.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	stratatest.Eventually(t, 10*time.Second, what, cond)
}

// idle tells whether the server-wide limits are back to nothing in flight.
func (e *env) idle() bool {
	return testutil.ToFloat64(e.api.metrics.inFlight) == 0 && testutil.ToFloat64(e.api.metrics.samplesReserved) == 0 &&
		testutil.ToFloat64(e.api.metrics.waiting) == 0
}

var instantParams = p("query", "sum(http_requests_total)", "time", t30)

// TestServerConcurrencyLimit: with --query.max-concurrent-total=1, while a query of one
// workspace runs, a request of another waits, then answers 503 in Prometheus' shape with
// Retry-After; the slot is the next request's once the first is done.
func TestServerConcurrencyLimit(t *testing.T) {
	e, gs := newGatedEnv(t, func(c *Config, _ *Deps) {
		c.MaxConcurrentTotal = 1
		c.MaxWaitTotal = 50 * time.Millisecond
	})
	first := make(chan answer, 1)
	go func() { first <- e.do(t, http.MethodGet, testWS, "query", instantParams) }()
	awaitSignal(t, gs.started, "the first query reading")
	if v := testutil.ToFloat64(e.api.metrics.inFlight); v != 1 {
		t.Errorf("in flight %v, want 1", v)
	}
	for _, path := range []string{"query", "labels"} { // every request that reads data counts
		params := instantParams
		if path == "labels" {
			params = nil
		}
		a := e.do(t, http.MethodGet, otherWS, path, params)
		const want = `{"status":"error","errorType":"unavailable","error":"too many queries in flight on the server: 1 requests are running across all workspaces, the server's limit; waited `
		if a.status != http.StatusServiceUnavailable || !strings.HasPrefix(string(a.body), want) ||
			!strings.HasSuffix(string(a.body), `, retry later"}`) || a.header.Get("Retry-After") != "1" {
			t.Errorf("%s of another workspace: %d Retry-After %q %s", path, a.status, a.header.Get("Retry-After"), a.body)
		}
	}
	if v := testutil.ToFloat64(e.api.metrics.rejected.WithLabelValues(otherWS, limitMaxConcurrentTotal)); v != 2 {
		t.Errorf("rejected{limit=max_concurrent_total} = %v, want 2", v)
	}
	close(gs.release)
	if a := <-first; a.status != http.StatusOK {
		t.Fatalf("first query: %d %s", a.status, a.body)
	}
	if !e.idle() {
		t.Errorf("not idle after the query answered")
	}
	if a := e.do(t, http.MethodGet, otherWS, "query", instantParams); a.status != http.StatusOK {
		t.Errorf("after the first query: %d %s", a.status, a.body)
	}
}

// TestServerLimitQueues: a request over the server-wide cap waits, first come first
// served, and runs when a slot frees.
func TestServerLimitQueues(t *testing.T) {
	e, gs := newGatedEnv(t, func(c *Config, _ *Deps) {
		c.MaxConcurrentTotal = 1
		c.MaxWaitTotal = time.Minute
	})
	first, second := make(chan answer, 1), make(chan answer, 1)
	go func() { first <- e.do(t, http.MethodGet, testWS, "query", instantParams) }()
	awaitSignal(t, gs.started, "the first query reading")
	go func() { second <- e.do(t, http.MethodGet, otherWS, "query", instantParams) }()
	waitFor(t, "the second request waiting", func() bool { return testutil.ToFloat64(e.api.metrics.waiting) == 1 })
	select {
	case a := <-second:
		t.Fatalf("the second request answered while the first held the only slot: %d %s", a.status, a.body)
	default:
	}
	close(gs.release)
	for _, ch := range []chan answer{first, second} {
		if a := <-ch; a.status != http.StatusOK {
			t.Errorf("%d %s", a.status, a.body)
		}
	}
	if !e.idle() {
		t.Errorf("not idle")
	}
}

// TestServerSamplesBudget: each running query reserves its samples limit from
// --query.max-samples-total; a query that does not fit is refused with 503 while
// requests that hold no samples go on; a workspace without a samples limit of its own
// runs with the budget as its limit.
func TestServerSamplesBudget(t *testing.T) {
	const third = "ws-unlimited"
	e, gs := newGatedEnv(t, func(c *Config, d *Deps) {
		c.MaxConcurrentTotal = 0
		c.MaxSamplesTotal = 1000
		c.MaxSamples = 600
		c.MaxWaitTotal = 50 * time.Millisecond
		unlimited := c.Limits()
		unlimited.MaxSamples = 0
		d.Limits = overrideLimits{def: c.Limits(), ws: third, overrides: unlimited}
	})
	db := openTSDB(t)
	appendFixture(t, db, fixture())
	e.store.add(third, db)

	first := make(chan answer, 1)
	go func() { first <- e.do(t, http.MethodGet, testWS, "query", instantParams) }()
	awaitSignal(t, gs.started, "the first query reading")
	if v := testutil.ToFloat64(e.api.metrics.samplesReserved); v != 600 {
		t.Errorf("samples reserved %v, want 600", v)
	}
	a := e.do(t, http.MethodGet, otherWS, "query", instantParams)
	const want = `{"status":"error","errorType":"unavailable","error":"too many queries in flight on the server: running queries hold 600 of the 1000 samples the server allows in memory and this query may hold 600; waited `
	if a.status != http.StatusServiceUnavailable || !strings.HasPrefix(string(a.body), want) || a.header.Get("Retry-After") != "1" {
		t.Errorf("a query over the budget: %d %s", a.status, a.body)
	}
	if v := testutil.ToFloat64(e.api.metrics.rejected.WithLabelValues(otherWS, limitMaxSamplesTotal)); v != 1 {
		t.Errorf("rejected{limit=max_samples_total} = %v, want 1", v)
	}
	// Series and labels hold no samples.
	if a := e.do(t, http.MethodGet, otherWS, "series", p("match[]", "http_requests_total")); a.status != http.StatusOK {
		t.Errorf("series while the budget is short: %d %s", a.status, a.body)
	}
	close(gs.release)
	if a := <-first; a.status != http.StatusOK {
		t.Fatalf("first query: %d %s", a.status, a.body)
	}
	if !e.idle() {
		t.Errorf("not idle")
	}

	// No limit of its own: the budget is its limit (16 series × 241 steps > 1000).
	big := p("query", "http_requests_total", "start", tZero, "end", tEnd, "step", "15")
	if a := e.do(t, http.MethodGet, third, "query_range", big); a.status != http.StatusUnprocessableEntity ||
		!strings.Contains(string(a.body), "query processing would load too many samples into memory") {
		t.Errorf("unlimited workspace over the budget: %d %.300s", a.status, a.body)
	}
	if a := e.do(t, http.MethodGet, third, "query", instantParams); a.status != http.StatusOK {
		t.Errorf("unlimited workspace within the budget: %d %s", a.status, a.body)
	}
	if !e.idle() {
		t.Errorf("not idle")
	}
}

// TestServerLimitsReleased: a query gives its admission and reservation back however it
// ends: answered, failed, timed out, canceled by its client. With no waiting allowed, a
// leak would refuse the next request.
func TestServerLimitsReleased(t *testing.T) {
	const small = "ws-small"
	e, gs := newGatedEnv(t, func(c *Config, d *Deps) {
		c.MaxConcurrentTotal = 1
		c.MaxSamplesTotal = c.MaxSamples
		c.MaxWaitTotal = 0
		l := c.Limits()
		l.MaxSamples, l.MaxSeries = 10, 1
		d.Limits = overrideLimits{def: c.Limits(), ws: small, overrides: l}
	})
	db := openTSDB(t)
	appendFixture(t, db, fixture())
	e.store.add(small, db)
	next := func(what string) {
		t.Helper()
		if !e.idle() {
			t.Errorf("after %s: in flight %v, samples reserved %v", what,
				testutil.ToFloat64(e.api.metrics.inFlight), testutil.ToFloat64(e.api.metrics.samplesReserved))
		}
		if a := e.do(t, http.MethodGet, otherWS, "query", instantParams); a.status != http.StatusOK {
			t.Errorf("after %s: %d %s", what, a.status, a.body)
		}
	}
	next("nothing")

	// Failures: over the series limit, over the samples limit, a bad query.
	for _, tc := range []struct {
		path   string
		params map[string][]string
		status int
	}{
		{"query", p("query", "http_requests_total", "time", t30), http.StatusUnprocessableEntity},
		{"query_range", p("query", "sum(http_requests_total)", "start", tZero, "end", tEnd, "step", "15"), http.StatusUnprocessableEntity},
		{"series", p("match[]", "http_requests_total"), http.StatusUnprocessableEntity},
		{"query", p("query", "http_requests_total / on(job) http_requests_total", "time", t30), http.StatusUnprocessableEntity},
	} {
		if a := e.do(t, http.MethodGet, small, tc.path, tc.params); a.status != tc.status {
			t.Errorf("%s %v: %d %s", tc.path, tc.params, a.status, a.body)
		}
		next(tc.path + " failing")
	}

	// Timed out while reading.
	a := e.do(t, http.MethodGet, testWS, "query", p("query", "sum(http_requests_total)", "time", t30, "timeout", "50ms"))
	if a.status != http.StatusUnprocessableEntity || !strings.Contains(string(a.body), `"errorType":"timeout"`) {
		t.Errorf("timeout: %d %s", a.status, a.body)
	}
	next("a timeout")

	// Canceled by its client while reading. The timed-out query's signals are drained
	// first: drained after the next query starts, its own signal could go with them.
	for len(gs.started) > 0 {
		<-gs.started
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/workspaces/"+testWS+"/api/v1/query?"+instantParams.Encode(), nil)
	done := make(chan error, 1)
	go func() {
		resp, err := testTransport.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	awaitSignal(t, gs.started, "the query reading")
	cancel()
	<-done
	waitFor(t, "the canceled query giving its admission back", e.idle)
	next("a cancellation")
	close(gs.release)
}

// TestServerLimitsSplitQueries: the parts of a split range query run under their
// query's admission and reservation, so with one slot and a budget of one query's limit
// split queries neither deadlock nor fail; a second one waits for the first.
func TestServerLimitsSplitQueries(t *testing.T) {
	e, gs := newGatedEnv(t, func(c *Config, _ *Deps) {
		c.Parallelism = 4
		c.MaxConcurrentTotal = 1
		c.MaxSamplesTotal = c.MaxSamples
		c.MaxWaitTotal = time.Minute
	})
	e.api.minStepsPerPart = 2
	params := p("query", "sum by (job) (rate(http_requests_total[5m]))", "start", tZero, "end", tEnd, "step", "60")
	results := make(chan answer, 2)
	go func() { results <- e.do(t, http.MethodGet, testWS, "query_range", params) }()
	awaitSignal(t, gs.started, "a part reading")
	go func() { results <- e.do(t, http.MethodGet, otherWS, "query_range", params) }()
	waitFor(t, "the second query waiting", func() bool { return testutil.ToFloat64(e.api.metrics.waiting) == 1 })
	close(gs.release)
	var bodies []string
	for range 2 {
		select {
		case a := <-results:
			if a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, a.body)
			}
			bodies = append(bodies, string(a.body))
		case <-time.After(30 * time.Second):
			t.Fatal("split queries deadlocked against the server-wide limits")
		}
	}
	if bodies[0] != bodies[1] {
		t.Errorf("the two workspaces hold the same data but answered\n%s\n%s", bodies[0], bodies[1])
	}
	if n := testutil.ToFloat64(e.api.metrics.split.WithLabelValues("split")); n != 2 {
		t.Errorf("%v queries split, want 2", n)
	}
	if !e.idle() {
		t.Errorf("not idle")
	}
}

func newTestServerLimits(maxRunning, maxSamples int, maxWait time.Duration) *serverLimits {
	return newServerLimits(Config{MaxConcurrentTotal: maxRunning, MaxSamplesTotal: maxSamples, MaxWaitTotal: maxWait}, newMetrics(nil))
}

func (l *serverLimits) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nQueued
}

func TestServerLimitsUnit(t *testing.T) {
	ctx := context.Background()
	t.Run("cap samples", func(t *testing.T) {
		l := newTestServerLimits(0, 100, 0)
		for in, want := range map[int]int{0: 100, -1: 100, 50: 50, 100: 100, 101: 100} {
			if got := l.capSamples(in); got != want {
				t.Errorf("capSamples(%d) = %d, want %d", in, got, want)
			}
		}
		if got := newTestServerLimits(0, 0, 0).capSamples(0); got != 0 {
			t.Errorf("no budget: capSamples(0) = %d", got)
		}
	})
	t.Run("no limits", func(t *testing.T) {
		l := newTestServerLimits(0, 0, 0)
		var rels []func()
		for range 100 {
			r, err := l.acquire(ctx, "ws-1", 1<<40)
			if err != nil {
				t.Fatal(err)
			}
			rels = append(rels, r)
		}
		for _, r := range rels {
			r()
		}
	})
	t.Run("refused at once", func(t *testing.T) {
		l := newTestServerLimits(1, 100, 0)
		r, err := l.acquire(ctx, "ws-1", 100)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.acquire(ctx, "ws-1", 0)
		if busy, ok := errors.AsType[*serverBusyError](err); !ok || busy.limit != limitMaxConcurrentTotal || !errors.Is(err, errServerBusy) {
			t.Fatalf("over the cap: %v", err)
		}
		r()
		r() // once
		if l.running != 0 || l.reserved != 0 {
			t.Fatalf("running %d reserved %d after release", l.running, l.reserved)
		}
		l = newTestServerLimits(0, 100, 0)
		r, _ = l.acquire(ctx, "ws-1", 60)
		if _, err := l.acquire(ctx, "ws-1", 41); !errors.Is(err, errServerBusy) || !strings.Contains(err.Error(), "hold 60 of the 100 samples") {
			t.Fatalf("over the budget: %v", err)
		}
		r2, err := l.acquire(ctx, "ws-1", 40)
		if err != nil {
			t.Fatalf("within the budget: %v", err)
		}
		r()
		r2()
	})
	t.Run("first come first served", func(t *testing.T) {
		l := newTestServerLimits(0, 100, time.Minute)
		hold, _ := l.acquire(ctx, "ws-1", 50)
		order := make(chan int, 3)
		var wg sync.WaitGroup
		// A big request waits; small ones that would fit wait behind it.
		for i, n := range []int64{100, 10, 10} {
			wg.Go(func() {
				r, err := l.acquire(ctx, "ws-1", n)
				if err != nil {
					t.Error(err)
					return
				}
				order <- i
				if i == 0 {
					r() // the big one lets the others in
				} else {
					defer r()
				}
			})
			waitFor(t, "queued", func() bool { return l.queued() == i+1 })
		}
		hold()
		wg.Wait()
		close(order)
		var got []int
		for i := range order {
			got = append(got, i)
		}
		if got[0] != 0 {
			t.Errorf("admitted in order %v, want the big request first", got)
		}
	})
	t.Run("workspaces in turn", func(t *testing.T) {
		l := newTestServerLimits(1, 0, time.Minute)
		hold, _ := l.acquire(ctx, "ws-1", 0)
		order := make(chan string, 4)
		var wg sync.WaitGroup
		// Workspace a queues three requests, then b one: b's goes second, not fourth.
		for i, ws := range []string{"a", "a", "a", "b"} {
			wg.Go(func() {
				r, err := l.acquire(ctx, ws, 0)
				if err != nil {
					t.Error(err)
					return
				}
				order <- fmt.Sprint(ws, i)
				r()
			})
			waitFor(t, "queued", func() bool { return l.queued() == i+1 })
		}
		hold()
		wg.Wait()
		close(order)
		var got []string
		for s := range order {
			got = append(got, s)
		}
		if want := []string{"a0", "b3", "a1", "a2"}; !slices.Equal(got, want) {
			t.Errorf("admitted in order %v, want %v", got, want)
		}
		if l.queued() != 0 || len(l.queues) != 0 || l.turn.Len() != 0 {
			t.Errorf("queues left: %d %d %d", l.queued(), len(l.queues), l.turn.Len())
		}
	})
	t.Run("giving up", func(t *testing.T) {
		l := newTestServerLimits(0, 100, time.Minute)
		hold, _ := l.acquire(ctx, "ws-1", 50)
		cctx, cancel := context.WithCancel(ctx)
		bigErr := make(chan error, 1)
		go func() { _, err := l.acquire(cctx, "ws-1", 100); bigErr <- err }()
		waitFor(t, "the big one queued", func() bool { return l.queued() == 1 })
		small := make(chan func(), 1)
		go func() {
			r, err := l.acquire(ctx, "ws-1", 10)
			if err != nil {
				t.Error(err)
			}
			small <- r
		}()
		waitFor(t, "the small one queued behind it", func() bool { return l.queued() == 2 })
		cancel() // the head leaves: the small one fits and goes in
		if err := <-bigErr; !errors.Is(err, context.Canceled) {
			t.Errorf("canceled waiter: %v, want context.Canceled", err)
		}
		r := <-small
		r()
		hold()
		if l.running != 0 || l.reserved != 0 || l.queued() != 0 {
			t.Errorf("running %d reserved %d queued %d", l.running, l.reserved, l.queued())
		}
	})
	t.Run("deadline while waiting", func(t *testing.T) {
		l := newTestServerLimits(1, 0, time.Minute)
		hold, _ := l.acquire(ctx, "ws-1", 0)
		dctx, cancel := context.WithDeadline(ctx, time.Now())
		defer cancel()
		if _, err := l.acquire(dctx, "ws-1", 0); !errors.Is(err, errServerBusy) {
			t.Errorf("deadline passed while waiting: %v, want the busy error", err)
		}
		hold()
	})
	t.Run("max wait", func(t *testing.T) {
		l := newTestServerLimits(1, 0, time.Minute)
		fired := make(chan time.Time, 1)
		l.newTimer = func(time.Duration) *time.Timer {
			tm := time.NewTimer(time.Hour)
			tm.C = fired // the wait ends when the test says
			return tm
		}
		hold, _ := l.acquire(ctx, "ws-1", 0)
		errc := make(chan error, 1)
		go func() { _, err := l.acquire(ctx, "ws-1", 0); errc <- err }()
		waitFor(t, "queued", func() bool { return l.queued() == 1 })
		fired <- time.Now()
		if err := <-errc; !errors.Is(err, errServerBusy) {
			t.Errorf("after max wait: %v", err)
		}
		if l.queued() != 0 {
			t.Errorf("the waiter stayed queued")
		}
		hold()
	})
}
