// Package querier is the storage the PromQL engine reads a workspace from: the
// ingesters for recent samples, the store-gateway for the bucket's blocks, merged so
// that a query across the boundary has neither gaps nor doubles.
//
// Who answers is decided by time, not by block: with --querier.query-ingesters-within
// the ingesters are asked only for samples newer than that, with
// --querier.query-store-after the store-gateway only for older ones. The windows overlap
// so that a block in flight (cut, not yet in the bucket or not yet seen by the
// store-gateway) is read from the ingesters; the overlap returns each sample once. This
// works with any number of ingesters, each with blocks of its own IDs: a replicated
// sample is returned once too.
//
// A single process (both windows 0, the default) asks both for everything and skips the
// bucket blocks its own ingester still holds on local disk, so nothing is read twice.
package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/blockmerge"
)

// Config says which component answers for which samples.
type Config struct {
	QueryIngestersWithin time.Duration `yaml:"query_ingesters_within"`
	QueryStoreAfter      time.Duration `yaml:"query_store_after"`
	// IngesterTimeout bounds connecting to an ingester of another process and its first
	// answer; then the next is asked.
	IngesterTimeout time.Duration `yaml:"ingester_timeout"`
}

// RegisterFlags registers the flags under "querier.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.QueryIngestersWithin, "querier.query-ingesters-within", 0,
		"Ask the ingesters only for samples newer than this (0: for all). Where ingesters keep blocks locally for --tsdb.local-retention, set it to that: older samples are in the bucket.")
	f.DurationVar(&c.QueryStoreAfter, "querier.query-store-after", 0,
		"Ask the store-gateway only for samples older than this (0: for all). Must be below --querier.query-ingesters-within, with room for cutting and uploading a block (--tsdb.ship-interval) and the store-gateway's --store-gateway.sync-interval; with --ingest.backend=jetstream at most --jetstream.max-age less --ingest.replay-margin.")
	f.DurationVar(&c.IngesterTimeout, "querier.ingester-timeout", 5*time.Second,
		"How long a querier without an ingester in its process (--ingest.backend=jetstream) waits for an ingester of another process to connect and start answering before it asks the next one.")
}

// Validate refuses windows that leave a gap: samples neither component is asked for.
func (c *Config) Validate() error {
	if c.QueryIngestersWithin < 0 || c.QueryStoreAfter < 0 || c.IngesterTimeout < 0 {
		return errors.New("query_ingesters_within, query_store_after and ingester_timeout must not be negative")
	}
	if c.QueryIngestersWithin > 0 && c.QueryStoreAfter >= c.QueryIngestersWithin {
		return fmt.Errorf("query_store_after (%s) must be below query_ingesters_within (%s): samples between them would be read from neither the ingesters nor the bucket",
			c.QueryStoreAfter, c.QueryIngestersWithin)
	}
	return nil
}

// Ingester answers for the samples of a workspace it holds.
type Ingester interface {
	Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error)
}

// LocalIngester is an ingester in this process, which can say which bucket blocks it
// holds a local copy of (by ULID, with the blocks they were compacted from). It is
// asked after its querier is opened, whose view the answer matches.
type LocalIngester interface {
	Ingester
	LocalBlocks(workspace string) func(ulid.ULID) bool
}

// LocalBlocksQuerier is a querier that reads an ingester of this process among others
// (the querier of a cluster) and says which bucket blocks that ingester holds, nil when
// it does not read it.
type LocalBlocksQuerier interface {
	LocalBlocks() func(ulid.ULID) bool
}

// Store answers for the blocks in the bucket, without those local says the caller
// holds (local may be nil).
type Store interface {
	QuerierSkipping(ctx context.Context, workspace string, mint, maxt int64, local func(ulid.ULID) bool) (storage.Querier, error)
}

// Retentions gives a workspace's retention; ok is false when it has none (keep all).
type Retentions interface {
	Retention(ctx context.Context, workspace string) (ret time.Duration, ok bool, err error)
}

// Deps are what a Querier reads from.
type Deps struct {
	Ingesters  []Ingester
	Store      Store // nil: no bucket
	Retentions Retentions
	Now        func() time.Time // nil: time.Now
}

// Querier is a storage.Queryable per workspace.
type Querier struct {
	cfg  Config
	deps Deps
}

// New returns a Querier over deps.
func New(cfg Config, deps Deps) *Querier {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Querier{cfg: cfg, deps: deps}
}

// Querier returns a querier over the workspace's samples in [mint, maxt], from the
// ingesters and the store-gateway as the configuration says. Samples older than the
// workspace's retention are not returned, even while a local copy of their block
// outlives the bucket's (the compactor deletes in the bucket).
func (q *Querier) Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error) {
	now := q.deps.Now()
	if q.deps.Retentions != nil {
		if ret, ok, err := q.deps.Retentions.Retention(ctx, workspace); err == nil && ok && ret > 0 {
			mint = max(mint, now.Add(-ret).UnixMilli())
		}
	}
	var parts []blockmerge.Part
	closeAll := func() {
		for _, p := range parts {
			_ = p.Querier.Close()
		}
	}
	imin, smax := mint, maxt
	if w := q.cfg.QueryIngestersWithin; w > 0 {
		imin = max(mint, now.Add(-w).UnixMilli())
	}
	if a := q.cfg.QueryStoreAfter; a > 0 {
		smax = min(maxt, now.Add(-a).UnixMilli())
	}
	// The bucket blocks an ingester of this process holds are read from local disk only,
	// when that ingester is asked for all of their samples: not under a time window,
	// which could cut a block in two and leave one half to neither.
	var local []func(ulid.ULID) bool
	if imin <= maxt {
		for _, ing := range q.deps.Ingesters {
			iq, err := ing.Querier(ctx, workspace, imin, maxt)
			if err != nil {
				closeAll()
				return nil, err
			}
			parts = append(parts, part(iq))
			if q.cfg.QueryIngestersWithin == 0 {
				var f func(ulid.ULID) bool
				if li, ok := ing.(LocalIngester); ok {
					f = li.LocalBlocks(workspace)
				} else if lq, ok := iq.(LocalBlocksQuerier); ok {
					f = lq.LocalBlocks()
				}
				if f != nil {
					local = append(local, f)
				}
			}
		}
	}
	if q.deps.Store != nil && mint <= smax {
		var skip func(ulid.ULID) bool
		if len(local) > 0 {
			skip = func(id ulid.ULID) bool {
				for _, f := range local {
					if f(id) {
						return true
					}
				}
				return false
			}
		}
		sq, err := q.deps.Store.QuerierSkipping(ctx, workspace, mint, smax, skip)
		if err != nil {
			closeAll()
			return nil, err
		}
		parts = append(parts, part(sq))
	}
	if len(parts) == 0 {
		return storage.NoopQuerier(), nil
	}
	// The bucket's blocks are usually older than all the ingesters hold: then a series is
	// read from one, then the other, without comparing timestamps at every sample.
	return blockmerge.NewQuerier(parts), nil
}

// ranged is a querier that knows the time range of its samples.
type ranged interface {
	TimeRange() (mint, maxt int64, ok bool)
}

// part is q with the time range of its samples; the whole time line when q does not
// know it. Not the range q was asked for: PromQL's select hints may widen that (a TSDB
// querier reads [hints.Start, hints.End]), so samples outside it can come back. A querier
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
