package storegateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/periodic"
)

// ErrClosed is returned by Querier and SyncWorkspace once the store-gateway is closed.
var ErrClosed = errors.New("store-gateway is closed")

// StoreGateway serves the workspaces' blocks in the bucket from a local cache of whole
// blocks. Safe for concurrent use.
//
// Lock order: workspace.syncMu before StoreGateway.mu. Nothing that waits on the network
// or on another goroutine runs under mu; the only file operation under it is removing an
// empty workspace directory.
type StoreGateway struct {
	cfg    Config
	dir    string
	bkt    objstore.Bucket
	logger *slog.Logger
	now    func() time.Time
	m      *metrics

	mu sync.Mutex // guards the fields below and those of workspace and localBlock marked so
	// workspaces holds the workspaces queried, synced or found in Dir at start.
	workspaces map[string]*workspace
	// local holds the blocks in Dir or being downloaded into it, by workspace and id. An
	// entry stays here until its files are gone, so that two downloads of one block never
	// race on its directory.
	local        map[string]map[ulid.ULID]*localBlock
	diskBytes    int64  // sum of size of the entries on disk
	blocksOnDisk int    // entries on disk
	blocksOpen   int    // entries with an open block
	useClock     uint64 // ticks at each use of a block: the LRU order
	closed       bool
}

// workspace is the state of one workspace: its block list from the bucket.
type workspace struct {
	id     string
	syncMu sync.Mutex // serialises the syncs of this workspace; taken before StoreGateway.mu

	// Guarded by StoreGateway.mu.
	blocks   []blockRange // the last listing, oldest first
	synced   bool         // blocks holds a listing
	lastSync time.Time
}

// blockRange is a listed block: its id and its time range [mint, maxt).
type blockRange struct {
	// sources are the ingester blocks merged into this one (itself for an uncompacted block).
	sources    []ulid.ULID
	id         ulid.ULID
	mint, maxt int64
	imported   bool // blocks.HintImported
}

// New returns a store-gateway caching blocks in cfg.Dir (or dataDir/store-gateway). Blocks
// already there from an earlier run are kept and served again without a download once
// the bucket still lists them; leftovers of interrupted downloads are removed.
func New(cfg Config, dataDir string, bkt objstore.Bucket, logger *slog.Logger, reg prometheus.Registerer) (*StoreGateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := cfg.Dir
	if dir == "" {
		dir = filepath.Join(dataDir, "store-gateway")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating store-gateway directory: %w", err)
	}
	sg := &StoreGateway{
		cfg:        cfg,
		dir:        dir,
		bkt:        bkt,
		logger:     logger,
		now:        time.Now,
		workspaces: map[string]*workspace{},
		local:      map[string]map[ulid.ULID]*localBlock{},
	}
	sg.m = newMetrics(reg, sg)
	sg.m.diskBudget.Set(float64(cfg.DiskBudgetBytes))
	if err := sg.scan(); err != nil {
		return nil, err
	}
	return sg, nil
}

// scan registers the complete blocks in Dir, least recently modified first in the LRU
// order, and removes everything else there (Download's temporary directories).
func (sg *StoreGateway) scan() error {
	wsDirs, err := os.ReadDir(sg.dir)
	if err != nil {
		return fmt.Errorf("reading store-gateway directory: %w", err)
	}
	type found struct {
		lb    *localBlock
		mtime time.Time
	}
	var all []found
	for _, wd := range wsDirs {
		if !wd.IsDir() || !blocks.ValidWorkspace(wd.Name()) {
			continue
		}
		ws := wd.Name()
		entries, err := os.ReadDir(filepath.Join(sg.dir, ws))
		if err != nil {
			return fmt.Errorf("reading store-gateway directory: %w", err)
		}
		for _, e := range entries {
			p := filepath.Join(sg.dir, ws, e.Name())
			id, err := ulid.ParseStrict(e.Name())
			var fi os.FileInfo
			if err == nil && e.IsDir() {
				fi, err = os.Stat(filepath.Join(p, blocks.MetaFilename))
			}
			if err != nil || !e.IsDir() {
				// Not a complete block: Download renames a block into place only once
				// all of it is there, so this is a temporary directory or a stray file.
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("removing leftover %s: %w", p, err)
				}
				continue
			}
			size, err := dirSize(p)
			if err != nil {
				return fmt.Errorf("sizing cached block %s: %w", p, err)
			}
			all = append(all, found{
				lb:    &localBlock{workspace: ws, id: id, dir: p, onDisk: true, size: size},
				mtime: fi.ModTime(),
			})
		}
		if _, ok := sg.workspaces[ws]; !ok {
			// Known, so that Run syncs it and drops blocks deleted from the bucket since.
			sg.workspaces[ws] = &workspace{id: ws}
		}
	}
	slices.SortFunc(all, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	for _, f := range all {
		sg.useClock++
		f.lb.lastUsed = sg.useClock
		sg.localMapLocked(f.lb.workspace)[f.lb.id] = f.lb
		sg.diskBytes += f.lb.size
		sg.blocksOnDisk++
	}
	if len(all) > 0 {
		sg.logger.Info("found cached blocks", "blocks", len(all), "bytes", sg.diskBytes)
	}
	return nil
}

// Run refreshes the block list of every known workspace each SyncInterval until ctx is
// done, then closes the store-gateway (Close).
func (sg *StoreGateway) Run(ctx context.Context) error {
	sg.syncAll(ctx)
	periodic.Every(ctx, sg.cfg.SyncInterval, func(ctx context.Context) {
		sg.syncAll(ctx)
		if sg.cfg.IdleClose > 0 {
			if err := sg.closeIdle(sg.now().Add(-sg.cfg.IdleClose)); err != nil {
				sg.logger.Warn("closing idle blocks", "err", err)
			}
		}
	})
	return sg.Close()
}

// syncAll syncs the known workspaces one after the other: a sync is a listing and one
// small read per block, and spreading them keeps the bucket's request rate flat.
func (sg *StoreGateway) syncAll(ctx context.Context) {
	sg.mu.Lock()
	ids := make([]string, 0, len(sg.workspaces))
	for id := range sg.workspaces {
		ids = append(ids, id)
	}
	sg.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if err := sg.SyncWorkspace(ctx, id); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
			sg.logger.Warn("syncing workspace blocks", "workspace", id, "err", err)
		}
	}
}

// SyncWorkspace reads the workspace's block list from the bucket now. Queriers opened
// afterwards see the blocks uploaded before the call and not those deleted before it;
// local copies of blocks the bucket no longer lists are removed once no querier reads
// them.
func (sg *StoreGateway) SyncWorkspace(ctx context.Context, ws string) error {
	w, err := sg.workspace(ws)
	if err != nil {
		return err
	}
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	return sg.sync(ctx, w)
}

// ensureSynced syncs w unless it holds a listing already: the lazy first sync.
func (sg *StoreGateway) ensureSynced(ctx context.Context, w *workspace) error {
	sg.mu.Lock()
	synced := w.synced
	sg.mu.Unlock()
	if synced {
		return nil
	}
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	sg.mu.Lock()
	synced = w.synced // someone else's first sync may have finished while we waited
	sg.mu.Unlock()
	if synced {
		return nil
	}
	return sg.sync(ctx, w)
}

// sync lists w's blocks and reconciles the local copies with the listing. The caller
// holds w.syncMu.
func (sg *StoreGateway) sync(ctx context.Context, w *workspace) error {
	start := time.Now()
	list, err := blocks.List(ctx, sg.bkt, w.id)
	sg.m.syncDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		sg.m.syncFailures.Inc()
		return fmt.Errorf("syncing blocks of workspace %s: %w", w.id, err)
	}
	// A block whose sources another holds (a compaction's sources, listed until their
	// deletion delay ends) is not read: its samples would be read twice.
	covered := blocks.Covered(list)
	ranges := make([]blockRange, 0, len(list))
	live := make(map[ulid.ULID]struct{}, len(list))
	for i, b := range list {
		if covered[i] {
			continue
		}
		ranges = append(ranges, blockRange{id: b.Meta.ULID, mint: b.Meta.MinTime, maxt: b.Meta.MaxTime, sources: b.Meta.Compaction.Sources, imported: blocks.Imported(&b.Meta)})
		live[b.Meta.ULID] = struct{}{}
	}

	sg.mu.Lock()
	if sg.closed {
		sg.mu.Unlock()
		return ErrClosed
	}
	w.blocks, w.synced, w.lastSync = ranges, true, sg.now()
	if sg.workspaces[w.id] != w {
		// DeleteWorkspace ran meanwhile: the listing serves the query that asked for it,
		// but the local copies are no longer this state's to reconcile.
		sg.mu.Unlock()
		return nil
	}
	var gone []*localBlock
	for id, lb := range sg.local[w.id] {
		_, ok := live[id]
		// A block listed again (a re-upload, or a workspace queried again after
		// DeleteWorkspace) is kept after all.
		lb.dropped = !ok
		if !ok && lb.refs == 0 && lb.busy == nil {
			lb.busy = make(chan struct{})
			gone = append(gone, lb)
		}
	}
	sg.mu.Unlock()
	sg.remove(gone, reasonDeleted)
	return nil
}

// History is what of a workspace's blocks changes answers for times that are not new:
// the oldest sample time (ok false: no block), which retention deletions move, and the
// ids of the imported blocks (blocks.HintImported), which change when history is
// backfilled, in time order; as of the last listing. The results cache's version is
// made of it, so that cached answers do not outlive the samples they were made from.
func (sg *StoreGateway) History(ctx context.Context, ws string) (oldest int64, imported []ulid.ULID, ok bool, err error) {
	w, err := sg.workspace(ws)
	if err != nil {
		return 0, nil, false, err
	}
	if err := sg.ensureSynced(ctx, w); err != nil {
		return 0, nil, false, err
	}
	sg.mu.Lock()
	defer sg.mu.Unlock()
	for _, b := range w.blocks {
		if !ok || b.mint < oldest {
			oldest, ok = b.mint, true
		}
		if b.imported {
			imported = append(imported, b.id)
		}
	}
	return oldest, imported, ok, nil
}

// workspace returns the state of ws, creating it if needed.
func (sg *StoreGateway) workspace(ws string) (*workspace, error) {
	if !blocks.ValidWorkspace(ws) {
		return nil, fmt.Errorf("invalid workspace id %q", ws)
	}
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sg.closed {
		return nil, ErrClosed
	}
	w, ok := sg.workspaces[ws]
	if !ok {
		w = &workspace{id: ws}
		sg.workspaces[ws] = w
	}
	return w, nil
}

// DeleteWorkspace forgets the workspace's block list and removes its local copies; a
// copy still read by an open querier is removed when that querier closes. It does not
// touch the bucket (the compactor deletes a deleted workspace's objects). A later query
// of the workspace lists the bucket again.
func (sg *StoreGateway) DeleteWorkspace(ws string) error {
	if !blocks.ValidWorkspace(ws) {
		return fmt.Errorf("invalid workspace id %q", ws)
	}
	sg.mu.Lock()
	delete(sg.workspaces, ws)
	var drop []*localBlock
	for _, lb := range sg.local[ws] {
		lb.dropped = true
		if lb.refs == 0 && lb.busy == nil {
			lb.busy = make(chan struct{})
			drop = append(drop, lb)
		}
	}
	sg.mu.Unlock()
	err := sg.remove(drop, reasonDeleted)
	sg.mu.Lock()
	if len(sg.local[ws]) == 0 {
		// Under mu: a download into this directory starts only after its entry is added.
		if rmErr := os.Remove(filepath.Join(sg.dir, ws)); rmErr != nil && !os.IsNotExist(rmErr) {
			sg.logger.Debug("removing workspace directory", "workspace", ws, "err", rmErr)
		}
	}
	sg.mu.Unlock()
	return err
}

// Close closes the blocks nobody reads and makes Querier and SyncWorkspace fail with
// ErrClosed. Blocks read by open queriers are closed when those queriers close; Close does
// not wait for them. The local cache stays in Dir for the next start.
func (sg *StoreGateway) Close() error {
	sg.mu.Lock()
	if sg.closed {
		sg.mu.Unlock()
		return nil
	}
	sg.closed = true
	var open []*localBlock
	for _, m := range sg.local {
		for _, lb := range m {
			if lb.block != nil && lb.refs == 0 && lb.busy == nil {
				lb.busy = make(chan struct{})
				open = append(open, lb)
			}
		}
	}
	sg.mu.Unlock()
	return sg.closeBlocks(open)
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}
