package alertmanager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/periodic"

	"github.com/stratametrics/strata/internal/vendedlogs"
)

// Workspaces is the part of the metadata store the Alertmanager follows; *meta.Store
// implements it. Implementations must be safe for concurrent use.
type Workspaces interface {
	// ListWorkspaces returns every workspace, with its alert manager definition.
	ListWorkspaces() []meta.Workspace
	// PeekWorkspace returns the cached workspace, whose maps must not be modified.
	PeekWorkspace(id string) (meta.Workspace, bool)
}

// Deps are what the MultiTenant uses besides its configuration. Workspaces and Bucket
// are required.
type Deps struct {
	Workspaces Workspaces
	// Changes signals that the workspaces may have changed (meta.Store.Subscribe, or
	// Changes when nothing else consumes it); every signal runs Sync. Nil leaves it to
	// the periodic resync.
	Changes <-chan struct{}
	// Owners, in a cluster, says which workspaces' Alertmanagers run in this process:
	// those it owns. Nil: all.
	Owners Owners
	// Bucket holds the silences and notification logs (alertmanager/<workspace>/…).
	Bucket objstore.Bucket
	// DataDir is the directory of the working files; Config.Dir resolves it. Empty
	// means Config.DataDir, which must then be set.
	DataDir string
	// ExternalURL is the server's external URL, used when Config.ExternalURL is empty;
	// both empty means http://localhost.
	ExternalURL string
	// Limits gives the run-time quotas; nil applies DefaultLimits (AMP's) to every
	// workspace.
	Limits Limits
	// Events receives notification failures for the workspaces' logging
	// configurations; nil vends none.
	Events vendedlogs.Events
	Logger *slog.Logger
	// Registerer receives the MultiTenant's metrics and every workspace's Alertmanager
	// metrics (as strata_alertmanager_…{workspace="…"}); nil registers none.
	Registerer prometheus.Registerer
}

// MultiTenant runs one Alertmanager per workspace that has an alert manager definition,
// and serves their API. Start from New; see the package documentation.
// All methods are safe for concurrent use.
type MultiTenant struct {
	cfg     Config
	bkt     objstore.Bucket
	ws      Workspaces
	changes <-chan struct{}
	owners  Owners
	owned   <-chan struct{} // signals ownership changes; nil without owners
	limits  Limits
	events  vendedlogs.Events
	logger  *slog.Logger
	dir     string
	extURL  *url.URL
	metrics *metrics
	regs    *tenantRegistries
	reg     prometheus.Registerer
	now     func() time.Time

	// syncMu serializes the changes to the set of running Alertmanagers: Sync, the
	// on-demand start of a workspace's (tenantFor), DeleteWorkspace and Close.
	syncMu sync.Mutex
	// failed is the digest of the definition that last failed to start, by workspace
	// (no Alertmanager runs for it), so it is not tried again until it changes.
	// Guarded by syncMu.
	failed map[string]string
	closed bool // guarded by syncMu

	mu      sync.RWMutex // guards tenants
	tenants map[string]*tenant
}

// New returns the MultiTenant. It starts no Alertmanager: Run (or Sync) does.
func New(cfg Config, deps Deps) (*MultiTenant, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Workspaces == nil || deps.Bucket == nil {
		return nil, errors.New("alertmanager needs Workspaces and Bucket")
	}
	dir := deps.DataDir
	if dir == "" {
		dir = cfg.DataDir
	}
	if dir == "" {
		return nil, errors.New("alertmanager needs a data directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the alertmanager data directory: %w", err)
	}
	base := cfg.ExternalURL
	if base == "" {
		base = deps.ExternalURL
	}
	if base == "" {
		base = "http://localhost"
	}
	extURL, err := parseExternalURL(base)
	if err != nil {
		return nil, fmt.Errorf("external URL: %w", err)
	}
	m := &MultiTenant{
		cfg:     cfg,
		bkt:     deps.Bucket,
		ws:      deps.Workspaces,
		changes: deps.Changes,
		owners:  deps.Owners,
		limits:  deps.Limits,
		events:  deps.Events,
		logger:  deps.Logger,
		dir:     dir,
		extURL:  extURL,
		regs:    newTenantRegistries(),
		reg:     deps.Registerer,
		now:     time.Now,
		failed:  map[string]string{},
		tenants: map[string]*tenant{},
	}
	if m.limits == nil {
		m.limits = DefaultLimits
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	m.metrics = newMetrics(deps.Registerer, func() int {
		m.mu.RLock()
		defer m.mu.RUnlock()
		return len(m.tenants)
	})
	if m.reg != nil {
		if err := m.reg.Register(m.regs); err != nil {
			return nil, fmt.Errorf("registering the workspaces' alertmanager metrics: %w", err)
		}
	}
	if m.owners != nil {
		m.owned = m.owners.Subscribe()
	}
	return m, nil
}

// Owners says which workspaces this process owns (ingestlog.WorkspaceOwners).
type Owners interface {
	Owns(workspace string) bool
	// Subscribe returns a channel signalled when the workspaces owned change.
	Subscribe() <-chan struct{}
}

// runsHere reports whether ws's Alertmanager should run in this process: it has a
// definition and, in a cluster, this process owns it.
func (m *MultiTenant) runsHere(ws meta.Workspace) bool {
	return HasDefinition(ws) && (m.owners == nil || m.owners.Owns(ws.ID))
}

// Run starts the Alertmanagers of the workspaces with a definition and keeps them in line
// with the definitions (on every Changes signal and every ResyncInterval), persists
// their state every PersistInterval, and at the end of ctx stops them all, persisting
// their state (Close). Stop the ruler first, so that its last alerts are delivered.
func (m *MultiTenant) Run(ctx context.Context) error {
	m.Sync(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		periodic.Every(ctx, m.cfg.PersistInterval, func(ctx context.Context) {
			if err := m.Persist(ctx); err != nil && ctx.Err() == nil {
				m.logger.Warn("persisting alertmanager state", "err", err)
			}
		})
	})
	t := time.NewTicker(m.cfg.ResyncInterval)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-m.changes:
			m.Sync(ctx)
		case <-m.owned:
			m.Sync(ctx)
		case <-t.C:
			m.Sync(ctx)
		}
	}
	wg.Wait()
	return m.Close()
}

// Sync brings the running Alertmanagers in line with the workspaces' definitions:
// starts those of new definitions, applies changed ones (keeping alerts, silences and
// the notification log; a definition that fails to load leaves the previous one in
// force), and stops those whose definition or workspace is gone, persisting their state.
func (m *MultiTenant) Sync(ctx context.Context) {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	if m.closed {
		return
	}
	m.metrics.syncs.Inc()
	want := map[string]bool{}
	for _, ws := range m.ws.ListWorkspaces() {
		if m.runsHere(ws) {
			want[ws.ID] = true
			m.syncWorkspaceLocked(ctx, ws)
		}
	}
	m.mu.RLock()
	var gone []*tenant
	for id, t := range m.tenants {
		if !want[id] {
			gone = append(gone, t)
		}
	}
	m.mu.RUnlock()
	for _, t := range gone {
		// Its state goes to the bucket, where the new owner, if any, reads it.
		m.logger.Info("stopping the alertmanager of a workspace without definition or owned by another process", "workspace", t.id)
		m.stopTenantLocked(ctx, t, true)
	}
	for id := range m.failed {
		if !want[id] {
			delete(m.failed, id)
		}
	}
}

// HasDefinition says whether an Alertmanager should run for ws: it has a definition in
// force. UPDATE_FAILED keeps it running: a definition that does not load leaves the
// previous one in force.
func HasDefinition(ws meta.Workspace) bool {
	if ws.Status == meta.StatusDeleting || ws.AlertManagerDefinition == nil || !blocks.ValidWorkspace(ws.ID) {
		return false
	}
	switch ws.AlertManagerDefinition.Status {
	case meta.StatusActive, meta.StatusCreating, meta.StatusUpdating, meta.StatusUpdateFailed:
		return true
	}
	return false
}

func definitionHash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// syncWorkspaceLocked starts or reconfigures ws's Alertmanager. syncMu is held.
func (m *MultiTenant) syncWorkspaceLocked(ctx context.Context, ws meta.Workspace) {
	data := ws.AlertManagerDefinition.Data
	hash := definitionHash(data)
	m.mu.RLock()
	t := m.tenants[ws.ID]
	m.mu.RUnlock()
	if t != nil {
		t.mu.Lock()
		same := hash == t.hash || hash == t.failedHash
		t.mu.Unlock()
		if same {
			return
		}
	} else if m.failed[ws.ID] == hash {
		return
	}
	def, err := m.parse(data)
	if err == nil && t != nil {
		if err = t.applyConfig(def, hash); err == nil {
			m.logger.Info("alert manager definition applied", "workspace", ws.ID)
			return
		}
	}
	if err != nil {
		m.metrics.loadFailures.Inc()
		if t != nil {
			t.mu.Lock()
			t.failedHash = hash
			t.mu.Unlock()
			t.configOK.Set(0)
			m.logger.Error("loading the alert manager definition; the previous one stays in force", "workspace", ws.ID, "err", err)
		} else {
			m.failed[ws.ID] = hash
			m.logger.Error("loading the alert manager definition; no alertmanager runs for the workspace", "workspace", ws.ID, "err", err)
		}
		return
	}
	// A new Alertmanager. A state that cannot be read is retried at the next sync; it is
	// not a failure of the definition.
	st, err := m.loadStates(ctx, ws.ID)
	if err != nil {
		m.logger.Error("loading the alertmanager state of a workspace; retrying at the next sync", "workspace", ws.ID, "err", err)
		return
	}
	// Notification failures, template errors and quota warnings also go to the
	// workspace's log group (its logging configuration).
	logger := slog.New(vendedlogs.NewHandler(newLazyHandler(m.logger.Handler()), m.events, vendedlogs.HandlerOptions{
		Workspace: ws.ID, Component: vendedlogs.ComponentAlertmanager,
		Fields: []string{"receiver", "integration"},
	})).With("workspace", ws.ID)
	extURL := m.extURL.JoinPath("workspaces", ws.ID, "alertmanager")
	t, err = newTenant(ws.ID, &m.cfg, extURL, m.limits, logger, st)
	if err == nil {
		if err = t.applyConfig(def, hash); err != nil {
			t.stop(ctx)
		}
	}
	if err != nil {
		m.metrics.loadFailures.Inc()
		m.failed[ws.ID] = hash
		m.logger.Error("starting the alertmanager of a workspace", "workspace", ws.ID, "err", err)
		return
	}
	delete(m.failed, ws.ID)
	m.regs.add(ws.ID, t.reg)
	m.mu.Lock()
	m.tenants[ws.ID] = t
	m.mu.Unlock()
	m.logger.Info("alertmanager started", "workspace", ws.ID)
}

func (m *MultiTenant) parse(data []byte) (*Definition, error) {
	def, err := ParseDefinition(data)
	if err != nil {
		return nil, err
	}
	def.applyDefaults(m.cfg.ResolveTimeout)
	return def, nil
}

// stopTenantLocked removes t from service and stops it, persisting its state first when
// persist is set. syncMu is held.
func (m *MultiTenant) stopTenantLocked(ctx context.Context, t *tenant, persist bool) {
	m.mu.Lock()
	if m.tenants[t.id] == t {
		delete(m.tenants, t.id)
	}
	m.mu.Unlock()
	// Dispatching stops first, so the notification log persisted is the final one.
	t.stop(ctx)
	if persist {
		// The last write must not be cut short by the caller's context ending.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := m.persist(ctx, t, states...); err != nil {
			m.logger.Error("persisting the alertmanager state of a stopped workspace", "workspace", t.id, "err", err)
		}
	}
	t.persistMu.Lock()
	t.retired = true
	t.persistMu.Unlock()
	m.regs.remove(t.id)
}

// tenant returns the running Alertmanager of a workspace, nil when there is none.
func (m *MultiTenant) tenant(id string) *tenant {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.tenants[id]
}

// tenantFor returns the workspace's Alertmanager, starting it first when the workspace
// has a definition that no Sync has seen yet (a request right after the definition was
// created). Nil when the workspace has none that loads.
func (m *MultiTenant) tenantFor(ctx context.Context, id string) *tenant {
	if t := m.tenant(id); t != nil {
		return t
	}
	ws, ok := m.ws.PeekWorkspace(id)
	if !ok || !m.runsHere(ws) {
		return nil
	}
	// The start must not end with the request that asked for it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	m.syncMu.Lock()
	if !m.closed {
		m.syncWorkspaceLocked(ctx, ws.Clone())
	}
	m.syncMu.Unlock()
	return m.tenant(id)
}

// Persist writes every running Alertmanager's silences and notification log to the
// bucket (those that changed since they were last written).
func (m *MultiTenant) Persist(ctx context.Context) error {
	m.mu.RLock()
	ts := make([]*tenant, 0, len(m.tenants))
	for _, t := range m.tenants {
		ts = append(ts, t)
	}
	m.mu.RUnlock()
	var errs error
	for _, t := range ts {
		if err := m.persist(ctx, t, states...); err != nil {
			errs = errors.Join(errs, fmt.Errorf("workspace %s: %w", t.id, err))
		}
	}
	return errs
}

// startTimeout bounds the start of a workspace's Alertmanager on demand (reading its
// state from the bucket).
const startTimeout = time.Minute

// shutdownTimeout bounds the last persist of every Alertmanager at Close.
const shutdownTimeout = time.Minute

// Close stops every Alertmanager, persisting its state, and unregisters the metrics.
// Calls after the first do nothing.
func (m *MultiTenant) Close() error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	m.mu.RLock()
	ts := make([]*tenant, 0, len(m.tenants))
	for _, t := range m.tenants {
		ts = append(ts, t)
	}
	m.mu.RUnlock()
	for _, t := range ts {
		m.stopTenantLocked(ctx, t, true)
	}
	if m.reg != nil {
		m.reg.Unregister(m.regs)
	}
	return nil
}

// DeleteWorkspace stops the workspace's Alertmanager, if it runs, and deletes its
// silences and notification log from the bucket and the data directory. Call it when
// the workspace is deleted; a Sync does not start it again once the workspace is
// DELETING or gone.
func (m *MultiTenant) DeleteWorkspace(ctx context.Context, id string) error {
	if !blocks.ValidWorkspace(id) {
		return nil // no state was ever stored under it
	}
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	if t := m.tenant(id); t != nil {
		m.stopTenantLocked(ctx, t, false)
	}
	delete(m.failed, id)
	return m.deleteStates(ctx, id)
}

// SendAlerts hands alerts to the workspace's Alertmanager, as Prometheus' notifier posts
// them to /api/v2/alerts: this is the ruler's in-process path. Alerts without a start
// get the current time; without an end, the definition's resolve timeout.
//
// It fails with ErrNoAlertmanager when the workspace has no Alertmanager, a *QuotaError
// (ErrTooManyAlerts, ErrAlertsTooBig) for the alerts the quotas refused, and
// ErrInvalidAlert for invalid ones; the other alerts of the call are stored in both of
// the latter cases.
func (m *MultiTenant) SendAlerts(ctx context.Context, workspace string, alerts []*notifier.Alert) error {
	t := m.tenantFor(ctx, workspace)
	if t == nil {
		return fmt.Errorf("workspace %s: %w", workspace, ErrNoAlertmanager)
	}
	resolveTimeout := t.resolveTimeout()
	now := m.now()
	valid := make([]*alert.Alert, 0, len(alerts))
	var invalid error
	for _, a := range alerts {
		ma := model.Alert{
			Labels:       labelSet(a.Labels),
			Annotations:  labelSet(a.Annotations),
			StartsAt:     a.StartsAt,
			EndsAt:       a.EndsAt,
			GeneratorURL: a.GeneratorURL,
		}
		if ma.StartsAt.IsZero() {
			if ma.EndsAt.IsZero() {
				ma.StartsAt = now
			} else {
				ma.StartsAt = ma.EndsAt
			}
		}
		timeout := false
		if ma.EndsAt.IsZero() {
			timeout = true
			ma.EndsAt = now.Add(resolveTimeout)
		}
		if err := alert.Validate(&ma); err != nil {
			t.received.WithLabelValues("invalid").Inc()
			invalid = errors.Join(invalid, fmt.Errorf("alert %s: %w", ma.Labels, err))
			continue
		}
		if ma.EndsAt.After(now) {
			t.received.WithLabelValues("firing").Inc()
		} else {
			t.received.WithLabelValues("resolved").Inc()
		}
		valid = append(valid, alert.New(ma, now, timeout))
	}
	err := t.alerts.Put(ctx, valid...)
	if invalid != nil {
		err = errors.Join(err, fmt.Errorf("workspace %s: %w: %w", workspace, ErrInvalidAlert, invalid))
	}
	return err
}

// labelSet converts Prometheus labels, dropping empty values as the Alertmanager API does.
func labelSet(ls labels.Labels) model.LabelSet {
	out := make(model.LabelSet, ls.Len())
	ls.Range(func(l labels.Label) {
		if l.Value != "" {
			out[model.LabelName(l.Name)] = model.LabelValue(l.Value)
		}
	})
	return out
}

// Running returns the ids of the workspaces whose Alertmanager runs, sorted.
func (m *MultiTenant) Running() []string {
	m.mu.RLock()
	out := make([]string, 0, len(m.tenants))
	for id := range m.tenants {
		out = append(out, id)
	}
	m.mu.RUnlock()
	slices.Sort(out)
	return out
}
