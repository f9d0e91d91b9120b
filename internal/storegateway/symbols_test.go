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

// A block no query read for --store-gateway.idle-close is closed, keeping its files: its
// kept symbols go back, and the next query opens it again from disk, with the same answer.
func TestIdleBlocksClose(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	f := newFixture(t)
	a := f.add(t, "a", floats("m", 0, 50, 0, 1000, 100))
	upload(t, bkt, "ws-1", a)
	cfg := testConfig(t.TempDir())
	cfg.IdleClose = time.Hour
	sg := newSG(t, cfg, bkt)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sg.now = func() time.Time { return now }
	read := func() map[string][]sample {
		t.Helper()
		q, err := sg.Querier(ctx, "ws-1", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		return selectAll(t, q)
	}
	open := func() int {
		sg.mu.Lock()
		defer sg.mu.Unlock()
		return sg.blocksOpen
	}
	first := read()
	if len(first) != 50 || open() != 1 || testutil.ToFloat64(sg.m.symbolBytes) == 0 {
		t.Fatalf("%d series, %d blocks open, symbol bytes %g", len(first), open(), testutil.ToFloat64(sg.m.symbolBytes))
	}
	if err := sg.closeIdle(now.Add(-time.Hour)); err != nil || open() != 1 {
		t.Fatalf("a block read just now was closed: %d open, %v", open(), err)
	}
	now = now.Add(2 * time.Hour)
	if err := sg.closeIdle(now.Add(-time.Hour)); err != nil || open() != 0 {
		t.Fatalf("an idle block stayed open: %d open, %v", open(), err)
	}
	if b := testutil.ToFloat64(sg.m.symbolBytes); b != 0 {
		t.Fatalf("symbol bytes %g after the close", b)
	}
	if got := read(); fmt.Sprint(got) != fmt.Sprint(first) || open() != 1 {
		t.Fatalf("after reopening: %d series, %d open", len(got), open())
	}
	if n := testutil.ToFloat64(sg.m.loads); n != 1 {
		t.Fatalf("%g downloads: reopening must read the files kept", n)
	}
}
