// Package migrate moves a self-hosted Prometheus to Strata (or AMP). This file is
// `strata migrate plan`: it reads a running Prometheus through its HTTP API and reports
// what the move means against a workspace's quotas.
package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/alertmanager"
)

// Quotas are the workspace quotas a plan checks, AMP's defaults unless overridden.
type Quotas struct {
	ActiveSeries          int     `json:"active_series"`
	ActiveSeriesPerMetric int     `json:"active_series_per_metric"`
	LabelsPerSeries       int     `json:"labels_per_series"`
	IngestionRate         float64 `json:"ingestion_rate"` // samples per second
	MinRuleInterval       time.Duration
}

// DefaultQuotas are AMP's (and Strata's default limits).
func DefaultQuotas() Quotas {
	return Quotas{ActiveSeries: 1_000_000, ActiveSeriesPerMetric: 200_000, LabelsPerSeries: 70, IngestionRate: 70_000, MinRuleInterval: 30 * time.Second}
}

// Count is a name with a number of series.
type Count struct {
	Name   string `json:"name"`
	Series int    `json:"series"`
}

// Report is what plan found.
type Report struct {
	Prometheus    string  `json:"prometheus"`
	Version       string  `json:"version,omitempty"`
	ActiveSeries  int     `json:"active_series"`
	IngestionRate float64 `json:"ingestion_rate"` // samples per second, over the last 5 minutes
	Retention     string  `json:"retention,omitempty"`
	SeriesByJob   []Count `json:"series_by_job"`
	// SeriesByMetric are the metrics with the most series (Prometheus' top 10).
	SeriesByMetric []Count `json:"series_by_metric"`
	// ValuesByLabel are the labels with the most values.
	ValuesByLabel []Count `json:"values_by_label"`
	// MaxLabels is the most labels a series of the top metrics has, and which.
	MaxLabels       int    `json:"max_labels"`
	MaxLabelsSeries string `json:"max_labels_series,omitempty"`
	// ExternalLabels are the global external labels; HA says whether they name a
	// replica (an HA pair), ReplicaLabel which.
	ExternalLabels map[string]string `json:"external_labels,omitempty"`
	HA             bool              `json:"ha_pair"`
	ReplicaLabel   string            `json:"replica_label,omitempty"`
	RemoteWrites   int               `json:"remote_writes"`
	// Rules: groups and rules loaded; Unconvertible lists what a workspace refuses.
	RuleGroups    int      `json:"rule_groups"`
	Rules         int      `json:"rules"`
	AlertingRules int      `json:"alerting_rules"`
	Unconvertible []string `json:"unconvertible,omitempty"`
	// Alertmanager is what plan found of the Alertmanager (--alertmanager): what the
	// workspace would refuse, and what AMP would.
	Alertmanager *AlertmanagerPlan `json:"alertmanager,omitempty"`
	// Cuts are the labels whose removal from one of the biggest metrics saves the most
	// series, with the relabeling that removes them.
	Cuts []Cut `json:"cardinality_cuts,omitempty"`
	// Exceeded lists the quotas the Prometheus would exceed: the overrides to request.
	Exceeded    []string `json:"quota_overrides_to_request,omitempty"`
	RemoteWrite string   `json:"remote_write_config"`
	Quotas      Quotas   `json:"quotas"`
}

// Cut is a label of a metric whose removal merges that metric's series.
type Cut struct {
	Metric string `json:"metric"`
	Label  string `json:"label"`
	Series int    `json:"series"`       // the metric's series now
	After  int    `json:"series_after"` // without the label
	// Relabel is the metric_relabel_configs entry that removes the label from the metric
	// only (or a recording rule's `sum without` does the same for queries).
	Relabel string `json:"metric_relabel_config"`
}

// Saved is how many series the cut saves.
func (c Cut) Saved() int { return c.Series - c.After }

// maxCuts is how many cuts a plan suggests.
const maxCuts = 5

// cutsOf finds, for one metric's series, the labels whose removal saves at least a tenth
// of them. Identity and histogram labels (job, instance, le, quantile) are not cut.
func cutsOf(metric string, series []map[string]string) []Cut {
	names := map[string]bool{}
	for _, s := range series {
		for k := range s {
			names[k] = true
		}
	}
	var out []Cut
	for name := range names {
		switch name {
		case "__name__", "job", "instance", "le", "quantile":
			continue
		}
		merged := map[string]bool{}
		for _, s := range series {
			keys := make([]string, 0, len(s))
			for k, v := range s {
				if k != name {
					keys = append(keys, k+"\xff"+v)
				}
			}
			slices.Sort(keys)
			merged[strings.Join(keys, "\xfe")] = true
		}
		c := Cut{Metric: metric, Label: name, Series: len(series), After: len(merged)}
		if c.Saved() > 0 && c.Saved()*10 >= c.Series {
			c.Relabel = fmt.Sprintf("- source_labels: [__name__]\n  regex: %s\n  target_label: %s\n  replacement: \"\"\n", regexp.QuoteMeta(metric), name)
			out = append(out, c)
		}
	}
	return out
}

// AlertmanagerPlan is what moving an Alertmanager's configuration takes.
type AlertmanagerPlan struct {
	URL       string `json:"url"`
	Receivers int    `json:"receivers"`
	// Refused is why the workspace would refuse the configuration as it is; empty when
	// `strata migrate alertmanager` can move it.
	Refused string `json:"refused,omitempty"`
	// Templates are template files on the Alertmanager's host: move the configuration
	// with `strata migrate alertmanager --from` there, which inlines them.
	Templates []string `json:"templates,omitempty"`
	// NotAMP lists what Amazon Managed Service for Prometheus would refuse or change.
	NotAMP []string `json:"not_amp,omitempty"`
}

// planAlertmanager reads an Alertmanager's configuration (/api/v2/status) and reports
// what moving it takes.
func planAlertmanager(ctx context.Context, hc *http.Client, base string) (*AlertmanagerPlan, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/api/v2/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/api/v2/status: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("/api/v2/status: %w", err)
	}
	p := &AlertmanagerPlan{URL: base}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(st.Config.Original), &doc); err != nil || len(doc.Content) != 1 {
		return nil, fmt.Errorf("the Alertmanager's configuration is not YAML: %v", err)
	}
	root := doc.Content[0]
	if rs := child(root, "receivers"); rs != nil {
		p.Receivers = len(rs.Content)
	}
	if ts := child(root, "templates"); ts != nil {
		for _, t := range ts.Content {
			p.Templates = append(p.Templates, t.Value)
		}
	}
	p.NotAMP = notAMP(root)
	// The workspace's check, with the templates left out (they are files over there).
	var files []string
	collectFiles(root, "", &files)
	if len(files) > 0 {
		p.Refused = "settings read from files on the Alertmanager's host (" + strings.Join(files, ", ") + "): `strata migrate alertmanager --from` there inlines them"
	} else {
		if ts := child(root, "templates"); ts != nil {
			ts.Content = nil
		}
		cfg, err := yaml.Marshal(root)
		if err == nil {
			def, _ := yaml.Marshal(map[string]string{"alertmanager_config": string(cfg)})
			if _, err := alertmanager.ParseDefinition(def); err != nil {
				p.Refused = err.Error()
			}
		}
	}
	return p, nil
}

// collectFiles lists the …_file settings under n.
func collectFiles(n *yaml.Node, at string, out *[]string) {
	switch n.Kind {
	case yaml.SequenceNode:
		for i, c := range n.Content {
			collectFiles(c, fmt.Sprintf("%s[%d]", at, i), out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			here := strings.TrimPrefix(at+"."+n.Content[i].Value, ".")
			if strings.HasSuffix(n.Content[i].Value, "_file") && n.Content[i+1].Kind == yaml.ScalarNode {
				*out = append(*out, here)
				continue
			}
			collectFiles(n.Content[i+1], here, out)
		}
	}
}

// Config says what to read and how to report.
type Config struct {
	Prometheus string // base URL
	// WorkspaceEndpoint is the workspace's URL for the remote_write block (…/workspaces/ws-…);
	// empty: a placeholder.
	WorkspaceEndpoint string
	Region            string
	// Alertmanager, when set, is an Alertmanager's URL whose configuration is planned too.
	Alertmanager string
	Quotas       Quotas
	Client       *http.Client
}

// Plan reads the Prometheus at cfg.Prometheus and reports.
func Plan(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: time.Minute}
	}
	c := &promClient{base: strings.TrimSuffix(cfg.Prometheus, "/"), hc: cfg.Client}
	r := &Report{Prometheus: cfg.Prometheus, Quotas: cfg.Quotas}

	var build struct {
		Version string `json:"version"`
	}
	if err := c.get(ctx, "/api/v1/status/buildinfo", nil, &build); err == nil {
		r.Version = build.Version
	}
	var tsdb struct {
		HeadStats struct {
			NumSeries int `json:"numSeries"`
		} `json:"headStats"`
		SeriesCountByMetricName []struct {
			Name  string
			Value int
		} `json:"seriesCountByMetricName"`
		LabelValueCountByLabelName []struct {
			Name  string
			Value int
		} `json:"labelValueCountByLabelName"`
	}
	if err := c.get(ctx, "/api/v1/status/tsdb", nil, &tsdb); err != nil {
		return nil, fmt.Errorf("reading the TSDB status: %w", err)
	}
	r.ActiveSeries = tsdb.HeadStats.NumSeries
	for _, m := range tsdb.SeriesCountByMetricName {
		r.SeriesByMetric = append(r.SeriesByMetric, Count{m.Name, m.Value})
	}
	for _, l := range tsdb.LabelValueCountByLabelName {
		r.ValuesByLabel = append(r.ValuesByLabel, Count{l.Name, l.Value})
	}

	if byJob, err := c.vector(ctx, `count by (job) ({__name__=~".+"})`); err == nil {
		for _, s := range byJob {
			r.SeriesByJob = append(r.SeriesByJob, Count{s.Metric["job"], int(s.Value)})
		}
		slices.SortFunc(r.SeriesByJob, func(a, b Count) int { return b.Series - a.Series })
	}
	if rate, err := c.vector(ctx, `sum(rate(prometheus_tsdb_head_samples_appended_total[5m]))`); err == nil && len(rate) == 1 {
		r.IngestionRate = rate[0].Value
	}

	// The most labels a series has, among those of the biggest metrics.
	for _, m := range r.SeriesByMetric {
		var series []map[string]string
		if err := c.get(ctx, "/api/v1/series", url.Values{"match[]": {m.Name}}, &series); err != nil {
			continue
		}
		for _, s := range series {
			if len(s) > r.MaxLabels {
				r.MaxLabels, r.MaxLabelsSeries = len(s), m.Name
			}
		}
		r.Cuts = append(r.Cuts, cutsOf(m.Name, series)...)
	}
	slices.SortFunc(r.Cuts, func(a, b Cut) int {
		if a.Saved() != b.Saved() {
			return b.Saved() - a.Saved()
		}
		return strings.Compare(a.Metric+a.Label, b.Metric+b.Label)
	})
	r.Cuts = r.Cuts[:min(len(r.Cuts), maxCuts)]

	var runtime struct {
		StorageRetention string `json:"storageRetention"`
	}
	if err := c.get(ctx, "/api/v1/status/runtimeinfo", nil, &runtime); err == nil {
		r.Retention = runtime.StorageRetention
	}
	var config struct {
		YAML string `json:"yaml"`
	}
	if err := c.get(ctx, "/api/v1/status/config", nil, &config); err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	var promCfg struct {
		Global struct {
			ExternalLabels map[string]string `yaml:"external_labels"`
		} `yaml:"global"`
		RemoteWrite []yaml.Node `yaml:"remote_write"`
	}
	if err := yaml.Unmarshal([]byte(config.YAML), &promCfg); err != nil {
		return nil, fmt.Errorf("parsing the configuration: %w", err)
	}
	r.ExternalLabels = promCfg.Global.ExternalLabels
	r.RemoteWrites = len(promCfg.RemoteWrite)
	for _, name := range []string{"__replica__", "replica", "prometheus_replica"} {
		if _, ok := r.ExternalLabels[name]; ok {
			r.HA, r.ReplicaLabel = true, name
			break
		}
	}

	if err := planRules(ctx, c, r, cfg.Quotas); err != nil {
		return nil, err
	}
	if cfg.Alertmanager != "" {
		am, err := planAlertmanager(ctx, cfg.Client, cfg.Alertmanager)
		if err != nil {
			return nil, fmt.Errorf("reading the Alertmanager %s: %w", cfg.Alertmanager, err)
		}
		r.Alertmanager = am
	}
	r.Exceeded = exceeded(r, cfg.Quotas)
	r.RemoteWrite = remoteWriteBlock(cfg, r)
	return r, nil
}

// planRules counts the loaded rules and lists those a workspace would refuse.
func planRules(ctx context.Context, c *promClient, r *Report, q Quotas) error {
	var rules struct {
		Groups []struct {
			Name     string  `json:"name"`
			File     string  `json:"file"`
			Interval float64 `json:"interval"`
			Rules    []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
				Type  string `json:"type"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := c.get(ctx, "/api/v1/rules", nil, &rules); err != nil {
		return fmt.Errorf("reading the rules: %w", err)
	}
	p := parser.NewParser(parser.Options{})
	for _, g := range rules.Groups {
		r.RuleGroups++
		if iv := time.Duration(g.Interval * float64(time.Second)); q.MinRuleInterval > 0 && iv > 0 && iv < q.MinRuleInterval {
			r.Unconvertible = append(r.Unconvertible, fmt.Sprintf("group %q (%s): interval %s is below the workspace's minimum %s", g.Name, g.File, iv, q.MinRuleInterval))
		}
		for _, rule := range g.Rules {
			r.Rules++
			if rule.Type == "alerting" {
				r.AlertingRules++
			}
			if _, err := p.ParseExpr(rule.Query); err != nil {
				r.Unconvertible = append(r.Unconvertible, fmt.Sprintf("group %q, rule %q: %v", g.Name, rule.Name, err))
			}
		}
	}
	return nil
}

// exceeded lists the quotas r goes over, with what to request.
func exceeded(r *Report, q Quotas) []string {
	var out []string
	if q.ActiveSeries > 0 && r.ActiveSeries > q.ActiveSeries {
		out = append(out, fmt.Sprintf("active series: %d, quota %d (request at least %d)", r.ActiveSeries, q.ActiveSeries, roundUp(r.ActiveSeries)))
	}
	for _, m := range r.SeriesByMetric {
		if q.ActiveSeriesPerMetric > 0 && m.Series > q.ActiveSeriesPerMetric {
			out = append(out, fmt.Sprintf("active series of metric %s: %d, quota %d per metric (request at least %d)", m.Name, m.Series, q.ActiveSeriesPerMetric, roundUp(m.Series)))
		}
	}
	if q.LabelsPerSeries > 0 && r.MaxLabels > q.LabelsPerSeries {
		out = append(out, fmt.Sprintf("labels per series: %d (%s), quota %d", r.MaxLabels, r.MaxLabelsSeries, q.LabelsPerSeries))
	}
	if q.IngestionRate > 0 && r.IngestionRate > q.IngestionRate {
		out = append(out, fmt.Sprintf("ingestion rate: %.0f samples/s, quota %.0f (request at least %d)", r.IngestionRate, q.IngestionRate, roundUp(int(math.Ceil(r.IngestionRate)))))
	}
	return out
}

// roundUp is n with 20% headroom, rounded up to two significant digits.
func roundUp(n int) int {
	v := float64(n) * 1.2
	mag := math.Pow(10, math.Floor(math.Log10(v))-1)
	return int(math.Ceil(v/mag) * mag)
}

// remoteWriteBlock is the remote_write configuration to add, its queue sized for the
// measured rate: a shard sends about ten requests of max_samples_per_send a second, and
// the shards may double for catching up.
func remoteWriteBlock(cfg Config, r *Report) string {
	endpoint := strings.TrimSuffix(cfg.WorkspaceEndpoint, "/")
	if endpoint == "" {
		endpoint = "https://aps-workspaces.<region>.amazonaws.com/workspaces/<workspace-id>"
	}
	region := cfg.Region
	if region == "" {
		region = "<region>"
	}
	const perSend = 1000
	shards := max(10, int(math.Ceil(2*r.IngestionRate/(10*perSend))))
	var b strings.Builder
	fmt.Fprintf(&b, "remote_write:\n  - url: %s/api/v1/remote_write\n    sigv4:\n      region: %s\n", endpoint, region)
	fmt.Fprintf(&b, "    queue_config:\n      max_samples_per_send: %d\n      max_shards: %d\n      capacity: %d\n", perSend, shards, 2500)
	if r.HA {
		b.WriteString("# HA pair: both replicas write; keep a cluster label and rename the replica label:\n")
		if r.ReplicaLabel != "__replica__" {
			fmt.Fprintf(&b, "# set external_labels {cluster: <name>, __replica__: <this replica>} in place of %s\n", r.ReplicaLabel)
		}
	}
	return b.String()
}

// Text writes the report for a terminal.
func (r *Report) Text(w io.Writer) {
	fmt.Fprintf(w, "Prometheus %s %s\n\n", r.Prometheus, r.Version)
	fmt.Fprintf(w, "Active series:   %d (quota %d)\n", r.ActiveSeries, r.Quotas.ActiveSeries)
	fmt.Fprintf(w, "Ingestion rate:  %.0f samples/s (quota %.0f)\n", r.IngestionRate, r.Quotas.IngestionRate)
	fmt.Fprintf(w, "Most labels:     %d on a series of %s (quota %d)\n", r.MaxLabels, r.MaxLabelsSeries, r.Quotas.LabelsPerSeries)
	if r.Retention != "" {
		fmt.Fprintf(w, "Retention:       %s\n", r.Retention)
	}
	writeCounts(w, "Series by job", r.SeriesByJob)
	writeCounts(w, "Series by metric (top)", r.SeriesByMetric)
	writeCounts(w, "Values by label (top)", r.ValuesByLabel)
	fmt.Fprintf(w, "\nRules: %d groups, %d rules (%d alerting)\n", r.RuleGroups, r.Rules, r.AlertingRules)
	for _, u := range r.Unconvertible {
		fmt.Fprintf(w, "  will not convert: %s\n", u)
	}
	if r.HA {
		fmt.Fprintf(w, "\nHA pair detected: external label %s names the replica\n", r.ReplicaLabel)
	}
	if am := r.Alertmanager; am != nil {
		fmt.Fprintf(w, "\nAlertmanager %s: %d receivers\n", am.URL, am.Receivers)
		if am.Refused != "" {
			fmt.Fprintf(w, "  the workspace would refuse it as it is: %s\n", am.Refused)
		}
		if len(am.Templates) > 0 {
			fmt.Fprintf(w, "  templates on its host, to inline with `strata migrate alertmanager --from`: %s\n", strings.Join(am.Templates, ", "))
		}
		for _, n := range am.NotAMP {
			fmt.Fprintf(w, "  not for AMP (Strata accepts it): %s\n", n)
		}
	}
	if len(r.Cuts) > 0 {
		fmt.Fprintln(w, "\nCardinality: labels whose removal saves the most series (add to the job's metric_relabel_configs,")
		fmt.Fprintln(w, "or aggregate them away with a recording rule's `sum without (label)`):")
		for _, c := range r.Cuts {
			fmt.Fprintf(w, "  %s without %s: %d series instead of %d (-%d)\n", c.Metric, c.Label, c.After, c.Series, c.Saved())
			for _, l := range strings.Split(strings.TrimSuffix(c.Relabel, "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
	if len(r.Exceeded) > 0 {
		fmt.Fprintln(w, "\nOver the workspace's quotas (request these overrides first):")
		for _, e := range r.Exceeded {
			fmt.Fprintf(w, "  %s\n", e)
		}
	} else {
		fmt.Fprintln(w, "\nWithin the workspace's quotas.")
	}
	fmt.Fprintf(w, "\nAdd to prometheus.yml:\n%s", r.RemoteWrite)
}

// Markdown writes the report as Markdown, for a migration ticket or a wiki.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "# Moving Prometheus %s %s\n\n", r.Prometheus, r.Version)
	fmt.Fprintln(w, "| | measured | workspace quota |")
	fmt.Fprintln(w, "|---|---|---|")
	fmt.Fprintf(w, "| active series | %d | %d |\n", r.ActiveSeries, r.Quotas.ActiveSeries)
	fmt.Fprintf(w, "| ingestion rate (samples/s) | %.0f | %.0f |\n", r.IngestionRate, r.Quotas.IngestionRate)
	fmt.Fprintf(w, "| most labels on a series | %d (%s) | %d |\n", r.MaxLabels, mdEscape(r.MaxLabelsSeries), r.Quotas.LabelsPerSeries)
	if r.Retention != "" {
		fmt.Fprintf(w, "| retention | %s | |\n", r.Retention)
	}
	for _, t := range []struct {
		title string
		cs    []Count
	}{{"Series by job", r.SeriesByJob}, {"Series by metric (top)", r.SeriesByMetric}, {"Values by label (top)", r.ValuesByLabel}} {
		if len(t.cs) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n## %s\n\n| name | count |\n|---|---|\n", t.title)
		for _, c := range t.cs {
			fmt.Fprintf(w, "| %s | %d |\n", mdEscape(c.Name), c.Series)
		}
	}
	fmt.Fprintf(w, "\n## Rules\n\n%d groups, %d rules (%d alerting).\n", r.RuleGroups, r.Rules, r.AlertingRules)
	for _, u := range r.Unconvertible {
		fmt.Fprintf(w, "- will not convert: %s\n", mdEscape(u))
	}
	if r.HA {
		fmt.Fprintf(w, "\n## HA pair\n\nThe external label `%s` names the replica.\n", r.ReplicaLabel)
	}
	if am := r.Alertmanager; am != nil {
		fmt.Fprintf(w, "\n## Alertmanager\n\n%s: %d receivers.\n", am.URL, am.Receivers)
		if am.Refused != "" {
			fmt.Fprintf(w, "- the workspace would refuse it as it is: %s\n", mdEscape(am.Refused))
		}
		if len(am.Templates) > 0 {
			fmt.Fprintf(w, "- templates on its host, to inline with `strata migrate alertmanager --from`: %s\n", mdEscape(strings.Join(am.Templates, ", ")))
		}
		for _, n := range am.NotAMP {
			fmt.Fprintf(w, "- not for AMP (Strata accepts it): %s\n", mdEscape(n))
		}
	}
	if len(r.Cuts) > 0 {
		fmt.Fprintln(w, "\n## Cardinality\n\n| metric | label | series | without it | saved |\n|---|---|---|---|---|")
		for _, c := range r.Cuts {
			fmt.Fprintf(w, "| %s | %s | %d | %d | %d |\n", mdEscape(c.Metric), mdEscape(c.Label), c.Series, c.After, c.Saved())
		}
		fmt.Fprintln(w, "\nIn the job's `metric_relabel_configs`:\n\n```yaml")
		for _, c := range r.Cuts {
			fmt.Fprint(w, c.Relabel)
		}
		fmt.Fprintln(w, "```")
	}
	fmt.Fprintln(w, "\n## Quotas")
	if len(r.Exceeded) > 0 {
		fmt.Fprintln(w, "\nOver the workspace's quotas (request these overrides first):")
		for _, e := range r.Exceeded {
			fmt.Fprintf(w, "- %s\n", mdEscape(e))
		}
	} else {
		fmt.Fprintln(w, "\nWithin the workspace's quotas.")
	}
	fmt.Fprintf(w, "\n## remote_write\n\n```yaml\n%s```\n", r.RemoteWrite)
}

// mdEscape keeps a value from breaking a Markdown table.
func mdEscape(s string) string { return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s) }

func writeCounts(w io.Writer, title string, cs []Count) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, c := range cs {
		fmt.Fprintf(w, "  %-50s %d\n", c.Name, c.Series)
	}
}

// promClient reads a Prometheus HTTP API.
type promClient struct {
	base string
	hc   *http.Client
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

func (c *promClient) get(ctx context.Context, path string, params url.Values, out any) error {
	u := c.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ar apiResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&ar); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if ar.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, ar.ErrorType, ar.Error)
	}
	return json.Unmarshal(ar.Data, out)
}

type sample struct {
	Metric map[string]string
	Value  float64
}

// vector runs an instant query and returns its samples.
func (c *promClient) vector(ctx context.Context, query string) ([]sample, error) {
	return c.vectorAt(ctx, query, time.Time{})
}

// vectorAt runs an instant query at t (zero: now) and returns its samples.
func (c *promClient) vectorAt(ctx context.Context, query string, t time.Time) ([]sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	params := url.Values{"query": {query}}
	if !t.IsZero() {
		params.Set("time", strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64))
	}
	if err := c.get(ctx, "/api/v1/query", params, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, errors.New("not a vector")
	}
	out := make([]sample, 0, len(data.Result))
	for _, s := range data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			continue
		}
		out = append(out, sample{Metric: s.Metric, Value: v})
	}
	return out, nil
}
