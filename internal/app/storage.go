package app

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/blockmerge"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/ingester"
	"github.com/stratametrics/strata/internal/storegateway"
)

// mergedStorage reads a workspace from the ingester (head and recent blocks on local
// disk) and the store-gateway (blocks in the bucket) at once. Bucket blocks whose data the
// ingester still has locally are skipped; what still overlaps (say a compacted block
// partly local) returns identical samples once, so a query across the boundary is
// continuous, without gaps or doubles.
//
// Samples older than the workspace's retention are not returned, even while a local copy
// of their block outlives the bucket's (the compactor deletes in the bucket).
type mergedStorage struct {
	ing        *ingester.Ingester
	sg         *storegateway.StoreGateway
	retentions compactor.Workspaces
}

func (m mergedStorage) Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error) {
	if ret, ok, err := m.retentions.Retention(ctx, workspace); err == nil && ok && ret > 0 {
		mint = max(mint, time.Now().Add(-ret).UnixMilli())
	}
	iq, err := m.ing.Querier(ctx, workspace, mint, maxt)
	if err != nil {
		return nil, err
	}
	// Bucket blocks the ingester still holds locally are read from local disk only.
	sq, err := m.sg.QuerierSkipping(ctx, workspace, mint, maxt, m.ing.LocalBlocks(workspace))
	if err != nil {
		_ = iq.Close()
		return nil, err
	}
	// The bucket's blocks are usually older than all the ingester holds: then a series is
	// read from one, then the other, without comparing timestamps at every sample.
	return blockmerge.NewQuerier([]blockmerge.Part{part(iq), part(sq)}), nil
}

// ranged is a querier that knows the time range of its samples.
type ranged interface {
	TimeRange() (mint, maxt int64, ok bool)
}

// part is q with its time range; the whole time line when q does not know it. A querier
// without samples gets an empty range that overlaps nothing.
func part(q storage.Querier) blockmerge.Part {
	r, ok := q.(ranged)
	if !ok {
		return blockmerge.Part{Querier: q, MinT: math.MinInt64, MaxT: math.MaxInt64}
	}
	mint, maxt, ok := r.TimeRange()
	if !ok {
		return blockmerge.Part{Querier: q, MinT: math.MaxInt64, MaxT: math.MinInt64}
	}
	return blockmerge.Part{Querier: q, MinT: mint, MaxT: maxt}
}
