package compactor

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stratametrics/strata/internal/bucket"
)

// denyLocker holds the workspaces in held for another compactor; it records what it
// gave out and what was given back.
type denyLocker struct {
	mu               sync.Mutex
	held             map[string]bool
	locked, unlocked []string
}

func (l *denyLocker) Lock(ctx context.Context, ws string) (context.Context, func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[ws] {
		return nil, nil, false, nil
	}
	l.locked = append(l.locked, ws)
	return ctx, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.unlocked = append(l.unlocked, ws)
	}, true, nil
}

// With a locker, a compactor works only the workspaces whose lock it takes, and gives
// each lock back after its work.
func TestCompactorWorksOnlyLockedWorkspaces(t *testing.T) {
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for _, ws := range []string{"ws-mine", "ws-theirs"} {
		for h := time.Duration(0); h < 24*time.Hour; h += 2 * time.Hour {
			upload(t, bkt, ws, writeBlock(t, src, gen("up", 2, h, h+2*time.Hour, time.Minute, 0), h, h+2*time.Hour))
		}
	}
	before := snapshot(t, bkt)
	clk := &clock{}
	clk.set(27 * time.Hour)
	reg := prometheus.NewRegistry()
	c, err := New(testConfig(t), t.TempDir(), bkt, StaticWorkspaces{"ws-mine": 0, "ws-theirs": 0}, discard, reg, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	l := &denyLocker{held: map[string]bool{"ws-theirs": true}}
	c.UseLocker(l)
	if err := c.CompactOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, bkt)
	var mine, theirs int // objects changed, added or removed
	names := maps.Clone(before)
	maps.Copy(names, after)
	for name := range names {
		b, inBefore := before[name]
		a, inAfter := after[name]
		if inBefore == inAfter && a == b {
			continue
		}
		switch {
		case strings.HasPrefix(name, "ws-mine/"):
			mine++
		case strings.HasPrefix(name, "ws-theirs/"):
			theirs++
		}
	}
	if mine == 0 || theirs != 0 {
		t.Fatalf("%d objects of ws-mine and %d of ws-theirs changed; want ws-mine compacted and ws-theirs, which another compactor holds, untouched", mine, theirs)
	}
	if !slices.Equal(l.locked, []string{"ws-mine"}) || !slices.Equal(l.unlocked, []string{"ws-mine"}) {
		t.Fatalf("locked %v, unlocked %v; want ws-mine once each", l.locked, l.unlocked)
	}
	if n := promtest.ToFloat64(c.m.lockedElsewhere); n != 1 {
		t.Fatalf("strata_compactor_workspaces_locked_elsewhere_total = %v, want 1", n)
	}
}
