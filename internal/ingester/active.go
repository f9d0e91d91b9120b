package ingester

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/usage"
)

// seriesEntry is one active series. Several raw label encodings (keys) may point at one
// entry — for example the same series sent by v1 and v2 senders, or by two HA replicas
// whose replica label is dropped before storage — so counts go by TSDB ref, not by key.
type seriesEntry struct {
	ref      storage.SeriesRef
	key      string       // the key it was created under, for checking request layouts
	lastSeen atomic.Int64 // unix seconds of the last accepted sample
	metric   string       // interned metric name
	// sets are the indices of the label sets the series counts against, valid while
	// gen equals activeSeries.gen.
	sets []uint16
	gen  uint32
}

// seen records a sample accepted at now (unix seconds). lastSeen only rises, which
// activeSeries.oldest relies on; a racing push may leave it a second behind.
func (e *seriesEntry) seen(now int64) {
	if e.lastSeen.Load() < now {
		e.lastSeen.Store(now)
	}
}

type labelSetLimit struct {
	set       map[string]string
	name      string // {a="b"} form, for messages
	maxSeries int64  // 0: counted, not limited (AMP's behaviour)
	isDefault bool   // the empty label set: series that match no other set
}

// activeSeries counts a workspace's active series and caches raw label keys to TSDB refs.
//
// The limits are exact: a new series is admitted by taking a reservation (counted with the
// active series at once, under the lock), turned into an entry or given back after the
// TSDB commit. So neither the series of one request nor those of concurrent requests can
// take a workspace past a limit, as Cortex enforces at series creation.
type activeSeries struct {
	mu        sync.RWMutex // guards everything below
	byKey     map[string]*seriesEntry
	byRef     map[storage.SeriesRef]*seriesEntry
	perMetric map[string]int
	names     map[string]string // interned metric names
	sets      []labelSetLimit
	perSet    []int64
	gen       uint32
	// oldest is at most every entry's lastSeen (they only rise): a purge whose cutoff
	// is not past it has nothing to forget and does not walk the entries. The walk, of
	// every active series under the write lock, then happens about once per window
	// instead of at every housekeeping pass.
	oldest int64

	// Reservations of series admitted and not yet committed, counted against the
	// limits like active series.
	pending          int
	pendingPerMetric map[string]int
	pendingPerSet    []int64 // by index of sets, for reservations of generation gen

	layouts *layouts // has its own lock
}

// reservation is an admitted series' share of the limits until its commit.
type reservation struct {
	metric string
	sets   []uint16
	gen    uint32
}

func newActiveSeries(sets []meta.LimitsPerLabelSet) *activeSeries {
	a := &activeSeries{
		byKey:            map[string]*seriesEntry{},
		byRef:            map[storage.SeriesRef]*seriesEntry{},
		perMetric:        map[string]int{},
		names:            map[string]string{},
		pendingPerMetric: map[string]int{},
		layouts:          newLayouts(),
		oldest:           math.MaxInt64,
	}
	a.setLabelSets(sets)
	return a
}

// setLabelSets installs new label-set limits. Series are matched to the new sets as their
// next sample arrives, so per-set counts rebuild within one scrape interval.
func (a *activeSeries) setLabelSets(sets []meta.LimitsPerLabelSet) {
	compiled := make([]labelSetLimit, 0, len(sets))
	for _, s := range sets {
		compiled = append(compiled, labelSetLimit{set: s.LabelSet, name: labelSetName(s.LabelSet), maxSeries: s.MaxSeries, isDefault: len(s.LabelSet) == 0})
	}
	a.mu.Lock()
	a.sets = compiled
	a.perSet = make([]int64, len(compiled))
	// Reservations of the old sets no longer count against them (release skips them).
	a.pendingPerSet = make([]int64, len(compiled))
	a.gen++
	a.mu.Unlock()
}

func labelSetName(set map[string]string) string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%q", n, set[n])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// matchSets returns the indices of the label sets lbls falls in, appended to dst.
// Call with a.mu held.
func (a *activeSeries) matchSets(dst []uint16, lbls []remotewrite.Label) []uint16 {
	matched := false
	def := -1
	for i, s := range a.sets {
		if s.isDefault {
			def = i
			continue
		}
		if matchesAll(s.set, lbls) {
			dst = append(dst, uint16(i))
			matched = true
		}
	}
	if !matched && def >= 0 {
		dst = append(dst, uint16(def))
	}
	return dst
}

func matchesAll(set map[string]string, lbls []remotewrite.Label) bool {
	for name, value := range set {
		found := false
		for _, l := range lbls {
			if string(l.Name) == name {
				found = string(l.Value) == value
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// hasMetric reports whether an active series has the metric name.
func (a *activeSeries) hasMetric(name string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.perMetric[name] > 0
}

func (a *activeSeries) total() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.byRef)
}

// refusal says which limit a new series would exceed; empty when none.
type refusal struct {
	quota string
	msg   string
}

// admit decides whether a series not in the cache may be created, counting the active
// series and the reservations. Call with a.mu held for reading at least.
func (a *activeSeries) admit(metric string, maxTotal, maxPerMetric int, sets []uint16) *refusal {
	if maxTotal > 0 && len(a.byRef)+a.pending >= maxTotal {
		return &refusal{quota: usage.QuotaActiveSeries, msg: fmt.Sprintf("per-workspace series limit of %d exceeded; raise max_active_series for this workspace in the runtime limits file, or send fewer series", maxTotal)}
	}
	if maxPerMetric > 0 && a.perMetric[metric]+a.pendingPerMetric[metric] >= maxPerMetric {
		return &refusal{quota: usage.QuotaSeriesMetric, msg: fmt.Sprintf("per-metric series limit of %d exceeded for metric %s; raise max_active_series_per_metric for this workspace in the runtime limits file, or reduce the metric's cardinality", maxPerMetric, metric)}
	}
	for _, i := range sets {
		s := a.sets[i]
		if s.maxSeries > 0 && a.perSet[i]+a.pendingPerSet[i] >= s.maxSeries {
			return &refusal{quota: usage.QuotaSeriesLabels, msg: fmt.Sprintf("per-labelset series limit of %d exceeded for label set %s; raise it with UpdateWorkspaceConfiguration (limitsPerLabelSet)", s.maxSeries, s.name)}
		}
	}
	return nil
}

// setLimited says whether one of sets has a series limit. Call with a.mu held.
func (a *activeSeries) setLimited(sets []uint16) bool {
	for _, i := range sets {
		if a.sets[i].maxSeries > 0 {
			return true
		}
	}
	return false
}

// reserve counts an admitted series against the limits until release. Call with a.mu
// held for writing.
func (a *activeSeries) reserve(metric string, sets []uint16) reservation {
	r := reservation{metric: metric, gen: a.gen}
	if len(sets) > 0 {
		r.sets = slices.Clone(sets)
	}
	a.pending++
	a.pendingPerMetric[metric]++
	for _, i := range r.sets {
		a.pendingPerSet[i]++
	}
	return r
}

// release gives a reservation back (after the commit, with add for a series created).
// Call with a.mu held for writing.
func (a *activeSeries) release(r reservation) {
	a.pending--
	if a.pendingPerMetric[r.metric]--; a.pendingPerMetric[r.metric] <= 0 {
		delete(a.pendingPerMetric, r.metric)
	}
	if r.gen != a.gen {
		return // counted against sets since replaced
	}
	for _, i := range r.sets {
		a.pendingPerSet[i]--
	}
}

// add records key → ref after a successful append. Call with a.mu held for writing.
func (a *activeSeries) add(key []byte, ref storage.SeriesRef, metric string, lbls []remotewrite.Label, now int64) {
	if e, ok := a.byRef[ref]; ok {
		e.seen(now)
		a.byKey[string(key)] = e
		return
	}
	a.oldest = min(a.oldest, now)
	name, ok := a.names[metric]
	if !ok {
		name = strings.Clone(metric)
		a.names[name] = name
	}
	k := string(key)
	e := &seriesEntry{ref: ref, key: k, metric: name, gen: a.gen}
	e.sets = a.matchSets(nil, lbls)
	e.lastSeen.Store(now)
	a.byKey[k] = e
	a.byRef[ref] = e
	a.perMetric[name]++
	for _, i := range e.sets {
		a.perSet[i]++
	}
}

// refreshSets re-matches an entry after the label sets changed. Call with a.mu held for writing.
func (a *activeSeries) refreshSets(e *seriesEntry, lbls []remotewrite.Label) {
	if e.gen == a.gen {
		return
	}
	e.sets = a.matchSets(e.sets[:0], lbls)
	e.gen = a.gen
	for _, i := range e.sets {
		a.perSet[i]++
	}
}

// purge forgets series whose last sample arrived before cutoff.
func (a *activeSeries) purge(cutoff time.Time) {
	c := cutoff.Unix()
	a.layouts.purge(c)
	a.mu.Lock()
	defer a.mu.Unlock()
	if c <= a.oldest {
		return
	}
	removed := false
	oldest := int64(math.MaxInt64)
	for ref, e := range a.byRef {
		if t := e.lastSeen.Load(); t >= c {
			oldest = min(oldest, t)
			continue
		}
		delete(a.byRef, ref)
		removed = true
		if a.perMetric[e.metric]--; a.perMetric[e.metric] <= 0 {
			delete(a.perMetric, e.metric)
			delete(a.names, e.metric)
		}
		if e.gen == a.gen {
			for _, i := range e.sets {
				a.perSet[i]--
			}
		}
		e.ref = 0 // marks the entry dead for the keys still pointing at it
	}
	a.oldest = oldest
	if !removed {
		return
	}
	for k, e := range a.byKey {
		if e.ref == 0 {
			delete(a.byKey, k)
		}
	}
}
