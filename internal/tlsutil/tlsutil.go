// Package tlsutil serves TLS from certificate files that are reloaded when they change,
// for Strata's listener and the sigv4-proxy. Start from Config (flags under a prefix such
// as "tls.") and NewReloader; give Reloader.ServerConfig to an http.Server and run
// Reloader.Run beside it.
//
// A reload that fails (a half-written file, a key that does not match its certificate)
// keeps the certificate in use and is logged and counted: a certificate renewal gone
// wrong must not take the listener down.
package tlsutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stratametrics/strata/internal/periodic"
)

// Client authentication modes of Config.ClientAuth.
const (
	ClientAuthNone             = "none"
	ClientAuthRequest          = "request"            // ask for a certificate, verify it when given
	ClientAuthRequireAndVerify = "require-and-verify" // mutual TLS: every client shows a valid certificate
)

// Config configures TLS on a listener. TLS is off unless CertFile and KeyFile are set.
type Config struct {
	// CertFile is a PEM file with the server certificate, followed by any intermediates.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. It must not be readable by other users.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle of the CAs that sign client certificates. Empty means
	// clients are not asked for certificates.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is "request" (verify a certificate when the client shows one) or
	// "require-and-verify" (mutual TLS). Empty means require-and-verify when ClientCAFile
	// is set, else none.
	ClientAuth string `yaml:"client_auth"`
	// MinVersion is "1.2" or "1.3". Empty means 1.2.
	MinVersion string `yaml:"min_version"`
	// ReloadInterval is how often the files are checked for changes. Zero means never.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// RegisterFlags registers the flags under prefix (e.g. "tls.").
func (c *Config) RegisterFlags(f *flag.FlagSet, prefix string) {
	f.StringVar(&c.CertFile, prefix+"cert-file", "", "PEM certificate (and intermediates) to serve HTTPS with. Empty with an empty key file means plain HTTP.")
	f.StringVar(&c.KeyFile, prefix+"key-file", "", "PEM private key of the certificate; must not be readable by other users.")
	f.StringVar(&c.ClientCAFile, prefix+"client-ca-file", "", "PEM bundle of CAs for client certificates (mutual TLS). Empty means clients show no certificate.")
	f.StringVar(&c.ClientAuth, prefix+"client-auth", "", `With a client CA file: "require-and-verify" (mutual TLS, the default) or "request" (verify a certificate only when one is shown).`)
	f.StringVar(&c.MinVersion, prefix+"min-version", "1.2", `Oldest TLS version accepted: "1.2" or "1.3".`)
	f.DurationVar(&c.ReloadInterval, prefix+"reload-interval", 30*time.Second, "How often to check the certificate, key and client CA files for changes. 0 means never.")
}

// Enabled reports whether TLS is configured.
func (c *Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// Validate checks the configuration without reading the files.
func (c *Config) Validate() error {
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("set both cert_file and key_file, or neither")
	case !c.Enabled() && c.ClientCAFile != "":
		return errors.New("client_ca_file needs cert_file and key_file")
	case c.ReloadInterval < 0:
		return fmt.Errorf("reload_interval %v is negative", c.ReloadInterval)
	}
	switch c.ClientAuth {
	case "", ClientAuthNone, ClientAuthRequest, ClientAuthRequireAndVerify:
	default:
		return fmt.Errorf("client_auth %q: want %q or %q", c.ClientAuth, ClientAuthRequest, ClientAuthRequireAndVerify)
	}
	if c.ClientAuth != "" && c.ClientAuth != ClientAuthNone && c.ClientCAFile == "" {
		return fmt.Errorf("client_auth %q needs client_ca_file", c.ClientAuth)
	}
	if _, err := c.minVersion(); err != nil {
		return err
	}
	return nil
}

func (c *Config) minVersion() (uint16, error) {
	switch c.MinVersion {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("min_version %q: want 1.2 or 1.3", c.MinVersion)
}

func (c *Config) clientAuth() tls.ClientAuthType {
	switch {
	case c.ClientCAFile == "":
		return tls.NoClientCert
	case c.ClientAuth == ClientAuthRequest:
		return tls.VerifyClientCertIfGiven
	case c.ClientAuth == ClientAuthNone:
		return tls.NoClientCert
	}
	return tls.RequireAndVerifyClientCert
}

// material is one loaded version of the files.
type material struct {
	cert     *tls.Certificate
	clientCA *x509.CertPool
	sum      [sha256.Size]byte // of every file's content, to tell a real change
}

// Reloader holds the certificate in use and reloads it when its files change. It is
// safe for concurrent use.
type Reloader struct {
	cfg    Config
	min    uint16
	logger *slog.Logger

	cur atomic.Pointer[material]

	mu       sync.Mutex // serializes reloads
	attempts *prometheus.CounterVec
	lastOK   prometheus.Gauge
	expiry   prometheus.Gauge
}

// NewReloader loads the files once; an error here means the listener cannot start.
// reg may be nil. The metrics are strata_tls_* with a "listener" label (name).
func NewReloader(cfg Config, name string, logger *slog.Logger, reg prometheus.Registerer) (*Reloader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("tls: no cert_file and key_file")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	min, _ := cfg.minVersion()
	f := promauto.With(reg)
	labels := prometheus.Labels{"listener": name}
	r := &Reloader{
		cfg: cfg, min: min, logger: logger,
		attempts: f.NewCounterVec(prometheus.CounterOpts{
			Name:        "strata_tls_reloads_total",
			Help:        "Loads of the TLS certificate files that found them changed, by outcome (success, failure).",
			ConstLabels: labels,
		}, []string{"outcome"}),
		lastOK: f.NewGauge(prometheus.GaugeOpts{
			Name:        "strata_tls_last_reload_successful",
			Help:        "Whether the last load of the TLS certificate files succeeded (1) or kept the previous certificate (0).",
			ConstLabels: labels,
		}),
		expiry: f.NewGauge(prometheus.GaugeOpts{
			Name:        "strata_tls_certificate_expiry_timestamp_seconds",
			Help:        "When the certificate in use expires, in seconds since the epoch.",
			ConstLabels: labels,
		}),
	}
	m, err := r.load()
	if err != nil {
		return nil, err
	}
	r.install(m)
	return r, nil
}

func (r *Reloader) load() (*material, error) {
	h := sha256.New()
	read := func(what, path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading TLS %s: %w", what, err)
		}
		h.Write([]byte(path))
		h.Write(b)
		return b, nil
	}
	if err := checkKeyMode(r.cfg.KeyFile); err != nil {
		return nil, err
	}
	certPEM, err := read("certificate", r.cfg.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("key", r.cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate %s and key %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	m := &material{cert: &cert}
	if r.cfg.ClientCAFile != "" {
		caPEM, err := read("client CA", r.cfg.ClientCAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("client CA file %s holds no PEM certificate", r.cfg.ClientCAFile)
		}
		m.clientCA = pool
	}
	h.Sum(m.sum[:0])
	return m, nil
}

// checkKeyMode refuses a private key that other users can read.
func checkKeyMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading TLS key: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return fmt.Errorf("TLS key file %s is readable by every user (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	return nil
}

func (r *Reloader) install(m *material) {
	r.cur.Store(m)
	r.lastOK.Set(1)
	if m.cert.Leaf != nil {
		r.expiry.Set(float64(m.cert.Leaf.NotAfter.Unix()))
	}
}

// Reload reads the files again and, when they changed and load, serves the new
// certificate from the next handshake on. It returns why the files in place are not in
// use (nil when they are); the previous certificate stays in use then.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.load()
	if err != nil {
		r.attempts.WithLabelValues("failure").Inc()
		r.lastOK.Set(0)
		r.logger.Error("TLS certificate not reloaded; keeping the one in use", "cert_file", r.cfg.CertFile, "err", err)
		return err
	}
	if old := r.cur.Load(); old != nil && bytes.Equal(old.sum[:], m.sum[:]) {
		r.lastOK.Set(1)
		return nil
	}
	r.install(m)
	r.attempts.WithLabelValues("success").Inc()
	r.logger.Info("TLS certificate loaded", "cert_file", r.cfg.CertFile, "not_after", m.cert.Leaf.NotAfter)
	return nil
}

// Run reloads every ReloadInterval until ctx is done.
func (r *Reloader) Run(ctx context.Context) error {
	periodic.Every(ctx, r.cfg.ReloadInterval, func(context.Context) { _ = r.Reload() })
	return nil
}

// ServerConfig returns the tls.Config for a server: every handshake takes the
// certificate and client CAs in use at that moment.
func (r *Reloader) ServerConfig() *tls.Config {
	base := &tls.Config{MinVersion: r.min}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := r.cur.Load()
		c := &tls.Config{
			MinVersion:   r.min,
			Certificates: []tls.Certificate{*m.cert},
			ClientAuth:   r.cfg.clientAuth(),
			ClientCAs:    m.clientCA,
			NextProtos:   []string{"h2", "http/1.1"},
		}
		return c, nil
	}
	return base
}
