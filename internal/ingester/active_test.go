package ingester

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"
)

// purge walks the entries only once its cutoff passes the oldest lastSeen it knows of,
// and still forgets every series idle since before the cutoff.
func TestPurgeWalksOnlyPastTheOldest(t *testing.T) {
	a := newActiveSeries(nil)
	add := func(key string, ref storage.SeriesRef, now int64) {
		a.mu.Lock()
		a.add([]byte(key), ref, "m", nil, now)
		a.mu.Unlock()
	}
	purge := func(cutoff int64) { a.purge(time.Unix(cutoff, 0)) }
	has := func(refs ...storage.SeriesRef) {
		t.Helper()
		a.mu.RLock()
		defer a.mu.RUnlock()
		if len(a.byRef) != len(refs) || a.perMetric["m"] != len(refs) {
			t.Fatalf("%d active (%d for the metric), want %v", len(a.byRef), a.perMetric["m"], refs)
		}
		for _, r := range refs {
			if a.byRef[r] == nil {
				t.Fatalf("series %d was forgotten; active: %d", r, len(a.byRef))
			}
		}
	}

	add("a", 1, 100)
	add("b", 2, 100)
	purge(50)
	has(1, 2)
	a.byRef[1].seen(5000)
	a.byRef[1].seen(10) // lastSeen never goes back
	if got := a.byRef[1].lastSeen.Load(); got != 5000 {
		t.Fatalf("lastSeen %d, want 5000", got)
	}
	purge(150) // past b's 100: walks, forgets b
	has(1)
	if a.oldest != 5000 {
		t.Fatalf("oldest %d after the walk, want 5000", a.oldest)
	}

	// A new series lowers the bound: a cutoff past it walks again.
	add("c", 3, 4500)
	purge(4600)
	has(1)

	// Below the bound nothing is walked. An entry moved behind the bound behind
	// activeSeries' back shows it: it stays until a cutoff passes the bound.
	add("d", 4, 6000)
	a.byRef[4].lastSeen.Store(200)
	purge(4900)
	has(1, 4)
	purge(5001)
	has()
	if _, ok := a.byKey["d"]; ok || len(a.byKey) != 0 {
		t.Fatalf("keys left: %v", a.byKey)
	}
}
