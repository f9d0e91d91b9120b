// Package scraper runs AMP's managed collectors (CreateScraper) in the server: one
// collector per scraper, built on Prometheus' own discovery and scrape managers, whose
// samples go into the destination workspace through the normal write path (validation,
// limits, HA labels, usage). The control plane stores scrapers in their destination
// workspace's record; the Manager follows the records.
//
//	meta.Store (Workspace.Scrapers) ─▶ Manager.sync ─▶ collector per scraper
//	     discovery.Manager ─▶ scrape.Manager ─▶ appender ─▶ Writer (distributor) ─▶ workspace
package scraper

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/vendedlogs"
)

// Workspaces are the stored workspaces and a signal when they change; *meta.Store
// implements it.
type Workspaces interface {
	ListWorkspaces() []meta.Workspace
}

// Writer stores a scrape's samples in a workspace through the write path: req is a remote
// write 1.0 request the scraper built (remotewrite.Request.AppendV1Series), which has the
// wire form of any request and of which Write keeps nothing. labelsChecked, when not
// empty, are the LabelChecker's checks every series of req passed.
type Writer interface {
	// Write answers how many of req's samples and histograms were stored, also when it
	// answers an error: the write path stores a request's valid series and refuses the
	// others.
	Write(ctx context.Context, workspace string, req *remotewrite.Request, labelsChecked string) (stored int, err error)
}

// LabelChecker, when the Writer is one, checks a series' labels as the write path does:
// each series is then checked once, when first scraped, instead of in every scrape.
// LabelChecks names the checks in force in a workspace (its limits change them);
// CheckV1Labels checks one series' encoded labels (remotewrite.AppendV1Labels) and says
// under which checks.
type LabelChecker interface {
	LabelChecks(workspace string) string
	CheckV1Labels(workspace string, labelFields []byte) (checks string, ok bool)
}

// Owners says which workspaces' scrapers run in this process, in a cluster.
type Owners interface {
	Owns(workspace string) bool
	Subscribe() <-chan struct{}
}

// Deps are the Manager's collaborators; Workspaces and Writer are required.
type Deps struct {
	Workspaces Workspaces
	// Changes signals that the workspaces may have changed (meta.Store.Subscribe).
	Changes <-chan struct{}
	Writer  Writer
	// Owners, in a cluster: a scraper runs in the process owning its destination. Nil:
	// all run here.
	Owners Owners
	// Events receives the scrapers' warnings and errors for their logging
	// configurations; nil vends none.
	Events     Events
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// DataDir resolves the default file SD directory.
	DataDir string
}

// Events receives a scraper's events for its log group; *vendedlogs.Logs implements it.
type Events interface {
	ScraperEvent(group, scraper, component, level, msg string, fields ...vendedlogs.Field)
}

// The components of a scraper's logging configuration, as AMP names them.
const (
	ComponentServiceDiscovery = "SERVICE_DISCOVERY"
	ComponentCollector        = "COLLECTOR"
	ComponentExporter         = "EXPORTER"
)

// Manager runs the collectors of the stored scrapers.
type Manager struct {
	cfg       Config
	deps      Deps
	logger    *slog.Logger
	fileSDDir string

	mu         sync.Mutex
	collectors map[string]*collector // by scraper id

	// requests holds the scrapes' requests between scrapes, with their arenas.
	requests sync.Pool

	running  *prometheus.GaugeVec
	failures *prometheus.CounterVec
	written  *prometheus.CounterVec
}

// New returns a Manager.
func New(cfg Config, deps Deps) (*Manager, error) {
	if deps.Workspaces == nil || deps.Writer == nil {
		return nil, errors.New("scraper: Workspaces and Writer are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	dir := cfg.FileSDDir
	if dir == "" {
		dir = filepath.Join(deps.DataDir, "scraper-file-sd")
	}
	f := promauto.With(deps.Registerer)
	return &Manager{
		cfg:        cfg,
		deps:       deps,
		logger:     deps.Logger,
		fileSDDir:  dir,
		collectors: map[string]*collector{},
		running: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_scraper_running",
			Help: "1 for each managed scraper collecting in this process.",
		}, []string{"scraper", "workspace"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_scraper_start_failures_total",
			Help: "Managed scrapers that could not start, by scraper.",
		}, []string{"scraper"}),
		written: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_scraper_samples_written_total",
			Help: "Samples the managed scrapers wrote, by scraper and outcome (ok or refused).",
		}, []string{"scraper", "outcome"}),
	}, nil
}

func (m *Manager) getRequest() *remotewrite.Request {
	if r, ok := m.requests.Get().(*remotewrite.Request); ok {
		return r
	}
	return new(remotewrite.Request)
}

func (m *Manager) putRequest(r *remotewrite.Request) {
	if len(r.Series) > 1<<20 {
		return // a huge scrape's arenas are not kept
	}
	r.Reset()
	m.requests.Put(r)
}

// Check says whether a scraper can run here: its configuration is valid and its
// cluster, if its kubernetes_sd_configs need one, is mapped. The reconciler calls it
// before the scraper is ACTIVE.
func (m *Manager) Check(_ context.Context, s meta.Scraper) error {
	_, err := m.prepare(s)
	return err
}

func (m *Manager) prepare(s meta.Scraper) (*promconfig.Config, error) {
	cfg, err := CheckBlob(s.Config)
	if err != nil {
		return nil, err
	}
	if err := m.cfg.Prepare(cfg, Source{ClusterARN: s.ClusterARN}, m.fileSDDir); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Run keeps the collectors in line with the stored scrapers until ctx ends, then stops
// them all.
func (m *Manager) Run(ctx context.Context) error {
	defer m.stopAll()
	t := time.NewTicker(m.cfg.SyncInterval)
	defer t.Stop()
	var owned <-chan struct{}
	if m.deps.Owners != nil {
		owned = m.deps.Owners.Subscribe()
	}
	for {
		m.Sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-m.deps.Changes:
		case <-owned:
		case <-t.C:
		}
	}
}

// runnable reports whether a scraper in status collects.
func runnable(status string) bool {
	return status == meta.StatusActive || status == meta.StatusUpdating
}

// Sync starts, restarts and stops collectors to match the stored scrapers.
func (m *Manager) Sync(ctx context.Context) {
	want := map[string]meta.Scraper{}
	dest := map[string]string{}
	for _, ws := range m.deps.Workspaces.ListWorkspaces() {
		if ws.Status != meta.StatusActive || (m.deps.Owners != nil && !m.deps.Owners.Owns(ws.ID)) {
			continue
		}
		for id, s := range ws.Scrapers {
			if !runnable(s.Status) {
				continue
			}
			// A scraper moving to another workspace is briefly in both records: the
			// newest wins.
			if prev, ok := want[id]; ok && !s.ModifiedAt.After(prev.ModifiedAt) {
				continue
			}
			want[id], dest[id] = *s, ws.ID
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// The series of a collector restarted in the same workspace, which the new one ends
	// with the stale markers of its own should it stop before scraping them again.
	inherited := map[string]map[string]struct{}{}
	for id, c := range m.collectors {
		if s, ok := want[id]; !ok || c.hash != hashOf(s, dest[id]) {
			c.stop()
			delete(m.collectors, id)
			m.running.DeleteLabelValues(id, c.workspace)
			m.logger.Info("scraper stopped", "scraper", id, "workspace", c.workspace)
			if !ok || dest[id] != c.workspace {
				// Gone from this workspace: its series end now, as a target's do when it
				// leaves Prometheus' service discovery. A changed configuration restarts
				// the collector instead, whose targets go on.
				c.app.writeStaleMarkers(ctx, time.Now())
			} else {
				inherited[id] = c.app.written()
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if _, ok := m.collectors[id]; ok {
			continue
		}
		s := want[id]
		c, err := m.start(ctx, s, dest[id], inherited[id])
		if err != nil {
			m.failures.WithLabelValues(id).Inc()
			m.logger.Warn("scraper cannot start", "scraper", id, "workspace", dest[id], "err", err)
			continue
		}
		m.collectors[id] = c
		m.running.WithLabelValues(id, dest[id]).Set(1)
		m.logger.Info("scraper started", "scraper", id, "workspace", dest[id], "jobs", len(c.jobs))
	}
}

func hashOf(s meta.Scraper, workspace string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", workspace, s.ClusterARN, s.ModifiedAt.UTC().Format(time.RFC3339Nano))
	// Where it logs is part of a running collector: a change restarts it.
	if s.Logging.Logs() {
		fmt.Fprintf(h, "%s\x00%v\x00", s.Logging.LogGroupARN, s.Logging.Components)
	}
	h.Write(s.Config)
	return hex.EncodeToString(h.Sum(nil))
}

// collector is one running scraper: its discovery and scrape managers.
type collector struct {
	app       *appendable
	workspace string
	hash      string
	jobs      []string
	cancel    context.CancelFunc
	scrape    *scrape.Manager
	done      chan struct{}
}

func (m *Manager) start(ctx context.Context, s meta.Scraper, workspace string, inherited map[string]struct{}) (*collector, error) {
	cfg, err := m.prepare(s)
	if err != nil {
		return nil, err
	}
	base := m.logger.With("scraper", s.ID, "workspace", workspace).Handler()
	events := m.scraperEvents(s)
	componentLogger := func(component string) *slog.Logger {
		var ev vendedlogs.Events
		if events != nil && events.logs(component) {
			ev = scraperComponent{events, component}
		}
		return slog.New(vendedlogs.NewHandler(base, ev, vendedlogs.HandlerOptions{
			Workspace: workspace, Component: component, Fields: []string{"scrape_pool", "target", "config"},
			// The scrape loop logs a failed scrape or append at debug level only.
			Debug: []string{"Scrape failed", "Append failed"},
		})).With("component", component)
	}
	// Each collector has a registry of its own: the managers' metrics would collide
	// between scrapers, and they are not this server's.
	reg := prometheus.NewRegistry()
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("discovery metrics: %w", err)
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	disc := discovery.NewManager(cctx, componentLogger(ComponentServiceDiscovery), reg, sdMetrics, discovery.Updatert(m.cfg.DiscoveryUpdate))
	if disc == nil {
		cancel()
		return nil, errors.New("creating the discovery manager failed")
	}
	app := &appendable{m: m, scraper: s.ID, workspace: workspace, events: events, tables: newSeriesTables(), inherited: inherited}
	// PassMetadataInContext puts each scrape's target in its appender's context: the
	// appender keeps a series table per target (series.go).
	sm, err := scrape.NewManager(&scrape.Options{DiscoveryReloadInterval: model.Duration(m.cfg.DiscoveryUpdate), PassMetadataInContext: true}, componentLogger(ComponentCollector), nil, nil, app, reg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("scrape manager: %w", err)
	}
	if err := sm.ApplyConfig(cfg); err != nil {
		cancel()
		return nil, fmt.Errorf("applying the scrape configuration: %w", err)
	}
	sd := map[string]discovery.Configs{}
	var jobs []string
	for _, sc := range cfg.ScrapeConfigs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
		jobs = append(jobs, sc.JobName)
	}
	if err := disc.ApplyConfig(sd); err != nil {
		cancel()
		return nil, fmt.Errorf("applying the service discovery: %w", err)
	}
	c := &collector{app: app, workspace: workspace, hash: hashOf(s, workspace), jobs: jobs, cancel: cancel, scrape: sm, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() { _ = disc.Run() })
	wg.Go(func() { _ = sm.Run(disc.SyncCh()) })
	go func() {
		<-cctx.Done()
		sm.Stop()
		wg.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop stops the collector and waits for its loops.
func (c *collector) stop() {
	c.cancel()
	<-c.done
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, c := range m.collectors {
		c.stop()
		m.running.DeleteLabelValues(id, c.workspace)
	}
	clear(m.collectors)
}

// scraperEvents is where a scraper's events go: the log group of its logging
// configuration, for the components it names; nil without one.
func (m *Manager) scraperEvents(s meta.Scraper) *scraperLog {
	if m.deps.Events == nil || s.Logging == nil || !s.Logging.Logs() {
		return nil
	}
	l := &scraperLog{events: m.deps.Events, group: s.Logging.LogGroupARN, scraper: s.ID}
	for _, c := range s.Logging.Components {
		l.components = append(l.components, c.Type)
	}
	return l
}

// scraperLog sends a scraper's events to its log group.
type scraperLog struct {
	events     Events
	group      string
	scraper    string
	components []string
}

func (l *scraperLog) logs(component string) bool {
	return l != nil && slices.Contains(l.components, component)
}

func (l *scraperLog) event(component, level, msg string, fields ...vendedlogs.Field) {
	if l.logs(component) {
		l.events.ScraperEvent(l.group, l.scraper, component, level, msg, fields...)
	}
}

// scraperComponent is a scraper's log for one component, as vendedlogs.Events.
type scraperComponent struct {
	log       *scraperLog
	component string
}

func (c scraperComponent) Event(_, _, level, msg string, fields ...vendedlogs.Field) {
	c.log.event(c.component, level, msg, fields...)
}

// appendable gives the scrape manager appenders that write one scrape's samples into
// the workspace as one batch.
type appendable struct {
	m         *Manager
	scraper   string
	workspace string
	events    *scraperLog // nil without a logging configuration
	tables    *seriesTables
	// inherited are the encoded labels of the series the collectors this one replaced
	// wrote (a configuration change restarts a collector): they get stale markers too
	// when it stops for good, even if it never scraped them.
	inherited map[string]struct{}
}

func (a *appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	t, _ := scrape.TargetFromContext(ctx) // there with Options.PassMetadataInContext
	return &appender{ctx: ctx, a: a, table: a.tables.forTarget(t)}
}

type appender struct {
	ctx    context.Context
	a      *appendable
	table  *seriesTable
	req    *remotewrite.Request // the scrape's series, as they come
	series int
	// check is the write path's label checks in force at the scrape's first sample (nil
	// without a LabelChecker); unchecked counts the series that did not pass them.
	check     *labelCheck
	unchecked int
}

func (ap *appender) Append(ref storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if ap.req == nil {
		ap.req = ap.a.m.getRequest()
		if c, ok := ap.a.m.deps.Writer.(LabelChecker); ok {
			ap.check = &labelCheck{c: c, workspace: ap.a.workspace, checks: c.LabelChecks(ap.a.workspace)}
		}
	}
	enc, ref, checked := ap.table.labelsFor(ref, ls, ap.check)
	if !checked {
		ap.unchecked++
	}
	if err := ap.req.AppendV1Series(enc, t, v, h, fh); err != nil {
		return 0, fmt.Errorf("series %s: %w", ls, err)
	}
	ap.series++
	return ref, nil
}

func (ap *appender) Commit() error {
	defer ap.table.scraped()
	n := ap.series
	if n == 0 {
		return nil
	}
	checked := ""
	if ap.check != nil && ap.unchecked == 0 {
		checked = ap.check.checks
	}
	stored, err := ap.a.m.deps.Writer.Write(ap.ctx, ap.a.workspace, ap.req, checked)
	ap.release()
	refused := ap.a.countWritten(n, stored, err)
	if err != nil {
		err = fmt.Errorf("writing the scrape into workspace %s: %w", ap.a.workspace, err)
		if ap.a.events != nil {
			ap.a.events.event(ComponentExporter, vendedlogs.LevelError, err.Error(), vendedlogs.Field{Key: "samples", Value: refused})
		}
		return err
	}
	return nil
}

func (ap *appender) Rollback() error {
	ap.table.scraped()
	ap.release()
	return nil
}

// release returns the request for the next scrape: the Writer keeps nothing of it.
func (ap *appender) release() {
	if ap.req != nil {
		ap.a.m.putRequest(ap.req)
	}
	ap.req, ap.series, ap.check, ap.unchecked = nil, 0, nil, 0
}
