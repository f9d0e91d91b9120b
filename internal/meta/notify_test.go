package meta

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
)

// hub is an in-memory Notifier shared by the stores of a test: what one reports, all
// watchers hear.
type hub struct {
	mu       sync.Mutex
	watchers []func(string)
	fail     int // the next fail watches answer an error at once
}

func (h *hub) Changed(_ context.Context, id string) error {
	h.mu.Lock()
	ws := append([]func(string){}, h.watchers...)
	h.mu.Unlock()
	for _, f := range ws {
		f(id)
	}
	return nil
}

func (h *hub) Watch(ctx context.Context, f func(string)) error {
	h.mu.Lock()
	if h.fail > 0 {
		h.fail--
		h.mu.Unlock()
		return errors.New("not up yet")
	}
	h.watchers = append(h.watchers, f)
	h.mu.Unlock()
	f("")
	<-ctx.Done()
	return nil
}

func (h *hub) watching() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// openNotified opens a store, loaded, on the filesystem bucket in dir, polling hourly and
// hearing of the others' writes through n.
func openNotified(t *testing.T, dir string, n Notifier) *Store {
	t.Helper()
	b, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{PollInterval: time.Hour}, b, nil, prometheus.NewRegistry())
	s.UseNotifier(n)
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// A workspace written by one process is read by the others when it says so, not at
// their next poll (an hour away here): created, changed, deleted.
func TestNotifiedWritesAreReadAtOnce(t *testing.T) {
	dir := t.TempDir()
	n := &hub{}
	a, b := openNotified(t, dir, n), openNotified(t, dir, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	testutil.Eventually(t, 5*time.Second, "the second store to watch", func() bool { return n.watching() == 1 })
	changes := b.Subscribe()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-changes:
			case <-time.After(5 * time.Second):
				t.Fatalf("the second store did not see %s", what)
			}
		}
	}
	if err := a.CreateWorkspace(ctx, ws("ws-1", time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	wait("the new workspace", func() bool { return len(b.ListWorkspaces()) == 1 })
	if _, err := a.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error { w.Alias = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	wait("the change", func() bool { w, ok := b.PeekWorkspace("ws-1"); return ok && w.Alias == "renamed" })
	if err := a.DeleteWorkspace(ctx, "ws-1"); err != nil {
		t.Fatal(err)
	}
	wait("the deletion", func() bool { return len(b.ListWorkspaces()) == 0 })
}

// A watch that fails (the notifier's server not up yet) is started again, and once it is
// in place the store polls for what it missed: a workspace written after the store
// loaded and before it watched is read then, not at the next poll (an hour away here).
func TestWatchStartsAgainAndCatchesUp(t *testing.T) {
	dir := t.TempDir()
	n := &hub{fail: 3}
	a, b := openNotified(t, dir, n), openNotified(t, dir, n)
	b.watchRetry = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Written while b watches nothing: nobody hears of it.
	if err := a.CreateWorkspace(ctx, ws("ws-1", time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	testutil.Eventually(t, 5*time.Second, "the second store to read the workspace written before it watched", func() bool {
		return len(b.ListWorkspaces()) == 1
	})
	if n.watching() != 1 {
		t.Fatalf("%d watches in place, want 1 after 3 failures", n.watching())
	}
}
