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
	DefaultRegion               = "us-east-1"
	DefaultService              = "aps"
	DefaultMaxBufferedBodyBytes = 8 << 20
	DefaultTimeout              = 5 * time.Minute
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
	// MaxBufferedBodyBytes is the largest request body read into memory and
	// signed with its SHA-256; larger bodies are streamed and signed with
	// UNSIGNED-PAYLOAD (see the package doc). Zero means 8 MiB; negative
	// means always stream bodies.
	MaxBufferedBodyBytes int64 `yaml:"max_buffered_body_bytes"`

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
	f.Int64Var(&c.MaxBufferedBodyBytes, "max-buffered-body-bytes", DefaultMaxBufferedBodyBytes, "Request bodies up to this size are buffered and their SHA-256 signed; larger ones are streamed with UNSIGNED-PAYLOAD. Negative means always stream.")
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
	if c.MaxBufferedBodyBytes == 0 {
		c.MaxBufferedBodyBytes = DefaultMaxBufferedBodyBytes
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
