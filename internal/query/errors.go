package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"
)

// errorType is the errorType of Prometheus' error body.
type errorType string

// The error types of Prometheus' HTTP API that this API answers.
const (
	errBadData     errorType = "bad_data"
	errExec        errorType = "execution"
	errTimeout     errorType = "timeout"
	errCanceled    errorType = "canceled"
	errInternal    errorType = "internal"
	errNotFound    errorType = "not_found"
	errUnavailable errorType = "unavailable"
)

// statusClientClosed is nginx's "client closed request", which Prometheus answers when the
// client went away (nobody reads it, but access logs do).
const statusClientClosed = 499

// apiError is an error answered in Prometheus' shape: {"status":"error","errorType":...}.
// Handlers return it; respondError writes it once at the edge.
type apiError struct {
	typ    errorType
	status int
	err    error
	// retryAfter, when set, is sent as the Retry-After header (seconds).
	retryAfter string
}

func (e *apiError) Error() string { return string(e.typ) + ": " + e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

// statusOf is Prometheus' mapping of an error type to an HTTP status.
func statusOf(t errorType) int {
	switch t {
	case errBadData:
		return http.StatusBadRequest
	case errExec:
		return http.StatusUnprocessableEntity
	case errCanceled:
		return statusClientClosed
	case errTimeout:
		return http.StatusServiceUnavailable
	case errNotFound:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

func newError(t errorType, err error) *apiError {
	return &apiError{typ: t, status: statusOf(t), err: err}
}

func badData(format string, args ...any) *apiError {
	return newError(errBadData, fmt.Errorf(format, args...))
}

// invalidParam is Prometheus' wording for a parameter that does not parse.
func invalidParam(name string, err error) *apiError {
	return newError(errBadData, fmt.Errorf("invalid parameter %q: %w", name, err))
}

// Errors of AMP's query limits. AMP answers them 422 (Prometheus would say 503 for a
// timeout): a client should change the query rather than retry it.
var (
	// errTimedOut is AMP's answer to a query over its time limit.
	errTimedOut = errors.New("query timed out - consider simplifying your query")
	// errTooManyQueued refuses a request when its workspace's queue is full.
	errTooManyQueued = errors.New("too many outstanding requests")
)

// seriesLimitError is returned by a series set once a request read more series than its
// limit allows.
type seriesLimitError struct{ limit int }

func (e *seriesLimitError) Error() string {
	return fmt.Sprintf("the query hit the max number of series limit (limit: %d series)", e.limit)
}

func timeoutError() *apiError {
	return &apiError{typ: errTimeout, status: http.StatusUnprocessableEntity, err: errTimedOut}
}

// queueFullError answers 429 so clients back off and retry, as for AMP's throttling.
func queueFullError(l QueryLimits) *apiError {
	return &apiError{typ: errUnavailable, status: http.StatusTooManyRequests,
		err: fmt.Errorf("%w: more than %d queries of this workspace are running and %d are queued", errTooManyQueued, l.MaxConcurrent, l.MaxQueued)}
}

// execError maps an error of PromQL or storage to the API error, as Prometheus'
// returnAPIError does, with AMP's answers for its limits. ctx is the request's context
// (with its deadline): once it has ended, its end explains the error, whichever layer
// noticed it first and however that layer wrapped it.
func execError(ctx context.Context, err error) *apiError {
	if err == nil {
		return nil
	}
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae
	}
	if sl, ok := asSeriesLimit(err); ok {
		return newError(errExec, sl)
	}
	var (
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
		storage  promql.ErrStorage
	)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return timeoutError()
	case ctx.Err() != nil, errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return newError(errCanceled, err)
	case errors.As(err, &storage):
		return newError(errInternal, err)
	}
	return newError(errExec, err)
}

// asSeriesLimit finds a seriesLimitError, also inside promql.ErrStorage, which does not
// unwrap.
func asSeriesLimit(err error) (*seriesLimitError, bool) {
	if sl, ok := errors.AsType[*seriesLimitError](err); ok {
		return sl, true
	}
	if es, ok := errors.AsType[promql.ErrStorage](err); ok {
		return errors.AsType[*seriesLimitError](es.Err)
	}
	return nil, false
}
