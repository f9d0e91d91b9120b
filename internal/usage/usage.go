// Package usage records what each workspace ingests, discards and is throttled for, in the
// shape of AMP's vended usage metrics: every series has a workspace label. The distributor
// and the ingester write to one Metrics; /metrics exposes it, and the query issue makes the
// same figures queryable with PromQL.
package usage

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reason is why samples were discarded. Names follow AMP's (Cortex's) discard reasons.
type Reason uint8

// Discard reasons.
const (
	MissingMetricName Reason = iota
	MetricNameInvalid
	LabelInvalid
	DuplicateLabelNames
	MaxLabelNamesPerSeries
	LabelNameTooLong
	LabelValueTooLong
	GreaterThanMaxSampleAge
	TooFarInFuture
	SampleOutOfOrder
	SampleTooOld
	NewValueForTimestamp
	InvalidNativeHistogram
	PerUserSeriesLimit
	PerMetricSeriesLimit
	PerLabelSetSeriesLimit
	RateLimited
	HAClusterLimit
	HANonElectedReplica
	numReasons
)

var reasonNames = [numReasons]string{
	MissingMetricName:       "missing_metric_name",
	MetricNameInvalid:       "metric_name_invalid",
	LabelInvalid:            "label_invalid",
	DuplicateLabelNames:     "duplicate_label_names",
	MaxLabelNamesPerSeries:  "max_label_names_per_series",
	LabelNameTooLong:        "label_name_too_long",
	LabelValueTooLong:       "label_value_too_long",
	GreaterThanMaxSampleAge: "greater_than_max_sample_age",
	TooFarInFuture:          "too_far_in_future",
	SampleOutOfOrder:        "sample-out-of-order",
	SampleTooOld:            "sample-too-old",
	NewValueForTimestamp:    "new-value-for-timestamp",
	InvalidNativeHistogram:  "invalid_native_histogram",
	PerUserSeriesLimit:      "per_user_series_limit",
	PerMetricSeriesLimit:    "per_metric_series_limit",
	PerLabelSetSeriesLimit:  "per_labelset_series_limit",
	RateLimited:             "rate_limited",
	HAClusterLimit:          "too_many_ha_clusters",
	HANonElectedReplica:     "ha_non_elected_replica",
}

func (r Reason) String() string { return reasonNames[r] }

// MetadataReason is why metric metadata was not stored. Names follow Cortex's
// cortex_discarded_metadata_total reasons. Metadata problems never discard samples.
type MetadataReason uint8

// Metadata discard reasons.
const (
	// MetadataMissingMetricName: remote write 1.0 metadata without a metric family name.
	MetadataMissingMetricName MetadataReason = iota
	// MetadataMetricNameInvalid: a family name that is not a valid metric name.
	MetadataMetricNameInvalid
	// MetadataMetricNameTooLong, MetadataHelpTooLong, MetadataUnitTooLong: longer than
	// max_metadata_length.
	MetadataMetricNameTooLong
	MetadataHelpTooLong
	MetadataUnitTooLong
	// MetadataTypeInvalid: a metric type outside the protocol's enum.
	MetadataTypeInvalid
	// PerUserMetadataLimit: a new metric family beyond max_metrics_with_metadata.
	PerUserMetadataLimit
	numMetadataReasons
)

var metadataReasonNames = [numMetadataReasons]string{
	MetadataMissingMetricName: "missing_metric_name",
	MetadataMetricNameInvalid: "metric_name_invalid",
	MetadataMetricNameTooLong: "metric_name_too_long",
	MetadataHelpTooLong:       "help_too_long",
	MetadataUnitTooLong:       "unit_too_long",
	MetadataTypeInvalid:       "metadata_type_invalid",
	PerUserMetadataLimit:      "per_user_metadata_limit",
}

func (r MetadataReason) String() string { return metadataReasonNames[r] }

// Quotas named in throttled-request counts.
const (
	QuotaIngestionRate = "ingestion_rate"
	QuotaActiveSeries  = "active_series"
	QuotaSeriesMetric  = "active_series_per_metric"
	QuotaSeriesLabels  = "active_series_per_label_set"
)

// Metrics are the per-workspace usage counters. Safe for concurrent use.
type Metrics struct {
	Samples    *prometheus.CounterVec
	Histograms *prometheus.CounterVec
	Exemplars  *prometheus.CounterVec
	Discarded  *prometheus.CounterVec
	// DiscardedMetadata counts metadata entries not stored: remote write 1.0's
	// request-level entries, and remote write 2.0's per series.
	DiscardedMetadata *prometheus.CounterVec
	Throttled         *prometheus.CounterVec
	Rate              *prometheus.GaugeVec

	mu       sync.Mutex // guards the fields below
	counts   map[string]*atomic.Int64
	lastRate time.Time
}

// New registers the usage metrics with reg.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Samples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_ingested_samples_total",
			Help: "Float samples stored, per workspace.",
		}, []string{"workspace"}),
		Histograms: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_ingested_histograms_total",
			Help: "Native histogram samples stored, per workspace.",
		}, []string{"workspace"}),
		Exemplars: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_ingested_exemplars_total",
			Help: "Exemplars stored, per workspace.",
		}, []string{"workspace"}),
		Discarded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_discarded_samples_total",
			Help: "Samples refused or dropped, per workspace and reason.",
		}, []string{"workspace", "reason"}),
		DiscardedMetadata: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_discarded_metadata_total",
			Help: "Metric metadata entries refused or dropped, per workspace and reason; the samples they came with are not affected.",
		}, []string{"workspace", "reason"}),
		Throttled: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_throttled_requests_total",
			Help: "Remote write requests answered 429, per workspace and the quota that was hit.",
		}, []string{"workspace", "quota"}),
		Rate: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_workspace_ingestion_rate_samples_per_second",
			Help: "Samples and histograms stored per second, per workspace, over the last update interval (AMP's IngestionRate).",
		}, []string{"workspace"}),
		counts: map[string]*atomic.Int64{},
	}
}

// Ingested counts what a request stored for workspace.
func (m *Metrics) Ingested(workspace string, samples, histograms, exemplars int) {
	m.Samples.WithLabelValues(workspace).Add(float64(samples))
	if histograms > 0 {
		m.Histograms.WithLabelValues(workspace).Add(float64(histograms))
	}
	if exemplars > 0 {
		m.Exemplars.WithLabelValues(workspace).Add(float64(exemplars))
	}
	m.mu.Lock()
	c, ok := m.counts[workspace]
	if !ok {
		c = new(atomic.Int64)
		m.counts[workspace] = c
	}
	m.mu.Unlock()
	c.Add(int64(samples + histograms))
}

// UpdateRates sets the ingestion-rate gauges from what was stored since the last call.
func (m *Metrics) UpdateRates(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	elapsed := now.Sub(m.lastRate).Seconds()
	first := m.lastRate.IsZero()
	m.lastRate = now
	for ws, c := range m.counts {
		n := c.Swap(0)
		if !first && elapsed > 0 {
			m.Rate.WithLabelValues(ws).Set(float64(n) / elapsed)
		}
	}
}

// Discard counts n samples of workspace discarded for reason.
func (m *Metrics) Discard(workspace string, reason Reason, n int) {
	if n > 0 {
		m.Discarded.WithLabelValues(workspace, reason.String()).Add(float64(n))
	}
}

// DiscardMetadata counts n metadata entries of workspace not stored for reason.
func (m *Metrics) DiscardMetadata(workspace string, reason MetadataReason, n int) {
	if n > 0 {
		m.DiscardedMetadata.WithLabelValues(workspace, reason.String()).Add(float64(n))
	}
}

// DeleteWorkspace forgets every series of workspace.
func (m *Metrics) DeleteWorkspace(workspace string) {
	l := prometheus.Labels{"workspace": workspace}
	for _, v := range []*prometheus.CounterVec{m.Samples, m.Histograms, m.Exemplars, m.Discarded, m.DiscardedMetadata, m.Throttled} {
		v.DeletePartialMatch(l)
	}
	m.Rate.DeletePartialMatch(l)
	m.mu.Lock()
	delete(m.counts, workspace)
	m.mu.Unlock()
}
