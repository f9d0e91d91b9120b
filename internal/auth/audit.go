package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Audit outcomes.
const (
	OutcomeAllowed         = "allowed"
	OutcomeDenied          = "denied"
	OutcomeUnauthenticated = "unauthenticated"
	// OutcomeError: the request could not be decided (a failing
	// ResourceInfo or credential store); it got a 5xx and was not served.
	OutcomeError = "error"
)

// AuditRecord is one line of the audit log, CloudTrail's role in Strata:
// who did what to which resource, from where, and how it ended. It never
// holds a secret, a signature, an Authorization header or a query string
// (presigned URLs carry their signature there).
type AuditRecord struct {
	// Time is when the request arrived, RFC 3339 with nanoseconds, UTC.
	Time string `json:"time"`
	// RequestID is the x-amzn-RequestId the server answered with.
	RequestID string `json:"request_id"`
	// PrincipalARN and AccountID identify the caller; empty when the request
	// was not authenticated.
	PrincipalARN string `json:"principal_arn"`
	AccountID    string `json:"account_id"`
	// AccessKeyID is the key the request was signed with, or claimed to be
	// (unauthenticated requests). Key ids are not secret; AWS logs them too.
	AccessKeyID string `json:"access_key_id"`
	SourceIP    string `json:"source_ip"`
	UserAgent   string `json:"user_agent"`
	Method      string `json:"method"`
	// Path is the request path without the query string.
	Path      string `json:"path"`
	Action    string `json:"action"`
	Resource  string `json:"resource"`
	DataPlane bool   `json:"data_plane"`
	// Outcome is allowed, denied, unauthenticated or error.
	Outcome string `json:"outcome"`
	// Status is the HTTP status the client got.
	Status int `json:"status"`
	// ErrorCode is the x-amzn-ErrorType of the response, "" for success.
	ErrorCode string `json:"error_code"`
	// ErrorMessage says why authentication or authorization refused the
	// request; empty when a handler answered.
	ErrorMessage string `json:"error_message,omitempty"`
	// Decision explains an authorization decision: which rule and which
	// policy statement decided.
	Decision string `json:"decision,omitempty"`
}

// auditLog writes AuditRecords as JSON lines. Each record is one Write call
// under mu, so lines from concurrent requests never interleave.
type auditLog struct {
	dataPlane bool
	logger    *slog.Logger
	records   prometheus.Counter
	failures  prometheus.Counter
	dropped   prometheus.Counter
	lastWarn  atomic.Int64 // unix seconds of the last write-failure log line
	bufs      sync.Pool    // of *bytes.Buffer

	mu     sync.Mutex
	w      io.Writer // guarded by mu
	closer io.Closer // guarded by mu; nil for stdout
}

func newAuditLog(cfg Config, stdout io.Writer, logger *slog.Logger, reg prometheus.Registerer) (*auditLog, error) {
	f := promauto.With(reg)
	l := &auditLog{
		dataPlane: cfg.AuditDataPlane,
		logger:    logger,
		records: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_auth_audit_records_total",
			Help: "Audit records written.",
		}),
		failures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_auth_audit_write_failures_total",
			Help: "Audit records that could not be written.",
		}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_auth_audit_records_dropped_total",
			Help: "Audit records of unauthenticated requests not written because --auth.audit-unauthenticated-rate was reached.",
		}),
	}
	l.bufs.New = func() any { return new(bytes.Buffer) }
	switch cfg.AuditLog {
	case "":
		return nil, nil
	case AuditLogStdout:
		if stdout == nil {
			stdout = os.Stdout
		}
		l.w = stdout
	default:
		fl, err := os.OpenFile(cfg.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening audit log: %w", err)
		}
		l.w, l.closer = fl, fl
	}
	return l, nil
}

// enabled reports whether requests of a route are audited.
func (l *auditLog) enabled(dataPlane bool) bool {
	return l != nil && (!dataPlane || l.dataPlane)
}

func (l *auditLog) write(rec *AuditRecord) {
	buf := l.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(rec) // appends the newline
	if err == nil {
		l.mu.Lock()
		if l.w == nil {
			err = os.ErrClosed
		} else {
			_, err = l.w.Write(buf.Bytes())
		}
		l.mu.Unlock()
	}
	if buf.Cap() <= 64<<10 {
		l.bufs.Put(buf)
	}
	if err != nil {
		l.failures.Inc()
		now := time.Now().Unix()
		if last := l.lastWarn.Load(); now-last >= 60 && l.lastWarn.CompareAndSwap(last, now) {
			l.logger.Warn("writing audit record failed; further failures are only counted for a minute", "err", err)
		}
		return
	}
	l.records.Inc()
}

// close stops writing; later records count as failures.
func (l *auditLog) close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.closer
	l.w, l.closer = nil, nil
	if c != nil {
		return c.Close()
	}
	return nil
}
