package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil/s3server"
)

// The metadata store on the S3 backend, against a real S3 server (versitygw) that the tests
// start; skipped when versitygw is not installed, except under CI=true. These mirror the
// filesystem tests in store_test.go.

// newS3Store opens a new bucket client on cfg, as a separate process would, and loads a
// Store from it.
func newS3Store(t *testing.T, cfg bucket.S3Config) *Store {
	t.Helper()
	b, err := bucket.New(bucket.Config{Backend: bucket.BackendS3, S3: cfg}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	s := New(Config{PollInterval: 10 * time.Millisecond}, b, nil, prometheus.NewRegistry())
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// On S3 the store lists with last-modified times, so a poll re-reads only what changed,
// instead of falling back to reading every object.
func TestS3ListsWithUpdatedAt(t *testing.T) {
	ctx := context.Background()
	s := newS3Store(t, s3server.Start(t))
	if !slices.Contains(s.bkt.SupportedIterOptions(), objstore.UpdatedAt) {
		t.Fatalf("the S3 bucket supports only %v", s.bkt.SupportedIterOptions())
	}
	if err := s.CreateWorkspace(ctx, ws("ws-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	var mod time.Time
	if err := s.bkt.IterWithAttributes(ctx, workspacesDir, func(a objstore.IterObjectAttributes) error {
		mod, _ = a.LastModified()
		return nil
	}, objstore.WithUpdatedAt()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(mod); mod.IsZero() || d < -time.Minute || d > time.Minute {
		t.Fatalf("listed last-modified time %v", mod)
	}
}

func TestS3CreateGetUpdateDelete(t *testing.T) {
	ctx := context.Background()
	s := newS3Store(t, s3server.Start(t))
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
	boom := errors.New("refused")
	if _, err := s.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error { w.Alias = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("update error: %v", err)
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
	// S3 deletes of a missing key succeed; the store must not turn that into an error.
	if err := s.DeleteWorkspace(ctx, "ws-1"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestS3PersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	cfg := s3server.Start(t)
	s := newS3Store(t, cfg)
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
	s2 := newS3Store(t, cfg)
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
}

func TestS3TwoStoresOnOneBucket(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := s3server.Start(t)
	a, b := newS3Store(t, cfg), newS3Store(t, cfg)
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
	eventually(t, func() bool { return len(b.ListWorkspaces()) == 2 }, "b lists both workspaces")
	// S3 gives last-modified times to the second. Update in a later second than the create,
	// so this test covers what the filesystem test covers; a rewrite within the same second
	// is TestS3RewriteWithinOneSecond.
	sleepToNextSecond()
	if _, err := a.UpdateWorkspace(ctx, "ws-b", func(w *Workspace) error { w.Alias = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		w, err := b.GetWorkspace(ctx, "ws-b")
		return err == nil && w.Alias == "renamed"
	}, "b sees the new alias")
	if err := a.DeleteWorkspace(ctx, "ws-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return len(b.ListWorkspaces()) == 1 }, "b drops the deleted workspace")
	select {
	case <-b.Changes():
	default:
		t.Fatal("no change notification")
	}
}

// Another process rewrites an object within the second in which b last read it. S3
// (versitygw here, AWS too) lists last-modified times to the whole second, so the listing
// shows the same time as before; the store re-reads recently modified objects for that.
func TestS3RewriteWithinOneSecond(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := s3server.Start(t)
	a, b := newS3Store(t, cfg), newS3Store(t, cfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.Run(ctx) }()
	defer wg.Wait()
	defer cancel()

	// Start early in a second so that all of the below happens within it; the server's
	// clock is this machine's.
	sleepToNextSecond()
	if err := a.CreateWorkspace(ctx, ws("ws-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	// b reads it by polling (not by id: read-through entries carry no time and are read again).
	eventually(t, func() bool { return len(b.ListWorkspaces()) == 1 }, "b lists the workspace")
	b.mu.RLock()
	readMod := b.workspaces["ws-1"].modTime
	b.mu.RUnlock()
	if _, err := a.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error { w.Alias = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	attrs, err := a.bkt.Attributes(ctx, objectName("ws-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !attrs.LastModified.Equal(readMod) {
		t.Logf("the rewrite fell into a later second (%v, read %v): this run does not test the same-second case", attrs.LastModified, readMod)
	}
	eventually(t, func() bool {
		w, err := b.GetWorkspace(ctx, "ws-1")
		return err == nil && w.Alias == "renamed"
	}, "b sees the rewrite")
}

// sleepToNextSecond sleeps until just after the next whole second of the wall clock.
func sleepToNextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 10*time.Millisecond).Sub(now))
}
