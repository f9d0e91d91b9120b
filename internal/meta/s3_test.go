package meta

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil/s3server"
)

// The metadata store on the S3 backend, against a real S3 server (versitygw) that the tests
// start; skipped when versitygw is not installed, except under CI=true. The acceptance
// tests shared with the filesystem backend are in store_test.go (forEachBackend); these are
// the S3-specific ones.

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
