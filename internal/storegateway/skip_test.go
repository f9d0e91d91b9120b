package storegateway

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/stratametrics/strata/internal/blocks"
)

// Blocks the caller holds locally (by ULID or by all their sources) are not read.
func TestQuerierSkipping(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	a := f.add(t, "a", floats("m", 0, 2, 0, 1000, 100))
	b := f.add(t, "b", floats("m", 0, 2, 1000, 2000, 100))
	upload(t, bkt, "ws-1", a, b)
	sg := newSG(t, testConfig(t.TempDir()), bkt)
	count := func(local func(ulid.ULID) bool) int {
		q, err := sg.QuerierSkipping(ctx, "ws-1", 0, 3000, local)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		n := 0
		for _, ss := range selectAll(t, q) {
			n += len(ss)
		}
		return n
	}
	all := count(nil)
	if all == 0 {
		t.Fatal("no samples")
	}
	onlyB := count(func(id ulid.ULID) bool { return id == a.id })
	if onlyB >= all || onlyB == 0 {
		t.Fatalf("skipping block a: %d of %d samples", onlyB, all)
	}
	if n := count(func(ulid.ULID) bool { return true }); n != 0 {
		t.Fatalf("every block local: %d samples from the bucket", n)
	}
}

// A block whose sources a compacted block holds (listed until its deletion delay ends) is
// neither downloaded nor read: the compacted block answers, each sample once.
func TestCoveredBlocksSkipped(t *testing.T) {
	bkt := newFSBucket(t)
	f := newFixture(t)
	a := f.add(t, "a", floats("m", 0, 2, 0, 1000, 100))
	b := f.add(t, "b", floats("m", 0, 2, 1000, 2000, 100))
	c := f.add(t, "c", concat(a.series, b.series))
	setSources(t, c, a.id, b.id)
	upload(t, bkt, "ws-1", a, b, c)
	sg := newSG(t, testConfig(t.TempDir()), bkt)
	checkRanges(t, sg, "ws-1", reference(t, a, b), timeRange{0, 3000}, timeRange{500, 1500})
	if got, want := cached(t, sg, "ws-1"), ids(c); !slices.Equal(got, want) {
		t.Fatalf("downloaded %v, want only the compacted block %v", got, want)
	}
}

// setSources makes b a compaction of sources.
func setSources(t *testing.T, b fixtureBlock, sources ...ulid.ULID) {
	t.Helper()
	path := filepath.Join(b.dir, "meta.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m tsdb.BlockMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m.Compaction.Level, m.Compaction.Sources = 2, sources
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// History names the oldest sample time and the imported blocks, as of the last sync; a
// covered block (a compaction's source) is not counted.
func TestHistory(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	a := f.add(t, "a", floats("m", 0, 2, 1000, 2000, 100))
	b := f.add(t, "b", floats("m", 0, 2, 2000, 3000, 100))
	old := f.add(t, "old", floats("m", 0, 2, 0, 1000, 100))
	if err := blocks.MarkImported(old.dir); err != nil {
		t.Fatal(err)
	}
	sg := newSG(t, testConfig(t.TempDir()), bkt)
	if _, _, ok, err := sg.History(ctx, "ws-1"); err != nil || ok {
		t.Fatalf("no blocks: ok %v, err %v", ok, err)
	}
	upload(t, bkt, "ws-1", a, b)
	check := func(wantOldest int64, wantImported ...ulid.ULID) {
		t.Helper()
		if err := sg.SyncWorkspace(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		oldest, imported, ok, err := sg.History(ctx, "ws-1")
		if err != nil || !ok || oldest != wantOldest || !slices.Equal(imported, wantImported) {
			t.Fatalf("History: %d %v %v %v, want %d %v", oldest, imported, ok, err, wantOldest, wantImported)
		}
	}
	check(1000)
	upload(t, bkt, "ws-1", old) // history backfilled
	check(0, old.id)
	c := f.add(t, "c", concat(old.series, a.series))
	setSources(t, c, old.id, a.id)
	upload(t, bkt, "ws-1", c) // compacted: the imported block is covered
	check(0)
}
