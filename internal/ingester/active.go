package ingester

import (
	"fmt"
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
	lastSeen atomic.Int64 // unix seconds of the last accepted sample
	metric   string       // interned metric name
	// sets are the indices of the label sets the series counts against, valid while
	// gen equals activeSeries.gen.
	sets []uint16
	gen  uint32
}

type labelSetLimit struct {
	set       map[string]string
	name      string // {a="b"} form, for messages
	maxSeries int64  // 0: counted, not limited (AMP's behaviour)
	isDefault bool   // the empty label set: series that match no other set
}

// activeSeries counts a workspace's active series and caches raw label keys to TSDB refs.
type activeSeries struct {
	mu        sync.RWMutex // guards everything below
	byKey     map[string]*seriesEntry
	byRef     map[storage.SeriesRef]*seriesEntry
	perMetric map[string]int
	names     map[string]string // interned metric names
	sets      []labelSetLimit
	perSet    []int64
	gen       uint32
}

func newActiveSeries(sets []meta.LimitsPerLabelSet) *activeSeries {
	a := &activeSeries{
		byKey:     map[string]*seriesEntry{},
		byRef:     map[storage.SeriesRef]*seriesEntry{},
		perMetric: map[string]int{},
		names:     map[string]string{},
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

// admit decides whether a series not in the cache may be created. exists reports
// whether the TSDB already holds it as an active series (then it is never refused).
// Call with a.mu held for reading at least.
func (a *activeSeries) admit(metric string, maxTotal, maxPerMetric int, sets []uint16) *refusal {
	if maxTotal > 0 && len(a.byRef) >= maxTotal {
		return &refusal{quota: usage.QuotaActiveSeries, msg: fmt.Sprintf("per-workspace series limit of %d exceeded; raise max_active_series for this workspace in the runtime limits file, or send fewer series", maxTotal)}
	}
	if maxPerMetric > 0 && a.perMetric[metric] >= maxPerMetric {
		return &refusal{quota: usage.QuotaSeriesMetric, msg: fmt.Sprintf("per-metric series limit of %d exceeded for metric %s; raise max_active_series_per_metric for this workspace in the runtime limits file, or reduce the metric's cardinality", maxPerMetric, metric)}
	}
	for _, i := range sets {
		s := a.sets[i]
		if s.maxSeries > 0 && a.perSet[i] >= s.maxSeries {
			return &refusal{quota: usage.QuotaSeriesLabels, msg: fmt.Sprintf("per-labelset series limit of %d exceeded for label set %s; raise it with UpdateWorkspaceConfiguration (limitsPerLabelSet)", s.maxSeries, s.name)}
		}
	}
	return nil
}

// add records key → ref after a successful append. Call with a.mu held for writing.
func (a *activeSeries) add(key []byte, ref storage.SeriesRef, metric string, lbls []remotewrite.Label, now int64) {
	if e, ok := a.byRef[ref]; ok {
		e.lastSeen.Store(now)
		a.byKey[string(key)] = e
		return
	}
	name, ok := a.names[metric]
	if !ok {
		name = strings.Clone(metric)
		a.names[name] = name
	}
	e := &seriesEntry{ref: ref, metric: name, gen: a.gen}
	e.sets = a.matchSets(nil, lbls)
	e.lastSeen.Store(now)
	a.byKey[string(key)] = e
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
	a.mu.Lock()
	defer a.mu.Unlock()
	removed := false
	for ref, e := range a.byRef {
		if e.lastSeen.Load() >= c {
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
	if !removed {
		return
	}
	for k, e := range a.byKey {
		if e.ref == 0 {
			delete(a.byKey, k)
		}
	}
}
