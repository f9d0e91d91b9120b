// Package hatracker deduplicates samples from pairs (or larger groups) of
// high-availability Prometheus replicas, the way Amazon Managed Service for
// Prometheus and Cortex do.
//
// Start from [Tracker]: the distributor finds the HA labels of a request with
// [FindHALabels], calls [Tracker.Decide] once per distinct (cluster, replica)
// pair in the request, stores the samples when the decision is [Accept] (after
// removing the replica label and keeping the cluster label), and answers 2xx
// without storing them when it is [DropNotElected], so that the standby
// replica's sender does not retry.
//
// The tracker is a deterministic core in the spirit of etcd's raft: it does no
// I/O, starts no goroutine and reads no clock. Time is an argument. A thin loop
// around it owns persistence and housekeeping:
//
//   - persist: write [Tracker.Changes] (or a full [Tracker.Snapshot]) to the
//     metadata store; [Decision.Persist] says when there is something to write.
//   - restart: [Tracker.Restore] the stored entries before serving writes, so
//     an election survives a restart.
//   - GC: call [Tracker.GC] periodically (every minute is plenty).
//
// State machine of one (workspace, cluster):
//
//	             first sample, under the cluster limit
//	(untracked) ───────────────────────────────────────▶ (elected R)
//	     ▲                                                    │
//	     └──── GC: no accepted sample for > IdleTimeout ──────┘
//	           DeleteWorkspace
//
//	while R is elected, a request from replica X at now:
//	  X == R                                      accept, ReceivedAt = now
//	  X != R, now-ReceivedAt <  FailoverTimeout   drop
//	  X != R, now-ReceivedAt >= FailoverTimeout   accept, elect X
//	                                              (ReceivedAt = ElectedAt = now)
//
// What differs from Cortex, on purpose:
//
//   - Failover is measured from the elected replica's last accepted sample,
//     kept exactly in memory. Cortex measures it from the timestamp in its KV
//     store, which it refreshes only every update timeout (15 s), so a Cortex
//     failover can happen up to 15 s early. Here UpdateTimeout only throttles
//     how often a heartbeat needs persisting.
//   - GC is one step: a cluster idle for more than IdleTimeout is forgotten at
//     the next GC call. Cortex first marks it deleted in the KV store, then
//     deletes the mark in a later 30-minute cleanup cycle, to let watching
//     distributors catch up; a caller sharing a store can keep tombstones
//     (see Tracker.Changes) for the same purpose.
package hatracker
