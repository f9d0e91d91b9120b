package blocks

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
)

// Import checks a Prometheus TSDB block on disk and adds it to a workspace in the bucket
// (for `strata migrate` backfills). The check opens the block and reads every sample: the
// index must resolve, every chunk decode, samples be in order within each series, and the
// counts agree with meta.json. Overlaps with the workspace's other blocks are fine: readers
// and the compactor deduplicate.
func Import(ctx context.Context, bkt objstore.Bucket, workspace, dir string) (*Meta, error) {
	if err := Check(ctx, dir); err != nil {
		return nil, err
	}
	if err := MarkImported(dir); err != nil {
		return nil, fmt.Errorf("marking block %s as imported: %w", dir, err)
	}
	return Upload(ctx, bkt, workspace, dir)
}

// Check verifies a block directory as Import does.
func Check(ctx context.Context, dir string) error {
	meta, err := ReadLocalMeta(dir)
	if err != nil {
		return fmt.Errorf("reading meta.json: %w", err)
	}
	if meta.ULID.String() != filepath.Base(dir) {
		return fmt.Errorf("directory %s holds block %s: the directory must be named after the block", dir, meta.ULID)
	}
	if meta.MinTime >= meta.MaxTime {
		return fmt.Errorf("block %s has an empty time range [%d, %d)", meta.ULID, meta.MinTime, meta.MaxTime)
	}
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), dir, nil, nil)
	if err != nil {
		return fmt.Errorf("opening block %s: %w", meta.ULID, err)
	}
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
	if err != nil {
		return fmt.Errorf("querying block %s: %w", meta.ULID, err)
	}
	defer q.Close()
	var series, samples uint64
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".*"))
	var it chunkenc.Iterator
	for ss.Next() {
		series++
		s := ss.At()
		if s.Labels().Get(labels.MetricName) == "" {
			return fmt.Errorf("block %s: series %s has no metric name", meta.ULID, s.Labels())
		}
		it = s.Iterator(it)
		last := int64(math.MinInt64)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			t := it.AtT()
			if t <= last {
				return fmt.Errorf("block %s: series %s has samples out of order at %d", meta.ULID, s.Labels(), t)
			}
			if t < meta.MinTime || t >= meta.MaxTime {
				return fmt.Errorf("block %s: series %s has a sample at %d outside the block's range [%d, %d)", meta.ULID, s.Labels(), t, meta.MinTime, meta.MaxTime)
			}
			last = t
			samples++
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("block %s: reading series %s: %w", meta.ULID, s.Labels(), err)
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("block %s: %w", meta.ULID, err)
	}
	if series != meta.Stats.NumSeries || samples != meta.Stats.NumSamples {
		return fmt.Errorf("block %s: meta.json says %d series and %d samples, the block holds %d and %d", meta.ULID, meta.Stats.NumSeries, meta.Stats.NumSamples, series, samples)
	}
	return nil
}
