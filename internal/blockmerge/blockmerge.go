// Package blockmerge merges queriers over parts of a workspace's time line (the blocks
// of the store-gateway, the ingester and the bucket) into one.
//
// Prometheus' chained merge compares timestamps across every part at every sample, which
// a range query pays for each sample it reads, once per level of merging. Parts whose
// time ranges do not overlap need none of it: a series' samples are those of the first
// part, then those of the next. NewQuerier reads such parts one after the other and
// falls back to the chained merge when ranges overlap (blocks being compacted, HA or
// late data), so its answers are always Prometheus' merge's.
package blockmerge

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// Part is a querier whose samples all lie in [MinT, MaxT] (milliseconds, inclusive).
type Part struct {
	Querier    storage.Querier
	MinT, MaxT int64
}

func (p Part) empty() bool { return p.MinT > p.MaxT }

// NewQuerier merges parts: read one after the other in time order when their ranges are
// pairwise disjoint, else with Prometheus' chained merge. Parts known to hold nothing
// (MinT > MaxT: an ingester never written to) are not read, only closed: merging them
// would cost every series of the others a comparison. Closing it closes every part.
func NewQuerier(parts []Part) storage.Querier {
	var empty []storage.Querier
	live := make([]Part, 0, len(parts))
	for _, p := range parts {
		if p.empty() {
			empty = append(empty, p.Querier)
		} else {
			live = append(live, p)
		}
	}
	q := merge(live)
	if len(empty) == 0 {
		return q
	}
	return &closingQuerier{Querier: q, also: empty}
}

// merge merges parts that may hold samples.
func merge(parts []Part) storage.Querier {
	qs := make([]storage.Querier, 0, len(parts))
	sorted := slices.Clone(parts)
	slices.SortStableFunc(sorted, func(a, b Part) int { return cmp.Compare(a.MinT, b.MinT) })
	disjoint := true
	for i, p := range sorted {
		if i > 0 && sorted[i-1].MaxT >= p.MinT {
			disjoint = false
		}
		qs = append(qs, p.Querier)
	}
	merged := storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge)
	if !disjoint || len(qs) < 2 {
		return merged
	}
	from := make([]int64, len(sorted))
	from[0] = minInt64
	for i := 1; i < len(sorted); i++ {
		// Past the end of the previous part's range.
		if from[i] = sorted[i-1].MaxT; from[i] < math.MaxInt64 {
			from[i]++
		}
	}
	return &concatQuerier{Querier: merged, parts: qs, from: from}
}

// closingQuerier is a querier that also closes the parts it does not read.
type closingQuerier struct {
	storage.Querier
	also []storage.Querier
}

func (q *closingQuerier) Close() error {
	err := q.Querier.Close()
	for _, a := range q.also {
		err = errors.Join(err, a.Close())
	}
	return err
}

// concatQuerier reads parts whose time ranges are pairwise disjoint: a series' samples
// are those of its first part, then those of the next. Label names and values, and
// Close, are Prometheus' merge's.
type concatQuerier struct {
	storage.Querier
	parts []storage.Querier // in time order
	from  []int64           // parts[i]'s samples are read from from[i] on
}

func (q *concatQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	sets := make([]storage.SeriesSet, len(q.parts))
	for i, p := range q.parts {
		sets[i] = p.Select(ctx, true, hints, ms...) // merging needs sorted sets
	}
	return &concatSet{sets: sets, from: q.from, cur: make([]storage.Series, len(sets))}
}

// concatSet merges the sorted series sets of time-disjoint parts. Unlike Prometheus'
// merge it asks each set for its series once per position (a TSDB block's set makes a
// new one at every call), and finds the smallest labels by a scan: parts are few.
type concatSet struct {
	sets    []storage.SeriesSet
	from    []int64
	cur     []storage.Series // each set's series at its position; nil once it is done
	at      []int            // the sets whose series has the smallest labels, in time order
	started bool
}

func (s *concatSet) Next() bool {
	if !s.started {
		s.started = true
		for i := range s.sets {
			s.advance(i)
		}
	} else {
		for _, i := range s.at {
			s.advance(i)
		}
	}
	s.at = s.at[:0]
	var smallest labels.Labels
	for i, c := range s.cur {
		if c == nil {
			continue
		}
		if len(s.at) == 0 {
			s.at, smallest = append(s.at, i), c.Labels()
			continue
		}
		switch l := c.Labels(); labels.Compare(l, smallest) {
		case -1:
			s.at, smallest = append(s.at[:0], i), l
		case 0:
			s.at = append(s.at, i)
		}
	}
	return len(s.at) > 0
}

func (s *concatSet) advance(i int) {
	s.cur[i] = nil
	if s.sets[i].Next() {
		s.cur[i] = s.sets[i].At()
	}
}

func (s *concatSet) At() storage.Series {
	if len(s.at) == 1 {
		return s.cur[s.at[0]]
	}
	c := &concatSeries{series: make([]storage.Series, len(s.at)), from: make([]int64, len(s.at))}
	for j, i := range s.at {
		c.series[j] = s.cur[i]
		c.from[j] = s.from[i]
	}
	c.from[0] = minInt64
	return c
}

func (s *concatSet) Err() error {
	for _, set := range s.sets {
		if err := set.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (s *concatSet) Warnings() annotations.Annotations {
	var ws annotations.Annotations
	for _, set := range s.sets {
		ws.Merge(set.Warnings())
	}
	return ws
}

// concatSeries is one series' copies from time-disjoint parts, in time order.
type concatSeries struct {
	series []storage.Series
	from   []int64 // series[i]'s samples are read from from[i] on
}

func (s *concatSeries) Labels() labels.Labels { return s.series[0].Labels() }

func (s *concatSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	c, ok := it.(*concatIterator[int64])
	if !ok {
		c = &concatIterator[int64]{}
	}
	its := c.its[:0]
	for i, ps := range s.series {
		var old chunkenc.Iterator
		if i < len(c.its) {
			old = c.its[i]
		}
		its = append(its, ps.Iterator(old))
	}
	*c = concatIterator[int64]{its: its, from: s.from}
	return c
}

const minInt64 = -1 << 63

// concatIterator reads its iterators one after the other. It starts each one at the end
// of the previous one's range (from), so that even a sample appended to a later part
// after the ranges were taken (an out-of-order write racing the query) cannot break the
// time order PromQL relies on.
//
// Its type parameter is always int64: Seek(T) is chunkenc.Iterator's Seek(int64), which
// go vet's stdmethods check would take for a wrong io.Seeker if spelled with int64.
type concatIterator[T ~int64] struct {
	its     []chunkenc.Iterator
	from    []int64 // its[i] is read from from[i] on
	i       int
	started bool // its[i] has been moved
	err     error
}

func (c *concatIterator[T]) Next() chunkenc.ValueType {
	for c.i < len(c.its) {
		it := c.its[c.i]
		var vt chunkenc.ValueType
		if c.started {
			vt = it.Next()
		} else {
			vt, c.started = it.Seek(c.from[c.i]), true
		}
		if vt != chunkenc.ValNone {
			return vt
		}
		if !c.advance() {
			return chunkenc.ValNone
		}
	}
	return chunkenc.ValNone
}

func (c *concatIterator[T]) Seek(t T) chunkenc.ValueType {
	for c.i < len(c.its) {
		// An iterator's Seek does not move back, so neither does this one.
		vt := c.its[c.i].Seek(max(int64(t), c.from[c.i]))
		c.started = true
		if vt != chunkenc.ValNone {
			return vt
		}
		if !c.advance() {
			return chunkenc.ValNone
		}
	}
	return chunkenc.ValNone
}

// advance moves on from an exhausted iterator, unless it failed.
func (c *concatIterator[T]) advance() bool {
	if c.err = c.its[c.i].Err(); c.err != nil {
		return false
	}
	c.i++
	c.started = false
	return true
}

func (c *concatIterator[T]) At() (int64, float64) { return c.its[c.i].At() }

func (c *concatIterator[T]) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return c.its[c.i].AtHistogram(h)
}

func (c *concatIterator[T]) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return c.its[c.i].AtFloatHistogram(fh)
}

func (c *concatIterator[T]) AtT() int64  { return c.its[c.i].AtT() }
func (c *concatIterator[T]) AtST() int64 { return c.its[c.i].AtST() }
func (c *concatIterator[T]) Err() error  { return c.err }
