package auth

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/stratametrics/strata/internal/auth/sigv4"
)

// Defaults of Config.
const (
	DefaultIdentitiesReloadPeriod   = 10 * time.Second
	DefaultMaxBodyBytes             = 8 << 20
	DefaultBodyReadTimeout          = time.Minute
	DefaultMaxInflightBodyBytes     = 512 << 20
	DefaultAuditUnauthenticatedRate = 10
)

// AuditLogStdout is the Config.AuditLog value that writes audit records to
// standard output.
const AuditLogStdout = "stdout"

// Config configures authentication, authorization and the audit log. The
// region requests must be signed for is the server's (--region); see Env.
type Config struct {
	// IdentitiesFile is the YAML file of accounts, users, roles and policies
	// (see ParseIdentities). Empty means none: only the root key can sign.
	IdentitiesFile string `yaml:"identities_file"`
	// IdentitiesReloadPeriod is how often the identities file (and the secret
	// files it names) is checked for changes. Zero means never reload.
	IdentitiesReloadPeriod time.Duration `yaml:"identities_reload_period"`
	// MaxClockSkew is how far a request's signing time may be from the
	// server's clock. Zero means 5 minutes, as AWS.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// MaxBodyBytes bounds the body read to verify a signature; larger bodies
	// get 413. Zero means 8 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInflightBodyBytes caps the bytes of request bodies held at once by all
	// requests together; a request that would pass it gets 503. Zero means no cap.
	MaxInflightBodyBytes int64 `yaml:"max_inflight_body_bytes"`
	// BodyReadTimeout bounds the time to receive a request's body once its headers
	// passed the signature pre-check. Zero means one minute.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	// AuditLog is where audit records go: "" for nowhere, "stdout", or the
	// path of a file to append to (created with mode 0600).
	AuditLog string `yaml:"audit_log"`
	// AuditDataPlane also audits data-plane requests (remote write, queries).
	// False audits only the control plane.
	AuditDataPlane bool `yaml:"audit_data_plane"`
	// AuditUnauthenticatedRate bounds the audit records of requests that fail
	// authentication, per second (bursts of ten seconds' worth); the rest are counted
	// in strata_auth_audit_records_dropped_total. Zero means no bound.
	AuditUnauthenticatedRate float64 `yaml:"audit_unauthenticated_rate"`
	// TrustedProxies lists, comma-separated, the addresses or CIDR ranges of
	// reverse proxies whose X-Forwarded-For header names the client for
	// aws:SourceIp. Empty means X-Forwarded-For is ignored.
	TrustedProxies string `yaml:"trusted_proxies"`
}

// RegisterFlags registers the flags under "auth.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.IdentitiesFile, "auth.identities-file", "", "YAML file of accounts, users with access keys, roles and policies. Reloaded when it changes; a file that does not load keeps the last good one. Empty means only the root key can sign requests.")
	f.DurationVar(&c.IdentitiesReloadPeriod, "auth.identities-reload-period", DefaultIdentitiesReloadPeriod, "How often to check the identities file and its secret files for changes. 0 means never.")
	f.DurationVar(&c.MaxClockSkew, "auth.max-clock-skew", sigv4.DefaultMaxClockSkew, "How far a request's signing time may be from the server's clock.")
	f.Int64Var(&c.MaxBodyBytes, "auth.max-body-bytes", DefaultMaxBodyBytes, "Largest request body read to verify its signature, in bytes; larger requests get 413.")
	f.Int64Var(&c.MaxInflightBodyBytes, "auth.max-inflight-body-bytes", DefaultMaxInflightBodyBytes, "Most bytes of request bodies held at once by all requests together; a request that would pass it gets 503 with Retry-After. 0 means no cap.")
	f.DurationVar(&c.BodyReadTimeout, "auth.body-read-timeout", DefaultBodyReadTimeout, "Time allowed to receive a request body after its headers passed the signature pre-check; slower requests get 400 and their connection is closed.")
	f.Float64Var(&c.AuditUnauthenticatedRate, "auth.audit-unauthenticated-rate", DefaultAuditUnauthenticatedRate, "Most audit records per second (bursts of ten seconds' worth) for requests that fail authentication; the rest are only counted (strata_auth_audit_records_dropped_total). 0 means no bound.")
	f.StringVar(&c.AuditLog, "auth.audit-log", "", `Where to write the audit log (one JSON line per request): "" for nowhere, "stdout", or a file path to append to.`)
	f.BoolVar(&c.AuditDataPlane, "auth.audit-data-plane", false, "Audit data-plane requests (remote write, queries) too, not only the control plane.")
	f.StringVar(&c.TrustedProxies, "auth.trusted-proxies", "", "Comma-separated addresses or CIDR ranges of reverse proxies trusted to name the client in X-Forwarded-For (for aws:SourceIp). Empty means X-Forwarded-For is ignored.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.IdentitiesReloadPeriod < 0:
		return fmt.Errorf("identities_reload_period %v is negative", c.IdentitiesReloadPeriod)
	case c.MaxClockSkew < 0:
		return fmt.Errorf("max_clock_skew %v is negative", c.MaxClockSkew)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("max_body_bytes %d is negative", c.MaxBodyBytes)
	case c.MaxInflightBodyBytes < 0:
		return fmt.Errorf("max_inflight_body_bytes %d is negative", c.MaxInflightBodyBytes)
	case c.BodyReadTimeout < 0:
		return fmt.Errorf("body_read_timeout %v is negative", c.BodyReadTimeout)
	case c.AuditUnauthenticatedRate < 0:
		return fmt.Errorf("audit_unauthenticated_rate %v is negative", c.AuditUnauthenticatedRate)
	case strings.ContainsAny(c.AuditLog, "\x00\n"):
		return errors.New("audit_log contains a NUL or newline")
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		return fmt.Errorf("trusted_proxies: %w", err)
	}
	return nil
}

func parseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "/") {
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR range", part)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR range", part)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
