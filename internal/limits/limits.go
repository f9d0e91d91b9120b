// Package limits is the one place to read a per-workspace limit. Start from Overrides:
// For(workspace) returns the limits in force for a workspace — the server-wide defaults
// (flags under "limits.", AMP's published quotas) overlaid with the operator's runtime
// file, which is reloaded without a restart. Limits that AMP lets a workspace set itself
// (retention, limitsPerLabelSet) come from UpdateWorkspaceConfiguration via the metadata
// store and are read where they apply.
package limits

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits are the limits of one workspace. Zero means "no limit" for the caps, except where
// the field says otherwise.
type Limits struct {
	// IngestionRate is the sustained samples/s (samples, histograms and exemplars) per workspace.
	IngestionRate float64 `yaml:"ingestion_rate"`
	// IngestionBurstSize is how many samples a workspace may send at once above the rate.
	IngestionBurstSize int `yaml:"ingestion_burst_size"`
	// MaxActiveSeries caps series with a sample in the last ActiveSeriesWindow.
	MaxActiveSeries int `yaml:"max_active_series"`
	// MaxActiveSeriesPerMetric caps active series of one metric name.
	MaxActiveSeriesPerMetric int `yaml:"max_active_series_per_metric"`
	MaxLabelNamesPerSeries   int `yaml:"max_label_names_per_series"`
	MaxLabelNameLength       int `yaml:"max_label_name_length"`
	MaxLabelValueLength      int `yaml:"max_label_value_length"`
	// MaxSampleAge refuses samples older than now minus this (greater_than_max_sample_age).
	MaxSampleAge time.Duration `yaml:"max_sample_age"`
	// CreationGracePeriod refuses samples further than this in the future.
	CreationGracePeriod time.Duration `yaml:"creation_grace_period"`
	// OutOfOrderTimeWindow accepts samples this much older than a series' newest one.
	OutOfOrderTimeWindow time.Duration `yaml:"out_of_order_time_window"`
	// MaxHAClusters caps the HA clusters (replica groups) per workspace.
	MaxHAClusters int `yaml:"max_ha_clusters"`
	// MaxMetricsWithMetadata caps the metric families that keep metadata (type, help,
	// unit) per workspace: AMP's "Active metrics with metadata per workspace" quota
	// (20,000; not adjustable in AMP). Metadata of a new family beyond it is dropped and
	// counted, silently, and the samples are stored. 0 means no limit.
	MaxMetricsWithMetadata int `yaml:"max_metrics_with_metadata"`
	// MaxMetadataLength caps, in bytes, each of a metadata entry's metric family name,
	// help and unit. AMP documents no such limit, so the default is Cortex's
	// max_metadata_length (1024). Longer metadata is refused (400) and counted; the
	// samples of the request are stored. 0 means no limit.
	MaxMetadataLength int `yaml:"max_metadata_length"`
	// MaxExemplars is the size of the workspace's in-memory exemplar buffer; 0 disables exemplars.
	MaxExemplars int `yaml:"max_exemplars"`
	// RetentionPeriodDays applies to workspaces that set no retention of their own.
	RetentionPeriodDays int `yaml:"retention_period_days"`

	// Query limits; zero means the server-wide --query.* setting.
	QueryTimeout         time.Duration `yaml:"query_timeout"`
	MaxQuerySamples      int           `yaml:"max_query_samples"`
	MaxQuerySeries       int           `yaml:"max_query_series"`
	MaxConcurrentQueries int           `yaml:"max_concurrent_queries"`

	// Rules and alerting: AMP's quotas on a workspace's rule groups namespaces and alert
	// manager definition. The control plane refuses a CreateRuleGroupsNamespace,
	// PutRuleGroupsNamespace, CreateAlertManagerDefinition or PutAlertManagerDefinition
	// that would exceed one (402 ServiceQuotaExceededException, with AMP's quota code
	// where it has one); the alertmanager enforces the Alertmanager* runtime ones (alerts,
	// aggregation groups, silences). Zero means no limit for each.
	//
	// Where AMP's current quota table (docs.aws.amazon.com/prometheus/latest/userguide/
	// AMP_quotas.html) has the quota, the default is its value; the namespaces, rule
	// groups and rules-per-group caps come from AMP's older table, which had them.

	// RulerMaxRuleGroupsNamespaces caps the rule groups namespaces of a workspace: the
	// older table's "Rule group namespaces per workspace" (10; the current one lists no
	// such quota). It also bounds the workspace's metadata record, which holds every
	// rule file (see meta.MaxRecordBytes).
	RulerMaxRuleGroupsNamespaces int `yaml:"ruler_max_rule_groups_namespaces"`
	// RulerMaxRuleGroupsPerWorkspace caps the rule groups of all of a workspace's
	// namespaces: the older table's "Rule groups per workspace" (100).
	RulerMaxRuleGroupsPerWorkspace int `yaml:"ruler_max_rule_groups_per_workspace"`
	// RulerMaxRulesPerWorkspace caps the rules of all of a workspace's namespaces: the
	// current table's "Rules per workspace" (L-3D15CDB4, 2,000).
	RulerMaxRulesPerWorkspace int `yaml:"ruler_max_rules_per_workspace"`
	// RulerMaxRulesPerRuleGroup caps the rules of one group: the older table's "Rules
	// per rule group" (20).
	RulerMaxRulesPerRuleGroup int `yaml:"ruler_max_rules_per_rule_group"`
	// RulerMaxNamespaceSizeBytes caps one namespace's rule file: the current table's
	// "Rule group namespace definition file size" (L-C62641E3, 1 MB, taken as 1 MiB).
	RulerMaxNamespaceSizeBytes int `yaml:"ruler_max_namespace_size_bytes"`
	// RulerMinEvaluationInterval is the shortest interval a rule group may set: the
	// current table's "Rule evaluation interval" (L-8DEDEE8E, 30s). A group with a
	// shorter one is refused with 400 ValidationException, as AMP refuses it; groups that
	// set none run at --ruler.evaluation-interval. Zero means any interval.
	RulerMinEvaluationInterval time.Duration `yaml:"ruler_min_evaluation_interval"`
	// AlertmanagerMaxConfigSizeBytes caps the alert manager definition (the whole AMP
	// document, templates included): "Alert manager definition file size" (L-3316EF76,
	// 1 MB, taken as 1 MiB).
	AlertmanagerMaxConfigSizeBytes int `yaml:"alertmanager_max_config_size_bytes"`
	// AlertmanagerMaxTemplatesCount caps the template_files of the definition:
	// "Templates in alert manager definition file" (L-0F151AA2, 100).
	AlertmanagerMaxTemplatesCount int `yaml:"alertmanager_max_templates_count"`
	// AlertmanagerMaxInhibitionRules caps the inhibit_rules of the definition:
	// "Inhibition rules in alert manager definition file" (L-46D5E194, 100).
	AlertmanagerMaxInhibitionRules int `yaml:"alertmanager_max_inhibition_rules"`
	// AlertmanagerMaxRoutingTreeNodes caps the routes of the definition, the root route
	// included: "Nodes in alert manager routing tree" (L-E3E60B3E, 100).
	AlertmanagerMaxRoutingTreeNodes int `yaml:"alertmanager_max_routing_tree_nodes"`
	// AlertmanagerMaxAggregationGroups caps the aggregation groups (one per combination
	// of group_by values) of a workspace's Alertmanager: "Alert aggregation group size
	// in alert manager definition file" (L-BDF9895D, 1,000). Enforced at run time.
	AlertmanagerMaxAggregationGroups int `yaml:"alertmanager_max_aggregation_groups"`
	// AlertmanagerMaxAlertsCount caps the active alerts of a workspace's Alertmanager:
	// "Alerts in Alert Manager" (L-E9CD1A4F, 1,000). Enforced at run time.
	AlertmanagerMaxAlertsCount int `yaml:"alertmanager_max_alerts_count"`
	// AlertmanagerMaxAlertsSizeBytes caps the total size of a workspace's active alerts
	// (labels and annotations): "Alert payload size in Alert Manager" (L-3E2A717A,
	// 20 MB, taken as 20 MiB). Enforced at run time.
	AlertmanagerMaxAlertsSizeBytes int `yaml:"alertmanager_max_alerts_size_bytes"`
	// AlertmanagerMaxSilencesCount caps the silences of a workspace, expired ones not
	// counted: "Silences per workspace" (L-C15FCA36, 1,000). Enforced at run time.
	AlertmanagerMaxSilencesCount int `yaml:"alertmanager_max_silences_count"`
}

// MaxOutOfOrderTimeWindow is AMP's upper bound for the out-of-order window.
const MaxOutOfOrderTimeWindow = 10 * time.Minute

// RegisterFlags registers the defaults under "limits.".
func (l *Limits) RegisterFlags(f *flag.FlagSet) {
	f.Float64Var(&l.IngestionRate, "limits.ingestion-rate", 70000, "Samples per second a workspace may ingest, sustained (AMP: 70,000). Over it, remote write answers 429. 0 means no limit.")
	f.IntVar(&l.IngestionBurstSize, "limits.ingestion-burst-size", 1000000, "Samples a workspace may ingest at once above the rate (AMP: 1,000,000).")
	f.IntVar(&l.MaxActiveSeries, "limits.max-active-series", 1000000, "Active series per workspace (AMP: 1,000,000); new series beyond it are refused with 429, existing ones keep ingesting. 0 means no limit.")
	f.IntVar(&l.MaxActiveSeriesPerMetric, "limits.max-active-series-per-metric", 200000, "Active series per metric name per workspace (AMP: 200,000). 0 means no limit.")
	f.IntVar(&l.MaxLabelNamesPerSeries, "limits.max-label-names-per-series", 70, "Labels per series, the metric name included (AMP: 70). 0 means no limit.")
	f.IntVar(&l.MaxLabelNameLength, "limits.max-label-name-length", 1024, "Longest label name, in bytes. 0 means no limit.")
	f.IntVar(&l.MaxLabelValueLength, "limits.max-label-value-length", 2048, "Longest label value, in bytes. 0 means no limit.")
	f.DurationVar(&l.MaxSampleAge, "limits.max-sample-age", time.Hour, "Samples older than this are refused (greater_than_max_sample_age). 0 means no limit.")
	f.DurationVar(&l.CreationGracePeriod, "limits.creation-grace-period", 10*time.Minute, "Samples further than this in the future are refused (too_far_in_future). 0 means no limit.")
	f.DurationVar(&l.OutOfOrderTimeWindow, "limits.out-of-order-time-window", time.Minute, "How far behind a series' newest sample an older one is still accepted (AMP: 60s, at most 10m).")
	f.IntVar(&l.MaxHAClusters, "limits.max-ha-clusters", 500, "HA clusters (replica groups) per workspace (AMP: 500). 0 means no limit.")
	f.IntVar(&l.MaxMetricsWithMetadata, "limits.max-metrics-with-metadata", 20000, "Metric families per workspace whose metadata (type, help, unit) is kept (AMP: 20,000 active metrics with metadata). Metadata of further families is dropped and counted (per_user_metadata_limit); their samples are stored. 0 means no limit.")
	f.IntVar(&l.MaxMetadataLength, "limits.max-metadata-length", 1024, "Longest metric family name, help and unit of metric metadata, in bytes (Cortex's default; AMP documents none). Longer metadata is refused with 400, the samples of the request are stored. 0 means no limit.")
	f.IntVar(&l.MaxExemplars, "limits.max-exemplars", 100000, "Exemplars kept in memory per workspace; 0 disables exemplar storage.")
	f.DurationVar(&l.QueryTimeout, "limits.query-timeout", 0, "Query timeout of a workspace. 0 means --query.timeout; set per workspace in the runtime file.")
	f.IntVar(&l.MaxQuerySamples, "limits.max-query-samples", 0, "Samples a query may hold in memory. 0 means --query.max-samples.")
	f.IntVar(&l.MaxQuerySeries, "limits.max-query-series", 0, "Series a query may read. 0 means --query.max-series.")
	f.IntVar(&l.MaxConcurrentQueries, "limits.max-concurrent-queries", 0, "Queries of a workspace run at once; more wait in a queue. 0 means --query.max-concurrent.")
	f.IntVar(&l.RetentionPeriodDays, "limits.retention-period-days", 150, "Retention period, in days, of workspaces that set none with UpdateWorkspaceConfiguration (AMP's default is 150).")

	f.IntVar(&l.RulerMaxRuleGroupsNamespaces, "limits.ruler-max-rule-groups-namespaces", 10, "Rule groups namespaces per workspace (AMP's older quota: 10). Over it, CreateRuleGroupsNamespace gets 402 ServiceQuotaExceededException. 0 means no limit.")
	f.IntVar(&l.RulerMaxRuleGroupsPerWorkspace, "limits.ruler-max-rule-groups-per-workspace", 100, "Rule groups per workspace, all namespaces together (AMP's older quota: 100). 0 means no limit.")
	f.IntVar(&l.RulerMaxRulesPerWorkspace, "limits.ruler-max-rules-per-workspace", 2000, "Rules per workspace, all namespaces together (AMP: 2,000, L-3D15CDB4). 0 means no limit.")
	f.IntVar(&l.RulerMaxRulesPerRuleGroup, "limits.ruler-max-rules-per-rule-group", 20, "Rules per rule group (AMP's older quota: 20). 0 means no limit.")
	f.IntVar(&l.RulerMaxNamespaceSizeBytes, "limits.ruler-max-namespace-size-bytes", 1<<20, "Largest rule file of one rule groups namespace, in bytes (AMP: 1 MB, L-C62641E3). 0 means no limit.")
	f.DurationVar(&l.RulerMinEvaluationInterval, "limits.ruler-min-evaluation-interval", 30*time.Second, "Shortest interval a rule group may set (AMP: 30s, L-8DEDEE8E); a shorter one is refused with 400 ValidationException. 0 means any.")
	f.IntVar(&l.AlertmanagerMaxConfigSizeBytes, "limits.alertmanager-max-config-size-bytes", 1<<20, "Largest alert manager definition, templates included, in bytes (AMP: 1 MB, L-3316EF76). 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxTemplatesCount, "limits.alertmanager-max-templates-count", 100, "Template files per alert manager definition (AMP: 100, L-0F151AA2). 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxInhibitionRules, "limits.alertmanager-max-inhibition-rules", 100, "Inhibition rules per alert manager definition (AMP: 100, L-46D5E194). 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxRoutingTreeNodes, "limits.alertmanager-max-routing-tree-nodes", 100, "Routes per alert manager definition, the root route included (AMP: 100, L-E3E60B3E). 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxAggregationGroups, "limits.alertmanager-max-aggregation-groups", 1000, "Aggregation groups of a workspace's Alertmanager (AMP: 1,000, L-BDF9895D). 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxAlertsCount, "limits.alertmanager-max-alerts-count", 1000, "Active alerts of a workspace's Alertmanager (AMP: 1,000, L-E9CD1A4F). 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxAlertsSizeBytes, "limits.alertmanager-max-alerts-size-bytes", 20<<20, "Total size of a workspace's active alerts, in bytes (AMP: 20 MB, L-3E2A717A). 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxSilencesCount, "limits.alertmanager-max-silences-count", 1000, "Silences per workspace, expired ones not counted (AMP: 1,000, L-C15FCA36). 0 means no limit.")
}

// Default returns the limits the flags default to (AMP's quotas), for code that runs
// without flags.
func Default() Limits {
	var l Limits
	l.RegisterFlags(flag.NewFlagSet("limits", flag.ContinueOnError))
	return l
}

// RetentionDays is a workspace's retention in days: its own (set with
// UpdateWorkspaceConfiguration; own is 0 when it set none), else RetentionPeriodDays.
// Every component that needs a workspace's retention asks here.
func (l *Limits) RetentionDays(own int) int {
	if own > 0 {
		return own
	}
	return l.RetentionPeriodDays
}

// Retention is RetentionDays as a duration.
func (l *Limits) Retention(own int) time.Duration {
	return time.Duration(l.RetentionDays(own)) * 24 * time.Hour
}

// Validate checks the limits.
func (l *Limits) Validate() error {
	switch {
	case l.IngestionRate < 0:
		return errors.New("ingestion_rate must not be negative")
	case l.IngestionBurstSize < 0:
		return errors.New("ingestion_burst_size must not be negative")
	case l.IngestionRate > 0 && l.IngestionBurstSize == 0:
		return errors.New("ingestion_burst_size must be positive when ingestion_rate is set")
	case l.MaxActiveSeries < 0 || l.MaxActiveSeriesPerMetric < 0 || l.MaxLabelNamesPerSeries < 0 ||
		l.MaxLabelNameLength < 0 || l.MaxLabelValueLength < 0 || l.MaxHAClusters < 0 || l.MaxExemplars < 0 ||
		l.MaxMetricsWithMetadata < 0 || l.MaxMetadataLength < 0:
		return errors.New("limits must not be negative")
	case l.MaxSampleAge < 0 || l.CreationGracePeriod < 0:
		return errors.New("max_sample_age and creation_grace_period must not be negative")
	case l.OutOfOrderTimeWindow < 0 || l.OutOfOrderTimeWindow > MaxOutOfOrderTimeWindow:
		return fmt.Errorf("out_of_order_time_window must be between 0 and %s", MaxOutOfOrderTimeWindow)
	case l.QueryTimeout < 0 || l.MaxQuerySamples < 0 || l.MaxQuerySeries < 0 || l.MaxConcurrentQueries < 0:
		return errors.New("query limits must not be negative")
	case l.RulerMaxRuleGroupsNamespaces < 0 || l.RulerMaxRuleGroupsPerWorkspace < 0 || l.RulerMaxRulesPerWorkspace < 0 ||
		l.RulerMaxRulesPerRuleGroup < 0 || l.RulerMaxNamespaceSizeBytes < 0 || l.RulerMinEvaluationInterval < 0:
		return errors.New("ruler limits must not be negative")
	case l.AlertmanagerMaxConfigSizeBytes < 0 || l.AlertmanagerMaxTemplatesCount < 0 || l.AlertmanagerMaxInhibitionRules < 0 ||
		l.AlertmanagerMaxRoutingTreeNodes < 0 || l.AlertmanagerMaxAggregationGroups < 0 || l.AlertmanagerMaxAlertsCount < 0 ||
		l.AlertmanagerMaxAlertsSizeBytes < 0 || l.AlertmanagerMaxSilencesCount < 0:
		return errors.New("alertmanager limits must not be negative")
	case l.RetentionPeriodDays < 1 || l.RetentionPeriodDays > 1095:
		return errors.New("retention_period_days must be between 1 and 1095")
	}
	return nil
}

// RuntimeConfig is the operator's runtime file: per-workspace overrides of the defaults.
// Only the fields a workspace sets change; the rest keep the defaults.
//
//	overrides:
//	  ws-1234...:
//	    ingestion_rate: 200000
//	    max_active_series: 5000000
type RuntimeConfig struct {
	Overrides map[string]yaml.Node `yaml:"overrides"`
}

// ParseRuntimeConfig parses a runtime file over defaults and validates every override.
func ParseRuntimeConfig(body []byte, defaults Limits) (map[string]*Limits, error) {
	var rc RuntimeConfig
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&rc); err != nil && err.Error() != "EOF" {
		return nil, fmt.Errorf("parsing runtime config: %w", err)
	}
	out := make(map[string]*Limits, len(rc.Overrides))
	for ws, node := range rc.Overrides {
		l := defaults
		if err := decodeStrict(&node, &l); err != nil {
			return nil, fmt.Errorf("overrides of %s: %w", ws, err)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("overrides of %s: %w", ws, err)
		}
		out[ws] = &l
	}
	return out, nil
}

// decodeStrict decodes a YAML node refusing unknown fields (Node.Decode has no such option).
func decodeStrict(node *yaml.Node, v any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}
