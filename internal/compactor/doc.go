// Package compactor keeps the blocks in the bucket few, deduplicated and within each
// workspace's retention, and removes the data of deleted workspaces. Start from
// PlanWorkspace, the pure function that decides everything, then Compactor, the thin loop
// that lists the bucket, asks for a plan and performs it:
//
//	every Interval, for each <workspace>/ prefix holding blocks:
//	  list metas + deletion marks ─▶ PlanWorkspace(blocks, now, retention) ─▶ Plan
//	      ▲                                                                    │
//	      └──────── until the plan is empty ◀── delete ◀─ mark ◀─ compact ◀────┘
//
// What a plan does (see PlanWorkspace for the exact rules, testdata/*.txt for cases):
//   - compact: ingesters upload 2h blocks; once a 12h or 24h window is complete they are
//     merged into one block per window, and blocks with overlapping time ranges
//     (several ingesters, restarts, late data) are merged with Prometheus' vertical
//     compaction so that duplicate samples are stored once;
//   - mark: the sources of a compaction, blocks past retention and blocks of a workspace
//     the metadata store no longer knows get a deletion-mark.json;
//   - delete: marked blocks go after --compactor.deletion-delay, because a query that
//     listed a block before its mark must still be able to read it.
//
// Crash safety comes from the order of writes, never from locks: a result is uploaded
// meta.json last (readers ignore blocks without it) before any source is marked, so
// at every instant each sample is in at least one complete unmarked block; duplicates
// between a result and its not-yet-marked sources are deduplicated by readers and the
// sources are marked as redundant by the next run. Ingestion may continue throughout:
// a block that appears during a run is simply planned by a later one.
//
// Deleted workspaces: DeleteWorkspace removes every object of the workspace at once
// (the workspace-deletion hook: AMP deletes the data with the workspace). A prefix the
// metadata store does not know is otherwise treated with the deletion delay — its blocks
// are marked, then deleted, then the prefix is purged — so a stale metadata view can
// never destroy data at once.
//
// Run one compactor per bucket.
package compactor
