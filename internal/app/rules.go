package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/distributor"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/ruler"
)

// ruleWriter stores the ruler's samples through the distributor, encoded as a remote
// write request: the same validation, limits and usage as any sender's samples (AMP
// counts recorded series as ingested samples), and a boundary that can cross a network.
type ruleWriter struct {
	dis     *distributor.Distributor
	decoder *remotewrite.Decoder
}

func (w ruleWriter) WriteRuleSamples(ctx context.Context, workspace string, samples []ruler.Sample) error {
	wr := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(samples))}
	for i, s := range samples {
		ts := &wr.Timeseries[i]
		ts.Labels = make([]prompb.Label, 0, s.Labels.Len())
		s.Labels.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		switch {
		case s.FH != nil:
			ts.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(s.T, s.FH)}
		case s.H != nil:
			ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(s.T, s.H)}
		default:
			ts.Samples = []prompb.Sample{{Value: s.F, Timestamp: s.T}}
		}
	}
	b, err := wr.Marshal()
	if err != nil {
		return fmt.Errorf("encoding rule samples: %w", err)
	}
	req, err := w.decoder.Decode(remotewrite.V1, b)
	if err != nil {
		return fmt.Errorf("decoding rule samples: %w", err)
	}
	defer req.Release()
	_, err = w.dis.Write(ctx, workspace, req)
	return err
}

// alertmanagerLimits gives the alertmanager its run-time quotas from the limits
// (flags and the runtime file).
type alertmanagerLimits struct{ o *limits.Overrides }

func (l alertmanagerLimits) AlertmanagerLimits(ws string) (int, int) {
	lim := l.o.For(ws)
	return lim.AlertmanagerMaxAlertsCount, lim.AlertmanagerMaxAlertsSizeBytes
}

func (l alertmanagerLimits) AlertmanagerMaxSilences(ws string) int {
	return l.o.For(ws).AlertmanagerMaxSilencesCount
}

func (l alertmanagerLimits) AlertmanagerMaxAggregationGroups(ws string) int {
	return l.o.For(ws).AlertmanagerMaxAggregationGroups
}

// alertSender hands the ruler's alerts to the workspace's Alertmanager in-process.
type alertSender struct{ am *alertmanager.MultiTenant }

func (s alertSender) SendAlerts(ctx context.Context, ws string, alerts []*notifier.Alert) error {
	err := s.am.SendAlerts(ctx, ws, alerts)
	if errors.Is(err, alertmanager.ErrNoAlertmanager) {
		return fmt.Errorf("%w: %w", ruler.ErrNoAlertmanager, err)
	}
	return err
}
