package storegateway

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// Many queriers at once on the same blocks, from a cold cache: each block is downloaded
// once, and every querier sees exactly the reference's samples. Then the same with a disk
// budget of about one block and syncs and workspace deletions running alongside, so that
// blocks are evicted, dropped and downloaded again while queries read them.
func TestConcurrentQueriers(t *testing.T) {
	bkt := newCountingBucket(newFSBucket(t))
	f := newFixture(t)
	bs := []fixtureBlock{
		f.add(t, "b0", floats("up", 0, 20, 0, 1000, 10)),
		f.add(t, "b1", floats("up", 0, 20, 1000, 2000, 10)),
		f.add(t, "b2", floats("up", 0, 20, 1000, 2000, 10)),
		f.add(t, "b3", floats("up", 10, 30, 1505, 2505, 10)),
		f.add(t, "b4", concat(histograms("latency", 3000, 4000, 10), floats("up", 0, 5, 3000, 4000, 10))),
		f.add(t, "b5", floats("up", 0, 20, 4000, 5000, 10)),
	}
	upload(t, bkt.Bucket, "ws", bs...)
	ref := reference(t, bs...)
	qranges := append([]timeRange{{0, 5000}, {4500, 4600}, {1995, 3005}}, ranges...)
	want := make([]map[string][]sample, len(qranges))
	for i, r := range qranges {
		want[i] = selectAll(t, mustQuerier(t, ref, r.mint, r.maxt))
	}

	const workers, iterations = 16, 15
	run := func(t *testing.T, sg *StoreGateway, background func(stop <-chan struct{})) {
		stop := make(chan struct{})
		var bg sync.WaitGroup
		if background != nil {
			bg.Go(func() { background(stop) })
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				<-start
				for i := range iterations {
					k := rng.IntN(len(qranges))
					if i == 0 {
						k = 0 // everyone starts on every block at once
					}
					r := qranges[k]
					q, err := sg.Querier(context.Background(), "ws", r.mint, r.maxt)
					if err != nil {
						t.Error(err)
						return
					}
					got := selectAll(t, q)
					if err := q.Close(); err != nil {
						t.Error(err)
					}
					if d := diffSamples(got, want[k]); d != "" {
						t.Errorf("range [%d, %d]:\n%s", r.mint, r.maxt, d)
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		close(stop)
		bg.Wait()
	}

	t.Run("cold cache", func(t *testing.T) {
		sg := newSG(t, testConfig(t.TempDir()), bkt)
		run(t, sg, nil)
		for _, b := range bs {
			if n := bkt.gets()[b.id]; n != 1 {
				t.Errorf("block %s downloaded %d times, want once", b.id, n)
			}
		}
		if n := promtest.ToFloat64(sg.m.loads); n != float64(len(bs)) {
			t.Errorf("blocks loaded %v, want %d", n, len(bs))
		}
	})

	t.Run("evictions and syncs", func(t *testing.T) {
		probe := newSG(t, testConfig(t.TempDir()), bkt)
		checkRanges(t, probe, "ws", ref, timeRange{0, 999})
		size := promtest.ToFloat64(probe.m.diskBytes)
		probe.Close()

		cfg := testConfig(t.TempDir())
		cfg.DiskBudgetBytes = int64(size)
		cfg.DownloadConcurrency = 2
		sg := newSG(t, cfg, bkt)
		run(t, sg, func(stop <-chan struct{}) {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%10 == 9 {
					if err := sg.DeleteWorkspace("ws"); err != nil {
						t.Error(err)
					}
				} else if err := sg.SyncWorkspace(context.Background(), "ws"); err != nil {
					t.Error(err)
				}
			}
		})
		// Under that churn the blocks over the budget may all have been dropped by the
		// deletions rather than evicted (it depends on the scheduling); two blocks read
		// one after the other, idle in between, show the eviction itself.
		checkRanges(t, sg, "ws", ref, timeRange{0, 999})
		checkRanges(t, sg, "ws", ref, timeRange{4000, 5000})
		if n := promtest.ToFloat64(sg.m.removals.WithLabelValues(reasonDiskBudget)); n == 0 {
			t.Error("no block was evicted")
		}
		// Idle again: the cache fits its budget, and its accounting matches the disk.
		if b := promtest.ToFloat64(sg.m.diskBytes); b > float64(cfg.DiskBudgetBytes) {
			t.Errorf("%v bytes cached, budget %d", b, cfg.DiskBudgetBytes)
		}
		onDisk := len(cached(t, sg, "ws"))
		if n := promtest.ToFloat64(sg.m.blocksOnDisk); n != float64(onDisk) {
			t.Errorf("blocks on disk: metric %v, directory %d", n, onDisk)
		}
		total, err := dirSize(sg.dir)
		if err != nil {
			t.Fatal(err)
		}
		if b := promtest.ToFloat64(sg.m.diskBytes); b != float64(total) {
			t.Errorf("disk bytes: metric %v, directory %d", b, total)
		}
	})
}
