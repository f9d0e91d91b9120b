package ingestlog

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Each workspace has one owner at a time: the first process to take it, until it gives
// it up; then another takes it at its next round. Owner names the holder's URL.
func TestWorkspaceOwners(t *testing.T) {
	l := openLog(t, testConfig(t))
	ctx := context.Background()
	a, b := NewWorkspaceOwners(l, "http://a:8080", nil), NewWorkspaceOwners(l, "http://b:8080", nil)
	changed := a.Subscribe()
	all := []string{"ws-1", "ws-2", "ws-3"}
	a.Reconcile(ctx, all)
	b.Reconcile(ctx, all)
	if got := a.Owned(); !slices.Equal(got, all) {
		t.Fatalf("the first process owns %v, want %v", got, all)
	}
	if got := b.Owned(); len(got) != 0 {
		t.Fatalf("the second process owns %v while the first does", got)
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

	// Given up when no longer wanted, and taken by the other.
	a.Reconcile(ctx, []string{"ws-1"})
	b.Reconcile(ctx, all)
	if ga, gb := a.Owned(), b.Owned(); !slices.Equal(ga, []string{"ws-1"}) || !slices.Equal(gb, []string{"ws-2", "ws-3"}) {
		t.Fatalf("owned: %v and %v", ga, gb)
	}
	select {
	case <-changed:
	default:
		t.Fatal("no signal after giving workspaces up")
	}

	// A stopping process gives up all it owns at once.
	a.releaseAll()
	if a.Owns("ws-1") {
		t.Fatal("still owning after giving up")
	}
	b.Reconcile(ctx, all)
	if gb := b.Owned(); !slices.Equal(gb, all) {
		t.Fatalf("after the first process stopped the second owns %v", gb)
	}
	b.releaseAll()
}

// A workspace change one process reports reaches every process watching, itself too.
func TestMetaNotifier(t *testing.T) {
	l := openLog(t, testConfig(t))
	n := NewMetaNotifier(l)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 1)
	done := make(chan error)
	go func() {
		done <- n.Watch(ctx, func(id string) {
			select {
			case got <- id:
			default:
			}
		})
	}()
	// The subscription is in place once a report comes back.
	for {
		if err := n.Changed(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-got:
			if id != "ws-1" {
				t.Fatalf("watched %q, want ws-1", id)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
