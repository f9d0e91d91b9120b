package usage

import (
	"context"
	"errors"
	"flag"
	"github.com/stratametrics/strata/internal/periodic"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
)

// ExportConfig configures the copy of the usage metrics into a workspace, where they are
// queryable with PromQL (and so alertable), like AMP's vended metrics in CloudWatch.
type ExportConfig struct {
	// MonitoringWorkspace receives Strata's usage series; empty means no export.
	MonitoringWorkspace string `yaml:"monitoring_workspace"`
	// Interval is how often the usage series are written.
	Interval time.Duration `yaml:"interval"`
}

// RegisterFlags registers the flags under "usage.".
func (c *ExportConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.MonitoringWorkspace, "usage.monitoring-workspace", "", "Workspace id that Strata writes its per-workspace usage series (strata_workspace_*) into, so they can be queried and alerted on with PromQL. Empty disables.")
	f.DurationVar(&c.Interval, "usage.interval", 30*time.Second, "How often the usage series are written to the monitoring workspace.")
}

// Validate checks the configuration.
func (c *ExportConfig) Validate() error {
	if c.MonitoringWorkspace != "" && c.Interval < time.Second {
		return errors.New("interval must be at least 1s")
	}
	return nil
}

// WriteFunc stores a remote-write 1.0 request in a workspace, bypassing authentication
// and quotas (Strata writing about itself).
type WriteFunc func(ctx context.Context, workspace string, req *prompb.WriteRequest) error

// Exporter copies the usage metrics into the monitoring workspace.
type Exporter struct {
	cfg      ExportConfig
	gatherer prometheus.Gatherer
	write    WriteFunc
	logger   *slog.Logger
	now      func() time.Time
}

// NewExporter returns an exporter of the strata_workspace_* series of gatherer.
func NewExporter(cfg ExportConfig, gatherer prometheus.Gatherer, write WriteFunc, logger *slog.Logger) *Exporter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Exporter{cfg: cfg, gatherer: gatherer, write: write, logger: logger, now: time.Now}
}

// Run exports every interval until ctx is done; with no monitoring workspace it waits.
func (e *Exporter) Run(ctx context.Context) error {
	if e.cfg.MonitoringWorkspace == "" {
		<-ctx.Done()
		return nil
	}
	periodic.Every(ctx, e.cfg.Interval, func(ctx context.Context) {
		if err := e.ExportOnce(ctx); err != nil && ctx.Err() == nil {
			e.logger.Warn("writing usage series to the monitoring workspace", "workspace", e.cfg.MonitoringWorkspace, "err", err)
		}
	})
	return nil
}

// ExportOnce writes the current value of every usage series.
func (e *Exporter) ExportOnce(ctx context.Context) error {
	mfs, err := e.gatherer.Gather()
	if err != nil {
		return err
	}
	ts := e.now().UnixMilli()
	req := &prompb.WriteRequest{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "strata_workspace_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			v, ok := value(mf.GetType(), m)
			if !ok {
				continue
			}
			lbls := []prompb.Label{{Name: "__name__", Value: name}}
			for _, lp := range m.GetLabel() {
				lbls = append(lbls, prompb.Label{Name: lp.GetName(), Value: lp.GetValue()})
			}
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: lbls, Samples: []prompb.Sample{{Value: v, Timestamp: ts}}})
			req.Metadata = appendMetadata(req.Metadata, mf)
		}
	}
	if len(req.Timeseries) == 0 {
		return nil
	}
	return e.write(ctx, e.cfg.MonitoringWorkspace, req)
}

func value(t dto.MetricType, m *dto.Metric) (float64, bool) {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), true
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), true
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), true
	}
	return math.NaN(), false
}

func appendMetadata(md []prompb.MetricMetadata, mf *dto.MetricFamily) []prompb.MetricMetadata {
	if len(md) > 0 && md[len(md)-1].MetricFamilyName == mf.GetName() {
		return md
	}
	t := prompb.MetricMetadata_GAUGE
	if mf.GetType() == dto.MetricType_COUNTER {
		t = prompb.MetricMetadata_COUNTER
	}
	return append(md, prompb.MetricMetadata{Type: t, MetricFamilyName: mf.GetName(), Help: mf.GetHelp()})
}
