package ingester

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

// Request layouts: senders that repeat themselves — a scrape target's page, a rule
// group's results — send the same series in the same order every time. For those the
// ingester remembers the request's entries by position, so the next identical request
// checks each position's key in order (memory read sequentially) instead of a lookup in
// the workspace's series map per series (a cache miss or more each, the most expensive
// step of a push at 500k series). Every position is verified against the entry's own
// key, so a layout can only save lookups, never change an answer; a position that does
// not match falls back to the map.
//
// A layout is kept from the second request of its shape on, so senders whose requests
// never repeat (remote write's shards mix series freely) cost one small hash per request.

const (
	// maxSeenLayouts bounds the shapes seen once; the set is cleared when full.
	maxSeenLayouts = 4096
	// layoutSlack is how many layout positions a workspace may hold beyond its active
	// series (a series is in about one repeating request).
	layoutSlack = 65536
)

type layoutKey struct {
	n    int
	hash uint64 // of the first and the last key
}

type layout struct {
	entries  []*seriesEntry
	lastUsed int64 // unix seconds
}

// layouts is a workspace's remembered request layouts. Its own lock: it is read while
// activeSeries.mu is held for reading (taken after it, never before).
type layouts struct {
	mu        sync.Mutex
	byKey     map[layoutKey]*layout
	seen      map[layoutKey]struct{}
	positions int // sum of len(entries)
}

func newLayouts() *layouts {
	return &layouts{byKey: map[layoutKey]*layout{}, seen: map[layoutKey]struct{}{}}
}

// keyOf identifies a request's shape from its keys (concatenated in keys, ends the end
// offset of each): its series count and its first and last series.
func layoutKeyOf(keys []byte, ends []int) layoutKey {
	n := len(ends)
	if n == 0 {
		return layoutKey{}
	}
	first := keys[:ends[0]]
	last := keys[:ends[n-1]]
	if n > 1 {
		last = keys[ends[n-2]:ends[n-1]]
	}
	return layoutKey{n: n, hash: xxhash.Sum64(first) ^ (xxhash.Sum64(last) * 0x9E3779B97F4A7C15)}
}

// get returns the layout of shape k, or nil.
func (l *layouts) get(k layoutKey, now int64) *layout {
	if k.n == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lay := l.byKey[k]
	if lay != nil && lay.lastUsed != now {
		lay.lastUsed = now
	}
	return lay
}

// remember records entries (every one found) as the layout of shape k, from the second
// time the shape is seen, within active+layoutSlack positions in all. entries is copied.
func (l *layouts) remember(k layoutKey, entries []*seriesEntry, active int, now int64) {
	if k.n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.byKey[k]
	if old == nil {
		if _, ok := l.seen[k]; !ok {
			if len(l.seen) >= maxSeenLayouts {
				clear(l.seen)
			}
			l.seen[k] = struct{}{}
			return
		}
	}
	grow := len(entries)
	if old != nil {
		grow -= len(old.entries)
	}
	if l.positions+grow > active+layoutSlack {
		return
	}
	delete(l.seen, k)
	l.byKey[k] = &layout{entries: append([]*seriesEntry(nil), entries...), lastUsed: now}
	l.positions += grow
}

// purge forgets the layouts not used since cutoff (unix seconds): their entries may be
// dead, and keeping them would keep the entries from the garbage collector.
func (l *layouts) purge(cutoff int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, lay := range l.byKey {
		if lay.lastUsed < cutoff {
			delete(l.byKey, k)
			l.positions -= len(lay.entries)
		}
	}
}
