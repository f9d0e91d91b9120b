package query

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// The results cache keeps the answers of range queries by day (Config.SplitInterval),
// as Cortex's query-frontend does: a dashboard that asks again for the last 24 hours
// every few seconds has the older steps answered from memory, and only the newest
// evaluated.
//
// A range query's answer at a step depends only on the samples at and before it (within
// its lookback, ranges and offsets), so a step old enough that no sample can still
// arrive for it has a fixed answer: steps older than now - MaxFreshness are cached, and
// MaxFreshness is never below the longest out-of-order window (10m), within which late
// samples are taken. Not cached: queries that are not split (@ modifiers, subqueries,
// start() and the like, asked for stats), queries with a negative offset (they read
// samples newer than their step), and requests with Cache-Control: no-store.
//
// Answers with warnings or infos are not cached.
//
// Each entry is one day's extent of one query: (workspace, its version, query text,
// step and the steps' phase, lookback, limits) and the steps [from, to] it holds.
// A request asking for steps of that day that the extent lacks evaluates the missing
// steps only, before and after it, and the extent grows to cover them.
//
// Extents live in this process' memory (an LRU) or in a memcached or Redis server that
// several processes share (cachebackend.go, encoded by cachecodec.go), where one finds
// the extents another made. A workspace's extents must not outlive a change of what
// decides its answers (its retention): its version (Deps.CacheVersion, which every
// process computes alike from the workspace's record) is in the key, and in memory a
// per-process generation too, bumped by Invalidate when the workspace is deleted or
// reconfigured.

// minCacheFreshness is the longest out-of-order window (limits.MaxOutOfOrderTimeWindow):
// a late sample is never older than it, so steps older than it do not change.
const minCacheFreshness = 10 * time.Minute

// resultsCache keeps extents in a store: this process' LRU, or a memcached or Redis
// server that processes share (cachebackend.go). A failing store (down, slow, an item
// too large or corrupt) is a miss, counted, never a failed query.
type resultsCache struct {
	store   extentStore
	backend string // the configured backend, in the metrics
	// shared: the store is a server that processes share, so keys leave out gens (each
	// process has its own); Deps.CacheVersion changes instead when a workspace does.
	shared bool
	m      *metrics
	logger *slog.Logger
	// lookback is the engine's lookback delta, which requests that set none use: in the
	// key, since processes sharing a backend may be configured differently.
	lookback time.Duration
	// shards is Config.Shards: in the key, since a sharded sum may differ from an
	// unsharded one in its last bits.
	shards int

	mu   sync.Mutex        // guards gens
	gens map[string]uint64 // workspace → generation, bumped by Invalidate
}

// extent is the answer of one query over the steps [from, to] of one day. Its matrix is
// the cache's own copy, never modified after it is stored.
type extent struct {
	key      string
	from, to int64 // ms
	mat      promql.Matrix
	size     int64 // estimated bytes in memory (memoryExtents)
}

func newResultsCache(store extentStore, backend string, lookback time.Duration, shards int, m *metrics, logger *slog.Logger) *resultsCache {
	return &resultsCache{store: store, backend: backend, shared: backend != CacheBackendMemory, lookback: lookback, shards: max(shards, 1), m: m, logger: logger, gens: map[string]uint64{}}
}

// Invalidate drops what is cached of a workspace in this process' store: its entries are
// no longer found, and age out of the LRU. A shared store's keys do not change with it
// (other processes could not know): there the workspace's CacheVersion does.
func (c *resultsCache) Invalidate(ws string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[ws]++
}

// key is the entry of a query's day: everything that changes the answer.
func (c *resultsCache) key(ws, version, qs string, step time.Duration, phase int64, opts promql.QueryOpts, lim QueryLimits, day int64) string {
	var gen uint64
	if !c.shared {
		c.mu.Lock()
		gen = c.gens[ws]
		c.mu.Unlock()
	}
	useST := "-"
	if u := opts.UseStartTimestamps(); u != nil {
		useST = fmt.Sprint(*u)
	}
	lookback := opts.LookbackDelta()
	if lookback <= 0 { // the engine's, as promql.Engine takes it
		lookback = c.lookback
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\x00%d\x00%d\x00%d\x00%s\x00%d\x00%d\x00%d\x00%d", ws, gen, version, qs, step, phase, lookback, useST, lim.MaxSamples, lim.MaxSeries, c.shards, day)
	return ws + ":" + hex.EncodeToString(h.Sum(nil))
}

// get returns the extent of key, nil when there is none or the store failed.
func (c *resultsCache) get(ctx context.Context, key string) *extent {
	e, err := c.store.get(ctx, key)
	if err != nil {
		c.failed(err, "get")
		return nil
	}
	return e
}

// put stores e, replacing the extent of its key.
func (c *resultsCache) put(ctx context.Context, e *extent) {
	if err := c.store.put(ctx, e); err != nil {
		c.failed(err, "set")
	}
}

func (c *resultsCache) failed(err error, op string) {
	reason := op
	switch {
	case errors.Is(err, errCorruptExtent):
		reason = "corrupt"
	case errors.Is(err, errOtherKey):
		reason = "wrong_key"
	case errors.Is(err, errTooLarge):
		reason = "too_large"
	}
	c.m.cacheBackendErrors.WithLabelValues(c.backend, reason).Inc()
	c.logger.Debug("results cache backend failed; evaluating instead", "backend", c.backend, "reason", reason, "err", err)
}

// retentionEdge: steps reading samples within this of the retention's cutoff are not
// cached. The cutoff moves on while an extent lives (cacheableSince is asked again at
// every read), the compactor deletes whole blocks, and the querier may read the clock a
// moment later than the cache.
const retentionEdge = time.Hour

// cacheableSince returns the first step time of the range query whole that may be
// answered from or stored in the cache: the Queryables drop samples older than the
// workspace's retention, so a step that reads samples near that cutoff has an answer
// that changes as the cutoff moves. The zero time means no bound; ok false, that the
// retention is unknown (do not cache).
func (a *API) cacheableSince(ctx context.Context, ws string, whole promql.Query) (since time.Time, ok bool) {
	if a.deps.Retentions == nil {
		return time.Time{}, true
	}
	ret, has, err := a.deps.Retentions.Retention(ctx, ws)
	if err != nil {
		return time.Time{}, false
	}
	if !has || ret <= 0 {
		return time.Time{}, true
	}
	stmt, isEval := whole.Statement().(*parser.EvalStmt)
	if !isEval {
		return time.Time{}, false
	}
	// How far before its step a step's samples reach: the same for every step of a
	// cacheable query (no @, no subquery). A query without selectors reads none.
	var reach time.Duration
	if mint, maxt := promql.FindMinMaxTime(stmt); mint != 0 || maxt != 0 {
		reach = stmt.Start.Sub(timestamp.Time(mint))
	}
	return a.now().Add(-ret + a.retentionEdge + reach), true
}

// cacheable tells whether a range query's steps can be cached once old enough: it is
// split (splittable) and reads no sample newer than its step (no negative offset).
func cacheable(expr parser.Expr) bool {
	if !splittable(expr) {
		return false
	}
	ok := true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, isVS := n.(*parser.VectorSelector); isVS && vs.OriginalOffset < 0 {
			ok = false
			return errStopInspect
		}
		return nil
	})
	return ok
}

// copyMatrix returns a copy of m that shares nothing mutable with it (histograms are
// never modified in place once in an answer, and are shared).
func copyMatrix(m promql.Matrix) promql.Matrix {
	out := make(promql.Matrix, len(m))
	for i, s := range m {
		out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats), Histograms: slices.Clone(s.Histograms), DropName: s.DropName}
	}
	return out
}

// matrixSize estimates the bytes m holds in memory.
func matrixSize(m promql.Matrix) int64 {
	var size int64
	for _, s := range m {
		size += 64 + int64(s.Metric.ByteSize()) + 16*int64(len(s.Floats))
		for _, h := range s.Histograms {
			size += 32 + int64(h.H.Size())
		}
	}
	return size
}

// sliceMatrix returns the points of m with timestamps in [from, to], in new slices; a
// series without points there is left out, as the engine leaves it out.
func sliceMatrix(m promql.Matrix, from, to int64) promql.Matrix {
	out := make(promql.Matrix, 0, len(m))
	for _, s := range m {
		fs := slices.Clone(pointsIn(s.Floats, from, to, func(p promql.FPoint) int64 { return p.T }))
		hs := slices.Clone(pointsIn(s.Histograms, from, to, func(p promql.HPoint) int64 { return p.T }))
		if len(fs) == 0 && len(hs) == 0 {
			continue
		}
		out = append(out, promql.Series{Metric: s.Metric, Floats: fs, Histograms: hs, DropName: s.DropName})
	}
	return out
}

// pointsIn returns the sub-slice of the time-ordered points in [from, to].
func pointsIn[P any](ps []P, from, to int64, t func(P) int64) []P {
	lo, _ := slices.BinarySearchFunc(ps, from, func(p P, x int64) int { return cmp.Compare(t(p), x) })
	hi, _ := slices.BinarySearchFunc(ps, to+1, func(p P, x int64) int { return cmp.Compare(t(p), x) })
	return ps[lo:hi]
}

// mergeTimeMatrices merges answers over disjoint step ranges into one, each series'
// points in time order (the answers may come in any order).
func mergeTimeMatrices(mats []promql.Matrix) promql.Matrix {
	out := concatMatrices(mats)
	for i := range out {
		s := &out[i]
		if !slices.IsSortedFunc(s.Floats, func(a, b promql.FPoint) int { return cmp.Compare(a.T, b.T) }) {
			slices.SortFunc(s.Floats, func(a, b promql.FPoint) int { return cmp.Compare(a.T, b.T) })
		}
		if !slices.IsSortedFunc(s.Histograms, func(a, b promql.HPoint) int { return cmp.Compare(a.T, b.T) }) {
			slices.SortFunc(s.Histograms, func(a, b promql.HPoint) int { return cmp.Compare(a.T, b.T) })
		}
	}
	return out
}

// cachedRange is a range query answered by day from the results cache where it can,
// evaluating the rest: the days' missing steps, and the steps too new to cache (split in
// parallel parts as any range query).
type cachedRange struct {
	a      *API
	ws     string
	lim    QueryLimits
	opts   promql.QueryOpts
	qs     string
	start  time.Time
	end    time.Time
	step   time.Duration
	since  time.Time // steps before it are not cached (cacheableSince)
	cutoff time.Time // steps after it are not cached
	whole  promql.Query
	// version is Deps.CacheVersion's for the workspace.
	version string

	mu      sync.Mutex
	cancel  context.CancelFunc
	queries []promql.Query // evaluated pieces, closed with the query
	samples int64
}

func (c *cachedRange) Statement() parser.Statement { return c.whole.Statement() }
func (c *cachedRange) String() string              { return c.qs }

func (c *cachedRange) Cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}

// Stats counts the samples of the steps evaluated: those answered from the cache
// processed none.
func (c *cachedRange) Stats() *stats.Statistics {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &stats.Statistics{Timers: stats.NewQueryTimers(), Samples: &stats.QuerySamples{TotalSamples: c.samples}}
}

func (c *cachedRange) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.queries {
		q.Close()
	}
	c.queries = nil
	c.whole.Close()
}

func (c *cachedRange) Exec(ctx context.Context) *promql.Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	step, start, end := c.step.Milliseconds(), c.start.UnixMilli(), c.end.UnixMilli()
	interval := c.a.cfg.SplitInterval.Milliseconds()
	phase := floorMod(start, step)
	// The last step, and the last step old enough to cache (end need not be a step).
	lastStep := start + floorDiv(end-start, step)*step
	lastCached := min(start+floorDiv(c.cutoff.UnixMilli()-start, step)*step, lastStep)
	var (
		mats  []promql.Matrix
		warns annotations.Annotations
	)
	// uncached evaluates the steps [from, to] without the cache.
	uncached := func(from, to int64) error {
		m, w, qry, err := c.evaluate(ctx, from, to)
		if err != nil {
			return err
		}
		// Its points are the answer's until Close.
		c.mu.Lock()
		c.queries = append(c.queries, qry)
		c.mu.Unlock()
		c.a.metrics.cacheSteps.WithLabelValues("uncacheable").Add(float64((to-from)/step + 1))
		mats = append(mats, m)
		warns.Merge(w)
		return nil
	}
	t := start
	if !c.since.IsZero() {
		// Steps reading samples near the retention's cutoff: evaluated.
		if first := start - floorDiv(start-c.since.UnixMilli(), step)*step; first > start {
			last := min(first-step, lastStep)
			if err := uncached(start, last); err != nil {
				return &promql.Result{Err: err}
			}
			t = last + step
		}
	}
	for t <= lastCached {
		day := floorDiv(t, interval)
		dayEnd := (day+1)*interval - 1
		pe := min(lastCached, t+floorDiv(dayEnd-t, step)*step)
		m, w, err := c.fromDay(ctx, day, phase, t, pe)
		if err != nil {
			return &promql.Result{Err: err}
		}
		mats = append(mats, m)
		warns.Merge(w)
		t = pe + step
	}
	if t <= lastStep {
		if err := uncached(t, lastStep); err != nil {
			return &promql.Result{Err: err}
		}
	}
	return &promql.Result{Value: mergeTimeMatrices(mats), Warnings: warns}
}

// fromDay answers the steps [ps, pe] of one day from its cached extent, evaluating the
// steps the extent lacks (before and after it) and storing the grown extent.
func (c *cachedRange) fromDay(ctx context.Context, day, phase, ps, pe int64) (promql.Matrix, annotations.Annotations, error) {
	cache, step := c.a.cache, c.step.Milliseconds()
	key := cache.key(c.ws, c.version, c.qs, c.step, phase, c.opts, c.lim, day)
	e := cache.get(ctx, key)
	if e != nil && e.from <= ps && pe <= e.to {
		c.a.metrics.cacheSteps.WithLabelValues("hit").Add(float64((pe-ps)/step + 1))
		return sliceMatrix(e.mat, ps, pe), nil, nil
	}
	type piece struct{ from, to int64 }
	var todo []piece
	from, to := ps, pe
	if e != nil && e.from <= pe+step && ps <= e.to+step {
		// Overlapping or adjacent: evaluate only what it lacks, and grow it.
		if ps < e.from {
			todo = append(todo, piece{ps, e.from - step})
		}
		if pe > e.to {
			todo = append(todo, piece{e.to + step, pe})
		}
		from, to = min(ps, e.from), max(pe, e.to)
	} else {
		todo = append(todo, piece{ps, pe})
		e = nil
	}
	var (
		mats  []promql.Matrix
		warns annotations.Annotations
	)
	if e != nil {
		mats = append(mats, e.mat) // stored without annotations
	}
	evaluated := int64(0)
	for _, p := range todo {
		m, w, qry, err := c.evaluate(ctx, p.from, p.to)
		if err != nil {
			return nil, nil, err
		}
		defer qry.Close() // once copied below
		mats = append(mats, m)
		warns.Merge(w)
		evaluated += (p.to-p.from)/step + 1
	}
	c.a.metrics.cacheSteps.WithLabelValues("miss").Add(float64(evaluated))
	c.a.metrics.cacheSteps.WithLabelValues("hit").Add(float64((pe-ps)/step + 1 - evaluated))
	// The cache's copy: the pieces' points belong to their queries until Close, and the
	// extent's are never modified.
	copies := make([]promql.Matrix, len(mats))
	for i, m := range mats {
		copies[i] = copyMatrix(m)
	}
	grown := mergeTimeMatrices(copies)
	if len(warns) == 0 {
		// An answer with warnings or infos is not kept: a sub-range of its steps may not
		// have them.
		e := &extent{key: key, from: from, to: to, mat: grown}
		if !cache.shared {
			e.size = matrixSize(grown)
		}
		cache.put(ctx, e)
	}
	return sliceMatrix(grown, ps, pe), warns, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// evaluate runs the query over the steps [from, to] (ms, on the step grid), split in
// parallel parts when worth it, and returns its answer, valid until qry is closed.
func (c *cachedRange) evaluate(ctx context.Context, from, to int64) (promql.Matrix, annotations.Annotations, promql.Query, error) {
	budget := &seriesBudget{limit: c.lim.MaxSeries}
	qry, err := c.a.newRangeQuery(ctx, c.ws, c.lim, budget, c.opts, c.qs, time.UnixMilli(from), time.UnixMilli(to), c.step, false, false)
	if err != nil {
		return nil, nil, nil, err
	}
	res := qry.Exec(ctx)
	if res.Err == nil {
		c.mu.Lock()
		c.samples += qry.Stats().Samples.TotalSamples
		c.mu.Unlock()
	}
	m, err := res.Matrix()
	if res.Err != nil || err != nil {
		qry.Close()
		return nil, nil, nil, cmp.Or(res.Err, err)
	}
	return m, res.Warnings, qry, nil
}
