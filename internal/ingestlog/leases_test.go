package ingestlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/testutil"
)

// caught is a consumer's caught-up state, set by the test.
type caught struct {
	mu sync.Mutex
	p  map[int]bool
}

func (c *caught) set(ps ...int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		c.p[p] = true
	}
}

func (c *caught) on(p int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p[p]
}

// alive makes m see ingester id of zone as alive, as its watch would.
func alive(m *Membership, id, zone string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members[id] = seenMember{member: member{ID: id, Zone: zone}, seen: m.now()}
}

func gone(m *Membership, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members, id)
}

func tick(t *testing.T, ls ...*Leases) {
	t.Helper()
	for _, l := range ls {
		if err := l.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func owned(l *Leases) string {
	var out []int
	for _, p := range l.Assigned() {
		if l.Owned(p) {
			out = append(out, p)
		}
	}
	return fmt.Sprint(out)
}

// The ingesters of a zone share its partitions: a newcomer reserves its share of the
// busiest one's, catches up on them, then takes them over; the old owner stops at its
// next renewal. Another zone has owners of its own, and leases given up are taken at
// once.
func TestLeasesShareAZone(t *testing.T) {
	l := openLog(t, testConfig(t)) // 4 partitions
	members := NewMembership(l, "", nil)
	cA, cB, cC := &caught{p: map[int]bool{}}, &caught{p: map[int]bool{}}, &caught{p: map[int]bool{}}
	a := NewLeases(l, "a", "zone-1", members, cA.on)
	b := NewLeases(l, "b", "zone-1", members, cB.on)
	c := NewLeases(l, "c", "zone-2", members, cC.on)

	alive(members, "a", "zone-1")
	alive(members, "c", "zone-2")
	tick(t, a, c)
	if owned(a) != "[0 1 2 3]" || owned(c) != "[0 1 2 3]" {
		t.Fatalf("alone in their zones, a owns %s and c %s; want all four each", owned(a), owned(c))
	}

	alive(members, "b", "zone-1")
	tick(t, b, a)
	if got := fmt.Sprint(b.Assigned()); owned(b) != "[]" || got != "[2 3]" {
		t.Fatalf("b owns %s and reads %s; want nothing owned, 2 and 3 read to catch up", owned(b), got)
	}
	if owned(a) != "[0 1 2 3]" {
		t.Fatalf("a owns %s before b has caught up; want all four", owned(a))
	}
	cB.set(2)
	tick(t, b, a)
	if owned(b) != "[2]" || owned(a) != "[0 1 3]" || !slices.Equal(b.Assigned(), []int{2, 3}) {
		t.Fatalf("b owns %s (reads %v), a %s; want b to own 2 only, once caught up on it", owned(b), b.Assigned(), owned(a))
	}
	cB.set(3)
	tick(t, b, a, c)
	if owned(b) != "[2 3]" || owned(a) != "[0 1]" || owned(c) != "[0 1 2 3]" {
		t.Fatalf("a owns %s, b %s, c %s; want 0 1, 2 3, all", owned(a), owned(b), owned(c))
	}
	tick(t, a, b) // stable
	if owned(b) != "[2 3]" || owned(a) != "[0 1]" || !slices.Equal(a.Assigned(), []int{0, 1}) {
		t.Fatalf("after another round a owns %s (reads %v), b %s", owned(a), a.Assigned(), owned(b))
	}

	// a stops: it gives its leases up, and b takes them at its next round.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	gone(members, "a")
	tick(t, b)
	if owned(b) != "[0 1 2 3]" || len(a.Assigned()) != 0 || b.Count() != 4 || a.Count() != 0 {
		t.Fatalf("after a stopped, b owns %s and a reads %v (counts %d, %d); want b all, a nothing", owned(b), a.Assigned(), b.Count(), a.Count())
	}
}

// A lease that is not renewed expires (the bucket's age limit): a killed ingester's
// partitions go to the others of its zone a TTL later.
func TestLeaseExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a lease to expire")
	}
	cfg := testConfig(t)
	cfg.LeaseTTL = 3 * leaseEvery
	l := openLog(t, cfg)
	members := NewMembership(l, "", nil)
	none := func(int) bool { return false }
	a := NewLeases(l, "a", "z", members, none)
	b := NewLeases(l, "b", "z", members, none)
	alive(members, "a", "z")
	tick(t, a)
	alive(members, "b", "z")
	gone(members, "a") // killed: no release, no renewal
	testutil.Eventually(t, 3*cfg.LeaseTTL, "b to take a's expired leases", func() bool {
		tick(t, b)
		return owned(b) == "[0 1 2 3]"
	})
}

// Ingesters register where queriers reach them and which partitions they answer for;
// a querier lists those that do, its own zone first, and forgets one that stops.
func TestMembership(t *testing.T) {
	l := openLog(t, testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reader := NewMembership(l, "zone-1", nil)
	watching := make(chan struct{})
	go func() { defer close(watching); _ = reader.Watch(ctx) }()
	var wg sync.WaitGroup
	register := func(ctx context.Context, id, zone string, parts []int) {
		wg.Go(func() { _ = NewMembership(l, zone, nil).Register(ctx, id, "http://"+id, func() []int { return parts }) })
	}
	register(ctx, "in-zone-2", "zone-2", []int{0, 1, 2, 3})
	register(ctx, "catching-up", "zone-1", nil)
	actx, stopA := context.WithCancel(ctx)
	register(actx, "in-zone-1", "zone-1", []int{0, 1})
	testutil.Eventually(t, 10*time.Second, "both ingesters that answer to be listed, this zone's first", func() bool {
		got := reader.Ingesters()
		return len(got) == 2 && got[0].ID == "in-zone-1" && got[0].URL == "http://in-zone-1" && fmt.Sprint(got[0].Partitions) == "[0 1]" && got[1].ID == "in-zone-2"
	})
	// The one catching up registers concurrently, maybe after the others: wait for it
	// too, then it must count as a member of its zone though it answers for nothing.
	testutil.Eventually(t, 10*time.Second, "zone-1's members to be both, the one catching up too", func() bool {
		z := reader.zoneMembers("zone-1")
		return z["catching-up"] && z["in-zone-1"] && len(z) == 2
	})
	if got := reader.Ingesters(); len(got) != 2 {
		t.Fatalf("%d ingesters listed, want the 2 that answer for partitions (not the one catching up)", len(got))
	}
	stopA()
	testutil.Eventually(t, 10*time.Second, "a stopped ingester to be forgotten", func() bool {
		got := reader.Ingesters()
		return len(got) == 1 && got[0].ID == "in-zone-2"
	})
	cancel()
	wg.Wait()
	<-watching
}

// A workspace lock is held by one process at a time, per kind of work; the holder's
// context ends when the lock is lost, and one given up is free at once.
func TestWorkspaceLocks(t *testing.T) {
	l := openLog(t, testConfig(t))
	ctx := context.Background()
	a, b := NewWorkspaceLocks(l, "compactor", "a"), NewWorkspaceLocks(l, "compactor", "b")
	held, unlock, ok, err := a.Lock(ctx, "ws-1")
	if err != nil || !ok {
		t.Fatalf("a takes ws-1: %v %v", ok, err)
	}
	if _, _, ok, err := b.Lock(ctx, "ws-1"); ok || err != nil {
		t.Fatalf("b takes ws-1 while a holds it: %v %v", ok, err)
	}
	_, unlockOther, ok, err := b.Lock(ctx, "ws-2")
	if !ok || err != nil {
		t.Fatalf("b takes ws-2: %v %v", ok, err)
	}
	if _, unlockRuler, ok, err := NewWorkspaceLocks(l, "ruler", "b").Lock(ctx, "ws-1"); !ok || err != nil {
		t.Fatalf("another kind of work on ws-1: %v %v", ok, err)
	} else {
		unlockRuler()
	}
	unlock()
	if held.Err() == nil {
		t.Fatal("the holder's context goes on after unlock")
	}
	heldB, unlockB, ok, err := b.Lock(ctx, "ws-1")
	if !ok || err != nil {
		t.Fatalf("b takes ws-1 once a gave it up: %v %v", ok, err)
	}
	// Lost: the key goes (as when a renewal came too late and it expired).
	kv, err := l.locksKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "compactor."+base64Key("ws-1")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "b to see its lock lost", func() bool { return heldB.Err() != nil })
	unlockB()
	unlockOther()
}

// Two processes' metadata stores on one bucket, writing one workspace's record at the
// same time by compare-and-set of its head: no update is lost, each sees the other's
// writes as the head moves (their polls are an hour away), and a deletion leaves no
// record behind.
func TestMetaWritesByCompareAndSet(t *testing.T) {
	l := openLog(t, testConfig(t))
	dir := t.TempDir()
	b, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	var stores []*meta.Store
	for range 2 {
		s := meta.New(meta.Config{PollInterval: time.Hour}, b, nil, prometheus.NewRegistry())
		s.UseHeads(NewMetaHeads(l))
		if err := s.Load(ctx); err != nil {
			t.Fatal(err)
		}
		running.Go(func() { _ = s.Run(ctx) })
		stores = append(stores, s)
	}
	if err := stores[0].CreateWorkspace(ctx, meta.Workspace{ID: "ws-1", Status: meta.StatusActive, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := stores[1].CreateWorkspace(ctx, meta.Workspace{ID: "ws-1", CreatedAt: time.Now()}); !errors.Is(err, meta.ErrExists) {
		t.Fatalf("the second process creates ws-1 again: %v", err)
	}
	const each = 20
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for k := range each {
				_, err := s.UpdateWorkspace(ctx, "ws-1", func(w *meta.Workspace) error {
					if w.Tags == nil {
						w.Tags = map[string]string{}
					}
					w.Tags[fmt.Sprintf("p%d-%d", i, k)] = "x"
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, s := range stores {
		testutil.Eventually(t, 5*time.Second, fmt.Sprintf("process %d to see all %d tags", i, 2*each), func() bool {
			ws, ok := s.PeekWorkspace("ws-1")
			return ok && len(ws.Tags) == 2*each
		})
	}
	// One record is left, the one the head names.
	records := func() []string {
		var out []string
		if err := b.Iter(ctx, "meta/", func(name string) error { out = append(out, name); return nil }, objstore.WithRecursiveIter()); err != nil {
			t.Fatal(err)
		}
		return out
	}
	head, err := NewMetaHeads(l).Get(ctx, "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := records(); len(got) != 1 || got[0] != head.Object {
		t.Fatalf("objects after the writes: %v; want only the head's %s", got, head.Object)
	}
	if err := stores[1].DeleteWorkspace(ctx, "ws-1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the other process to see the deletion", func() bool {
		_, ok := stores[0].PeekWorkspace("ws-1")
		return !ok
	})
	if got := records(); len(got) != 0 {
		t.Fatalf("objects after the deletion: %v", got)
	}
}

// A record written before the heads existed (one process, or an older cluster) gets a
// head when a process with heads loads, and keeps its content; the first write moves it
// to a record of its own and removes the old object.
func TestMetaHeadsImportOldRecords(t *testing.T) {
	l := openLog(t, testConfig(t))
	dir := t.TempDir()
	b, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := meta.New(meta.Config{PollInterval: time.Hour}, b, nil, prometheus.NewRegistry())
	if err := old.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.CreateWorkspace(ctx, meta.Workspace{ID: "ws-old", Alias: "before", Status: meta.StatusActive, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s := meta.New(meta.Config{PollInterval: time.Hour}, b, nil, prometheus.NewRegistry())
	s.UseHeads(NewMetaHeads(l))
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if ws, err := s.GetWorkspace(ctx, "ws-old"); err != nil || ws.Alias != "before" {
		t.Fatalf("the old record through the heads: %+v, %v", ws, err)
	}
	if _, err := s.UpdateWorkspace(ctx, "ws-old", func(w *meta.Workspace) error { w.Alias = "after"; return nil }); err != nil {
		t.Fatal(err)
	}
	if exists, err := b.Exists(ctx, "meta/workspaces/ws-old.json"); err != nil || exists {
		t.Fatalf("the old object after the first write: exists %v, %v", exists, err)
	}
	// A process that loads later does not import it again, and reads the new record.
	again := meta.New(meta.Config{PollInterval: time.Hour}, b, nil, prometheus.NewRegistry())
	again.UseHeads(NewMetaHeads(l))
	if err := again.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if ws, err := again.GetWorkspace(ctx, "ws-old"); err != nil || ws.Alias != "after" {
		t.Fatalf("after the write, through another process: %+v, %v", ws, err)
	}
}

// An ingester whose renewals have not been seen lately is offered after the others, as
// a last resort (a bucket's leader moving pauses renewals), and forgotten later.
func TestStaleIngestersComeLast(t *testing.T) {
	now := time.Unix(1000, 0)
	m := &Membership{zone: "z", now: func() time.Time { return now }, members: map[string]seenMember{}}
	see := func(id, zone string) {
		m.members[id] = seenMember{member: member{ID: id, Zone: zone, Partitions: []int{0}}, seen: now}
	}
	ids := func() string {
		var out []string
		for _, mem := range m.Ingesters() {
			out = append(out, mem.ID)
		}
		return fmt.Sprint(out)
	}
	see("old", "z")
	now = now.Add(memberTTL / 2)
	see("older", "z")
	now = now.Add(memberTTL / 2)
	see("fresh-other-zone", "y")
	now = now.Add(memberTTL/2 + time.Second) // "old" and "older" are stale, "old" the longer
	if got := ids(); got != "[fresh-other-zone older old]" {
		t.Fatalf("ingesters %s; want the fresh one first, then the stale ones, most recently seen first", got)
	}
	now = now.Add(staleMemberLimit)
	if got := ids(); got != "[]" {
		t.Fatalf("ingesters %s; want none after the stale limit", got)
	}
}
