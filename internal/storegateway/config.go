package storegateway

import (
	"errors"
	"flag"
	"time"
)

// Config configures the store-gateway.
type Config struct {
	// Dir caches the blocks downloaded from the bucket, one directory per workspace.
	// Empty means <data-dir>/store-gateway.
	Dir string `yaml:"dir"`
	// DiskBudgetBytes bounds the bytes of blocks kept in Dir; beyond it whole blocks are
	// evicted, least recently used first. Blocks read by an open querier are never
	// evicted, so a query wider than the budget still runs (over budget until it closes).
	// Zero means no limit.
	DiskBudgetBytes int64 `yaml:"disk_budget_bytes"`
	// SyncInterval is how often each known workspace's block list is read from the bucket.
	// A workspace is also synced on its first query.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// DownloadConcurrency bounds the blocks one query downloads at a time.
	DownloadConcurrency int `yaml:"download_concurrency"`
	// IdleClose closes an open block no query has read for this long (its files stay):
	// what an open block holds in memory (its index's tables, kept hashes and symbols,
	// mappings) goes back. Zero keeps blocks open until evicted.
	IdleClose time.Duration `yaml:"idle_close"`
}

// Defaults.
const (
	DefaultDiskBudgetBytes     = 10 << 30
	DefaultSyncInterval        = time.Minute
	DefaultDownloadConcurrency = 4
	DefaultIdleClose           = time.Hour
)

// RegisterFlags registers the flags under "store-gateway.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Dir, "store-gateway.dir", "", "Directory caching blocks downloaded from the bucket. Empty means <data-dir>/store-gateway.")
	f.Int64Var(&c.DiskBudgetBytes, "store-gateway.disk-budget-bytes", DefaultDiskBudgetBytes, "Bytes of blocks kept in the store-gateway directory; beyond it the least recently used blocks not being read are removed. 0 means no limit.")
	f.DurationVar(&c.SyncInterval, "store-gateway.sync-interval", DefaultSyncInterval, "How often each workspace's block list is refreshed from the bucket.")
	f.IntVar(&c.DownloadConcurrency, "store-gateway.download-concurrency", DefaultDownloadConcurrency, "Blocks one query downloads from the bucket at a time.")
	f.DurationVar(&c.IdleClose, "store-gateway.idle-close", DefaultIdleClose, "Close a block no query has read for this long, keeping its files: the memory an open block holds (index tables, kept hashes and symbols) goes back. Checked at every sync. 0 keeps blocks open until evicted.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.DiskBudgetBytes < 0 {
		return errors.New("disk_budget_bytes must not be negative")
	}
	if c.SyncInterval <= 0 {
		return errors.New("sync_interval must be positive")
	}
	if c.IdleClose < 0 {
		return errors.New("idle_close must not be negative")
	}
	if c.DownloadConcurrency < 1 {
		return errors.New("download_concurrency must be at least 1")
	}
	return nil
}
