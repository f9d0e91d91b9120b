package ingester

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/limits"
)

// While a partition is replayed from hours back, the TSDBs take samples that much older
// than their newest; before and after, they refuse them as the limits say.
func TestReplayWidensTheOutOfOrderWindow(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, func(l *limits.Limits) { l.OutOfOrderTimeWindow = time.Minute }), ws)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	if _, err := i.Push(ctx, "ws-1", request(t, now, 1, []string{"live"}), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	old := now - (2*time.Hour + 30*time.Minute).Milliseconds()
	push := func(name string) ingest.Result {
		t.Helper()
		res, err := i.Push(ctx, "ws-1", request(t, old, 1, []string{name}), ingest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := push("before"); res.Invalid == nil {
		t.Fatalf("a sample 2h30m older than the newest was taken before the replay: %+v", res)
	}
	i.ReplayFrom(3, now-3*time.Hour.Milliseconds())
	if res := push("replayed"); res.Invalid != nil || res.Samples != 1 {
		t.Fatalf("a sample 2h30m old refused during the replay from 3h back: %+v", res)
	}
	i.ReplayDone(3)
	if res := push("after"); res.Invalid == nil {
		t.Fatalf("a sample 2h30m old was taken after the replay: %+v", res)
	}
	got := count(t, i, "ws-1")
	if got[`{__name__="replayed"}`] != 1 || got[`{__name__="before"}`] != 0 || got[`{__name__="after"}`] != 0 {
		t.Fatalf("stored: %v", got)
	}

	// A TSDB opened during a replay gets the wide window too.
	if err := i.closeAll(); err != nil {
		t.Fatal(err)
	}
	j := newIngesterWithBucket(t, Config{TSDB: TSDBConfig{Dir: i.dir}}, defaultLimits(t, func(l *limits.Limits) { l.OutOfOrderTimeWindow = time.Minute }), ws, nil)
	j.ReplayFrom(1, now-3*time.Hour.Milliseconds())
	if res, err := j.Push(ctx, "ws-1", request(t, old+1, 1, []string{"replayed"}), ingest.Options{}); err != nil || res.Invalid != nil {
		t.Fatalf("after reopening during a replay: %+v %v", res, err)
	}
}

// UnshippedFrom is the oldest sample not in the bucket: the head's until a block is cut
// and uploaded (and uploaded long enough ago), then what the head still holds.
func TestUnshippedFrom(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}, "ws-2": {ID: "ws-2"}}
	cfg := Config{TSDB: TSDBConfig{BlockRange: time.Minute}}
	lim := defaultLimits(t, func(l *limits.Limits) { l.OutOfOrderTimeWindow = 0 })
	i := newIngesterWithBucket(t, cfg, lim, ws, bkt)
	clock := time.Now()
	i.now = func() time.Time { return clock }
	if _, ok := i.UnshippedFrom(clock); ok {
		t.Fatal("UnshippedFrom answered before the TSDBs on disk were opened")
	}
	i.openAll(ctx)
	i.warm.Store(true)
	if got, ok := i.UnshippedFrom(clock); !ok || got != math.MaxInt64 {
		t.Fatalf("empty ingester: %d, %v; want none", got, ok)
	}
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Minute).UnixMilli()
	for k := int64(0); k <= 10; k++ {
		if _, err := i.Push(ctx, "ws-1", request(t, t0+k*60_000, float64(k), []string{"m"}), ingest.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := i.Push(ctx, "ws-2", request(t, t0+9*60_000, 1, []string{"m"}), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := i.UnshippedFrom(clock); got != t0 {
		t.Fatalf("all in the heads: %d, want %d", got, t0)
	}
	if err := i.Compact(ctx, "ws-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := i.UnshippedFrom(clock); got != t0 {
		t.Fatalf("blocks cut, not uploaded: %d, want %d", got, t0)
	}
	if err := i.ShipOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := i.UnshippedFrom(clock); got != t0 {
		t.Fatalf("blocks uploaded just now count as not in the bucket yet: %d, want %d", got, t0)
	}
	// ws-1's head keeps its last 1.5 block ranges; ws-2's sample at t0+9m is older.
	if got, _ := i.UnshippedFrom(clock.Add(time.Second)); got != t0+9*60_000 {
		t.Fatalf("uploaded before: %d, want ws-2's head at %d", got, t0+9*60_000)
	}

	// An idle TSDB closes with its heads cut into blocks, which ship.
	i.cfg.IdleTimeout = time.Minute
	clock = clock.Add(2 * time.Hour)
	i.housekeeping(ctx)
	if u := i.openDB("ws-2"); u != nil {
		t.Fatal("idle TSDB still open")
	}
	if _, ok := i.UnshippedFrom(clock); !ok {
		t.Fatal("UnshippedFrom cannot tell after idle TSDBs closed with their heads cut")
	}
	if err := i.ShipOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := i.UnshippedFrom(clock.Add(time.Second)); !ok || got != math.MaxInt64 {
		t.Fatalf("everything shipped: %d, %v; want none", got, ok)
	}
	// What ws-2's closed TSDB held, its head only, is in the bucket.
	bs, err := blocks.List(ctx, bkt, "ws-2")
	if err != nil {
		t.Fatal(err)
	}
	covered := false
	for _, b := range bs {
		covered = covered || (b.Meta.MinTime <= t0+9*60_000 && t0+9*60_000 < b.Meta.MaxTime)
	}
	if !covered {
		t.Fatalf("ws-2's sample at %d is in none of its blocks in the bucket: %+v", t0+9*60_000, bs)
	}
}
