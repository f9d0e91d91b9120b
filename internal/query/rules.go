package query

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/stratametrics/strata/internal/vendedlogs"
)

// RuleQuery evaluates an instant query for the ruler: through the same path as
// /api/v1/query (the ingesters and the bucket), with the workspace's query limits
// (timeout, samples, series, time range), one of its query slots and the server's.
// A scalar result is a one-sample vector, as Prometheus' rules.EngineQueryFunc makes it.
// Errors are the engine's or a limit's; the ruler logs and counts them.
func (a *API) RuleQuery(ctx context.Context, ws, query string, t time.Time) (promql.Vector, error) {
	start := a.now()
	q := &request{ws: ws, lim: a.limits.QueryLimits(ws), samples: -1}
	q.lim.MaxSamples = a.server.capSamples(q.lim.MaxSamples)
	if q.lim.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.lim.Timeout)
		defer cancel()
	}
	qry, err := a.engineFor(q.lim.MaxSamples).NewInstantQuery(ctx, a.queryable(ctx, ws, q.seriesBudget()), nil, query, t)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	if aerr := checkTimeRange(qry, false, q.lim); aerr != nil {
		a.metrics.rejected.WithLabelValues(ws, "time_range").Inc()
		return nil, aerr.err
	}
	release, aerr := a.admit(ctx, q, int64(q.lim.MaxSamples))
	if aerr != nil {
		return nil, aerr.err
	}
	defer release()
	res := qry.Exec(ctx)
	if res.Err != nil {
		a.countRejection(ws, res.Err, execError(ctx, res.Err))
		return nil, res.Err
	}
	samples := qry.Stats().Samples.TotalSamples
	a.metrics.samplesProcessed.WithLabelValues(ws).Add(float64(samples))
	if a.deps.QueryLog != nil {
		a.deps.QueryLog.Query(ws, vendedlogs.QueryRecord{Query: query, Type: "rule", Start: t, End: t,
			SamplesProcessed: samples, SeriesFetched: q.budget.fetched(), Duration: a.now().Sub(start), Status: "success"})
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{promql.Sample{T: v.T, F: v.V, Metric: labels.Labels{}}}, nil
	}
	return nil, fmt.Errorf("rule result is not a vector or scalar: %s", res.Value.Type())
}
