package loadgen

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Protocol versions accepted in Config.Protocol.
const (
	ProtocolV1 = "1.0"
	ProtocolV2 = "2.0"
)

// Config is one load generator run. The zero value of a field means its
// default (see DefaultConfig) unless its comment says otherwise; only URL and
// Duration have no default.
type Config struct {
	// URL is the full remote write URL, e.g.
	// http://127.0.0.1:8080/workspaces/ws-.../api/v1/remote_write.
	URL string
	// Protocol is ProtocolV1 ("1.0") or ProtocolV2 ("2.0"). Zero: 1.0.
	Protocol string
	// ActiveSeries is how many series are active at any step. Zero: 10000.
	ActiveSeries int
	// Churn is the fraction of active series replaced per scrape interval,
	// whole instances at a time. Zero: no churn.
	Churn float64
	// ScrapeInterval is the distance between two samples of a series;
	// timestamps are multiples of it. Zero: 10s.
	ScrapeInterval time.Duration
	// Backfill sends the samples of [now-Backfill, now] first, as fast as the
	// server takes them, before going real time. Zero: none.
	Backfill time.Duration
	// StopAfterBackfill ends the run once the backfill is sent instead of
	// going real time (benchmarks that only need the data loaded).
	StopAfterBackfill bool
	// Attack runs slow unauthenticated connections against the server beside the
	// load, for as long as it is generated. Zero Connections: none.
	Attack AttackConfig
	// Duration bounds the sending phase; it must be positive. In-flight
	// requests then get DrainTimeout to finish; verification has its own bound.
	Duration time.Duration
	// BatchSize is the number of samples per request. Zero: 2000.
	BatchSize int
	// Concurrency is the number of workers, each with one request in flight.
	// Zero: 8.
	Concurrency int
	// Timeout bounds one HTTP attempt. Zero: 30s.
	Timeout time.Duration
	// MaxRetries is how many times a request answered 429, 5xx or not at all
	// is retried before its samples are dropped. Zero: 10; negative: never.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the wait between retries, which doubles
	// from MinBackoff; a Retry-After header is honoured up to MaxBackoff.
	// Zero: 30ms and 5s, Prometheus' defaults.
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout is how long requests in flight when Duration ends may
	// still run. Zero: 5s.
	DrainTimeout time.Duration
	// Seed makes the run reproducible: the same seed gives the same series
	// and values. Zero: derived from the clock (the report says which).
	Seed int64
	// Labels are added to every series, like Prometheus' external labels;
	// they override the built-in cluster="loadgen" and env="bench".
	Labels map[string]string
	// SigV4 signs every request (writes and verification queries) for the
	// service "aps" in SigV4Region, with credentials from the standard AWS
	// chain (environment, shared files, ...) unless Credentials is set.
	SigV4       bool
	SigV4Region string // Zero: us-east-1.
	// Workspaces, when set, spreads the load over several workspaces: URL holds
	// "{workspace}", and worker i sends to Workspaces[i % len(Workspaces)], so
	// Concurrency must be at least their number. Not with Verify or an attack.
	Workspaces []string
	// Verify queries every acknowledged sample back after the run.
	Verify bool
	// QueryURL is the Prometheus HTTP API root, ending in "api/v1/". Zero:
	// derived from URL by replacing its trailing api/v1/remote_write (or
	// api/v1/write, Prometheus' receiver) with api/v1/.
	QueryURL string
	// VerifyTimeout bounds verification, including re-checks of samples not
	// yet visible. Zero: 1m.
	VerifyTimeout time.Duration
	// ProgressInterval is how often progress is logged. Zero: never.
	ProgressInterval time.Duration

	// HTTPClient sends writes and queries. Nil: a client of our own, with
	// idle connections for every worker, closed when Run returns.
	HTTPClient *http.Client
	// Credentials for SigV4. Nil: the standard AWS chain.
	Credentials aws.CredentialsProvider
	// Logger receives progress and notable events. Nil: discard.
	Logger *slog.Logger
	// Now is the clock that places samples in time. Nil: time.Now. Waits use
	// real timers for the difference, so a test clock should run at real speed.
	Now func() time.Time
}

// DefaultConfig returns the defaults, with Duration 60s (the flag default).
func DefaultConfig() Config {
	return Config{
		Protocol:       ProtocolV1,
		ActiveSeries:   10000,
		ScrapeInterval: 10 * time.Second,
		Duration:       60 * time.Second,
		BatchSize:      2000,
		Concurrency:    8,
		Timeout:        30 * time.Second,
		MaxRetries:     10,
		MinBackoff:     30 * time.Millisecond,
		MaxBackoff:     5 * time.Second,
		DrainTimeout:   5 * time.Second,
		SigV4Region:    "us-east-1",
		VerifyTimeout:  time.Minute,
	}
}

// withDefaults fills zero fields from DefaultConfig (except Duration).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Protocol == "" {
		c.Protocol = d.Protocol
	}
	if c.ActiveSeries == 0 {
		c.ActiveSeries = d.ActiveSeries
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = d.ScrapeInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = d.MaxRetries
	} else if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = d.MinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = d.DrainTimeout
	}
	if c.SigV4Region == "" {
		c.SigV4Region = d.SigV4Region
	}
	if c.VerifyTimeout == 0 {
		c.VerifyTimeout = d.VerifyTimeout
	}
	return c
}

// RegisterFlags registers the flags of `strata loadgen` on f, with c's
// current values as defaults (start from DefaultConfig).
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.URL, "url", c.URL, "Remote write URL, e.g. http://127.0.0.1:8080/workspaces/ws-.../api/v1/remote_write (required).")
	f.StringVar(&c.Protocol, "protocol", c.Protocol, "Remote write protocol: 1.0 (prometheus.WriteRequest) or 2.0 (io.prometheus.write.v2.Request).")
	f.IntVar(&c.ActiveSeries, "active-series", c.ActiveSeries, "Series active at any time, spread over node-exporter-like instances of 103 series each.")
	f.Float64Var(&c.Churn, "churn", c.Churn, "Fraction of active series replaced per scrape interval (whole instances rotate, like pod churn); 0 disables.")
	f.DurationVar(&c.ScrapeInterval, "scrape-interval", c.ScrapeInterval, "One sample per series per interval; timestamps are aligned to it.")
	f.DurationVar(&c.Backfill, "backfill", c.Backfill, "First send the samples of [now-backfill, now] as fast as possible, then go real time; 0 disables.")
	f.BoolVar(&c.StopAfterBackfill, "stop-after-backfill", c.StopAfterBackfill, "End the run once the backfill is sent (--duration still bounds it) instead of going real time.")
	f.DurationVar(&c.Duration, "duration", c.Duration, "How long to send (backfill included); must be > 0. The run always stops by itself.")
	f.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "Samples per request.")
	f.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "Workers, each with one request in flight; a series always goes through the same worker.")
	f.DurationVar(&c.Timeout, "timeout", c.Timeout, "Timeout of one HTTP attempt.")
	f.IntVar(&c.MaxRetries, "max-retries", c.MaxRetries, "Retries of a request answered 429, 5xx or not at all before its samples are dropped; negative: none.")
	f.DurationVar(&c.MinBackoff, "min-backoff", c.MinBackoff, "First wait before a retry; doubles on each retry.")
	f.DurationVar(&c.MaxBackoff, "max-backoff", c.MaxBackoff, "Longest wait before a retry (Retry-After is honoured up to it).")
	f.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "How long requests in flight at the end of --duration may still run.")
	f.Int64Var(&c.Seed, "seed", c.Seed, "Seed of the series and values; the same seed gives the same series. 0 picks one from the clock. Every series has the label loadgen_seed.")
	f.Var((*labelsFlag)(&c.Labels), "label", "Label `name=value` added to every series, like an external label (repeatable); overrides cluster=loadgen and env=bench.")
	f.BoolVar(&c.SigV4, "sigv4", c.SigV4, "Sign requests with AWS SigV4 (service aps), credentials from the standard AWS chain (AWS_ACCESS_KEY_ID..., shared files, ...).")
	f.StringVar(&c.SigV4Region, "sigv4.region", c.SigV4Region, "SigV4 signing region.")
	f.Func("workspaces-file", "File of workspace ids, one per line: --url holds {workspace}, and the workers (--concurrency, at least one per workspace) are spread over them.", func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		c.Workspaces = strings.Fields(string(b))
		return nil
	})
	f.BoolVar(&c.Verify, "verify", c.Verify, "After the run, query every acknowledged sample back and compare timestamp and value; exit 1 if any is missing.")
	f.StringVar(&c.QueryURL, "query-url", c.QueryURL, "Prometheus HTTP API root for --verify, ending in api/v1/ (default: --url with its trailing api/v1/remote_write replaced by api/v1/).")
	f.DurationVar(&c.VerifyTimeout, "verify.timeout", c.VerifyTimeout, "Bound of --verify, re-checks of samples not yet visible included.")
	f.DurationVar(&c.ProgressInterval, "progress", c.ProgressInterval, "Log progress to stderr this often; 0 disables.")
	f.IntVar(&c.Attack.Connections, "attack.slow-connections", c.Attack.Connections, "Also keep this many slow, unsigned connections to the server while sending (a slowloris attack, to measure what it costs the server); 0 disables.")
	f.StringVar(&c.Attack.Mode, "attack.mode", AttackMixed, "How attack connections hold on: headers (sent a byte at a time), body (an unsigned POST announcing 8 MiB, its body a byte at a time) or mixed.")
	f.DurationVar(&c.Attack.Interval, "attack.interval", time.Second, "Time between two bytes on an attack connection.")
}

// workspacePlaceholder is replaced in URL by each worker's workspace.
const workspacePlaceholder = "{workspace}"

// workerURL is the URL worker id sends to.
func (c Config) workerURL(id int) string {
	if len(c.Workspaces) == 0 {
		return c.URL
	}
	return strings.ReplaceAll(c.URL, workspacePlaceholder, c.Workspaces[id%len(c.Workspaces)])
}

// Validate reports the first problem with c (after defaults are applied).
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("url is required")
	case err != nil:
		return fmt.Errorf("url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("url %q: want http(s)://host/path", c.URL)
	}
	switch c.Attack.Mode {
	case "", AttackHeaders, AttackBody, AttackMixed:
	default:
		return fmt.Errorf("attack.mode %q: want %s, %s or %s", c.Attack.Mode, AttackHeaders, AttackBody, AttackMixed)
	}
	if c.Attack.Connections < 0 || c.Attack.Interval < 0 {
		return errors.New("attack.slow-connections and attack.interval must not be negative")
	}
	switch {
	case c.Protocol != ProtocolV1 && c.Protocol != ProtocolV2:
		return fmt.Errorf("protocol %q: want %s or %s", c.Protocol, ProtocolV1, ProtocolV2)
	case c.ActiveSeries < 1:
		return fmt.Errorf("active-series %d: must be positive", c.ActiveSeries)
	case c.Churn < 0 || c.Churn > 1:
		return fmt.Errorf("churn %v: must be in [0, 1]", c.Churn)
	case c.ScrapeInterval < time.Millisecond || c.ScrapeInterval%time.Millisecond != 0:
		return fmt.Errorf("scrape-interval %v: must be a positive whole number of milliseconds", c.ScrapeInterval)
	case c.Backfill < 0:
		return fmt.Errorf("backfill %v: must not be negative", c.Backfill)
	case c.Duration <= 0:
		return fmt.Errorf("duration %v: must be positive, so the run stops by itself", c.Duration)
	case c.BatchSize < 1:
		return fmt.Errorf("batch-size %d: must be positive", c.BatchSize)
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("concurrency %d: must be in [1, 1024]", c.Concurrency)
	case c.Timeout <= 0 || c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff || c.DrainTimeout < 0:
		return errors.New("timeout and min-backoff must be positive, max-backoff at least min-backoff, drain-timeout not negative")
	case c.Verify && c.VerifyTimeout <= 0:
		return fmt.Errorf("verify.timeout %v: must be positive", c.VerifyTimeout)
	}
	if n := len(c.Workspaces); n > 0 {
		switch {
		case !strings.Contains(c.URL, workspacePlaceholder):
			return fmt.Errorf("url %q: with workspaces it must hold %s", c.URL, workspacePlaceholder)
		case c.Concurrency < n:
			return fmt.Errorf("concurrency %d: at least one worker per workspace (%d)", c.Concurrency, n)
		case c.Verify || c.Attack.Connections > 0:
			return errors.New("verify and attack.slow-connections need a single workspace")
		}
	}
	for name, value := range c.Labels {
		if !validLabelName(name) || strings.HasPrefix(name, "__") {
			return fmt.Errorf("label %q: invalid label name", name)
		}
		if reservedLabels[name] {
			return fmt.Errorf("label %q: set by the generator", name)
		}
		if value == "" {
			return fmt.Errorf("label %q: empty value", name)
		}
	}
	if c.Verify {
		if _, err := c.queryURL(); err != nil {
			return err
		}
	}
	return nil
}

// queryURL returns the API root that verification queries.
func (c Config) queryURL() (string, error) {
	if c.QueryURL != "" {
		if !strings.HasSuffix(c.QueryURL, "/") {
			return c.QueryURL + "/", nil
		}
		return c.QueryURL, nil
	}
	for _, suffix := range []string{"api/v1/remote_write", "api/v1/write"} {
		if base, ok := strings.CutSuffix(c.URL, suffix); ok {
			return base + "api/v1/", nil
		}
	}
	return "", fmt.Errorf("query-url: cannot derive it from url %q (no trailing api/v1/remote_write); set it", c.URL)
}

// validLabelName is Prometheus' legacy label name rule,
// [a-zA-Z_][a-zA-Z0-9_]*, which every receiver accepts.
func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, b := range []byte(s) {
		if !(b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || i > 0 && b >= '0' && b <= '9') {
			return false
		}
	}
	return true
}

// labelsFlag is a repeatable name=value flag.
type labelsFlag map[string]string

func (f *labelsFlag) String() string {
	if f == nil || *f == nil {
		return ""
	}
	var parts []string
	for k, v := range *f {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (f *labelsFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q: want name=value", s)
	}
	if *f == nil {
		*f = map[string]string{}
	}
	(*f)[name] = value
	return nil
}
