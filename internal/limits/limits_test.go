package limits

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func defaults(t *testing.T) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	return c
}

func TestDefaultsAreAMPQuotas(t *testing.T) {
	c := defaults(t)
	l := c.Limits
	if l.IngestionRate != 70000 || l.IngestionBurstSize != 1000000 || l.MaxActiveSeries != 1000000 ||
		l.MaxActiveSeriesPerMetric != 200000 || l.MaxLabelNamesPerSeries != 70 || l.RetentionPeriodDays != 150 ||
		l.OutOfOrderTimeWindow != time.Minute || l.MaxHAClusters != 500 || l.MaxSampleAge != time.Hour ||
		l.MaxMetricsWithMetadata != 20000 || l.MaxMetadataLength != 1024 {
		t.Fatalf("defaults: %+v", l)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if l.RulerMaxRuleGroupsNamespaces != 10 || l.RulerMaxRuleGroupsPerWorkspace != 100 || l.RulerMaxRulesPerWorkspace != 2000 ||
		l.RulerMaxRulesPerRuleGroup != 20 || l.RulerMaxNamespaceSizeBytes != 1<<20 || l.RulerMinEvaluationInterval != 30*time.Second ||
		l.AlertmanagerMaxConfigSizeBytes != 1<<20 || l.AlertmanagerMaxTemplatesCount != 100 || l.AlertmanagerMaxInhibitionRules != 100 ||
		l.AlertmanagerMaxRoutingTreeNodes != 100 || l.AlertmanagerMaxAggregationGroups != 1000 || l.AlertmanagerMaxAlertsCount != 1000 ||
		l.AlertmanagerMaxAlertsSizeBytes != 20<<20 || l.AlertmanagerMaxSilencesCount != 1000 {
		t.Fatalf("rules and alerting defaults: %+v", l)
	}
	if Default() != l {
		t.Fatalf("Default() differs from the flags' defaults:\n%+v\n%+v", Default(), l)
	}
}

func TestRulesAndAlertingOverrides(t *testing.T) {
	c := defaults(t)
	m, err := ParseRuntimeConfig([]byte(`overrides:
  ws-a:
    ruler_max_rule_groups_namespaces: 3
    ruler_max_rules_per_workspace: 5000
    ruler_min_evaluation_interval: 10s
    alertmanager_max_templates_count: 0
    alertmanager_max_silences_count: 50
`), c.Limits)
	if err != nil {
		t.Fatal(err)
	}
	l := m["ws-a"]
	if l.RulerMaxRuleGroupsNamespaces != 3 || l.RulerMaxRulesPerWorkspace != 5000 || l.RulerMinEvaluationInterval != 10*time.Second ||
		l.AlertmanagerMaxTemplatesCount != 0 || l.AlertmanagerMaxSilencesCount != 50 || l.RulerMaxRulesPerRuleGroup != 20 {
		t.Fatalf("ws-a: %+v", l)
	}
	for body, want := range map[string]string{
		"overrides:\n  ws-a:\n    ruler_max_rules_per_workspace: -1\n":     "ruler limits",
		"overrides:\n  ws-a:\n    ruler_min_evaluation_interval: -1s\n":    "ruler limits",
		"overrides:\n  ws-a:\n    alertmanager_max_alerts_count: -1\n":     "alertmanager limits",
		"overrides:\n  ws-a:\n    alertmanager_max_config_size_bytes: x\n": "cannot unmarshal",
	} {
		if _, err := ParseRuntimeConfig([]byte(body), c.Limits); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error naming %s", body, err, want)
		}
	}
}

func TestParseRuntimeConfig(t *testing.T) {
	c := defaults(t)
	m, err := ParseRuntimeConfig([]byte("overrides:\n  ws-a:\n    ingestion_rate: 5\n    max_active_series: 10\n    max_metrics_with_metadata: 50000\n    max_metadata_length: 4096\n  ws-b: {}\n"), c.Limits)
	if err != nil {
		t.Fatal(err)
	}
	if m["ws-a"].IngestionRate != 5 || m["ws-a"].MaxActiveSeries != 10 || m["ws-a"].MaxActiveSeriesPerMetric != 200000 ||
		m["ws-a"].MaxMetricsWithMetadata != 50000 || m["ws-a"].MaxMetadataLength != 4096 || m["ws-a"].MaxLabelValueLength != 2048 {
		t.Fatalf("ws-a: %+v", m["ws-a"])
	}
	if *m["ws-b"] != c.Limits {
		t.Fatalf("ws-b: %+v", m["ws-b"])
	}
	for body, want := range map[string]string{
		"overrides:\n  ws-a:\n    ingestion_rat: 5\n":              "ingestion_rat",
		"overrides:\n  ws-a:\n    out_of_order_time_window: 11m\n": "out_of_order_time_window",
		"overrides:\n  ws-a:\n    ingestion_rate: -1\n":            "ingestion_rate",
		"overrids: {}\n": "overrids",
		"overrides:\n  ws-a:\n    retention_period_days: 0\n":      "retention_period_days",
		"overrides:\n  ws-a:\n    max_active_series: many\n":       "many",
		"overrides:\n  ws-a:\n    max_metadata_length: -1\n":       "must not be negative",
		"overrides:\n  ws-a:\n    max_metrics_with_metadata: -5\n": "must not be negative",
	} {
		if _, err := ParseRuntimeConfig([]byte(body), c.Limits); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error naming %s", body, err, want)
		}
	}
}

func TestOverridesReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rt.yaml")
	// Written atomically: a reload between os.WriteFile's truncate and write would read
	// an empty file, which is a valid one without overrides.
	write := func(s string) {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("overrides:\n  ws-a:\n    ingestion_rate: 5\n")
	c := defaults(t)
	c.RuntimeConfigFile = file
	c.RuntimeConfigReloadPeriod = 10 * time.Millisecond
	o, err := NewOverrides(c, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if o.For("ws-a").IngestionRate != 5 || o.For("ws-other").IngestionRate != 70000 {
		t.Fatal("initial load")
	}
	// Run reloads on its own.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = o.Run(ctx) }()
	write("overrides:\n  ws-a:\n    ingestion_rate: 7\n")
	testutil.Eventually(t, 5*time.Second, "Run to load the changed file", func() bool { return o.For("ws-a").IngestionRate == 7 })
	cancel()
	wg.Wait()

	// What a reload keeps is checked right after that reload, which the test makes.
	write("overrides: [broken")
	if err := o.reload(); err == nil {
		t.Fatal("a broken file reloaded without an error")
	}
	if o.For("ws-a").IngestionRate != 7 {
		t.Fatal("a bad file replaced the last good limits")
	}
	write("overrides: {}\n")
	if err := o.reload(); err != nil {
		t.Fatal(err)
	}
	if o.For("ws-a").IngestionRate != 70000 {
		t.Fatal("the fixed file was not loaded")
	}

	// A bad file at start is a configuration error.
	write("nope: 1\n")
	if _, err := NewOverrides(c, nil, prometheus.NewRegistry()); err == nil {
		t.Fatal("bad file accepted at start")
	}
}
