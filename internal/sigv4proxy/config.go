package sigv4proxy

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Defaults for the zero values of Config.
const (
	DefaultRegion  = "us-east-1"
	DefaultService = "aps"
	// DefaultMaxBodyBytes is Strata's own limit on a request body (a remote write batch
	// of Prometheus' is well under 1 MiB).
	DefaultMaxBodyBytes = 8 << 20
	DefaultTimeout      = 5 * time.Minute
	// DefaultBodyTimeout lets a client on a slow link send a full-size body (8 MiB at
	// about 2 Mbit/s); the proxy is meant to run next to its clients.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultMaxConcurrent leaves room for a Prometheus at its default 50 remote-write
	// shards, each with one request in flight, plus dashboards.
	DefaultMaxConcurrent = 128
	// DefaultMaxInFlightBodyBytes is eight full-size bodies, or thousands of
	// remote-write batches, in memory at once.
	DefaultMaxInFlightBodyBytes = 8 * DefaultMaxBodyBytes
)

// Config configures a Proxy.
type Config struct {
	// Upstream is the base URL requests are forwarded to: http or https, a
	// host, and optionally a path prefix that is put in front of every
	// request's path ("https://aps-workspaces.us-east-1.amazonaws.com",
	// "http://strata:8080/prefix"). No query, fragment or user info. Required.
	Upstream string `yaml:"upstream"`
	// Region is the region requests are signed for. Zero means us-east-1.
	Region string `yaml:"region"`
	// Service is the signing name. Zero means "aps", Amazon Managed Service
	// for Prometheus.
	Service string `yaml:"service"`
	// Profile is the shared config/credentials profile to take credentials
	// from. Zero means the standard chain decides (AWS_PROFILE, environment
	// variables, the default profile, web identity, ECS, EC2).
	Profile string `yaml:"profile"`
	// RoleARN, when set, is assumed with STS using the credentials above,
	// and requests are signed with the role's temporary credentials,
	// refreshed before they expire. Zero means no role.
	RoleARN string `yaml:"role_arn"`
	// Timeout bounds one proxied request, from its arrival to the end of
	// the upstream's response (a stream is cut off); if it expires before
	// the upstream answers, the client gets 504. Zero means no limit.
	Timeout time.Duration `yaml:"timeout"`
	// Allow lists more requests to sign and forward, beyond the default
	// data plane of AMP workspaces (remote write, the query API, the
	// Alertmanager API): each entry is "METHOD /path/prefix", METHOD an HTTP
	// method or "*", the prefix matched by whole segments of the canonical
	// path with "*" standing for any one segment ("GET /workspaces/*/api/v1/rules").
	// Zero means the defaults only.
	Allow []string `yaml:"allow"`
	// AllowControlPlane also forwards AMP's control plane: creating, listing,
	// describing and deleting workspaces, their rule groups, alertmanager
	// definitions, logging, policies and configuration, tags and scrapers.
	// Zero (false) refuses them with 403.
	AllowControlPlane bool `yaml:"allow_control_plane"`
	// MaxBodyBytes is the largest request body forwarded. Every body is read
	// into memory and its SHA-256 signed; larger ones are refused with 413.
	// Zero means 8 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// BodyTimeout bounds reading a request's body; a client slower than that
	// gets 408. Zero means 30s.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// UpstreamCAFile is a PEM bundle trusted, besides the system roots, for an
	// https upstream (a Strata serving TLS with a private CA). Empty means the
	// system roots only.
	UpstreamCAFile string `yaml:"upstream_ca_file"`
	// MaxConcurrent caps the requests being proxied at once; more are
	// answered 503 with Retry-After at once rather than queued. Zero means 128.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxInFlightBodyBytes caps the request bytes held in memory across
	// requests; a body that does not fit is answered 503 with Retry-After.
	// It must be at least MaxBodyBytes. Zero means 64 MiB.
	MaxInFlightBodyBytes int64 `yaml:"max_in_flight_body_bytes"`

	// Credentials, when set, replaces the standard chain (Profile is then
	// ignored; RoleARN still applies on top). It is wrapped in an
	// aws.CredentialsCache unless it is one. For embedding; no flag.
	Credentials aws.CredentialsProvider `yaml:"-"`
	// Logger receives the proxy's logs. Nil means discard.
	Logger *slog.Logger `yaml:"-"`
}

// RegisterFlags registers the config's flags. They have no prefix: they
// belong to the `strata sigv4-proxy` command's own flag set.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Upstream, "upstream", "", "Base URL to forward signed requests to (http or https, optionally with a path prefix). Required.")
	f.StringVar(&c.Region, "region", DefaultRegion, "Region to sign requests for.")
	f.StringVar(&c.Service, "service", DefaultService, "Service name to sign requests for.")
	f.StringVar(&c.Profile, "profile", "", "Shared config profile to take credentials from. Empty means the standard AWS chain (AWS_PROFILE, environment, default profile, web identity, ECS, EC2).")
	f.StringVar(&c.RoleARN, "role-arn", "", "IAM role to assume with STS and sign with. Empty means sign with the credentials themselves.")
	f.DurationVar(&c.Timeout, "timeout", DefaultTimeout, "Maximum time for one proxied request, including streaming the response. 0 means no limit.")
	f.Var((*allowFlag)(&c.Allow), "allow", "Also forward requests matching `\"METHOD /path/prefix\"` (repeatable, or comma-separated): METHOD an HTTP method or *, the prefix matched by whole path segments, * standing for one segment, e.g. \"GET /workspaces/*/api/v1/rules\". By default only the data plane of AMP workspaces is forwarded (remote_write, the query API, the Alertmanager API v2); everything else answers 403.")
	f.BoolVar(&c.AllowControlPlane, "allow-control-plane", false, "Also forward AMP's control plane (create, list, describe and delete workspaces, rule groups, alertmanager definitions, logging, policies, configuration, tags, scrapers), signed with the proxy's credentials for anyone who reaches it.")
	f.Int64Var(&c.MaxBodyBytes, "max-body-bytes", DefaultMaxBodyBytes, "Largest request body forwarded; every body is buffered and its SHA-256 signed. Larger bodies answer 413.")
	f.DurationVar(&c.BodyTimeout, "body-timeout", DefaultBodyTimeout, "Longest a client may take to send a request body; slower ones answer 408.")
	f.StringVar(&c.UpstreamCAFile, "upstream-ca-file", "", "PEM bundle of CAs trusted, besides the system roots, for an https --upstream (a Strata with a private certificate).")
	f.IntVar(&c.MaxConcurrent, "max-concurrent", DefaultMaxConcurrent, "Requests proxied at once; more answer 503 with Retry-After.")
	f.Int64Var(&c.MaxInFlightBodyBytes, "max-in-flight-body-bytes", DefaultMaxInFlightBodyBytes, "Request body bytes held in memory at once, over all requests; a body that does not fit answers 503 with Retry-After. At least --max-body-bytes.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if _, err := parseUpstream(c.Upstream); err != nil {
		return err
	}
	switch {
	case strings.ContainsAny(c.Region, "/ "):
		return fmt.Errorf("region %q contains '/' or a space", c.Region)
	case strings.ContainsAny(c.Service, "/ "):
		return fmt.Errorf("service %q contains '/' or a space", c.Service)
	case c.Timeout < 0:
		return fmt.Errorf("timeout %v is negative", c.Timeout)
	case c.RoleARN != "" && !strings.HasPrefix(c.RoleARN, "arn:"):
		return fmt.Errorf("role_arn %q is not an ARN", c.RoleARN)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("max_body_bytes %d is negative", c.MaxBodyBytes)
	case c.BodyTimeout < 0:
		return fmt.Errorf("body_timeout %v is negative", c.BodyTimeout)
	case c.MaxConcurrent < 0:
		return fmt.Errorf("max_concurrent %d is negative", c.MaxConcurrent)
	case c.MaxInFlightBodyBytes < 0:
		return fmt.Errorf("max_in_flight_body_bytes %d is negative", c.MaxInFlightBodyBytes)
	}
	if d := c.withDefaults(); d.MaxInFlightBodyBytes < d.MaxBodyBytes {
		return fmt.Errorf("max_in_flight_body_bytes %d is less than max_body_bytes %d: a full-size body could never be accepted",
			d.MaxInFlightBodyBytes, d.MaxBodyBytes)
	}
	if _, err := newAllowList(*c); err != nil {
		return err
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Service == "" {
		c.Service = DefaultService
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.MaxInFlightBodyBytes == 0 {
		c.MaxInFlightBodyBytes = DefaultMaxInFlightBodyBytes
	}
	return c
}

// upstream is a parsed Config.Upstream.
type upstream struct {
	scheme, host string
	// prefix is the path prefix as written (still percent-encoded), without
	// a trailing slash: the request path brings its own.
	prefix string
}

func parseUpstream(s string) (upstream, error) {
	if s == "" {
		return upstream{}, errors.New("upstream is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return upstream{}, fmt.Errorf("upstream: %w", err)
	}
	var e string
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		e = "scheme must be http or https"
	case u.Opaque != "":
		e = "not a base URL"
	case u.Host == "":
		e = "no host"
	case u.User != nil:
		e = "user info is not allowed"
	case u.RawQuery != "" || u.ForceQuery:
		e = "a query is not allowed"
	case u.Fragment != "":
		e = "a fragment is not allowed"
	}
	if e != "" {
		return upstream{}, fmt.Errorf("upstream %q: %s", s, e)
	}
	return upstream{scheme: u.Scheme, host: u.Host, prefix: strings.TrimRight(u.EscapedPath(), "/")}, nil
}
