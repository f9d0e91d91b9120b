package storegateway

import (
	"context"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/testutil/s3server"
)

// The ranges every comparison covers: everything, single blocks, block edges, the
// overlaps, a gap between blocks, single instants and nothing at all.
var ranges = []timeRange{
	{math.MinInt64, math.MaxInt64},
	{0, 10_000},
	{0, 500},
	{995, 1005},
	{1000, 1000},
	{1500, 2000},
	{1990, 2510},
	{2400, 3500},
	{2600, 2900},
	{3990, 3990},
	{-100, -1},
	{500, 100},
}

func TestStoreGatewayFilesystem(t *testing.T) {
	testStoreGateway(t, newFSBucket(t))
}

// The same against a real S3 server (versitygw); skipped when it is not installed,
// except under CI=true.
func TestStoreGatewayS3(t *testing.T) {
	cfg := bucket.Config{Backend: bucket.BackendS3, S3: s3server.Start(t)}
	bkt, err := bucket.New(cfg, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	testStoreGateway(t, bkt)
}

// testStoreGateway is the acceptance test of the store-gateway on one bucket backend.
func testStoreGateway(t *testing.T, raw objstore.Bucket) {
	ctx := context.Background()
	const ws = "ws-1"
	f := newFixture(t)
	b0 := f.add(t, "b0", floats("up", 0, 20, 0, 1000, 10))
	b1 := f.add(t, "b1", floats("up", 0, 20, 1000, 2000, 10))
	b2 := f.add(t, "b2", floats("up", 0, 20, 1000, 2000, 10)) // b1 again: identical samples
	// Overlaps b1 and b2 with other timestamps, and adds series.
	b3 := f.add(t, "b3", floats("up", 10, 30, 1505, 2505, 10))
	b4 := f.add(t, "b4", concat(histograms("latency", 3000, 4000, 10), floats("up", 0, 5, 3000, 4000, 10)))
	upload(t, raw, ws, b0, b1, b2, b3, b4)
	// Another workspace's block and a partial upload (no meta.json) are never served.
	other := f.add(t, "other", floats("secret", 0, 3, 0, 4000, 10))
	upload(t, raw, "ws-2", other)
	partial := f.add(t, "partial", floats("partial", 0, 3, 0, 4000, 10))
	for _, name := range []string{blocks.IndexFilename, "chunks/000001"} {
		fh, err := os.Open(filepath.Join(partial.dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		err = raw.Upload(ctx, blocks.Dir(ws, partial.id)+name, fh)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	bkt := newCountingBucket(raw)
	dir := t.TempDir()
	reg := prometheus.NewPedanticRegistry()
	sg, err := New(testConfig(dir), "", bkt, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	live := []fixtureBlock{b0, b1, b2, b3, b4}
	ref := reference(t, live...)

	// Only the blocks overlapping the range are downloaded.
	checkRanges(t, sg, ws, ref, timeRange{0, 500})
	if got := bkt.gets(); len(got) != 1 || got[b0.id] != 1 {
		t.Fatalf("a query of [0, 500] downloaded %v, want only b0 %s", got, b0.id)
	}
	checkRanges(t, sg, ws, ref, timeRange{2600, 2900}) // the gap: nothing to download
	if got := cached(t, sg, ws); !slices.Equal(got, ids(b0)) {
		t.Fatalf("cache holds %v, want b0 only", got)
	}

	checkRanges(t, sg, ws, ref, ranges...)
	for _, b := range live {
		if n := bkt.gets()[b.id]; n != 1 {
			t.Fatalf("block %s downloaded %d times, want once", b.id, n)
		}
	}
	if n := promtest.ToFloat64(sg.m.loads); n != 5 {
		t.Fatalf("blocks loaded: %v, want 5", n)
	}
	if got := cached(t, sg, ws); !slices.Equal(got, ids(live...)) {
		t.Fatalf("cache holds %v, want %v", got, ids(live...))
	}
	// Label queries see the merged blocks too.
	q, err := sg.Querier(ctx, ws, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	names, _, err := q.LabelValues(ctx, "__name__", nil)
	if err != nil || !slices.Equal(names, []string{"latency", "up"}) {
		t.Fatalf("metric names %v, %v", names, err)
	}
	jobs, _, err := q.LabelValues(ctx, "i", nil, labels.MustNewMatcher(labels.MatchEqual, "job", "j0"))
	if err != nil || len(jobs) != 10 { // i = 0, 3, ..., 27
		t.Fatalf("values of i for job j0: %v, %v", jobs, err)
	}
	q.Close()

	// A new block is invisible until the workspace syncs.
	b5 := f.add(t, "b5", floats("late", 0, 4, 5000, 6000, 10))
	upload(t, raw, ws, b5)
	checkRanges(t, sg, ws, ref, timeRange{4000, 7000})
	if err := sg.SyncWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	live = append(live, b5)
	ref = reference(t, live...)
	checkRanges(t, sg, ws, ref, ranges...)

	// A block deleted in the bucket disappears at the next sync, with its local copy.
	if err := blocks.Delete(ctx, raw, ws, b3.id); err != nil {
		t.Fatal(err)
	}
	if err := sg.SyncWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	live = slices.DeleteFunc(live, func(b fixtureBlock) bool { return b.id == b3.id })
	ref = reference(t, live...)
	checkRanges(t, sg, ws, ref, ranges...)
	if got := cached(t, sg, ws); slices.Contains(got, b3.id) {
		t.Fatalf("deleted block %s still cached: %v", b3.id, got)
	}
	if n := promtest.ToFloat64(sg.m.removals.WithLabelValues(reasonDeleted)); n != 1 {
		t.Fatalf("blocks removed as deleted: %v, want 1", n)
	}

	// A block deleted after the listing, before its download, is skipped...
	b6 := f.add(t, "b6", floats("gone", 0, 2, 7000, 8000, 10))
	upload(t, raw, ws, b6)
	if err := sg.SyncWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if err := blocks.Delete(ctx, raw, ws, b6.id); err != nil {
		t.Fatal(err)
	}
	checkRanges(t, sg, ws, ref, ranges...)
	skipped := promtest.ToFloat64(sg.m.blocksSkipped)
	if skipped == 0 {
		t.Fatal("block deleted before its download not counted as skipped")
	}
	// ... and so is one deleted in the middle of its download.
	b7 := f.add(t, "b7", floats("gone", 0, 2, 8000, 9000, 10))
	upload(t, raw, ws, b7)
	if err := sg.SyncWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	var fired bool
	bkt.setHook(func(name string) {
		if strings.HasPrefix(name, blocks.Dir(ws, b7.id)) && strings.HasSuffix(name, blocks.IndexFilename) {
			fired = true
			if err := blocks.Delete(ctx, raw, ws, b7.id); err != nil {
				t.Error(err)
			}
		}
	})
	checkRanges(t, sg, ws, ref, ranges...)
	bkt.setHook(nil)
	if n := promtest.ToFloat64(sg.m.blocksSkipped); !fired || n <= skipped {
		t.Fatalf("block deleted during its download: hook fired %v, skipped %v then %v", fired, skipped, n)
	}
	if got := cached(t, sg, ws); !slices.Equal(got, ids(live...)) { // no leftovers of b6, b7
		t.Fatalf("cache holds %v, want %v", got, ids(live...))
	}

	// The other workspace holds its own data only.
	checkRanges(t, sg, "ws-2", reference(t, other), ranges...)
	if err := sg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sg.Querier(ctx, ws, 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("querier after close: %v", err)
	}

	// Restart on the same directory: the cached blocks are served without a download.
	before := bkt.gets()
	// A download interrupted by a crash leaves a temporary directory behind.
	leftover := filepath.Join(dir, ws, b3.id.String()+".tmp-download")
	if err := os.MkdirAll(filepath.Join(leftover, "chunks"), 0o755); err != nil {
		t.Fatal(err)
	}
	sg2 := newSG(t, testConfig(dir), bkt)
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover download not removed: %v", err)
	}
	if n := promtest.ToFloat64(sg2.m.diskBytes); n <= 0 {
		t.Fatalf("disk bytes after restart: %v", n)
	}
	checkRanges(t, sg2, ws, ref, ranges...)
	if got := bkt.gets(); !mapsEqual(got, before) {
		t.Fatalf("restart downloaded blocks again: before %v, after %v", before, got)
	}
	if n := promtest.ToFloat64(sg2.m.loads); n != 0 {
		t.Fatalf("blocks loaded after restart: %v, want 0", n)
	}

	// The metrics are registered and well-formed.
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A block the bucket deleted while the store-gateway was down is removed from the cache
// by the first sync after the restart.
func TestRestartDropsBlocksDeletedMeanwhile(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	b0 := f.add(t, "b0", floats("up", 0, 3, 0, 1000, 10))
	b1 := f.add(t, "b1", floats("up", 0, 3, 1000, 2000, 10))
	upload(t, bkt, "ws", b0, b1)
	dir := t.TempDir()
	sg := newSG(t, testConfig(dir), bkt)
	checkRanges(t, sg, "ws", reference(t, b0, b1), timeRange{0, 2000})
	if err := sg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := blocks.Delete(ctx, bkt, "ws", b1.id); err != nil {
		t.Fatal(err)
	}

	sg2 := newSG(t, testConfig(dir), bkt)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- sg2.Run(runCtx) }()
	testutil.Eventually(t, 10*time.Second, "Run to remove the local copy of the deleted block", func() bool { return slices.Equal(cached(t, sg2, "ws"), ids(b0)) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Run refreshes block lists on its own, and closes the store-gateway when it stops.
func TestRunSyncs(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	b0 := f.add(t, "b0", floats("up", 0, 3, 0, 1000, 10))
	upload(t, bkt, "ws", b0)
	cfg := testConfig(t.TempDir())
	cfg.SyncInterval = 10 * time.Millisecond
	sg := newSG(t, cfg, bkt)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- sg.Run(runCtx) }()

	checkRanges(t, sg, "ws", reference(t, b0), timeRange{0, 5000}) // first use syncs
	b1 := f.add(t, "b1", floats("up", 0, 3, 1000, 2000, 10))
	upload(t, bkt, "ws", b1)
	ref := reference(t, b0, b1)
	testutil.Eventually(t, 10*time.Second, "Run to sync the uploaded block", func() bool {
		q, err := sg.Querier(ctx, "ws", 0, 5000)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		return diffSamples(selectAll(t, q), selectAll(t, mustQuerier(t, ref, 0, 5000))) == ""
	})
	// A querier left open across the stop still reads; its blocks close when it does.
	q, err := sg.Querier(ctx, "ws", 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := selectAll(t, q); len(got) != 3 {
		t.Fatalf("querier open across the stop: %d series", len(got))
	}
	q.Close()
	if n := promtest.ToFloat64(sg.m.blocksOpen); n != 0 {
		t.Fatalf("%v blocks still open after stop", n)
	}
	if _, err := sg.Querier(ctx, "ws", 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("querier after stop: %v", err)
	}
	if c := histogramCount(t, sg.m.syncDuration); c < 2 {
		t.Fatalf("%d syncs, want several", c)
	}
}

func histogramCount(t testing.TB, h prometheus.Histogram) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs[0].GetMetric()[0].GetHistogram().GetSampleCount()
}

func mustQuerier(t testing.TB, db *tsdb.DB, mint, maxt int64) storage.Querier {
	t.Helper()
	r, err := db.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// The disk budget evicts the least recently used blocks, never one an open querier reads.
func TestDiskBudget(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	var bs []fixtureBlock
	for i := range 4 {
		mint := int64(i) * 1000
		bs = append(bs, f.add(t, "b", floats("up", 0, 50, mint, mint+1000, 10)))
	}
	upload(t, bkt, "ws", bs...)
	ref := reference(t, bs...)
	blockRange := func(i int) timeRange { return timeRange{int64(i) * 1000, int64(i)*1000 + 999} }

	// Measure a block's size with an unlimited cache.
	probe := newSG(t, testConfig(t.TempDir()), bkt)
	checkRanges(t, probe, "ws", ref, blockRange(0))
	size := promtest.ToFloat64(probe.m.diskBytes)
	probe.Close()

	cfg := testConfig(t.TempDir())
	cfg.DiskBudgetBytes = int64(size*2 + size/2) // two blocks and a half
	sg := newSG(t, cfg, bkt)
	held, err := sg.Querier(ctx, "ws", blockRange(0).mint, blockRange(0).maxt)
	if err != nil {
		t.Fatal(err)
	}
	checkRanges(t, sg, "ws", ref, blockRange(1))
	checkRanges(t, sg, "ws", ref, blockRange(2)) // b1 goes: b0 is held
	if got := cached(t, sg, "ws"); !slices.Equal(got, ids(bs[0], bs[2])) {
		t.Fatalf("cache holds %v, want b0 and b2", got)
	}
	checkRanges(t, sg, "ws", ref, blockRange(3)) // b2 goes
	if got := cached(t, sg, "ws"); !slices.Equal(got, ids(bs[0], bs[3])) {
		t.Fatalf("cache holds %v, want b0 and b3", got)
	}
	// The held querier still reads b0.
	rq := mustQuerier(t, ref, blockRange(0).mint, blockRange(0).maxt)
	if d := diffSamples(selectAll(t, held), selectAll(t, rq)); d != "" {
		t.Fatalf("held querier: %s", d)
	}
	held.Close()
	checkRanges(t, sg, "ws", ref, blockRange(1)) // b0 is now the least recently used
	if got := cached(t, sg, "ws"); !slices.Equal(got, ids(bs[1], bs[3])) {
		t.Fatalf("cache holds %v, want b1 and b3", got)
	}
	if n := promtest.ToFloat64(sg.m.removals.WithLabelValues(reasonDiskBudget)); n != 3 {
		t.Fatalf("budget evictions: %v, want 3", n)
	}

	// A query wider than the budget runs; the cache shrinks back when it closes.
	q, err := sg.Querier(ctx, "ws", 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if got := cached(t, sg, "ws"); len(got) != 4 {
		t.Fatalf("cache holds %v while a query reads all 4 blocks", got)
	}
	if d := diffSamples(selectAll(t, q), selectAll(t, mustQuerier(t, ref, 0, 5000))); d != "" {
		t.Fatal(d)
	}
	q.Close()
	if got := cached(t, sg, "ws"); len(got) != 2 {
		t.Fatalf("cache holds %v after the wide query closed, want 2 blocks", got)
	}
	if b := promtest.ToFloat64(sg.m.diskBytes); b > float64(cfg.DiskBudgetBytes) {
		t.Fatalf("%v bytes cached, over the budget of %d", b, cfg.DiskBudgetBytes)
	}
}

// DeleteWorkspace removes the local copies at once, or when their last querier closes.
func TestDeleteWorkspace(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	b0 := f.add(t, "b0", floats("up", 0, 3, 0, 1000, 10))
	b1 := f.add(t, "b1", floats("up", 0, 3, 1000, 2000, 10))
	upload(t, bkt, "ws", b0, b1)
	sg := newSG(t, testConfig(t.TempDir()), bkt)
	checkRanges(t, sg, "ws", reference(t, b0, b1), timeRange{0, 2000})
	held, err := sg.Querier(ctx, "ws", 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	if err := sg.DeleteWorkspace("ws"); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, sg, "ws"); !slices.Equal(got, ids(b0)) {
		t.Fatalf("cache holds %v, want only b0 (held)", got)
	}
	if got := selectAll(t, held); len(got) != 3 {
		t.Fatalf("held querier reads %d series", len(got))
	}
	held.Close()
	if got := cached(t, sg, "ws"); len(got) != 0 {
		t.Fatalf("cache holds %v after the last querier closed", got)
	}
	if n := promtest.ToFloat64(sg.m.diskBytes); n != 0 {
		t.Fatalf("%v bytes cached after delete", n)
	}
	// The workspace can be queried again: the bucket still has its blocks.
	checkRanges(t, sg, "ws", reference(t, b0, b1), timeRange{0, 2000})
	if err := sg.DeleteWorkspace("ws"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sg.dir, "ws")); !os.IsNotExist(err) {
		t.Fatalf("workspace directory left behind: %v", err)
	}
}

func TestInvalidWorkspace(t *testing.T) {
	sg := newSG(t, testConfig(t.TempDir()), newFSBucket(t))
	for _, ws := range []string{"", "..", "a/b", "../x", ".hidden"} {
		if _, err := sg.Querier(context.Background(), ws, 0, 1); err == nil {
			t.Errorf("workspace %q accepted", ws)
		}
		if err := sg.SyncWorkspace(context.Background(), ws); err == nil {
			t.Errorf("workspace %q accepted by SyncWorkspace", ws)
		}
	}
	// A workspace with nothing in the bucket is empty, not an error.
	q, err := sg.Querier(context.Background(), "empty", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if got := selectAll(t, q); len(got) != 0 {
		t.Fatalf("empty workspace: %v", got)
	}
	q.Close()
}

// A bucket that fails makes the query fail, and the failed sync is counted.
func TestBucketErrors(t *testing.T) {
	ctx := context.Background()
	raw := newFSBucket(t)
	f := newFixture(t)
	b0 := f.add(t, "b0", floats("up", 0, 3, 0, 1000, 10))
	upload(t, raw, "ws", b0)
	bkt := &failingBucket{Bucket: raw}
	sg := newSG(t, testConfig(t.TempDir()), bkt)
	bkt.failIter = true
	if _, err := sg.Querier(ctx, "ws", 0, 1000); err == nil {
		t.Fatal("query succeeded while the bucket cannot list")
	}
	if n := promtest.ToFloat64(sg.m.syncFailures); n != 1 {
		t.Fatalf("sync failures %v", n)
	}
	bkt.failIter = false
	if err := sg.SyncWorkspace(ctx, "ws"); err != nil {
		t.Fatal(err)
	}
	bkt.failGetIndex = true
	if _, err := sg.Querier(ctx, "ws", 0, 1000); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("query with a failing download: %v", err)
	}
	if got := cached(t, sg, "ws"); len(got) != 0 {
		t.Fatalf("failed download left %v", got)
	}
	bkt.failGetIndex = false
	checkRanges(t, sg, "ws", reference(t, b0), timeRange{0, 1000})
}

type failingBucket struct {
	objstore.Bucket
	failIter, failGetIndex bool // set between calls only
}

var errInjected = errors.New("injected failure")

func (b *failingBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	if b.failIter {
		return errInjected
	}
	return b.Bucket.Iter(ctx, dir, f, opts...)
}

func (b *failingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.failGetIndex && strings.HasSuffix(name, "/index") {
		return nil, errInjected
	}
	return b.Bucket.Get(ctx, name)
}

func TestConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.DiskBudgetBytes != DefaultDiskBudgetBytes || cfg.SyncInterval != time.Minute || cfg.IdleClose != time.Hour {
		t.Fatalf("defaults: %+v", cfg)
	}
	var n int
	fs.VisitAll(func(fl *flag.Flag) {
		if !strings.HasPrefix(fl.Name, "store-gateway.") {
			t.Errorf("flag %s outside store-gateway.", fl.Name)
		}
		n++
	})
	if n != 5 {
		t.Errorf("%d flags, want one per field (5)", n)
	}
	if err := fs.Parse([]string{"-store-gateway.disk-budget-bytes=0", "-store-gateway.sync-interval=5s", "-store-gateway.dir=/x"}); err != nil {
		t.Fatal(err)
	}
	if cfg.DiskBudgetBytes != 0 || cfg.SyncInterval != 5*time.Second || cfg.Dir != "/x" || cfg.Validate() != nil {
		t.Fatalf("parsed: %+v", cfg)
	}
	for _, bad := range []Config{
		{DiskBudgetBytes: -1, SyncInterval: time.Second, DownloadConcurrency: 1},
		{SyncInterval: 0, DownloadConcurrency: 1},
		{SyncInterval: time.Second, DownloadConcurrency: 0},
		{SyncInterval: time.Second, DownloadConcurrency: 1, IdleClose: -time.Second},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	// Empty Dir means <data-dir>/store-gateway.
	data := t.TempDir()
	cfg = testConfig("")
	sg, err := New(cfg, data, newFSBucket(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	if sg.dir != filepath.Join(data, "store-gateway") {
		t.Fatalf("dir %s", sg.dir)
	}
	if _, err := os.Stat(sg.dir); err != nil {
		t.Fatal(err)
	}
}
