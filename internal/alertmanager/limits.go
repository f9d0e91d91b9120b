package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/provider"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
)

// AMP's quotas on a workspace's Alertmanager, the defaults of DefaultLimits.
const (
	DefaultMaxAlerts            = 1000
	DefaultMaxAlertBytes        = 20 << 20
	DefaultMaxSilences          = 1000
	DefaultMaxAggregationGroups = 1000
)

// Limits gives the run-time quotas of a workspace's Alertmanager. Each method is called
// whenever the quota is checked (for every alert stored, silence created, aggregation
// group created), so a reloadable implementation takes effect at once. Zero means no
// limit. Implementations must be safe for concurrent use.
type Limits interface {
	// AlertmanagerLimits returns the most active alerts the workspace's Alertmanager
	// holds and their largest total size in bytes (label and annotation names and
	// values). Alerts over either are refused: HTTP 429, ErrTooManyAlerts or
	// ErrAlertsTooBig from SendAlerts.
	AlertmanagerLimits(workspace string) (maxAlerts int, maxAlertBytes int)
	// AlertmanagerMaxSilences returns the most active and pending silences of the
	// workspace; creating one more is refused with HTTP 400.
	AlertmanagerMaxSilences(workspace string) int
	// AlertmanagerMaxAggregationGroups returns the most aggregation groups (one per
	// combination of group_by values and route) of the workspace's dispatcher; alerts
	// that would open another are not notified, and the dispatcher logs it.
	AlertmanagerMaxAggregationGroups(workspace string) int
}

// StaticLimits applies the same quotas to every workspace.
type StaticLimits struct {
	MaxAlerts            int
	MaxAlertBytes        int
	MaxSilences          int
	MaxAggregationGroups int
}

// DefaultLimits are AMP's quotas.
var DefaultLimits = StaticLimits{
	MaxAlerts:            DefaultMaxAlerts,
	MaxAlertBytes:        DefaultMaxAlertBytes,
	MaxSilences:          DefaultMaxSilences,
	MaxAggregationGroups: DefaultMaxAggregationGroups,
}

// AlertmanagerLimits implements Limits.
func (l StaticLimits) AlertmanagerLimits(string) (int, int) { return l.MaxAlerts, l.MaxAlertBytes }

// AlertmanagerMaxSilences implements Limits.
func (l StaticLimits) AlertmanagerMaxSilences(string) int { return l.MaxSilences }

// AlertmanagerMaxAggregationGroups implements Limits.
func (l StaticLimits) AlertmanagerMaxAggregationGroups(string) int { return l.MaxAggregationGroups }

// Errors of SendAlerts and of the alerts a POST refuses. Match them with errors.Is.
var (
	// ErrNoAlertmanager: the workspace does not exist or has no alert manager
	// definition that loads.
	ErrNoAlertmanager = errors.New("workspace has no alertmanager")
	// ErrTooManyAlerts: storing the alerts would exceed the workspace's active alerts
	// quota.
	ErrTooManyAlerts = errors.New("too many active alerts")
	// ErrAlertsTooBig: storing the alerts would exceed the quota on the total size of
	// the workspace's active alerts.
	ErrAlertsTooBig = errors.New("active alerts too big")
	// ErrInvalidAlert: an alert has no labels, bad label names or values, or ends
	// before it starts. The valid alerts of the same call are stored.
	ErrInvalidAlert = errors.New("invalid alert")
)

// QuotaError says which alerts a quota refused. It wraps ErrTooManyAlerts or
// ErrAlertsTooBig (the first quota hit).
type QuotaError struct {
	Workspace string
	// Refused of Total alerts were not stored.
	Refused, Total int
	// Limit is the quota's value (alerts, or bytes).
	Limit int
	kind  error
}

func (e *QuotaError) Error() string {
	what := fmt.Sprintf("the workspace's Alertmanager holds at most %d active alerts", e.Limit)
	if e.kind == ErrAlertsTooBig {
		what = fmt.Sprintf("the workspace's active alerts may take at most %d bytes of labels and annotations", e.Limit)
	}
	return fmt.Sprintf("workspace %s: %v: %s; %d of %d alerts refused", e.Workspace, e.kind, what, e.Refused, e.Total)
}

func (e *QuotaError) Unwrap() error { return e.kind }

// alertsLimiter counts a workspace's stored alerts and their size, and refuses those over
// the quotas. It is the mem provider's AlertStoreCallback, which the provider calls under
// its own lock for each alert stored and collected; Cortex's alertsLimiter is the model.
type alertsLimiter struct {
	workspace string
	limits    Limits
	refusedC  *prometheus.CounterVec

	mu      sync.Mutex // guards the fields below
	sizes   map[model.Fingerprint]int
	count   int
	bytes   int
	refused []error // during one Put (limitedAlerts serializes them)
}

func newAlertsLimiter(workspace string, limits Limits, reg prometheus.Registerer) *alertsLimiter {
	l := &alertsLimiter{
		workspace: workspace,
		limits:    limits,
		sizes:     map[model.Fingerprint]int{},
		refusedC: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "alertmanager_alerts_quota_refused_total",
			Help: "Alerts not stored because of a quota: active alerts (count) or their total size (size).",
		}, []string{"quota"}),
	}
	l.refusedC.WithLabelValues("count")
	l.refusedC.WithLabelValues("size")
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "alertmanager_alerts_quota_alerts",
		Help: "Alerts held by the Alertmanager, counted against the active alerts quota (resolved ones until collected).",
	}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(l.count)
	})
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "alertmanager_alerts_quota_bytes",
		Help: "Size of the labels and annotations of the alerts held, counted against the alert size quota.",
	}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(l.bytes)
	})
	return l
}

// alertSize is what an alert counts against the size quota: AMP's "alert size is
// dependent on labels and annotations".
func alertSize(a *alert.Alert) int {
	n := 0
	for k, v := range a.Labels {
		n += len(k) + len(v)
	}
	for k, v := range a.Annotations {
		n += len(k) + len(v)
	}
	return n
}

// PreStore implements mem.AlertStoreCallback.
func (l *alertsLimiter) PreStore(a *alert.Alert, existing bool) error {
	maxAlerts, maxBytes := l.limits.AlertmanagerLimits(l.workspace)
	size := alertSize(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !existing && maxAlerts > 0 && l.count+1 > maxAlerts {
		l.refusedC.WithLabelValues("count").Inc()
		err := &QuotaError{Workspace: l.workspace, Limit: maxAlerts, kind: ErrTooManyAlerts}
		l.refused = append(l.refused, err)
		return err
	}
	if existing {
		size -= l.sizes[a.Fingerprint()]
	}
	if maxBytes > 0 && size > 0 && l.bytes+size > maxBytes {
		l.refusedC.WithLabelValues("size").Inc()
		err := &QuotaError{Workspace: l.workspace, Limit: maxBytes, kind: ErrAlertsTooBig}
		l.refused = append(l.refused, err)
		return err
	}
	return nil
}

// PostStore implements mem.AlertStoreCallback.
func (l *alertsLimiter) PostStore(a *alert.Alert, existing bool) {
	size := alertSize(a)
	fp := a.Fingerprint()
	l.mu.Lock()
	defer l.mu.Unlock()
	if existing {
		l.bytes -= l.sizes[fp]
	} else {
		l.count++
	}
	l.sizes[fp] = size
	l.bytes += size
}

// PostDelete implements mem.AlertStoreCallback.
func (l *alertsLimiter) PostDelete(a *alert.Alert) {
	fp := a.Fingerprint()
	l.mu.Lock()
	defer l.mu.Unlock()
	if size, ok := l.sizes[fp]; ok {
		l.bytes -= size
		l.count--
		delete(l.sizes, fp)
	}
}

// PostGC implements mem.AlertStoreCallback.
func (l *alertsLimiter) PostGC(model.Fingerprints) {}

// takeRefused returns and forgets the refusals since the last call.
func (l *alertsLimiter) takeRefused() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.refused
	l.refused = nil
	return r
}

// limitedAlerts is the workspace's alert store as the API, SendAlerts, the dispatcher and
// the inhibitor see it. Put reports the alerts the quotas refused as a *QuotaError (the
// mem provider only logs them), and records it for the HTTP layer (see quotaCapture).
type limitedAlerts struct {
	provider.Alerts
	limiter *alertsLimiter

	putMu sync.Mutex // serializes Put, so the limiter's refusals belong to one call
}

// Put stores the alerts that fit the quotas. When some do not, it returns a *QuotaError
// after storing the others.
func (a *limitedAlerts) Put(ctx context.Context, alerts ...*alert.Alert) error {
	a.putMu.Lock()
	err := a.Alerts.Put(ctx, alerts...)
	refused := a.limiter.takeRefused()
	a.putMu.Unlock()
	if err != nil {
		return err
	}
	if len(refused) == 0 {
		return nil
	}
	qe := *refused[0].(*QuotaError)
	qe.Refused, qe.Total = len(refused), len(alerts)
	if c, ok := ctx.Value(quotaCaptureKey{}).(*quotaCapture); ok {
		c.set(&qe)
	}
	return &qe
}

// quotaCapture carries a quota refusal from Put, deep in the library's POST handler, back
// to the HTTP layer, which answers 429 instead of the library's 500.
type quotaCapture struct {
	mu  sync.Mutex
	err *QuotaError
}

type quotaCaptureKey struct{}

func (c *quotaCapture) set(err *QuotaError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

func (c *quotaCapture) get() *QuotaError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
