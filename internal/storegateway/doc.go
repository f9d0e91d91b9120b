// Package storegateway serves the blocks a workspace has in the bucket to the querier.
// Start from StoreGateway: New scans its local cache, Run keeps every known workspace's
// block list fresh, and Querier(ctx, workspace, mint, maxt) returns a storage.Querier over
// the workspace's blocks that overlap [mint, maxt].
//
//	Querier(ctx, ws, mint, maxt)
//	  │ first use of ws? ─▶ SyncWorkspace: blocks.List (complete blocks only)
//	  ▼
//	  blocks of the last listing overlapping [mint, maxt]
//	  ▼
//	  for each: open locally? ─yes─▶ take a reference
//	              │ no
//	              ▼
//	  one download per block however many queries want it (the others wait),
//	  blocks.Download into Dir/<ws>/<ULID>, tsdb.OpenBlock; gone from the bucket? skip it
//	  ▼
//	  over the disk budget? evict the least recently used blocks nobody holds
//	  ▼
//	  storage.NewMergeQuerier(one tsdb block querier per block, ChainedSeriesMerge)
//	  ▼
//	  Close ─▶ drop the references (a dropped or evicted block is removed at its last one)
//
// Whole blocks are cached, not index headers: a block is downloaded on first use and kept
// in Dir until the disk budget needs its room (least recently used first), the bucket no
// longer lists it, or its workspace is deleted. A block a querier still reads is never
// closed or removed; that is what the per-block reference count is for.
//
// Every complete block the bucket lists is served, including blocks marked for deletion:
// the compactor uploads a compacted block before it marks its sources, and queries may
// have started before either happened, so for a while the same samples live in several
// blocks. Overlapping blocks are merged with storage.ChainedSeriesMerge, which keeps one
// sample per series and timestamp, so duplicates from overlapping blocks (compaction
// sources and their result, or replicas) are returned once. Two different values at the
// same timestamp, which no correct writer produces, yield one of them.
//
// Not built (yet): index headers and chunks fetched by range from the bucket instead of
// whole blocks (Thanos' and Cortex's way of serving more history than the local disk
// holds), sharding workspaces or blocks over several store-gateways, and discovering
// workspaces by listing the bucket: a workspace is known once it is queried, synced or
// found in the local cache at start.
package storegateway
