package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/stats"
)

// maxPointsPerSeries is Prometheus' cap on the steps of a range query.
const maxPointsPerSeries = 11000

// AMP's per-request cost parameters.
const (
	paramWarnThreshold  = "max_samples_processed_warning_threshold"
	paramErrorThreshold = "max_samples_processed_error_threshold"
)

// queryParams are the parameters shared by query and query_range.
type queryParams struct {
	limit      int
	timeout    time.Duration
	opts       promql.QueryOpts
	warnAt     int64 // AMP's QSP warning threshold, 0 if none
	failAt     int64 // AMP's QSP error threshold, 0 if none
	statsParam string
}

// readQueryParams reads the parameters after the time ones, in Prometheus' order, so a
// request with several bad parameters gets the same complaint.
func (a *API) readQueryParams(r *http.Request, p *queryParams) *apiError {
	if v := r.FormValue("timeout"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return invalidParam("timeout", err)
		}
		if d <= 0 {
			return invalidParam("timeout", fmt.Errorf("timeout must be positive, got %s", d))
		}
		p.timeout = d
	}
	var lookback time.Duration
	if v := r.FormValue("lookback_delta"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return newError(errBadData, fmt.Errorf("error parsing lookback delta duration: %w", err))
		}
		lookback = d
	}
	var useST *bool
	if v := r.Header.Get("X-Prometheus-Use-Start-Timestamps"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return newError(errBadData, fmt.Errorf("error parsing X-Prometheus-Use-Start-Timestamps header: %w", err))
		}
		useST = &b
	}
	p.statsParam = r.FormValue("stats")
	p.opts = promql.NewPrometheusQueryOpts(p.statsParam == "all", lookback, useST)
	var aerr *apiError
	if p.warnAt, aerr = thresholdParam(r, paramWarnThreshold); aerr != nil {
		return aerr
	}
	if p.failAt, aerr = thresholdParam(r, paramErrorThreshold); aerr != nil {
		return aerr
	}
	return nil
}

// deadline returns the request's context bounded by the workspace's timeout, or the
// request's own timeout parameter when shorter.
func (a *API) deadline(q *request, timeout time.Duration) (context.Context, context.CancelFunc) {
	d := q.lim.Timeout
	if timeout > 0 && timeout < d {
		d = timeout
	}
	return context.WithTimeout(q.r.Context(), d)
}

// admit waits for one of the workspace's query slots, then for the server-wide limits
// with samples reserved (serverlimits.go: in this order only). The waits count against
// the request's deadline, as Prometheus counts queue time in a query's. The returned
// function gives both back.
func (a *API) admit(ctx context.Context, q *request, samples int64) (func(), *apiError) {
	start := a.now()
	defer func() { a.metrics.queueWait.WithLabelValues(q.ws).Add(a.now().Sub(start).Seconds()) }()
	gauge := a.metrics.queued.WithLabelValues(q.ws)
	release, err := a.slots.acquire(ctx, q.ws, q.lim.MaxConcurrent, q.lim.MaxQueued, gauge.Add)
	switch {
	case err == nil:
	case errors.Is(err, errTooManyQueued):
		a.metrics.rejected.WithLabelValues(q.ws, "max_queued").Inc()
		return nil, queueFullError(q.lim)
	default:
		return nil, execError(ctx, err)
	}
	releaseServer, err := a.server.acquire(ctx, q.ws, samples)
	if err != nil {
		release()
		if busy, ok := errors.AsType[*serverBusyError](err); ok {
			a.metrics.rejected.WithLabelValues(q.ws, busy.limit).Inc()
			return nil, busy.apiError()
		}
		return nil, execError(ctx, err)
	}
	return func() { releaseServer(); release() }, nil
}

// slot bounds a request that is not a PromQL query by the workspace's timeout and waits
// for one of its slots; call done when finished.
func (a *API) slot(q *request) (ctx context.Context, done func(), aerr *apiError) {
	ctx, cancel := a.deadline(q, 0)
	release, aerr := a.admit(ctx, q, 0) // reads series and labels, not samples
	if aerr != nil {
		cancel()
		return nil, nil, aerr
	}
	return ctx, func() { release(); cancel() }, nil
}

// queryable binds a workspace: the engine asks it for a querier over the query's time
// range. It counts series against budget.
func (a *API) queryable(ctx context.Context, ws string, budget *seriesBudget) storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		return a.querier(ctx, ws, budget, mint, maxt)
	})
}

func (a *API) querier(ctx context.Context, ws string, budget *seriesBudget, mint, maxt int64) (storage.Querier, error) {
	qr, err := a.deps.Queryables.Querier(ctx, ws, mint, maxt)
	if err != nil {
		return nil, err
	}
	return limitQuerier(qr, budget), nil
}

// seriesBudget returns the request's budget of series, made on first use.
func (q *request) seriesBudget() *seriesBudget {
	if q.budget == nil {
		q.budget = &seriesBudget{limit: q.lim.MaxSeries}
	}
	return q.budget
}

// constructionError maps an error of NewInstantQuery/NewRangeQuery: a bad query unless
// the deadline or the client ended the request.
func constructionError(ctx context.Context, err error) *apiError {
	var (
		timeout  promql.ErrQueryTimeout
		canceled promql.ErrQueryCanceled
	)
	if errors.As(err, &timeout) || errors.As(err, &canceled) {
		return execError(ctx, err)
	}
	return invalidParam("query", err)
}

func (a *API) handleQuery(q *request) *apiError {
	r := q.r
	var p queryParams
	var err error
	if p.limit, err = limitParam(r.FormValue("limit")); err != nil {
		return invalidParam("limit", err)
	}
	ts, err := timeParam(r, "time", a.now())
	if err != nil {
		return invalidParam("time", err)
	}
	if aerr := a.readQueryParams(r, &p); aerr != nil {
		return aerr
	}
	ctx, cancel := a.deadline(q, p.timeout)
	defer cancel()
	q.query = r.FormValue("query")
	qry, err := a.engineFor(q.lim.MaxSamples).NewInstantQuery(ctx, a.queryable(ctx, q.ws, q.seriesBudget()), p.opts, q.query, ts)
	if err != nil {
		return constructionError(ctx, err)
	}
	if p.statsParam == "" { // stats are the engine's own
		qry = a.newShardedQuery(q.ws, q.lim, q.seriesBudget(), p.opts, q.query, ts, ts, 0, qry)
	}
	defer qry.Close()
	return a.execQuery(ctx, q, qry, &p, false)
}

func (a *API) handleQueryRange(q *request) *apiError {
	r := q.r
	var p queryParams
	var err error
	if p.limit, err = limitParam(r.FormValue("limit")); err != nil {
		return invalidParam("limit", err)
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return invalidParam("start", err)
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return invalidParam("end", err)
	}
	if end.Before(start) {
		return invalidParam("end", errors.New("end timestamp must not be before start time"))
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return invalidParam("step", err)
	}
	if step <= 0 {
		return invalidParam("step", errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"))
	}
	// Prometheus' cap: 60s steps over a week, or 1h steps over a year.
	if end.Sub(start)/step > maxPointsPerSeries {
		return badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	if aerr := a.readQueryParams(r, &p); aerr != nil {
		return aerr
	}
	ctx, cancel := a.deadline(q, p.timeout)
	defer cancel()
	q.query = r.FormValue("query")
	// Cache-Control: no-store asks for an answer evaluated now, as in Cortex.
	useCache := !strings.Contains(strings.ToLower(r.Header.Get("Cache-Control")), "no-store")
	qry, err := a.newRangeQuery(ctx, q.ws, q.lim, q.seriesBudget(), p.opts, q.query, start, end, step, p.statsParam != "", useCache)
	if err != nil {
		return constructionError(ctx, err)
	}
	defer qry.Close()
	return a.execQuery(ctx, q, qry, &p, true)
}

// execQuery checks a built query against the workspace's limits, runs it in one of the
// workspace's slots and appends its result.
func (a *API) execQuery(ctx context.Context, q *request, qry promql.Query, p *queryParams, isRange bool) *apiError {
	if aerr := checkTimeRange(qry, isRange, q.lim); aerr != nil {
		a.metrics.rejected.WithLabelValues(q.ws, "time_range").Inc()
		return aerr
	}
	// The query reserves its samples limit until its answer is encoded: the answer's
	// points are the query's memory until then.
	release, aerr := a.admit(ctx, q, int64(q.lim.MaxSamples))
	if aerr != nil {
		return aerr
	}
	defer release()
	res := qry.Exec(ctx)
	if res.Err != nil {
		aerr := execError(ctx, res.Err)
		a.countRejection(q.ws, res.Err, aerr)
		return aerr
	}
	samples := qry.Stats().Samples.TotalSamples
	q.samples = samples
	if p.failAt > 0 && samples > p.failAt {
		// AMP does not charge a query refused by its error threshold.
		a.metrics.rejected.WithLabelValues(q.ws, paramErrorThreshold).Inc()
		return newError(errExec, fmt.Errorf("query processed %d samples, more than %s=%d", samples, paramErrorThreshold, p.failAt))
	}
	a.metrics.samplesProcessed.WithLabelValues(q.ws).Add(float64(samples))

	q.warnings = res.Warnings
	if p.warnAt > 0 && samples > p.warnAt {
		q.warnings.Add(fmt.Errorf("query processed %d samples, more than %s=%d", samples, paramWarnThreshold, p.warnAt))
	}
	value := res.Value
	if p.limit > 0 {
		switch v := value.(type) {
		case promql.Matrix:
			if len(v) > p.limit {
				value = v[:p.limit]
				q.warnings.Add(errors.New("results truncated due to limit"))
			}
		case promql.Vector:
			if len(v) > p.limit {
				value = v[:p.limit]
				q.warnings.Add(errors.New("results truncated due to limit"))
			}
		}
	}
	switch p.statsParam {
	case "", "true", "all":
	default:
		q.warnings.Add(fmt.Errorf("value %q for parameter \"stats\" is deprecated and will be rejected in the next major release, use %q or %q", p.statsParam, "true", "all"))
	}

	b := append(q.body, `{"resultType":`...)
	b = appendString(b, string(value.Type()))
	b = append(b, `,"result":`...)
	switch v := value.(type) {
	case promql.Matrix:
		b = appendMatrix(b, v)
	case promql.Vector:
		b = appendVector(b, v)
	case json.Marshaler: // promql.Scalar and promql.String
		j, err := v.MarshalJSON()
		if err != nil {
			return newError(errInternal, err)
		}
		b = append(b, j...)
	default:
		return newError(errInternal, fmt.Errorf("unexpected result type %T", value))
	}
	if p.statsParam != "" {
		b = append(b, `,"stats":`...)
		b = appendQueryStats(b, stats.NewQueryStats(qry.Stats()))
	}
	q.body = append(b, '}')
	return nil
}

// countRejection counts a query stopped by one of the workspace's limits.
func (a *API) countRejection(ws string, err error, aerr *apiError) {
	var tooMany promql.ErrTooManySamples
	switch {
	case errors.As(err, &tooMany):
		a.metrics.rejected.WithLabelValues(ws, "max_samples").Inc()
	case aerr.typ == errTimeout:
		a.metrics.rejected.WithLabelValues(ws, "timeout").Inc()
	default:
		if _, ok := asSeriesLimit(err); ok {
			a.metrics.rejected.WithLabelValues(ws, "max_series").Inc()
		}
	}
}

// handleFormatQuery answers the query pretty-printed.
func (a *API) handleFormatQuery(q *request) *apiError {
	expr, err := a.parser.ParseExpr(q.r.FormValue("query"))
	if err != nil {
		return invalidParam("query", err)
	}
	q.body = appendString(q.body, expr.Pretty(0))
	return nil
}

// handleParseQuery answers the syntax tree of the query, as Prometheus' UI reads it.
func (a *API) handleParseQuery(q *request) *apiError {
	expr, err := a.parser.ParseExpr(q.r.FormValue("query"))
	if err != nil {
		return invalidParam("query", err)
	}
	j, err := json.Marshal(astJSON(expr))
	if err != nil {
		return newError(errInternal, err)
	}
	q.body = append(q.body, j...)
	return nil
}
