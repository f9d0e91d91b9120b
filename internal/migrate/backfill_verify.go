package migrate

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/stratametrics/strata/internal/blocks"
)

// metricCounts are a metric's series and samples in a block.
type metricCounts struct{ Series, Samples int }

// countBlock counts the block in dir by metric name, stale markers left out: queries do
// not see them.
func countBlock(ctx context.Context, dir string) (map[string]metricCounts, error) {
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), dir, nil, nil)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	out := map[string]metricCounts{}
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		n := 0
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				if _, v := it.At(); value.IsStaleNaN(v) {
					continue
				}
			case chunkenc.ValHistogram:
				if _, h := it.AtHistogram(nil); value.IsStaleNaN(h.Sum) {
					continue
				}
			case chunkenc.ValFloatHistogram:
				if _, h := it.AtFloatHistogram(nil); value.IsStaleNaN(h.Sum) {
					continue
				}
			}
			n++
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
		if n > 0 {
			c := out[s.Labels().Get(labels.MetricName)]
			c.Series++
			c.Samples += n
			out[s.Labels().Get(labels.MetricName)] = c
		}
	}
	return out, ss.Err()
}

// workspaceCounts asks the workspace for a metric's series and samples in [mint, maxt).
func workspaceCounts(ctx context.Context, ws *promClient, metric string, mint, maxt int64) (metricCounts, error) {
	var c metricCounts
	sel := fmt.Sprintf(`count_over_time({__name__=%s}[%dms])`, strconv.Quote(metric), maxt-mint)
	at := time.UnixMilli(maxt - 1)
	for _, q := range []struct {
		expr string
		into *int
	}{{"count(" + sel + ")", &c.Series}, {"sum(" + sel + ")", &c.Samples}} {
		v, err := ws.vectorAt(ctx, q.expr, at)
		if err != nil {
			return c, err
		}
		if len(v) == 1 {
			*q.into = int(v[0].Value)
		}
	}
	return c, nil
}

// verifyBlock compares a block's counts with the workspace's over its window until they
// agree or timeout passes (the store-gateway finds new blocks on its next sync); it
// returns the differences left.
func verifyBlock(ctx context.Context, ws *promClient, dir string, meta *blocks.Meta, timeout, poll time.Duration) ([]string, error) {
	want, err := countBlock(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("counting block %s: %w", meta.ULID, err)
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	deadline := time.Now().Add(timeout)
	for {
		var diffs []string
		for _, n := range names {
			got, err := workspaceCounts(ctx, ws, n, meta.MinTime, meta.MaxTime)
			if err != nil {
				return nil, fmt.Errorf("counting %s in the workspace: %w", n, err)
			}
			if got != want[n] {
				diffs = append(diffs, fmt.Sprintf("%s: %d series and %d samples in the block, %d and %d in the workspace",
					n, want[n].Series, want[n].Samples, got.Series, got.Samples))
			}
		}
		if len(diffs) == 0 || time.Now().After(deadline) {
			return diffs, nil
		}
		select {
		case <-ctx.Done():
			return diffs, ctx.Err()
		case <-time.After(poll):
		}
	}
}
