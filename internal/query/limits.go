package query

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
)

// slots bounds the requests of each workspace that read data at once. Requests over
// MaxConcurrent wait in a FIFO queue of at most MaxQueued, bounded in time by their
// deadline; beyond the queue they are refused at once, so one busy workspace cannot
// hold an unbounded number of goroutines. The limits are arguments of acquire, so
// per-workspace overrides apply from the next request on.
type slots struct {
	mu sync.Mutex // guards ws and every wsSlots
	ws map[string]*wsSlots
}

type wsSlots struct {
	running int
	waiting list.List // of chan struct{}, closed when handed a slot
}

func newSlots() *slots { return &slots{ws: map[string]*wsSlots{}} }

// acquire takes a slot of workspace, waiting while ctx allows. It returns the function
// that gives the slot back, errTooManyQueued when the queue is full, or ctx's error.
func (s *slots) acquire(ctx context.Context, workspace string, maxRunning, maxQueued int, queued func(delta float64)) (func(), error) {
	s.mu.Lock()
	w := s.ws[workspace]
	if w == nil {
		w = &wsSlots{}
		s.ws[workspace] = w
	}
	if w.running < maxRunning && w.waiting.Len() == 0 {
		w.running++
		s.mu.Unlock()
		return s.releaser(workspace, w), nil
	}
	if w.waiting.Len() >= maxQueued {
		s.mu.Unlock()
		return nil, errTooManyQueued
	}
	ch := make(chan struct{})
	e := w.waiting.PushBack(ch)
	s.mu.Unlock()
	queued(1)
	defer queued(-1)

	select {
	case <-ch:
		return s.releaser(workspace, w), nil
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case <-ch:
			// Handed a slot while giving up: pass it on.
			s.mu.Unlock()
			s.releaser(workspace, w)()
		default:
			w.waiting.Remove(e)
			s.gcLocked(workspace, w)
			s.mu.Unlock()
		}
		return nil, ctx.Err()
	}
}

// releaser returns a function that gives a slot back once: to the first waiter, who then
// runs in its place, or to the pool.
func (s *slots) releaser(workspace string, w *wsSlots) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if e := w.waiting.Front(); e != nil {
				w.waiting.Remove(e)
				close(e.Value.(chan struct{}))
				return
			}
			w.running--
			s.gcLocked(workspace, w)
		})
	}
}

// gcLocked forgets an idle workspace, so the map holds only busy ones.
func (s *slots) gcLocked(workspace string, w *wsSlots) {
	if w.running == 0 && w.waiting.Len() == 0 {
		delete(s.ws, workspace)
	}
}

// checkTimeRange applies AMP's time-range quotas to a built query. The range a query
// reads is measured from the oldest to the newest sample its selectors can select, leaving
// out the lookback delta that every instant selector adds: `rate(x[32d])` at one instant
// reads 32 days, `up` over a 95-day query_range reads 95 days. Instant queries are refused
// from maxInstant on ("32 days or more"), range queries beyond maxRange ("up to 95 days").
func checkTimeRange(qry promql.Query, isRange bool, lim QueryLimits) *apiError {
	limit := lim.MaxInstantQueryLookback
	if isRange {
		limit = lim.MaxRangeQueryLength
	}
	if limit <= 0 {
		return nil
	}
	stmt, ok := qry.Statement().(*parser.EvalStmt)
	if !ok {
		return nil
	}
	s := *stmt
	// One millisecond, not zero: the engine keeps samples newer than t - lookback, so a
	// lookback of 1ms selects exactly the instant t.
	s.LookbackDelta = time.Millisecond
	mint, maxt := promql.FindMinMaxTime(&s)
	if maxt < mint {
		return nil // no selectors
	}
	// Range selectors are left-open: x[32d] selects (t-32d, t], i.e. maxt-mint = 32d-1ms.
	length := time.Duration(maxt-mint) * time.Millisecond
	over := length > limit
	if !isRange {
		length += time.Millisecond
		over = length >= limit
	}
	if !over {
		return nil
	}
	return newError(errExec, fmt.Errorf("the query time range exceeds the limit (query length: %s, limit: %s)",
		formatDuration(length.Round(time.Second)), formatDuration(limit)))
}

// formatDuration writes whole days as "32d", else Go's duration format.
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// seriesBudget counts the series a request reads, over all its selectors.
type seriesBudget struct {
	limit int
	read  atomic.Int64
}

// fetched is the number of series read so far, -1 when not counted (no limit).
func (b *seriesBudget) fetched() int64 {
	if b == nil || b.limit <= 0 {
		return -1
	}
	return b.read.Load()
}

// limitQuerier counts the series its selects return against budget.
func limitQuerier(q storage.Querier, budget *seriesBudget) storage.Querier {
	if budget == nil || budget.limit <= 0 {
		return q
	}
	return &limitedQuerier{Querier: q, budget: budget}
}

type limitedQuerier struct {
	storage.Querier
	budget *seriesBudget
}

func (q *limitedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &limitedSeriesSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...), budget: q.budget}
}

// limitedSeriesSet stops with a seriesLimitError at the first series over the budget.
// PromQL expands a selector's series before evaluating it, so a query over the limit
// stops before it loads samples.
//
// It adds its series to the budget budgetBatch at a time, and at once when the last total
// it saw plus its own would pass the limit: a query's shards read at the same time, and a
// counter shared by all and bumped for every series makes the CPUs trade its cache line.
// A set alone stops at exactly the first series over; shards together may read up to
// budgetBatch series each past it, and fail at their next count.
type limitedSeriesSet struct {
	storage.SeriesSet
	budget  *seriesBudget
	pending int64 // series returned and not yet added to the budget
	seen    int64 // the budget's total at the last addition
	err     error
}

const budgetBatch = 64

func (s *limitedSeriesSet) Next() bool {
	if s.err != nil {
		return false
	}
	if !s.SeriesSet.Next() {
		s.count()
		return false
	}
	s.pending++
	if s.pending == budgetBatch || s.seen+s.pending > int64(s.budget.limit) {
		return s.count()
	}
	return true
}

// count adds the pending series to the budget; false when that passes the limit.
func (s *limitedSeriesSet) count() bool {
	if s.pending == 0 {
		return s.err == nil
	}
	s.seen = s.budget.read.Add(s.pending)
	s.pending = 0
	if s.seen > int64(s.budget.limit) {
		s.err = &seriesLimitError{limit: s.budget.limit}
		return false
	}
	return true
}

func (s *limitedSeriesSet) Err() error {
	if s.count(); s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}
