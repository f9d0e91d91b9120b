package meta

import (
	"context"
	"slices"
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
// Which second a real write falls in is up to the server's clock, so b lists through
// pinnedTimes, which shows the rewrite as S3 does one within the same second, and b's
// clock is set a second after that time.
func TestS3RewriteWithinOneSecond(t *testing.T) {
	ctx := context.Background()
	cfg := s3server.Start(t)
	a, b := newS3Store(t, cfg), newS3Store(t, cfg)
	b.bkt = &pinnedTimes{Bucket: b.bkt, first: map[string]time.Time{}}

	if err := a.CreateWorkspace(ctx, ws("ws-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	// b reads it by polling (not by id: read-through entries carry no time and are read again).
	if err := b.poll(ctx); err != nil {
		t.Fatal(err)
	}
	b.mu.RLock()
	e := b.workspaces["ws-1"]
	b.mu.RUnlock()
	if e == nil || e.modTime.IsZero() {
		t.Fatalf("b did not list ws-1 with its time: %+v", e)
	}
	readMod := e.modTime
	b.now = func() time.Time { return readMod.Add(time.Second) }
	if _, err := a.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error { w.Alias = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.poll(ctx); err != nil {
		t.Fatal(err)
	}
	b.mu.RLock()
	listed := b.workspaces["ws-1"].modTime
	b.mu.RUnlock()
	if !listed.Equal(readMod) {
		t.Fatalf("the rewrite listed %v, not the time b read before (%v)", listed, readMod)
	}
	if w, err := b.GetWorkspace(ctx, "ws-1"); err != nil || w.Alias != "renamed" {
		t.Fatalf("b after the rewrite: alias %q, %v; want renamed", w.Alias, err)
	}
}

// pinnedTimes lists every object with the last-modified time of its first listing, as S3
// lists an object rewritten within the second it was last listed in. Not safe for
// concurrent use.
type pinnedTimes struct {
	objstore.Bucket
	first map[string]time.Time
}

func (p *pinnedTimes) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, options ...objstore.IterOption) error {
	return p.Bucket.IterWithAttributes(ctx, dir, func(a objstore.IterObjectAttributes) error {
		if mod, ok := a.LastModified(); ok {
			if first, seen := p.first[a.Name]; seen {
				a.SetLastModified(first)
			} else {
				p.first[a.Name] = mod
			}
		}
		return f(a)
	}, options...)
}
