package storegateway

import (
	"context"
	"errors"
	"math"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/stratametrics/strata/internal/blockmerge"
)

// Querier returns a querier over the workspace's blocks in the bucket that overlap
// [mint, maxt], as of the workspace's last sync (the first query of a workspace syncs it).
// Blocks are downloaded on first use; overlapping blocks are merged and identical samples
// returned once (see the package documentation). A block deleted from the bucket since
// the last sync is skipped. The querier holds its blocks until Close, which must be
// called; like a TSDB querier, it may be used from one goroutine at a time.
func (sg *StoreGateway) Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error) {
	return sg.QuerierSkipping(ctx, workspace, mint, maxt, nil)
}

// QuerierSkipping is Querier without the blocks whose every source block local holds:
// their samples are on the caller's local disk already (the ingester's copies of the
// blocks it uploaded), so reading them twice would only cost. local may be nil.
func (sg *StoreGateway) QuerierSkipping(ctx context.Context, workspace string, mint, maxt int64, local func(ulid.ULID) bool) (storage.Querier, error) {
	w, err := sg.workspace(workspace)
	if err != nil {
		return nil, err
	}
	if err := sg.ensureSynced(ctx, w); err != nil {
		return nil, err
	}
	var ids []ulid.ULID
	sg.mu.Lock()
	for _, b := range w.blocks {
		// A block covers [mint, maxt), the query [mint, maxt]. The same test as
		// Prometheus' DB, so that even an inverted range answers as a local TSDB would.
		if b.mint <= maxt && mint < b.maxt && !allLocal(b, local) {
			ids = append(ids, b.id)
		}
	}
	sg.mu.Unlock()
	held, err := sg.acquireAll(ctx, workspace, ids)
	if err != nil {
		return nil, err
	}
	parts := make([]blockmerge.Part, 0, len(held))
	q := &querier{sg: sg, held: held, minT: math.MaxInt64, maxT: math.MinInt64}
	for _, lb := range held {
		bq, err := tsdb.NewBlockQuerier(hashedBlock{lb.block, lb.hashes, lb.symbols}, mint, maxt)
		if err != nil {
			for _, p := range parts {
				err = errors.Join(err, p.Querier.Close())
			}
			sg.release(held)
			return nil, err
		}
		// A block holds [MinTime, MaxTime).
		m := lb.block.Meta()
		parts = append(parts, blockmerge.Part{Querier: bq, MinT: m.MinTime, MaxT: m.MaxTime - 1})
		q.minT, q.maxT = min(q.minT, m.MinTime), max(q.maxT, m.MaxTime-1)
	}
	sg.m.queryBlocks.Observe(float64(len(held)))
	sg.m.blocksTouched.Add(float64(len(held)))
	q.Querier = blockmerge.NewQuerier(parts)
	return q, nil
}

// querier is the merged block querier plus the references that keep its blocks open.
type querier struct {
	storage.Querier
	sg         *StoreGateway
	held       []*localBlock // nil once closed
	minT, maxT int64         // of its blocks' samples
}

// TimeRange bounds the samples the querier can return: [mint, maxt], inclusive; ok is
// false when it reads no block.
func (q *querier) TimeRange() (mint, maxt int64, ok bool) {
	return q.minT, q.maxT, q.minT <= q.maxT
}

// Close closes the block queriers, then gives the blocks back. A second Close is a no-op.
func (q *querier) Close() error {
	if q.held == nil {
		return nil
	}
	err := q.Querier.Close()
	q.sg.release(q.held)
	q.held = nil
	return err
}

// allLocal reports whether local holds every source of b.
func allLocal(b blockRange, local func(ulid.ULID) bool) bool {
	if local == nil {
		return false
	}
	if len(b.sources) == 0 {
		return local(b.id)
	}
	for _, s := range b.sources {
		if !local(s) {
			return false
		}
	}
	return true
}
