// Package limits is the one place to read a per-workspace limit. Defaults are AMP's
// published quotas; later issues add per-workspace overrides from the operator's runtime
// file and from UpdateWorkspaceConfiguration.
package limits

import (
	"errors"
	"flag"
)

// Config holds the server-wide defaults.
type Config struct {
	// RetentionPeriodDays is how long samples are kept when a workspace sets no retention.
	RetentionPeriodDays int `yaml:"retention_period_days"`
}

// RegisterFlags registers the flags under "limits.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.RetentionPeriodDays, "limits.retention-period-days", 150, "Retention period, in days, of workspaces that set none with UpdateWorkspaceConfiguration (AMP's default is 150).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.RetentionPeriodDays < 1 {
		return errors.New("retention period must be at least one day")
	}
	return nil
}
