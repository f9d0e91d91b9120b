package query

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serverLimits bounds what all workspaces run together, where the per-workspace slots
// bound each workspace alone: the requests reading data at once (MaxConcurrentTotal),
// and the samples PromQL queries may hold in memory (MaxSamplesTotal). The engine
// enforces a query's samples limit but does not tell how many samples a running query
// holds, so each query reserves its whole limit up front; the sum of the limits of
// running queries is then a true bound on their memory.
//
// Requests that do not fit wait in a queue per workspace, and the queues are served in
// turn (round robin): a workspace whose dashboards fill the server waits behind every
// other workspace's next request, not before them all. Within a workspace the order is
// first come first served. The next request to serve blocks the others until it fits:
// one needing a large reservation is not overtaken forever by small ones, at the price of
// small ones waiting behind it. A waiter gives up after maxWait or at its context's end.
//
// Lock order: a request takes its workspace's slot first, then this, and never waits for
// its workspace while holding this; so a request waiting here holds only a slot of its
// own workspace, and a busy workspace queues behind its own limit (MaxQueued) rather
// than filling the server's queue. The parts of a split range query run under their
// query's admission and reservation and take nothing themselves, so they cannot
// deadlock against it.
type serverLimits struct {
	maxRunning int   // 0: no cap
	maxSamples int64 // 0: no budget
	maxWait    time.Duration
	now        func() time.Time
	newTimer   func(time.Duration) *time.Timer

	inFlight, reservedSamples, waitingGauge prometheus.Gauge

	mu       sync.Mutex // guards the fields below
	running  int
	reserved int64
	// queues are the waiters of each workspace in arrival order; turn lists the
	// workspaces with waiters, the next to serve first.
	queues  map[string]*list.List // of *serverWaiter
	turn    list.List             // of *workspaceQueue
	nQueued int
}

type workspaceQueue struct {
	ws      string
	waiters *list.List
}

type serverWaiter struct {
	samples int64
	ready   chan struct{} // closed once admitted
}

func newServerLimits(cfg Config, m *metrics) *serverLimits {
	return &serverLimits{
		maxRunning:      cfg.MaxConcurrentTotal,
		maxSamples:      int64(cfg.MaxSamplesTotal),
		maxWait:         cfg.MaxWaitTotal,
		now:             time.Now,
		newTimer:        time.NewTimer,
		inFlight:        m.inFlight,
		reservedSamples: m.samplesReserved,
		waitingGauge:    m.waiting,
		queues:          map[string]*list.List{},
	}
}

// capSamples returns the samples limit a query runs with: its own, but never more than
// the server's budget, which a query with no limit of its own (0) gets whole.
func (l *serverLimits) capSamples(limit int) int {
	if l.maxSamples > 0 && (limit <= 0 || int64(limit) > l.maxSamples) {
		return int(l.maxSamples)
	}
	return limit
}

// acquire admits a request reserving samples (at most the budget: see capSamples),
// waiting while maxWait and ctx allow. It returns the function that gives the admission
// back (once; further calls do nothing), a *serverBusyError when the request waited in
// vain or its deadline passed while it waited, or ctx's error when ctx was canceled.
func (l *serverLimits) acquire(ctx context.Context, workspace string, samples int64) (func(), error) {
	start := l.now()
	l.mu.Lock()
	if l.nQueued == 0 && l.fitsLocked(samples) {
		l.takeLocked(samples)
		l.mu.Unlock()
		return l.releaser(samples), nil
	}
	if l.maxWait <= 0 {
		err := l.busyLocked(samples, 0)
		l.mu.Unlock()
		return nil, err
	}
	w := &serverWaiter{samples: samples, ready: make(chan struct{})}
	q := l.queues[workspace]
	if q == nil {
		q = list.New()
		l.queues[workspace] = q
		l.turn.PushBack(&workspaceQueue{ws: workspace, waiters: q})
	}
	e := q.PushBack(w)
	l.nQueued++
	l.waitingGauge.Inc()
	l.mu.Unlock()
	defer l.waitingGauge.Dec()

	timer := l.newTimer(l.maxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return l.releaser(samples), nil
	case <-timer.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	select {
	case <-w.ready:
		// Admitted while giving up: pass the admission on.
		l.mu.Unlock()
		l.releaser(samples)()
		l.mu.Lock()
	default:
		q.Remove(e)
		l.nQueued--
		if q.Len() == 0 {
			l.dropQueueLocked(workspace)
		}
		// The next to serve leaving may let the others in.
		l.dispatchLocked()
	}
	err := l.busyLocked(samples, l.now().Sub(start))
	l.mu.Unlock()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil, ctx.Err() // the client went away: not the server's doing
	}
	return nil, err
}

func (l *serverLimits) fitsLocked(samples int64) bool {
	return (l.maxRunning <= 0 || l.running < l.maxRunning) &&
		(l.maxSamples <= 0 || l.reserved+samples <= l.maxSamples)
}

func (l *serverLimits) takeLocked(samples int64) {
	l.running++
	l.reserved += samples
	l.inFlight.Set(float64(l.running))
	l.reservedSamples.Set(float64(l.reserved))
}

// dispatchLocked admits waiters, the workspaces in turn, while the next one fits.
func (l *serverLimits) dispatchLocked() {
	for t := l.turn.Front(); t != nil; t = l.turn.Front() {
		wq := t.Value.(*workspaceQueue)
		e := wq.waiters.Front()
		w := e.Value.(*serverWaiter)
		if !l.fitsLocked(w.samples) {
			return
		}
		wq.waiters.Remove(e)
		l.nQueued--
		l.takeLocked(w.samples)
		close(w.ready)
		if wq.waiters.Len() == 0 {
			l.turn.Remove(t)
			delete(l.queues, wq.ws)
		} else {
			l.turn.MoveToBack(t) // the other workspaces' next first
		}
	}
}

// dropQueueLocked forgets the empty queue of workspace.
func (l *serverLimits) dropQueueLocked(workspace string) {
	delete(l.queues, workspace)
	for t := l.turn.Front(); t != nil; t = t.Next() {
		if t.Value.(*workspaceQueue).ws == workspace {
			l.turn.Remove(t)
			return
		}
	}
}

// releaser returns the function that gives an admission back, once.
func (l *serverLimits) releaser(samples int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.running--
			l.reserved -= samples
			l.inFlight.Set(float64(l.running))
			l.reservedSamples.Set(float64(l.reserved))
			l.dispatchLocked()
		})
	}
}

// busyLocked describes why a request needing samples was not admitted.
func (l *serverLimits) busyLocked(samples int64, waited time.Duration) *serverBusyError {
	e := &serverBusyError{running: l.running, maxRunning: l.maxRunning, reserved: l.reserved,
		maxSamples: l.maxSamples, samples: samples, waited: waited}
	if l.maxRunning > 0 && l.running >= l.maxRunning {
		e.limit = limitMaxConcurrentTotal
	} else {
		e.limit = limitMaxSamplesTotal
	}
	return e
}

// The limit label of strata_workspace_query_rejected_total for the server-wide limits.
const (
	limitMaxConcurrentTotal = "max_concurrent_total"
	limitMaxSamplesTotal    = "max_samples_total"
)

// errServerBusy starts the message of a request refused by the server-wide limits.
var errServerBusy = errors.New("too many queries in flight on the server")

// serverBusyError is a request the server-wide limits did not admit in time.
type serverBusyError struct {
	limit                string // limitMaxConcurrentTotal or limitMaxSamplesTotal
	running, maxRunning  int
	reserved, maxSamples int64
	samples              int64
	waited               time.Duration
}

func (e *serverBusyError) Error() string {
	waited := "; retry later"
	if e.waited > 0 {
		waited = fmt.Sprintf("; waited %s, retry later", e.waited.Round(time.Millisecond))
	}
	if e.limit == limitMaxConcurrentTotal {
		return fmt.Sprintf("%v: %d requests are running across all workspaces, the server's limit%s", errServerBusy, e.running, waited)
	}
	return fmt.Sprintf("%v: running queries hold %d of the %d samples the server allows in memory and this query may hold %d%s",
		errServerBusy, e.reserved, e.maxSamples, e.samples, waited)
}

func (e *serverBusyError) Unwrap() error { return errServerBusy }

// serverRetryAfter is the Retry-After of a 503 from the server-wide limits, in seconds: a
// retry waits in the queue again (MaxWaitTotal), so it need not be long.
const serverRetryAfter = "1"

// apiError answers 503 with errorType "unavailable", Prometheus' own status for that type
// (and for "timeout", which is how a query stuck behind Prometheus' --query.max-concurrency
// ends). Not 429: Cortex and Mimir answer 429 for a tenant's own limits (as this API does
// for a workspace's full queue), and their query-frontends retry a 5xx but never a 4xx.
// The server being full is no fault of the tenant's, and a retry may well succeed.
func (e *serverBusyError) apiError() *apiError {
	return &apiError{typ: errUnavailable, status: http.StatusServiceUnavailable, retryAfter: serverRetryAfter, err: e}
}
