package hatracker

import (
	"context"
	"errors"
	"testing"
	"time"
)

type failingStore struct{}

func (failingStore) Get(context.Context, string, string) (Entry, uint64, bool, error) {
	return Entry{}, 0, false, errors.New("store down")
}
func (failingStore) Put(context.Context, Entry, uint64) (uint64, error) {
	return 0, errors.New("store down")
}

// Two distributors (two trackers) sharing a store elect one replica of a cluster between
// them, hear of each other's heartbeats, and fail over once the elected replica is
// silent on both.
func TestTwoTrackersAgreeThroughAStore(t *testing.T) {
	ctx := context.Background()
	store := &MemoryStore{}
	cfg := DefaultConfig()
	t1, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := New(cfg, nil)
	t0 := time.Unix(1_700_000_000, 0)
	// decide is what the distributor does: Decide, then Confirm an election.
	decide := func(tr *Tracker, replica string, at time.Time) bool {
		t.Helper()
		d, err := tr.Decide("ws", "c", replica, at)
		if err != nil {
			t.Fatal(err)
		}
		if d.Action == Accept && d.Changed {
			ok, err := tr.Confirm(ctx, store, "ws", "c", replica, at)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		return d.Action == Accept
	}
	heartbeats := func(tr *Tracker) {
		t.Helper()
		for _, e := range tr.Changes() {
			if err := tr.Heartbeat(ctx, store, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !decide(t1, "a", t0) {
		t.Fatal("first election refused")
	}
	if decide(t2, "b", t0.Add(time.Second)) {
		t.Fatal("the second distributor elected another replica of the same cluster")
	}
	if e, _ := t2.Elected("ws", "c"); e.Replica != "a" {
		t.Fatalf("the second distributor did not take the first's election over: %+v", e)
	}
	// a goes on through distributor 1, whose heartbeats reach the store.
	for s := 5; s <= 40; s += 5 {
		if !decide(t1, "a", t0.Add(time.Duration(s)*time.Second)) {
			t.Fatalf("elected replica refused at %ds", s)
		}
		heartbeats(t1)
	}
	// Locally a seems silent to distributor 2 (35 s), but the store knows better.
	if decide(t2, "b", t0.Add(41*time.Second)) {
		t.Fatal("failover while the elected replica is live on another distributor")
	}
	// a stops. Heartbeats go out every UpdateTimeout (15 s), so the store's last sample
	// of a is the one at 30 s: 30 s after it distributor 2 fails over to b.
	if decide(t2, "b", t0.Add(59*time.Second)) {
		t.Fatal("failover before the failover timeout")
	}
	if !decide(t2, "b", t0.Add(61*time.Second)) {
		t.Fatal("no failover once the elected replica is silent everywhere")
	}
	// Distributor 1 learns of it with its next heartbeat.
	decide(t1, "a", t0.Add(62*time.Second))
	heartbeats(t1)
	if e, _ := t1.Elected("ws", "c"); e.Replica != "b" {
		t.Fatalf("the first distributor still has %+v after its heartbeat", e)
	}
	if decide(t1, "a", t0.Add(63*time.Second)) {
		t.Fatal("the old replica accepted after the failover")
	}
}

// An election the store cannot confirm is not kept: the next sample asks again.
func TestUnconfirmedElectionIsForgotten(t *testing.T) {
	tr, _ := New(DefaultConfig(), nil)
	now := time.Unix(1_700_000_000, 0)
	d, _ := tr.Decide("ws", "c", "a", now)
	if _, err := tr.Confirm(context.Background(), failingStore{}, "ws", "c", "a", now); err == nil {
		t.Fatal("no error from a failing store")
	}
	if _, ok := tr.Elected("ws", "c"); ok || !d.Changed {
		t.Fatal("an unconfirmed election was kept")
	}
	if d, _ := tr.Decide("ws", "c", "a", now.Add(time.Second)); !d.Changed {
		t.Fatal("the next sample was accepted without a new election")
	}
}
