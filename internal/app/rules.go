package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/notifier"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/distributor"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/ruler"
)

// ruleWriter stores the ruler's and the scrapers' samples through the distributor, as a
// remote write request: the same validation, limits and usage as any
// sender's samples (AMP counts recorded series as ingested samples), and a boundary
// that can cross a network.
type ruleWriter struct {
	dis     *distributor.Distributor
	decoder *remotewrite.Decoder
}

func (w ruleWriter) WriteRuleSamples(ctx context.Context, workspace string, samples []ruler.Sample) error {
	var body []byte
	for _, s := range samples {
		body = remotewrite.AppendV1Sample(body, s.Labels, s.T, s.F, s.H, s.FH)
	}
	req, err := w.decoder.Decode(remotewrite.V1, body)
	if err != nil {
		return fmt.Errorf("decoding samples: %w", err)
	}
	defer req.Release()
	_, err = w.Write(ctx, workspace, req, "")
	return err
}

// Write stores a request built in process (the scrapers') in a workspace; the
// distributor filters its series in place and keeps nothing of it. labelsChecked are
// the LabelChecks its series all passed, or "".
func (w ruleWriter) Write(ctx context.Context, workspace string, req *remotewrite.Request, labelsChecked string) (int, error) {
	res, err := w.dis.Write(ctx, workspace, req, distributor.WriteOptions{LabelsChecked: labelsChecked})
	return res.Samples + res.Histograms, err
}

// LabelChecks and CheckV1Labels let the scrapers check each series' labels once.
func (w ruleWriter) LabelChecks(workspace string) string { return w.dis.LabelChecks(workspace) }

func (w ruleWriter) CheckV1Labels(workspace string, labelFields []byte) (string, bool) {
	return w.dis.CheckV1Labels(workspace, labelFields)
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
