package ingester

import (
	"context"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/ingest"
)

// layoutCount is how many request layouts the workspace remembers.
func layoutCount(t *testing.T, i *Ingester, ws string) int {
	t.Helper()
	u, err := i.get(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	defer u.release()
	u.active.layouts.mu.Lock()
	defer u.active.layouts.mu.Unlock()
	return len(u.active.layouts.byKey)
}

// A remembered layout only saves lookups: requests of the same shape (same count, first
// and last series) with other series in between, series purged while a layout still
// names them, and layouts forgotten with their series all store what a lookup by key
// stores.
func TestRequestLayouts(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, nil), ws)
	now := time.Unix(1_800_000_000, 0)
	i.now = func() time.Time { return now }
	ctx := context.Background()
	ts := now.UnixMilli()
	push := func(names ...string) {
		t.Helper()
		var series [][]string
		for _, n := range names {
			series = append(series, []string{n, "job", "j"})
		}
		ts += 1000
		res, err := i.Push(ctx, "ws-1", request(t, ts, 1, series...), ingest.Options{})
		if err != nil || res.Samples != len(names) {
			t.Fatalf("push %v: %+v %v", names, res, err)
		}
	}

	push("a", "b", "c")
	if n := layoutCount(t, i, "ws-1"); n != 0 {
		t.Fatalf("%d layouts after a new shape's first request (its series were new)", n)
	}
	push("a", "b", "c") // seen once
	push("a", "b", "c") // remembered
	if n := layoutCount(t, i, "ws-1"); n != 1 {
		t.Fatalf("%d layouts after a shape repeated, want 1", n)
	}
	push("a", "b", "c") // by position
	// The same shape with another series in the middle: x is a new series, not b.
	push("a", "x", "c")
	push("a", "x", "c")
	push("a", "x", "c") // the layout now names x
	push("a", "b", "c") // b by key again
	got := count(t, i, "ws-1")
	want := map[string]int{`{__name__="a", job="j"}`: 8, `{__name__="b", job="j"}`: 5, `{__name__="c", job="j"}`: 8, `{__name__="x", job="j"}`: 3}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("stored %v, want %v", got, want)
		}
	}

	// b is sent no more; a request of the layout's shape with a new series keeps the
	// layout (naming b) in use without replacing it. Once b is purged, the layout's b is
	// dead: the next request creates b anew and counts it as active.
	push("a", "b", "c")
	push("a", "b", "c") // the layout names b
	now = now.Add(90 * time.Minute)
	push("a", "y", "c") // y is new: the layout is used, not replaced
	now = now.Add(31 * time.Minute)
	i.housekeeping(ctx) // b and x are purged, the layout is not
	if n := i.ActiveSeries("ws-1"); n != 3 {
		t.Fatalf("active series %d after the purge, want 3 (a, c, y)", n)
	}
	if n := layoutCount(t, i, "ws-1"); n != 1 {
		t.Fatalf("%d layouts after the purge, want the one used 31 minutes ago", n)
	}
	push("a", "b", "c")
	if n := i.ActiveSeries("ws-1"); n != 4 {
		t.Fatalf("active series %d after b came back, want 4", n)
	}

	// Layouts not used within the active-series window go with their series.
	now = now.Add(3 * time.Hour)
	i.housekeeping(ctx)
	if n := layoutCount(t, i, "ws-1"); n != 0 || i.ActiveSeries("ws-1") != 0 {
		t.Fatalf("%d layouts and %d active series after three idle hours", n, i.ActiveSeries("ws-1"))
	}
	push("a", "b", "c")
	if n := i.ActiveSeries("ws-1"); n != 3 {
		t.Fatalf("active series %d after the series came back, want 3", n)
	}
}
