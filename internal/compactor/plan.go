package compactor

import (
	"cmp"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/stratametrics/strata/internal/blocks"
)

// Reasons written into deletion marks (and the reason label of
// strata_compactor_blocks_marked_for_deletion_total).
const (
	// ReasonCompacted: the block's data is in a newer block the compactor uploaded.
	ReasonCompacted = "compacted"
	// ReasonRedundant: another block already holds all of the block's sources — a
	// compaction uploaded its result but stopped before marking its sources.
	ReasonRedundant = "redundant"
	// ReasonRetention: every sample of the block is older than the workspace's retention.
	ReasonRetention = "retention"
	// ReasonWorkspaceDeleted: the workspace no longer exists in the metadata store.
	ReasonWorkspaceDeleted = "workspace-deleted"
	// ReasonUploading marks a compacted block while it uploads; the mark is removed once
	// meta.json is in place. A crash midway leaves a marked partial block that a later
	// run deletes after the deletion delay, instead of garbage nobody owns.
	ReasonUploading = "uploading"
)

// PartialBlock is a block directory in the bucket without meta.json: an upload in
// progress or abandoned, or a deletion interrupted midway.
type PartialBlock struct {
	ID ulid.ULID
	// DeletionMark is nil for an upload (possibly still running: leave it alone), set
	// for a block being deleted or a compactor upload that never finished.
	DeletionMark *blocks.DeletionMark
}

// PlanInput is everything the planner decides from: one workspace's blocks as listed,
// the time, and its settings.
type PlanInput struct {
	Now time.Time
	// Ranges are the block sizes, smallest first, each a multiple of the previous.
	Ranges []time.Duration
	// Retention is how long the workspace keeps samples; zero keeps them forever.
	Retention time.Duration
	// DeletionDelay is how long a marked block stays before it is deleted.
	DeletionDelay time.Duration
	// Hold leaves blocks ending less than Hold before Now uncompacted: the ingesters
	// still serve them from local disk, where queries read them instead of the bucket's
	// copies. A compacted block is read unless all its sources are local, so compacting
	// them early would make queries read their samples twice.
	Hold time.Duration
	// Deleted says the workspace no longer exists: its data goes, nothing is compacted.
	Deleted bool
	// Blocks are the complete blocks (with meta.json), marked or not.
	Blocks  []blocks.Block
	Partial []PartialBlock
}

// Plan is what to do to one workspace's blocks, in this order: delete, mark, compact,
// purge. Each step leaves the bucket readable if the next never happens.
type Plan struct {
	// Delete are marked blocks (complete or partial) whose deletion delay has elapsed.
	Delete []ulid.ULID
	// Mark are blocks to mark for deletion now.
	Mark []Mark
	// Compact are groups of blocks to merge into one block each, oldest first.
	Compact []Group
	// Purge removes every object left under the workspace's prefix after Delete: the
	// workspace is deleted and none of its blocks is waiting for its deletion delay.
	Purge bool
}

// Mark is a block to mark for deletion and why.
type Mark struct {
	ID     ulid.ULID
	Reason string
}

// Group is a set of blocks merged into one.
type Group struct {
	// IDs are the blocks to merge, by MinTime then ULID.
	IDs []ulid.ULID
	// MinTime and MaxTime bound the result: [MinTime, MaxTime) in milliseconds.
	MinTime, MaxTime int64
	// Window is the block range whose aligned window the result fills; zero for a group
	// merged only because its blocks overlap and fit no complete window.
	Window time.Duration
}

// Empty says there is nothing to do.
func (p Plan) Empty() bool {
	return len(p.Delete) == 0 && len(p.Mark) == 0 && len(p.Compact) == 0 && !p.Purge
}

// PlanWorkspace decides what to do with one workspace's blocks. It is a pure function
// of its input (no I/O, no clock), so that every rule is tested from data files; the
// Compactor is the thin loop that lists, calls it and performs the plan.
//
// The rules, in order:
//
//  1. A marked block is left alone; it is deleted once now ≥ mark time + DeletionDelay.
//     Partial blocks carrying a mark are deleted by the same rule; unmarked partial
//     blocks may be uploads in progress and are never touched.
//  2. A deleted workspace: every unmarked block is marked (ReasonWorkspaceDeleted);
//     once none is left waiting, Purge.
//  3. Retention: an unmarked block whose MaxTime is older than now - Retention (strictly)
//     is marked; blocks are kept or dropped whole.
//  4. Redundancy: a block whose sources are all in another unmarked block with more
//     sources (or the same sources and a larger ULID) is marked.
//  5. Compaction of the rest. Overlapping blocks are chained into units (a unit is one
//     block, or blocks whose time ranges overlap transitively). For each range, largest
//     first, units that fit inside one aligned window [k·range, (k+1)·range) are grouped
//     when the window is complete and holds at least two blocks; a unit goes into the
//     largest such window. A unit of overlapping blocks that fits no complete window is
//     merged alone (vertical compaction) once its end is complete.
//
// A time t is complete — no more blocks ending at or before t are expected from the
// ingesters — when a block starts at or after t (ingesters have moved on) or when now ≥
// t + the smallest range (an idle workspace: its head was cut long ago). Blocks starting
// in the future prove nothing: a sample with a wild timestamp must not make the window
// being filled look complete. A window is also held back until Hold has passed since its
// end (see PlanInput.Hold). Late blocks that still land in a compacted window overlap
// its block and are merged in by the overlap rule, so completeness only saves work.
func PlanWorkspace(in PlanInput) Plan {
	var p Plan
	now := in.Now.UnixMilli()

	// 1. Deletion marks.
	var live []blocks.Block
	waiting := 0 // marked blocks whose delay has not elapsed
	for _, b := range in.Blocks {
		if b.DeletionMark == nil {
			live = append(live, b)
			continue
		}
		if due(b.DeletionMark, in.Now, in.DeletionDelay) {
			p.Delete = append(p.Delete, b.Meta.ULID)
		} else {
			waiting++
		}
	}
	for _, b := range in.Partial {
		if b.DeletionMark != nil && due(b.DeletionMark, in.Now, in.DeletionDelay) {
			p.Delete = append(p.Delete, b.ID)
		}
	}
	slices.SortFunc(p.Delete, ulid.ULID.Compare)

	// 2. Deleted workspace.
	if in.Deleted {
		for _, b := range live {
			p.Mark = append(p.Mark, Mark{ID: b.Meta.ULID, Reason: ReasonWorkspaceDeleted})
		}
		sortMarks(p.Mark)
		p.Purge = len(live) == 0 && waiting == 0
		return p
	}

	// 3. Retention.
	if in.Retention > 0 {
		cutoff := now - in.Retention.Milliseconds()
		kept := live[:0:0]
		for _, b := range live {
			if b.Meta.MaxTime < cutoff {
				p.Mark = append(p.Mark, Mark{ID: b.Meta.ULID, Reason: ReasonRetention})
			} else {
				kept = append(kept, b)
			}
		}
		live = kept
	}

	// 4. Redundancy.
	live = markRedundant(live, &p)
	sortMarks(p.Mark)

	// 5. Compaction.
	if len(in.Ranges) == 0 || len(live) < 2 {
		return p
	}
	newest := int64(minInt64)
	for _, b := range in.Blocks {
		if b.Meta.MinTime <= now && b.Meta.MinTime > newest {
			newest = b.Meta.MinTime
		}
	}
	settle, hold := in.Ranges[0].Milliseconds(), in.Hold.Milliseconds()
	imported := map[ulid.ULID]bool{}
	for _, b := range in.Blocks {
		if blocks.Imported(&b.Meta) {
			imported[b.Meta.ULID] = true
		}
	}
	// complete tells whether the window ending at t may be compacted from ids: no block
	// is still coming, and the ingesters let go of it, unless none of ids is theirs.
	complete := func(t int64, ids []ulid.ULID) bool {
		if newest < t && now < t+settle {
			return false
		}
		return now >= t+hold || !slices.ContainsFunc(ids, func(id ulid.ULID) bool { return !imported[id] })
	}

	slices.SortFunc(live, func(a, b blocks.Block) int {
		if c := cmp.Compare(a.Meta.MinTime, b.Meta.MinTime); c != 0 {
			return c
		}
		return a.Meta.ULID.Compare(b.Meta.ULID)
	})
	units := overlapUnits(live)
	assigned := make([]bool, len(units))
	for ri := len(in.Ranges) - 1; ri >= 0; ri-- {
		r := in.Ranges[ri].Milliseconds()
		if r <= 0 {
			continue
		}
		var cur []int // units in the window starting at curStart
		var curStart int64
		flush := func() {
			var ids []ulid.ULID
			for _, k := range cur {
				ids = append(ids, units[k].blocks...)
			}
			if len(ids) >= 2 && complete(curStart+r, ids) {
				for _, k := range cur {
					assigned[k] = true
				}
				p.Compact = append(p.Compact, Group{IDs: ids, MinTime: units[cur[0]].mint, MaxTime: units[cur[len(cur)-1]].maxt, Window: in.Ranges[ri]})
			}
			cur = cur[:0]
		}
		for k, u := range units {
			if assigned[k] {
				continue
			}
			start := windowStart(u.mint, r)
			if u.maxt > start+r {
				continue // straddles a window boundary: fits no window of this range
			}
			if len(cur) > 0 && start != curStart {
				flush()
			}
			curStart = start
			cur = append(cur, k)
		}
		flush()
	}
	for k, u := range units {
		if !assigned[k] && len(u.blocks) >= 2 && complete(u.maxt, u.blocks) {
			p.Compact = append(p.Compact, Group{IDs: u.blocks, MinTime: u.mint, MaxTime: u.maxt})
		}
	}
	slices.SortFunc(p.Compact, func(a, b Group) int {
		if c := cmp.Compare(a.MinTime, b.MinTime); c != 0 {
			return c
		}
		return a.IDs[0].Compare(b.IDs[0])
	})
	return p
}

const minInt64 = -1 << 63

func due(m *blocks.DeletionMark, now time.Time, delay time.Duration) bool {
	return !now.Before(time.Unix(m.DeletionTime, 0).Add(delay))
}

func sortMarks(ms []Mark) {
	slices.SortFunc(ms, func(a, b Mark) int { return a.ID.Compare(b.ID) })
}

// windowStart is the start of the aligned window of size r holding t (floor, also for
// negative t).
func windowStart(t, r int64) int64 {
	s := t / r * r
	if t < 0 && s != t {
		s -= r
	}
	return s
}

// unit is a maximal chain of blocks whose time ranges overlap: they can only be
// compacted together.
type unit struct {
	mint, maxt int64
	blocks     []ulid.ULID
}

// overlapUnits chains sorted blocks into units.
func overlapUnits(sorted []blocks.Block) []unit {
	var us []unit
	for _, b := range sorted {
		if n := len(us); n > 0 && b.Meta.MinTime < us[n-1].maxt {
			u := &us[n-1]
			u.blocks = append(u.blocks, b.Meta.ULID)
			u.maxt = max(u.maxt, b.Meta.MaxTime)
			continue
		}
		us = append(us, unit{mint: b.Meta.MinTime, maxt: b.Meta.MaxTime, blocks: []ulid.ULID{b.Meta.ULID}})
	}
	return us
}

// markRedundant marks the blocks whose sources another live block covers and returns
// the others. A block covers another when its source set is a superset and it is
// larger (more sources, or the same ones and a larger ULID), so the largest survives.
func markRedundant(live []blocks.Block, p *Plan) []blocks.Block {
	covered := blocks.Covered(live)
	kept := live[:0:0]
	for i, b := range live {
		if covered[i] {
			p.Mark = append(p.Mark, Mark{ID: b.Meta.ULID, Reason: ReasonRedundant})
		} else {
			kept = append(kept, b)
		}
	}
	return kept
}
