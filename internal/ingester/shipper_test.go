package ingester

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/limits"
)

func localBlocks(t *testing.T, i *Ingester, ws string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(i.dir, ws))
	var out []string
	for _, e := range entries {
		if _, err := ulid.ParseStrict(e.Name()); err == nil && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestShipBlocks(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	cfg := Config{TSDB: TSDBConfig{BlockRange: time.Minute, LocalRetention: 2 * time.Minute}}
	lim := defaultLimits(t, func(l *limits.Limits) { l.OutOfOrderTimeWindow = 0 })
	i := newIngesterWithBucket(t, cfg, lim, ws, bkt)
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Minute).UnixMilli()
	for k := int64(0); k <= 10; k++ {
		if _, err := i.Push(ctx, "ws-1", request(t, t0+k*60_000, float64(k), []string{"m"}), ingest.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := i.get(ctx, "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	u.release()
	cut := localBlocks(t, i, "ws-1")
	if len(cut) == 0 {
		t.Fatal("no block cut")
	}
	// Nothing is deleted locally before it is in the bucket.
	if err := u.db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got := localBlocks(t, i, "ws-1"); len(got) != len(cut) {
		t.Fatalf("unshipped blocks deleted locally: %v → %v", cut, got)
	}
	if err := i.ShipOnce(ctx); err != nil {
		t.Fatal(err)
	}
	inBucket, err := blocks.List(ctx, bkt, "ws-1")
	if err != nil || len(inBucket) != len(cut) {
		t.Fatalf("bucket holds %d blocks (%v), want %d", len(inBucket), err, len(cut))
	}
	// Once shipped, blocks past the local retention go from local disk.
	if _, err := i.Push(ctx, "ws-1", request(t, t0+11*60_000, 11, []string{"m"}), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	u, _ = i.get(ctx, "ws-1")
	if err := u.db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	u.release()
	if got := localBlocks(t, i, "ws-1"); len(got) >= len(cut) {
		t.Fatalf("shipped blocks past retention stay local: %d of %d", len(got), len(cut))
	}
	// A second pass uploads nothing new.
	before := len(inBucket)
	_ = i.ShipOnce(ctx)
	if l, _ := blocks.List(ctx, bkt, "ws-1"); len(l) < before {
		t.Fatalf("blocks vanished from the bucket: %d", len(l))
	}
}

// A block cut before a crash is uploaded by the next process on the same directory.
func TestShipPendingBlocksAfterRestart(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	cfg := Config{TSDB: TSDBConfig{BlockRange: time.Minute}}
	lim := defaultLimits(t, func(l *limits.Limits) { l.OutOfOrderTimeWindow = 0 })
	i := newIngesterWithBucket(t, cfg, lim, ws, nil) // no bucket: nothing uploads
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Minute).UnixMilli()
	for k := int64(0); k <= 5; k++ {
		i.Push(ctx, "ws-1", request(t, t0+k*60_000, float64(k), []string{"m"}), ingest.Options{})
	}
	u, _ := i.get(ctx, "ws-1")
	if err := u.db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	u.release()
	if err := i.closeAll(); err != nil {
		t.Fatal(err)
	}
	n := len(localBlocks(t, i, "ws-1"))
	if n == 0 {
		t.Fatal("no block cut")
	}
	cfg.TSDB.Dir = i.dir
	j := newIngesterWithBucket(t, cfg, lim, ws, bkt)
	if err := j.ShipOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := blocks.List(ctx, bkt, "ws-1"); len(l) != n {
		t.Fatalf("after restart the bucket holds %d blocks, want %d", len(l), n)
	}
}
