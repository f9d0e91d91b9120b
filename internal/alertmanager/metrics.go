package alertmanager

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"
)

// metrics are the MultiTenant's own metrics, across workspaces.
type metrics struct {
	workspaces   prometheus.GaugeFunc
	loadFailures prometheus.Counter
	persists     *prometheus.CounterVec
	syncs        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, running func() int) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		workspaces: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_alertmanager_workspaces",
			Help: "Workspaces whose Alertmanager runs in this process.",
		}, func() float64 { return float64(running()) }),
		loadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_alertmanager_definition_load_failures_total",
			Help: "Alert manager definitions that failed to load; the workspace keeps its previous configuration (the log names the workspace and the error).",
		}),
		persists: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_alertmanager_state_persists_total",
			Help: "Writes of a workspace's silences or notification log to the bucket, by state and outcome.",
		}, []string{"state", "outcome"}),
		syncs: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_alertmanager_syncs_total",
			Help: "Reconciliations of the running Alertmanagers with the workspaces' definitions.",
		}),
	}
	for _, s := range []string{stateSilences, stateNflog} {
		for _, o := range []string{"success", "failure"} {
			m.persists.WithLabelValues(s, o)
		}
	}
	return m
}

// tenantRegistries exposes the metrics of every workspace's Alertmanager, each kept in a
// registry of its own (the library registers its metrics per instance, so two instances
// cannot share one), as one collector: a metric "x" of workspace w is exported as
// "strata_x" with the label workspace="w". Cortex's tenant registries are the model;
// unlike Cortex nothing is summed, so per-workspace series are kept as they are.
//
// It is an unchecked collector (Describe sends nothing): the set of metrics changes as
// workspaces come and go.
type tenantRegistries struct {
	mu   sync.RWMutex // guards regs
	regs map[string]*prometheus.Registry
}

func newTenantRegistries() *tenantRegistries {
	return &tenantRegistries{regs: map[string]*prometheus.Registry{}}
}

func (c *tenantRegistries) add(workspace string, reg *prometheus.Registry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.regs[workspace] = reg
}

func (c *tenantRegistries) remove(workspace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.regs, workspace)
}

// Describe implements prometheus.Collector.
func (c *tenantRegistries) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *tenantRegistries) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	workspaces := make([]string, 0, len(c.regs))
	regs := make([]*prometheus.Registry, 0, len(c.regs))
	for ws := range c.regs {
		workspaces = append(workspaces, ws)
	}
	slices.Sort(workspaces)
	for _, ws := range workspaces {
		regs = append(regs, c.regs[ws])
	}
	c.mu.RUnlock()

	descs := map[string]*prometheus.Desc{}
	for i, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			// A registry built from the library's own collectors; gather what it could.
			ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("strata_alertmanager_tenant_metrics_error", "Error gathering a workspace's Alertmanager metrics.", nil, nil), err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if pm := convert(descs, workspaces[i], mf, m); pm != nil {
					ch <- pm
				}
			}
		}
	}
}

// convert makes a const metric of m with the workspace label added.
func convert(descs map[string]*prometheus.Desc, workspace string, mf *dto.MetricFamily, m *dto.Metric) prometheus.Metric {
	names := make([]string, 0, len(m.GetLabel())+1)
	values := make([]string, 0, len(m.GetLabel())+1)
	names = append(names, "workspace")
	values = append(values, workspace)
	for _, lp := range m.GetLabel() {
		names = append(names, lp.GetName())
		values = append(values, lp.GetValue())
	}
	name := "strata_" + mf.GetName()
	key := name + "\xff" + strings.Join(names, "\xff")
	desc, ok := descs[key]
	if !ok {
		desc = prometheus.NewDesc(name, mf.GetHelp(), names, nil)
		descs[key] = desc
	}
	var (
		pm  prometheus.Metric
		err error
	)
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		pm, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
	case dto.MetricType_GAUGE:
		pm, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
	case dto.MetricType_UNTYPED:
		pm, err = prometheus.NewConstMetric(desc, prometheus.UntypedValue, m.GetUntyped().GetValue(), values...)
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		q := make(map[float64]float64, len(s.GetQuantile()))
		for _, v := range s.GetQuantile() {
			q[v.GetQuantile()] = v.GetValue()
		}
		pm, err = prometheus.NewConstSummary(desc, s.GetSampleCount(), s.GetSampleSum(), q, values...)
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		// The classic buckets; native buckets, where a histogram has both, are dropped.
		h := m.GetHistogram()
		b := make(map[float64]uint64, len(h.GetBucket()))
		for _, v := range h.GetBucket() {
			b[v.GetUpperBound()] = v.GetCumulativeCount()
		}
		pm, err = prometheus.NewConstHistogram(desc, h.GetSampleCount(), h.GetSampleSum(), b, values...)
	default:
		return nil
	}
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return pm
}
