package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/blocks"
)

// maxPasses bounds the list-plan-execute passes over one workspace in a run. One pass
// usually reaches a plan with nothing to do; a second picks up what the first made
// possible (for example blocks whose delay is zero).
const maxPasses = 8

// reservedPrefix holds the metadata store and other system state in the same bucket;
// it is never a workspace.
const reservedPrefix = "meta"

// Compactor compacts, applies retention to and deletes the blocks of every workspace in
// the bucket. Start it with Run; CompactOnce and DeleteWorkspace are safe to call
// concurrently with it and with each other.
type Compactor struct {
	cfg        Config
	dir        string
	bkt        objstore.Bucket
	workspaces Workspaces
	logger     *slog.Logger
	now        func() time.Time
	// after is the wait between two runs of Run (time.After); tests tick it themselves.
	after func(time.Duration) <-chan time.Time
	m     *metrics

	// runMu serializes runs: Run's loop, and tests or tools calling CompactOnce.
	runMu sync.Mutex
	// sizes holds the byte size of each block listed in the last run, by workspace.
	// Blocks never change once complete, so each is measured once. Guarded by runMu.
	sizes map[string]map[ulid.ULID]int64

	// locker, when set, gives each workspace to one compactor of a cluster at a time.
	locker Locker

	mu sync.Mutex // guards active and deleting
	// active are the workspaces being compacted, so DeleteWorkspace can stop the work.
	active map[string]*activeWorkspace
	// deleting counts DeleteWorkspace calls in progress per workspace; runs skip these.
	deleting map[string]int
}

type activeWorkspace struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Locker gives a workspace to one compactor of a cluster at a time. Lock returns ok
// false when another holds it; while held, held is a context that ends if the lock is
// lost; unlock gives it up.
type Locker interface {
	Lock(ctx context.Context, workspace string) (held context.Context, unlock func(), ok bool, err error)
}

// UseLocker makes the compactor work only the workspaces whose lock it takes, so that
// several compactors can share a bucket. Call before Run.
func (c *Compactor) UseLocker(l Locker) { c.locker = l }

// New returns a compactor of the blocks in bkt. dataDir resolves the default scratch
// directory; logger nil discards logs; now nil is time.Now.
func New(cfg Config, dataDir string, bkt objstore.Bucket, workspaces Workspaces, logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid compactor configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	dir := cfg.Dir
	if dir == "" {
		dir = filepath.Join(dataDir, "compactor")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating compactor directory: %w", err)
	}
	return &Compactor{
		cfg:        cfg,
		dir:        dir,
		bkt:        bkt,
		workspaces: workspaces,
		logger:     logger,
		now:        now,
		after:      time.After,
		m:          newMetrics(reg),
		sizes:      map[string]map[ulid.ULID]int64{},
		active:     map[string]*activeWorkspace{},
		deleting:   map[string]int{},
	}, nil
}

// Run compacts every Interval until ctx is done; the first run starts at once. A
// disabled compactor only waits. Errors are logged and retried on the next run.
func (c *Compactor) Run(ctx context.Context) error {
	if !c.cfg.Enabled {
		<-ctx.Done()
		return nil
	}
	for ctx.Err() == nil {
		if err := c.CompactOnce(ctx); err != nil && ctx.Err() == nil {
			c.logger.Warn("compaction run failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-c.after(c.cfg.Interval):
		}
	}
	return nil
}

// CompactOnce makes one pass over every workspace in the bucket: delete blocks whose
// deletion delay passed, mark blocks past retention, of deleted workspaces and left
// redundant, merge groups of blocks, and update the per-workspace metrics. A failure
// in one workspace does not stop the others; the errors are joined.
//
// Blocks uploaded while it runs are simply not in this run's plan.
func (c *Compactor) CompactOnce(ctx context.Context) error {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	c.m.runs.Inc()
	err := c.compactAll(ctx)
	if err != nil {
		c.m.runFailures.Inc()
		return err
	}
	c.m.lastSuccess.Set(float64(c.now().UnixNano()) / 1e9)
	return nil
}

func (c *Compactor) compactAll(ctx context.Context) error {
	if err := c.cleanScratch(); err != nil {
		return err
	}
	defer func() {
		if err := c.cleanScratch(); err != nil {
			c.logger.Warn("cleaning the compactor directory", "err", err)
		}
	}()
	names, err := c.workspacePrefixes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for _, ws := range names {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		seen[ws] = true
		wctx, unlock := ctx, func() {}
		if c.locker != nil {
			held, release, ok, err := c.locker.Lock(ctx, ws)
			if err != nil {
				errs = append(errs, fmt.Errorf("workspace %s: %w", ws, err))
				continue
			}
			if !ok {
				// Another compactor works it now; its metrics are that one's to report.
				c.m.lockedElsewhere.Inc()
				delete(seen, ws)
				continue
			}
			wctx, unlock = held, release
		}
		err := c.compactWorkspace(wctx, ws)
		unlock()
		if err != nil {
			c.logger.Warn("compacting workspace", "workspace", ws, "err", err)
			errs = append(errs, fmt.Errorf("workspace %s: %w", ws, err))
		}
	}
	for ws := range c.sizes {
		if !seen[ws] {
			delete(c.sizes, ws)
			c.m.forget(ws)
		}
	}
	return errors.Join(errs...)
}

// cleanScratch removes what a previous run (or a crash) left in the scratch directory.
// Only our own group-* entries: the directory may be shared.
func (c *Compactor) cleanScratch() error {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("reading compactor directory: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "group-") {
			if err := os.RemoveAll(filepath.Join(c.dir, e.Name())); err != nil {
				return fmt.Errorf("cleaning compactor directory: %w", err)
			}
		}
	}
	return nil
}

// workspacePrefixes lists the top-level prefixes of the bucket that may be workspaces.
func (c *Compactor) workspacePrefixes(ctx context.Context) ([]string, error) {
	var out []string
	err := c.bkt.Iter(ctx, "", func(name string) error {
		n, ok := strings.CutSuffix(name, objstore.DirDelim)
		if ok && n != reservedPrefix && blocks.ValidWorkspace(n) {
			out = append(out, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing workspaces in the bucket: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// begin registers a compaction of ws; false when the workspace is being deleted.
func (c *Compactor) begin(ws string, cancel context.CancelFunc) (*activeWorkspace, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleting[ws] > 0 {
		return nil, false
	}
	a := &activeWorkspace{cancel: cancel, done: make(chan struct{})}
	c.active[ws] = a
	return a, true
}

func (c *Compactor) end(ws string, a *activeWorkspace) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active[ws] == a {
		delete(c.active, ws)
	}
	close(a.done)
}

func (c *Compactor) compactWorkspace(ctx context.Context, ws string) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, ok := c.begin(ws, cancel)
	if !ok {
		return nil
	}
	defer c.end(ws, a)
	// stopped says DeleteWorkspace cancelled this work: not a failure.
	stopped := func() bool { return wctx.Err() != nil && ctx.Err() == nil }

	var (
		retention time.Duration
		exists    bool
		looked    bool
		errs      []error
	)
	for pass := 0; ; pass++ {
		st, err := c.list(wctx, ws)
		if err != nil {
			if stopped() {
				return nil
			}
			return err
		}
		if st.dirs == 0 {
			// Not a prefix of blocks, or all of them are gone.
			delete(c.sizes, ws)
			c.m.forget(ws)
			return nil
		}
		if !looked {
			// Asked only for prefixes that hold blocks, after listing them, so a
			// workspace created meanwhile is known to the store by now.
			retention, exists, err = c.workspaces.Retention(wctx, ws)
			if err != nil {
				if stopped() {
					return nil
				}
				return fmt.Errorf("looking up the workspace: %w", err)
			}
			looked = true
			if !exists {
				c.logger.Info("workspace not in the metadata store; removing its blocks", "workspace", ws)
			}
		}
		plan := PlanWorkspace(PlanInput{
			Now:           c.now(),
			Ranges:        c.cfg.BlockRanges,
			Retention:     retention,
			DeletionDelay: c.cfg.DeletionDelay,
			Hold:          c.cfg.Hold,
			Deleted:       !exists,
			Blocks:        st.complete,
			Partial:       st.partial,
		})
		if plan.Empty() || len(errs) > 0 || pass == maxPasses {
			c.observe(wctx, ws, st)
			break
		}
		errs = append(errs, c.execute(wctx, ws, plan)...)
	}
	if stopped() {
		return nil
	}
	return errors.Join(errs...)
}

// execute performs a plan: delete, mark, compact, purge.
func (c *Compactor) execute(ctx context.Context, ws string, plan Plan) []error {
	var errs []error
	for _, id := range plan.Delete {
		if err := c.deleteBlock(ctx, ws, id); err != nil {
			errs = append(errs, err)
			continue
		}
		c.m.deleted.Inc()
		c.logger.Info("deleted block", "workspace", ws, "block", id)
	}
	for _, m := range plan.Mark {
		if err := blocks.MarkForDeletion(ctx, c.bkt, ws, m.ID, m.Reason, c.now()); err != nil {
			errs = append(errs, fmt.Errorf("marking block %s for deletion: %w", m.ID, err))
			continue
		}
		c.m.marked.WithLabelValues(m.Reason).Inc()
		c.logger.Info("marked block for deletion", "workspace", ws, "block", m.ID, "reason", m.Reason)
	}
	for _, g := range plan.Compact {
		if ctx.Err() != nil {
			return append(errs, ctx.Err())
		}
		if err := c.compactGroup(ctx, ws, g); err != nil {
			c.m.compactionFailures.Inc()
			errs = append(errs, err)
			continue
		}
		c.m.compactions.Inc()
	}
	if plan.Purge {
		if err := c.purge(ctx, ws); err != nil {
			errs = append(errs, err)
		} else {
			c.logger.Info("removed the data of a deleted workspace", "workspace", ws)
		}
	}
	return errs
}

// compactGroup merges a group into one block. The order makes every crash point safe:
//
//	download sources → merge locally → mark the result "uploading" → upload it (meta.json
//	last) → remove its mark → mark the sources "compacted"
//
// Until the result is complete and unmarked, the sources are untouched; after it, the
// sources and the result overlap with the same samples, which readers deduplicate and
// the next run resolves (the sources are then redundant).
func (c *Compactor) compactGroup(ctx context.Context, ws string, g Group) error {
	start := time.Now()
	work, err := os.MkdirTemp(c.dir, "group-")
	if err != nil {
		return fmt.Errorf("creating scratch directory: %w", err)
	}
	defer os.RemoveAll(work)
	in, out := filepath.Join(work, "in"), filepath.Join(work, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		return err
	}
	dirs := make([]string, 0, len(g.IDs))
	for _, id := range g.IDs {
		d, err := blocks.Download(ctx, c.bkt, ws, id, in)
		if err != nil {
			return err
		}
		dirs = append(dirs, d)
	}
	ranges := make([]int64, len(c.cfg.BlockRanges))
	for i, r := range c.cfg.BlockRanges {
		ranges[i] = r.Milliseconds()
	}
	// The merger chains the series of overlapping blocks and drops samples with equal
	// timestamps, so replicated or re-uploaded data is stored once.
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, c.logger.With("workspace", ws), ranges, nil, tsdb.LeveledCompactorOptions{
		MergeFunc:                   storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge),
		EnableOverlappingCompaction: true,
	})
	if err != nil {
		return fmt.Errorf("creating TSDB compactor: %w", err)
	}
	ids, err := comp.Compact(out, dirs, nil)
	if err != nil {
		return fmt.Errorf("merging blocks %v: %w", g.IDs, err)
	}
	// No result means every sample was deleted (tombstones): only the sources go.
	if len(ids) == 1 {
		id := ids[0]
		if imported(dirs) {
			if err := blocks.MarkImported(filepath.Join(out, id.String())); err != nil {
				return fmt.Errorf("marking compacted block %s as imported: %w", id, err)
			}
		}
		if err := blocks.MarkForDeletion(ctx, c.bkt, ws, id, ReasonUploading, c.now()); err != nil {
			return fmt.Errorf("marking block %s as uploading: %w", id, err)
		}
		meta, err := blocks.Upload(ctx, c.bkt, ws, filepath.Join(out, id.String()))
		if err != nil {
			return err
		}
		if err := c.bkt.Delete(ctx, blocks.Dir(ws, id)+blocks.DeletionMarkFilename); err != nil {
			return fmt.Errorf("unmarking uploaded block %s: %w", id, err)
		}
		c.logger.Info("uploaded compacted block", "workspace", ws, "block", id, "sources", len(g.IDs),
			"mint", meta.MinTime, "maxt", meta.MaxTime, "samples", meta.Stats.NumSamples, "duration", time.Since(start))
	}
	for _, src := range g.IDs {
		if err := blocks.MarkForDeletion(ctx, c.bkt, ws, src, ReasonCompacted, c.now()); err != nil {
			return fmt.Errorf("marking compacted block %s for deletion: %w", src, err)
		}
		c.m.marked.WithLabelValues(ReasonCompacted).Inc()
	}
	return nil
}

// imported tells whether every block in dirs was imported (blocks.HintImported): then so
// is the block compacted from them.
func imported(dirs []string) bool {
	for _, d := range dirs {
		m, err := blocks.ReadLocalMeta(d)
		if err != nil || !blocks.Imported(m) {
			return false
		}
	}
	return len(dirs) > 0
}

// listing is one workspace's prefix in the bucket.
type listing struct {
	complete []blocks.Block
	partial  []PartialBlock
	dirs     int // block directories, complete or not
}

// list reads the metas and deletion marks of a workspace's blocks, partial ones included.
func (c *Compactor) list(ctx context.Context, ws string) (listing, error) {
	var ids []ulid.ULID
	err := c.bkt.Iter(ctx, ws+objstore.DirDelim, func(name string) error {
		n, ok := strings.CutSuffix(name, objstore.DirDelim)
		if !ok {
			return nil
		}
		if id, err := ulid.ParseStrict(path.Base(n)); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return listing{}, fmt.Errorf("listing blocks: %w", err)
	}
	st := listing{dirs: len(ids)}
	for _, id := range ids {
		b, err := blocks.ReadMeta(ctx, c.bkt, ws, id)
		if errors.Is(err, blocks.ErrNoMeta) {
			m, err := c.readMark(ctx, ws, id)
			if err != nil {
				return listing{}, err
			}
			st.partial = append(st.partial, PartialBlock{ID: id, DeletionMark: m})
			continue
		}
		if err != nil {
			return listing{}, err
		}
		st.complete = append(st.complete, *b)
	}
	return st, nil
}

func (c *Compactor) readMark(ctx context.Context, ws string, id ulid.ULID) (*blocks.DeletionMark, error) {
	name := blocks.Dir(ws, id) + blocks.DeletionMarkFilename
	rc, err := c.bkt.Get(ctx, name)
	if c.bkt.IsObjNotFoundErr(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	var m blocks.DeletionMark
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	return &m, nil
}

// deleteBlock removes a marked block: meta.json first, so readers stop seeing it at once;
// the deletion mark last, so that a crash midway leaves a partial block with a mark,
// which the next run recognises as ours and finishes deleting.
func (c *Compactor) deleteBlock(ctx context.Context, ws string, id ulid.ULID) error {
	prefix := blocks.Dir(ws, id)
	if err := c.deleteObject(ctx, prefix+blocks.MetaFilename); err != nil {
		return err
	}
	var names []string
	err := c.bkt.Iter(ctx, prefix, func(name string) error {
		if name != prefix+blocks.DeletionMarkFilename && name != prefix+blocks.MetaFilename {
			names = append(names, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("listing block %s: %w", id, err)
	}
	for _, n := range names {
		if err := c.deleteObject(ctx, n); err != nil {
			return err
		}
	}
	return c.deleteObject(ctx, prefix+blocks.DeletionMarkFilename)
}

func (c *Compactor) deleteObject(ctx context.Context, name string) error {
	if err := c.bkt.Delete(ctx, name); err != nil && !c.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// purge removes every object under a workspace's prefix, every meta.json first so that
// no reader finds a complete block with missing files.
func (c *Compactor) purge(ctx context.Context, ws string) error {
	var metas, rest []string
	err := c.bkt.Iter(ctx, ws+objstore.DirDelim, func(name string) error {
		if path.Base(name) == blocks.MetaFilename {
			metas = append(metas, name)
		} else {
			rest = append(rest, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("listing workspace %s: %w", ws, err)
	}
	for _, n := range append(metas, rest...) {
		if err := c.deleteObject(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// DeleteWorkspace removes every object of a deleted workspace at once: the hook of
// workspace deletion (AMP deletes the data with the workspace). It stops a compaction
// of the workspace in progress first. Stop ingestion into the workspace before calling
// it, or blocks uploaded afterwards remain; a later run removes those too, after the
// deletion delay, once the workspace is gone from the metadata store.
func (c *Compactor) DeleteWorkspace(ctx context.Context, ws string) error {
	if ws == reservedPrefix || !blocks.ValidWorkspace(ws) {
		return fmt.Errorf("invalid workspace id %q", ws)
	}
	c.mu.Lock()
	c.deleting[ws]++
	a := c.active[ws]
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.deleting[ws]--; c.deleting[ws] == 0 {
			delete(c.deleting, ws)
		}
		c.mu.Unlock()
	}()
	if a != nil {
		a.cancel()
		select {
		case <-a.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := c.purge(ctx, ws); err != nil {
		return err
	}
	c.m.forget(ws)
	c.logger.Info("removed the data of a deleted workspace", "workspace", ws)
	return nil
}

// observe sets the workspace's gauges from a listing.
func (c *Compactor) observe(ctx context.Context, ws string, st listing) {
	prev := c.sizes[ws]
	sizes := make(map[ulid.ULID]int64, len(st.complete))
	var total int64
	oldest, live := int64(0), false
	for _, b := range st.complete {
		id := b.Meta.ULID
		sz, ok := prev[id]
		if !ok {
			var err error
			if sz, err = c.blockSize(ctx, ws, id); err != nil {
				// Counted as zero this time, measured again next time.
				c.logger.Warn("measuring block size", "workspace", ws, "block", id, "err", err)
			} else {
				sizes[id] = sz
			}
		} else {
			sizes[id] = sz
		}
		total += sz
		if b.DeletionMark == nil && (!live || b.Meta.MinTime < oldest) {
			oldest, live = b.Meta.MinTime, true
		}
	}
	c.sizes[ws] = sizes
	c.m.bucketBytes.WithLabelValues(ws).Set(float64(total))
	c.m.bucketBlocks.WithLabelValues(ws).Set(float64(len(st.complete)))
	if live {
		c.m.oldestSample.WithLabelValues(ws).Set(float64(oldest) / 1e3)
	} else {
		c.m.oldestSample.DeleteLabelValues(ws)
	}
}

// blockSize sums the sizes of a block's objects, its deletion mark aside (it comes and
// goes; the rest never changes).
func (c *Compactor) blockSize(ctx context.Context, ws string, id ulid.ULID) (int64, error) {
	prefix := blocks.Dir(ws, id)
	var names []string
	err := c.bkt.Iter(ctx, prefix, func(name string) error {
		if name != prefix+blocks.DeletionMarkFilename {
			names = append(names, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return 0, err
	}
	var total int64
	for _, n := range names {
		a, err := c.bkt.Attributes(ctx, n)
		if err != nil {
			return 0, err
		}
		total += a.Size
	}
	return total, nil
}
