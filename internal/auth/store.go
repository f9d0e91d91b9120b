package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"github.com/stratametrics/strata/internal/periodic"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stratametrics/strata/internal/auth/session"
	"github.com/stratametrics/strata/internal/auth/sigv4"
)

// Store holds the current Identities: those of the identities file, if any,
// plus the root key. It implements sigv4.CredentialStore.
//
// Store is safe for concurrent use. LookupCredential reads an immutable
// snapshot through an atomic pointer and does not allocate; Reload and Run
// replace the snapshot when the file changes and validates, and keep the
// last good one (logging why) when it does not.
type Store struct {
	path   string // "" when there is no identities file
	period time.Duration
	opts   ParseOptions
	logger *slog.Logger
	now    func() time.Time

	cur atomic.Pointer[Identities]

	ring            *session.Ring // nil: no temporary credentials
	sessions        sessionCache
	sessionsRefused prometheus.Counter

	loads       *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastSuccess prometheus.Gauge
	numKeys     prometheus.Gauge

	mu        sync.Mutex // serializes reloads and guards the fields below
	attempted bool
	files     []string   // the identities file, then the secret files it names
	stats     []fileStat // of files, as of the last read
	sum       [sha256.Size]byte
	lastErr   error
}

var _ sigv4.SessionCredentialStore = (*Store)(nil)

// fileStat is what the reload loop compares to notice a changed file
// cheaply; the content hash decides.
type fileStat struct {
	exists bool
	mtime  int64
	size   int64
}

var unknownStat = fileStat{mtime: -1, size: -1}

func statFile(path string) fileStat {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}
	}
	return fileStat{exists: true, mtime: fi.ModTime().UnixNano(), size: fi.Size()}
}

// newStore builds a Store and loads the identities file once; a file that
// does not load is an error here (there is no last good version yet).
func newStore(path string, period time.Duration, opts ParseOptions, ring *session.Ring, logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*Store, error) {
	f := promauto.With(reg)
	s := &Store{
		path:   path,
		period: period,
		opts:   opts,
		logger: logger,
		now:    now,
		ring:   ring,
		sessionsRefused: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_auth_session_tokens_refused_total",
			Help: "Requests whose session token was not valid: not sealed by this server's STS keys, for another access key, or for a role or user that no longer exists.",
		}),
		loads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_auth_identities_loads_total",
			Help: "Loads of the identities file (--auth.identities-file) that found it changed, by outcome (success, failure).",
		}, []string{"outcome"}),
		lastOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_auth_identities_last_reload_successful",
			Help: "Whether the last load of the identities file succeeded (1) or kept the previous version (0).",
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_auth_identities_last_reload_success_timestamp_seconds",
			Help: "When the identities in use were loaded, in seconds since the epoch.",
		}),
		numKeys: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_auth_identities_access_keys",
			Help: "Access keys that can sign requests, the root key included.",
		}),
	}
	s.loads.WithLabelValues("success")
	s.loads.WithLabelValues("failure")
	if path == "" {
		ids, err := ParseIdentities(nil, opts)
		if err != nil {
			return nil, err
		}
		s.install(ids)
		return s, nil
	}
	if s.opts.Dir == "" {
		s.opts.Dir = filepath.Dir(path)
	}
	s.files = []string{path}
	if _, err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// LookupCredential implements sigv4.CredentialStore. The Credential's
// Principal is a *Principal.
func (s *Store) LookupCredential(_ context.Context, accessKeyID string) (sigv4.Credential, bool, error) {
	e, ok := s.cur.Load().keys[accessKeyID]
	if !ok {
		return sigv4.Credential{}, false, nil
	}
	return sigv4.Credential{SecretAccessKey: e.secret, Principal: e.principal}, true, nil
}

// Identities returns the identities in use. The result is immutable.
func (s *Store) Identities() *Identities { return s.cur.Load() }

// Reload reads the identities file again if it changed since the last
// attempt. It returns why the file in place is not in use (nil when it is).
func (s *Store) Reload() error {
	_, err := s.reload()
	return err
}

// Problem returns why the identities file in place is not the one in use (the last good
// version is), nil when it is.
func (s *Store) Problem() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Run reloads the identities file every reload period until ctx is done.
// Without a file, or with a zero period, it only waits for ctx.
func (s *Store) Run(ctx context.Context) error {
	if s.path == "" {
		<-ctx.Done()
		return nil
	}
	periodic.Every(ctx, s.period, func(context.Context) { _, _ = s.reload() }) // reload logs
	return nil
}

// reload loads the file if it changed. tried is false when nothing changed;
// err is the current file's problem, also when unchanged.
func (s *Store) reload() (tried bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	// Stat before reading: a change made after the stat shows up next time.
	stats := make([]fileStat, len(s.files))
	for i, f := range s.files {
		stats[i] = statFile(f)
	}
	if s.attempted && slices.Equal(stats, s.stats) {
		return false, s.lastErr
	}

	var (
		ids *Identities
		src sourceInfo
	)
	data, err := os.ReadFile(s.path)
	if err != nil {
		src.sum = sha256.Sum256([]byte("\x00read error\x00" + err.Error()))
		src.secretFiles = s.files[1:]
		err = fmt.Errorf("reading identities file: %w", err)
	} else {
		ids, src, err = parseIdentities(data, s.opts)
		if err == nil && src.inlineSecrets {
			if merr := CheckSecretFileMode(s.path); merr != nil {
				ids, err = nil, fmt.Errorf("identities file holds secrets: %w", merr)
			}
		}
	}

	// Remember what was read. Secret files not statted before the read are
	// marked unknown, so the next round reads them again; the hash keeps that
	// from counting as a change.
	files := append([]string{s.path}, src.secretFiles...)
	newStats := make([]fileStat, len(files))
	for i, f := range files {
		newStats[i] = unknownStat
		if j := slices.Index(s.files, f); j >= 0 {
			newStats[i] = stats[j]
		}
	}
	s.files, s.stats = files, newStats
	if s.attempted && src.sum == s.sum {
		return false, s.lastErr
	}
	s.attempted, s.sum, s.lastErr = true, src.sum, err

	if err != nil {
		s.loads.WithLabelValues("failure").Inc()
		s.lastOK.Set(0)
		if s.cur.Load() != nil {
			s.logger.Error("identities file not loaded; keeping the last good version", "file", s.path, "err", err)
		}
		return true, err
	}
	s.install(ids)
	s.loads.WithLabelValues("success").Inc()
	s.logger.Info("identities file loaded", "file", s.path, "accounts", len(ids.accounts),
		"users", len(ids.users), "roles", len(ids.roles), "policies", len(ids.policies), "access_keys", len(ids.keys))
	return true, nil
}

func (s *Store) install(ids *Identities) {
	s.cur.Store(ids)
	s.lastOK.Set(1)
	s.lastSuccess.Set(float64(s.now().UnixNano()) / 1e9)
	s.numKeys.Set(float64(len(ids.keys)))
}
