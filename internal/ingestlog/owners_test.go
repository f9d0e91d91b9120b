package ingestlog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Each workspace has one owner at a time. The first process takes all; once a second
// runs, the first gives up what is beyond its share (it stops serving it, and unlocks it
// a round later), and the second takes it. Owner names the holder's URL.
func TestWorkspaceOwners(t *testing.T) {
	l := openLog(t, testConfig(t))
	ctx := context.Background()
	a, b := NewWorkspaceOwners(l, "http://a:8080", nil), NewWorkspaceOwners(l, "http://b:8080", nil)
	defer a.releaseAll()
	defer b.releaseAll()
	changed := a.Subscribe()
	all := []string{"ws-1", "ws-2", "ws-3"}
	a.Reconcile(ctx, weighted(all...))
	if got := a.Owned(); !slices.Equal(got, all) {
		t.Fatalf("the only process owns %v, want %v", got, all)
	}
	select {
	case <-changed:
	default:
		t.Fatal("no signal after taking workspaces")
	}
	if url, ok, err := b.Owner(ctx, "ws-2"); err != nil || !ok || url != "http://a:8080" {
		t.Fatalf("Owner = %q, %v, %v", url, ok, err)
	}
	if _, ok, err := b.Owner(ctx, "ws-9"); err != nil || ok {
		t.Fatalf("a workspace nobody owns has an owner: %v, %v", ok, err)
	}

	b.Reconcile(ctx, weighted(all...)) // a second process: nothing free yet
	if got := b.Owned(); len(got) != 0 {
		t.Fatalf("the second process took %v, owned by the first", got)
	}
	a.Reconcile(ctx, weighted(all...)) // share 2 of 3: gives one up, still locked
	if got := a.Owned(); !slices.Equal(got, []string{"ws-1", "ws-2"}) {
		t.Fatalf("after the second process came, the first serves %v; want its share", got)
	}
	select {
	case <-changed:
	default:
		t.Fatal("no signal after giving a workspace up")
	}
	if url, _, _ := b.Owner(ctx, "ws-3"); url != "http://a:8080" {
		t.Fatalf("a workspace given up was unlocked at once (owner %q): its Alertmanager has not stopped yet", url)
	}
	a.Reconcile(ctx, weighted(all...)) // unlocks it
	b.Reconcile(ctx, weighted(all...))
	if ga, gb := a.Owned(), b.Owned(); !slices.Equal(ga, []string{"ws-1", "ws-2"}) || !slices.Equal(gb, []string{"ws-3"}) {
		t.Fatalf("owned: %v and %v", ga, gb)
	}

	// Given up at once when no longer wanted, and taken by the other.
	a.Reconcile(ctx, weighted("ws-1", "ws-3"))
	b.Reconcile(ctx, weighted(all...))
	if ga, gb := a.Owned(), b.Owned(); !slices.Equal(ga, []string{"ws-1"}) || !slices.Equal(gb, []string{"ws-2", "ws-3"}) {
		t.Fatalf("owned: %v and %v", ga, gb)
	}

	// A stopping process gives up all it owns at once, and counts no more.
	a.releaseAll()
	if a.Owns("ws-1") {
		t.Fatal("still owning after giving up")
	}
	b.Reconcile(ctx, weighted(all...))
	if gb := b.Owned(); !slices.Equal(gb, all) {
		t.Fatalf("after the first process stopped the second owns %v", gb)
	}
}

// weighted returns the workspaces with weight 1 each.
func weighted(ids ...string) []Weighted {
	out := make([]Weighted, len(ids))
	for i, id := range ids {
		out[i] = Weighted{ID: id, Weight: 1}
	}
	return out
}

// The owners share the workspaces by weight: one heavy workspace (ten rules, say) counts
// as much as ten light ones. The first process takes all; once a second runs, the first
// gives up light ones until it holds its share (half the weight) and the second takes
// them. By count, the first would have kept six of the eleven, two thirds of the weight.
func TestWorkspaceOwnersByWeight(t *testing.T) {
	l := openLog(t, testConfig(t))
	ctx := context.Background()
	a, b := NewWorkspaceOwners(l, "http://a:8080", nil), NewWorkspaceOwners(l, "http://b:8080", nil)
	defer a.releaseAll()
	defer b.releaseAll()
	weights := map[string]int{"ws-00": 10}
	for i := 1; i <= 10; i++ {
		weights[fmt.Sprintf("ws-%02d", i)] = 1
	}
	want := func() []Weighted {
		var out []Weighted
		for id, w := range weights {
			out = append(out, Weighted{ID: id, Weight: w})
		}
		slices.SortFunc(out, func(x, y Weighted) int { return strings.Compare(x.ID, y.ID) })
		return out
	}
	held := func(o *WorkspaceOwners) (n int) {
		for _, ws := range o.Owned() {
			n += weights[ws]
		}
		return n
	}
	a.Reconcile(ctx, want())
	if n := held(a); n != 20 {
		t.Fatalf("the only process holds weight %d, want all 20", n)
	}
	for range 3 {
		b.Reconcile(ctx, want())
		a.Reconcile(ctx, want())
	}
	if !a.Owns("ws-00") || held(a) != 10 || held(b) != 10 {
		t.Fatalf("weights held: %d (%v) and %d (%v), want 10 each, the heavy one with the first", held(a), a.Owned(), held(b), b.Owned())
	}
	// Settled: another round moves nothing.
	before := fmt.Sprint(a.Owned(), b.Owned())
	a.Reconcile(ctx, want())
	b.Reconcile(ctx, want())
	if after := fmt.Sprint(a.Owned(), b.Owned()); after != before {
		t.Fatalf("owners moved after settling: %s, then %s", before, after)
	}

	// A new workspace raises the share (13 of 26): the first process under its share
	// to look takes it, then gives light ones up to the other down to its share.
	weights["ws-11"] = 6
	for range 4 {
		b.Reconcile(ctx, want())
		a.Reconcile(ctx, want())
	}
	if !b.Owns("ws-11") || held(a) != 13 || held(b) != 13 {
		t.Fatalf("after a heavy workspace came: %v and %v", a.Owned(), b.Owned())
	}
}
