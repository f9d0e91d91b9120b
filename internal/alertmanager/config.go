package alertmanager

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"path/filepath"
	"time"
)

// Defaults of Config.
const (
	// DefaultPersistInterval is Cortex's -alertmanager.persist-interval. Silences are
	// written to the bucket as soon as the API changes them, so the interval only bounds
	// what a crash loses of the notification log (a group notified again once) and of
	// silence expiries. Each write is one PUT per workspace and state: at 15 minutes,
	// 1,000 busy workspaces cost about 2 PUTs a second.
	DefaultPersistInterval = 15 * time.Minute
	// DefaultResyncInterval bounds how long a missed change of the metadata, or a
	// definition that failed to load for a passing reason, waits.
	DefaultResyncInterval = time.Minute
	// DefaultRetention is Alertmanager's --data.retention: how long expired silences and
	// notification log entries are kept.
	DefaultRetention = 120 * time.Hour
	// DefaultResolveTimeout is Alertmanager's global.resolve_timeout.
	DefaultResolveTimeout = 5 * time.Minute
	// DefaultMaxConcurrentNotifications bounds the notifications one integration of a
	// workspace (a webhook, an SNS topic, …) has in flight at once. When thousands of
	// aggregation groups flush together, sending them a few at a time over reused
	// connections is faster than opening a connection and a deep stack for each: with it,
	// the burst of issue #10 (10,000 groups) is notified in half the time.
	DefaultMaxConcurrentNotifications = 4
)

// Config configures the multi-tenant Alertmanager.
type Config struct {
	// DataDir holds each workspace's working copies of its silences and notification
	// log (<dir>/<workspace>/silences, …/nflog), written with every persist. Empty means
	// <data-dir>/alertmanager (see Dir).
	DataDir string `yaml:"data_dir"`
	// PersistInterval is how often every running Alertmanager's silences and
	// notification log are garbage-collected and written to the bucket (and to DataDir).
	// They are also written at shutdown, and silences whenever the API changes them.
	PersistInterval time.Duration `yaml:"persist_interval"`
	// ResyncInterval is how often the Alertmanagers are reconciled with the workspaces'
	// definitions besides each change signalled by the metadata store.
	ResyncInterval time.Duration `yaml:"resync_interval"`
	// Retention is how long expired silences and notification log entries are kept.
	Retention time.Duration `yaml:"retention"`
	// ExternalURL is the URL clients reach Strata at, for links in notifications
	// ({{ .ExternalURL }} is <it>/workspaces/<id>/alertmanager). Empty means the
	// server's (Deps.ExternalURL).
	ExternalURL string `yaml:"external_url"`
	// ResolveTimeout is global.resolve_timeout for definitions that set none: an alert
	// received without an end time is resolved after it unless it is sent again.
	ResolveTimeout time.Duration `yaml:"resolve_timeout"`
	// MaxConcurrentNotifications is how many notifications each integration of each
	// workspace sends at once; the others of a burst wait (within their group's flush
	// timeout). Each integration has its own, so a slow receiver delays only its own.
	MaxConcurrentNotifications int `yaml:"max_concurrent_notifications"`
	// ReceiversFirewall limits the addresses receivers may connect to.
	ReceiversFirewall FirewallConfig `yaml:"receivers_firewall"`
}

// RegisterFlags registers the flags under "alertmanager.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DataDir, "alertmanager.data-dir", "", "Directory of the working copies of each workspace's silences and notification log. Empty means <data-dir>/alertmanager.")
	f.DurationVar(&c.PersistInterval, "alertmanager.persist-interval", DefaultPersistInterval, "How often each workspace's silences and notification log are written to the bucket (also at shutdown, and silences whenever the API changes them).")
	f.DurationVar(&c.ResyncInterval, "alertmanager.resync-interval", DefaultResyncInterval, "How often the Alertmanagers are reconciled with the workspaces' alert manager definitions, besides every change of the metadata.")
	f.DurationVar(&c.Retention, "alertmanager.retention", DefaultRetention, "How long expired silences and notification log entries are kept.")
	f.StringVar(&c.ExternalURL, "alertmanager.external-url", "", "URL of Strata in notification links ({{ .ExternalURL }} is <it>/workspaces/<id>/alertmanager). Empty means --external-url.")
	f.IntVar(&c.MaxConcurrentNotifications, "alertmanager.max-concurrent-notifications", DefaultMaxConcurrentNotifications, "Notifications each integration (receiver entry) of a workspace sends at once; the rest of a burst waits within its flush timeout.")
	c.ReceiversFirewall.RegisterFlags(f)
	f.DurationVar(&c.ResolveTimeout, "alertmanager.resolve-timeout", DefaultResolveTimeout, "global.resolve_timeout of definitions that set none: an alert received without an end time is resolved after it unless sent again.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.PersistInterval <= 0:
		return errors.New("persist_interval must be positive")
	case c.ResyncInterval <= 0:
		return errors.New("resync_interval must be positive")
	case c.Retention <= 0:
		return errors.New("retention must be positive")
	case c.ResolveTimeout <= 0:
		return errors.New("resolve_timeout must be positive")
	case c.MaxConcurrentNotifications <= 0:
		return errors.New("max_concurrent_notifications must be positive")
	}
	if c.ExternalURL != "" {
		if _, err := parseExternalURL(c.ExternalURL); err != nil {
			return fmt.Errorf("external_url: %w", err)
		}
	}
	return nil
}

// Dir is DataDir, or <dataDir>/alertmanager when it is empty.
func (c *Config) Dir(dataDir string) string {
	if c.DataDir != "" {
		return c.DataDir
	}
	return filepath.Join(dataDir, "alertmanager")
}

func parseExternalURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return u, nil
}
