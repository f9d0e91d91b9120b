package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/testutil/s3server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T, dir string) *Store {
	t.Helper()
	b, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{PollInterval: 10 * time.Millisecond}, b, nil, prometheus.NewRegistry())
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func ws(id string, created time.Time) Workspace {
	return Workspace{ID: id, ARN: "arn:" + id, Status: StatusActive, CreatedAt: created, Tags: map[string]string{"k": "v"}}
}

// opener opens a new Store, as a new process would, on one bucket shared by every store
// the same opener returns.
type opener func(t *testing.T) *Store

// forEachBackend runs an acceptance test against every bucket backend: the filesystem, and
// S3 (versitygw; skipped when it is not installed, except under CI=true).
func forEachBackend(t *testing.T, test func(t *testing.T, open opener)) {
	t.Run("filesystem", func(t *testing.T) {
		dir := t.TempDir()
		test(t, func(t *testing.T) *Store { return newStore(t, dir) })
	})
	t.Run("s3", func(t *testing.T) {
		cfg := s3server.Start(t)
		test(t, func(t *testing.T) *Store { return newS3Store(t, cfg) })
	})
}

func TestCreateGetUpdateDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		s := open(t)
		now := time.Now().UTC()
		if err := s.CreateWorkspace(ctx, ws("ws-1", now)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateWorkspace(ctx, ws("ws-1", now)); !errors.Is(err, ErrExists) {
			t.Fatalf("second create: %v", err)
		}
		got, err := s.GetWorkspace(ctx, "ws-1")
		if err != nil || got.Tags["k"] != "v" || !got.CreatedAt.Equal(now) {
			t.Fatalf("get: %+v %v", got, err)
		}
		// Returned copies are the caller's: changing them does not change the store.
		got.Tags["k"] = "changed"
		if again, _ := s.GetWorkspace(ctx, "ws-1"); again.Tags["k"] != "v" {
			t.Fatal("a returned workspace aliases the cache")
		}
		boom := errors.New("refused")
		if _, err := s.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error { w.Alias = "x"; return boom }); !errors.Is(err, boom) {
			t.Fatalf("update error: %v", err)
		}
		if g, _ := s.GetWorkspace(ctx, "ws-1"); g.Alias != "" {
			t.Fatal("a refused update was applied")
		}
		up, err := s.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error { w.Alias = "new"; return nil })
		if err != nil || up.Alias != "new" || !up.UpdatedAt.After(now) {
			t.Fatalf("update: %+v %v", up, err)
		}
		if _, err := s.UpdateWorkspace(ctx, "ws-none", func(*Workspace) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update of missing: %v", err)
		}
		if _, err := s.GetWorkspace(ctx, "ws-none"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get of missing: %v", err)
		}
		if err := s.DeleteWorkspace(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetWorkspace(ctx, "ws-1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		// Deleting a missing object succeeds (S3 answers so); the store must agree.
		if err := s.DeleteWorkspace(ctx, "ws-1"); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
	})
}

func TestPersistsAcrossRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		s := open(t)
		base := time.Now().UTC()
		for i := range 5 {
			if err := s.CreateWorkspace(ctx, ws(fmt.Sprintf("ws-%d", i), base.Add(time.Duration(i)*time.Second))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.UpdateWorkspace(ctx, "ws-3", func(w *Workspace) error { w.Alias = "three"; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteWorkspace(ctx, "ws-2"); err != nil {
			t.Fatal(err)
		}
		s2 := open(t)
		if !s2.Ready() {
			t.Fatal("not ready after Load")
		}
		var ids []string
		for _, w := range s2.ListWorkspaces() {
			ids = append(ids, w.ID)
		}
		if got := strings.Join(ids, ","); got != "ws-0,ws-1,ws-3,ws-4" {
			t.Fatalf("after restart: %s", got)
		}
		if w, err := s2.GetWorkspace(ctx, "ws-3"); err != nil || w.Alias != "three" {
			t.Fatalf("updated workspace after restart: %+v %v", w, err)
		}
	})
}

func TestTwoStoresOnOneBucket(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open opener) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a, b := open(t), open(t)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = b.Run(ctx) }()
		defer wg.Wait()
		defer cancel()

		if err := a.CreateWorkspace(ctx, ws("ws-a", time.Now())); err != nil {
			t.Fatal(err)
		}
		// Read-through: b finds it at once by id.
		if _, err := b.GetWorkspace(ctx, "ws-a"); err != nil {
			t.Fatalf("b by id: %v", err)
		}
		if err := a.CreateWorkspace(ctx, ws("ws-b", time.Now())); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "b to list both workspaces", func() bool { return len(b.ListWorkspaces()) == 2 })
		// S3 lists last-modified times to the second, so the update may list the time of
		// the create; b re-reads objects that recent either way (the same-second case on
		// its own is TestS3RewriteWithinOneSecond).
		if _, err := a.UpdateWorkspace(ctx, "ws-b", func(w *Workspace) error { w.Alias = "renamed"; return nil }); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "b to see the new alias", func() bool {
			w, err := b.GetWorkspace(ctx, "ws-b")
			return err == nil && w.Alias == "renamed"
		})
		if err := a.DeleteWorkspace(ctx, "ws-a"); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "b to drop the deleted workspace", func() bool { return len(b.ListWorkspaces()) == 1 })
		select {
		case <-b.Changes():
		default:
			t.Fatal("no change notification")
		}
	})
}

func TestCorruptObjectDoesNotHideOthers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	if err := s.CreateWorkspace(ctx, ws("ws-good", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.bkt.Upload(ctx, objectName("ws-bad"), strings.NewReader("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := s.bkt.Upload(ctx, objectName("ws-liar"), strings.NewReader(`{"id":"ws-other"}`)); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, dir)
	if l := s2.ListWorkspaces(); len(l) != 1 || l[0].ID != "ws-good" {
		t.Fatalf("list with corrupt objects: %+v", l)
	}
	if _, err := s2.GetWorkspace(ctx, "ws-bad"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("get of corrupt object: %v", err)
	}
}

func TestConcurrentUpdatesAreSerialized(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, t.TempDir())
	if err := s.CreateWorkspace(ctx, ws("ws-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const n = 40
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error {
				w.Tags[fmt.Sprintf("t%d", i)] = "v"
				return nil
			}); err != nil {
				t.Error(err)
			}
			_ = s.ListWorkspaces()
		}()
	}
	wg.Wait()
	w, _ := s.GetWorkspace(ctx, "ws-1")
	if len(w.Tags) != n+1 {
		t.Fatalf("lost updates: %d tags, want %d", len(w.Tags), n+1)
	}
}

func TestFindByClientToken(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, t.TempDir())
	w := ws("ws-1", time.Now())
	w.ClientToken = "tok"
	if err := s.CreateWorkspace(ctx, w); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.FindByClientToken("tok"); !ok || got.ID != "ws-1" {
		t.Fatalf("find: %v %v", got, ok)
	}
	if _, ok := s.FindByClientToken("other"); ok {
		t.Fatal("found an unknown token")
	}
}

// UpdatedAt names a revision of a workspace record: every update makes it strictly later,
// even when the writer's clock stands still or is behind the previous writer's.
func TestUpdatedAtStrictlyIncreases(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := context.Background()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.CreateWorkspace(ctx, ws("ws-1", created)); err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return created.Add(-time.Hour) } // behind the record
	prev := created
	for i := range 3 {
		up, err := s.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error { w.Alias = fmt.Sprint(i); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !up.UpdatedAt.After(prev) {
			t.Fatalf("update %d: UpdatedAt %v, not after %v", i, up.UpdatedAt, prev)
		}
		prev = up.UpdatedAt
	}
}

// A process alone warns at load of records that only a cluster reads (written with
// heads), rather than start as if those workspaces were gone without a word.
func TestWarnsOfClusterRecords(t *testing.T) {
	b, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Upload(ctx, revisionsDir+"ws-cluster/01J0000000000000000000000.json", strings.NewReader(`{"id":"ws-cluster"}`)); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s := New(Config{PollInterval: time.Hour}, b, slog.New(slog.NewTextHandler(&log, nil)), prometheus.NewRegistry())
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "written by a cluster") || !strings.Contains(log.String(), "first=ws-cluster") {
		t.Fatalf("log: %s", log.String())
	}
}
