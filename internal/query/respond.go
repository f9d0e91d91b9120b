package query

import (
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/util/annotations"

	"github.com/stratametrics/strata/internal/vendedlogs"
)

// request is the state of one API request, from the wrapper through the handler.
type request struct {
	r        *http.Request
	endpoint string
	ws       string
	lim      QueryLimits

	// body holds `{"status":"success","data":` followed by what the handler appended.
	body []byte
	// noContent answers 204 instead of body (query_exemplars of a query without selectors).
	noContent bool
	warnings  annotations.Annotations
	// query is the PromQL text that warnings point into.
	query string
	// samples is the query samples processed of a PromQL query, -1 for other requests.
	samples int64
	budget  *seriesBudget
}

const successPrefix = `{"status":"success","data":`

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// wrap turns a handler into an http.HandlerFunc: it checks the workspace, runs the
// handler and writes its answer or error in Prometheus' shape, and records metrics and
// the slow-query log.
func (a *API) wrap(endpoint string, h func(*request) *apiError) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		bp := bodyPool.Get().(*[]byte)
		q := &request{
			r:        r,
			endpoint: endpoint,
			ws:       r.PathValue("workspaceId"),
			body:     append((*bp)[:0], successPrefix...),
			samples:  -1,
		}
		err := a.serve(q, h)
		outcome := "success"
		if err != nil {
			outcome = string(err.typ)
			a.respondError(w, r, err)
		} else {
			a.respond(w, r, q)
		}
		// A huge answer is not kept for the next request.
		if cap(q.body) <= 1<<20 {
			*bp = q.body[:0]
			bodyPool.Put(bp)
		}
		elapsed := a.now().Sub(start)
		a.metrics.duration.WithLabelValues(endpoint).Observe(elapsed.Seconds())
		if err == nil || err.typ != errNotFound {
			// Unknown workspaces get no series, so that probing ids does not create any.
			a.metrics.requests.WithLabelValues(q.ws, endpoint, outcome).Inc()
		}
		if t := a.cfg.SlowQueryLogThreshold; t > 0 && elapsed >= t {
			a.logSlow(q, elapsed, err)
		}
		if q.samples >= 0 && a.deps.QueryLog != nil {
			a.logQuery(q, elapsed, err)
		}
	}
}

// logQuery hands an evaluated PromQL query to the query log.
func (a *API) logQuery(q *request, elapsed time.Duration, err *apiError) {
	rec := vendedlogs.QueryRecord{
		Query:            q.query,
		Type:             "instant",
		SamplesProcessed: q.samples,
		SeriesFetched:    q.budget.fetched(),
		Duration:         elapsed,
		Status:           "success",
	}
	if q.endpoint == "query_range" {
		rec.Type = "range"
		rec.Start, _ = parseTime(q.r.FormValue("start"))
		rec.End, _ = parseTime(q.r.FormValue("end"))
		rec.Step, _ = parseDuration(q.r.FormValue("step"))
	} else {
		rec.Start, _ = timeParam(q.r, "time", a.now())
		rec.End = rec.Start
	}
	if err != nil {
		rec.Status, rec.Error = "error", err.err.Error()
	}
	if a.deps.Principal != nil {
		rec.Principal = a.deps.Principal(q.r)
	}
	a.deps.QueryLog.Query(q.ws, rec)
}

func (a *API) serve(q *request, h func(*request) *apiError) *apiError {
	if err := q.r.ParseForm(); err != nil {
		return badData("error parsing form values: %v", err)
	}
	ok, err := a.deps.Workspaces.Exists(q.r.Context(), q.ws)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return newError(errCanceled, err)
		}
		a.logger.Error("checking workspace", "workspace", q.ws, "err", err)
		return newError(errInternal, errors.New("checking the workspace failed"))
	}
	if !ok {
		return newError(errNotFound, errors.New("workspace "+q.ws+" does not exist"))
	}
	q.lim = a.limits.QueryLimits(q.ws)
	// A query holds at most the server's samples budget, which it reserves (serverlimits.go).
	q.lim.MaxSamples = a.server.capSamples(q.lim.MaxSamples)
	return h(q)
}

func (a *API) logSlow(q *request, elapsed time.Duration, err *apiError) {
	attrs := []any{"workspace", q.ws, "endpoint", q.endpoint, "duration", elapsed}
	if a.deps.Principal != nil {
		attrs = append(attrs, "principal", a.deps.Principal(q.r))
	}
	if s := q.r.FormValue("query"); s != "" {
		attrs = append(attrs, "query", s)
	}
	if m := q.r.Form["match[]"]; len(m) > 0 {
		attrs = append(attrs, "match", m)
	}
	for _, p := range []string{"time", "start", "end", "step"} {
		if v := q.r.FormValue(p); v != "" {
			attrs = append(attrs, p, v)
		}
	}
	if q.samples >= 0 {
		attrs = append(attrs, "samples_processed", q.samples)
	}
	if err != nil {
		attrs = append(attrs, "err", err.err)
	}
	a.logger.Warn("slow query", attrs...)
}

// respond writes a success: the body built by the handler, closed with the warnings and
// infos of the request, or 204 No Content.
func (a *API) respond(w http.ResponseWriter, r *http.Request, q *request) {
	if q.noContent {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if len(q.warnings) > 0 {
		warns, infos := q.warnings.AsStrings(q.query, 10, 10)
		// Annotations are a map; sort them so that answers are reproducible.
		slices.Sort(warns)
		slices.Sort(infos)
		if len(warns) > 0 {
			q.body = append(q.body, `,"warnings":`...)
			q.body = appendStrings(q.body, warns)
		}
		if len(infos) > 0 {
			q.body = append(q.body, `,"infos":`...)
			q.body = appendStrings(q.body, infos)
		}
	}
	q.body = append(q.body, '}')
	writeBody(w, r, http.StatusOK, q.body)
}

// respondError writes {"status":"error","errorType":...,"error":...}.
func (a *API) respondError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.retryAfter != "" {
		w.Header().Set("Retry-After", e.retryAfter)
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"status":"error","errorType":`...)
	b = appendString(b, string(e.typ))
	b = append(b, `,"error":`...)
	b = appendString(b, e.err.Error())
	b = append(b, '}')
	writeBody(w, r, e.status, b)
}

var gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// writeBody writes a JSON body, compressed when the client accepts gzip or deflate (the
// first of them it names), as Prometheus does.
func writeBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	var enc string
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		// Parameters such as ";q=0.5" are ignored, as Prometheus ignores them.
		name, _, _ := strings.Cut(part, ";")
		if name = strings.TrimSpace(name); name == "gzip" || name == "deflate" {
			enc = name
			break
		}
	}
	switch enc {
	case "gzip":
		h.Set("Content-Encoding", "gzip")
		w.WriteHeader(status)
		zw := gzipPool.Get().(*gzip.Writer)
		zw.Reset(w)
		_, _ = zw.Write(body)
		_ = zw.Close()
		zw.Reset(io.Discard)
		gzipPool.Put(zw)
	case "deflate":
		h.Set("Content-Encoding", "deflate")
		w.WriteHeader(status)
		zw := zlib.NewWriter(w)
		_, _ = zw.Write(body)
		_ = zw.Close()
	default:
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}
