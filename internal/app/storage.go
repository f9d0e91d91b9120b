package app

import (
	"context"

	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/ingester"
	"github.com/stratametrics/strata/internal/storegateway"
)

// mergedStorage reads a workspace from the ingester (head and recent blocks on local
// disk) and the store-gateway (blocks in the bucket) at once. The two overlap for the
// local retention window; identical samples are returned once, so a query across the
// boundary is continuous, without gaps or doubles.
type mergedStorage struct {
	ing *ingester.Ingester
	sg  *storegateway.StoreGateway
}

func (m mergedStorage) Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error) {
	iq, err := m.ing.Querier(ctx, workspace, mint, maxt)
	if err != nil {
		return nil, err
	}
	sq, err := m.sg.Querier(ctx, workspace, mint, maxt)
	if err != nil {
		_ = iq.Close()
		return nil, err
	}
	return storage.NewMergeQuerier([]storage.Querier{iq, sq}, nil, storage.ChainedSeriesMerge), nil
}
