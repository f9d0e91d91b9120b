package query

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// checkEvery is how many series the series endpoint reads between checks of its context.
const checkEvery = 128

var errTruncated = errors.New("results truncated due to limit")

func (a *API) handleSeries(q *request) *apiError {
	r := q.r
	if len(r.Form["match[]"]) == 0 {
		return badData("no match[] parameter provided")
	}
	limit, start, end, aerr := limitedRangeParams(r)
	if aerr != nil {
		return aerr
	}
	sets, err := matchersParam(a.parser, r.Form["match[]"])
	if err != nil {
		return invalidParam("match[]", err)
	}
	ctx, done, aerr := a.slot(q)
	if aerr != nil {
		return aerr
	}
	defer done()
	mint, maxt := timestamp.FromTime(start), timestamp.FromTime(end)
	qr, err := a.querier(ctx, q.ws, q.seriesBudget(), mint, maxt)
	if err != nil {
		return execError(ctx, err)
	}
	defer qr.Close()

	hints := &storage.SelectHints{
		Start: mint,
		End:   maxt,
		Func:  "series", // no samples needed
		Limit: hintLimit(limit),
	}
	var set storage.SeriesSet
	if len(sets) == 1 {
		set = qr.Select(ctx, false, hints, sets[0]...)
	} else {
		// Merging removes duplicates and needs sorted sets.
		all := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			all = append(all, qr.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	}

	// The labels are encoded while the querier is open: they may point into its memory.
	b := append(q.body, '[')
	n := 0
	for set.Next() {
		if n%checkEvery == checkEvery-1 {
			if err := ctx.Err(); err != nil {
				return execError(ctx, err)
			}
		}
		if limit > 0 && n == limit {
			q.warnings.Add(errTruncated)
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendLabels(b, set.At().Labels())
		n++
	}
	q.warnings.Merge(set.Warnings())
	if err := set.Err(); err != nil {
		return execError(ctx, err)
	}
	q.body = append(b, ']')
	return nil
}

func (a *API) handleLabels(q *request) *apiError {
	return a.labelQuery(q,
		func(ctx context.Context, qr storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
			return qr.LabelNames(ctx, hints, ms...)
		})
}

func (a *API) handleLabelValues(q *request) *apiError {
	r := q.r
	name := r.PathValue("name")
	// Clients escape names that are not legacy label names ("U__" + escaped UTF-8).
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return badData("invalid label name: %q", name)
	}
	return a.labelQuery(q,
		func(ctx context.Context, qr storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
			return qr.LabelValues(ctx, name, hints, ms...)
		})
}

// labelQuery answers label names or values: the union over the matcher sets, sorted,
// truncated to limit with a warning.
func (a *API) labelQuery(q *request,
	get func(context.Context, storage.Querier, *storage.LabelHints, []*labels.Matcher) ([]string, annotations.Annotations, error),
) *apiError {
	limit, start, end, aerr := limitedRangeParams(q.r)
	if aerr != nil {
		return aerr
	}
	sets, err := matchersParam(a.parser, q.r.Form["match[]"])
	if err != nil {
		return newError(errBadData, err)
	}
	mint, maxt := timestamp.FromTime(start), timestamp.FromTime(end)
	ctx, done, aerr := a.slot(q)
	if aerr != nil {
		return aerr
	}
	defer done()
	qr, err := a.querier(ctx, q.ws, q.seriesBudget(), mint, maxt)
	if err != nil {
		return execError(ctx, err)
	}
	defer qr.Close()

	hints := &storage.LabelHints{Limit: hintLimit(limit)}
	var names []string
	if len(sets) <= 1 {
		var ms []*labels.Matcher
		if len(sets) == 1 {
			ms = sets[0]
		}
		vals, ws, err := get(ctx, qr, hints, ms)
		q.warnings.Merge(ws)
		if err != nil {
			return execError(ctx, err)
		}
		names = vals
	} else {
		seen := map[string]struct{}{}
		for _, ms := range sets {
			vals, ws, err := get(ctx, qr, hints, ms)
			q.warnings.Merge(ws)
			if err != nil {
				return execError(ctx, err)
			}
			for _, v := range vals {
				if _, ok := seen[v]; !ok {
					seen[v] = struct{}{}
					names = append(names, v)
				}
			}
		}
	}
	slices.Sort(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
		q.warnings.Add(errTruncated)
	}
	// Encoded while the querier is open, as the strings may point into its memory.
	q.body = appendStrings(q.body, names)
	return nil
}

func (a *API) handleExemplars(q *request) *apiError {
	r := q.r
	start, end, aerr := timeRangeParams(r)
	if aerr != nil {
		return aerr
	}
	if end.Before(start) {
		return badData("end timestamp must not be before start timestamp")
	}
	q.query = r.FormValue("query")
	expr, err := a.parser.ParseExpr(q.query)
	if err != nil {
		return newError(errBadData, err)
	}
	selectors := parser.ExtractSelectors(expr)
	if len(selectors) == 0 {
		// Prometheus answers a query without selectors with no content.
		q.noContent = true
		return nil
	}
	var res []exemplar.QueryResult
	if a.deps.Exemplars != nil {
		ctx, done, aerr := a.slot(q)
		if aerr != nil {
			return aerr
		}
		defer done()
		eq, err := a.deps.Exemplars.ExemplarQuerier(ctx, q.ws)
		if err != nil {
			return execError(ctx, err)
		}
		res, err = eq.Select(timestamp.FromTime(start), timestamp.FromTime(end), selectors...)
		if err != nil {
			return execError(ctx, err)
		}
	}
	q.body = appendExemplars(q.body, res)
	return nil
}

func (a *API) handleMetadata(q *request) *apiError {
	r := q.r
	// Unlike elsewhere, a negative limit means none here, and 0 answers nothing.
	limit, perMetric := -1, -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			return badData("limit must be a number")
		}
	}
	if s := r.FormValue("limit_per_metric"); s != "" {
		var err error
		if perMetric, err = strconv.Atoi(s); err != nil {
			return badData("limit_per_metric must be a number")
		}
	}
	metric := r.FormValue("metric")
	var md map[string][]Metadata
	if a.deps.Metadata != nil && limit != 0 {
		var err error
		md, err = a.deps.Metadata.Metadata(r.Context(), q.ws, metric, max(limit, 0))
		if err != nil {
			return execError(r.Context(), err)
		}
	}
	names := make([]string, 0, len(md))
	for name, ms := range md {
		if len(ms) > 0 && (metric == "" || name == metric) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if limit >= 0 && len(names) > limit {
		names = names[:limit]
	}
	b := append(q.body, '{')
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ":["...)
		ms := md[name]
		if perMetric > 0 && len(ms) > perMetric {
			ms = ms[:perMetric]
		}
		for j, m := range ms {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":`...)
			b = appendString(b, string(m.Type))
			b = append(b, `,"unit":`...)
			b = appendString(b, m.Unit)
			b = append(b, `,"help":`...)
			b = appendString(b, m.Help)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	q.body = append(b, '}')
	return nil
}
