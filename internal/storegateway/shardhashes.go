package storegateway

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"
)

// seriesHashes keeps the shard hash (labels.StableHash) of every series of an open block,
// made at the first sharded query of the block. A sharded query (query.Config.Shards)
// asks each of its N shards for the series of that shard: the TSDB's own
// index.Reader.ShardedPostings decodes the labels of every series the selector matches,
// for every shard, which costs as much as reading them all unsharded. With the hashes
// kept, a shard decodes only its own series. 12 bytes per series of a block queried
// sharded, for as long as the block stays open.
type seriesHashes struct {
	once   sync.Once
	refs   []storage.SeriesRef // ascending, as the index lists them
	hashes []uint64
	err    error
}

func (h *seriesHashes) load(ir tsdb.IndexReader) {
	name, value := index.AllPostingsKey()
	p, err := ir.Postings(context.Background(), name, value)
	if err != nil {
		h.err = err
		return
	}
	var b labels.ScratchBuilder
	for p.Next() {
		if err := ir.Series(p.At(), &b, nil); err != nil {
			h.err = err
			return
		}
		h.refs = append(h.refs, p.At())
		h.hashes = append(h.hashes, labels.StableHash(b.Labels()))
	}
	h.err = p.Err()
	h.refs, h.hashes = slices.Clip(h.refs), slices.Clip(h.hashes)
}

// hashedBlock is a block whose index answers ShardedPostings from its kept hashes, and
// Series from its kept symbols.
type hashedBlock struct {
	*tsdb.Block
	hashes  *seriesHashes
	symbols *blockSymbols
}

func (b hashedBlock) Index() (tsdb.IndexReader, error) {
	ir, err := b.Block.Index()
	if err != nil {
		return nil, err
	}
	return hashedIndex{IndexReader: ir, hashes: b.hashes, symbols: b.symbols}, nil
}

// Tombstones answers without a lock when the block has none, as bucket blocks have (a
// deletion writes new blocks): the TSDB's tombstones take a read lock for every series,
// and shards reading at once make the CPUs trade that lock's cache line.
func (b hashedBlock) Tombstones() (tombstones.Reader, error) {
	tr, err := b.Block.Tombstones()
	if err != nil || tr.Total() > 0 {
		return tr, err
	}
	return noTombstones{tr}, nil
}

type noTombstones struct{ tombstones.Reader }

func (noTombstones) Get(storage.SeriesRef) (tombstones.Intervals, error) { return nil, nil }

type hashedIndex struct {
	tsdb.IndexReader
	hashes  *seriesHashes
	symbols *blockSymbols
}

// Series reads the series with the block's kept symbols when it has them.
func (ir hashedIndex) Series(ref storage.SeriesRef, b *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	if ir.symbols != nil && ir.symbols.ready(ir.IndexReader) {
		return ir.symbols.series(ref, b, chks)
	}
	return ir.IndexReader.Series(ref, b, chks)
}

// ShardedPostings keeps the postings of p in the shard. p is ascending, as the kept
// references are, so both are walked once.
func (ir hashedIndex) ShardedPostings(p index.Postings, shard, of uint64) index.Postings {
	h := ir.hashes
	h.once.Do(func() { h.load(ir.IndexReader) })
	if h.err != nil {
		return ir.IndexReader.ShardedPostings(p, shard, of)
	}
	var out []storage.SeriesRef
	i := 0
	for p.Next() {
		ref := p.At()
		if i < len(h.refs) && h.refs[i] < ref {
			j, _ := slices.BinarySearch(h.refs[i:], ref)
			i += j
		}
		if i == len(h.refs) || h.refs[i] != ref {
			return index.ErrPostings(errUnknownSeries(ref))
		}
		if h.hashes[i]%of == shard {
			out = append(out, ref)
		}
	}
	if err := p.Err(); err != nil {
		return index.ErrPostings(err)
	}
	return index.NewListPostings(out)
}

type errUnknownSeries storage.SeriesRef

func (e errUnknownSeries) Error() string {
	return fmt.Sprintf("series %d is not in the block's index", storage.SeriesRef(e))
}
