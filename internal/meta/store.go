// Package meta keeps the AMP resources as one JSON object per workspace in the bucket —
// the workspace with its configuration, resource policy, rule groups namespaces and alert
// manager definition (workspace.go) — with an in-memory cache. Start from Store.
//
// Every process that shares the bucket sees the same state: a process reads through to
// the bucket on a cache miss and polls every poll interval for records other processes
// wrote or deleted. Within a process, writes are serialized. Alone, a process rewrites
// meta/workspaces/<id>.json in place (the filesystem and S3 backends offer no
// compare-and-set). In a cluster (UseHeads, heads.go) each record is written anew and a
// compare-and-set key-value store (JetStream's) names the current one, so that no
// process' change is lost to another's.
package meta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/periodic"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"
)

// ErrNotFound is returned for a resource that does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when creating a resource whose id is taken.
var ErrExists = errors.New("already exists")

// ErrTooLarge is returned when a workspace's record would exceed MaxRecordBytes; nothing
// is written.
var ErrTooLarge = errors.New("record too large")

// workspacesDir holds one object per workspace: meta/workspaces/<id>.json.
const workspacesDir = "meta/workspaces/"

// recentWindow is how long after its listed modification time an object is re-read.
const recentWindow = 5 * time.Second

// MaxRecordBytes bounds one workspace's stored record (its JSON object, rule groups
// namespaces and alert manager definition included): a write of a larger one fails with
// ErrTooLarge, and a read takes no more.
const MaxRecordBytes = 16 << 20

// maxObjectBytes bounds what a read of one metadata object may take.
const maxObjectBytes = MaxRecordBytes

// Config configures the metadata store.
type Config struct {
	// PollInterval is how often the bucket is listed for changes made by other processes.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// RegisterFlags registers the flags under "meta.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.PollInterval, "meta.poll-interval", 3*time.Second, "How often to list the bucket for resources created, changed or deleted by other processes.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.PollInterval <= 0 {
		return errors.New("poll interval must be positive")
	}
	return nil
}

type entry struct {
	ws      Workspace
	modTime time.Time // the object's last-modified time when read from a listing
	rev     uint64    // with heads: the revision of the head that named it; 0 unknown
}

// read is a record read by a poll.
type read struct {
	ws  Workspace
	mod time.Time
	rev uint64
}

// Store is the metadata store. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	bkt    objstore.Bucket
	logger *slog.Logger
	now    func() time.Time
	m      *storeMetrics

	// writeMu serializes read-modify-write cycles of this process, and guards
	// maxRecordBytes.
	writeMu sync.Mutex
	// notifier, when set, tells the other processes of a cluster which workspace this
	// one just wrote, and this one which they did.
	notifier Notifier
	// heads, when set, hold each workspace's current record (heads.go).
	heads Heads
	// maxRecordBytes is MaxRecordBytes unless a test lowered it.
	maxRecordBytes int
	// watchRetry is how long the watch waits to start again after it ended.
	watchRetry time.Duration

	mu sync.RWMutex // guards the fields below
	// workspaces is the cache, by id.
	workspaces map[string]*entry
	// localChange records when this process last wrote or deleted an id, so a poll that
	// started before that change cannot undo it with what it listed earlier.
	localChange map[string]time.Time
	loaded      bool

	changes chan struct{}

	subMu       sync.Mutex // guards subscribers
	subscribers []chan struct{}
}

type storeMetrics struct {
	workspaces   prometheus.GaugeFunc
	polls        *prometheus.CounterVec
	pollDuration prometheus.Histogram
	conflicts    prometheus.Counter
}

// Notifier carries the ids of workspaces just written between the processes of a
// cluster, so that they read them at once rather than at their next poll.
type Notifier interface {
	// Changed tells the others that this process wrote the workspace.
	Changed(ctx context.Context, id string) error
	// Watch calls f with the id of every workspace a process reports written, until ctx
	// is done; first with "" once it watches (what was reported before, it missed).
	Watch(ctx context.Context, f func(id string)) error
}

// UseNotifier makes the store report its writes through n and read at once the
// workspaces n reports written by others (Run watches). Call before use.
func (s *Store) UseNotifier(n Notifier) { s.notifier = n }

// changed reports a write of id through the notifier, if any.
func (s *Store) changed(ctx context.Context, id string) {
	if s.notifier == nil {
		return
	}
	if err := s.notifier.Changed(ctx, id); err != nil {
		s.logger.Warn("telling the other processes of a workspace change; they see it at their next poll", "workspace", id, "err", err)
	}
}

// Refresh reads one workspace from the bucket now, as a poll would: another process
// reports it just wrote it.
func (s *Store) Refresh(ctx context.Context, id string) error {
	if !blocks.ValidWorkspace(id) {
		return fmt.Errorf("invalid workspace id %q", id)
	}
	start := s.now()
	ws, rev, err := s.readWorkspace(ctx, id)
	gone := errors.Is(err, ErrNotFound)
	if err != nil && !gone {
		return err
	}
	changed := false
	s.mu.Lock()
	if !s.localChange[id].After(start) { // else this process changed it since: ours is newer
		old, ok := s.workspaces[id]
		switch {
		case gone && ok:
			delete(s.workspaces, id)
			changed = true
		case !gone && ok && rev != 0 && old.rev > rev:
			// A later revision is cached already (a poll read it meanwhile).
		case !gone && (!ok || !sameJSON(old.ws, ws)):
			// No listing time: the next poll reads it again, which is harmless.
			s.workspaces[id] = &entry{ws: ws, rev: rev}
			changed = true
		case !gone:
			old.rev = rev
		}
	}
	s.mu.Unlock()
	if changed {
		s.notify()
	}
	return nil
}

// New returns a Store on bkt. Call Load (or Run) before serving reads.
func New(cfg Config, bkt objstore.Bucket, logger *slog.Logger, reg prometheus.Registerer) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cfg:         cfg,
		bkt:         bkt,
		logger:      logger,
		now:         time.Now,
		workspaces:  map[string]*entry{},
		localChange: map[string]time.Time{},
		changes:     make(chan struct{}, 1),

		maxRecordBytes: MaxRecordBytes,
		watchRetry:     time.Second,
	}
	f := promauto.With(reg)
	s.m = &storeMetrics{
		workspaces: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_meta_workspaces",
			Help: "Workspaces known to this process's metadata cache.",
		}, func() float64 {
			s.mu.RLock()
			defer s.mu.RUnlock()
			return float64(len(s.workspaces))
		}),
		polls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_meta_polls_total",
			Help: "Listings of the bucket for metadata changes, by outcome.",
		}, []string{"outcome"}),
		pollDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "strata_meta_poll_duration_seconds",
			Help:                        "Time taken to list the bucket and refresh the metadata cache.",
			Buckets:                     prometheus.DefBuckets,
			NativeHistogramBucketFactor: 1.1,
		}),
		conflicts: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_meta_write_conflicts_total",
			Help: "Writes of a workspace record (in a cluster) that found its head moved by another process, and were made again on the newer record.",
		}),
	}
	return s
}

// Changes signals (without blocking the sender, coalescing bursts) after the cache changed,
// whether by this process or by a poll. There is one such channel per store: one
// consumer (the reconciler); other components Subscribe.
func (s *Store) Changes() <-chan struct{} { return s.changes }

// Subscribe returns a channel of its own that signals as Changes does, for another
// component that follows the metadata (the ruler, the alertmanager). Each call makes a
// new subscription; call it once.
func (s *Store) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.subMu.Lock()
	s.subscribers = append(s.subscribers, ch)
	s.subMu.Unlock()
	return ch
}

func (s *Store) notify() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
	s.subMu.Lock()
	for _, ch := range s.subscribers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.subMu.Unlock()
}

// Ready reports whether the first full load has completed.
func (s *Store) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.loaded
}

// Load reads every object from the bucket into the cache.
func (s *Store) Load(ctx context.Context) error {
	if s.heads != nil {
		if err := s.importRecords(ctx); err != nil {
			return err
		}
	}
	if err := s.poll(ctx); err != nil {
		return err
	}
	if s.heads == nil {
		s.warnUnread(ctx)
	}
	s.mu.Lock()
	s.loaded = true
	s.mu.Unlock()
	return nil
}

// warnUnread warns of records only a cluster reads (meta/revisions/, written with
// heads) for workspaces this store does not know: they look lost to a process that went
// back to one node.
func (s *Store) warnUnread(ctx context.Context) {
	var unread []string
	err := s.bkt.Iter(ctx, revisionsDir, func(name string) error {
		id := strings.TrimSuffix(strings.TrimPrefix(name, revisionsDir), "/")
		if _, ok := s.PeekWorkspace(id); !ok {
			unread = append(unread, id)
		}
		return nil
	})
	if err == nil && len(unread) > 0 {
		s.logger.Warn("the bucket holds workspace records written by a cluster (--ingest.backend=jetstream), which a process alone does not read; see docs/operations.md (going back to one process)",
			"workspaces", len(unread), "first", unread[0])
	}
}

// Run polls the bucket until ctx is done. It loads first if Load was not called.
func (s *Store) Run(ctx context.Context) error {
	if !s.Ready() {
		for {
			err := s.Load(ctx)
			if err == nil {
				break
			}
			s.logger.Error("loading metadata from the bucket", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(min(s.cfg.PollInterval, time.Second)):
			}
		}
	}
	var wg sync.WaitGroup
	if s.notifier != nil {
		wg.Go(func() { s.watch(ctx) })
	}
	periodic.Every(ctx, s.cfg.PollInterval, func(ctx context.Context) {
		if err := s.poll(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("polling the bucket for metadata changes", "err", err)
		}
	})
	wg.Wait()
	return nil
}

// watch reads each workspace the notifier reports written, one at a time, until ctx is
// done; a report that arrives while the workspace is waiting to be read counts once.
// Each time the watch is in place (at start, and again after it failed) the store polls
// once, for what was written while nobody watched: after its load, or during an outage.
func (s *Store) watch(ctx context.Context) {
	var (
		mu      sync.Mutex
		pending = map[string]bool{} // "": poll
		wake    = make(chan struct{}, 1)
	)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
			mu.Lock()
			ids := slices.Collect(maps.Keys(pending))
			clear(pending)
			mu.Unlock()
			for _, id := range ids {
				if id == "" {
					if err := s.poll(ctx); err != nil && ctx.Err() == nil {
						s.logger.Warn("polling the bucket for what changed before the watch", "err", err)
					}
					continue
				}
				if err := s.Refresh(ctx, id); err != nil && ctx.Err() == nil {
					s.logger.Warn("reading a workspace another process changed; the next poll will", "workspace", id, "err", err)
				}
			}
		}
	})
	report := func(id string) {
		mu.Lock()
		pending[id] = true
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	for failures := 0; ; {
		err := s.notifier.Watch(ctx, report)
		if ctx.Err() != nil {
			break
		}
		// The watch ended (the notifier's server restarted, or was not up yet): watch
		// again; meanwhile the poll is the only way changes arrive.
		if failures++; failures == 1 || failures%60 == 0 {
			s.logger.Warn("watching the other processes' workspace changes; retrying", "err", err, "failures", failures)
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.watchRetry):
		}
	}
	wg.Wait()
}

// poll lists the workspaces in the bucket and brings the cache in line with it.
func (s *Store) poll(ctx context.Context) (err error) {
	start := s.now()
	defer func() {
		s.m.pollDuration.Observe(time.Since(start).Seconds())
		outcome := "success"
		if err != nil {
			outcome = "failure"
		}
		s.m.polls.WithLabelValues(outcome).Inc()
	}()
	var (
		listed map[string]bool
		reads  []read
	)
	if s.heads != nil {
		listed, reads, err = s.headsList(ctx)
	} else {
		listed, reads, err = s.listObjects(ctx, start)
	}
	if err != nil {
		return err
	}

	changed := false
	s.mu.Lock()
	for _, r := range reads {
		if s.localChange[r.ws.ID].After(start) {
			continue // this process changed it after the listing began: ours is newer
		}
		old, ok := s.workspaces[r.ws.ID]
		if ok && r.rev != 0 && old.rev > r.rev {
			continue // a later revision was read meanwhile
		}
		if !ok || !sameJSON(old.ws, r.ws) {
			changed = true
		}
		s.workspaces[r.ws.ID] = &entry{ws: r.ws, modTime: r.mod, rev: r.rev}
	}
	for id := range s.workspaces {
		if listed[id] || s.localChange[id].After(start) {
			continue
		}
		delete(s.workspaces, id)
		changed = true
	}
	for id, t := range s.localChange {
		if t.Before(start) {
			delete(s.localChange, id)
		}
	}
	s.mu.Unlock()
	if changed {
		s.notify()
	}
	return nil
}

// listObjects lists the workspaces' objects in the bucket and reads those new or changed
// since they were cached.
func (s *Store) listObjects(ctx context.Context, start time.Time) (map[string]bool, []read, error) {
	listed := map[string]time.Time{}
	withTimes := slices.Contains(s.bkt.SupportedIterOptions(), objstore.UpdatedAt)
	visit := func(a objstore.IterObjectAttributes) error {
		id, ok := idFromObject(a.Name)
		if !ok {
			return nil
		}
		var mod time.Time
		if withTimes {
			mod, _ = a.LastModified()
		}
		listed[id] = mod
		return nil
	}
	var err error
	if withTimes {
		err = s.bkt.IterWithAttributes(ctx, workspacesDir, visit, objstore.WithUpdatedAt())
	} else {
		err = s.bkt.Iter(ctx, workspacesDir, func(name string) error {
			return visit(objstore.IterObjectAttributes{Name: name})
		})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing workspaces: %w", err)
	}

	// Read what is new or changed since we last read it, outside the lock.
	s.mu.RLock()
	var toRead []string
	for id, mod := range listed {
		e, ok := s.workspaces[id]
		// Listings may give modification times to the second only (S3 does): an object
		// rewritten within the second we last read it lists the same time, so anything
		// changed in the last few seconds (allowing for clock skew) is read again.
		if !ok || mod.IsZero() || !mod.Equal(e.modTime) || start.Sub(mod) < recentWindow {
			toRead = append(toRead, id)
		}
	}
	s.mu.RUnlock()
	ids := make(map[string]bool, len(listed))
	for id := range listed {
		ids[id] = true
	}
	return ids, s.readListed(ctx, toRead, ids, func(id string) time.Time { return listed[id] }), nil
}

// readListed reads the current records of toRead, found by a listing; one gone since is
// taken out of listed. mod gives a record's listed modification time.
func (s *Store) readListed(ctx context.Context, toRead []string, listed map[string]bool, mod func(id string) time.Time) []read {
	var reads []read
	for _, id := range toRead {
		ws, rev, err := s.readWorkspace(ctx, id)
		if errors.Is(err, ErrNotFound) {
			delete(listed, id)
			continue
		}
		if err != nil {
			// A bad record must not hide the others; it is retried at the next poll.
			s.logger.Warn("reading workspace record", "workspace", id, "err", err)
			continue
		}
		reads = append(reads, read{ws: ws, mod: mod(id), rev: rev})
	}
	return reads
}

func sameJSON(a, b Workspace) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func objectName(id string) string { return workspacesDir + id + ".json" }

func idFromObject(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, workspacesDir)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, ".json")
	return id, ok && id != "" && !strings.Contains(id, "/")
}

// readWorkspace reads the workspace's current record, with the revision of its head
// (0 without heads).
func (s *Store) readWorkspace(ctx context.Context, id string) (Workspace, uint64, error) {
	if s.heads != nil {
		ws, h, err := s.readHead(ctx, id)
		return ws, h.Rev, err
	}
	ws, err := s.readObject(ctx, id, objectName(id))
	return ws, 0, err
}

// readObject reads the record of workspace id from the object name.
func (s *Store) readObject(ctx context.Context, id, name string) (Workspace, error) {
	rc, err := s.bkt.Get(ctx, name)
	if err != nil {
		if s.bkt.IsObjNotFoundErr(err) {
			return Workspace{}, ErrNotFound
		}
		return Workspace{}, fmt.Errorf("reading workspace %s: %w", id, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxObjectBytes))
	if err != nil {
		return Workspace{}, fmt.Errorf("reading workspace %s: %w", id, err)
	}
	var ws Workspace
	if err := json.Unmarshal(body, &ws); err != nil {
		return Workspace{}, fmt.Errorf("decoding workspace %s: %w", id, err)
	}
	if ws.ID != id {
		return Workspace{}, fmt.Errorf("workspace object %s holds id %q", id, ws.ID)
	}
	return ws, nil
}

func (s *Store) writeWorkspace(ctx context.Context, ws Workspace) error {
	body, err := s.encode(ws)
	if err != nil {
		return err
	}
	return s.upload(ctx, ws.ID, objectName(ws.ID), body)
}

// encode returns the record's object; ErrTooLarge beyond the bound.
func (s *Store) encode(ws Workspace) ([]byte, error) {
	body, err := json.MarshalIndent(ws, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding workspace %s: %w", ws.ID, err)
	}
	if len(body) > s.maxRecordBytes {
		// A larger object would not be read back whole (maxObjectBytes).
		return nil, fmt.Errorf("workspace %s: %d bytes, more than %d: %w", ws.ID, len(body), s.maxRecordBytes, ErrTooLarge)
	}
	return body, nil
}

// SetMaxRecordBytes lowers the bound of a workspace's record below MaxRecordBytes, for
// tests of what lies beyond it that need not write 16 MiB objects.
func (s *Store) SetMaxRecordBytes(n int) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.maxRecordBytes = min(n, MaxRecordBytes)
}

// GetWorkspace returns a copy of the workspace with id. A cache miss reads through to the
// bucket, so a workspace another process just created is found before the next poll.
func (s *Store) GetWorkspace(ctx context.Context, id string) (Workspace, error) {
	if !blocks.ValidWorkspace(id) {
		return Workspace{}, ErrNotFound // never a bucket key made from it
	}
	s.mu.RLock()
	e, ok := s.workspaces[id]
	var ws Workspace
	if ok {
		ws = e.ws.Clone()
	}
	s.mu.RUnlock()
	if ok {
		return ws, nil
	}
	ws, rev, err := s.readWorkspace(ctx, id)
	if err != nil {
		return Workspace{}, err
	}
	s.mu.Lock()
	if _, ok := s.workspaces[id]; !ok {
		s.workspaces[id] = &entry{ws: ws, rev: rev}
	}
	s.mu.Unlock()
	return ws.Clone(), nil
}

// PeekWorkspace returns the cached workspace without copying its maps, for hot paths
// that only read. The maps must not be modified. It does not read through to the bucket.
func (s *Store) PeekWorkspace(id string) (Workspace, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.workspaces[id]
	if !ok {
		return Workspace{}, false
	}
	return e.ws, true
}

// ListWorkspaces returns copies of all workspaces, oldest first (ties by id).
func (s *Store) ListWorkspaces() []Workspace {
	s.mu.RLock()
	out := make([]Workspace, 0, len(s.workspaces))
	for _, e := range s.workspaces {
		out = append(out, e.ws.Clone())
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Workspace) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// FindScraper returns the workspace holding scraper id (its destination), if any. A
// scraper moving to another workspace is briefly in both records: the newest wins.
func (s *Store) FindScraper(id string) (Workspace, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var found *Workspace
	for _, e := range s.workspaces {
		sc, ok := e.ws.Scrapers[id]
		if !ok {
			continue
		}
		if found == nil || sc.ModifiedAt.After(found.Scrapers[id].ModifiedAt) {
			found = &e.ws
		}
	}
	if found == nil {
		return Workspace{}, false
	}
	return found.Clone(), true
}

// FindByClientToken returns the workspace created with token, if any.
func (s *Store) FindByClientToken(token string) (Workspace, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.workspaces {
		if e.ws.ClientToken == token {
			return e.ws.Clone(), true
		}
	}
	return Workspace{}, false
}

// CreateWorkspace stores a new workspace. It fails with ErrExists when the id is taken.
func (s *Store) CreateWorkspace(ctx context.Context, ws Workspace) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.GetWorkspace(ctx, ws.ID); err == nil {
		return fmt.Errorf("workspace %s: %w", ws.ID, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if ws.UpdatedAt.IsZero() {
		ws.UpdatedAt = ws.CreatedAt
	}
	var (
		rev uint64
		err error
	)
	if s.heads != nil {
		rev, err = s.headsCreate(ctx, ws)
	} else {
		err = s.writeWorkspace(ctx, ws)
	}
	if err != nil {
		return err
	}
	s.put(ws, rev)
	s.changed(ctx, ws.ID)
	return nil
}

// UpdateWorkspace applies fn to the latest stored copy of the workspace and stores the
// result. When fn returns an error nothing is written and that error is returned.
func (s *Store) UpdateWorkspace(ctx context.Context, id string, fn func(*Workspace) error) (Workspace, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	change := func(ws *Workspace) error {
		if err := fn(ws); err != nil {
			return err
		}
		ws.ID = id
		// Strictly later than the write it replaces, whatever the clocks of the processes
		// that wrote them: UpdatedAt names a revision of the record (the reconciler and
		// the results cache's version compare it).
		prev := ws.UpdatedAt
		ws.UpdatedAt = s.now().UTC()
		if !ws.UpdatedAt.After(prev) {
			ws.UpdatedAt = prev.Add(time.Nanosecond)
		}
		return nil
	}
	var (
		ws  Workspace
		rev uint64
		err error
	)
	if s.heads != nil {
		// fn runs again on the newer record whenever another process wrote first.
		ws, rev, err = s.headsUpdate(ctx, id, change)
	} else {
		ws, err = s.rewrite(ctx, id, change)
	}
	if err != nil {
		return Workspace{}, err
	}
	s.put(ws, rev)
	s.changed(ctx, id)
	return ws.Clone(), nil
}

// rewrite applies change to the record in the bucket and writes it over the old one.
func (s *Store) rewrite(ctx context.Context, id string, change func(*Workspace) error) (Workspace, error) {
	// Read the bucket, not the cache: another process may have changed it since our poll.
	ws, _, err := s.readWorkspace(ctx, id)
	if err != nil {
		return Workspace{}, err
	}
	if err := change(&ws); err != nil {
		return Workspace{}, err
	}
	if err := s.writeWorkspace(ctx, ws); err != nil {
		return Workspace{}, err
	}
	return ws, nil
}

// DeleteWorkspace removes the workspace's object. Deleting a missing one is not an error.
func (s *Store) DeleteWorkspace(ctx context.Context, id string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.heads != nil {
		if err := s.headsDelete(ctx, id); err != nil {
			return err
		}
	} else if err := s.bkt.Delete(ctx, objectName(id)); err != nil && !s.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting workspace %s: %w", id, err)
	}
	s.mu.Lock()
	delete(s.workspaces, id)
	s.localChange[id] = s.now()
	s.mu.Unlock()
	s.notify()
	s.changed(ctx, id)
	return nil
}

// put caches ws, written by this process with the head revision rev (0 without heads).
func (s *Store) put(ws Workspace, rev uint64) {
	s.mu.Lock()
	if e, ok := s.workspaces[ws.ID]; ok && rev != 0 && e.rev > rev {
		// Another process' later write, read as its head moved, is newer than ours.
		s.mu.Unlock()
		return
	}
	s.workspaces[ws.ID] = &entry{ws: ws.Clone(), rev: rev}
	s.localChange[ws.ID] = s.now()
	s.mu.Unlock()
	s.notify()
}
