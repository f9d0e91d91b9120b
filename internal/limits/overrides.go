package limits

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"github.com/stratametrics/strata/internal/periodic"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config configures the limits: the defaults and the runtime file.
type Config struct {
	// Limits are the server-wide defaults, inline in the limits block.
	Limits `yaml:",inline"`
	// RuntimeConfigFile holds per-workspace overrides; empty means none.
	RuntimeConfigFile string `yaml:"runtime_config_file"`
	// RuntimeConfigReloadPeriod is how often the runtime file is checked for changes.
	RuntimeConfigReloadPeriod time.Duration `yaml:"runtime_config_reload_period"`
}

// RegisterFlags registers the flags under "limits.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Limits.RegisterFlags(f)
	f.StringVar(&c.RuntimeConfigFile, "limits.runtime-config-file", "", "YAML file of per-workspace overrides (overrides: {<workspace id>: {<limit>: <value>}}), reloaded without a restart. A file that does not parse keeps the last good one.")
	f.DurationVar(&c.RuntimeConfigReloadPeriod, "limits.runtime-config-reload-period", 10*time.Second, "How often to check the runtime config file for changes.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if c.RuntimeConfigFile != "" && c.RuntimeConfigReloadPeriod <= 0 {
		return errors.New("runtime_config_reload_period must be positive")
	}
	return nil
}

// Overrides answers the limits of each workspace. Safe for concurrent use; For is a map
// lookup on an immutable snapshot, cheap enough for every request.
type Overrides struct {
	cfg      Config
	logger   *slog.Logger
	current  atomic.Pointer[map[string]*Limits]
	lastHash [32]byte
	loads    *prometheus.CounterVec
	lastOK   prometheus.Gauge
}

// NewOverrides returns Overrides and loads the runtime file once, failing if it does not
// parse: a bad file at start is a configuration error, later it only logs.
func NewOverrides(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Overrides, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	o := &Overrides{
		cfg:    cfg,
		logger: logger,
		loads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_limits_runtime_config_loads_total",
			Help: "Loads of the runtime limits file, by outcome.",
		}, []string{"outcome"}),
		lastOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_limits_runtime_config_last_reload_successful",
			Help: "Whether the last load of the runtime limits file succeeded.",
		}),
	}
	empty := map[string]*Limits{}
	o.current.Store(&empty)
	if cfg.RuntimeConfigFile != "" {
		if err := o.reload(); err != nil {
			return nil, err
		}
	} else {
		o.lastOK.Set(1)
	}
	return o, nil
}

// For returns the limits of workspace. The result must not be modified.
func (o *Overrides) For(workspace string) *Limits {
	if l, ok := (*o.current.Load())[workspace]; ok {
		return l
	}
	return &o.cfg.Limits
}

// Defaults returns the server-wide defaults.
func (o *Overrides) Defaults() *Limits { return &o.cfg.Limits }

// MaxHAClusters implements hatracker.Limits.
func (o *Overrides) MaxHAClusters(workspace string) int { return o.For(workspace).MaxHAClusters }

func (o *Overrides) reload() error {
	body, err := os.ReadFile(o.cfg.RuntimeConfigFile)
	if err == nil {
		sum := sha256.Sum256(body)
		if sum == o.lastHash {
			return nil
		}
		var m map[string]*Limits
		if m, err = ParseRuntimeConfig(body, o.cfg.Limits); err == nil {
			o.current.Store(&m)
			o.lastHash = sum
			o.loads.WithLabelValues("success").Inc()
			o.lastOK.Set(1)
			o.logger.Info("runtime limits loaded", "file", o.cfg.RuntimeConfigFile, "workspaces", len(m))
			return nil
		}
	}
	o.loads.WithLabelValues("failure").Inc()
	o.lastOK.Set(0)
	return err
}

// Run reloads the runtime file every reload period until ctx is done.
func (o *Overrides) Run(ctx context.Context) error {
	if o.cfg.RuntimeConfigFile == "" {
		<-ctx.Done()
		return nil
	}
	periodic.Every(ctx, o.cfg.RuntimeConfigReloadPeriod, func(context.Context) {
		if err := o.reload(); err != nil {
			o.logger.Error("reloading runtime limits; keeping the last good ones", "file", o.cfg.RuntimeConfigFile, "err", err)
		}
	})
	return nil
}
