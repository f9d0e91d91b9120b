package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/alertmanager/silence"

	"github.com/stratametrics/strata/internal/awsapi"
)

// Route is one operation of the API.
type Route struct {
	// Operation is the AMP operation name; the IAM action is "aps:" + Operation.
	Operation string
	Method    string
	// Pattern is a net/http ServeMux path pattern.
	Pattern string
	Handler http.HandlerFunc
}

// RoutePrefix is where a workspace's Alertmanager API v2 is served.
const RoutePrefix = "/workspaces/{workspaceId}/alertmanager/api/v2/"

// maxRequestBytes bounds a request body: above AMP's 20 MB quota on the size of a
// workspace's alerts, which one POST may fill.
const maxRequestBytes = 24 << 20

// persistTimeout bounds the write of a workspace's silences to the bucket after the API
// changed them.
const persistTimeout = 30 * time.Second

// AMP's quota codes, in quota errors.
const (
	quotaCodeAlerts     = "L-E9CD1A4F"
	quotaCodeAlertBytes = "L-3E2A717A"
	quotaCodeSilences   = "L-C15FCA36"
)

// Routes lists the operations of the Alertmanager API v2, with AMP's IAM operation
// names, for the HTTP server to mount behind authentication. Each request is served by
// the library's own API v2 handlers of the workspace's Alertmanager, with the path
// prefix /workspaces/{id}/alertmanager stripped, so the answers are Alertmanager's.
// A workspace without an Alertmanager answers 404 ResourceNotFoundException.
func (m *MultiTenant) Routes() []Route {
	const p = RoutePrefix
	return []Route{
		{"ListAlertManagerAlerts", http.MethodGet, p + "alerts", m.serveRead},
		{"CreateAlertManagerAlerts", http.MethodPost, p + "alerts", m.servePostAlerts},
		{"ListAlertManagerAlertGroups", http.MethodGet, p + "alerts/groups", m.serveRead},
		{"ListAlertManagerSilences", http.MethodGet, p + "silences", m.serveRead},
		{"PutAlertManagerSilences", http.MethodPost, p + "silences", m.servePostSilences},
		{"GetAlertManagerSilence", http.MethodGet, p + "silence/{silenceID}", m.serveRead},
		{"DeleteAlertManagerSilence", http.MethodDelete, p + "silence/{silenceID}", m.serveDeleteSilence},
		{"GetAlertManagerStatus", http.MethodGet, p + "status", m.serveRead},
		{"ListAlertManagerReceivers", http.MethodGet, p + "receivers", m.serveRead},
	}
}

// lookup returns the request's workspace's Alertmanager, or answers 404 and returns nil.
func (m *MultiTenant) lookup(w http.ResponseWriter, r *http.Request) *tenant {
	id := r.PathValue("workspaceId")
	t := m.tenantFor(r.Context(), id)
	if t == nil {
		awsapi.WriteError(w, &awsapi.Error{
			Status:  http.StatusNotFound,
			Type:    awsapi.ResourceNotFoundException,
			Message: fmt.Sprintf("workspace %s has no alert manager definition (create one with CreateAlertManagerDefinition)", id),
		})
	}
	return t
}

// serve hands the request to the library's API v2 handler of t, with the path relative
// to the workspace's Alertmanager.
func serve(t *tenant, w http.ResponseWriter, r *http.Request) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	}
	http.StripPrefix("/workspaces/"+t.id+"/alertmanager", t.handler()).ServeHTTP(w, r)
}

func (m *MultiTenant) serveRead(w http.ResponseWriter, r *http.Request) {
	if t := m.lookup(w, r); t != nil {
		serve(t, w, r)
	}
}

// servePostAlerts answers 429 for alerts the quotas refused, where the library would
// answer 500 (the limitedAlerts' error reaches it as a failure of its store).
func (m *MultiTenant) servePostAlerts(w http.ResponseWriter, r *http.Request) {
	t := m.lookup(w, r)
	if t == nil {
		return
	}
	capture := &quotaCapture{}
	r = r.WithContext(context.WithValue(r.Context(), quotaCaptureKey{}, capture))
	iw := &interceptWriter{ResponseWriter: w, onHeader: func(status int) bool {
		qe := capture.get()
		if status < http.StatusInternalServerError || qe == nil {
			return false
		}
		code := quotaCodeAlerts
		if qe.kind == ErrAlertsTooBig {
			code = quotaCodeAlertBytes
		}
		awsapi.WriteError(w, &awsapi.Error{
			Status:      http.StatusTooManyRequests,
			Type:        awsapi.ServiceQuotaExceededException,
			Message:     qe.Error(),
			ServiceCode: "aps",
			QuotaCode:   code,
		})
		return true
	}}
	serve(t, iw, r)
}

// servePostSilences enforces the silences quota (active and pending silences; creating
// one more answers 400) and writes the workspace's silences to the bucket before
// answering success, so that a created silence outlives a crash.
func (m *MultiTenant) servePostSilences(w http.ResponseWriter, r *http.Request) {
	t := m.lookup(w, r)
	if t == nil {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		awsapi.WriteError(w, &awsapi.Error{Status: http.StatusBadRequest, Type: awsapi.ValidationException, Message: "reading the request body: " + err.Error()})
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	t.silenceMu.Lock()
	defer t.silenceMu.Unlock()
	if limit := m.limits.AlertmanagerMaxSilences(t.id); limit > 0 && addsSilence(r.Context(), t, body) {
		n, err := t.silences.CountState(r.Context(), silence.SilenceStateActive, silence.SilenceStatePending)
		if err == nil && n >= limit {
			awsapi.WriteError(w, &awsapi.Error{
				Status:      http.StatusBadRequest,
				Type:        awsapi.ServiceQuotaExceededException,
				Message:     fmt.Sprintf("workspace %s has %d active and pending silences, the most it may have; expire one first", t.id, n),
				ServiceCode: "aps",
				QuotaCode:   quotaCodeSilences,
			})
			return
		}
	}
	serve(t, m.persistingSilences(t, w, r), r)
}

// addsSilence says whether a POST of body may add an active or pending silence: it
// creates one (no id), or replaces one that is no longer in force.
func addsSilence(ctx context.Context, t *tenant, body []byte) bool {
	var s struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &s) != nil || s.ID == "" {
		return true // a body that does not parse is refused by the library anyway
	}
	sils, _, err := t.silences.Query(ctx, silence.QIDs(s.ID))
	if err != nil || len(sils) == 0 {
		return true
	}
	return silence.StateFromProtoAt(sils[0], time.Now()) == silence.SilenceStateExpired
}

func (m *MultiTenant) serveDeleteSilence(w http.ResponseWriter, r *http.Request) {
	if t := m.lookup(w, r); t != nil {
		serve(t, m.persistingSilences(t, w, r), r)
	}
}

// persistingSilences wraps w so that a successful answer is only sent once the
// workspace's silences are written to the bucket. A failed write is logged; the periodic
// persist tries again.
func (m *MultiTenant) persistingSilences(t *tenant, w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	return &interceptWriter{ResponseWriter: w, onHeader: func(status int) bool {
		if status != http.StatusOK {
			return false
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), persistTimeout)
		defer cancel()
		if err := m.persist(ctx, t, stateSilences); err != nil {
			m.logger.Warn("persisting silences after a change", "workspace", t.id, "err", err)
		}
		return false
	}}
}

// interceptWriter lets onHeader see the status before it is sent and, by returning
// true, answer instead (having written its own response to the underlying writer); the
// handler's own header and body are then discarded.
type interceptWriter struct {
	http.ResponseWriter
	onHeader func(status int) bool
	wrote    bool
	replaced bool
}

func (w *interceptWriter) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if w.onHeader(status) {
		w.replaced = true
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *interceptWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *interceptWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
