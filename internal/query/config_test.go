package query

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

func TestConfigFlags(t *testing.T) {
	cfg := testConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	want := QueryLimits{
		Timeout: 60 * time.Second, MaxSamples: 50_000_000, MaxSeries: 1_000_000,
		MaxConcurrent: 20, MaxQueued: 100,
		MaxInstantQueryLookback: 32 * 24 * time.Hour, MaxRangeQueryLength: 95 * 24 * time.Hour,
	}
	if got := cfg.Limits(); got != want {
		t.Fatalf("default limits = %+v, want %+v", got, want)
	}
	if cfg.LookbackDelta != 5*time.Minute || cfg.EnableExperimentalFunctions || cfg.SlowQueryLogThreshold != 10*time.Second || cfg.Parallelism != 0 {
		t.Fatalf("defaults: %+v", cfg)
	}
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	n, backendFlags := 0, 0
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "query.results-cache.") {
			backendFlags++ // ResultsCacheConfig's
			return
		}
		n++
		if !strings.HasPrefix(f.Name, "query.") {
			t.Errorf("flag %s is not under query.", f.Name)
		}
	})
	if backendFlags != 17 {
		t.Errorf("%d flags under query.results-cache., want one per ResultsCacheConfig field but the password (17)", backendFlags)
	}
	if rc := cfg.ResultsCache; rc.Backend != CacheBackendMemory || rc.TTL != 7*24*time.Hour || rc.MaxItemSize != 1<<20 || rc.Memcached.Timeout != 200*time.Millisecond || rc.Redis.Timeout != 500*time.Millisecond {
		t.Errorf("results cache backend defaults: %+v", rc)
	}
	if n != 19 {
		t.Errorf("%d flags, want one per Config field (19)", n)
	}
	if cfg.ResultsCacheSize != 256<<20 || cfg.SplitInterval != 24*time.Hour || cfg.CacheMaxFreshness != 10*time.Minute {
		t.Errorf("results cache defaults: %d %v %v", cfg.ResultsCacheSize, cfg.SplitInterval, cfg.CacheMaxFreshness)
	}
	if cfg.MaxConcurrentTotal != 64 || cfg.MaxSamplesTotal != 1_000_000_000 || cfg.MaxWaitTotal != 10*time.Second {
		t.Errorf("server-wide defaults: %d %d %v", cfg.MaxConcurrentTotal, cfg.MaxSamplesTotal, cfg.MaxWaitTotal)
	}

	for _, mod := range []func(*Config){
		func(c *Config) { c.Timeout = 0 },
		func(c *Config) { c.MaxConcurrent = 0 },
		func(c *Config) { c.MaxSamples = -1 },
		func(c *Config) { c.MaxQueued = -1 },
		func(c *Config) { c.LookbackDelta = 0 },
		func(c *Config) { c.MaxRangeQueryLength = -time.Second },
		func(c *Config) { c.SlowQueryLogThreshold = -time.Second },
		func(c *Config) { c.DefaultEvaluationInterval = 0 },
		func(c *Config) { c.Parallelism = -1 },
		func(c *Config) { c.MaxConcurrentTotal = -1 },
		func(c *Config) { c.MaxSamplesTotal = -1 },
		func(c *Config) { c.MaxWaitTotal = -time.Second },
		func(c *Config) { c.ResultsCache.Backend = "disk" },
		func(c *Config) { c.ResultsCache.Backend = CacheBackendMemcached },
		func(c *Config) { c.ResultsCache.Backend = CacheBackendRedis },
		func(c *Config) {
			c.ResultsCache.Backend, c.ResultsCache.Redis.Endpoint, c.ResultsCache.TTL = CacheBackendRedis, "localhost:6379", time.Millisecond
		},
		func(c *Config) {
			c.ResultsCache.Backend, c.ResultsCache.Memcached.Addresses, c.ResultsCache.MaxItemSize = CacheBackendMemcached, "localhost:11211", 0
		},
		func(c *Config) {
			c.ResultsCache.Backend, c.ResultsCache.Redis.Endpoint, c.ResultsCache.Redis.TLSCertPath = CacheBackendRedis, "localhost:6379", "cert.pem"
		},
	} {
		c := testConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("invalid config %+v validated", c)
		}
	}
}
