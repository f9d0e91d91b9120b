package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

// Run sends the configured workload until cfg.Duration is over (or ctx is
// cancelled), then verifies it when cfg.Verify, and reports. The error is
// for a run that could not start (bad config, no AWS credentials) or a
// verification that could not complete; failed requests and missing samples
// are in the report, not errors. The report is filled whenever sending
// happened.
//
//	           ┌ worker 0: series with owner(series) = 0 ┐
//	steps ───▶ │ ...          generate → batch → encode → snappy → POST (retries) → ack record
//	           └ worker N-1                              ┘
//	the step gate keeps workers within maxSkew steps of each other, so
//	backfill reaches the server roughly in time order, as a Prometheus
//	catching up on its WAL does.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Seed == 0 {
		cfg.Seed = now().UnixNano() & math.MaxInt32
		if cfg.Seed == 0 {
			cfg.Seed = 1
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		var tr *http.Transport
		hc, tr = newHTTPClient(2 * cfg.Concurrency)
		defer tr.CloseIdleConnections()
	}
	if cfg.SigV4 && cfg.Credentials == nil {
		awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(cfg.SigV4Region))
		if err != nil {
			return Report{}, fmt.Errorf("loading AWS configuration for sigv4: %w", err)
		}
		if awsCfg.Credentials == nil {
			return Report{}, errors.New("sigv4: the standard AWS chain found no credentials")
		}
		cfg.Credentials = awsCfg.Credentials
	}
	c := newClient(hc, cfg)
	if cfg.SigV4 {
		// Fail before sending rather than on every request.
		if _, err := c.creds.Retrieve(ctx); err != nil {
			return Report{}, fmt.Errorf("sigv4: retrieving AWS credentials: %w", err)
		}
	}

	r := &runner{cfg: cfg, now: now, logger: logger, w: newWriter(c, cfg), intervalMs: cfg.ScrapeInterval.Milliseconds()}
	r.start = now()
	nowMs := r.start.UnixMilli()
	r.firstStep = floorDiv(nowMs, r.intervalMs)
	if cfg.Backfill > 0 {
		r.firstStep = -floorDiv(-(nowMs - cfg.Backfill.Milliseconds()), r.intervalMs) // ceil
	}
	r.wl = newWorkload(workloadOptions{
		seed: cfg.Seed, activeSeries: cfg.ActiveSeries, churn: cfg.Churn,
		interval: r.intervalMs, firstStep: r.firstStep, labels: cfg.Labels,
	})
	// Five minutes of skew is far inside any TSDB's appendable window
	// (Prometheus: an hour behind the newest sample) yet lets workers run
	// unsynchronised for many steps.
	r.gate = newStepGate(cfg.Concurrency, max(2, (5*time.Minute).Milliseconds()/r.intervalMs), r.firstStep)
	var cancelGen, cancelSend context.CancelFunc
	r.genCtx, cancelGen = context.WithTimeout(ctx, cfg.Duration)
	defer cancelGen()
	r.sendCtx, cancelSend = context.WithTimeout(ctx, cfg.Duration+cfg.DrainTimeout)
	defer cancelSend()
	stopGate := context.AfterFunc(r.genCtx, r.gate.wake)
	defer stopGate()

	logger.Info("loadgen starting", "url", cfg.URL, "protocol", cfg.Protocol, "active_series", cfg.ActiveSeries,
		"instances", r.wl.numSlots, "seed", cfg.Seed, "backfill", cfg.Backfill, "duration", cfg.Duration)

	var attack chan *AttackReport
	if cfg.Attack.Connections > 0 {
		attack = make(chan *AttackReport, 1)
		go func() {
			rep, err := runAttack(r.genCtx, cfg.URL, cfg.Attack)
			if err != nil {
				logger.Error("attack", "err", err)
			}
			attack <- rep
		}()
	}

	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = newWorker(r, i)
		wg.Go(workers[i].run)
	}
	stopProgress := r.progress(cfg.ProgressInterval)
	wg.Wait()
	elapsed := now().Sub(r.start)
	stopProgress()

	rep := r.report(workers, elapsed)
	if attack != nil {
		cancelGen() // the attack lasts as long as the load
		rep.Attack = <-attack
	}
	logger.Info("loadgen finished sending", "accepted_samples", rep.AcceptedSamples, "elapsed", elapsed)
	if cfg.Verify {
		var all []*series
		for _, w := range workers {
			all = w.appendSeries(all)
		}
		v, err := verify(ctx, c, cfg, r.wl, all, logger)
		rep.Verify = v
		if err != nil {
			return rep, fmt.Errorf("verifying: %w", err)
		}
	}
	return rep, nil
}

// runner is what the workers of one run share. Read-only after Run starts
// the workers, except the atomics.
type runner struct {
	cfg        Config
	now        func() time.Time
	logger     *slog.Logger
	wl         *workload
	w          *writer
	gate       *stepGate
	intervalMs int64
	firstStep  int64
	start      time.Time
	// genCtx ends generation (Duration); sendCtx ends requests in flight
	// (Duration + DrainTimeout).
	genCtx, sendCtx context.Context

	// For progress logs only; the report sums the workers' own counters.
	accepted, dropped atomic.Int64
}

func (r *runner) progress(every time.Duration) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				el := r.now().Sub(r.start)
				acc := r.accepted.Load()
				r.logger.Info("progress", "elapsed", el.Round(time.Second), "accepted_samples", acc,
					"samples_per_second", math.Round(float64(acc)/el.Seconds()), "dropped_samples", r.dropped.Load())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (r *runner) report(workers []*worker, elapsed time.Duration) Report {
	cfg := r.cfg
	rep := Report{
		URL: cfg.URL, Protocol: cfg.Protocol, Seed: cfg.Seed, ActiveSeries: cfg.ActiveSeries,
		Instances: r.wl.numSlots, Churn: cfg.Churn, ScrapeInterval: cfg.ScrapeInterval, Backfill: cfg.Backfill,
		Elapsed: elapsed, CaughtUp: true, RequestsByStatus: map[string]int64{},
	}
	var lat latencyHistogram
	seen := map[string]bool{}
	minStep, maxStep := int64(math.MaxInt64), int64(math.MinInt64)
	for _, w := range workers {
		st := &w.stats
		rep.SeriesCreated += w.seriesCount()
		rep.AcceptedSamples += st.acceptedSamples
		rep.AcceptedRequests += st.acceptedRequests
		rep.DroppedSamples += st.droppedSamples
		rep.DroppedRequests += st.droppedRequests
		rep.Requests += st.requests
		rep.Retries += st.retries
		rep.Errors += st.errors
		rep.WrittenMismatches += st.writtenMismatches
		for code, n := range st.byStatus {
			rep.RequestsByStatus[strconv.Itoa(code)] += n
		}
		if st.errors > 0 {
			rep.RequestsByStatus["error"] += st.errors
		}
		lat.merge(&st.latency)
		for _, m := range st.errMsgs {
			if !seen[m] && len(rep.ErrorMessages) < 5 {
				seen[m] = true
				rep.ErrorMessages = append(rep.ErrorMessages, m)
			}
		}
		if !st.caughtUp {
			rep.CaughtUp = false
		}
		rep.CaughtUpAfter = max(rep.CaughtUpAfter, st.caughtUpAfter)
		rep.BackfillSamples += st.caughtUpSamples
		if st.generated {
			minStep, maxStep = min(minStep, st.minStep), max(maxStep, st.maxStep)
		}
	}
	if !rep.CaughtUp {
		rep.CaughtUpAfter, rep.BackfillSamples = 0, 0
	}
	if maxStep >= minStep {
		rep.FirstTimestamp = time.UnixMilli(minStep * r.intervalMs)
		rep.LastTimestamp = time.UnixMilli(maxStep * r.intervalMs)
	}
	rep.Latency = lat.summary()
	if elapsed > 0 {
		rep.AcceptedSamplesPerSecond = float64(rep.AcceptedSamples) / elapsed.Seconds()
	}
	sort.Strings(rep.ErrorMessages)
	return rep
}

// series is one series as its worker sees it; only that worker touches it
// until Run's workers have all returned.
type series struct {
	id     uint32
	tmpl   uint16
	first  int64 // the step of its first sample
	params valueParams
	state  valueState
	// The encoded constant part: labels (1.0) or worker-wide symbol ids of
	// the labels, help text and the metric type (2.0).
	v1Labels []byte
	v2Refs   []uint32
	v2Help   uint32
	v2Type   metricType
	acked    stepRanges // steps answered 2xx, staleness markers excepted
}

// slot is one instance position: which instance it holds and the series of
// that instance this worker owns.
type slot struct {
	inst   uint32
	init   bool
	series []*series
}

type workerStats struct {
	requests, retries, errors         int64
	byStatus                          map[int]int64
	acceptedSamples, acceptedRequests int64
	droppedSamples, droppedRequests   int64
	writtenMismatches                 int64
	latency                           latencyHistogram
	errMsgs                           []string
	caughtUp                          bool
	caughtUpAfter                     time.Duration
	caughtUpSamples                   int64 // accepted when caught up
	generated                         bool
	minStep, maxStep                  int64
}

// worker generates, encodes and sends the series it owns, one request at a
// time, so a series' samples reach the server in timestamp order.
type worker struct {
	id      int
	r       *runner
	slots   []slot
	retired []*series // churned out; kept for verification
	release []*series // retired, encoded labels to free after the next flush
	batch   []sample
	raw     []byte // uncompressed request, reused
	snap    []byte // compressed request, reused
	syms    *symbolTable
	v2      *v2Encoder
	lb      labels.ScratchBuilder
	stats   workerStats
	url     string // where this worker sends (its workspace's)
}

func newWorker(r *runner, id int) *worker {
	w := &worker{
		id: id, r: r, url: r.cfg.workerURL(id),
		slots: make([]slot, r.wl.numSlots),
		batch: make([]sample, 0, r.cfg.BatchSize),
		lb:    labels.NewScratchBuilder(16),
		stats: workerStats{byStatus: map[int]int64{}},
	}
	if r.cfg.Protocol == ProtocolV2 {
		w.syms = newSymbolTable()
		w.v2 = &v2Encoder{syms: w.syms}
	}
	return w
}

func (w *worker) run() {
	r := w.r
	defer r.gate.leave(w.id)
	for k := r.firstStep; r.genCtx.Err() == nil; k++ {
		if t := k * r.intervalMs; r.now().UnixMilli() < t {
			// Caught up with the clock: send what is pending, then wait
			// for step k's scrape time.
			w.flush()
			if !w.stats.caughtUp {
				w.stats.caughtUp, w.stats.caughtUpAfter = true, r.now().Sub(r.start)
				w.stats.caughtUpSamples = w.stats.acceptedSamples
			}
			if r.cfg.StopAfterBackfill {
				break
			}
			if !sleepUntil(r.genCtx, r.now, t) {
				break
			}
		}
		if !r.gate.wait(r.genCtx, w.id, k) {
			break
		}
		w.step(k)
	}
}

// step generates step k of this worker's series, sending full batches.
func (w *worker) step(k int64) {
	wl := w.r.wl
	for i := range w.slots {
		sl := &w.slots[i]
		if id := wl.instanceAt(i, k); !sl.init || id != sl.inst {
			if sl.init {
				// The instance is gone: Prometheus marks its series stale.
				for _, s := range sl.series {
					w.add(sample{s: s, step: k, v: staleNaN, stale: true})
				}
				w.retired = append(w.retired, sl.series...)
				w.release = append(w.release, sl.series...)
			}
			sl.init, sl.inst = true, id
			sl.series = w.newSeries(sl.series[:0], id, wl.seriesPerSlot(i), k)
		}
		for _, s := range sl.series {
			w.add(sample{s: s, step: k, v: s.params.next(&s.state, k, w.r.intervalMs)})
		}
	}
	if !w.stats.generated {
		w.stats.generated, w.stats.minStep = true, k
	}
	w.stats.maxStep = k
}

var staleNaN = math.Float64frombits(value.StaleNaN)

// newSeries appends the series of instance id (its first n templates) that
// this worker owns, starting at step k.
func (w *worker) newSeries(dst []*series, id uint32, n int, k int64) []*series {
	wl := w.r.wl
	for t := range n {
		if wl.owner(id, t, w.r.cfg.Concurrency) != w.id {
			continue
		}
		ls := wl.seriesLabels(&w.lb, id, t)
		s := &series{id: id, tmpl: uint16(t), first: k, params: wl.params(id, t)}
		if w.v2 == nil {
			s.v1Labels = appendV1Labels(make([]byte, 0, 256), ls)
		} else {
			s.v2Refs = make([]uint32, 0, 2*ls.Len())
			ls.Range(func(l labels.Label) {
				s.v2Refs = append(s.v2Refs, w.syms.intern(l.Name), w.syms.intern(l.Value))
			})
			tmpl := &wl.templates[t]
			s.v2Help, s.v2Type = w.syms.intern(tmpl.help), tmpl.typ
		}
		dst = append(dst, s)
	}
	return dst
}

func (w *worker) add(s sample) {
	w.batch = append(w.batch, s)
	if len(w.batch) >= w.r.cfg.BatchSize {
		w.flush()
	}
}

// flush sends the batch, records the outcome and empties the batch. After
// Duration nothing new is sent: the batch is discarded unsent.
func (w *worker) flush() {
	if len(w.batch) == 0 {
		return
	}
	defer func() {
		w.batch = w.batch[:0]
		// The staleness markers of these series were in this batch: their
		// labels are not needed any more (verification rebuilds them).
		for i, s := range w.release {
			s.v1Labels, s.v2Refs = nil, nil
			w.release[i] = nil
		}
		w.release = w.release[:0]
	}()
	r := w.r
	if r.genCtx.Err() != nil {
		return
	}
	if w.v2 == nil {
		w.raw = encodeV1(w.raw[:0], w.batch, r.intervalMs)
	} else {
		w.raw = w.v2.encode(w.raw[:0], w.batch, r.intervalMs)
	}
	w.snap = compress(w.snap, w.raw)
	n := int64(len(w.batch))
	if !w.send(w.snap, n) {
		w.stats.droppedSamples += n
		w.stats.droppedRequests++
		r.dropped.Add(n)
		return
	}
	w.stats.acceptedSamples += n
	w.stats.acceptedRequests++
	r.accepted.Add(n)
	for i := range w.batch {
		if p := &w.batch[i]; !p.stale {
			p.s.acked.add(p.step)
		}
	}
}

// send posts body until it is accepted (true), refused for good, or out of
// retries or time (false; the end of the drain timeout). 429, 5xx and no answer are retried with doubling
// backoff, like Prometheus' queue manager; other statuses are not.
func (w *worker) send(body []byte, n int64) bool {
	r := w.r
	hash := ""
	if r.cfg.SigV4 {
		hash = hashHex(body) // once per request, not per attempt
	}
	backoff := r.cfg.MinBackoff
	for try := 0; ; try++ {
		a := r.w.post(r.sendCtx, w.url, body, hash)
		w.record(a)
		if a.status/100 == 2 {
			if a.written >= 0 && a.written != n {
				w.stats.writtenMismatches++
			}
			return true
		}
		// A request in flight when the run's duration ends keeps its retries until the
		// drain timeout (sendCtx): its samples were generated and should land.
		if !a.retryable() || try >= r.cfg.MaxRetries || r.sendCtx.Err() != nil {
			return false
		}
		wait := backoff
		if a.retryAfter > 0 {
			wait = min(a.retryAfter, r.cfg.MaxBackoff)
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
		w.stats.retries++
		if !sleepFor(r.sendCtx, wait) {
			return false
		}
	}
}

func (w *worker) record(a attempt) {
	st := &w.stats
	st.requests++
	var msg string
	if a.status == 0 {
		st.errors++
		msg = "error: " + a.err.Error()
	} else {
		st.byStatus[a.status]++
		st.latency.add(a.latency)
		if a.status/100 != 2 {
			msg = strconv.Itoa(a.status) + ": " + a.body
		}
	}
	if msg != "" && len(st.errMsgs) < 5 {
		for _, m := range st.errMsgs {
			if m == msg {
				return
			}
		}
		st.errMsgs = append(st.errMsgs, msg)
	}
}

func (w *worker) seriesCount() int {
	n := len(w.retired)
	for i := range w.slots {
		n += len(w.slots[i].series)
	}
	return n
}

// appendSeries appends every series this worker sent; call after run.
func (w *worker) appendSeries(dst []*series) []*series {
	dst = append(dst, w.retired...)
	for i := range w.slots {
		dst = append(dst, w.slots[i].series...)
	}
	return dst
}

// stepGate keeps workers within maxSkew steps of the slowest, so that during
// backfill no worker races hours ahead of the others: a TSDB rejects samples
// too far behind its newest one.
type stepGate struct {
	mu   sync.Mutex
	cond *sync.Cond
	// progress is the step each worker generates next, MaxInt64 once it
	// has stopped. Guarded by mu.
	progress []int64
	maxSkew  int64
}

func newStepGate(workers int, maxSkew, firstStep int64) *stepGate {
	g := &stepGate{progress: make([]int64, workers), maxSkew: maxSkew}
	for i := range g.progress {
		g.progress[i] = firstStep
	}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// wait records that worker w is about to generate step k and blocks while k
// is more than maxSkew ahead of the slowest worker; false when ctx ended.
func (g *stepGate) wait(ctx context.Context, w int, k int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.progress[w] = k
	g.cond.Broadcast()
	for k-g.maxSkew > g.minLocked() {
		if ctx.Err() != nil {
			return false
		}
		g.cond.Wait()
	}
	return ctx.Err() == nil
}

func (g *stepGate) minLocked() int64 {
	m := int64(math.MaxInt64)
	for _, p := range g.progress {
		m = min(m, p)
	}
	return m
}

// leave marks w stopped so it holds nobody back.
func (g *stepGate) leave(w int) {
	g.mu.Lock()
	g.progress[w] = math.MaxInt64
	g.cond.Broadcast()
	g.mu.Unlock()
}

// wake unblocks waiters so they see their context ended.
func (g *stepGate) wake() {
	g.mu.Lock()
	g.cond.Broadcast()
	g.mu.Unlock()
}

func sleepFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleepUntil waits until now() reaches unix millisecond t.
func sleepUntil(ctx context.Context, now func() time.Time, t int64) bool {
	for {
		d := time.Duration(t-now().UnixMilli()) * time.Millisecond
		if d <= 0 {
			return ctx.Err() == nil
		}
		if !sleepFor(ctx, d) {
			return false
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
