package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
)

// plainWebhook notifies a webhook whose URL is a literal (see plainWebhooks) with the
// library's payload (amwebhook.Message, version 4), byte for byte, but without the work
// the library's notifier does for every notification that cannot change a literal URL's
// request: templating the URL (a clone of the template set each time) and the tracing
// transport. In a burst of 10,000 notifications these, with the garbage they made, were
// what kept the p99 latency above 2 s.
type plainWebhook struct {
	conf    *amwebhook.WebhookConfig
	tmpl    *template.Template
	logger  *slog.Logger
	client  *http.Client
	retrier notify.Retrier
}

func newPlainWebhook(conf *amwebhook.WebhookConfig, tmpl *template.Template, logger *slog.Logger, httpOpts []commoncfg.HTTPClientOption) (*plainWebhook, error) {
	// The library's client less its tracing wrapper: TLS, authorization, proxy and our
	// receivers firewall (httpOpts) all apply the same.
	client, err := commoncfg.NewClientFromConfig(*conf.HTTPConfig, "webhook", httpOpts...)
	if err != nil {
		return nil, err
	}
	return &plainWebhook{conf: conf, tmpl: tmpl, logger: logger, client: client}, nil
}

// plainWebhookIntegrations builds the integrations of webhooks that plainWebhooks
// accepted, named and numbered as the library numbers them.
func plainWebhookIntegrations(rcv config.Receiver, tmpl *template.Template, logger *slog.Logger, httpOpts []commoncfg.HTTPClientOption) ([]notify.Integration, error) {
	out := make([]notify.Integration, 0, len(rcv.WebhookConfigs))
	for i, c := range rcv.WebhookConfigs {
		n, err := newPlainWebhook(c, tmpl, logger.With("integration", "webhook"), httpOpts)
		if err != nil {
			return nil, fmt.Errorf("webhook %d: %w", i, err)
		}
		out = append(out, notify.NewIntegration(n, c, "webhook", i, rcv.Name))
	}
	return out, nil
}

// Notify implements notify.Notifier with the library webhook's semantics: max_alerts
// truncation, its payload, its timeout, its retry and failure reasons, and a redacted URL
// in errors.
func (n *plainWebhook) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	var truncated uint64
	if m := n.conf.MaxAlerts; m != 0 && uint64(len(alerts)) > m {
		alerts, truncated = alerts[:m], uint64(len(alerts))-m
	}
	groupKey, err := notify.ExtractGroupKey(ctx)
	if err != nil {
		return notify.Unrecoverable(err, notify.DefaultReason)
	}
	msg := amwebhook.Message{
		Data:            notify.GetTemplateData(ctx, n.tmpl, alerts, n.logger),
		Version:         "4",
		GroupKey:        groupKey.String(),
		TruncatedAlerts: truncated,
	}
	// Not pooled: the transport may still read a request body after RoundTrip returned.
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(&msg); err != nil {
		return notify.Unrecoverable(err, notify.DefaultReason)
	}
	if n.conf.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, n.conf.Timeout, fmt.Errorf("configured webhook timeout reached (%s)", n.conf.Timeout))
		defer cancel()
	}
	resp, err := notify.PostJSON(ctx, n.client, string(n.conf.URL), &buf)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
		return notify.Retry(0, notify.RedactURL(err), notify.DefaultReason)
	}
	defer notify.Drain(resp)
	if retry, err := n.retrier.Check(resp.StatusCode, resp.Body); err != nil {
		reason := notify.GetFailureReasonFromStatusCode(resp.StatusCode)
		if retry {
			return notify.Retry(0, err, reason)
		}
		return notify.Unrecoverable(err, reason)
	}
	return notify.Success()
}
