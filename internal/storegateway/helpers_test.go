package storegateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sample is a float sample, or a histogram one when h is set.
type sample struct {
	t int64
	f float64
	h *histogram.Histogram
}

type series struct {
	lset    labels.Labels
	samples []sample
}

// floats makes series name{i="<i>"} for i in [from, to) with a sample every step in
// [mint, maxt). Values depend only on the series and timestamp, so two blocks holding the
// same series and timestamp hold identical samples.
func floats(name string, from, to int, mint, maxt, step int64) []series {
	var out []series
	for i := from; i < to; i++ {
		s := series{lset: labels.FromStrings("__name__", name, "i", fmt.Sprint(i), "job", "j"+fmt.Sprint(i%3))}
		for ts := mint; ts < maxt; ts += step {
			s.samples = append(s.samples, sample{t: ts, f: float64(i)*1e6 + float64(ts)})
		}
		out = append(out, s)
	}
	return out
}

// histograms makes one native histogram series.
func histograms(name string, mint, maxt, step int64) []series {
	s := series{lset: labels.FromStrings("__name__", name)}
	for ts := mint; ts < maxt; ts += step {
		s.samples = append(s.samples, sample{t: ts, h: tsdbutil.GenerateTestHistogram(ts / step)})
	}
	return []series{s}
}

func concat(parts ...[]series) []series { return slices.Concat(parts...) }

var discard = slog.New(slog.DiscardHandler)

// writeBlock writes the series as one TSDB block under dir and returns the block's directory.
func writeBlock(t testing.TB, dir string, ss []series) string {
	t.Helper()
	return testutil.WriteBlockWith(t, dir, 2*time.Hour, func(app storage.Appender) error {
		for _, s := range ss {
			var ref storage.SeriesRef
			var err error
			for _, smp := range s.samples {
				if smp.h != nil {
					ref, err = app.AppendHistogram(ref, s.lset, smp.t, smp.h, nil)
				} else {
					ref, err = app.Append(ref, s.lset, smp.t, smp.f)
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// fixture is a set of blocks written once and uploaded to buckets as a test needs them.
type fixture struct {
	src    string
	blocks map[string]fixtureBlock
}

type fixtureBlock struct {
	dir    string
	id     ulid.ULID
	series []series
}

func newFixture(t testing.TB) *fixture {
	return &fixture{src: t.TempDir(), blocks: map[string]fixtureBlock{}}
}

func (f *fixture) add(t testing.TB, name string, ss []series) fixtureBlock {
	t.Helper()
	dir := writeBlock(t, f.src, ss)
	b := fixtureBlock{dir: dir, id: ulid.MustParse(filepath.Base(dir)), series: ss}
	f.blocks[name] = b
	return b
}

func upload(t testing.TB, bkt objstore.Bucket, ws string, bs ...fixtureBlock) {
	t.Helper()
	for _, b := range bs {
		if _, err := blocks.Upload(context.Background(), bkt, ws, b.dir); err != nil {
			t.Fatal(err)
		}
	}
}

// reference opens a plain TSDB holding the samples of the blocks, each once.
func reference(t testing.TB, bs ...fixtureBlock) *tsdb.DB {
	t.Helper()
	type key struct {
		s  string
		ts int64
	}
	lsets := map[string]labels.Labels{}
	merged := map[key]sample{}
	for _, b := range bs {
		for _, s := range b.series {
			lsets[s.lset.String()] = s.lset
			for _, smp := range s.samples {
				merged[key{s.lset.String(), smp.t}] = smp
			}
		}
	}
	keys := make([]key, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].s != keys[j].s {
			return keys[i].s < keys[j].s
		}
		return keys[i].ts < keys[j].ts
	})
	db, err := tsdb.Open(t.TempDir(), discard, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	app := db.Appender(context.Background())
	for _, k := range keys {
		smp := merged[k]
		if smp.h != nil {
			_, err = app.AppendHistogram(0, lsets[k.s], smp.t, smp.h, nil)
		} else {
			_, err = app.Append(0, lsets[k.s], smp.t, smp.f)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return db
}

var allSeries = labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")

// selectAll reads every sample of every series the querier holds.
func selectAll(t testing.TB, q storage.Querier, ms ...*labels.Matcher) map[string][]sample {
	t.Helper()
	if len(ms) == 0 {
		ms = []*labels.Matcher{allSeries}
	}
	out := map[string][]sample{}
	ss := q.Select(context.Background(), true, nil, ms...)
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		key := s.Labels().String()
		if _, dup := out[key]; dup {
			t.Fatalf("series %s returned twice", key)
		}
		var smps []sample
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				smps = append(smps, sample{t: ts, f: v})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				smps = append(smps, sample{t: ts, h: h})
			default:
				t.Fatalf("unexpected value type %v", vt)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		// A series with no sample in the range is left out: whether one is returned
		// depends on how chunks cut the data (a head's chunk may span the range without
		// a sample in it), and PromQL ignores such series.
		if len(smps) > 0 {
			out[key] = smps
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSamples(got, want map[string][]sample) string {
	var b strings.Builder
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			fmt.Fprintf(&b, "missing series %s (%d samples)\n", k, len(w))
			continue
		}
		if len(g) != len(w) {
			fmt.Fprintf(&b, "series %s: %d samples, want %d\n", k, len(g), len(w))
			continue
		}
		for i := range w {
			if g[i].t != w[i].t || math.Float64bits(g[i].f) != math.Float64bits(w[i].f) ||
				(g[i].h == nil) != (w[i].h == nil) || (w[i].h != nil && !g[i].h.Equals(w[i].h)) {
				fmt.Fprintf(&b, "series %s sample %d: got %+v, want %+v\n", k, i, g[i], w[i])
				break
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "unexpected series %s\n", k)
		}
	}
	return b.String()
}

type timeRange struct{ mint, maxt int64 }

// checkRanges compares the store-gateway with the reference TSDB over the ranges.
func checkRanges(t testing.TB, sg *StoreGateway, ws string, ref *tsdb.DB, ranges ...timeRange) {
	t.Helper()
	for _, r := range ranges {
		q, err := sg.Querier(context.Background(), ws, r.mint, r.maxt)
		if err != nil {
			t.Fatalf("querier [%d, %d]: %v", r.mint, r.maxt, err)
		}
		got := selectAll(t, q)
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		rq, err := ref.Querier(r.mint, r.maxt)
		if err != nil {
			t.Fatal(err)
		}
		want := selectAll(t, rq)
		_ = rq.Close()
		if d := diffSamples(got, want); d != "" {
			t.Fatalf("range [%d, %d] differs from the reference TSDB:\n%s", r.mint, r.maxt, d)
		}
	}
}

// countingBucket counts downloads of block indexes and can run a hook before a Get.
type countingBucket struct {
	objstore.Bucket
	mu        sync.Mutex
	indexGets map[ulid.ULID]int
	beforeGet func(name string)
}

func newCountingBucket(b objstore.Bucket) *countingBucket {
	return &countingBucket{Bucket: b, indexGets: map[ulid.ULID]int{}}
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.mu.Lock()
	hook := b.beforeGet
	if strings.HasSuffix(name, "/"+blocks.IndexFilename) {
		if id, err := ulid.Parse(filepath.Base(filepath.Dir(name))); err == nil {
			b.indexGets[id]++
		}
	}
	b.mu.Unlock()
	if hook != nil {
		hook(name)
	}
	return b.Bucket.Get(ctx, name)
}

func (b *countingBucket) gets() map[ulid.ULID]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.indexGets)
}

func (b *countingBucket) setHook(f func(string)) {
	b.mu.Lock()
	b.beforeGet = f
	b.mu.Unlock()
}

func newFSBucket(t testing.TB) objstore.Bucket {
	t.Helper()
	b, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testConfig(dir string) Config {
	return Config{Dir: dir, SyncInterval: time.Minute, DownloadConcurrency: 4}
}

func newSG(t testing.TB, cfg Config, bkt objstore.Bucket) *StoreGateway {
	t.Helper()
	sg, err := New(cfg, "", bkt, discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sg.Close() })
	return sg
}

// cached lists the blocks of ws in the store-gateway's directory.
func cached(t testing.TB, sg *StoreGateway, ws string) []ulid.ULID {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(sg.dir, ws))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []ulid.ULID
	for _, e := range entries {
		id, err := ulid.ParseStrict(e.Name())
		if err != nil {
			t.Fatalf("unexpected entry %s in the cache", e.Name())
		}
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b ulid.ULID) int { return a.Compare(b) })
	return out
}

func ids(bs ...fixtureBlock) []ulid.ULID {
	out := make([]ulid.ULID, len(bs))
	for i, b := range bs {
		out[i] = b.id
	}
	slices.SortFunc(out, func(a, b ulid.ULID) int { return a.Compare(b) })
	return out
}
