package blocks

import "github.com/oklog/ulid/v2"

// Covered reports, for each block of list, whether another block of list holds all its
// sources: one with more sources, or the same sources and a larger ULID (of two equal
// blocks, the newer one stays). Such a block's samples are all in the other one — a
// compaction uploaded its result and its sources are still listed — so readers skip it
// and the compactor removes it.
func Covered(list []Block) []bool {
	sources := func(m *Meta) []ulid.ULID {
		if len(m.Compaction.Sources) == 0 {
			return []ulid.ULID{m.ULID}
		}
		return m.Compaction.Sources
	}
	covered := make([]bool, len(list))
	var coverers []int // only compacted blocks can cover another
	for i := range list {
		if len(sources(&list[i].Meta)) >= 2 {
			coverers = append(coverers, i)
		}
	}
	if len(coverers) == 0 {
		return covered
	}
	sets := make(map[int]map[ulid.ULID]struct{}, len(coverers))
	for _, i := range coverers {
		s := map[ulid.ULID]struct{}{}
		for _, id := range sources(&list[i].Meta) {
			s[id] = struct{}{}
		}
		sets[i] = s
	}
	for i := range list {
		xs := sources(&list[i].Meta)
		for _, j := range coverers {
			ys := sets[j]
			if j == i || len(ys) < len(xs) || (len(ys) == len(xs) && list[j].Meta.ULID.Compare(list[i].Meta.ULID) <= 0) {
				continue
			}
			all := true
			for _, id := range xs {
				if _, ok := ys[id]; !ok {
					all = false
					break
				}
			}
			if all {
				covered[i] = true
				break
			}
		}
	}
	return covered
}
