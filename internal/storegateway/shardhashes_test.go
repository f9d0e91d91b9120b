package storegateway

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
)

// querierOver uploads blocks into workspace ws-1 and opens a store-gateway's querier over
// them (closed at the end of the test).
func querierOver(t *testing.T, bkt objstore.Bucket, bs ...fixtureBlock) (*StoreGateway, storage.Querier) {
	t.Helper()
	upload(t, bkt, "ws-1", bs...)
	sg := newSG(t, testConfig(t.TempDir()), bkt)
	q, err := sg.Querier(context.Background(), "ws-1", 0, 3000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return sg, q
}

// A sharded select over bucket blocks returns exactly the series of its shard (by
// labels.StableHash, as the TSDB shards), from the kept hashes; the shards together are
// the unsharded answer. Two blocks, a selector matching a subset of the series.
func TestShardedSelect(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	a := f.add(t, "a", concat(floats("m", 0, 200, 0, 1000, 100), floats("other", 0, 50, 0, 1000, 100)))
	b := f.add(t, "b", floats("m", 100, 300, 1000, 2000, 100))
	sg, q := querierOver(t, bkt, a, b)
	m := labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "m")
	all := selectAll(t, q, m)
	if len(all) != 300 {
		t.Fatalf("%d series, want 300", len(all))
	}
	const shards = 3
	seen := 0
	for shard := range uint64(shards) {
		ss := q.Select(ctx, true, &storage.SelectHints{Start: 0, End: 3000, ShardIndex: shard, ShardCount: shards}, m)
		for ss.Next() {
			lset := ss.At().Labels()
			if labels.StableHash(lset)%shards != shard {
				t.Errorf("shard %d returned %s of shard %d", shard, lset, labels.StableHash(lset)%shards)
			}
			if _, ok := all[lset.String()]; !ok {
				t.Errorf("shard %d returned %s, not in the unsharded answer", shard, lset)
			}
			seen++
		}
		if err := ss.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if seen != len(all) {
		t.Errorf("the shards returned %d series, unsharded %d", seen, len(all))
	}
	// The hashes were kept, once per block: every block listed all its series.
	sg.mu.Lock()
	defer sg.mu.Unlock()
	for _, lb := range sg.local["ws-1"] {
		if want := len(f.blocks["a"].series); lb.id == a.id && len(lb.hashes.refs) != want {
			t.Errorf("block a keeps %d hashes, want %d", len(lb.hashes.refs), want)
		}
		if want := len(f.blocks["b"].series); lb.id == b.id && len(lb.hashes.refs) != want {
			t.Errorf("block b keeps %d hashes, want %d", len(lb.hashes.refs), want)
		}
	}
}

// Tombstones still hide what they delete through the store-gateway's blocks (which skip
// the per-series lookup when a block has none): a block whose series m{i="1..."} are
// deleted over part of its range answers without those samples, sharded or not, and a
// block without tombstones answers whole.
func TestBlocksKeepTheirTombstones(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	a := f.add(t, "a", floats("m", 0, 40, 0, 1000, 100))
	b := f.add(t, "b", floats("m", 0, 40, 1000, 2000, 100))
	del := labels.MustNewMatcher(labels.MatchRegexp, "i", "1.*")
	blk, err := tsdb.OpenBlock(nil, a.dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := blk.Delete(ctx, 0, 499, del); err != nil {
		t.Fatal(err)
	}
	if err := blk.Close(); err != nil {
		t.Fatal(err)
	}
	_, q := querierOver(t, bkt, a, b)
	m := labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "m")
	isDeleted := map[string]bool{}
	for _, s := range a.series {
		isDeleted[s.lset.String()] = del.Matches(s.lset.Get("i"))
	}
	check := func(got map[string][]sample) {
		t.Helper()
		if len(got) != 40 {
			t.Fatalf("%d series, want 40", len(got))
		}
		for s, samples := range got {
			deleted := isDeleted[s]
			for _, smp := range samples {
				if deleted && smp.t <= 499 {
					t.Fatalf("%s: sample at %d was deleted", s, smp.t)
				}
			}
			if want := 20; !deleted && len(samples) != want {
				t.Fatalf("%s: %d samples, want %d", s, len(samples), want)
			}
			if want := 15; deleted && len(samples) != want {
				t.Fatalf("%s: %d samples, want %d (5 deleted)", s, len(samples), want)
			}
		}
	}
	check(selectAll(t, q, m))
	sharded := map[string][]sample{}
	for shard := range uint64(2) {
		ss := q.Select(ctx, true, &storage.SelectHints{Start: 0, End: 3000, ShardIndex: shard, ShardCount: 2}, m)
		for ss.Next() {
			s := ss.At()
			it := s.Iterator(nil)
			for it.Next() != chunkenc.ValNone {
				ts, v := it.At()
				sharded[s.Labels().String()] = append(sharded[s.Labels().String()], sample{t: ts, f: v})
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := ss.Err(); err != nil {
			t.Fatal(err)
		}
	}
	check(sharded)
}
