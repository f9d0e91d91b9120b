package alertmanager

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	apiv2 "github.com/prometheus/alertmanager/api/v2"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/labelset"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Intervals of the library's background work, as the Alertmanager binary's defaults.
const (
	// alertGCInterval is how often resolved alerts are dropped from the alert store
	// (--alerts.gc-interval); until then they count against the active alerts quota.
	alertGCInterval = 30 * time.Minute
	// dispatchMaintenanceInterval is how often empty aggregation groups are removed
	// (--dispatch.maintenance-interval).
	dispatchMaintenanceInterval = 30 * time.Second
	// silencesBackstop multiplies the silences quota into the most silences, expired
	// ones (kept for the retention) included, the library's own limit allows: the quota
	// counts active and pending silences only (api.go), and this bounds the memory of a
	// workspace that creates and expires silences in a loop.
	silencesBackstop = 10
)

// tenant is one workspace's Alertmanager: the long-lived state (alerts, silences,
// notification log, API) built once, and the configuration-scoped parts (routes,
// receivers, pipeline, inhibitor, dispatcher) rebuilt by applyConfig, as the library's
// own app.reloader does for a single Alertmanager.
type tenant struct {
	id     string
	logger *slog.Logger
	reg    *prometheus.Registry
	extURL *url.URL
	limits Limits
	// maxSends is Config.MaxConcurrentNotifications.
	maxSends int
	// firewall is Config.ReceiversFirewall; httpOpts the receivers' HTTP client options
	// (its dialer).
	firewall FirewallConfig
	httpOpts []commoncfg.HTTPClientOption
	// flights counts the flushes in progress, of every configuration applied.
	flights flights

	alerts          *limitedAlerts
	mem             *mem.Alerts
	silences        *silence.Silences
	silencer        *silence.Silencer
	nflog           *nflog.Log
	api             *apiv2.API
	pipelineBuilder *notify.PipelineBuilder
	dispatchMetrics *dispatch.DispatcherMetrics
	panics          *prometheus.CounterVec
	received        *prometheus.CounterVec
	configOK        prometheus.Gauge
	configTime      prometheus.Gauge

	// dispatcher and inhibitor are the live ones; the API reads them without locks.
	dispatcher atomic.Pointer[dispatch.Dispatcher]
	inhibitor  atomic.Pointer[inhibit.Inhibitor]
	// resolveTO is the definition's global.resolve_timeout, for SendAlerts.
	resolveTO atomic.Int64

	mu sync.Mutex // guards the fields below; serializes applyConfig and stop
	// hash is the digest of the definition in force; failedHash of the last one that
	// failed to load, so that it is not tried again until it changes.
	hash, failedHash string
	stopped          bool

	// silenceMu serializes the creation of silences, so the quota check and the
	// creation are one step (api.go).
	silenceMu sync.Mutex

	persistMu sync.Mutex // serializes persist; guards the fields below
	// persisted is the digest of each state last written to the bucket.
	persisted map[string]string
	// retired is set once the tenant is stopped and its last state written (or its
	// workspace deleted): a persist that started before must not write it again.
	retired bool
}

// recorder discards the library's event records: Strata does not configure its event
// recorder.
var recorder = eventrecorder.NopRecorder()

var flags featurecontrol.Flagger = featurecontrol.NoopFlags{}

// newTenant builds a workspace's Alertmanager with the silences and notification log
// merged from states (each a snapshot, as persist writes them; the newest entry wins).
// It dispatches nothing until applyConfig.
func newTenant(id string, cfg *Config, extURL *url.URL, limits Limits, logger *slog.Logger, states map[string][][]byte) (*tenant, error) {
	reg := prometheus.NewRegistry()
	t := &tenant{
		id:        id,
		logger:    logger,
		reg:       reg,
		extURL:    extURL,
		limits:    limits,
		maxSends:  cfg.MaxConcurrentNotifications,
		firewall:  cfg.ReceiversFirewall,
		httpOpts:  cfg.ReceiversFirewall.httpOptions(),
		persisted: map[string]string{},
		panics: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "alertmanager_notifier_panics_total",
			Help: "Notifications that panicked (recovered and counted as failed).",
		}, []string{"integration"}),
		received: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "alertmanager_inprocess_alerts_received_total",
			Help: "Alerts received in process from the ruler (SendAlerts), by status; the API's are in alertmanager_alerts_received_total.",
		}, []string{"status"}),
		configOK: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "alertmanager_config_last_apply_successful",
			Help: "Whether the last alert manager definition seen loaded (1) or failed and the previous one stays in force (0).",
		}),
		configTime: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "alertmanager_config_last_apply_success_timestamp_seconds",
			Help: "When a definition was last applied.",
		}),
	}
	var err error
	t.silences, err = silence.New(silence.Options{
		Retention: cfg.Retention,
		Limits: silence.Limits{MaxSilences: func() int {
			return silencesBackstop * limits.AlertmanagerMaxSilences(id)
		}},
		Logger:        logger.With("component", "silences"),
		Metrics:       reg,
		EventRecorder: recorder,
	})
	if err != nil {
		return nil, fmt.Errorf("creating silences: %w", err)
	}
	for _, b := range states[stateSilences] {
		if err := t.silences.Merge(b); err != nil {
			logger.Warn("loading silences", "err", err)
		}
	}
	t.nflog, err = nflog.New(nflog.Options{
		Retention: cfg.Retention,
		Logger:    logger.With("component", "nflog"),
		Metrics:   reg,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the notification log: %w", err)
	}
	for _, b := range states[stateNflog] {
		if err := t.nflog.Merge(b); err != nil {
			logger.Warn("loading the notification log", "err", err)
		}
	}
	t.silencer = silence.NewSilencer(t.silences, logger, recorder)
	limiter := newAlertsLimiter(id, limits, reg)
	t.mem, err = mem.NewAlerts(context.Background(), alertGCInterval, 0, callbacks{limiter, t.silencer}, logger, recorder, reg, flags)
	if err != nil {
		return nil, fmt.Errorf("creating the alert store: %w", err)
	}
	t.alerts = &limitedAlerts{Alerts: t.mem, limiter: limiter}
	t.api, err = apiv2.NewAPI(t.alerts, t.groups, t.silences, nil, logger.With("component", "api"), reg)
	if err != nil {
		t.mem.Close()
		return nil, fmt.Errorf("creating the API: %w", err)
	}
	t.pipelineBuilder = notify.NewPipelineBuilder(reg, flags, recorder)
	t.dispatchMetrics = dispatch.NewDispatcherMetrics(false, reg, flags)
	return t, nil
}

// handler serves the Alertmanager API v2 with paths relative to the workspace's
// Alertmanager (/api/v2/...).
func (t *tenant) handler() http.Handler { return t.api.Handler }

// groups is the API's GroupFunc: the live dispatcher's aggregation groups.
func (t *tenant) groups(ctx context.Context, routeFilter func(*dispatch.Route) bool, alertFilter dispatch.AlertFilter) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
	d := t.dispatcher.Load()
	if d == nil {
		return dispatch.AlertGroups{}, map[model.Fingerprint][]string{}, nil
	}
	return d.Groups(ctx, routeFilter, alertFilter)
}

// applyConfig puts def in force, keeping alerts, silences and the notification log. All
// that can fail happens before the running configuration is touched, so on error the
// previous one stays in force.
func (t *tenant) applyConfig(def *Definition, hash string) error {
	conf := def.Config
	tmpl, err := def.template(t.extURL)
	if err != nil {
		return err
	}
	routes := dispatch.NewRoute(conf.Route, nil)
	used := map[string]bool{}
	routes.Walk(func(r *dispatch.Route) { used[r.RouteOpts.Receiver] = true })
	plain, err := template.New()
	if err != nil {
		return fmt.Errorf("creating a template: %w", err)
	}
	plain.ExternalURL = tmpl.ExternalURL
	receivers := make(map[string][]notify.Integration, len(used))
	for _, rcv := range conf.Receivers {
		if !used[rcv.Name] {
			continue
		}
		if err := t.firewall.admits(rcv); err != nil {
			return fmt.Errorf("receiver %q: %w", rcv.Name, err)
		}
		integrations, err := buildIntegrations(rcv, tmpl, plain, t.logger.With("receiver", rcv.Name), t.httpOpts)
		if err != nil {
			return fmt.Errorf("receiver %q: %w", rcv.Name, err)
		}
		for i := range integrations {
			sn := newSafeNotifier(integrations[i], t, rcv.Name, t.maxSends)
			integrations[i] = notify.NewIntegration(sn, sn, sn.inner.Name(), sn.inner.Index(), rcv.Name)
		}
		receivers[rcv.Name] = integrations
	}
	intervals := make(map[string][]timeinterval.TimeInterval, len(conf.MuteTimeIntervals)+len(conf.TimeIntervals))
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	intervener := timeinterval.NewIntervener(intervals)

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return nil
	}
	// Nothing below fails. As app.reloader: stop the old inhibitor and dispatcher, start
	// the new inhibitor and wait for it to load the alerts before the dispatcher starts,
	// so that no inhibited alert is notified; publish each once loaded.
	t.inhibitor.Load().Stop()
	t.dispatcher.Load().Stop()
	inhibitor := inhibit.NewInhibitor(t.alerts, conf.InhibitRules, t.logger.With("component", "inhibitor"), recorder)
	pipeline := t.pipelineBuilder.New(receivers, func() time.Duration { return 0 }, inhibitor, t.silencer, intervener, t.nflog, nil)
	t.api.Update(conf, func(ctx context.Context, ls labelset.LabelSet) {
		if ih := t.inhibitor.Load(); ih != nil {
			ih.Mutes(ctx, ls)
		}
		t.silencer.Mutes(ctx, ls)
	})
	dispatcher := dispatch.NewDispatcher(t.alerts, routes, trackedStage{pipeline, &t.flights}, intervener, notifyTimeout, dispatchMaintenanceInterval,
		dispatcherLimits{t.id, t.limits}, t.logger, recorder, t.dispatchMetrics, tmpl)
	go inhibitor.Run()
	inhibitor.WaitForLoading()
	t.inhibitor.Store(inhibitor)
	go dispatcher.Run(time.Now())
	dispatcher.WaitForLoading()
	t.dispatcher.Store(dispatcher)
	t.resolveTO.Store(int64(conf.Global.ResolveTimeout))
	t.hash, t.failedHash = hash, ""
	t.configOK.Set(1)
	t.configTime.SetToCurrentTime()
	return nil
}

// buildIntegrations builds a receiver's integrations as the library does, except that
// webhooks whose URL is not a template get plain, a template set without the default
// templates. The webhook notifier templates its URL for every notification, and the
// library clones the whole template set to do so: for a literal URL, the same string
// comes out, but the clone of the ~100 default templates was 12% of the CPU of a burst
// of 10,000 notifications (and more of the garbage collector's).
func buildIntegrations(rcv config.Receiver, tmpl, plain *template.Template, logger *slog.Logger, httpOpts []commoncfg.HTTPClientOption) ([]notify.Integration, error) {
	if !plainWebhooks(rcv.WebhookConfigs) {
		return receiver.BuildReceiverIntegrations(rcv, tmpl, logger, httpOpts...)
	}
	// Integrations are numbered within their kind, so splitting by kind keeps every
	// index, and with it the notification log's keys.
	hooks := config.Receiver{Name: rcv.Name, WebhookConfigs: rcv.WebhookConfigs}
	rest := rcv
	rest.WebhookConfigs = nil
	out, err := plainWebhookIntegrations(hooks, plain, logger, httpOpts)
	if err != nil {
		return nil, err
	}
	others, err := receiver.BuildReceiverIntegrations(rest, tmpl, logger, httpOpts...)
	if err != nil {
		return nil, err
	}
	return append(out, others...), nil
}

// plainWebhooks says whether every webhook of a receiver (at least one) uses no template:
// a literal URL, neither a URL file (its content may be one) nor a custom payload.
func plainWebhooks(hooks []*amwebhook.WebhookConfig) bool {
	for _, h := range hooks {
		if h.URLFile != "" || h.Payload != nil || strings.Contains(string(h.URL), "{{") {
			return false
		}
	}
	return len(hooks) > 0
}

// resolveTimeout is the definition's global.resolve_timeout.
func (t *tenant) resolveTimeout() time.Duration { return time.Duration(t.resolveTO.Load()) }

// notifyTimeout bounds a flush of an aggregation group, retries included: its group
// interval, and at least notify.MinTimeout (as the Alertmanager binary without a cluster).
func notifyTimeout(d time.Duration) time.Duration {
	return max(d, notify.MinTimeout)
}

// stop stops dispatching and the alert store's collection. The silences and the
// notification log stay readable for a last persist.
func (t *tenant) stop(ctx context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	t.inhibitor.Load().Stop()
	t.dispatcher.Load().Stop()
	// The flushes in progress were cancelled; wait for them to end, so the notification
	// log they write is in the last persist. At most stopFlushTimeout, and within ctx,
	// which Close shares between all its tenants.
	ctx, cancel := context.WithTimeout(ctx, stopFlushTimeout)
	defer cancel()
	if err := t.flights.wait(ctx); err != nil {
		t.logger.Warn("flushes still in progress at stop; a group they notified may be notified again after a restart", "err", err)
	}
	t.mem.Close()
}

// stopFlushTimeout bounds how long stopping a tenant waits for its cancelled flushes.
const stopFlushTimeout = 10 * time.Second

// dispatcherLimits gives the dispatcher its workspace's aggregation groups quota.
type dispatcherLimits struct {
	workspace string
	limits    Limits
}

func (l dispatcherLimits) MaxNumberOfAggregationGroups() int {
	return l.limits.AlertmanagerMaxAggregationGroups(l.workspace)
}

// callbacks chains the alert store's callbacks: the quota first (it may refuse), then the
// silencer (which forgets collected alerts), as the Alertmanager binary passes it.
type callbacks []mem.AlertStoreCallback

func (cs callbacks) PreStore(a *alert.Alert, existing bool) error {
	for _, c := range cs {
		if err := c.PreStore(a, existing); err != nil {
			return err
		}
	}
	return nil
}

func (cs callbacks) PostStore(a *alert.Alert, existing bool) {
	for _, c := range cs {
		c.PostStore(a, existing)
	}
}

func (cs callbacks) PostDelete(a *alert.Alert) {
	for _, c := range cs {
		c.PostDelete(a)
	}
}

func (cs callbacks) PostGC(fps model.Fingerprints) {
	for _, c := range cs {
		c.PostGC(fps)
	}
}

// flights counts the flushes in progress, so that stopping a tenant can wait for them:
// the library's Dispatcher.Stop cancels its aggregation groups without waiting for them,
// and a flush that notified must have written the notification log before its last
// persist, or the group is notified again after a restart.
type flights struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to zero while someone waits; nil otherwise
	// waiting, when set (tests), receives once wait starts to block.
	waiting chan struct{}
}

func (f *flights) start() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *flights) end() {
	f.mu.Lock()
	if f.n--; f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
	f.mu.Unlock()
}

// wait returns once no flush is in progress, or with ctx's error.
func (f *flights) wait(ctx context.Context) error {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	if f.waiting != nil {
		f.waiting <- struct{}{}
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trackedStage counts the flushes of the pipeline in progress (flights).
type trackedStage struct {
	inner   notify.Stage
	flights *flights
}

func (s trackedStage) Exec(ctx context.Context, l *slog.Logger, alerts ...*alert.Alert) (context.Context, []*alert.Alert, error) {
	s.flights.start()
	defer s.flights.end()
	return s.inner.Exec(ctx, l, alerts...)
}

// safeNotifier bounds the notifications of an integration in flight at once, and turns
// a panic of its notifier (its templates run inside it) into a failed, unrecoverable
// notification: it runs on the dispatcher's goroutines, where a panic would end the
// process and every workspace's Alertmanager with it.
//
// When thousands of groups flush together, notifying them a few at a time over reused
// connections takes half the CPU of starting them all, each on a new connection. The
// bound holds for one attempt, not for the retries' backoff in between, so a receiver
// that fails some notifications does not hold up the others; each integration has its
// own, so a slow one delays only its own.
type safeNotifier struct {
	inner    notify.Integration
	tenant   *tenant
	receiver string
	// slots holds a token per notification in flight. A full channel queues senders in
	// arrival order: the groups of a burst go about first come, first served.
	slots chan struct{}
}

// newSafeNotifier wraps inner, an integration of t's receiver, allowing it maxSends
// notifications in flight.
func newSafeNotifier(inner notify.Integration, t *tenant, receiver string, maxSends int) *safeNotifier {
	return &safeNotifier{inner: inner, tenant: t, receiver: receiver, slots: make(chan struct{}, maxSends)}
}

func (n *safeNotifier) Notify(ctx context.Context, alerts ...*alert.Alert) (v notify.NotifyVerdict) {
	select {
	case n.slots <- struct{}{}:
	case <-ctx.Done():
		// The flush timeout ended while the integration was busy with other groups; the
		// group's next flush tries again, as after a failed notification.
		return notify.Retry(0, fmt.Errorf("waiting for one of the %d notifications in flight of %s: %w", cap(n.slots), n.inner.String(), context.Cause(ctx)), notify.DefaultReason)
	}
	defer func() { <-n.slots }()
	defer func() {
		if r := recover(); r != nil {
			n.tenant.panics.WithLabelValues(n.inner.Name()).Inc()
			err := fmt.Errorf("notifier %s of receiver %q panicked: %v", n.inner.String(), n.receiver, r)
			n.tenant.logger.Error("notification panicked", "receiver", n.receiver, "integration", n.inner.String(), "err", err, "stack", string(debug.Stack()))
			v = notify.Unrecoverable(err, notify.ClientErrorReason)
		}
	}()
	return n.inner.Notify(ctx, alerts...)
}

func (n *safeNotifier) SendResolved() bool { return n.inner.SendResolved() }
