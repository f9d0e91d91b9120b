package query

import (
	"cmp"
	"context"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
)

// maxTSDBStatusLimit is Prometheus' cap on the limit of /status/tsdb.
const maxTSDBStatusLimit = 10000

func (a *API) handleBuildInfo(q *request) *apiError {
	bi := a.buildInfo
	b := append(q.body, `{"version":`...)
	b = appendString(b, bi.Version)
	b = append(b, `,"revision":`...)
	b = appendString(b, bi.Revision)
	b = append(b, `,"branch":`...)
	b = appendString(b, bi.Branch)
	b = append(b, `,"buildUser":`...)
	b = appendString(b, bi.BuildUser)
	b = append(b, `,"buildDate":`...)
	b = appendString(b, bi.BuildDate)
	b = append(b, `,"goVersion":`...)
	b = appendString(b, bi.GoVersion)
	q.body = append(b, '}')
	return nil
}

func (a *API) handleTSDBStatus(q *request) *apiError {
	limit := 10
	if s := q.r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return badData("limit must be a positive number")
		}
		if limit > maxTSDBStatusLimit {
			return badData("limit must not exceed %d", maxTSDBStatusLimit)
		}
	}
	ctx, done, aerr := a.slot(q)
	if aerr != nil {
		return aerr
	}
	defer done()

	var (
		st     *tsdb.Stats
		chunks int64
		err    error
	)
	if a.deps.HeadStats != nil {
		st, chunks, err = a.deps.HeadStats.HeadStats(ctx, q.ws, limit)
	} else {
		st, err = a.statsFromSeries(ctx, q, limit)
	}
	if err != nil {
		return execError(ctx, err)
	}
	ps := st.IndexPostingStats
	if ps == nil {
		ps = &index.PostingsStats{}
	}
	b := append(q.body, `{"headStats":{"numSeries":`...)
	b = strconv.AppendUint(b, st.NumSeries, 10)
	b = append(b, `,"numLabelPairs":`...)
	b = strconv.AppendInt(b, int64(ps.NumLabelPairs), 10)
	b = append(b, `,"chunkCount":`...)
	b = strconv.AppendInt(b, chunks, 10)
	b = append(b, `,"minTime":`...)
	b = strconv.AppendInt(b, st.MinTime, 10)
	b = append(b, `,"maxTime":`...)
	b = strconv.AppendInt(b, st.MaxTime, 10)
	b = append(b, `},"seriesCountByMetricName":`...)
	b = appendStats(b, ps.CardinalityMetricsStats)
	b = append(b, `,"labelValueCountByLabelName":`...)
	b = appendStats(b, ps.CardinalityLabelStats)
	b = append(b, `,"memoryInBytesByLabelName":`...)
	b = appendStats(b, ps.LabelValueStats)
	b = append(b, `,"seriesCountByLabelValuePair":`...)
	b = appendStats(b, ps.LabelValuePairsStats)
	q.body = append(b, '}')
	return nil
}

func appendStats(b []byte, stats []index.Stat) []byte {
	b = append(b, '[')
	for i, s := range stats {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, s.Name)
		b = append(b, `,"value":`...)
		b = strconv.AppendUint(b, s.Count, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// statsFromSeries computes the head's cardinality figures from the series of the last
// HeadStatsWindow, the way the head computes them from its postings. It stands in when no
// HeadStatsSource is given; it reads every series of the window, so it counts against
// the series limit. Ties are broken by name, where the head's order is arbitrary.
func (a *API) statsFromSeries(ctx context.Context, q *request, limit int) (*tsdb.Stats, error) {
	now := a.now()
	mint, maxt := timestamp.FromTime(now.Add(-HeadStatsWindow)), timestamp.FromTime(now)
	qr, err := a.querier(ctx, q.ws, q.seriesBudget(), mint, maxt)
	if err != nil {
		return nil, err
	}
	defer qr.Close()
	set := qr.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt, Func: "series"},
		labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	// Series per label pair, by name then value.
	pairs := map[string]map[string]uint64{}
	var n uint64
	for set.Next() {
		n++
		set.At().Labels().Range(func(l labels.Label) {
			vals := pairs[l.Name]
			if vals == nil {
				vals = map[string]uint64{}
				pairs[l.Name] = vals
			}
			vals[l.Value]++
		})
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	var metrics, names, memory, pairStats []index.Stat
	numPairs := 0
	for name, vals := range pairs {
		names = append(names, index.Stat{Name: name, Count: uint64(len(vals))})
		numPairs += len(vals)
		var size uint64
		for v, c := range vals {
			if name == labels.MetricName {
				metrics = append(metrics, index.Stat{Name: v, Count: c})
			}
			pairStats = append(pairStats, index.Stat{Name: name + "=" + v, Count: c})
			size += labels.SizeOfLabels(name, v, c)
		}
		memory = append(memory, index.Stat{Name: name, Count: size})
	}
	return &tsdb.Stats{
		NumSeries: n,
		MinTime:   mint,
		MaxTime:   maxt,
		IndexPostingStats: &index.PostingsStats{
			CardinalityMetricsStats: topStats(metrics, limit),
			CardinalityLabelStats:   topStats(names, limit),
			LabelValueStats:         topStats(memory, limit),
			LabelValuePairsStats:    topStats(pairStats, limit),
			NumLabelPairs:           numPairs,
		},
	}, nil
}

// topStats returns the limit largest counts, largest first, ties by name.
func topStats(s []index.Stat, limit int) []index.Stat {
	slices.SortFunc(s, func(x, y index.Stat) int {
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}
		return cmp.Compare(x.Name, y.Name)
	})
	if len(s) > limit {
		s = s[:limit]
	}
	if s == nil {
		s = []index.Stat{}
	}
	return s
}
