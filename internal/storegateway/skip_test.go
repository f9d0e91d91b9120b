package storegateway

import (
	"context"
	"testing"

	"github.com/oklog/ulid/v2"
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
