package blockmerge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// TestMatchesChainedMerge: over random parts, disjoint or not, every series read through
// NewQuerier — by Next, and by random mixes of Seek and Next — gives exactly what
// Prometheus' chained merge of the same queriers gives.
func TestMatchesChainedMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 300 {
		disjoint := round%3 != 0
		parts, lists := randomParts(rng, disjoint)
		t.Run(fmt.Sprintf("round=%d/disjoint=%v", round, disjoint), func(t *testing.T) {
			got := NewQuerier(parts)
			want := storage.NewMergeQuerier(queriersOf(lists), nil, storage.ChainedSeriesMerge)
			ms := labels.MustNewMatcher(labels.MatchRegexp, "s", ".+")
			gs, ws := got.Select(context.Background(), true, nil, ms), want.Select(context.Background(), true, nil, ms)
			var git, wit chunkenc.Iterator
			for ws.Next() {
				if !gs.Next() {
					t.Fatalf("series %s missing", ws.At().Labels())
				}
				if !labels.Equal(gs.At().Labels(), ws.At().Labels()) {
					t.Fatalf("series %s, want %s", gs.At().Labels(), ws.At().Labels())
				}
				// Reuse the iterators, as PromQL does.
				git, wit = gs.At().Iterator(git), ws.At().Iterator(wit)
				ops := randomOps(rng)
				if g, w := run(git, ops), run(wit, ops); !slices.Equal(g, w) {
					t.Fatalf("%s ops %v:\n got %v\nwant %v", ws.At().Labels(), ops, g, w)
				}
			}
			if gs.Next() {
				t.Fatalf("extra series %s", gs.At().Labels())
			}
			if gs.Err() != nil || ws.Err() != nil {
				t.Fatal(gs.Err(), ws.Err())
			}
			// PromQL takes every series first and reads them afterwards.
			all := func(set storage.SeriesSet) (out []storage.Series) {
				for set.Next() {
					out = append(out, set.At())
				}
				return out
			}
			gl, wl := all(got.Select(context.Background(), true, nil, ms)), all(want.Select(context.Background(), true, nil, ms))
			if len(gl) != len(wl) {
				t.Fatalf("%d series taken first, want %d", len(gl), len(wl))
			}
			for i := range wl {
				if g, w := run(gl[i].Iterator(nil), nil), run(wl[i].Iterator(nil), nil); !labels.Equal(gl[i].Labels(), wl[i].Labels()) || !slices.Equal(g, w) {
					t.Fatalf("taken first: %s %v, want %s %v", gl[i].Labels(), g, wl[i].Labels(), w)
				}
			}
		})
	}
}

// TestDisjointUsesConcat: disjoint parts are read one after the other, overlapping ones
// through the chained merge.
func TestDisjointUsesConcat(t *testing.T) {
	a := Part{Querier: querierOf(series("x", 0, 10)), MinT: 0, MaxT: 10}
	b := Part{Querier: querierOf(series("x", 11, 20)), MinT: 11, MaxT: 20}
	c := Part{Querier: querierOf(series("x", 10, 15)), MinT: 10, MaxT: 15}
	for _, tc := range []struct {
		parts  []Part
		concat bool
	}{
		{[]Part{b, a}, true},
		{[]Part{a, c}, false},
		{[]Part{a, b, c}, false},
	} {
		ss := NewQuerier(tc.parts).Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "s", "x"))
		if !ss.Next() {
			t.Fatal("no series")
		}
		_, concat := ss.At().Iterator(nil).(*concatIterator[int64])
		if concat != tc.concat {
			t.Errorf("concat %v, want %v", concat, tc.concat)
		}
	}
}

// TestRacingSampleKeepsOrder: a sample in a later part at or before the end of an earlier
// part's range (written after the ranges were taken) is skipped, so time only moves on.
func TestRacingSampleKeepsOrder(t *testing.T) {
	a := Part{Querier: querierOf(series("x", 0, 10)), MinT: 0, MaxT: 10}
	late := append(samplesIn(5, 5), samplesIn(11, 14)...) // t=5 raced into the second part
	b := Part{Querier: querierOf(storage.NewListSeries(labels.FromStrings("s", "x"), late)), MinT: 11, MaxT: 20}
	ss := NewQuerier([]Part{a, b}).Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "s", "x"))
	ss.Next()
	got := run(ss.At().Iterator(nil), nil)
	want := run(series("x", 0, 14).Iterator(nil), nil)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

// TestIteratorError: an error of a part's iterator ends the iteration and is reported.
func TestIteratorError(t *testing.T) {
	boom := errors.New("boom")
	a := Part{Querier: querierOf(series("x", 0, 10)), MinT: 0, MaxT: 10}
	b := Part{Querier: querierOf(&failingSeries{Series: series("x", 11, 20), err: boom}), MinT: 11, MaxT: 20}
	ss := NewQuerier([]Part{a, b}).Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "s", "x"))
	ss.Next()
	it := ss.At().Iterator(nil)
	n := 0
	for it.Next() != chunkenc.ValNone {
		n++
	}
	if n != 21 || !errors.Is(it.Err(), boom) {
		t.Fatalf("read %d samples, err %v: want 21 and boom", n, it.Err())
	}
}

type failingSeries struct {
	storage.Series
	err error
}

func (s *failingSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	return &failingIterator{Iterator: s.Series.Iterator(it), err: s.err}
}

// failingIterator fails after its samples (Seek comes from the embedded iterator).
type failingIterator struct {
	chunkenc.Iterator
	err    error
	failed bool
}

func (f *failingIterator) Next() chunkenc.ValueType {
	vt := f.Iterator.Next()
	if vt == chunkenc.ValNone {
		f.failed = true
	}
	return vt
}

func (f *failingIterator) Err() error {
	if f.failed {
		return f.err
	}
	return nil
}

// op is Next (t < 0) or Seek(t).
type op int64

type point struct {
	vt chunkenc.ValueType
	t  int64
	f  float64
}

func run(it chunkenc.Iterator, ops []op) []point {
	var out []point
	record := func(vt chunkenc.ValueType) {
		p := point{vt: vt}
		if vt != chunkenc.ValNone {
			p.t = it.AtT()
			switch vt {
			case chunkenc.ValFloat:
				_, p.f = it.At()
			case chunkenc.ValHistogram:
				_, h := it.AtHistogram(nil)
				p.f = h.Sum
			}
		}
		out = append(out, p)
	}
	for _, o := range ops {
		if o < 0 {
			record(it.Next())
		} else {
			record(it.Seek(int64(o)))
		}
	}
	for { // then read to the end
		vt := it.Next()
		record(vt)
		if vt == chunkenc.ValNone {
			return out
		}
	}
}

func randomOps(rng *rand.Rand) []op {
	ops := make([]op, rng.IntN(12))
	for i := range ops {
		if rng.IntN(2) == 0 {
			ops[i] = -1
		} else {
			ops[i] = op(rng.IntN(120))
		}
	}
	return ops
}

// randomParts makes 1-5 parts over [0, 100), each holding a random subset of 6 series
// with samples inside its range (some histograms).
func randomParts(rng *rand.Rand, disjoint bool) ([]Part, [][]storage.Series) {
	n := 1 + rng.IntN(5)
	var parts []Part
	var lists [][]storage.Series
	start := int64(0)
	for range n {
		var lo, hi int64
		if disjoint {
			lo = start + int64(rng.IntN(3))
			hi = lo + int64(rng.IntN(20))
			start = hi + 1
		} else {
			lo = int64(rng.IntN(80))
			hi = lo + int64(rng.IntN(30))
		}
		var list []storage.Series
		for s := range 6 {
			if rng.IntN(3) == 0 {
				continue
			}
			var samples []chunks.Sample
			for ts := lo; ts <= hi; ts++ {
				if rng.IntN(3) == 0 {
					continue
				}
				if s == 5 {
					samples = append(samples, hsample{t: ts, h: &histogram.Histogram{Count: uint64(ts), Sum: float64(ts)}})
				} else {
					samples = append(samples, fsample{t: ts, f: float64(ts*10 + int64(s))})
				}
			}
			list = append(list, storage.NewListSeries(labels.FromStrings("s", fmt.Sprint(s)), samples))
		}
		parts = append(parts, Part{Querier: querierOf(list...), MinT: lo, MaxT: hi})
		lists = append(lists, list)
	}
	// Parts in any order: NewQuerier sorts them.
	rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i]; lists[i], lists[j] = lists[j], lists[i] })
	return parts, lists
}

func series(name string, lo, hi int64) storage.Series {
	return storage.NewListSeries(labels.FromStrings("s", name), samplesIn(lo, hi))
}

func samplesIn(lo, hi int64) []chunks.Sample {
	var out []chunks.Sample
	for ts := lo; ts <= hi; ts++ {
		out = append(out, fsample{t: ts, f: float64(ts)})
	}
	return out
}

func queriersOf(lists [][]storage.Series) []storage.Querier {
	var qs []storage.Querier
	for _, l := range lists {
		qs = append(qs, querierOf(l...))
	}
	return qs
}

// listQuerier serves fixed series, sorted by labels.
type listQuerier struct{ series []storage.Series }

func querierOf(series ...storage.Series) storage.Querier {
	s := slices.Clone(series)
	slices.SortFunc(s, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &listQuerier{series: s}
}

func (q *listQuerier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range q.series {
		ok := true
		for _, m := range ms {
			ok = ok && m.Matches(s.Labels().Get(m.Name))
		}
		if ok {
			out = append(out, s)
		}
	}
	return &listSet{series: out, i: -1}
}

func (q *listQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *listQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *listQuerier) Close() error { return nil }

type listSet struct {
	series []storage.Series
	i      int
}

func (s *listSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *listSet) At() storage.Series                { return s.series[s.i] }
func (s *listSet) Err() error                        { return nil }
func (s *listSet) Warnings() annotations.Annotations { return nil }

type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

type hsample struct {
	t int64
	h *histogram.Histogram
}

func (s hsample) T() int64                      { return s.t }
func (s hsample) ST() int64                     { return 0 }
func (s hsample) F() float64                    { return 0 }
func (s hsample) H() *histogram.Histogram       { return s.h }
func (s hsample) FH() *histogram.FloatHistogram { return nil }
func (s hsample) Type() chunkenc.ValueType      { return chunkenc.ValHistogram }
func (s hsample) Copy() chunks.Sample           { return hsample{t: s.t, h: s.h.Copy()} }

// emptyQuerier records what is asked of it.
type emptyQuerier struct {
	storage.Querier
	selected, closed bool
}

func (q *emptyQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q.selected = true
	return q.Querier.Select(ctx, sorted, hints, ms...)
}

func (q *emptyQuerier) Close() error {
	q.closed = true
	return nil
}

// TestEmptyParts: a part known to hold nothing (MinT > MaxT) overlaps nothing, even next
// to a part reaching the end of time; it is not read, and is closed with the others.
func TestEmptyParts(t *testing.T) {
	a := Part{Querier: querierOf(series("x", 0, 10)), MinT: 0, MaxT: 10}
	b := Part{Querier: querierOf(series("x", 11, 20)), MinT: 11, MaxT: math.MaxInt64}
	eq := &emptyQuerier{Querier: querierOf()}
	e := Part{Querier: eq, MinT: math.MaxInt64, MaxT: math.MinInt64}
	q := NewQuerier([]Part{b, e, a})
	defer func() {
		if err := q.Close(); err != nil || !eq.closed {
			t.Errorf("Close: %v; the empty part closed: %v", err, eq.closed)
		}
	}()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "s", "x"))
	if eq.selected {
		t.Error("the empty part was read")
	}
	if !ss.Next() {
		t.Fatal("no series")
	}
	it := ss.At().Iterator(nil)
	if _, ok := it.(*concatIterator[int64]); !ok {
		t.Fatalf("%T: want the parts read one after the other", it)
	}
	if got, want := run(it, nil), run(series("x", 0, 20).Iterator(nil), nil); !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}
