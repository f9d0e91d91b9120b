package query

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// AMP's published query quotas, the defaults of Config.
const (
	DefaultTimeout                 = 60 * time.Second
	DefaultMaxSamples              = 50_000_000
	DefaultMaxSeries               = 1_000_000
	DefaultMaxConcurrent           = 20
	DefaultMaxQueued               = 100
	DefaultMaxInstantQueryLookback = 32 * 24 * time.Hour
	DefaultMaxRangeQueryLength     = 95 * 24 * time.Hour
)

// Defaults of the server-wide limits, across workspaces.
const (
	// DefaultMaxConcurrentTotal is a fixed number, not a multiple of GOMAXPROCS: the
	// configuration reference is generated from the defaults and must not depend on the
	// machine that generates it, and requests wait on storage (the bucket) as much as on
	// CPUs. 64 lets three workspaces run at their own default limit (20) at once; memory
	// is bounded by DefaultMaxSamplesTotal, not by this.
	DefaultMaxConcurrentTotal = 64
	// DefaultMaxSamplesTotal is what one Prometheus allows at its defaults: 20 concurrent
	// queries (--query.max-concurrency) of 50,000,000 samples each (--query.max-samples),
	// about 16 GB of float samples at the worst. It admits 20 queries at the default
	// samples limit at once, whichever workspaces they come from.
	DefaultMaxSamplesTotal = 20 * DefaultMaxSamples
	// DefaultMaxWaitTotal is short next to DefaultTimeout: a server that stays full for
	// it is overloaded, and a quick 503 lets clients back off instead of piling up.
	DefaultMaxWaitTotal = 10 * time.Second
)

// Config configures the query API. The limits here are the server-wide defaults; Limits
// may override them per workspace.
type Config struct {
	// Timeout bounds a request, its wait for a query slot included. A request's own
	// timeout parameter can only shorten it.
	Timeout time.Duration `yaml:"timeout"`
	// MaxSamples caps the samples a query holds in memory at once (Prometheus'
	// --query.max-samples, AMP's "query samples" quota). Zero means no limit.
	MaxSamples int `yaml:"max_samples"`
	// MaxSeries caps the series a request reads from storage, summed over its selectors.
	// Zero means no limit.
	MaxSeries int `yaml:"max_series"`
	// MaxConcurrent is how many requests of one workspace read data at once.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxQueued is how many more requests of one workspace wait for a slot; beyond it
	// requests are refused with 429. Zero means none wait.
	MaxQueued int `yaml:"max_queued"`
	// MaxInstantQueryLookback refuses instant queries whose selectors reach this far back
	// or further. Zero means no limit.
	MaxInstantQueryLookback time.Duration `yaml:"max_instant_query_lookback"`
	// MaxRangeQueryLength refuses range queries reading a longer time range. Zero means
	// no limit.
	MaxRangeQueryLength time.Duration `yaml:"max_range_query_length"`
	// LookbackDelta is how far back PromQL looks for a sample at each step.
	LookbackDelta time.Duration `yaml:"lookback_delta"`
	// DefaultEvaluationInterval is the step of subqueries that set none (`x[1h:]`).
	DefaultEvaluationInterval time.Duration `yaml:"default_evaluation_interval"`
	// EnableExperimentalFunctions admits PromQL's experimental functions and modifiers.
	EnableExperimentalFunctions bool `yaml:"enable_experimental_functions"`
	// Parallelism is how many parts of its steps a long range query is evaluated in at
	// once (split.go). Zero means one per CPU; 1 evaluates every query whole.
	Parallelism int `yaml:"parallelism"`
	// Shards is how many shards of their series the aggregations of an instant query,
	// or of a range query too short to split by steps, are evaluated in at once
	// (shard.go). Below 2, none.
	Shards int `yaml:"shards"`
	// SlowQueryLogThreshold logs requests that take at least this long. Zero disables
	// the log.
	SlowQueryLogThreshold time.Duration `yaml:"slow_query_log_threshold"`
	// ResultsCacheSize bounds the range query answers kept in memory (cache.go), in
	// bytes, with the memory backend; zero disables the cache there.
	ResultsCacheSize int64 `yaml:"results_cache_size"`
	// ResultsCache chooses where the results cache keeps its extents.
	ResultsCache ResultsCacheConfig `yaml:"results_cache"`
	// SplitInterval is the span of a cached extent (a day, aligned to UTC midnight).
	SplitInterval time.Duration `yaml:"split_interval"`
	// CacheMaxFreshness: steps newer than this are evaluated, never cached (at least
	// minCacheFreshness, the longest out-of-order window).
	CacheMaxFreshness time.Duration `yaml:"cache_max_freshness"`

	// MaxConcurrentTotal caps the requests that read data at once across all workspaces;
	// each also holds one of its workspace's MaxConcurrent slots. Zero means no
	// server-wide cap.
	MaxConcurrentTotal int `yaml:"max_concurrent_total"`
	// MaxSamplesTotal is the server's budget of samples held in memory by PromQL queries:
	// each running query reserves its own samples limit (MaxSamples, or its workspace's
	// override) from it until its answer is encoded, the parts of a split range query
	// sharing their query's reservation; no query's limit is more than the budget. Zero
	// means no budget.
	MaxSamplesTotal int `yaml:"max_samples_total"`
	// MaxWaitTotal bounds how long a request waits, the workspaces in turn, for
	// MaxConcurrentTotal or MaxSamplesTotal; then, or at its own deadline, it answers
	// 503. The wait counts against the request's timeout. Zero means requests do not
	// wait: refused at once.
	MaxWaitTotal time.Duration `yaml:"max_wait_total"`
}

// ResultsCacheConfig chooses the results cache's backend: this process' memory, or a
// memcached or Redis server that processes share (cachebackend.go).
type ResultsCacheConfig struct {
	// Backend is CacheBackendMemory, CacheBackendMemcached or CacheBackendRedis.
	Backend string `yaml:"backend"`
	// TTL is how long a remote backend keeps an extent; zero means until evicted.
	TTL time.Duration `yaml:"ttl"`
	// MaxItemSize: extents whose encoding is larger are not stored in a remote backend.
	MaxItemSize int `yaml:"max_item_size"`
	// Memcached configures the memcached backend.
	Memcached MemcachedConfig `yaml:"memcached"`
	// Redis configures the Redis backend.
	Redis RedisConfig `yaml:"redis"`
}

// MemcachedConfig is a memcached client's configuration.
type MemcachedConfig struct {
	// Addresses are memcached servers, comma-separated: host:port, or the path of a unix
	// socket. Keys are spread over them by hash. Names are resolved at start.
	Addresses string `yaml:"addresses"`
	// Timeout bounds connecting and each request.
	Timeout time.Duration `yaml:"timeout"`
	// MaxIdleConnections are kept open per server.
	MaxIdleConnections int `yaml:"max_idle_connections"`
}

// RedisConfig is a Redis client's configuration (one server, or a proxy).
type RedisConfig struct {
	// Endpoint is host:port, or the path of a unix socket.
	Endpoint string `yaml:"endpoint"`
	// Username is the ACL user; empty: the default user.
	Username string `yaml:"username"`
	// Password comes from STRATA_QUERY_RESULTS_CACHE_REDIS_PASSWORD, never from a file
	// or a flag.
	Password string `yaml:"-"`
	// DB is the database number.
	DB int `yaml:"db"`
	// Timeout bounds connecting and each request.
	Timeout time.Duration `yaml:"timeout"`
	// PoolSize is the most connections kept; zero means 10 per CPU.
	PoolSize int `yaml:"pool_size"`
	// TLSEnabled connects with TLS, verified with TLSCAPath (empty: the system's CAs)
	// unless TLSInsecureSkipVerify; TLSCertPath and TLSKeyPath are a client certificate.
	TLSEnabled            bool   `yaml:"tls_enabled"`
	TLSCAPath             string `yaml:"tls_ca_path"`
	TLSCertPath           string `yaml:"tls_cert_path"`
	TLSKeyPath            string `yaml:"tls_key_path"`
	TLSServerName         string `yaml:"tls_server_name"`
	TLSInsecureSkipVerify bool   `yaml:"tls_insecure_skip_verify"`
}

// RedisPasswordEnv is the environment variable of the Redis backend's password.
const RedisPasswordEnv = "STRATA_QUERY_RESULTS_CACHE_REDIS_PASSWORD"

func (c *ResultsCacheConfig) registerFlags(f *flag.FlagSet) {
	const p = "query.results-cache."
	f.StringVar(&c.Backend, p+"backend", CacheBackendMemory, "Where the results cache keeps its extents: memory (this process, --query.results-cache-size), memcached or redis (a server that every process pointing at it shares, so one finds the answers another evaluated). A failing server is a cache miss, never a failed query.")
	f.DurationVar(&c.TTL, p+"ttl", 7*24*time.Hour, "How long memcached or Redis keeps a cached extent. 0 means until the server evicts it.")
	f.IntVar(&c.MaxItemSize, p+"max-item-size", 1<<20, "Largest encoded extent stored in memcached or Redis, in bytes; larger ones are evaluated every time. Keep it within memcached's item size (-I, 1 MiB by default), which counts the key too.")
	f.StringVar(&c.Memcached.Addresses, p+"memcached.addresses", "", "Comma-separated memcached servers (host:port or a unix socket path) for --query.results-cache.backend=memcached; keys are spread over them by hash. Host names are resolved at start.")
	f.DurationVar(&c.Memcached.Timeout, p+"memcached.timeout", 200*time.Millisecond, "Longest memcached may take to connect or to answer a request; then the request is a miss.")
	f.IntVar(&c.Memcached.MaxIdleConnections, p+"memcached.max-idle-connections", 100, "Idle connections kept open to each memcached server.")
	f.StringVar(&c.Redis.Endpoint, p+"redis.endpoint", "", "Redis server (host:port or a unix socket path) for --query.results-cache.backend=redis. The password, if any, is read from "+RedisPasswordEnv+".")
	f.StringVar(&c.Redis.Username, p+"redis.username", "", "Redis ACL user name; empty means the default user.")
	f.IntVar(&c.Redis.DB, p+"redis.db", 0, "Redis database number.")
	f.DurationVar(&c.Redis.Timeout, p+"redis.timeout", 500*time.Millisecond, "Longest Redis may take to connect or to answer a request (a retry included); then the request is a miss.")
	f.IntVar(&c.Redis.PoolSize, p+"redis.pool-size", 0, "Most connections to Redis. 0 means 10 per CPU.")
	f.BoolVar(&c.Redis.TLSEnabled, p+"redis.tls-enabled", false, "Connect to Redis with TLS.")
	f.StringVar(&c.Redis.TLSCAPath, p+"redis.tls-ca-path", "", "PEM CA bundle verifying Redis' certificate; empty means the system's CAs.")
	f.StringVar(&c.Redis.TLSCertPath, p+"redis.tls-cert-path", "", "PEM client certificate for Redis (mutual TLS).")
	f.StringVar(&c.Redis.TLSKeyPath, p+"redis.tls-key-path", "", "PEM private key of --query.results-cache.redis.tls-cert-path.")
	f.StringVar(&c.Redis.TLSServerName, p+"redis.tls-server-name", "", "Name to verify Redis' certificate against; empty means the endpoint's host.")
	f.BoolVar(&c.Redis.TLSInsecureSkipVerify, p+"redis.tls-insecure-skip-verify", false, "Do not verify Redis' certificate (testing only).")
	c.Redis.Password = os.Getenv(RedisPasswordEnv)
}

// Validate checks the configuration.
func (c *ResultsCacheConfig) Validate() error {
	switch c.Backend {
	case CacheBackendMemory:
		return nil
	case CacheBackendMemcached:
		if strings.TrimSpace(c.Memcached.Addresses) == "" {
			return errors.New("memcached.addresses is required with the memcached backend")
		}
		if c.Memcached.Timeout <= 0 {
			return errors.New("memcached.timeout must be positive")
		}
	case CacheBackendRedis:
		if c.Redis.Endpoint == "" {
			return errors.New("redis.endpoint is required with the redis backend")
		}
		if c.Redis.Timeout <= 0 || c.Redis.PoolSize < 0 || c.Redis.DB < 0 {
			return errors.New("redis.timeout must be positive, redis.pool_size and redis.db not negative")
		}
		if (c.Redis.TLSCertPath == "") != (c.Redis.TLSKeyPath == "") {
			return errors.New("redis.tls_cert_path and redis.tls_key_path go together")
		}
	default:
		return fmt.Errorf("backend: unknown results cache backend %q (memory, memcached or redis)", c.Backend)
	}
	if c.TTL != 0 && c.TTL < time.Second {
		return errors.New("ttl must be 0 or at least 1s")
	}
	if c.MaxItemSize <= 0 {
		return errors.New("max_item_size must be positive")
	}
	return nil
}

// RegisterFlags registers the flags under "query.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "query.timeout", DefaultTimeout, "Longest a query request may take, waiting for a slot included (AMP: 60s); over it the request answers 422 \"query timed out - consider simplifying your query\".")
	f.IntVar(&c.MaxSamples, "query.max-samples", DefaultMaxSamples, "Most samples a query may hold in memory at once (AMP: 50,000,000); over it the query answers 422. 0 means no limit.")
	f.IntVar(&c.MaxSeries, "query.max-series", DefaultMaxSeries, "Most series a request may read from storage, summed over its selectors; over it the request answers 422. 0 means no limit.")
	f.IntVar(&c.MaxConcurrent, "query.max-concurrent", DefaultMaxConcurrent, "Requests of one workspace that read data at the same time; more wait in a queue.")
	f.IntVar(&c.MaxQueued, "query.max-queued", DefaultMaxQueued, "Requests of one workspace that may wait for a slot; beyond it requests answer 429. 0 means none wait.")
	f.DurationVar(&c.MaxInstantQueryLookback, "query.max-instant-query-lookback", DefaultMaxInstantQueryLookback, "Instant queries whose selectors reach back this far or further answer 422 (AMP: 32 days). 0 means no limit.")
	f.DurationVar(&c.MaxRangeQueryLength, "query.max-range-query-length", DefaultMaxRangeQueryLength, "Range queries reading a longer time range answer 422 (AMP: 95 days). 0 means no limit.")
	f.DurationVar(&c.LookbackDelta, "query.lookback-delta", 5*time.Minute, "How far back PromQL looks for the latest sample of a series at each step.")
	f.DurationVar(&c.DefaultEvaluationInterval, "query.default-evaluation-interval", time.Minute, "Step of PromQL subqueries that set none.")
	f.BoolVar(&c.EnableExperimentalFunctions, "query.enable-experimental-functions", false, "Admit PromQL's experimental functions and modifiers.")
	f.IntVar(&c.Parallelism, "query.parallelism", 0, "Parts a long range query's steps are cut into and evaluated at once, each on a CPU (the answer is the same as evaluated whole). 0 means one per CPU; 1 evaluates every query whole.")
	f.IntVar(&c.Shards, "query.shards", 0, "Shards of their series that aggregations (sum, count, avg, min, max, group, topk, bottomk) are evaluated in at once, each on a CPU, and merged: for instant queries and range queries too short to split by steps. count, min, max, group, topk and bottomk answer exactly as unsharded; sum and avg add in another order, so their answers may differ in the last bits of a float64. 0 or 1 shards nothing.")
	f.Int64Var(&c.ResultsCacheSize, "query.results-cache-size", 256<<20, "Bytes of range query answers kept in memory (--query.results-cache.backend=memory), by day of steps, so that a dashboard asking again evaluates only its newest steps. 0 disables the memory cache.")
	c.ResultsCache.registerFlags(f)
	f.DurationVar(&c.SplitInterval, "query.split-interval", 24*time.Hour, "Span of the steps of a range query cached together (aligned to multiples of it since the epoch: days at UTC midnight).")
	f.DurationVar(&c.CacheMaxFreshness, "query.cache-max-freshness", 10*time.Minute, "Steps of a range query newer than this are evaluated every time, never cached: late and out-of-order samples may still arrive for them. At least 10m, the longest out-of-order window.")
	f.DurationVar(&c.SlowQueryLogThreshold, "query.slow-query-log-threshold", 10*time.Second, "Log requests that take at least this long, with workspace, principal, query, duration and samples processed. 0 disables the log.")
	f.IntVar(&c.MaxConcurrentTotal, "query.max-concurrent-total", DefaultMaxConcurrentTotal, "Requests that read data at the same time across all workspaces (each also within its workspace's --query.max-concurrent); more wait up to --query.max-wait-total, then answer 503. 0 means no server-wide limit.")
	f.IntVar(&c.MaxSamplesTotal, "query.max-samples-total", DefaultMaxSamplesTotal, "Samples all running PromQL queries may hold in memory together: each reserves its own samples limit (--query.max-samples or its workspace's) until it has answered, and no query's limit is higher. Queries that do not fit wait up to --query.max-wait-total, then answer 503. 0 means no server-wide budget.")
	f.DurationVar(&c.MaxWaitTotal, "query.max-wait-total", DefaultMaxWaitTotal, "Longest a request waits (the workspaces served in turn, each first come first served) for --query.max-concurrent-total or --query.max-samples-total before answering 503 (its own timeout may end the wait sooner). 0 means no waiting.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.LookbackDelta <= 0 {
		return errors.New("lookback_delta must be positive")
	}
	if c.DefaultEvaluationInterval <= 0 {
		return errors.New("default_evaluation_interval must be positive")
	}
	if c.Parallelism < 0 {
		return errors.New("parallelism must not be negative")
	}
	if c.Shards < 0 {
		return errors.New("shards must not be negative")
	}
	if c.SlowQueryLogThreshold < 0 {
		return errors.New("slow_query_log_threshold must not be negative")
	}
	if c.ResultsCacheSize < 0 || c.CacheMaxFreshness < 0 {
		return errors.New("results_cache_size and cache_max_freshness must not be negative")
	}
	if (c.ResultsCacheSize > 0 || c.ResultsCache.Backend != CacheBackendMemory) && c.SplitInterval < time.Minute {
		return errors.New("split_interval must be at least 1m")
	}
	if err := c.ResultsCache.Validate(); err != nil {
		return fmt.Errorf("results_cache: %w", err)
	}
	if c.MaxConcurrentTotal < 0 || c.MaxSamplesTotal < 0 || c.MaxWaitTotal < 0 {
		return errors.New("max_concurrent_total, max_samples_total and max_wait_total must not be negative")
	}
	if err := c.Limits().Validate(); err != nil {
		return err
	}
	return nil
}

// Limits returns the configured defaults as QueryLimits.
func (c *Config) Limits() QueryLimits {
	return QueryLimits{
		Timeout:                 c.Timeout,
		MaxSamples:              c.MaxSamples,
		MaxSeries:               c.MaxSeries,
		MaxConcurrent:           c.MaxConcurrent,
		MaxQueued:               c.MaxQueued,
		MaxInstantQueryLookback: c.MaxInstantQueryLookback,
		MaxRangeQueryLength:     c.MaxRangeQueryLength,
	}
}

// QueryLimits are the query limits of one workspace. See Config for each field's meaning;
// zero means "no limit" except for Timeout and MaxConcurrent, which must be positive.
type QueryLimits struct {
	Timeout                 time.Duration
	MaxSamples              int
	MaxSeries               int
	MaxConcurrent           int
	MaxQueued               int
	MaxInstantQueryLookback time.Duration
	MaxRangeQueryLength     time.Duration
}

// Validate checks the limits.
func (l QueryLimits) Validate() error {
	switch {
	case l.Timeout <= 0:
		return errors.New("timeout must be positive")
	case l.MaxConcurrent <= 0:
		return errors.New("max_concurrent must be positive")
	case l.MaxSamples < 0 || l.MaxSeries < 0 || l.MaxQueued < 0:
		return errors.New("max_samples, max_series and max_queued must not be negative")
	case l.MaxInstantQueryLookback < 0 || l.MaxRangeQueryLength < 0:
		return fmt.Errorf("max_instant_query_lookback and max_range_query_length must not be negative")
	}
	return nil
}

// Limits gives the query limits in force for a workspace. It is called once per request,
// so an implementation backed by a reloadable overrides file takes effect at the next
// request. Implementations must be safe for concurrent use.
type Limits interface {
	QueryLimits(workspace string) QueryLimits
}

// StaticLimits applies the same limits to every workspace.
type StaticLimits QueryLimits

// QueryLimits implements Limits.
func (l StaticLimits) QueryLimits(string) QueryLimits { return QueryLimits(l) }
