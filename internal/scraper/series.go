package scraper

import (
	"context"
	"maps"
	"math"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/vendedlogs"
)

// A target's series table keeps each series' labels encoded for remote write, under the
// ref the appender hands the scrape loop. The loop caches the ref with the series and
// passes it back on every scrape, so a known series costs a copy of its encoded labels
// instead of encoding them again. The refs are also what the loop tracks staleness by:
// one per series and stable, they let it write a stale marker for each series that
// disappears, as Prometheus does.
//
// A ref is the slot's index + 1 in its low 32 bits and the slot's generation in its high
// 32: a slot freed and reused gets a new generation, so a ref the loop kept from before
// is not mistaken for the new series; the appender encodes it again and hands out a new
// ref (the loop takes it in place of the old).

const (
	// sweepEvery is how many scrapes apart a table frees the slots of series its target
	// no longer exposes: those not used in the last sweepEvery scrapes.
	sweepEvery = 8
)

type seriesTable struct {
	mu     sync.Mutex
	slots  []seriesSlot
	free   []uint32
	scrape uint32 // scrapes (commits and rollbacks) so far
	// checks are the write path's label checks the slots' verdicts were given under
	// (LabelChecker); when the checks in force change, every series is checked again.
	checks string
}

type seriesSlot struct {
	labels  []byte // remotewrite.AppendV1Labels; nil while free
	gen     uint32
	used    uint32 // the scrape that last used it
	verdict int8   // under the table's checks: 0 not checked yet, 1 passed, -1 failed
}

// labelCheck checks series' labels as the write path of workspace would, under checks.
type labelCheck struct {
	c         LabelChecker
	workspace string
	checks    string
}

// labelsFor returns the encoded labels of the series ref names in this table, or encodes
// ls into a slot when ref names none (0, freed, or another generation), with its new ref.
// The bytes stay valid until the slot is freed, which the caller's scrape prevents by
// using it. checked says whether the series passed chk's checks (always false without
// chk); a slot is checked once for as long as they stay in force.
func (t *seriesTable) labelsFor(ref storage.SeriesRef, ls labels.Labels, chk *labelCheck) (enc []byte, _ storage.SeriesRef, checked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if chk != nil && chk.checks != t.checks {
		t.checks = chk.checks
		for i := range t.slots {
			t.slots[i].verdict = 0
		}
	}
	if idx, gen := uint32(ref)-1, uint32(ref>>32); ref != 0 && int(idx) < len(t.slots) && t.slots[idx].gen == gen && t.slots[idx].labels != nil {
		s := &t.slots[idx]
		s.used = t.scrape
		return s.labels, ref, t.verdict(s, chk)
	}
	enc = remotewrite.AppendV1Labels(nil, ls)
	var idx uint32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.slots = append(t.slots, seriesSlot{})
		idx = uint32(len(t.slots) - 1)
	}
	s := &t.slots[idx]
	s.gen++
	s.labels, s.used, s.verdict = enc, t.scrape, 0
	return enc, storage.SeriesRef(uint64(s.gen)<<32 | uint64(idx+1)), t.verdict(s, chk)
}

// verdict is whether slot s passed chk's checks, asking the checker the first time.
func (t *seriesTable) verdict(s *seriesSlot, chk *labelCheck) bool {
	if chk == nil {
		return false
	}
	if s.verdict == 0 {
		checks, ok := chk.c.CheckV1Labels(chk.workspace, s.labels)
		if checks != t.checks {
			return false // the checks changed meanwhile: the write path checks this scrape
		}
		s.verdict = -1
		if ok {
			s.verdict = 1
		}
	}
	return s.verdict == 1
}

// scraped ends a scrape; every sweepEvery scrapes the series not used in as many are
// freed.
func (t *seriesTable) scraped() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scrape++
	if t.scrape%sweepEvery != 0 {
		return
	}
	for i := range t.slots {
		s := &t.slots[i]
		if s.labels != nil && t.scrape-s.used > sweepEvery {
			s.labels = nil
			t.free = append(t.free, uint32(i))
		}
	}
}

// seriesTables gives each target of a scraper its table, for as long as the scrape
// manager keeps the target: the table goes when the target is garbage collected.
type seriesTables struct {
	mu       sync.Mutex
	byTarget map[weak.Pointer[scrape.Target]]*seriesTable
	shared   *seriesTable // appenders whose context names no target
}

func newSeriesTables() *seriesTables {
	return &seriesTables{byTarget: map[weak.Pointer[scrape.Target]]*seriesTable{}, shared: &seriesTable{}}
}

func (s *seriesTables) forTarget(t *scrape.Target) *seriesTable {
	if t == nil {
		return s.shared
	}
	k := weak.Make(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	tab, ok := s.byTarget[k]
	if !ok {
		tab = &seriesTable{}
		s.byTarget[k] = tab
		runtime.AddCleanup(t, s.forget, k)
	}
	return tab
}

func (s *seriesTables) forget(k weak.Pointer[scrape.Target]) {
	s.mu.Lock()
	delete(s.byTarget, k)
	s.mu.Unlock()
}

// all returns every table: the targets' and the shared one.
func (s *seriesTables) all() []*seriesTable {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*seriesTable{s.shared}
	for _, t := range s.byTarget {
		out = append(out, t)
	}
	return out
}

// appendStale appends to req a stale marker at ts for every series the table holds.
func (t *seriesTable) appendStale(req *remotewrite.Request, ts int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.slots {
		if s.labels != nil {
			if err := req.AppendV1Series(s.labels, ts, math.Float64frombits(value.StaleNaN), nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// written returns the encoded labels of every series the collector (and those it
// replaced) wrote and still remembers.
func (a *appendable) written() map[string]struct{} {
	out := maps.Clone(a.inherited)
	if out == nil {
		out = map[string]struct{}{}
	}
	for _, tab := range a.tables.all() {
		tab.mu.Lock()
		for _, s := range tab.slots {
			if s.labels != nil {
				out[string(s.labels)] = struct{}{}
			}
		}
		tab.mu.Unlock()
	}
	return out
}

// staleBatch is how many inherited series' stale markers go in one write.
const staleBatch = 2000

// writeStaleMarkers ends every series the scraper wrote with a stale marker at now, one
// batch per target, once its scrape loops have stopped (they write none themselves when
// the whole scrape manager stops); then the inherited series it did not write itself.
func (a *appendable) writeStaleMarkers(ctx context.Context, now time.Time) {
	ts := now.UnixMilli()
	stale := math.Float64frombits(value.StaleNaN)
	own := map[string]struct{}{}
	for _, tab := range a.tables.all() {
		req := a.m.getRequest()
		if err := tab.appendStale(req, ts); err != nil {
			a.m.logger.Error("encoding the stale markers of a stopped scraper", "scraper", a.scraper, "err", err)
		}
		if len(a.inherited) > 0 {
			tab.mu.Lock()
			for _, s := range tab.slots {
				if s.labels != nil {
					own[string(s.labels)] = struct{}{}
				}
			}
			tab.mu.Unlock()
		}
		a.writeStale(ctx, req)
	}
	req := a.m.getRequest()
	for lbls := range a.inherited {
		if _, ok := own[lbls]; ok {
			continue
		}
		if err := req.AppendV1Series([]byte(lbls), ts, stale, nil, nil); err != nil {
			a.m.logger.Error("encoding the stale markers of a stopped scraper", "scraper", a.scraper, "err", err)
			continue
		}
		if len(req.Series) == staleBatch {
			a.writeStale(ctx, req)
			req = a.m.getRequest()
		}
	}
	a.writeStale(ctx, req)
}

// writeStale writes a batch of stale markers and gives req back to the pool.
func (a *appendable) writeStale(ctx context.Context, req *remotewrite.Request) {
	defer a.m.putRequest(req)
	n := len(req.Series)
	if n == 0 {
		return
	}
	stored, err := a.m.deps.Writer.Write(ctx, a.workspace, req, "")
	refused := a.countWritten(n, stored, err)
	if err != nil {
		a.m.logger.Warn("writing the stale markers of a stopped scraper", "scraper", a.scraper, "workspace", a.workspace, "err", err)
		if a.events != nil {
			a.events.event(ComponentExporter, vendedlogs.LevelError, "writing the stale markers: "+err.Error(), vendedlogs.Field{Key: "samples", Value: refused})
		}
	}
}

// countWritten counts a write of n samples, of which stored were (all when err is nil),
// and returns how many were refused.
func (a *appendable) countWritten(n, stored int, err error) (refused int) {
	if err == nil {
		stored = n
	}
	stored = min(max(stored, 0), n)
	a.m.written.WithLabelValues(a.scraper, "ok").Add(float64(stored))
	a.m.written.WithLabelValues(a.scraper, "refused").Add(float64(n - stored))
	return n - stored
}
