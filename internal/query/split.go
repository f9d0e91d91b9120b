package query

import (
	"context"
	"errors"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// defaultMinStepsPerPart keeps parts big enough that the work split (sample iteration)
// outweighs what every part repeats (parsing, index lookups).
const defaultMinStepsPerPart = 30

// A range query is PromQL evaluated independently at each step, so its steps can be cut
// into consecutive parts evaluated in parallel and the series concatenated: the answer is
// the one the whole query gives, and so is the count of samples processed, since each
// step counts the samples it reads. PromQL evaluates a query on one core; this is how a
// long range query uses all of them (the query-frontends of Cortex and Thanos split by
// day for the same reason).
//
// Not split, so that answer and samples processed stay exact:
//   - queries with an @ modifier: start() and end() mean the whole query's ends, and
//     step-invariant parts are evaluated once per query, not once per step;
//   - queries calling start(), end(), range() or step(), or with range() or step() in a
//     duration: their values are the whole query's;
//   - queries with a subquery: a subquery's inner range is evaluated once per query, and
//     parts would overlap on it;
//   - queries asking for stats (their timings and per-step counts are the engine's).
//
// The samples limit (samples held in memory at once) stays a bound on the whole query:
// each of n parts may hold 1/n of it. A part over its share means the query as a whole
// may be near the limit, and it then runs whole, so it passes or fails exactly as it would
// unsplit. The series limit applies to each part, which reads no series the whole query
// would not.

// stepRange is a part of a range query: the steps start, start+step, ..., end.
type stepRange struct{ start, end time.Time }

// splitSteps cuts the steps of [start, end] into at most parts ranges of at least
// minSteps steps each, as even as possible, in time order.
func splitSteps(start, end time.Time, step time.Duration, parts, minSteps int) []stepRange {
	steps := int(end.Sub(start)/step) + 1
	// A part of one step would be evaluated like an instant query in places (topk's
	// order, sort's warning): at least two.
	parts = min(parts, steps/max(minSteps, 2))
	if parts <= 1 {
		return []stepRange{{start, end}}
	}
	out := make([]stepRange, 0, parts)
	first := 0
	for i := range parts {
		next := (i + 1) * steps / parts
		out = append(out, stepRange{
			start: start.Add(time.Duration(first) * step),
			end:   start.Add(time.Duration(next-1) * step),
		})
		first = next
	}
	return out
}

// splittable tells whether evaluating expr (as parsed, before the engine's
// preprocessing) over parts of the steps gives exactly the answer and samples count of
// evaluating it whole. It admits the node kinds it knows to be evaluated step by step, so
// a construct added to PromQL later is not split until it is known to be safe.
func splittable(expr parser.Expr) bool {
	ok := true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case nil: // Inspect's call after a node's children
		case *parser.AggregateExpr, *parser.BinaryExpr, *parser.ParenExpr, *parser.UnaryExpr,
			*parser.NumberLiteral, *parser.StringLiteral:
		case *parser.Call:
			// start(), end(), range() and step() are the query's, not the part's.
			_, queryContext := queryContextFunctions[n.Func.Name]
			ok = !queryContext
		case *parser.VectorSelector:
			ok = n.Timestamp == nil && n.StartOrEnd == 0 && constantDuration(n.OriginalOffsetExpr)
		case *parser.MatrixSelector:
			ok = constantDuration(n.RangeExpr)
		case *parser.DurationExpr:
			ok = constantDuration(n)
		default: // subqueries, and node kinds unknown here
			ok = false
		}
		if !ok {
			return errStopInspect
		}
		return nil
	})
	return ok
}

var queryContextFunctions = map[string]struct{}{"start": {}, "end": {}, "range": {}, "step": {}}

var errStopInspect = errors.New("stop")

// constantDuration tells whether a duration expression (`x[1h+5m]`, `offset 2*step()`) is
// made of numbers only, without the query's step() or range(); nil is a plain duration.
func constantDuration(e parser.Expr) bool {
	switch n := e.(type) {
	case nil:
		return true
	case *parser.NumberLiteral:
		return true
	case *parser.ParenExpr:
		return constantDuration(n.Expr)
	case *parser.DurationExpr:
		if n == nil {
			return true
		}
		if n.Op == parser.STEP || n.Op == parser.RANGE {
			return false
		}
		return constantDuration(n.LHS) && constantDuration(n.RHS)
	}
	return false
}

// parallelism is how many parts a range query may be cut into.
func (a *API) parallelism() int {
	if a.cfg.Parallelism > 0 {
		return a.cfg.Parallelism
	}
	return runtime.GOMAXPROCS(0)
}

// newRangeQuery builds the range query qs over workspace ws: split into parts of its
// steps when that is possible and worth it, else whole. Series count against budget (a
// split query's parts have their own; see above).
func (a *API) newRangeQuery(ctx context.Context, ws string, lim QueryLimits, budget *seriesBudget, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration, wantStats, useCache bool) (promql.Query, error) {
	whole, err := a.engineFor(lim.MaxSamples).NewRangeQuery(ctx, a.queryable(ctx, ws, budget), opts, qs, start, end, step)
	if err != nil {
		return nil, err
	}
	if wantStats {
		return whole, nil
	}
	// The engine's statement is preprocessed (start() and the like folded into numbers):
	// judge the query as written.
	expr, err := a.parser.ParseExpr(qs)
	if err != nil || !splittable(expr) {
		return a.newShardedQuery(ws, lim, budget, opts, qs, start, end, step, whole), nil
	}
	if useCache && a.cache != nil && cacheable(expr) {
		cutoff := a.now().Add(-max(a.cfg.CacheMaxFreshness, minCacheFreshness))
		if !start.After(cutoff) {
			version, ok := "", true
			if a.deps.CacheVersion != nil {
				version, ok = a.deps.CacheVersion(ctx, ws)
			}
			since, sinceOK := a.cacheableSince(ctx, ws, whole)
			if ok && sinceOK {
				return &cachedRange{a: a, ws: ws, lim: lim, opts: opts, qs: qs, start: start, end: end, step: step, since: since, cutoff: cutoff, whole: whole, version: version}, nil
			}
		}
	}
	parts := splitSteps(start, end, step, a.parallelism(), a.minStepsPerPart)
	if len(parts) <= 1 {
		// Too few steps to split: the series can be.
		return a.newShardedQuery(ws, lim, budget, opts, qs, start, end, step, whole), nil
	}
	return &splitQuery{a: a, ws: ws, lim: lim, opts: opts, parts: parts, step: step, wholeOrParts: wholeOrParts{whole: whole, qs: qs}}, nil
}

// splitQuery is a range query evaluated as parts of its steps in parallel. It falls back
// to the whole query when a part goes over its share of the samples limit.
type splitQuery struct {
	a     *API
	ws    string
	lim   QueryLimits
	opts  promql.QueryOpts
	parts []stepRange
	step  time.Duration
	wholeOrParts

	queries []promql.Query // of the parts; their points are the answer's until Close
}

// wholeOrParts is what a query evaluated in parts (split by steps, or sharded) shares:
// the whole query it falls back to, and what the parts report once they answered.
type wholeOrParts struct {
	whole promql.Query
	qs    string

	mu      sync.Mutex // guards cancel
	cancel  context.CancelFunc
	samples int64 // processed by the parts, as the whole query counts them
	byParts bool  // the answer came from the parts
}

func (w *wholeOrParts) Statement() parser.Statement { return w.whole.Statement() }
func (w *wholeOrParts) String() string              { return w.qs }

// Stats returns the whole query's statistics, or, when the parts answered, the samples
// they processed.
func (w *wholeOrParts) Stats() *stats.Statistics {
	if !w.byParts {
		return w.whole.Stats()
	}
	return &stats.Statistics{Timers: stats.NewQueryTimers(), Samples: &stats.QuerySamples{TotalSamples: w.samples}}
}

func (w *wholeOrParts) Cancel() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
	}
	w.whole.Cancel()
}

// cancelParts is how Cancel stops the parts.
func (w *wholeOrParts) cancelParts(cancel context.CancelFunc) {
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
}

// Close releases the parts' and the whole's memory; the answer is invalid after it.
func (s *splitQuery) Close() {
	s.closeParts()
	s.whole.Close()
}

func (s *splitQuery) closeParts() {
	for _, q := range s.queries {
		if q != nil {
			q.Close()
		}
	}
	s.queries = nil
}

func (s *splitQuery) Exec(ctx context.Context) *promql.Result {
	if res, ok := s.execParts(ctx); ok {
		s.byParts = true
		s.a.metrics.split.WithLabelValues("split").Inc()
		return res
	}
	s.a.metrics.split.WithLabelValues("whole").Inc()
	s.closeParts() // before the whole query loads samples of its own
	return s.whole.Exec(ctx)
}

// execParts runs the parts in parallel and concatenates their answers. It returns
// ok=false when a part went over its share of the samples limit.
func (s *splitQuery) execParts(ctx context.Context) (*promql.Result, bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.cancelParts(cancel)
	maxSamples := s.lim.MaxSamples
	if maxSamples > 0 {
		maxSamples = max(1, maxSamples/len(s.parts))
	}
	eng := s.a.engineFor(maxSamples)

	s.queries = make([]promql.Query, len(s.parts))
	results := make([]*promql.Result, len(s.parts))
	samples := make([]int64, len(s.parts))
	var wg sync.WaitGroup
	for i, part := range s.parts {
		wg.Go(func() {
			budget := &seriesBudget{limit: s.lim.MaxSeries}
			qry, err := eng.NewRangeQuery(ctx, s.a.queryable(ctx, s.ws, budget), s.opts, s.qs, part.start, part.end, s.step)
			if err != nil {
				results[i] = &promql.Result{Err: err}
				cancel()
				return
			}
			s.queries[i] = qry
			res := qry.Exec(ctx)
			if res.Err != nil {
				cancel() // the whole query fails: stop the other parts
			} else {
				samples[i] = qry.Stats().Samples.TotalSamples
			}
			results[i] = res
		})
	}
	wg.Wait()

	// The query's error is the first part's in time order, unless that is only the
	// cancellation caused by another part's error.
	var firstErr error
	for _, res := range results {
		if res.Err == nil {
			continue
		}
		var tooMany promql.ErrTooManySamples
		if errors.As(res.Err, &tooMany) && maxSamples != s.lim.MaxSamples {
			return nil, false
		}
		if firstErr == nil || (isCancellation(firstErr) && !isCancellation(res.Err)) {
			firstErr = res.Err
		}
	}
	if firstErr != nil {
		return &promql.Result{Err: firstErr}, true
	}
	var warnings annotations.Annotations
	mats := make([]promql.Matrix, len(results))
	for i, res := range results {
		warnings.Merge(res.Warnings)
		s.samples += samples[i]
		m, err := res.Matrix()
		if err != nil {
			return &promql.Result{Err: err}, true
		}
		mats[i] = m
	}
	return &promql.Result{Value: concatMatrices(mats), Warnings: warnings}, true
}

// isCancellation tells whether err only says that the query was canceled: by the engine
// (ErrQueryCanceled) or by storage reporting the context's end.
func isCancellation(err error) bool {
	var canceled promql.ErrQueryCanceled
	return errors.As(err, &canceled) || errors.Is(err, context.Canceled)
}

// concatMatrices joins the answers of consecutive parts: a series' points in part order,
// series sorted by labels as the engine sorts a range query's answer.
func concatMatrices(mats []promql.Matrix) promql.Matrix {
	if len(mats) == 1 {
		return mats[0]
	}
	n := 0
	for _, m := range mats {
		n = max(n, len(m))
	}
	index := make(map[string]int, n)
	out := make(promql.Matrix, 0, n)
	var key []byte
	for _, m := range mats {
		for _, s := range m {
			key = s.Metric.Bytes(key)
			if i, ok := index[string(key)]; ok {
				out[i].Floats = append(out[i].Floats, s.Floats...)
				out[i].Histograms = append(out[i].Histograms, s.Histograms...)
				continue
			}
			index[string(key)] = len(out)
			out = append(out, s)
		}
	}
	// Each part is sorted; the union may not be (a series only in a later part).
	if !isSortedByLabels(out) {
		sort.Sort(out)
	}
	return out
}

func isSortedByLabels(m promql.Matrix) bool {
	for i := 1; i < len(m); i++ {
		if labels.Compare(m[i-1].Metric, m[i].Metric) > 0 {
			return false
		}
	}
	return true
}
