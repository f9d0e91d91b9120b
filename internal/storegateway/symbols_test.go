package storegateway

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"

	stratatest "github.com/stratametrics/strata/internal/testutil"
)

// A block's series read with its kept symbols are the TSDB's own reading of them: the
// same labels and chunk references, for every series of a block with shared and unique
// label values, several chunks per series and a UTF-8 label.
func TestKeptSymbolsReadAsTheTSDB(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	dir := stratatest.WriteBlockWith(t, t.TempDir(), 8*time.Hour, func(app storage.Appender) error {
		for i := range 3000 {
			ls := labels.FromStrings("__name__", fmt.Sprintf("metric_%d", i%7), "instance", fmt.Sprintf("host-%d:9100", i/10),
				"job", "node", "unique", fmt.Sprintf("u%05d", i), "ünïcode", "välue")
			for k := range 300 { // 300 samples a minute apart: several chunks
				if _, err := app.Append(0, ls, t0+int64(k)*60_000, float64(i*k)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	block, err := tsdb.OpenBlock(nil, dir, chunkenc.NewPool(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer block.Close()
	ir, err := block.Index()
	if err != nil {
		t.Fatal(err)
	}
	defer ir.Close()
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	syms := newBlockSymbols(dir, gauge)
	defer syms.close()
	kept := hashedIndex{IndexReader: ir, symbols: syms}
	name, value := index.AllPostingsKey()
	p, err := ir.Postings(context.Background(), name, value)
	if err != nil {
		t.Fatal(err)
	}
	var (
		b1, b2     labels.ScratchBuilder
		chk1, chk2 []chunks.Meta
		n          int
	)
	for p.Next() {
		if err := ir.Series(p.At(), &b1, &chk1); err != nil {
			t.Fatal(err)
		}
		if err := kept.Series(p.At(), &b2, &chk2); err != nil {
			t.Fatal(err)
		}
		if !labels.Equal(b1.Labels(), b2.Labels()) || !slices.Equal(chk1, chk2) {
			t.Fatalf("series %d: kept symbols read %s %v, the TSDB %s %v", p.At(), b2.Labels(), chk2, b1.Labels(), chk1)
		}
		if len(chk1) < 2 {
			t.Fatalf("series %s has %d chunks; the test wants several", b1.Labels(), len(chk1))
		}
		n++
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 3000 || !syms.ready(ir) {
		t.Fatalf("%d series read, symbols kept: %v", n, syms.ready(ir))
	}
	// The gauge holds the kept strings (3,000 unique values among them) until close.
	if kept := testutil.ToFloat64(gauge); kept < 3000*(6+16) {
		t.Fatalf("symbol bytes gauge %g", kept)
	}

	// A ref that is no series is an error, as the TSDB's.
	if err := kept.Series(storage.SeriesRef(1<<40), &b2, &chk2); err == nil {
		t.Fatal("a ref beyond the index read without error")
	}
	syms.close()
	if kept := testutil.ToFloat64(gauge); kept != 0 {
		t.Errorf("symbol bytes gauge %g after close", kept)
	}
}
