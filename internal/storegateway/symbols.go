package storegateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/index"
)

// Bounds of a block's symbol table kept decoded: a larger one is read as the TSDB reads
// it, from the file.
const (
	maxCachedSymbols     = 1 << 20
	maxCachedSymbolBytes = 32 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockSymbols is an open block's symbol table, decoded at the first read of its series,
// and its index file mapped: a series' labels are then its symbols by number. The TSDB's
// own index reader finds each label name and value by decoding up to 31 other symbols
// from the nearest of every 32nd symbol's offset, which is about a third of the CPU of a
// query over a block's series (an instant rate over 32,000 of them). The strings cost
// what the symbol table holds (plus 16 bytes a symbol), for as long as the block stays
// open; a table of more than maxCachedSymbols or maxCachedSymbolBytes is not kept.
type blockSymbols struct {
	dir   string
	gauge prometheus.Gauge // of the bytes kept, over all blocks; nil: none
	once  sync.Once
	file  *fileutil.MmapFile // the index, mapped; nil unless the symbols are kept
	syms  []string
	bytes int // kept: the strings, plus 16 bytes a symbol
	dec   index.Decoder
}

func newBlockSymbols(dir string, gauge prometheus.Gauge) *blockSymbols {
	return &blockSymbols{dir: dir, gauge: gauge}
}

// ready decodes the symbols the first time, and reports whether series are read from
// them (false: read them from ir).
func (s *blockSymbols) ready(ir tsdb.IndexReader) bool {
	s.once.Do(func() {
		if err := s.load(ir); err != nil {
			s.syms = nil
			if s.file != nil {
				_ = s.file.Close()
				s.file = nil
			}
		}
	})
	return s.file != nil
}

var errNotCached = errors.New("symbol table not kept")

func (s *blockSymbols) load(ir tsdb.IndexReader) error {
	f, err := fileutil.OpenMmapFile(filepath.Join(s.dir, "index"))
	if err != nil {
		return err
	}
	s.file = f
	b := f.Bytes()
	if len(b) < 5 || binary.BigEndian.Uint32(b) != index.MagicIndex || b[4] != index.FormatV2 {
		return errNotCached // a format whose series refs this does not read
	}
	size := 0
	it := ir.Symbols()
	for it.Next() {
		sym := it.At()
		size += len(sym)
		if len(s.syms) >= maxCachedSymbols || size > maxCachedSymbolBytes {
			return errNotCached
		}
		s.syms = append(s.syms, sym)
	}
	if err := it.Err(); err != nil {
		return err
	}
	s.dec = index.Decoder{LookupSymbol: s.lookup}
	s.bytes = size + 16*len(s.syms)
	if s.gauge != nil {
		s.gauge.Add(float64(s.bytes))
	}
	return nil
}

func (s *blockSymbols) lookup(_ context.Context, o uint32) (string, error) {
	if int(o) >= len(s.syms) {
		return "", fmt.Errorf("symbol %d out of the table's %d", o, len(s.syms))
	}
	return s.syms[o], nil
}

// series reads a series as index.Reader.Series does (version 2: refs are offsets / 16).
func (s *blockSymbols) series(ref storage.SeriesRef, b *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	d := encoding.NewDecbufUvarintAt(byteSlice(s.file.Bytes()), int(ref*16), castagnoli)
	if d.Err() != nil {
		return d.Err()
	}
	if err := s.dec.Series(d.Get(), b, chks); err != nil {
		return fmt.Errorf("read series: %w", err)
	}
	return nil
}

// close unmaps the index; the block is closed, no reader is left.
func (s *blockSymbols) close() {
	if s.file != nil {
		_ = s.file.Close()
		s.file, s.syms = nil, nil
		if s.gauge != nil {
			s.gauge.Sub(float64(s.bytes))
		}
	}
}

type byteSlice []byte

func (b byteSlice) Len() int                    { return len(b) }
func (b byteSlice) Range(start, end int) []byte { return b[start:end] }
