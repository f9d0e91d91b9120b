package compactor

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
)

// faultyBucket fails or stalls chosen operations, standing in for a crash or an outage
// at that point.
type faultyBucket struct {
	objstore.Bucket
	mu         sync.Mutex
	failUpload func(name string) bool
	stallGet   func(name string) bool
	stalled    chan struct{} // receives when a Get stalls
}

var errInjected = errors.New("injected failure")

func (b *faultyBucket) setFailUpload(f func(string) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failUpload = f
}

func (b *faultyBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	f := b.failUpload
	b.mu.Unlock()
	if f != nil && f(name) {
		return errInjected
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *faultyBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.mu.Lock()
	f := b.stallGet
	b.mu.Unlock()
	if f != nil && f(name) {
		b.stalled <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return b.Bucket.Get(ctx, name)
}

func newFaultyBucket(t *testing.T) *faultyBucket {
	t.Helper()
	fs, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &faultyBucket{Bucket: fs, stalled: make(chan struct{}, 1)}
}

// A compaction that stops at any point leaves every sample readable, and the next runs
// finish the work without compacting twice.
func TestCompactorInterrupted(t *testing.T) {
	ctx := context.Background()
	const ws = "ws-f"
	bkt := newFaultyBucket(t)
	src := t.TempDir()
	want := data{}
	var sources []ulid.ULID
	for _, h := range []time.Duration{0, 2 * time.Hour, 24 * time.Hour} {
		d := gen("m", 5, h, h+2*time.Hour, 15*time.Second, 0)
		want.add(t, d)
		id := upload(t, bkt, ws, writeBlock(t, src, d, h, h+2*time.Hour))
		if h < 24*time.Hour {
			sources = append(sources, id)
		}
	}
	isSource := func(name string) bool {
		for _, id := range sources {
			if strings.HasPrefix(name, blocks.Dir(ws, id)) {
				return true
			}
		}
		return false
	}
	clk := &clock{}
	clk.set(27 * time.Hour)
	cfg := testConfig(t)
	c, err := New(cfg, t.TempDir(), bkt, StaticWorkspaces{ws: 0}, discard, prometheus.NewRegistry(), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	readable := func(step string) {
		t.Helper()
		got, _ := readAll(t, bkt, ws)
		for k := range got { // readers deduplicate overlapping blocks
			got[k] = dedup(got[k])
		}
		if diff := equalData(got, want); diff != "" {
			t.Fatalf("%s: data differs: %s", step, diff)
		}
	}

	// 1. The result's meta.json never arrives: a partial block marked "uploading".
	bkt.setFailUpload(func(n string) bool { return strings.HasSuffix(n, "/"+blocks.MetaFilename) && !isSource(n) })
	if err := c.CompactOnce(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("run with a failing upload: %v", err)
	}
	readable("after a failed upload")
	st, err := c.list(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.partial) != 1 || st.partial[0].DeletionMark == nil || st.partial[0].DeletionMark.Reason != ReasonUploading {
		t.Fatalf("partial blocks after a failed upload: %+v", st.partial)
	}
	for _, b := range st.complete {
		if b.DeletionMark != nil {
			t.Fatalf("block %s marked although the result never completed", b.Meta.ULID)
		}
	}
	if promtest.ToFloat64(c.m.compactionFailures) != 1 || promtest.ToFloat64(c.m.runFailures) != 1 {
		t.Fatal("failure not counted")
	}

	// 2. The result is uploaded, marking its sources fails: result and sources overlap.
	bkt.setFailUpload(func(n string) bool { return strings.HasSuffix(n, "/"+blocks.DeletionMarkFilename) && isSource(n) })
	if err := c.CompactOnce(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("run with failing marks: %v", err)
	}
	readable("after failing to mark the sources")
	compactions := promtest.ToFloat64(c.m.compactions)

	// 3. The next run marks the sources as redundant instead of compacting again.
	bkt.setFailUpload(nil)
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if promtest.ToFloat64(c.m.compactions) != compactions {
		t.Error("the sources were compacted again")
	}
	if promtest.ToFloat64(c.m.marked.WithLabelValues(ReasonRedundant)) != 2 {
		t.Error("sources not marked as redundant")
	}
	readable("after marking redundant blocks")

	// 4. After the delay only the result and the next day's block are left.
	clk.advance(cfg.DeletionDelay)
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	readable("after the delay")
	st, err = c.list(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.partial) != 0 || len(st.complete) != 2 || st.dirs != 2 {
		t.Fatalf("after the delay: %d complete, %d partial, %d dirs", len(st.complete), len(st.partial), st.dirs)
	}
}

func dedup(ss []sample) []sample {
	out := ss[:0:0]
	for _, s := range ss {
		if n := len(out); n > 0 && out[n-1].t == s.t {
			continue
		}
		out = append(out, s)
	}
	return out
}

// DeleteWorkspace stops a compaction of the workspace in progress and removes all of it.
func TestDeleteWorkspaceDuringCompaction(t *testing.T) {
	ctx := context.Background()
	bkt := newFaultyBucket(t)
	src := t.TempDir()
	for _, h := range []time.Duration{0, 2 * time.Hour} {
		upload(t, bkt, "ws-x", writeBlock(t, src, gen("m", 3, h, h+2*time.Hour, time.Minute, 0), h, h+2*time.Hour))
	}
	bkt.stallGet = func(n string) bool {
		return strings.HasPrefix(n, "ws-x/") && strings.HasSuffix(n, "/"+blocks.IndexFilename)
	}
	clk := &clock{}
	clk.set(100 * time.Hour)
	c, err := New(testConfig(t), t.TempDir(), bkt, StaticWorkspaces{"ws-x": 0}, discard, nil, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.CompactOnce(ctx) }()
	<-bkt.stalled // downloading the blocks to compact
	if err := c.DeleteWorkspace(ctx, "ws-x"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a run stopped by the deletion reports %v", err)
	}
	if objs := objectsUnder(t, bkt, "ws-x/"); len(objs) != 0 {
		t.Fatalf("left: %v", objs)
	}
	if err := c.DeleteWorkspace(ctx, "meta"); err == nil {
		t.Fatal("the metadata prefix is not a workspace")
	}
	if err := c.DeleteWorkspace(ctx, "../x"); err == nil {
		t.Fatal("a path is not a workspace")
	}
}

// Run compacts at once and then once per interval, and returns when its context ends.
// The test stands in for the interval: Run asks it for each wait, and it ticks by hand.
func TestRun(t *testing.T) {
	newCompactor := func(t *testing.T, cfg Config) (*Compactor, chan time.Duration, chan time.Time) {
		t.Helper()
		bkt, err := bucket.NewFilesystem(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(cfg, t.TempDir(), bkt, StaticWorkspaces{}, discard, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Buffered, so a Run that waits where it should not does not hang the test.
		waits, ticks := make(chan time.Duration, 1), make(chan time.Time)
		c.after = func(d time.Duration) <-chan time.Time {
			waits <- d
			return ticks
		}
		return c, waits, ticks
	}
	start := func(c *Compactor) (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		return cancel, done
	}
	cfg := testConfig(t)
	cfg.Interval = time.Minute

	c, waits, ticks := newCompactor(t, cfg)
	cancel, done := start(c)
	for want := 1; want <= 3; want++ {
		// Run waits for the interval only once the run before it has finished.
		if d := <-waits; d != cfg.Interval {
			t.Fatalf("Run waits %s between runs, want the interval %s", d, cfg.Interval)
		}
		if n := promtest.ToFloat64(c.m.runs); n != float64(want) {
			t.Fatalf("%v runs before wait %d, want %d (at once, then one per interval)", n, want, want)
		}
		if want < 3 {
			ticks <- time.Now()
		}
	}
	if promtest.ToFloat64(c.m.lastSuccess) == 0 {
		t.Error("no successful run recorded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Disabled, Run only waits for its end: once it returned, nothing else can run.
	cfg.Enabled = false
	c, waits, _ = newCompactor(t, cfg)
	cancel, done = start(c)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-waits:
		t.Fatalf("a disabled compactor waited %s for its next run", d)
	default:
	}
	if n := promtest.ToFloat64(c.m.runs); n != 0 {
		t.Fatalf("a disabled compactor ran %v times", n)
	}
}
