// Package ingester stores samples: one Prometheus TSDB per workspace under the data
// directory, with its WAL, out-of-order window, native histograms and exemplars. Start from
// Ingester: Push writes a decoded remote-write request to a workspace, Querier reads one.
//
// The write path is replayable — the same request applied twice stores nothing twice
// (identical samples are no-ops in the TSDB) — because distributed mode will feed
// ingesters from a replicated log and replay it after a crash.
//
//	Push(workspace, req) ─▶ userDB (opened lazily) ─▶ for each series:
//	     raw label bytes ──▶ refs cache hit? ──yes──▶ append by ref (no label work)
//	                              │ no
//	                              ▼
//	            build labels, check active-series limits, append, cache ref
//
// Active series (AMP's definition: a sample in the last 2 hours) are counted per
// workspace, per metric name and per limitsPerLabelSet label set; new series beyond a
// limit are refused while existing ones keep ingesting.
package ingester

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/usage"
)

// Config configures the ingester.
type Config struct {
	TSDB TSDBConfig `yaml:"tsdb"`
	// IdleTimeout closes a workspace's TSDB after this long without writes or reads; it
	// reopens (replaying its WAL) on the next use. Zero keeps TSDBs open.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ActiveSeriesWindow is how recent a series' last sample must be for it to be active.
	ActiveSeriesWindow time.Duration `yaml:"active_series_window"`
}

// TSDBConfig configures the per-workspace TSDBs.
type TSDBConfig struct {
	// Dir holds one TSDB per workspace. Empty means <data-dir>/tsdb.
	Dir string `yaml:"dir"`
	// BlockRange is the time range of the blocks cut from the head.
	BlockRange     time.Duration `yaml:"block_range"`
	WALCompression bool          `yaml:"wal_compression"`
	// LocalRetention keeps blocks on local disk this long after their time range ends,
	// once they are uploaded to the bucket.
	LocalRetention time.Duration `yaml:"local_retention"`
	// ShipInterval is how often new blocks are uploaded to the bucket.
	ShipInterval time.Duration `yaml:"ship_interval"`
}

// RegisterFlags registers the flags under "ingester." and "tsdb.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.TSDB.Dir, "tsdb.dir", "", "Directory of the per-workspace TSDBs. Empty means <data-dir>/tsdb.")
	f.DurationVar(&c.TSDB.BlockRange, "tsdb.block-range", 2*time.Hour, "Time range of the blocks cut from a workspace's head.")
	f.BoolVar(&c.TSDB.WALCompression, "tsdb.wal-compression", true, "Compress the WAL (snappy).")
	f.DurationVar(&c.TSDB.LocalRetention, "tsdb.local-retention", 13*time.Hour, "How long blocks stay on local disk once uploaded to the bucket (counted from their end).")
	f.DurationVar(&c.TSDB.ShipInterval, "tsdb.ship-interval", 30*time.Second, "How often blocks cut from the head are uploaded to the bucket; failed uploads are retried then.")
	f.DurationVar(&c.IdleTimeout, "ingester.idle-timeout", time.Hour, "Close a workspace's TSDB after this long without writes or reads; it reopens on the next use. 0 keeps TSDBs open.")
	f.DurationVar(&c.ActiveSeriesWindow, "ingester.active-series-window", 2*time.Hour, "A series is active while its newest sample arrived within this window (AMP: 2h).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.TSDB.BlockRange < time.Minute || c.TSDB.BlockRange%time.Minute != 0 {
		return errors.New("tsdb.block_range must be a whole number of minutes, at least one")
	}
	if c.TSDB.LocalRetention < 0 || c.TSDB.ShipInterval <= 0 {
		return errors.New("tsdb.local_retention must not be negative and tsdb.ship_interval must be positive")
	}
	if c.IdleTimeout < 0 {
		return errors.New("idle_timeout must not be negative")
	}
	if c.ActiveSeriesWindow <= 0 {
		return errors.New("active_series_window must be positive")
	}
	return nil
}

// Workspaces is what the ingester needs to know about workspaces: their configuration.
type Workspaces interface {
	GetWorkspace(ctx context.Context, id string) (meta.Workspace, error)
}

// Ingester holds the TSDBs of all workspaces. Safe for concurrent use.
type Ingester struct {
	cfg        Config
	dir        string
	limits     *limits.Overrides
	workspaces Workspaces
	bkt        objstore.Bucket // nil: blocks stay local (unit tests)
	ship       shipper
	usage      *usage.Metrics
	logger     *slog.Logger
	now        func() time.Time
	m          *metrics

	mu sync.Mutex // guards dbs and deleted
	// dbs are the open TSDBs by workspace. An entry whose open is in progress has a
	// non-nil opening channel.
	dbs     map[string]*userDB
	deleted map[string]bool
	// flushed are the workspaces whose TSDB was closed for idleness after its heads
	// were cut into blocks: all they hold is in blocks.
	flushed map[string]bool
	// stopped is set when shutdown starts (closeAll): from then on get refuses, so no
	// TSDB is opened again behind the closing ones.
	stopped bool

	// share, when set, is the part of every workspace's series this ingester holds (its
	// partitions of the ingest log out of all): its series limits are that part of the
	// workspace's, as its zone's ingesters share the series.
	share func() (num, den int)

	// warm is set once every TSDB on disk was opened after the start.
	warm     atomic.Bool
	replayMu sync.Mutex // guards replay and userDB.oooWindow
	replay   replayState
}

// SetLimitShare makes the ingester hold each workspace to share's part of its active
// series limits (num of den), because the other ingesters of its zone hold the rest of
// its series. Call before Run.
func (i *Ingester) SetLimitShare(share func() (num, den int)) { i.share = share }

// limitShares scales series limits to the ingester's share, rounding up; a limit of 0
// (none) stays.
func (i *Ingester) limitShares(limits ...*int) {
	if i.share == nil {
		return
	}
	num, den := i.share()
	if den <= 0 || num >= den {
		return
	}
	for _, n := range limits {
		if *n > 0 {
			*n = max(1, (*n*num+den-1)/den)
		}
	}
}

type metrics struct {
	openDBs        prometheus.GaugeFunc
	opens          prometheus.Counter
	activeSeries   *prometheus.GaugeVec
	seriesLimit    *prometheus.GaugeVec
	blocksShipped  prometheus.Counter
	uploadFailures prometheus.Counter
}

// New returns an ingester storing under cfg.TSDB.Dir (or dataDir/tsdb).
func New(cfg Config, dataDir string, lim *limits.Overrides, ws Workspaces, bkt objstore.Bucket, use *usage.Metrics, logger *slog.Logger, reg prometheus.Registerer) (*Ingester, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := cfg.TSDB.Dir
	if dir == "" {
		dir = filepath.Join(dataDir, "tsdb")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating TSDB directory: %w", err)
	}
	i := &Ingester{
		cfg:        cfg,
		dir:        dir,
		limits:     lim,
		workspaces: ws,
		bkt:        bkt,
		ship:       shipper{shipped: map[string]map[ulid.ULID]bool{}},
		usage:      use,
		logger:     logger,
		now:        time.Now,
		dbs:        map[string]*userDB{},
		deleted:    map[string]bool{},
		flushed:    map[string]bool{},
	}
	f := promauto.With(reg)
	i.m = &metrics{
		openDBs: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_ingester_open_tsdbs",
			Help: "Workspace TSDBs open in this process.",
		}, func() float64 {
			i.mu.Lock()
			defer i.mu.Unlock()
			return float64(len(i.dbs))
		}),
		opens: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_tsdb_opens_total",
			Help: "Workspace TSDBs opened (WAL replayed), lazily on first use.",
		}),
		activeSeries: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_workspace_active_series",
			Help: "Series with a sample in the active-series window (AMP: 2h), per workspace.",
		}, []string{"workspace"}),
		blocksShipped: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_blocks_shipped_total",
			Help: "Blocks uploaded to the bucket.",
		}),
		uploadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_block_upload_failures_total",
			Help: "Failed attempts to upload a workspace's blocks (retried every ship interval).",
		}),
		seriesLimit: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_workspace_active_series_limit",
			Help: "The active series limit in force, per workspace (0: none).",
		}, []string{"workspace"}),
	}
	return i, nil
}

// get returns the open TSDB of workspace, opening it (and replaying its WAL) if needed.
// The caller must call release on the returned userDB.
func (i *Ingester) get(ctx context.Context, workspace string) (*userDB, error) {
	if !blocks.ValidWorkspace(workspace) {
		return nil, fmt.Errorf("invalid workspace id %q", workspace)
	}
	for {
		i.mu.Lock()
		if i.stopped {
			i.mu.Unlock()
			return nil, ingest.ErrStopped
		}
		if i.deleted[workspace] {
			i.mu.Unlock()
			return nil, ingest.ErrWorkspaceDeleted
		}
		u, ok := i.dbs[workspace]
		if !ok {
			u = &userDB{id: workspace, opening: make(chan struct{}), mu: &i.mu}
			i.dbs[workspace] = u
			i.mu.Unlock()
			err := i.open(ctx, u)
			i.mu.Lock()
			if err != nil {
				delete(i.dbs, workspace)
			}
			close(u.opening)
			u.opening = nil
			if err == nil {
				u.acquire()
			}
			i.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return u, nil
		}
		if ch := u.opening; ch != nil {
			i.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		u.acquire()
		i.mu.Unlock()
		return u, nil
	}
}

func (i *Ingester) open(ctx context.Context, u *userDB) error {
	ws, err := i.workspaces.GetWorkspace(ctx, u.id)
	if err != nil {
		return fmt.Errorf("reading workspace %s: %w", u.id, err)
	}
	lim := i.limits.For(u.id)
	// The workspace's retention applies in the bucket (the compactor); locally, blocks
	// stay --tsdb.local-retention.
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = i.cfg.TSDB.LocalRetention.Milliseconds()
	opts.MinBlockDuration = i.cfg.TSDB.BlockRange.Milliseconds()
	// Blocks go to the bucket as cut from the head; the compactor merges them there.
	opts.MaxBlockDuration = opts.MinBlockDuration
	opts.BlocksToDelete = i.blocksToDelete(u.id)
	i.replayMu.Lock()
	u.oooWindow = i.oooWindowLocked(u.id)
	i.replayMu.Unlock()
	opts.OutOfOrderTimeWindow = u.oooWindow
	opts.EnableExemplarStorage = lim.MaxExemplars > 0
	opts.MaxExemplars = int64(lim.MaxExemplars)
	opts.EnableMetadataWALRecords = true
	// The head keeps each series' shard hash (one hash at creation), so a sharded query
	// (query.Config.Shards) lists a shard's series without reading the others'.
	opts.EnableSharding = true
	if i.cfg.TSDB.WALCompression {
		opts.WALCompression = compression.Snappy
	}
	start := time.Now()
	db, err := tsdb.Open(filepath.Join(i.dir, u.id), i.logger.With("workspace", u.id), nil, opts, nil)
	if err != nil {
		return fmt.Errorf("opening TSDB of workspace %s: %w", u.id, err)
	}
	u.db = db
	i.mu.Lock()
	delete(i.flushed, u.id)
	i.mu.Unlock()
	u.active = newActiveSeries(ws.Configuration.LimitsPerLabelSet)
	u.touch(i.now())
	i.m.opens.Inc()
	i.logger.Info("workspace TSDB opened", "workspace", u.id, "series", db.Head().NumSeries(), "duration", time.Since(start))
	return nil
}

// Querier returns a querier over [mint, maxt] of workspace. A workspace never written to
// has an empty TSDB. The querier must be closed.
func (i *Ingester) Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error) {
	u, err := i.get(ctx, workspace)
	if err != nil {
		return nil, err
	}
	u.touch(i.now())
	// Taken before the querier: a sample appended in between is newer than the blocks
	// and head it was taken from, or an out-of-order one racing the query.
	minT := u.minTime()
	q, err := u.db.Querier(mint, maxt)
	if err != nil {
		u.release()
		return nil, err
	}
	return &releasingQuerier{Querier: q, release: u.release, minT: minT}, nil
}

// ChunkQuerier is Querier with chunks instead of samples: what the ingester serves to
// queriers of other processes, whose chunks it sends as they are encoded.
func (i *Ingester) ChunkQuerier(ctx context.Context, workspace string, mint, maxt int64) (storage.ChunkQuerier, error) {
	u, err := i.get(ctx, workspace)
	if err != nil {
		return nil, err
	}
	u.touch(i.now())
	q, err := u.db.ChunkQuerier(mint, maxt)
	if err != nil {
		u.release()
		return nil, err
	}
	return &releasingChunkQuerier{ChunkQuerier: q, release: u.release}, nil
}

// releasingChunkQuerier keeps its userDB open until closed.
type releasingChunkQuerier struct {
	storage.ChunkQuerier
	release func()
	once    sync.Once
}

func (q *releasingChunkQuerier) Close() error {
	err := q.ChunkQuerier.Close()
	q.once.Do(q.release)
	return err
}

// minTime is the oldest timestamp the workspace's TSDB holds: in its blocks, its head or
// its out-of-order head; math.MaxInt64 when empty.
func (u *userDB) minTime() int64 {
	t := min(u.db.Head().MinTime(), u.db.Head().MinOOOTime())
	if bs := u.db.Blocks(); len(bs) > 0 {
		t = min(t, bs[0].Meta().MinTime) // sorted by MinTime
	}
	return t
}

// releasingQuerier keeps its userDB open until closed.
type releasingQuerier struct {
	storage.Querier
	release func()
	once    sync.Once
	minT    int64
}

// TimeRange bounds the samples the querier can return: from the oldest the TSDB held
// when it was made; ok is false when it held none.
func (q *releasingQuerier) TimeRange() (mint, maxt int64, ok bool) {
	return q.minT, math.MaxInt64, q.minT != math.MaxInt64
}

func (q *releasingQuerier) Close() error {
	err := q.Querier.Close()
	q.once.Do(q.release)
	return err
}

// Provision implements controlplane.Lifecycle: TSDBs open lazily, nothing to do.
func (i *Ingester) Provision(context.Context, meta.Workspace) error { return nil }

// Reconfigure implements controlplane.Lifecycle: applies a new limitsPerLabelSet.
func (i *Ingester) Reconfigure(_ context.Context, ws meta.Workspace) error {
	if u := i.openDB(ws.ID); u != nil {
		u.active.setLabelSets(ws.Configuration.LimitsPerLabelSet)
	}
	return nil
}

// Deprovision implements controlplane.Lifecycle: stops ingestion for the workspace, closes
// its TSDB once in-flight requests finish and removes its data.
func (i *Ingester) Deprovision(ctx context.Context, id string) error {
	if !blocks.ValidWorkspace(id) {
		return fmt.Errorf("invalid workspace id %q", id)
	}
	i.mu.Lock()
	i.deleted[id] = true
	u, ok := i.dbs[id]
	i.mu.Unlock()
	if ok {
		if err := i.closeDB(ctx, u, nil); err != nil {
			return err
		}
	}
	// Wait for a ship pass in progress, so no upload of this workspace outlives it.
	i.ship.mu.Lock()
	delete(i.ship.shipped, id)
	i.ship.mu.Unlock()
	if err := os.RemoveAll(filepath.Join(i.dir, id)); err != nil {
		return fmt.Errorf("removing TSDB of workspace %s: %w", id, err)
	}
	i.m.activeSeries.DeleteLabelValues(id)
	i.m.seriesLimit.DeleteLabelValues(id)
	i.usage.DeleteWorkspace(id)
	i.logger.Info("workspace data removed", "workspace", id)
	return nil
}

// closeDB waits for users of u to finish, then closes and forgets it. With flushed
// non-nil it first cuts the heads into blocks, and sets *flushed when that worked.
func (i *Ingester) closeDB(ctx context.Context, u *userDB, flushed *bool) error {
	for {
		i.mu.Lock()
		if u.opening != nil {
			ch := u.opening
			i.mu.Unlock()
			<-ch
			continue
		}
		if u.users == 0 {
			if cur, ok := i.dbs[u.id]; ok && cur == u {
				delete(i.dbs, u.id)
			}
			i.mu.Unlock()
			break
		}
		i.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	if u.db == nil {
		return nil
	}
	if flushed != nil {
		// No request uses it any more, none can start: its heads hold all they will.
		if err := i.flushHead(ctx, u); err != nil {
			i.logger.Warn("cutting an idle workspace TSDB's head into blocks; its WAL keeps it", "workspace", u.id, "err", err)
		} else {
			*flushed = true
		}
	}
	if err := u.db.Close(); err != nil {
		return fmt.Errorf("closing TSDB of workspace %s: %w", u.id, err)
	}
	return nil
}

// Run closes idle TSDBs, refreshes active-series counts and uploads new blocks until ctx
// is done, then closes every TSDB and uploads once more. Stop order: the HTTP server
// stops first, so no push is in flight here.
func (i *Ingester) Run(ctx context.Context) error {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	ship := time.NewTicker(i.cfg.TSDB.ShipInterval)
	defer ship.Stop()
	// Replaying a WAL takes seconds for a large workspace: do it now rather than in the
	// first request after a restart. Shutdown waits for an open in progress.
	var warm sync.WaitGroup
	warm.Go(func() {
		i.openAll(ctx)
		i.warm.Store(ctx.Err() == nil)
	})
	defer warm.Wait()
	_ = i.ShipOnce(ctx) // blocks left from before a crash
	for {
		select {
		case <-ctx.Done():
			warm.Wait()
			err := i.closeAll()
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = i.ShipOnce(sctx)
			return err
		case <-t.C:
			i.housekeeping(ctx)
		case <-ship.C:
			_ = i.ShipOnce(ctx)
		}
	}
}

// openAll opens the TSDB of every workspace with a directory, one at a time, until ctx
// is done. A TSDB unused for --ingester.idle-timeout closes again.
func (i *Ingester) openAll(ctx context.Context) {
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		i.logger.Warn("listing workspace TSDBs to open", "err", err)
		return
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		if !e.IsDir() || !blocks.ValidWorkspace(e.Name()) {
			continue
		}
		u, err := i.get(ctx, e.Name())
		if err != nil {
			if !errors.Is(err, ingest.ErrWorkspaceDeleted) && ctx.Err() == nil {
				i.logger.Warn("opening workspace TSDB", "workspace", e.Name(), "err", err)
			}
			continue
		}
		u.release()
	}
}

func (i *Ingester) housekeeping(ctx context.Context) {
	now := i.now()
	i.usage.UpdateRates(now)
	i.mu.Lock()
	var all []*userDB
	for _, u := range i.dbs {
		if u.opening == nil {
			all = append(all, u)
		}
	}
	i.mu.Unlock()
	for _, u := range all {
		u.active.purge(now.Add(-i.cfg.ActiveSeriesWindow))
		u.meta.purge(now.Add(-metadataRetainPeriod).Unix(), u.active.hasMetric)
		i.m.activeSeries.WithLabelValues(u.id).Set(float64(u.active.total()))
		limit := i.limits.For(u.id).MaxActiveSeries
		i.limitShares(&limit)
		i.m.seriesLimit.WithLabelValues(u.id).Set(float64(limit))
		if i.cfg.IdleTimeout > 0 && now.Sub(u.lastUsed()) > i.cfg.IdleTimeout {
			i.closeIdle(ctx, u)
		}
	}
	i.applyWindows() // the limits may have changed
}

// closeIdle closes an idle TSDB after cutting its heads into blocks, so that what it
// holds reaches the bucket with the next ship pass.
func (i *Ingester) closeIdle(ctx context.Context, u *userDB) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var flushed bool
	if err := i.closeDB(cctx, u, &flushed); err != nil {
		i.logger.Warn("closing idle workspace TSDB", "workspace", u.id, "err", err)
		return
	}
	if flushed {
		i.mu.Lock()
		if _, reopened := i.dbs[u.id]; !reopened {
			i.flushed[u.id] = true
		}
		i.mu.Unlock()
	}
	i.logger.Info("idle workspace TSDB closed", "workspace", u.id)
}

// closeAll stops the ingester: it refuses every request from now on (ingest.ErrStopped) and
// closes every TSDB once its requests in flight are done.
func (i *Ingester) closeAll() error {
	i.mu.Lock()
	i.stopped = true
	var all []*userDB
	for _, u := range i.dbs {
		all = append(all, u)
	}
	i.mu.Unlock()
	var errs []error
	for _, u := range all {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		errs = append(errs, i.closeDB(ctx, u, nil))
		cancel()
	}
	return errors.Join(errs...)
}

// ActiveSeries returns the active series of workspace, or 0 when its TSDB is not open.
func (i *Ingester) ActiveSeries(workspace string) int {
	if u := i.openDB(workspace); u != nil {
		return u.active.total()
	}
	return 0
}

// openDB returns the workspace's TSDB if it is open (not opening), without acquiring it.
func (i *Ingester) openDB(workspace string) *userDB {
	i.mu.Lock()
	defer i.mu.Unlock()
	if u, ok := i.dbs[workspace]; ok && u.opening == nil {
		return u
	}
	return nil
}
