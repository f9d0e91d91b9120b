package loadgen

// stepRanges records which steps of one series were acknowledged, as sorted,
// disjoint, non-adjacent closed ranges. Samples of a series are generated and
// acknowledged in step order, so add only ever extends the last range or
// starts a new one: a series whose requests all succeeded costs one range
// (16 bytes) however long the run.
type stepRanges []stepRange

type stepRange struct{ from, to int64 } // inclusive

// add records step k, which must be greater than every step added before.
func (r *stepRanges) add(k int64) {
	if n := len(*r); n > 0 && (*r)[n-1].to == k-1 {
		(*r)[n-1].to = k
		return
	}
	*r = append(*r, stepRange{k, k})
}

// count is the number of steps recorded.
func (r stepRanges) count() int64 {
	var n int64
	for _, x := range r {
		n += x.to - x.from + 1
	}
	return n
}

// bounds returns the first and last step recorded; ok is false when empty.
func (r stepRanges) bounds() (from, to int64, ok bool) {
	if len(r) == 0 {
		return 0, 0, false
	}
	return r[0].from, r[len(r)-1].to, true
}
