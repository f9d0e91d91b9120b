package ingester

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/stratametrics/strata/internal/blocks"
)

// replayState lets an ingester that takes over a partition of the ingest log store the
// samples it replays, which can be hours older than the newest of the workspace's
// TSDB (fed by its other partitions) and so older than the TSDB accepts: while any
// partition is being caught up on, every TSDB's out-of-order window reaches back to the
// oldest sample replayed.
type replayState struct {
	// floors are, per partition being caught up on, the oldest sample time (ms) to accept.
	floors map[int]int64
}

// ReplayFrom makes the ingester accept samples back to mint (ms) while it catches up on
// partition p of the ingest log, until ReplayDone(p). Samples it would refuse otherwise
// go to each TSDB's out-of-order head and reach the bucket with its next blocks.
func (i *Ingester) ReplayFrom(p int, mint int64) {
	i.replayMu.Lock()
	defer i.replayMu.Unlock()
	if i.replay.floors == nil {
		i.replay.floors = map[int]int64{}
	}
	i.replay.floors[p] = mint
	i.applyWindowsLocked()
}

// ReplayDone ends ReplayFrom(p).
func (i *Ingester) ReplayDone(p int) {
	i.replayMu.Lock()
	defer i.replayMu.Unlock()
	if _, ok := i.replay.floors[p]; !ok {
		return
	}
	delete(i.replay.floors, p)
	i.applyWindowsLocked()
}

// oooWindowLocked is the out-of-order window (ms) workspace's TSDB should have now: its
// limit, widened to reach the oldest sample being replayed. Call with replayMu held.
func (i *Ingester) oooWindowLocked(workspace string) int64 {
	w := i.limits.For(workspace).OutOfOrderTimeWindow.Milliseconds()
	if len(i.replay.floors) == 0 {
		return w
	}
	floor := int64(math.MaxInt64)
	for _, f := range i.replay.floors {
		floor = min(floor, f)
	}
	// The window counts back from the TSDB's newest sample, at most about now (plus the
	// creation grace period); the limit's window is kept on top.
	return max(w, i.now().UnixMilli()-floor+w)
}

// applyWindows gives every open TSDB the out-of-order window it should have now (limits
// change at runtime, replays start and end).
func (i *Ingester) applyWindows() {
	i.replayMu.Lock()
	defer i.replayMu.Unlock()
	i.applyWindowsLocked()
}

func (i *Ingester) applyWindowsLocked() {
	for _, u := range i.acquireOpen() {
		if w := i.oooWindowLocked(u.id); w != u.oooWindow {
			err := u.db.ApplyConfig(&config.Config{StorageConfig: config.StorageConfig{
				TSDBConfig:      &config.TSDBConfig{OutOfOrderTimeWindow: w},
				ExemplarsConfig: &config.ExemplarsConfig{MaxExemplars: int64(i.limits.For(u.id).MaxExemplars)},
			}})
			if err != nil {
				i.logger.Warn("changing the out-of-order window", "workspace", u.id, "window_ms", w, "err", err)
			} else {
				u.oooWindow = w
			}
		}
		u.release()
	}
}

// acquireOpen returns the open TSDBs, each acquired: release each.
func (i *Ingester) acquireOpen() []*userDB {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []*userDB
	for _, u := range i.dbs {
		if u.opening == nil && u.db != nil {
			u.acquire()
			out = append(out, u)
		}
	}
	return out
}

// UnshippedFrom returns the oldest sample time (ms) the ingester holds that was not in a
// block in the bucket before the time before: in a head, an out-of-order head, or a
// block not uploaded yet (or after before, so that readers of the bucket may not have
// seen it); math.MaxInt64 when it holds none. ok is false while it cannot tell: until
// every TSDB on disk has been opened after a start.
func (i *Ingester) UnshippedFrom(before time.Time) (mint int64, ok bool) {
	if !i.warm.Load() || i.bkt == nil {
		return 0, false
	}
	mint = math.MaxInt64
	open := map[string]bool{}
	for _, u := range i.acquireOpen() {
		open[u.id] = true
		h := u.db.Head()
		if h.MaxTime() >= h.MinTime() {
			mint = min(mint, h.MinTime())
		}
		mint = min(mint, h.MinOOOTime())
		u.release()
	}
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		return 0, false
	}
	for _, e := range entries {
		ws := e.Name()
		if !e.IsDir() || !blocks.ValidWorkspace(ws) {
			continue
		}
		i.mu.Lock()
		deleted, flushed := i.deleted[ws], i.flushed[ws]
		i.mu.Unlock()
		if deleted {
			continue
		}
		if !open[ws] && !flushed {
			// Its head is in its WAL only, which this cannot read without opening it.
			return 0, false
		}
		t, err := i.oldestUnshippedBlock(ws, before)
		if err != nil {
			return 0, false
		}
		mint = min(mint, t)
	}
	return mint, true
}

// oldestUnshippedBlock returns the MinTime of the oldest local block of ws not in the
// bucket before the time before; math.MaxInt64 when all are.
func (i *Ingester) oldestUnshippedBlock(ws string, before time.Time) (int64, error) {
	dir := filepath.Join(i.dir, ws)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	mint := int64(math.MaxInt64)
	for _, e := range entries {
		id, err := ulid.ParseStrict(e.Name())
		if err != nil || !e.IsDir() || i.shippedBefore(ws, id, before) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), blocks.MetaFilename))
		if os.IsNotExist(err) {
			continue // being written or deleted
		}
		if err != nil {
			return 0, err
		}
		var m struct {
			MinTime int64 `json:"minTime"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return 0, fmt.Errorf("block %s of workspace %s: %w", id, ws, err)
		}
		mint = min(mint, m.MinTime)
	}
	return mint, nil
}

// flushHead cuts everything the TSDB's heads hold into blocks (one per block range, and
// those of the out-of-order head), so that a TSDB closed for idleness leaves nothing
// behind that only its WAL holds: the next ship pass uploads it all.
func (i *Ingester) flushHead(ctx context.Context, u *userDB) error {
	h := u.db.Head()
	if mint, maxt := h.MinTime(), h.MaxTime(); maxt >= mint {
		// Taken once: cutting moves the head's bounds.
		r := i.cfg.TSDB.BlockRange.Milliseconds()
		for start := mint - mod(mint, r); start <= maxt; start += r {
			// RangeHead bounds are inclusive; the block's are [start, start+r).
			if err := u.db.CompactHead(tsdb.NewRangeHead(h, start, start+r-1)); err != nil {
				return fmt.Errorf("cutting the head of workspace %s into blocks: %w", u.id, err)
			}
		}
	}
	if err := u.db.CompactOOOHead(ctx); err != nil {
		return fmt.Errorf("cutting the out-of-order head of workspace %s into blocks: %w", u.id, err)
	}
	return nil
}

// mod is t mod r, non-negative.
func mod(t, r int64) int64 { return ((t % r) + r) % r }
