// Package ruler evaluates each workspace's recording and alerting rules with
// Prometheus' own rules manager, one per workspace that has rule groups namespaces.
// Start from Ruler: New, then Run (it follows the metadata store and stops every
// workspace's rules when its context ends), and Routes for the /api/v1/rules and
// /api/v1/alerts endpoints.
//
//	meta.Store (rule groups namespaces) ─▶ sync ─▶ rules.Manager per workspace
//	   each group, every interval:
//	     RuleQuery (query API: ingesters + bucket, the workspace's query limits)
//	     ─▶ recorded samples, ALERTS, ALERTS_FOR_STATE ─▶ Writer (distributor: validation,
//	        limits, usage; stored like any remote write, so they survive a restart)
//	     ─▶ alerts ─▶ AlertSender (the workspace's Alertmanager)
//
// A namespace is one rule file; its groups are identified as Prometheus identifies a
// file's groups, with "<workspace>/<namespace>" as the file name. After a restart the
// state of `for` is restored from ALERTS_FOR_STATE, as Prometheus restores it.
package ruler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/periodic"

	"github.com/stratametrics/strata/internal/vendedlogs"
)

// Config configures the ruler.
type Config struct {
	// Enabled runs the ruler. False means rule groups namespaces are stored but not
	// evaluated.
	Enabled bool `yaml:"enabled"`
	// EvaluationInterval is the interval of groups that set none. Zero means 1m,
	// Prometheus' default.
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	// ResyncInterval is how often every workspace's rules are compared with the
	// metadata, besides the changes the store signals. Zero means never.
	ResyncInterval time.Duration `yaml:"resync_interval"`
	// OutageTolerance, ForGracePeriod and ResendDelay are Prometheus' rules options of
	// the same names (--rules.alert.*): how long a restart may take for `for` state to
	// be restored, the least time an alert is pending after a restore, and how often a
	// firing alert is sent again.
	OutageTolerance time.Duration `yaml:"for_outage_tolerance"`
	ForGracePeriod  time.Duration `yaml:"for_grace_period"`
	ResendDelay     time.Duration `yaml:"resend_delay"`
}

// RegisterFlags registers the flags under "ruler.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "ruler.enabled", true, "Evaluate the recording and alerting rules of every workspace's rule groups namespaces.")
	f.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", time.Minute, "Interval of rule groups that set none (AMP allows no group below 30s; see limits.ruler-min-evaluation-interval).")
	f.DurationVar(&c.ResyncInterval, "ruler.resync-interval", time.Minute, "How often every workspace's rules are compared with the metadata, besides the changes it signals. 0 means never.")
	f.DurationVar(&c.OutageTolerance, "ruler.for-outage-tolerance", time.Hour, "Max time to tolerate a ruler outage for restoring the 'for' state of alerts (Prometheus' --rules.alert.for-outage-tolerance).")
	f.DurationVar(&c.ForGracePeriod, "ruler.for-grace-period", 10*time.Minute, "Minimum time an alert with a 'for' stays pending after its state is restored (Prometheus' --rules.alert.for-grace-period).")
	f.DurationVar(&c.ResendDelay, "ruler.resend-delay", time.Minute, "Minimum time before a firing alert is sent to the Alertmanager again (Prometheus' --rules.alert.resend-delay).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.EvaluationInterval < 0 || c.ResyncInterval < 0 || c.OutageTolerance < 0 || c.ForGracePeriod < 0 || c.ResendDelay < 0 {
		return errors.New("durations must not be negative")
	}
	return nil
}

// Store is what the ruler reads of the metadata: the workspaces and their rule groups
// namespaces, and a signal when they change. *meta.Store implements it.
type Store interface {
	ListWorkspaces() []meta.Workspace
	PeekWorkspace(id string) (meta.Workspace, bool)
	Subscribe() <-chan struct{}
}

// Querier evaluates a rule's query in a workspace, with its limits (query.API).
type Querier interface {
	RuleQuery(ctx context.Context, workspace, query string, t time.Time) (promql.Vector, error)
}

// Queryables opens a workspace's storage for reading (restoring `for` state).
type Queryables interface {
	Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error)
}

// Writer stores the samples rules produce in a workspace through the write path
// (validation, limits, usage). A returned error says what was refused; the samples it
// does not name were stored.
type Writer interface {
	WriteRuleSamples(ctx context.Context, workspace string, samples []Sample) error
}

// Sample is one sample a rule produced: a float F, or a native histogram (H or FH).
type Sample struct {
	Labels labels.Labels
	T      int64
	F      float64
	H      *histogram.Histogram
	FH     *histogram.FloatHistogram
}

// ErrNoAlertmanager is what an AlertSender answers for a workspace without an
// Alertmanager: its alerts are dropped, as AMP drops them, and counted.
var ErrNoAlertmanager = errors.New("the workspace has no alert manager definition")

// AlertSender hands a workspace's alerts to its Alertmanager. An error wrapping
// ErrNoAlertmanager says the workspace has none.
type AlertSender interface {
	SendAlerts(ctx context.Context, workspace string, alerts []*notifier.Alert) error
}

// Deps are the ruler's collaborators: Store, Querier, Queryables, Writer and Alerts are
// required.
type Deps struct {
	Store      Store
	Querier    Querier
	Queryables Queryables
	Writer     Writer
	Alerts     AlertSender
	// ExternalURL is the base of the links in alerts (GeneratorURL) and of templates'
	// $externalURL: a workspace's is <ExternalURL>/workspaces/<id>/.
	ExternalURL string
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// Parser parses rule files; it should admit what the query API admits. Nil means
	// PromQL without experimental functions.
	Parser parser.Parser
	// Owners, in a cluster, says which workspaces this process evaluates: only those it
	// owns. Nil: all.
	Owners Owners
	// Events receives rule failures for the workspaces' logging configurations; nil
	// vends none.
	Events vendedlogs.Events
}

// Owners says which workspaces this process owns (ingestlog.WorkspaceOwners).
type Owners interface {
	Owns(workspace string) bool
	// Subscribe returns a channel signalled when the workspaces owned change.
	Subscribe() <-chan struct{}
}

// Ruler runs the rules of every workspace. It is safe for concurrent use.
type Ruler struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	metrics *rules.Metrics
	m       *rulerMetrics
	parser  parser.Parser
	changes <-chan struct{}
	owners  <-chan struct{} // nil without Owners

	// iterate is what a group does at each tick of its schedule; nil is Prometheus'
	// DefaultEvalIterationFunc. Tests replace it to evaluate at times they choose.
	iterate rules.GroupEvalIterationFunc
	// onSync, when set, is called at the end of every Sync (tests wait for it).
	onSync func()

	syncMu sync.Mutex // serializes Sync, DeleteWorkspace and the final stop

	mu      sync.Mutex         // guards tenants and closed
	tenants map[string]*tenant // by workspace id
	closed  bool
}

// tenant is one workspace's rules manager. Only Sync (under syncMu) changes digests.
type tenant struct {
	id      string
	mgr     *rules.Manager
	cancel  context.CancelFunc
	digests map[string]string // identifier -> content digest, as last loaded
}

type rulerMetrics struct {
	workspaces  prometheus.GaugeFunc
	syncs       *prometheus.CounterVec
	writeErrors *prometheus.CounterVec
	sendErrors  *prometheus.CounterVec
}

// New returns a Ruler; Run starts it.
func New(cfg Config, deps Deps) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Querier == nil || deps.Queryables == nil || deps.Writer == nil || deps.Alerts == nil {
		return nil, errors.New("ruler: Store, Querier, Queryables, Writer and Alerts are required")
	}
	if cfg.EvaluationInterval == 0 {
		cfg.EvaluationInterval = time.Minute
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Parser == nil {
		deps.Parser = parser.NewParser(parser.Options{})
	}
	r := &Ruler{
		cfg:     cfg,
		deps:    deps,
		logger:  deps.Logger,
		parser:  deps.Parser,
		tenants: map[string]*tenant{},
		// One set of Prometheus' rule metrics for every workspace: their rule_group
		// label ("<workspace>/<namespace>;<group>") names the workspace.
		metrics: rules.NewGroupMetrics(deps.Registerer),
	}
	f := promauto.With(deps.Registerer)
	r.m = &rulerMetrics{
		workspaces: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_ruler_workspaces",
			Help: "Workspaces whose rules the ruler evaluates.",
		}, func() float64 {
			r.mu.Lock()
			defer r.mu.Unlock()
			return float64(len(r.tenants))
		}),
		syncs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ruler_rule_loads_total",
			Help: "Loads of a workspace's rule groups namespaces into its rules manager, by outcome.",
		}, []string{"outcome"}),
		writeErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ruler_write_failures_total",
			Help: "Rule group evaluations whose samples (recorded series, ALERTS) were not all stored, per workspace.",
		}, []string{"workspace"}),
		sendErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ruler_alerts_dropped_total",
			Help: "Alerts the ruler could not hand to the workspace's Alertmanager, per workspace and reason (no_alertmanager: the workspace has no alert manager definition; refused: its Alertmanager refused them, e.g. over a quota).",
		}, []string{"workspace", "reason"}),
	}
	r.changes = deps.Store.Subscribe()
	if deps.Owners != nil {
		r.owners = deps.Owners.Subscribe()
	}
	return r, nil
}

// Run follows the metadata until ctx is done: every change, and every
// ResyncInterval, brings each workspace's rules managers up to date. Then it stops
// them.
func (r *Ruler) Run(ctx context.Context) error {
	if !r.cfg.Enabled {
		<-ctx.Done()
		return nil
	}
	r.Sync(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		periodic.Every(ctx, r.cfg.ResyncInterval, func(ctx context.Context) { r.Sync(ctx) })
	}()
	for {
		select {
		case <-ctx.Done():
			<-done
			r.stopAll()
			return nil
		case <-r.changes:
			r.Sync(ctx)
		case <-r.owners:
			r.Sync(ctx)
		}
	}
}

// active reports whether a namespace's rules are evaluated.
func active(ns *meta.RuleGroupsNamespace) bool {
	switch ns.Status {
	case meta.StatusActive, meta.StatusCreating, meta.StatusUpdating, meta.StatusUpdateFailed:
		return true
	}
	return false
}

// HasRules reports whether a workspace has rules to evaluate: it is active and has a
// rule groups namespace in force.
func HasRules(ws meta.Workspace) bool {
	if ws.Status != meta.StatusActive && ws.Status != meta.StatusUpdating {
		return false
	}
	for _, ns := range ws.RuleGroupsNamespaces {
		if active(ns) {
			return true
		}
	}
	return false
}

// RuleCount returns how many rules the workspace's namespaces in force hold: what
// evaluating them costs, by which the processes of a cluster share the workspaces. A
// namespace that does not decode counts none (it was checked when it was written).
func RuleCount(ws meta.Workspace) int {
	n := 0
	for _, ns := range ws.RuleGroupsNamespaces {
		if !active(ns) {
			continue
		}
		var rgs rulefmt.RuleGroups
		if err := yaml.Unmarshal(ns.Data, &rgs); err != nil {
			continue
		}
		for _, g := range rgs.Groups {
			n += len(g.Rules)
		}
	}
	return n
}

// identifier is the "file name" of a namespace's groups.
func identifier(workspace, namespace string) string { return workspace + "/" + namespace }

// Sync brings every workspace's rules manager up to date with the metadata: creates,
// reloads (a namespace added, changed or removed) and stops them; in a cluster only
// those of the workspaces this process owns run. Tests call it to
// apply a change at once. Reloading a manager waits for its groups' evaluations in
// progress; the API keeps answering meanwhile.
func (r *Ruler) Sync(ctx context.Context) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if r.onSync != nil {
		defer r.onSync()
	}
	want := map[string]map[string]string{} // workspace -> identifier -> digest
	for _, ws := range r.deps.Store.ListWorkspaces() {
		if ws.Status != meta.StatusActive && ws.Status != meta.StatusUpdating {
			continue
		}
		if !HasRules(ws) || (r.deps.Owners != nil && !r.deps.Owners.Owns(ws.ID)) {
			continue // nothing to evaluate, or another process evaluates it
		}
		for name, ns := range ws.RuleGroupsNamespaces {
			if !active(ns) {
				continue
			}
			if want[ws.ID] == nil {
				want[ws.ID] = map[string]string{}
			}
			want[ws.ID][identifier(ws.ID, name)] = digest(ns.Data)
		}
	}
	var stop, update []*tenant
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	for id, t := range r.tenants {
		if _, ok := want[id]; !ok {
			delete(r.tenants, id)
			stop = append(stop, t)
		}
	}
	for id, files := range want {
		t := r.tenants[id]
		if t != nil && maps.Equal(t.digests, files) {
			continue
		}
		if t == nil {
			t = r.newTenant(ctx, id)
			r.tenants[id] = t
		}
		update = append(update, t)
	}
	r.mu.Unlock()

	for _, t := range stop {
		r.stop(t)
	}
	for _, t := range update {
		files := want[t.id]
		ids := slices.Sorted(maps.Keys(files))
		if err := t.mgr.Update(r.cfg.EvaluationInterval, ids, labels.EmptyLabels(), r.externalURL(t.id), r.iterate); err != nil {
			// The manager keeps the previous rules. The same content would fail again:
			// it is not retried until it changes.
			r.m.syncs.WithLabelValues("failure").Inc()
			r.logger.Error("loading rules; keeping the previous ones", "workspace", t.id, "err", err)
			t.digests = files
			continue
		}
		r.m.syncs.WithLabelValues("success").Inc()
		t.digests = files
		r.logger.Info("rules loaded", "workspace", t.id, "namespaces", len(ids))
	}
}

func (r *Ruler) externalURL(workspace string) string {
	return strings.TrimSuffix(r.deps.ExternalURL, "/") + "/workspaces/" + workspace + "/"
}

// newTenant makes and runs the rules manager of workspace id.
func (r *Ruler) newTenant(ctx context.Context, id string) *tenant {
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// Rule failures also go to the workspace's log group, as AMP names them.
	logger := slog.New(vendedlogs.NewHandler(r.logger.With("workspace", id).Handler(), r.deps.Events, vendedlogs.HandlerOptions{
		Workspace: id, Component: vendedlogs.ComponentRuler,
		Fields: []string{"name", "group", "file"}, Rename: map[string]string{"file": "namespace"},
		Value: func(k, v string) string {
			if k == "file" {
				return strings.TrimPrefix(v, id+"/") // the namespace's identifier
			}
			return v
		},
		Skip: []string{"rule", "sample", "trace_id", "index"},
	}))
	ext, _ := url.Parse(r.externalURL(id))
	mgr := rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		ExternalURL:          ext,
		QueryFunc: func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
			return r.deps.Querier.RuleQuery(ctx, id, q, t)
		},
		NotifyFunc:      r.notifyFunc(id),
		Context:         tctx,
		AppendableV2:    appendable{r: r, workspace: id},
		Queryable:       workspaceQueryable{q: r.deps.Queryables, workspace: id},
		Logger:          logger,
		OutageTolerance: r.cfg.OutageTolerance,
		ForGracePeriod:  r.cfg.ForGracePeriod,
		ResendDelay:     r.cfg.ResendDelay,
		GroupLoader:     loader{store: r.deps.Store, parser: r.parser, logger: logger},
		Metrics:         r.metrics,
		Parser:          r.parser,
		// A namespace added later restores its `for` state too.
		RestoreNewRuleGroups: true,
	})
	t := &tenant{id: id, mgr: mgr, cancel: cancel}
	go mgr.Run()
	return t
}

// stop stops a workspace's rules manager, already out of the tenants: its groups
// first (which deletes their metric series), then the manager.
func (r *Ruler) stop(t *tenant) {
	_ = t.mgr.Update(r.cfg.EvaluationInterval, nil, labels.EmptyLabels(), "", nil)
	t.mgr.Stop()
	t.cancel()
	r.logger.Info("rules stopped", "workspace", t.id)
}

func (r *Ruler) stopAll() {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	r.closed = true
	all := slices.Collect(maps.Values(r.tenants))
	clear(r.tenants)
	r.mu.Unlock()
	for _, t := range all {
		r.stop(t)
	}
}

// DeleteWorkspace stops the rules of a workspace being deleted at once (the metadata
// would tell soon too).
func (r *Ruler) DeleteWorkspace(id string) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	t := r.tenants[id]
	delete(r.tenants, id)
	r.mu.Unlock()
	if t != nil {
		r.stop(t)
	}
}

// groups returns a workspace's rule groups, nil when it has none running.
func (r *Ruler) groups(workspace string) []*rules.Group {
	r.mu.Lock()
	t := r.tenants[workspace]
	r.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.mgr.RuleGroups()
}

// loader gives the rules manager a namespace's rule file from the metadata: the
// identifier "<workspace>/<namespace>" stands for a file name.
type loader struct {
	store  Store
	parser parser.Parser
	logger *slog.Logger
}

func (l loader) Load(identifier string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	ws, ns, ok := strings.Cut(identifier, "/")
	if !ok {
		return nil, []error{fmt.Errorf("%s: not a workspace/namespace", identifier)}
	}
	w, ok := l.store.PeekWorkspace(ws)
	if !ok {
		return nil, []error{fmt.Errorf("%s: workspace not found", identifier)}
	}
	n, ok := w.RuleGroupsNamespaces[ns]
	if !ok {
		return nil, []error{fmt.Errorf("%s: namespace not found", identifier)}
	}
	groups, errs := rulefmt.Parse(n.Data, ignoreUnknownFields, scheme, l.parser, l.logger)
	for i := range errs {
		errs[i] = fmt.Errorf("%s: %w", identifier, errs[i])
	}
	return groups, errs
}

func (l loader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// workspaceQueryable binds Queryables to one workspace.
type workspaceQueryable struct {
	q         Queryables
	workspace string
}

func (w workspaceQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return w.q.Querier(context.Background(), w.workspace, mint, maxt)
}

// digest identifies a namespace's content, to tell which workspaces need a reload.
func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// appendable buffers a group's samples of one rule evaluation and hands them to the
// Writer on Commit: one write per rule, as Prometheus commits one appender per rule.
type appendable struct {
	r         *Ruler
	workspace string
}

func (a appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &appender{ctx: ctx, a: a}
}

type appender struct {
	ctx     context.Context
	a       appendable
	samples []Sample
}

func (ap *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	ap.samples = append(ap.samples, Sample{Labels: ls, T: t, F: v, H: h, FH: fh})
	// Refs are not used by the rules manager; a non-zero one marks success.
	return storage.SeriesRef(len(ap.samples)), nil
}

func (ap *appender) Commit() error {
	if len(ap.samples) == 0 {
		return nil
	}
	err := ap.a.r.deps.Writer.WriteRuleSamples(ap.ctx, ap.a.workspace, ap.samples)
	ap.samples = nil
	if err != nil {
		ap.a.r.m.writeErrors.WithLabelValues(ap.a.workspace).Inc()
		return fmt.Errorf("storing the rule's samples: %w", err)
	}
	return nil
}

func (ap *appender) Rollback() error {
	ap.samples = nil
	return nil
}

// notifyFunc hands a workspace's alerts to its Alertmanager, converted as Prometheus
// converts them (rules.SendAlerts).
func (r *Ruler) notifyFunc(workspace string) rules.NotifyFunc {
	ext := strings.TrimSuffix(r.externalURL(workspace), "/")
	return func(ctx context.Context, expr string, alerts ...*rules.Alert) {
		// Groups notify concurrently: a sender per call.
		rules.SendAlerts(&sender{ctx: ctx, r: r, workspace: workspace}, ext)(ctx, expr, alerts...)
	}
}

type sender struct {
	ctx       context.Context
	r         *Ruler
	workspace string
}

func (s *sender) Send(alerts ...*notifier.Alert) {
	err := s.r.deps.Alerts.SendAlerts(s.ctx, s.workspace, alerts)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoAlertmanager):
		// Common and harmless (rules without alerting): counted, not logged loudly.
		s.r.m.sendErrors.WithLabelValues(s.workspace, "no_alertmanager").Add(float64(len(alerts)))
		s.r.logger.Debug("alerts dropped", "workspace", s.workspace, "alerts", len(alerts), "err", err)
	default:
		s.r.m.sendErrors.WithLabelValues(s.workspace, "refused").Add(float64(len(alerts)))
		s.r.logger.Warn("sending alerts", "workspace", s.workspace, "alerts", len(alerts), "err", err)
	}
}
