package hatracker

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Defaults follow AMP's published behaviour and Cortex's flags.
const (
	DefaultClusterLabel    = "cluster"
	DefaultReplicaLabel    = "__replica__"
	DefaultFailoverTimeout = 30 * time.Second
	DefaultUpdateTimeout   = 15 * time.Second
	DefaultMaxClusters     = 500
	// DefaultIdleTimeout matches Cortex, which marks an election for deletion
	// once its last sample is more than 30 minutes old.
	DefaultIdleTimeout = 30 * time.Minute
)

// Config configures a [Tracker].
type Config struct {
	// ClusterLabel names the label that groups replicas; it is kept on stored
	// series. Must not be empty.
	ClusterLabel string `yaml:"cluster_label"`
	// ReplicaLabel names the label that tells replicas apart; it is removed
	// before storage. Must not be empty nor equal to ClusterLabel.
	ReplicaLabel string `yaml:"replica_label"`
	// FailoverTimeout is how long the elected replica may stay silent before
	// the next replica that sends is elected. Must be > 0.
	FailoverTimeout time.Duration `yaml:"failover_timeout"`
	// UpdateTimeout throttles persistence of heartbeats: the elected replica's
	// ReceivedAt is reported as changed once it has advanced by at least this
	// much since it was last reported. 0 reports every advance. Must be below
	// FailoverTimeout, or a restarted tracker could restore a timestamp old
	// enough to fail over a healthy leader.
	UpdateTimeout time.Duration `yaml:"update_timeout"`
	// MaxClusters is the number of clusters tracked per workspace; a sample
	// for one more is refused. 0 means no limit. Unused when [New] is given a
	// [Limits], which then answers for every workspace.
	MaxClusters int `yaml:"max_clusters"`
	// IdleTimeout is how long a cluster may go without an accepted sample
	// before [Tracker.GC] forgets it. 0 means never.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// DefaultConfig returns the configuration RegisterFlags installs.
func DefaultConfig() Config {
	return Config{
		ClusterLabel:    DefaultClusterLabel,
		ReplicaLabel:    DefaultReplicaLabel,
		FailoverTimeout: DefaultFailoverTimeout,
		UpdateTimeout:   DefaultUpdateTimeout,
		MaxClusters:     DefaultMaxClusters,
		IdleTimeout:     DefaultIdleTimeout,
	}
}

// RegisterFlags registers the flags under the "ha-tracker." prefix.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	d := DefaultConfig()
	f.StringVar(&c.ClusterLabel, "ha-tracker.cluster-label", d.ClusterLabel, "Label that identifies the HA cluster (replica group) of a series; kept on stored series.")
	f.StringVar(&c.ReplicaLabel, "ha-tracker.replica-label", d.ReplicaLabel, "Label that identifies the replica within an HA cluster; removed before storage.")
	f.DurationVar(&c.FailoverTimeout, "ha-tracker.failover-timeout", d.FailoverTimeout, "Elect another replica once the elected one has sent nothing for this long.")
	f.DurationVar(&c.UpdateTimeout, "ha-tracker.update-timeout", d.UpdateTimeout, "Persist the elected replica's last-sample time at most this often. 0 persists every advance.")
	f.IntVar(&c.MaxClusters, "ha-tracker.max-clusters", d.MaxClusters, "Maximum number of HA clusters per workspace. 0 means no limit.")
	f.DurationVar(&c.IdleTimeout, "ha-tracker.idle-timeout", d.IdleTimeout, "Forget a cluster after this long without samples. 0 means never.")
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.ClusterLabel == "":
		return errors.New("cluster_label must not be empty")
	case c.ReplicaLabel == "":
		return errors.New("replica_label must not be empty")
	case c.ClusterLabel == c.ReplicaLabel:
		return fmt.Errorf("cluster_label and replica_label must differ, both are %q", c.ClusterLabel)
	case c.FailoverTimeout <= 0:
		return fmt.Errorf("failover_timeout must be positive, got %v", c.FailoverTimeout)
	case c.UpdateTimeout < 0:
		return fmt.Errorf("update_timeout must not be negative, got %v", c.UpdateTimeout)
	case c.UpdateTimeout >= c.FailoverTimeout:
		return fmt.Errorf("update_timeout (%v) must be below failover_timeout (%v)", c.UpdateTimeout, c.FailoverTimeout)
	case c.MaxClusters < 0:
		return fmt.Errorf("max_clusters must not be negative, got %d", c.MaxClusters)
	case c.IdleTimeout < 0:
		return fmt.Errorf("idle_timeout must not be negative, got %v", c.IdleTimeout)
	case c.IdleTimeout > 0 && c.IdleTimeout <= c.FailoverTimeout:
		// Forgetting a cluster inside the failover window would let any
		// replica win the next election: an early failover.
		return fmt.Errorf("idle_timeout (%v) must exceed failover_timeout (%v)", c.IdleTimeout, c.FailoverTimeout)
	}
	return nil
}
