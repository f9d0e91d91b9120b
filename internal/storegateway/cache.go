package storegateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/stratametrics/strata/internal/blocks"
)

// errBlockGone says a block left the bucket after the listing that named it. Queries skip
// such blocks: the listing they used was already out of date.
var errBlockGone = errors.New("block is gone from the bucket")

// localBlock is one block of the local cache.
//
//	absent ─acquire─▶ loading (busy) ─▶ open ─last release, dropped─▶ removing (busy) ─▶ absent
//	                     │ failed: absent     └─ idle, over budget ──▶ removing (busy)
//	on disk, closed (found at start) ─acquire─▶ loading (busy: open, or download again)
//	open ─Close, or the last release after it─▶ closing (busy) ─▶ on disk, closed
//
// While busy is set, exactly one goroutine (its setter) works on the block and everyone
// else waits for busy to close and looks again.
type localBlock struct {
	workspace string
	id        ulid.ULID
	dir       string

	// Guarded by StoreGateway.mu.
	busy     chan struct{} // non-nil while loading or removing; closed when that ends
	block    *tsdb.Block   // non-nil while open; set and cleared by the holder of busy
	hashes   *seriesHashes // of the open block, for sharded queries
	symbols  *blockSymbols // of the open block
	onDisk   bool          // dir holds the complete block
	size     int64         // bytes of dir, when onDisk
	refs     int           // queriers reading block, plus the loader while loading
	lastUsed uint64        // StoreGateway.useClock at the last acquire
	usedAt   time.Time     // StoreGateway.now() at the last acquire
	dropped  bool          // remove once refs drops to zero: gone from the bucket or workspace deleted
}

func (sg *StoreGateway) localMapLocked(ws string) map[ulid.ULID]*localBlock {
	m := sg.local[ws]
	if m == nil {
		m = map[ulid.ULID]*localBlock{}
		sg.local[ws] = m
	}
	return m
}

func (sg *StoreGateway) takeLocked(lb *localBlock) {
	lb.refs++
	sg.useClock++
	lb.lastUsed = sg.useClock
	lb.usedAt = sg.now()
}

// closeIdle closes the open blocks nobody has acquired since before cutoff and nobody
// holds, keeping their files; the next query opens them again.
func (sg *StoreGateway) closeIdle(cutoff time.Time) error {
	var idle []*localBlock
	sg.mu.Lock()
	for _, m := range sg.local {
		for _, lb := range m {
			if lb.block != nil && lb.refs == 0 && lb.busy == nil && !lb.dropped && lb.usedAt.Before(cutoff) {
				lb.busy = make(chan struct{})
				idle = append(idle, lb)
			}
		}
	}
	sg.mu.Unlock()
	return sg.closeBlocks(idle)
}

// acquireAll returns the blocks ids of ws open, each with a reference the caller gives back
// with release. Blocks gone from the bucket are left out. Blocks already open are taken
// under one lock; the others load DownloadConcurrency at a time.
func (sg *StoreGateway) acquireAll(ctx context.Context, ws string, ids []ulid.ULID) ([]*localBlock, error) {
	held := make([]*localBlock, 0, len(ids))
	var pending []ulid.ULID
	sg.mu.Lock()
	if sg.closed {
		sg.mu.Unlock()
		return nil, ErrClosed
	}
	for _, id := range ids {
		if lb := sg.local[ws][id]; lb != nil && lb.busy == nil && lb.block != nil {
			sg.takeLocked(lb)
			held = append(held, lb)
		} else {
			pending = append(pending, id)
		}
	}
	sg.mu.Unlock()
	if len(pending) == 0 {
		return held, nil
	}

	got := make([]*localBlock, len(pending))
	var (
		errMu    sync.Mutex
		firstErr error
	)
	loadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, sg.cfg.DownloadConcurrency)
	var wg sync.WaitGroup
	for i, id := range pending {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-loadCtx.Done():
				return
			}
			lb, err := sg.acquire(loadCtx, ws, id)
			switch {
			case err == nil:
				got[i] = lb
			case errors.Is(err, errBlockGone):
				sg.m.blocksSkipped.Inc()
				sg.logger.Debug("skipping block gone from the bucket", "workspace", ws, "block", id)
			default:
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				cancel() // the query fails; stop the other downloads
			}
		})
	}
	wg.Wait()
	for _, lb := range got {
		if lb != nil {
			held = append(held, lb)
		}
	}
	if err := ctx.Err(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		sg.release(held)
		return nil, firstErr
	}
	return held, nil
}

// acquire returns the block open with a reference taken, downloading it (once, whoever
// else wants it meanwhile) if it is not in the cache.
func (sg *StoreGateway) acquire(ctx context.Context, ws string, id ulid.ULID) (*localBlock, error) {
	for {
		sg.mu.Lock()
		if sg.closed {
			sg.mu.Unlock()
			return nil, ErrClosed
		}
		lb := sg.local[ws][id]
		if lb == nil {
			lb = &localBlock{workspace: ws, id: id, dir: filepath.Join(sg.dir, ws, id.String())}
			sg.localMapLocked(ws)[id] = lb
		}
		if ch := lb.busy; ch != nil {
			sg.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		sg.takeLocked(lb)
		if lb.block != nil {
			sg.mu.Unlock()
			return lb, nil
		}
		lb.busy = make(chan struct{})
		sg.mu.Unlock()
		if err := sg.load(ctx, lb); err != nil {
			return nil, err
		}
		return lb, nil
	}
}

// load opens lb, downloading it first if needed. The caller holds lb.busy and one of its
// references, which load gives back if it fails.
func (sg *StoreGateway) load(ctx context.Context, lb *localBlock) error {
	b, err := sg.openOrDownload(ctx, lb)
	sg.mu.Lock()
	if err == nil {
		lb.block, lb.hashes, lb.symbols = b, &seriesHashes{}, newBlockSymbols(lb.dir, sg.m.symbolBytes)
		sg.blocksOpen++
	}
	close(lb.busy)
	lb.busy = nil
	var drop, evict []*localBlock
	if err != nil {
		lb.refs--
		drop = sg.idleLocked(lb)
	} else {
		evict = sg.evictLocked()
	}
	sg.mu.Unlock()
	sg.remove(drop, reasonDeleted)
	sg.remove(evict, reasonDiskBudget)
	return err
}

func (sg *StoreGateway) openOrDownload(ctx context.Context, lb *localBlock) (*tsdb.Block, error) {
	if lb.onDisk {
		b, err := tsdb.OpenBlock(sg.logger, lb.dir, chunkAllocator{}, nil)
		if err == nil {
			return b, nil
		}
		// A damaged copy (a disk error, a crash mid-removal): fetch it again.
		sg.logger.Warn("opening cached block failed, downloading it again", "workspace", lb.workspace, "block", lb.id, "err", err)
		if err := os.RemoveAll(lb.dir); err != nil {
			return nil, fmt.Errorf("removing damaged cached block %s: %w", lb.dir, err)
		}
		sg.mu.Lock()
		sg.forgetDiskLocked(lb)
		sg.mu.Unlock()
	}

	dir, err := blocks.Download(ctx, sg.bkt, lb.workspace, lb.id, filepath.Join(sg.dir, lb.workspace))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Deleted between the listing and now: the whole block (no meta.json), or some of
		// its files after Download listed them.
		if errors.Is(err, blocks.ErrNoMeta) {
			return nil, errBlockGone
		}
		if _, metaErr := blocks.ReadMeta(ctx, sg.bkt, lb.workspace, lb.id); errors.Is(metaErr, blocks.ErrNoMeta) {
			return nil, errBlockGone
		}
		sg.m.loadFailures.Inc()
		return nil, err
	}
	size, err := dirSize(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		sg.m.loadFailures.Inc()
		return nil, fmt.Errorf("sizing downloaded block %s: %w", dir, err)
	}
	sg.mu.Lock()
	lb.onDisk, lb.size = true, size
	sg.diskBytes += size
	sg.blocksOnDisk++
	sg.mu.Unlock()
	sg.m.loads.Inc()
	sg.m.downloadedSize.Add(float64(size))

	b, err := tsdb.OpenBlock(sg.logger, dir, chunkAllocator{}, nil)
	if err != nil {
		// Left on disk: the next use tries to open it, then downloads it again.
		sg.m.loadFailures.Inc()
		return nil, fmt.Errorf("opening block %s/%s: %w", lb.workspace, lb.id, err)
	}
	return b, nil
}

// chunkAllocator makes a new chunk for every chunk a query reads. The TSDB's default pool
// gets them from a sync.Pool, but queries never give them back, so every Get finds it
// empty after searching the other CPUs' shares, which shards reading at once keep busy.
type chunkAllocator struct{}

func (chunkAllocator) Get(e chunkenc.Encoding, b []byte) (chunkenc.Chunk, error) {
	return chunkenc.FromData(e, b)
}

func (chunkAllocator) Put(chunkenc.Chunk) error { return nil }

func (sg *StoreGateway) forgetDiskLocked(lb *localBlock) {
	if lb.onDisk {
		sg.diskBytes -= lb.size
		sg.blocksOnDisk--
		lb.onDisk, lb.size = false, 0
	}
}

// release gives back one reference to each block. The last reference of a dropped block
// removes it, that of a block of a closed store-gateway closes it.
func (sg *StoreGateway) release(held []*localBlock) {
	if len(held) == 0 {
		return
	}
	var drop, closing []*localBlock
	sg.mu.Lock()
	for _, lb := range held {
		lb.refs--
		if lb.refs > 0 || lb.busy != nil {
			continue
		}
		switch {
		case lb.dropped:
			drop = append(drop, sg.idleLocked(lb)...)
		case sg.closed && lb.block != nil:
			lb.busy = make(chan struct{})
			closing = append(closing, lb)
		}
	}
	evict := sg.evictLocked()
	sg.mu.Unlock()
	sg.remove(drop, reasonDeleted)
	sg.remove(evict, reasonDiskBudget)
	if err := sg.closeBlocks(closing); err != nil {
		sg.logger.Warn("closing block", "err", err)
	}
}

// idleLocked handles lb once nobody holds or loads it: an entry with nothing on disk
// leaves the map, a dropped one is returned, busy, for removal.
func (sg *StoreGateway) idleLocked(lb *localBlock) []*localBlock {
	if lb.refs > 0 || lb.busy != nil {
		return nil
	}
	if !lb.onDisk && lb.block == nil {
		sg.deleteEntryLocked(lb)
		return nil
	}
	if lb.dropped {
		lb.busy = make(chan struct{})
		return []*localBlock{lb}
	}
	return nil
}

func (sg *StoreGateway) deleteEntryLocked(lb *localBlock) {
	m := sg.local[lb.workspace]
	if m[lb.id] == lb {
		delete(m, lb.id)
		if len(m) == 0 {
			delete(sg.local, lb.workspace)
		}
	}
}

// evictLocked picks, least recently used first, idle blocks to remove until the cache
// fits its budget, and marks them busy. Blocks being read or loaded are never picked, so
// the cache can stay over budget while wide queries run.
func (sg *StoreGateway) evictLocked() []*localBlock {
	budget := sg.cfg.DiskBudgetBytes
	if budget == 0 || sg.diskBytes <= budget {
		return nil
	}
	var idle []*localBlock
	for _, m := range sg.local {
		for _, lb := range m {
			if lb.refs == 0 && lb.busy == nil && lb.onDisk {
				idle = append(idle, lb)
			}
		}
	}
	slices.SortFunc(idle, func(a, b *localBlock) int {
		switch {
		case a.lastUsed < b.lastUsed:
			return -1
		case a.lastUsed > b.lastUsed:
			return 1
		}
		return 0
	})
	over := sg.diskBytes - budget
	var out []*localBlock
	for _, lb := range idle {
		if over <= 0 {
			break
		}
		lb.busy = make(chan struct{})
		out = append(out, lb)
		over -= lb.size
	}
	return out
}

// remove closes and deletes the blocks, whose busy the caller set. A block whose files
// cannot be removed stays in the cache, closed, to be tried again.
func (sg *StoreGateway) remove(lbs []*localBlock, reason string) error {
	var errs []error
	for _, lb := range lbs {
		var err error
		if lb.block != nil {
			err = lb.block.Close() // waits for its readers
			lb.symbols.close()
		}
		rmErr := os.RemoveAll(lb.dir)
		sg.mu.Lock()
		if lb.block != nil {
			lb.block = nil
			sg.blocksOpen--
		}
		if rmErr == nil {
			sg.forgetDiskLocked(lb)
			sg.deleteEntryLocked(lb)
		}
		close(lb.busy)
		lb.busy = nil
		sg.mu.Unlock()
		if err = errors.Join(err, rmErr); err != nil {
			sg.logger.Warn("removing cached block", "workspace", lb.workspace, "block", lb.id, "reason", reason, "err", err)
			errs = append(errs, fmt.Errorf("removing cached block %s/%s: %w", lb.workspace, lb.id, err))
			continue
		}
		sg.m.removals.WithLabelValues(reason).Inc()
		sg.logger.Debug("removed cached block", "workspace", lb.workspace, "block", lb.id, "reason", reason)
	}
	return errors.Join(errs...)
}

// closeBlocks closes the blocks, whose busy the caller set, keeping their files.
func (sg *StoreGateway) closeBlocks(lbs []*localBlock) error {
	var errs []error
	for _, lb := range lbs {
		if err := lb.block.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing block %s/%s: %w", lb.workspace, lb.id, err))
		}
		lb.symbols.close()
		sg.mu.Lock()
		lb.block = nil
		sg.blocksOpen--
		close(lb.busy)
		lb.busy = nil
		sg.mu.Unlock()
	}
	return errors.Join(errs...)
}
