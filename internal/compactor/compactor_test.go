package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	stratatest "github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/testutil/s3server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var discard = slog.New(slog.DiscardHandler)

// sample is one float sample of a series.
type sample struct {
	t int64
	v float64
}

// data is samples by series (labels.String()), each slice sorted by time.
type data map[string][]sample

// add merges other into d; a sample at a timestamp d already has is a duplicate and
// must carry the same value.
func (d data) add(t *testing.T, other data) {
	t.Helper()
	for k, ss := range other {
		have := map[int64]float64{}
		for _, s := range d[k] {
			have[s.t] = s.v
		}
		for _, s := range ss {
			if v, ok := have[s.t]; ok {
				if v != s.v {
					t.Fatalf("test data: %s at %d has two values", k, s.t)
				}
				continue
			}
			d[k] = append(d[k], s)
		}
		slices.SortFunc(d[k], func(a, b sample) int { return int(a.t - b.t) })
	}
}

func (d data) count() int {
	n := 0
	for _, ss := range d {
		n += len(ss)
	}
	return n
}

// gen makes series [0, n) of metric name with a sample every step in [from, to),
// timestamps shifted by offset; the value is a function of the series and the time, so
// two generators agree wherever their samples share a timestamp.
func gen(name string, n int, from, to, step, offset time.Duration) data {
	d := data{}
	for i := range n {
		ls := labels.FromStrings("__name__", name, "instance", fmt.Sprintf("host-%d", i), "job", "node")
		for ts := from + offset; ts < to; ts += step {
			ms := ts.Milliseconds()
			d[ls.String()] = append(d[ls.String()], sample{t: ms, v: float64(i*1_000_000) + float64(ms)/1000})
		}
	}
	return d
}

// writeBlock writes d as a block of [mint, maxt) in dir, as an ingester cuts it from its
// head (aligned range, not just the samples' span), and returns its directory.
func writeBlock(t testing.TB, dir string, d data, mint, maxt time.Duration) string {
	t.Helper()
	bdir := stratatest.WriteBlockWith(t, dir, 2*time.Hour, func(app storage.Appender) error {
		for k, ss := range d {
			ls := parseLabels(t, k)
			var ref storage.SeriesRef
			for _, s := range ss {
				var err error
				if ref, err = app.Append(ref, ls, s.t, s.v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	m, err := blocks.ReadLocalMeta(bdir)
	if err != nil {
		t.Fatal(err)
	}
	m.MinTime, m.MaxTime = mint.Milliseconds(), maxt.Milliseconds()
	body, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(bdir, blocks.MetaFilename), body, 0o644); err != nil {
		t.Fatal(err)
	}
	return bdir
}

// parseLabels reverses labels.String for the simple label values of these tests.
func parseLabels(t testing.TB, s string) labels.Labels {
	t.Helper()
	var kv []string
	for p := range strings.SplitSeq(strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}"), ", ") {
		k, v, ok := strings.Cut(p, "=")
		uv, err := strconv.Unquote(v)
		if !ok || err != nil {
			t.Fatalf("labels %s: %q", s, p)
		}
		kv = append(kv, k, uv)
	}
	return labels.FromStrings(kv...)
}

func upload(t testing.TB, bkt objstore.Bucket, ws string, dir string) ulid.ULID {
	t.Helper()
	m, err := blocks.Upload(context.Background(), bkt, ws, dir)
	if err != nil {
		t.Fatal(err)
	}
	return m.ULID
}

// readAll downloads the workspace's unmarked blocks and reads every sample of each,
// block by block, so that a sample stored twice is read twice.
func readAll(t *testing.T, bkt objstore.Bucket, ws string) (data, []blocks.Block) {
	t.Helper()
	ctx := context.Background()
	list, err := blocks.List(ctx, bkt, ws)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	out := data{}
	var live []blocks.Block
	for _, b := range list {
		if b.DeletionMark != nil {
			continue
		}
		live = append(live, b)
		dir, err := blocks.Download(ctx, bkt, ws, b.Meta.ULID, dst)
		if err != nil {
			t.Fatal(err)
		}
		blk, err := tsdb.OpenBlock(discard, dir, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		q, err := tsdb.NewBlockQuerier(blk, math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		var it chunkenc.Iterator
		for ss.Next() {
			s := ss.At()
			k := s.Labels().String()
			it = s.Iterator(it)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				if ts < b.Meta.MinTime || ts >= b.Meta.MaxTime {
					t.Errorf("block %s [%d,%d) holds a sample at %d", b.Meta.ULID, b.Meta.MinTime, b.Meta.MaxTime, ts)
				}
				out[k] = append(out[k], sample{t: ts, v: v})
			}
			if it.Err() != nil {
				t.Fatal(it.Err())
			}
		}
		if ss.Err() != nil {
			t.Fatal(ss.Err())
		}
		_ = q.Close()
		_ = blk.Close()
	}
	for k := range out {
		slices.SortStableFunc(out[k], func(a, b sample) int { return int(a.t - b.t) })
	}
	return out, live
}

// equalData reports the first difference between got and want, or "".
func equalData(got, want data) string {
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			return fmt.Sprintf("%s: %d samples, want %d", k, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				return fmt.Sprintf("%s: sample %d is %v, want %v", k, i, g[i], w[i])
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("unexpected series %s", k)
		}
	}
	return ""
}

// snapshot lists every object of the bucket with its size and, for small objects
// (meta.json, deletion marks), its content.
func snapshot(t *testing.T, bkt objstore.Bucket) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	err := bkt.Iter(ctx, "", func(name string) error {
		a, err := bkt.Attributes(ctx, name)
		if err != nil {
			return err
		}
		v := fmt.Sprint(a.Size)
		if strings.HasSuffix(name, ".json") {
			rc, err := bkt.Get(ctx, name)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			v = string(b)
		}
		out[name] = v
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func objectsUnder(t *testing.T, bkt objstore.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	if err := bkt.Iter(context.Background(), prefix, func(n string) error { out = append(out, n); return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	return out
}

// clock is a settable clock for the compactor.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) set(d time.Duration)     { c.t = time.UnixMilli(0).Add(d) }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func (c *clock) since0() time.Duration   { return c.t.Sub(time.UnixMilli(0)) }

func TestCompactorFilesystem(t *testing.T) {
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testCompactor(t, bkt)
}

func TestCompactorS3(t *testing.T) {
	cfg := bucket.Config{Backend: bucket.BackendS3, S3: s3server.Start(t)}
	bkt, err := bucket.New(cfg, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	testCompactor(t, bkt)
}

// testCompactor is the main scenario, run on every bucket implementation.
func testCompactor(t *testing.T, bkt objstore.Bucket) {
	ctx := context.Background()
	const ws = "ws-main"
	src := t.TempDir()

	// Ingester A: 13 consecutive 2h blocks, [0h, 26h): the first day is complete.
	want := data{}
	var sources []ulid.ULID
	for h := time.Duration(0); h < 26*time.Hour; h += 2 * time.Hour {
		d := gen("node_cpu_seconds_total", 10, h, h+2*time.Hour, 15*time.Second, 0)
		want.add(t, d)
		id := upload(t, bkt, ws, writeBlock(t, src, d, h, h+2*time.Hour))
		if h < 24*time.Hour {
			sources = append(sources, id)
		}
	}
	// Ingester B (a restart, a second replica): the same samples again for [4h, 6h),
	// and samples at other timestamps plus a series of its own for [6h, 8h).
	dup := gen("node_cpu_seconds_total", 10, 4*time.Hour, 6*time.Hour, 15*time.Second, 0)
	want.add(t, dup)
	sources = append(sources, upload(t, bkt, ws, writeBlock(t, src, dup, 4*time.Hour, 6*time.Hour)))
	distinct := gen("node_cpu_seconds_total", 10, 6*time.Hour, 8*time.Hour, 15*time.Second, 5*time.Second)
	for k, v := range gen("node_memory_free_bytes", 3, 6*time.Hour, 8*time.Hour, 15*time.Second, 0) {
		distinct[k] = v
	}
	want.add(t, distinct)
	sources = append(sources, upload(t, bkt, ws, writeBlock(t, src, distinct, 6*time.Hour, 8*time.Hour)))

	// A block upload in progress (no meta.json, no mark) and one a crashed compactor
	// left behind (marked "uploading").
	inProgress, abandoned := ulid.MustNew(1, nil), ulid.MustNew(2, nil)
	for _, id := range []ulid.ULID{inProgress, abandoned} {
		if err := bkt.Upload(ctx, blocks.Dir(ws, id)+blocks.IndexFilename, strings.NewReader("partial")); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{}
	clk.set(27 * time.Hour)
	if err := blocks.MarkForDeletion(ctx, bkt, ws, abandoned, ReasonUploading, clk.now()); err != nil {
		t.Fatal(err)
	}

	// A second workspace, deleted through the hook, and a third the metadata store
	// no longer knows.
	for _, other := range []string{"ws-hook", "ws-gone"} {
		upload(t, bkt, other, writeBlock(t, src, gen("up", 2, 0, 2*time.Hour, 15*time.Second, 0), 0, 2*time.Hour))
		upload(t, bkt, other, writeBlock(t, src, gen("up", 2, 2*time.Hour, 4*time.Hour, 15*time.Second, 0), 2*time.Hour, 4*time.Hour))
	}
	// The metadata store's objects live in the same bucket and are not a workspace.
	if err := bkt.Upload(ctx, "meta/workspaces/ws-main.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	wss := StaticWorkspaces{ws: 0, "ws-hook": 0}
	cfg := testConfig(t)
	c, err := New(cfg, t.TempDir(), bkt, wss, discard, reg, clk.now)
	if err != nil {
		t.Fatal(err)
	}

	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}

	// The first day is one block, merged from all 14 sources, now marked; the block of
	// the day being filled is untouched.
	got, live := readAll(t, bkt, ws)
	if len(live) != 2 {
		t.Fatalf("%d unmarked blocks after compaction, want 2: %+v", len(live), live)
	}
	day := live[0].Meta
	if day.MinTime != 0 || day.MaxTime != (24*time.Hour).Milliseconds() || day.Compaction.Level != 2 {
		t.Errorf("day block [%d,%d) level %d", day.MinTime, day.MaxTime, day.Compaction.Level)
	}
	wantSources := slices.Clone(sources)
	slices.SortFunc(wantSources, ulid.ULID.Compare)
	if !slices.Equal(day.Compaction.Sources, wantSources) {
		t.Errorf("day block sources %v, want %v", day.Compaction.Sources, wantSources)
	}
	if live[1].Meta.MinTime != (24 * time.Hour).Milliseconds() {
		t.Errorf("second block starts at %d", live[1].Meta.MinTime)
	}
	if diff := equalData(got, want); diff != "" {
		t.Fatalf("compacted data differs from the union of the inputs: %s", diff)
	}
	if int(day.Stats.NumSamples)+int(live[1].Meta.Stats.NumSamples) != want.count() {
		t.Errorf("blocks hold %d+%d samples, want %d in all", day.Stats.NumSamples, live[1].Meta.Stats.NumSamples, want.count())
	}
	all, err := blocks.List(ctx, bkt, ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		isSource := slices.Contains(sources, b.Meta.ULID)
		if isSource != (b.DeletionMark != nil) || (isSource && b.DeletionMark.Reason != ReasonCompacted) {
			t.Errorf("block %s (source %v) has deletion mark %+v", b.Meta.ULID, isSource, b.DeletionMark)
		}
	}
	// ws-hook's two blocks of its (idle, so complete) first day were merged too.
	if n := promtest.ToFloat64(c.m.marked.WithLabelValues(ReasonCompacted)); n != float64(len(sources)+2) {
		t.Errorf("blocks marked as compacted: %v, want %d", n, len(sources)+2)
	}
	if n := promtest.ToFloat64(c.m.compactions); n != 2 {
		t.Errorf("compactions: %v, want 2", n)
	}
	checkBytes(t, c, bkt, ws)
	if v := promtest.ToFloat64(c.m.oldestSample.WithLabelValues(ws)); v != 0 {
		t.Errorf("oldest sample %v, want 0", v)
	}
	// The deleted workspace's blocks are marked, not yet gone.
	gone, err := blocks.List(ctx, bkt, "ws-gone")
	if err != nil || len(gone) != 2 || gone[0].DeletionMark == nil || gone[0].DeletionMark.Reason != ReasonWorkspaceDeleted {
		t.Fatalf("blocks of the workspace gone from the metadata store: %+v %v", gone, err)
	}
	if objs := objectsUnder(t, bkt, "meta/"); len(objs) != 1 {
		t.Fatalf("the metadata prefix was touched: %v", objs)
	}

	// Nothing left to do: a second run changes nothing.
	before := snapshot(t, bkt)
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, bkt); !mapsEqual(before, after) {
		t.Fatalf("a second run changed the bucket:\nbefore %v\nafter  %v", before, after)
	}

	// Workspace deletion hook: nothing is left under the prefix.
	if err := c.DeleteWorkspace(ctx, "ws-hook"); err != nil {
		t.Fatal(err)
	}
	if objs := objectsUnder(t, bkt, "ws-hook/"); len(objs) != 0 {
		t.Fatalf("objects left after DeleteWorkspace: %v", objs)
	}

	// One second short of the deletion delay, the sources stay.
	clk.advance(cfg.DeletionDelay - time.Second)
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := blocks.ReadMeta(ctx, bkt, ws, sources[0]); err != nil {
		t.Fatalf("source deleted before the delay: %v", err)
	}
	// At the delay, they, the abandoned upload and the deleted workspace go; the upload
	// in progress stays.
	clk.advance(time.Second)
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(slices.Clone(sources), abandoned) {
		if objs := objectsUnder(t, bkt, blocks.Dir(ws, id)); len(objs) != 0 {
			t.Fatalf("block %s not deleted after the delay: %v", id, objs)
		}
	}
	if objs := objectsUnder(t, bkt, blocks.Dir(ws, inProgress)); len(objs) != 1 {
		t.Fatalf("an upload in progress was touched: %v", objs)
	}
	if objs := objectsUnder(t, bkt, "ws-gone/"); len(objs) != 0 {
		t.Fatalf("objects of a deleted workspace left after the delay: %v", objs)
	}
	if n := promtest.ToFloat64(c.m.deleted); n != float64(len(sources)+1+2) {
		t.Errorf("blocks deleted: %v, want %d", n, len(sources)+3)
	}
	got, live = readAll(t, bkt, ws)
	if diff := equalData(got, want); diff != "" || len(live) != 2 {
		t.Fatalf("after deleting the sources: %d blocks, %s", len(live), diff)
	}
	checkBytes(t, c, bkt, ws)

	// Retention: the day block ends (MaxTime, exclusive) at 24h. A cutoff exactly
	// there keeps it; one millisecond later it expires, and the next block stays.
	wss[ws] = clk.since0() - 24*time.Hour
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := blocks.ReadMeta(ctx, bkt, ws, day.ULID); err != nil || b.DeletionMark != nil {
		t.Fatalf("block at the retention boundary marked: %+v %v", b, err)
	}
	wss[ws] -= time.Millisecond
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := blocks.List(ctx, bkt, ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range list {
		expired := b.Meta.ULID == day.ULID
		if expired != (b.DeletionMark != nil) || (expired && b.DeletionMark.Reason != ReasonRetention) {
			t.Errorf("block [%d,%d): mark %+v", b.Meta.MinTime, b.Meta.MaxTime, b.DeletionMark)
		}
	}
	if v := promtest.ToFloat64(c.m.oldestSample.WithLabelValues(ws)); v != (24 * time.Hour).Seconds() {
		t.Errorf("oldest sample after retention: %v, want %v", v, (24 * time.Hour).Seconds())
	}
	clk.advance(cfg.DeletionDelay)
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := blocks.ReadMeta(ctx, bkt, ws, day.ULID); !errors.Is(err, blocks.ErrNoMeta) {
		t.Fatalf("expired block not deleted: %v", err)
	}
	checkBytes(t, c, bkt, ws)
	// The series of deleted workspaces are gone.
	if n := promtest.CollectAndCount(c.m.bucketBytes); n != 1 {
		t.Errorf("bucket bytes series: %d, want 1", n)
	}
}

func testConfig(t testing.TB) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// checkBytes compares the bucket-bytes gauge with the sizes of the block objects.
func checkBytes(t *testing.T, c *Compactor, bkt objstore.Bucket, ws string) {
	t.Helper()
	ctx := context.Background()
	list, err := blocks.List(ctx, bkt, ws)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, b := range list {
		for _, n := range objectsUnder(t, bkt, blocks.Dir(ws, b.Meta.ULID)) {
			if strings.HasSuffix(n, blocks.DeletionMarkFilename) {
				continue
			}
			a, err := bkt.Attributes(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			want += a.Size
		}
	}
	if got := promtest.ToFloat64(c.m.bucketBytes.WithLabelValues(ws)); got != float64(want) {
		t.Errorf("bucket bytes %v, want %d", got, want)
	}
	if got := promtest.ToFloat64(c.m.bucketBlocks.WithLabelValues(ws)); got != float64(len(list)) {
		t.Errorf("bucket blocks %v, want %d", got, len(list))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Imported blocks (strata migrate backfill) are compacted as soon as their window is
// complete, though it ended less than Hold ago (no ingester holds them), and the block
// made from them is imported too; a window holding an ingester's block still waits.
func TestImportedBlocksDoNotWait(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for h := time.Duration(0); h < 12*time.Hour; h += 2 * time.Hour {
		d := gen("up", 3, h, h+2*time.Hour, 15*time.Second, 0)
		if _, err := blocks.Import(ctx, bkt, "ws-imported", writeBlock(t, src, d, h, h+2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		dir := writeBlock(t, src, d, h, h+2*time.Hour)
		if h == 4*time.Hour {
			upload(t, bkt, "ws-mixed", dir) // an ingester's
		} else if _, err := blocks.Import(ctx, bkt, "ws-mixed", dir); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{}
	clk.set(15 * time.Hour) // the 12h window ended 3h ago
	cfg := testConfig(t)
	cfg.Hold = 13 * time.Hour
	c, err := New(cfg, t.TempDir(), bkt, StaticWorkspaces{"ws-imported": 0, "ws-mixed": 0}, discard, prometheus.NewRegistry(), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CompactOnce(ctx); err != nil {
		t.Fatal(err)
	}
	live := func(ws string) []blocks.Block {
		all, err := blocks.List(ctx, bkt, ws)
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(all, func(b blocks.Block) bool { return b.DeletionMark != nil })
	}
	got := live("ws-imported")
	if len(got) != 1 || got[0].Meta.MaxTime-got[0].Meta.MinTime != (12*time.Hour).Milliseconds() || !blocks.Imported(&got[0].Meta) {
		t.Fatalf("imported workspace: %d live blocks %+v, want one imported 12h block", len(got), got)
	}
	if got := live("ws-mixed"); len(got) != 6 {
		t.Fatalf("mixed workspace: %d live blocks, want its 6 blocks (waiting for the hold)", len(got))
	}
}
