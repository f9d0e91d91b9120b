package ingester

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/usage"
)

// pushState is the per-request scratch space, pooled so a steady stream of requests
// allocates nothing for it.
type pushState struct {
	key     []byte
	keys    []int // end offset of each series' key in key
	entries []*seriesEntry
	refs    []storage.SeriesRef
	stale   []bool // entry's label-set match is from an older configuration
	builder labels.ScratchBuilder
	newRefs []newSeries
	// reserved holds the reservations of the series admitted by this request, given
	// back once it is committed (or failed).
	reserved []reservation
	exs      []exemplar.Exemplar
	lbl      []remotewrite.Label
}

type newSeries struct {
	idx    int
	ref    storage.SeriesRef
	metric string
}

var pushStatePool = sync.Pool{New: func() any { return &pushState{builder: labels.NewScratchBuilder(16)} }}

// Push appends req to workspace's TSDB in one transaction. Series refused by a limit and
// samples the TSDB refuses are counted and reported in the result; the rest is stored.
// The returned error is a server-side failure: nothing was stored. req must already be
// validated (label names, sample age) and HA-deduplicated by the distributor; Push keeps
// no reference to it.
func (i *Ingester) Push(ctx context.Context, workspace string, req *remotewrite.Request, opts ingest.Options) (ingest.Result, error) {
	var res ingest.Result
	u, err := i.get(ctx, workspace)
	if err != nil {
		return res, err
	}
	defer u.release()
	now := i.now()
	u.touch(now)
	nowSec := now.Unix()
	lim := i.limits.For(workspace)
	maxSeries, maxPerMetric := lim.MaxActiveSeries, lim.MaxActiveSeriesPerMetric
	i.limitShares(&maxSeries, &maxPerMetric)

	st := pushStatePool.Get().(*pushState)
	defer pushStatePool.Put(st)
	n := len(req.Series)
	st.key = st.key[:0]
	st.keys = st.keys[:0]
	st.entries = slices0(st.entries, n)
	st.refs = slices0(st.refs, n)
	st.stale = slices0(st.stale, n)
	st.newRefs = st.newRefs[:0]
	st.reserved = st.reserved[:0]
	// Reservations are given back with the commit below; should anything in between
	// panic (the HTTP server recovers it), here, or they would lower the limits until the
	// TSDB closes.
	defer func() {
		if len(st.reserved) > 0 {
			u.active.mu.Lock()
			for _, r := range st.reserved {
				u.active.release(r)
			}
			u.active.mu.Unlock()
			st.reserved = st.reserved[:0]
		}
	}()

	// Metadata the distributor validated; beyond the workspace's families limit it is
	// dropped and counted, silently (AMP's behaviour): it never costs a sample.
	refusedMeta := 0
	for k := range req.Metadata { // v1: request-level, by metric family
		md := &req.Metadata[k]
		if !u.meta.add(md.MetricFamilyName, md, lim.MaxMetricsWithMetadata, nowSec) {
			refusedMeta++
		}
	}

	// One read lock for the whole request: look up every series' cached ref, by
	// position when the request repeats a remembered layout.
	a := u.active
	a.mu.RLock()
	gen := a.gen
	for idx := range req.Series {
		st.key = req.Series[idx].AppendKey(st.key)
		st.keys = append(st.keys, len(st.key))
	}
	lk := layoutKeyOf(st.key, st.keys)
	lay := a.layouts.get(lk, nowSec)
	if lay != nil && len(lay.entries) != n {
		lay = nil
	}
	found, changed := 0, lay == nil
	start := 0
	for idx := range req.Series {
		key := st.key[start:st.keys[idx]]
		start = st.keys[idx]
		var e *seriesEntry
		if lay != nil {
			if c := lay.entries[idx]; c.ref != 0 && c.key == string(key) {
				e = c
			}
		}
		if e == nil {
			if m, ok := a.byKey[string(key)]; ok && m.ref != 0 {
				e = m
			}
		}
		changed = changed || (lay != nil && e != lay.entries[idx])
		if e != nil {
			found++
			st.entries[idx] = e
			st.refs[idx] = e.ref
			st.stale[idx] = e.gen != gen
		}
	}
	if found == n && changed {
		a.layouts.remember(lk, st.entries[:n], len(a.byRef), nowSec)
	}
	a.mu.RUnlock()

	app := u.db.AppenderV2(ctx)
	exApp, _ := app.(storage.ExemplarAppenderV2)
	anyStale := false
	for idx := range req.Series {
		s := &req.Series[idx]
		ref := st.refs[idx]
		var lbls labels.Labels
		var metric string
		if ref == 0 {
			lbls, err = buildLabels(s, &st.builder, opts.DropLabel)
			if err != nil {
				// The distributor validates labels; a duplicate here is a client error.
				i.refuse(&res, workspace, usage.DuplicateLabelNames, s, err)
				continue
			}
			metric = lbls.Get(labels.MetricName)
			st.lbl = s.AppendLabels(st.lbl[:0])
			r, reserved := i.admit(u, lbls, metric, st.lbl, maxSeries, maxPerMetric)
			if r != nil {
				i.limit(&res, workspace, s, r)
				continue
			}
			if reserved != nil {
				st.reserved = append(st.reserved, *reserved)
			}
			if md := s.Metadata(); md.Type != remotewrite.MetricTypeUnknown || len(md.Help) > 0 || len(md.Unit) > 0 {
				// v2 metadata travels with every series; read it for new series only.
				if !u.meta.add([]byte(metric), &md, lim.MaxMetricsWithMetadata, nowSec) {
					refusedMeta++
				}
			}
		}
		newRef, ok := i.appendSeries(app, exApp, &res, workspace, s, ref, lbls, st)
		if !ok {
			// The cached ref is gone (the head dropped the series): take the slow path.
			lbls, err = buildLabels(s, &st.builder, opts.DropLabel)
			if err != nil {
				i.refuse(&res, workspace, usage.DuplicateLabelNames, s, err)
				continue
			}
			metric = lbls.Get(labels.MetricName)
			st.entries[idx] = nil
			newRef, _ = i.appendSeries(app, exApp, &res, workspace, s, 0, lbls, st)
		}
		if st.entries[idx] == nil && newRef != 0 {
			st.newRefs = append(st.newRefs, newSeries{idx: idx, ref: newRef, metric: metric})
		} else if st.entries[idx] != nil {
			st.entries[idx].seen(nowSec)
			anyStale = anyStale || st.stale[idx]
		}
	}
	if err := app.Commit(); err != nil {
		return ingest.Result{}, fmt.Errorf("committing to the TSDB of workspace %s: %w", workspace, err) // the deferred release gives the reservations back
	}

	if len(st.newRefs) > 0 || len(st.reserved) > 0 || anyStale {
		a.mu.Lock()
		// In one critical section, so the series move from reserved to active unseen.
		for _, r := range st.reserved {
			a.release(r)
		}
		st.reserved = st.reserved[:0]
		for _, ns := range st.newRefs {
			start := 0
			if ns.idx > 0 {
				start = st.keys[ns.idx-1]
			}
			st.lbl = req.Series[ns.idx].AppendLabels(st.lbl[:0])
			a.add(st.key[start:st.keys[ns.idx]], ns.ref, ns.metric, st.lbl, nowSec)
		}
		if anyStale {
			for idx, e := range st.entries {
				if e != nil && st.stale[idx] && e.ref != 0 {
					st.lbl = req.Series[idx].AppendLabels(st.lbl[:0])
					a.refreshSets(e, st.lbl)
				}
			}
		}
		a.mu.Unlock()
	}
	i.usage.Ingested(workspace, res.Samples, res.Histograms, res.Exemplars)
	i.usage.DiscardMetadata(workspace, usage.PerUserMetadataLimit, refusedMeta)
	return res, nil
}

func slices0[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// admit checks the active-series limits for a series not in the cache. Admitted, the
// series holds a reservation (nil for a series already active) until the request
// commits. A request that holds one series twice reserves it twice: at the very edge of
// a limit it may refuse a series it could have taken, never take one too many.
func (i *Ingester) admit(u *userDB, lbls labels.Labels, metric string, raw []remotewrite.Label, maxTotal, maxPerMetric int) (*refusal, *reservation) {
	a := u.active
	a.mu.Lock()
	var buf [4]uint16
	sets := a.matchSets(buf[:0], raw)
	r := a.admit(metric, maxTotal, maxPerMetric, sets)
	if r == nil {
		if maxTotal <= 0 && maxPerMetric <= 0 && !a.setLimited(sets) {
			a.mu.Unlock()
			return nil, nil // no limit to hold a share of
		}
		res := a.reserve(metric, sets)
		a.mu.Unlock()
		return nil, &res
	}
	a.mu.Unlock()
	// At a limit, a series the TSDB already holds as active (sent under another
	// encoding, or by the other replica of an HA pair) is not new.
	ha := u.db.Head().Appender(context.Background())
	defer func() { _ = ha.Rollback() }()
	if gr, ok := ha.(storage.GetRef); ok {
		if ref, _ := gr.GetRef(lbls, lbls.Hash()); ref != 0 {
			a.mu.RLock()
			_, active := a.byRef[ref]
			a.mu.RUnlock()
			if active {
				return nil, nil
			}
		}
	}
	return r, nil
}

// appendSeries appends one series' samples, histograms and exemplars. ok is false when
// ref was a cached reference the TSDB no longer knows, before anything was appended.
func (i *Ingester) appendSeries(app storage.AppenderV2, exApp storage.ExemplarAppenderV2, res *ingest.Result, workspace string, s *remotewrite.Series, ref storage.SeriesRef, lbls labels.Labels, st *pushState) (storage.SeriesRef, bool) {
	cached := ref != 0
	var lastGood storage.SeriesRef
	for k, smp := range s.Samples {
		r, err := app.Append(ref, lbls, smp.StartTimestamp, smp.Timestamp, smp.Value, nil, nil, storage.AOptions{})
		if err != nil {
			if cached && k == 0 && errors.Is(err, tsdb.ErrInvalidSample) {
				return 0, false
			}
			i.sampleError(res, workspace, err, 1, s)
			continue
		}
		ref, lastGood = r, r
		res.Samples++
	}
	for k := range s.Histograms {
		h := &s.Histograms[k]
		var err error
		var r storage.SeriesRef
		if h.IsFloat {
			r, err = app.Append(ref, lbls, 0, h.Timestamp, 0, nil, h.ToFloatHistogram(), storage.AOptions{})
		} else {
			r, err = app.Append(ref, lbls, 0, h.Timestamp, 0, h.ToIntHistogram(), nil, storage.AOptions{})
		}
		if err != nil {
			if cached && k == 0 && len(s.Samples) == 0 && errors.Is(err, tsdb.ErrInvalidSample) {
				return 0, false
			}
			i.sampleError(res, workspace, err, 1, s)
			continue
		}
		ref, lastGood = r, r
		res.Histograms++
	}
	if len(s.Exemplars) > 0 && lastGood != 0 && exApp != nil {
		st.exs = st.exs[:0]
		for k := range s.Exemplars {
			ex, err := s.Exemplars[k].ToExemplar(&st.builder)
			if err == nil {
				st.exs = append(st.exs, ex)
			}
		}
		slicesSortExemplars(st.exs)
		if _, err := exApp.AppendExemplars(lastGood, lbls, st.exs); err != nil {
			var pe *storage.AppendPartialError
			if errors.As(err, &pe) {
				res.Exemplars += len(st.exs) - len(pe.ExemplarErrors)
			}
		} else {
			res.Exemplars += len(st.exs)
		}
	}
	return lastGood, true
}

func slicesSortExemplars(exs []exemplar.Exemplar) {
	for a := 1; a < len(exs); a++ {
		for b := a; b > 0 && exs[b].Ts < exs[b-1].Ts; b-- {
			exs[b], exs[b-1] = exs[b-1], exs[b]
		}
	}
}

// sampleError records in r, and classifies, a sample the TSDB refused.
func (i *Ingester) sampleError(r *ingest.Result, workspace string, err error, n int, s *remotewrite.Series) {
	var reason = usage.SampleOutOfOrder
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		reason = usage.SampleOutOfOrder
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		reason = usage.SampleTooOld
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		reason = usage.NewValueForTimestamp
	default:
		reason = usage.InvalidNativeHistogram
	}
	i.usage.Discard(workspace, reason, n)
	if r.Invalid == nil {
		r.Invalid = fmt.Errorf("%s: %w for series %s", reason, err, s.String())
	}
}

func (i *Ingester) refuse(r *ingest.Result, workspace string, reason usage.Reason, s *remotewrite.Series, err error) {
	i.usage.Discard(workspace, reason, len(s.Samples)+len(s.Histograms))
	if r.Invalid == nil {
		r.Invalid = fmt.Errorf("%s: %w", reason, err)
	}
}

func (i *Ingester) limit(r *ingest.Result, workspace string, s *remotewrite.Series, ref *refusal) {
	reason := usage.PerUserSeriesLimit
	switch ref.quota {
	case usage.QuotaSeriesMetric:
		reason = usage.PerMetricSeriesLimit
	case usage.QuotaSeriesLabels:
		reason = usage.PerLabelSetSeriesLimit
	}
	i.usage.Discard(workspace, reason, len(s.Samples)+len(s.Histograms))
	if r.Limited == nil {
		r.Limited = fmt.Errorf("%s (series %s)", ref.msg, s.String())
		r.LimitedQuota = ref.quota
	}
}

// buildLabels returns the series' sorted labels without drop (when not empty).
func buildLabels(s *remotewrite.Series, b *labels.ScratchBuilder, drop string) (labels.Labels, error) {
	lbls, err := s.ToLabels(b)
	if err != nil || drop == "" || !lbls.Has(drop) {
		return lbls, err
	}
	return labels.NewBuilder(lbls).Del(drop).Labels(), nil
}
