package ingester

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/stratametrics/strata/internal/blocks"
)

// shippedFile lists the blocks of a workspace TSDB already uploaded to the bucket.
const shippedFile = "shipped.json"

// shipper uploads the blocks each workspace's TSDB cuts from its head to the bucket. It
// works from the directories on disk, not the open TSDBs, so blocks cut before a crash or
// by a TSDB that was since closed are uploaded too (pending blocks upload on restart).
type shipper struct {
	mu      sync.Mutex // guards shipped and uploaded; one ship pass at a time
	shipped map[string]map[ulid.ULID]bool
	// uploaded are the blocks this process uploaded, with when (those of shipped.json
	// from before it started are older).
	uploaded map[ulid.ULID]time.Time
}

func (s *shipper) load(dir string) map[ulid.ULID]bool {
	out := map[ulid.ULID]bool{}
	b, err := os.ReadFile(filepath.Join(dir, shippedFile))
	if err != nil {
		return out
	}
	var ids []ulid.ULID
	if json.Unmarshal(b, &ids) == nil {
		for _, id := range ids {
			out[id] = true
		}
	}
	return out
}

func (s *shipper) save(dir string, set map[ulid.ULID]bool) error {
	ids := make([]ulid.ULID, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a].Compare(ids[b]) < 0 })
	b, _ := json.Marshal(ids)
	tmp := filepath.Join(dir, shippedFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, shippedFile))
}

// isShipped reports whether a block of workspace is in the bucket.
func (i *Ingester) isShipped(workspace string, id ulid.ULID) bool {
	s := &i.ship
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.shipped[workspace]
	if !ok {
		set = s.load(filepath.Join(i.dir, workspace))
		s.shipped[workspace] = set
	}
	return set[id]
}

// forgetUploadsAfter bounds how long the upload time of a block is kept: far longer
// than anyone asks about recent uploads (shippedBefore, a few minutes back).
const forgetUploadsAfter = time.Hour

// shippedBefore reports whether a block of workspace was in the bucket before t.
func (i *Ingester) shippedBefore(workspace string, id ulid.ULID, t time.Time) bool {
	if !i.isShipped(workspace, id) {
		return false
	}
	i.ship.mu.Lock()
	defer i.ship.mu.Unlock()
	at, ok := i.ship.uploaded[id]
	return !ok || at.Before(t)
}

// ShipOnce uploads every block of every workspace that is not in the bucket yet.
func (i *Ingester) ShipOnce(ctx context.Context) error {
	if i.bkt == nil {
		return nil
	}
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		return fmt.Errorf("listing workspace TSDBs: %w", err)
	}
	var firstErr error
	for _, e := range entries {
		ws := e.Name()
		if !e.IsDir() || !blocks.ValidWorkspace(ws) {
			continue
		}
		i.mu.Lock()
		deleted := i.deleted[ws]
		i.mu.Unlock()
		if deleted {
			continue
		}
		if err := i.shipWorkspace(ctx, ws); err != nil {
			i.m.uploadFailures.Inc()
			i.logger.Warn("uploading blocks; will retry", "workspace", ws, "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

func (i *Ingester) shipWorkspace(ctx context.Context, ws string) error {
	dir := filepath.Join(i.dir, ws)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	s := &i.ship
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.shipped[ws]
	if !ok {
		set = s.load(dir)
		s.shipped[ws] = set
	}
	changed := false
	for _, e := range entries {
		id, err := ulid.ParseStrict(e.Name())
		if err != nil || !e.IsDir() || set[id] {
			continue
		}
		bdir := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(bdir, blocks.MetaFilename)); err != nil {
			continue // not a complete block
		}
		if _, err := blocks.Upload(ctx, i.bkt, ws, bdir); err != nil {
			if _, statErr := os.Stat(bdir); os.IsNotExist(statErr) {
				continue // compacted away locally meanwhile; its successor is shipped instead
			}
			return err
		}
		set[id] = true
		if s.uploaded == nil {
			s.uploaded = map[ulid.ULID]time.Time{}
		}
		now := i.now()
		s.uploaded[id] = now
		for id, at := range s.uploaded {
			if now.Sub(at) > forgetUploadsAfter {
				delete(s.uploaded, id)
			}
		}
		changed = true
		i.m.blocksShipped.Inc()
		i.logger.Info("block uploaded", "workspace", ws, "block", id)
	}
	if changed {
		return s.save(dir, set)
	}
	return nil
}

// blocksToDelete lets the TSDB delete local blocks only once they are in the bucket and
// older than the local retention window, or merged into another block.
func (i *Ingester) blocksToDelete(ws string) tsdb.BlocksToDeleteFunc {
	return func(bs []*tsdb.Block) map[ulid.ULID]struct{} {
		out := map[ulid.ULID]struct{}{}
		var newest int64
		for _, b := range bs {
			newest = max(newest, b.Meta().MaxTime)
		}
		cutoff := newest - i.cfg.TSDB.LocalRetention.Milliseconds()
		for _, b := range bs {
			m := b.Meta()
			switch {
			case m.Compaction.Deletable:
				out[m.ULID] = struct{}{}
			case i.bkt != nil && m.MaxTime < cutoff && i.isShipped(ws, m.ULID):
				out[m.ULID] = struct{}{}
			}
		}
		return out
	}
}

// Compact cuts the blocks the workspace's head is due for now (the TSDB otherwise does so
// about once a minute), for tests and operators who want data in the bucket sooner.
func (i *Ingester) Compact(ctx context.Context, workspace string) error {
	u, err := i.get(ctx, workspace)
	if err != nil {
		return err
	}
	defer u.release()
	return u.db.Compact(ctx)
}

// LocalBlocks returns a test for the blocks the workspace's TSDB holds on local disk (by
// ULID, with the blocks they were compacted from), so readers can skip the bucket copies.
// Call it after opening the querier whose view it must match.
func (i *Ingester) LocalBlocks(workspace string) func(ulid.ULID) bool {
	u := i.openDB(workspace)
	if u == nil {
		return nil
	}
	set := map[ulid.ULID]bool{}
	for _, b := range u.db.Blocks() {
		m := b.Meta()
		set[m.ULID] = true
		for _, s := range m.Compaction.Sources {
			set[s] = true
		}
	}
	return func(id ulid.ULID) bool { return set[id] }
}
