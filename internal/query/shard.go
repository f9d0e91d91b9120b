package query

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Query sharding (Config.Shards), as Mimir's query-frontend does it: an aggregation over
// many series, `sum by (job) (rate(x[5m]))`, is evaluated as N partial aggregations of
// disjoint thirds (halves, ...) of the series, in parallel, and the partial answers are
// merged by the same engine: `sum by (job) (<the partial sums>)`. A series belongs to
// shard labels.StableHash(series) % N, the hash the TSDB keeps for its ShardedPostings.
//
// What is merged how: sum, min, max and group by themselves, count by a sum of the
// counts, avg as the merged sum over the merged count, topk and bottomk by themselves over
// the shards' top k. count, min, max, group, topk and bottomk are exact; sum and avg add
// the same numbers in another order, so they may differ from the unsharded answer in the
// last bits of a float64 (about 1e-15 relative), as Mimir's do.
//
// Sharded only where that gives the unsharded answer:
//   - the aggregated expression reads each series alone: selectors of one metric name
//     each (so dropping the name cannot make two series one), per-series functions,
//     arithmetic with scalars; no other aggregation, subquery, vector-to-vector
//     operation, label_replace, or function that looks across series;
//   - every selector of the query is inside a sharded aggregation, so the samples
//     processed are the shards' sum, as the unsharded query counts them;
//   - the merge answers without warnings or infos, the shards with only those their
//     functions and selectors make one series at a time (seriesAnnotations), and none
//     answers an error: otherwise the query is evaluated whole, so it answers, fails or
//     warns exactly as unsharded. A partial's query keeps the byte offsets of the query
//     it came from (what precedes it blanked), so the shards' annotations point where
//     the unsharded query's would; together, over disjoint shards, they are its;
//   - sum and avg add no counter histograms (their reset hints, met in another order,
//     may warn otherwise), and avg's answer has no overflow (Prometheus' avg turns to an
//     incremental mean there); avg by __name__ is not sharded (the merge's division
//     would drop the name).

const (
	// shardLabel tells the shards' partial series apart, so the merge sees N series and
	// not N copies of one.
	shardLabel = "__strata_shard__"
	// partialName names the selectors standing for partial aggregations in the merge.
	partialName = "__strata_partial_"
	// innerName names the selector standing for a shard's answer to an inner query.
	innerName = "__strata_inner"
)

// shardPlan is a query rewritten for sharding.
type shardPlan struct {
	merge    string     // the query, each sharded aggregation replaced by its merge
	partials []*partial // the aggregations evaluated per shard

	qs    string                            // the query as written
	parse func(string) (parser.Expr, error) // as the engine parses it
	// avg: the query has a sharded avg, merged as a sum over a count, where Prometheus
	// switches to an incremental mean rather than overflow.
	avg bool
}

// partial is one aggregation evaluated on every shard.
type partial struct {
	name    string // of its selector in merge
	query   string
	labeled bool // its series get shardLabel
	// positioned: query has the offsets of the query as written, so its annotations
	// are the whole query's.
	positioned bool
	// inner, when set, is evaluated on each shard once for all partials naming it, and
	// query aggregates its answer (the selector innerName) instead of the shard's series:
	// avg's sum and count, which would otherwise each evaluate the aggregated expression.
	inner *inner
	// adds: a sum (or avg's), which adds histograms: their counter reset hints, met in
	// another order than unsharded, may warn differently.
	adds bool
}

// inner is an aggregated expression evaluated once per shard for several partials.
type inner struct {
	query      string
	positioned bool // as partial's
}

// readers is how many queries of a shard read its series: partials, and inner queries
// for the others.
func (p *shardPlan) readers() int {
	n, inners := 0, map[*inner]bool{}
	for _, part := range p.partials {
		if part.inner == nil {
			n++
		} else if !inners[part.inner] {
			inners[part.inner] = true
			n++
		}
	}
	return n
}

// planShards rewrites expr (parsed by the caller from qs with parse, changed here) for
// sharding; ok is false when no aggregation of it can be sharded or the rules above
// forbid it.
func planShards(expr parser.Expr, qs string, parse func(string) (parser.Expr, error)) (p *shardPlan, ok bool) {
	p = &shardPlan{qs: qs, parse: parse}
	expr = p.rewrite(expr)
	if len(p.partials) == 0 || !onlyPartials(expr) {
		return nil, false
	}
	p.merge = expr.String()
	return p, true
}

// rewrite replaces the outermost shardable aggregations of e by their merges.
func (p *shardPlan) rewrite(e parser.Expr) parser.Expr {
	switch n := e.(type) {
	case *parser.AggregateExpr:
		if m := p.merged(n); m != nil {
			return m
		}
		n.Expr = p.rewrite(n.Expr)
	case *parser.BinaryExpr:
		n.LHS, n.RHS = p.rewrite(n.LHS), p.rewrite(n.RHS)
	case *parser.Call:
		if _, ok := histogramStatsFunctions[n.Func.Name]; ok {
			// Below these the engine reads histograms without their buckets, which a
			// partial evaluated alone would not know (so it would count more samples).
			return e
		}
		for i, a := range n.Args {
			n.Args[i] = p.rewrite(a)
		}
	case *parser.ParenExpr:
		n.Expr = p.rewrite(n.Expr)
	case *parser.UnaryExpr:
		n.Expr = p.rewrite(n.Expr)
	}
	// Subqueries are left alone: their aggregations are evaluated at the subquery's
	// steps, not the query's.
	return e
}

// merged returns the merge of a shardable aggregation, nil if it is not shardable.
func (p *shardPlan) merged(n *parser.AggregateExpr) parser.Expr {
	if !perSeries(n.Expr) {
		return nil
	}
	agg := func(op parser.ItemType, e parser.Expr) *parser.AggregateExpr {
		return &parser.AggregateExpr{Op: op, Expr: e, Grouping: n.Grouping, Without: n.Without}
	}
	// mergeOf aggregates the partials of part (whose query is text, "" for part's own
	// string) again, across shards.
	mergeOf := func(op parser.ItemType, part *parser.AggregateExpr, text string) parser.Expr {
		m := agg(op, p.add(part, true, text))
		if n.Without {
			m.Grouping = append(slices.Clone(n.Grouping), shardLabel)
		}
		return m
	}
	switch n.Op {
	case parser.SUM, parser.MIN, parser.MAX, parser.GROUP:
		part := agg(n.Op, n.Expr)
		m := mergeOf(n.Op, part, p.source(n, part))
		p.partials[len(p.partials)-1].adds = n.Op == parser.SUM
		return m
	case parser.COUNT:
		part := agg(parser.COUNT, n.Expr)
		return mergeOf(parser.SUM, part, p.source(n, part))
	case parser.AVG:
		if !n.Without && slices.Contains(n.Grouping, labels.MetricName) {
			return nil // the merge's division would drop the name avg keeps
		}
		// The aggregated expression is evaluated once per shard; its sum and count there
		// aggregate that answer.
		p.avg = true
		in := &inner{query: p.source(n.Expr, n.Expr)}
		if in.positioned = in.query != ""; !in.positioned {
			in.query = n.Expr.String()
		}
		answer := &parser.VectorSelector{Name: innerName, LabelMatchers: []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, innerName)}}
		sum := mergeOf(parser.SUM, agg(parser.SUM, answer), "")
		p.partials[len(p.partials)-1].inner = in
		p.partials[len(p.partials)-1].adds = true
		count := mergeOf(parser.SUM, agg(parser.COUNT, answer), "")
		p.partials[len(p.partials)-1].inner = in
		return &parser.ParenExpr{Expr: &parser.BinaryExpr{
			Op:             parser.DIV,
			LHS:            sum,
			RHS:            count,
			VectorMatching: &parser.VectorMatching{Card: parser.CardOneToOne},
		}}
	case parser.TOPK, parser.BOTTOMK:
		if _, ok := unparen(n.Param).(*parser.NumberLiteral); !ok {
			return nil
		}
		// The shards' series are distinct: no label needed to tell them apart.
		part := agg(n.Op, n.Expr)
		part.Param = n.Param
		m := agg(n.Op, p.add(part, false, p.source(n, part)))
		m.Param = n.Param
		return m
	}
	return nil
}

// source returns the query of part (n, or an expression for it) as n is written in the
// query with every byte before it blanked: part's nodes have the offsets of n's, which
// annotations point to. "" when the text is not part's.
func (p *shardPlan) source(n, part parser.Expr) string {
	r := n.PositionRange()
	start, end := int(r.Start), int(r.End)
	if p.parse == nil || start < 0 || end > len(p.qs) || start >= end {
		return ""
	}
	text := strings.Repeat(" ", start) + p.qs[start:end]
	if e, err := p.parse(text); err != nil || e.String() != part.String() {
		return ""
	}
	return text
}

// add registers part, whose query is text ("": part's own string), as a partial and
// returns the selector standing for its series.
func (p *shardPlan) add(part *parser.AggregateExpr, labeled bool, text string) *parser.VectorSelector {
	name := partialName + strconv.Itoa(len(p.partials))
	query, positioned := text, text != ""
	if !positioned {
		query = part.String()
	}
	p.partials = append(p.partials, &partial{name: name, query: query, labeled: labeled, positioned: positioned})
	return &parser.VectorSelector{Name: name, LabelMatchers: []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, name)}}
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// perSeries tells whether each series of e's answer comes from one series of storage,
// with its labels or without its name only (see the rules above).
func perSeries(e parser.Expr) bool {
	ok, selectors := true, 0
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case nil, *parser.MatrixSelector, *parser.ParenExpr, *parser.UnaryExpr, *parser.NumberLiteral,
			*parser.StringLiteral, *parser.DurationExpr:
		case *parser.VectorSelector:
			selectors++
			ok = slices.ContainsFunc(n.LabelMatchers, func(m *labels.Matcher) bool {
				return m.Name == labels.MetricName && m.Type == labels.MatchEqual && m.Value != ""
			}) && !strings.HasPrefix(n.Name, partialName)
		case *parser.BinaryExpr:
			// A vector meets scalars only; set operators and comparisons between vectors
			// match series.
			ok = n.LHS.Type() != parser.ValueTypeVector || n.RHS.Type() != parser.ValueTypeVector
		case *parser.Call:
			arity, known := perSeriesFunctions[n.Func.Name]
			ok = known && (arity < 0 || len(n.Args) == arity)
		default: // aggregations, subqueries, node kinds unknown here
			ok = false
		}
		if !ok {
			return errStopInspect
		}
		return nil
	})
	return ok && selectors > 0
}

// perSeriesFunctions are the functions whose answer for a series depends on that series
// alone and keeps its labels (less the metric name), with the number of arguments they
// must have for that (-1: any). The date functions without an argument read time(), a
// series of their own that every shard would answer.
var perSeriesFunctions = map[string]int{
	"abs": -1, "acos": -1, "acosh": -1, "asin": -1, "asinh": -1, "atan": -1, "atanh": -1,
	"avg_over_time": -1, "ceil": -1, "changes": -1, "clamp": -1, "clamp_max": -1, "clamp_min": -1,
	"cos": -1, "cosh": -1, "count_over_time": -1, "days_in_month": 1, "day_of_month": 1,
	"day_of_week": 1, "day_of_year": 1, "deg": -1, "delta": -1, "deriv": -1, "exp": -1,
	"first_over_time": -1, "floor": -1, "histogram_avg": -1, "histogram_count": -1,
	"histogram_sum": -1, "histogram_stddev": -1, "histogram_stdvar": -1,
	"double_exponential_smoothing": -1, "hour": 1, "idelta": -1, "increase": -1, "irate": -1,
	"last_over_time": -1, "ln": -1, "log10": -1, "log2": -1, "mad_over_time": -1,
	"max_over_time": -1, "min_over_time": -1, "minute": 1, "month": 1, "pi": -1,
	"predict_linear": -1, "present_over_time": -1, "quantile_over_time": -1, "rad": -1,
	"rate": -1, "resets": -1, "round": -1, "sgn": -1, "sin": -1, "sinh": -1, "sqrt": -1,
	"stddev_over_time": -1, "stdvar_over_time": -1, "sum_over_time": -1, "tan": -1, "tanh": -1,
	"time": -1, "timestamp": -1, "ts_of_first_over_time": -1, "ts_of_last_over_time": -1,
	"ts_of_max_over_time": -1, "ts_of_min_over_time": -1, "year": 1,
}

// histogramStatsFunctions are those under which the engine skips histogram buckets
// (promql's detectHistogramStatsDecoding).
var histogramStatsFunctions = map[string]struct{}{
	"histogram_count": {}, "histogram_sum": {}, "histogram_avg": {}, "timestamp": {}, "start_timestamp": {}, "absent": {},
}

// onlyPartials tells whether every selector of e stands for a partial.
func onlyPartials(e parser.Expr) bool {
	ok := true
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			ok = strings.HasPrefix(n.Name, partialName)
		case *parser.MatrixSelector, *parser.SubqueryExpr:
			ok = false
		}
		if !ok {
			return errStopInspect
		}
		return nil
	})
	return ok
}

// shards is how many shards a query is cut into; below 2, none.
func (a *API) shards() int { return a.cfg.Shards }

// newShardedQuery returns whole evaluated as shards when qs can be (instant when step is
// 0), else whole itself. budget is the request's series budget, which whole uses too.
func (a *API) newShardedQuery(ws string, lim QueryLimits, budget *seriesBudget, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration, whole promql.Query) promql.Query {
	if a.shards() < 2 || strings.Contains(qs, partialName) {
		return whole
	}
	expr, err := a.parser.ParseExpr(qs)
	if err != nil {
		return whole
	}
	plan, ok := planShards(expr, qs, a.parser.ParseExpr)
	if !ok {
		return whole
	}
	return &shardedQuery{a: a, ws: ws, lim: lim, budget: budget, opts: opts, plan: plan, start: start, end: end, step: step, wholeOrParts: wholeOrParts{whole: whole, qs: qs}}
}

// shardedQuery is a query evaluated as shards and merged; it falls back to the whole
// query wherever the sharded answer might differ (see above).
type shardedQuery struct {
	a      *API
	ws     string
	lim    QueryLimits
	budget *seriesBudget
	opts   promql.QueryOpts
	plan   *shardPlan
	start  time.Time
	end    time.Time
	step   time.Duration // 0: an instant query at start
	// Its samples are the shards': each series is read by one shard, as often as the
	// whole query reads it.
	wholeOrParts

	merge promql.Query // its points are the answer's until Close
}

func (s *shardedQuery) Close() {
	if s.merge != nil {
		s.merge.Close()
	}
	s.whole.Close()
}

func (s *shardedQuery) Exec(ctx context.Context) *promql.Result {
	res, err := s.execShards(ctx)
	if err == nil {
		s.byParts = true
		s.a.metrics.sharded.WithLabelValues("sharded").Inc()
		return res
	}
	if ctx.Err() != nil {
		return &promql.Result{Err: err}
	}
	s.a.logger.Debug("sharded query evaluated whole", "query", s.qs, "reason", err)
	s.a.metrics.sharded.WithLabelValues("whole").Inc()
	if s.merge != nil {
		s.merge.Close()
		s.merge = nil
	}
	if s.budget != nil {
		s.budget.read.Store(0) // the whole query reads the series again
	}
	return s.whole.Exec(ctx)
}

// errShardAnnotations sends a sharded query whose merge warns, or whose shards warn
// otherwise than seriesAnnotations, to be evaluated whole.
var errShardAnnotations = errors.New("the shards or the merge have annotations")

// errShardHistograms sends a sharded sum or avg of counter histograms to be evaluated
// whole: adding them warns of a counter reset collision (a reset hint meeting a no-reset
// hint) depending on the order they meet in, which sharding changes.
var errShardHistograms = errors.New("the shards add counter histograms")

// errShardOverflow sends a sharded avg whose answer overflowed to be evaluated whole:
// Prometheus' avg turns to an incremental mean where the sum would overflow.
var errShardOverflow = errors.New("a sharded avg overflowed")

// anyPoint tells whether a float point of v satisfies float, or a histogram point hist.
func anyPoint(v parser.Value, float func(float64) bool, hist func(*histogram.FloatHistogram) bool) bool {
	switch v := v.(type) {
	case promql.Scalar:
		return float(v.V)
	case promql.Vector:
		for _, s := range v {
			if s.H != nil && hist(s.H) || s.H == nil && float(s.F) {
				return true
			}
		}
	case promql.Matrix:
		for _, s := range v {
			for _, p := range s.Floats {
				if float(p.F) {
					return true
				}
			}
			for _, p := range s.Histograms {
				if hist(p.H) {
					return true
				}
			}
		}
	}
	return false
}

func counterHistogram(h *histogram.FloatHistogram) bool {
	return h.CounterResetHint != histogram.GaugeType
}

// seriesAnnotations are the annotations that functions and selectors make for one series
// at a time: a shard makes those of its series, so together the shards make the whole
// query's. The aggregations' own (histograms ignored by max, a mix of floats and
// histograms in a group, ...) depend on which series meet, and send the query whole.
var seriesAnnotations = []error{
	annotations.PossibleNonCounterInfo, annotations.PossibleNonCounterLabelInfo,
	annotations.NativeHistogramNotCounterWarning, annotations.NativeHistogramNotGaugeWarning,
	annotations.HistogramIgnoredInMixedRangeInfo, annotations.StartTimeOverlapWarning,
}

// mergeable tells whether the annotations of a shard's query can stand for the whole
// query's; positioned: the query has the offsets of the query as written.
func mergeable(positioned bool, annos annotations.Annotations) bool {
	if !positioned {
		return false
	}
	for _, err := range annos {
		if !slices.ContainsFunc(seriesAnnotations, func(e error) bool { return errors.Is(err, e) }) {
			return false
		}
	}
	return true
}

// execShards evaluates the partials on every shard in parallel, then the merge. Any error
// means the query is to be evaluated whole (unless ctx ended).
func (s *shardedQuery) execShards(ctx context.Context) (*promql.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.cancelParts(cancel)

	n := s.a.shards()
	jobs := len(s.plan.partials) * n
	// The shards run at once: each holds its share of the samples limit. A shard over
	// its share sends the query whole, which passes or fails as it would unsharded.
	maxSamples := s.lim.MaxSamples
	if maxSamples > 0 {
		maxSamples = max(1, maxSamples/jobs)
	}
	eng := s.a.engineFor(maxSamples)
	s.a.metrics.shardRuns.Add(float64(jobs))
	queries := make([]promql.Query, jobs)
	defer func() {
		for _, q := range queries {
			if q != nil {
				q.Close()
			}
		}
	}()
	results := make([]*promql.Result, jobs)
	// Each shard's answers to inner queries, by inner, made and read by the shard's
	// goroutine (partials of several run one shard at a time, below).
	inners := make([]map[*inner]*innerAnswer, n)
	for shard := range inners {
		inners[shard] = map[*inner]*innerAnswer{}
	}
	defer func() {
		for _, m := range inners {
			for _, a := range m {
				if a.query != nil {
					a.query.Close()
				}
			}
		}
	}()
	// Several queries reading a shard's series (partials, inner queries) read them once.
	shards := make([]storage.Queryable, n)
	var shared []*sharedQueryable
	for shard := range shards {
		shards[shard] = shardQueryable(s.a.queryable(ctx, s.ws, s.budget), shard, n)
		if s.plan.readers() > 1 {
			sq := shareSelects(shards[shard], s.budget)
			defer sq.close() // after wg.Wait below: every partial is done
			shared = append(shared, sq)
		}
	}
	run := func(j int) {
		part, shard := s.plan.partials[j/n], j%n
		q := shards[shard]
		if shared != nil {
			q = shared[shard].view()
		}
		if part.inner != nil {
			a := inners[shard][part.inner]
			if a == nil {
				a = s.innerAnswer(ctx, eng, q, part.inner, shard)
				inners[shard][part.inner] = a
			}
			if a.res.Err != nil {
				results[j] = a.res
				cancel()
				return
			}
			q = partialsQueryable{innerName: a.series}
		}
		qry, err := s.newQuery(ctx, eng, q, part.query)
		if err != nil {
			results[j] = &promql.Result{Err: err}
			cancel()
			return
		}
		queries[j] = qry
		results[j] = qry.Exec(ctx)
		if results[j].Err != nil {
			cancel()
		}
	}
	var wg sync.WaitGroup
	if len(s.plan.partials) == 1 {
		for j := range jobs {
			wg.Go(func() { run(j) })
		}
	} else {
		// A shard's partials one after the other: they iterate the same series, whose
		// readers (the head's chunk reader) are not for two goroutines at once, or the
		// same inner answer.
		for shard := range n {
			wg.Go(func() {
				for j := shard; j < jobs; j += n {
					if ctx.Err() == nil {
						run(j)
					} else {
						// Not run: another one failed, or the request ended.
						results[j] = &promql.Result{Err: promql.ErrQueryCanceled(context.Cause(ctx).Error())}
					}
				}
			})
		}
	}
	wg.Wait()

	var samples int64
	var annos annotations.Annotations
	for j, res := range results {
		if res.Err != nil {
			// Another shard's error canceled this one: report that error instead.
			if isCancellation(res.Err) && ctx.Err() != nil {
				continue
			}
			return nil, res.Err
		}
		// Annotations are merged in the order the unsharded query makes them (the
		// partials' order, each inner before its first partial): of two with the same
		// message, the last one's position stays.
		part := s.plan.partials[j/n]
		v := res.Value
		if a := inners[j%n][part.inner]; a != nil && !a.read {
			a.read = true
			if len(a.res.Warnings) > 0 {
				if !mergeable(part.inner.positioned, a.res.Warnings) {
					return nil, errShardAnnotations
				}
				annos.Merge(a.res.Warnings)
			}
			samples += a.query.Stats().Samples.TotalSamples
			v = a.res.Value // what the shard's sum adds
		}
		if len(res.Warnings) > 0 {
			if !mergeable(part.positioned, res.Warnings) {
				return nil, errShardAnnotations
			}
			annos.Merge(res.Warnings)
		}
		if part.adds && anyPoint(v, func(float64) bool { return false }, counterHistogram) {
			return nil, errShardHistograms
		}
		if part.inner == nil { // else its samples are its inner's
			samples += queries[j].Stats().Samples.TotalSamples
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sets := make(map[string][]storage.Series, len(s.plan.partials))
	for j, res := range results {
		part := s.plan.partials[j/n]
		sets[part.name] = appendPartialSeries(sets[part.name], res.Value, part.labeled, j%n, s.step, s.end)
	}
	for _, ss := range sets {
		slices.SortFunc(ss, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}

	merge, err := s.newQuery(ctx, s.a.engineFor(s.lim.MaxSamples), partialsQueryable(sets), s.plan.merge)
	if err != nil {
		return nil, err
	}
	s.merge = merge
	res := merge.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	if len(res.Warnings) > 0 {
		return nil, errShardAnnotations
	}
	if s.plan.avg && anyPoint(res.Value, func(f float64) bool { return math.IsInf(f, 0) }, (*histogram.FloatHistogram).HasOverflow) {
		return nil, errShardOverflow
	}
	res.Warnings = annos
	s.samples = samples
	return res, nil
}

// innerAnswer is a shard's answer to an inner query, as series its partials aggregate.
type innerAnswer struct {
	query  promql.Query // open while its answer is read; nil if it could not be made
	res    *promql.Result
	series []storage.Series
	read   bool // its annotations and samples counted
}

// innerAnswer evaluates in over q, the series of shard.
func (s *shardedQuery) innerAnswer(ctx context.Context, eng *promql.Engine, q storage.Queryable, in *inner, shard int) *innerAnswer {
	qry, err := s.newQuery(ctx, eng, q, in.query)
	if err != nil {
		return &innerAnswer{res: &promql.Result{Err: err}}
	}
	a := &innerAnswer{query: qry, res: qry.Exec(ctx)}
	if a.res.Err == nil {
		a.series = appendPartialSeries(nil, a.res.Value, false, shard, s.step, s.end)
	}
	return a
}

// newQuery builds qs over q as this query is: instant or range.
func (s *shardedQuery) newQuery(ctx context.Context, eng *promql.Engine, q storage.Queryable, qs string) (promql.Query, error) {
	if s.step == 0 {
		return eng.NewInstantQuery(ctx, q, s.opts, qs, s.start)
	}
	return eng.NewRangeQuery(ctx, q, s.opts, qs, s.start, s.end, s.step)
}

// appendPartialSeries appends the series of a shard's answer v as series of samples the
// merge reads at its steps. A range answer's series get a stale marker a step after each
// point not followed by one, so that the merge does not look back to it at a step where
// the shard answered nothing.
func appendPartialSeries(out []storage.Series, v parser.Value, labeled bool, shard int, step time.Duration, end time.Time) []storage.Series {
	lset := func(l labels.Labels) labels.Labels {
		if !labeled {
			return l
		}
		b := labels.NewBuilder(l)
		b.Set(shardLabel, strconv.Itoa(shard))
		return b.Labels()
	}
	switch v := v.(type) {
	case promql.Vector:
		for _, smp := range v {
			out = append(out, storage.NewListSeries(lset(smp.Metric), []chunks.Sample{partialSample{t: smp.T, f: smp.F, h: smp.H}}))
		}
	case promql.Matrix:
		stepMs, endMs := step.Milliseconds(), end.UnixMilli()
		stale := math.Float64frombits(value.StaleNaN)
		for _, ser := range v {
			smps := make([]chunks.Sample, 0, len(ser.Floats)+len(ser.Histograms)+1)
			for _, p := range ser.Floats {
				smps = append(smps, partialSample{t: p.T, f: p.F})
			}
			for _, p := range ser.Histograms {
				smps = append(smps, partialSample{t: p.T, h: p.H})
			}
			if len(ser.Floats) > 0 && len(ser.Histograms) > 0 {
				slices.SortFunc(smps, func(a, b chunks.Sample) int { return cmp.Compare(a.T(), b.T()) })
			}
			withStale := make([]chunks.Sample, 0, len(smps)+1)
			for i, smp := range smps {
				withStale = append(withStale, smp)
				next := smp.T() + stepMs
				if next <= endMs && (i == len(smps)-1 || smps[i+1].T() > next) {
					withStale = append(withStale, partialSample{t: next, f: stale})
				}
			}
			out = append(out, storage.NewListSeries(lset(ser.Metric), withStale))
		}
	}
	return out
}

// partialSample is a point of a shard's answer, as the merge reads it.
type partialSample struct {
	t int64
	f float64
	h *histogram.FloatHistogram
}

func (s partialSample) T() int64                      { return s.t }
func (s partialSample) ST() int64                     { return 0 }
func (s partialSample) F() float64                    { return s.f }
func (s partialSample) H() *histogram.Histogram       { return nil }
func (s partialSample) FH() *histogram.FloatHistogram { return s.h }
func (s partialSample) Copy() chunks.Sample {
	c := s
	if s.h != nil {
		c.h = s.h.Copy()
	}
	return c
}

func (s partialSample) Type() chunkenc.ValueType {
	if s.h != nil {
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

// shardQueryable reads the series of one shard of q's: storage answers a select whose
// hints name a shard with that shard's series only (the Queryables contract; the TSDB
// filters its postings by the hash it keeps, the ingesters' read API filters an older
// ingester's answer).
func shardQueryable(q storage.Queryable, shard, of int) storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		qr, err := q.Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		return &shardQuerier{Querier: qr, shard: uint64(shard), of: uint64(of), mint: mint, maxt: maxt}, nil
	})
}

type shardQuerier struct {
	storage.Querier
	shard, of  uint64
	mint, maxt int64
}

func (q *shardQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	h := storage.SelectHints{Start: q.mint, End: q.maxt}
	if hints != nil {
		h = *hints
	}
	h.ShardIndex, h.ShardCount = q.shard, q.of
	return q.Querier.Select(ctx, sortSeries, &h, ms...)
}

// sharedQueryable answers the same Select (range, matchers, hints but the function)
// once for all its queriers: the series are read from q once, and each caller iterates
// them on its own (a storage.Series makes a new iterator at each call), one caller at a
// time. The underlying queriers stay open until close, after every caller is done.
//
// The series budget counts what the whole query would read: q's select counts its
// series once, for the first caller; every other caller counts them again, as its
// selector would read them in the whole query.
type sharedQueryable struct {
	q      storage.Queryable
	budget *seriesBudget
	mu     sync.Mutex
	// queriers by range, and selects by key; both made on first use.
	queriers map[[2]int64]*sharedQuerierState
}

type sharedQuerierState struct {
	once    sync.Once
	querier storage.Querier
	err     error
	mu      sync.Mutex
	selects map[string]*sharedSelect
}

type sharedSelect struct {
	once     sync.Once
	series   []storage.Series
	warnings annotations.Annotations
	err      error
	credited bool // its reading counted for a caller; guarded by sharedQuerierState.mu
}

func shareSelects(q storage.Queryable, budget *seriesBudget) *sharedQueryable {
	return &sharedQueryable{q: q, budget: budget, queriers: map[[2]int64]*sharedQuerierState{}}
}

// view is the queryable of one partial.
func (s *sharedQueryable) view() storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		st, err := s.querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		return sharedQuerier{st: st, budget: s.budget}, nil
	})
}

func (s *sharedQueryable) querier(mint, maxt int64) (*sharedQuerierState, error) {
	s.mu.Lock()
	st, ok := s.queriers[[2]int64{mint, maxt}]
	if !ok {
		st = &sharedQuerierState{selects: map[string]*sharedSelect{}}
		s.queriers[[2]int64{mint, maxt}] = st
	}
	s.mu.Unlock()
	st.once.Do(func() { st.querier, st.err = s.q.Querier(mint, maxt) })
	if st.err != nil {
		return nil, st.err
	}
	return st, nil
}

// close closes the underlying queriers.
func (s *sharedQueryable) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.queriers {
		if st.querier != nil {
			_ = st.querier.Close()
		}
	}
	s.queriers = nil
}

// sharedQuerier is one caller's view; its Close leaves the underlying querier open.
type sharedQuerier struct {
	st     *sharedQuerierState
	budget *seriesBudget
}

func (q sharedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	key := selectKey(sortSeries, hints, ms)
	q.st.mu.Lock()
	sel, ok := q.st.selects[key]
	if !ok {
		sel = &sharedSelect{}
		q.st.selects[key] = sel
	}
	q.st.mu.Unlock()
	sel.once.Do(func() {
		set := q.st.querier.Select(ctx, sortSeries, hints, ms...)
		for set.Next() {
			sel.series = append(sel.series, set.At())
		}
		sel.err, sel.warnings = set.Err(), set.Warnings()
	})
	if sel.err != nil {
		return storage.ErrSeriesSet(sel.err)
	}
	var set storage.SeriesSet = &listSeriesSet{series: sel.series, i: -1, warnings: sel.warnings}
	q.st.mu.Lock()
	count := sel.credited
	sel.credited = true
	q.st.mu.Unlock()
	if count && q.budget != nil && q.budget.limit > 0 {
		set = &limitedSeriesSet{SeriesSet: set, budget: q.budget}
	}
	return set
}

// selectKey identifies a select by what decides its series: the function hint only
// matters as "series" (labels without samples).
func selectKey(sortSeries bool, h *storage.SelectHints, ms []*labels.Matcher) string {
	var b strings.Builder
	fmt.Fprint(&b, sortSeries)
	if h != nil {
		fmt.Fprint(&b, h.Start, h.End, h.Step, h.Range, h.Func == "series", h.By, h.Grouping, h.ShardIndex, h.ShardCount, h.DisableTrimming)
	}
	for _, m := range ms {
		b.WriteByte(0)
		b.WriteString(m.String())
	}
	return b.String()
}

func (q sharedQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.st.querier.LabelValues(ctx, name, hints, ms...)
}

func (q sharedQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.st.querier.LabelNames(ctx, hints, ms...)
}

func (sharedQuerier) Close() error { return nil }

// partialsQueryable serves the merge: the series of each partial under its selector's
// name. The merge has no other selectors (onlyPartials).
type partialsQueryable map[string][]storage.Series

func (p partialsQueryable) Querier(int64, int64) (storage.Querier, error) { return p, nil }

func (p partialsQueryable) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			if ss, ok := p[m.Value]; ok {
				return &listSeriesSet{series: ss, i: -1}
			}
		}
	}
	return storage.ErrSeriesSet(fmt.Errorf("no partial answers %v", ms))
}

func (p partialsQueryable) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (p partialsQueryable) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (p partialsQueryable) Close() error { return nil }

// listSeriesSet iterates series already sorted by labels.
type listSeriesSet struct {
	series   []storage.Series
	i        int
	warnings annotations.Annotations
}

func (s *listSeriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *listSeriesSet) At() storage.Series                { return s.series[s.i] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return s.warnings }
