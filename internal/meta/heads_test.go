package meta

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stratametrics/strata/internal/bucket"
)

// memHeads keeps heads in memory with the compare-and-set semantics of meta.Heads (the
// cluster's are JetStream's, tested in ingestlog). beforePut, when set, runs before each
// Put: a test makes another process write there.
type memHeads struct {
	mu        sync.Mutex
	heads     map[string]Head
	rev       uint64
	beforePut func(id string)
}

func (m *memHeads) Get(_ context.Context, id string) (Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.heads[id]
	if !ok {
		return Head{}, ErrNotFound
	}
	return h, nil
}

func (m *memHeads) Put(_ context.Context, id, object string, rev uint64) (uint64, error) {
	if f := m.beforePut; f != nil {
		m.beforePut = nil // once
		f(id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.heads[id].Rev != rev {
		return 0, ErrConflict
	}
	m.rev++
	m.heads[id] = Head{Object: object, Rev: m.rev}
	return m.rev, nil
}

func (m *memHeads) Delete(_ context.Context, id string, rev uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.heads[id].Rev != rev {
		return ErrConflict
	}
	delete(m.heads, id)
	return nil
}

func (m *memHeads) List(context.Context) (map[string]Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Head, len(m.heads))
	for id, h := range m.heads {
		out[id] = h
	}
	return out, nil
}

func (m *memHeads) Watch(ctx context.Context, _ func(string)) error {
	<-ctx.Done()
	return nil
}

// An update whose head moved between its read and its write reads the newer record and
// applies its change to it: both changes stay, and the record the losing attempt wrote is
// removed. A reader whose head moved on while it read gets the newer record.
func TestHeadsRetryOnConflict(t *testing.T) {
	b, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	heads := &memHeads{heads: map[string]Head{}}
	open := func() *Store {
		s := New(Config{PollInterval: time.Hour}, b, nil, prometheus.NewRegistry())
		s.UseHeads(heads)
		if err := s.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, other := open(), open()
	ctx := context.Background()
	if err := a.CreateWorkspace(ctx, ws("ws-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	heads.beforePut = func(id string) {
		if _, err := other.UpdateWorkspace(ctx, id, func(w *Workspace) error { w.Tags["other"] = "1"; return nil }); err != nil {
			t.Error(err)
		}
	}
	calls := 0
	got, err := a.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error { calls++; w.Tags["mine"] = "1"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || got.Tags["mine"] != "1" || got.Tags["other"] != "1" {
		t.Fatalf("after a conflict: fn ran %d times, tags %v; want 2 and both changes", calls, got.Tags)
	}
	if n := promtestutil.ToFloat64(a.m.conflicts); n != 1 {
		t.Fatalf("strata_meta_write_conflicts_total = %v, want 1", n)
	}
	var objects []string
	if err := b.Iter(ctx, revisionsDir+"ws-1/", func(name string) error { objects = append(objects, name); return nil }); err != nil {
		t.Fatal(err)
	}
	h, _ := heads.Get(ctx, "ws-1")
	if len(objects) != 1 || objects[0] != h.Object {
		t.Fatalf("records %v; want only the head's %s", objects, h.Object)
	}

	// Deleted by the other store: not found through its head, and no record is left.
	if err := other.DeleteWorkspace(ctx, "ws-1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.readWorkspace(ctx, "ws-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted workspace read through its head: %v", err)
	}
	if err := b.Iter(ctx, revisionsDir, func(name string) error { t.Errorf("left after the deletion: %s", name); return nil }); err != nil {
		t.Fatal(err)
	}
}
