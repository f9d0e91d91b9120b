package testutil

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// WriteBlockWith writes a Prometheus TSDB block into dir with the samples fill appends
// and returns the block's directory. blockRange is the writer's head range: at least
// twice the samples' time span.
func WriteBlockWith(t testing.TB, dir string, blockRange time.Duration, fill func(storage.Appender) error) string {
	t.Helper()
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, blockRange.Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	app := w.Appender(context.Background())
	if err := fill(app); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	id, err := w.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, id.String())
}

// WriteBlock writes a Prometheus TSDB block into dir and returns its directory: n series
// of metric (label i numbered, plus the label pairs of extra), each with a sample every
// minute over [from, from+span), the value i×k for the k-th sample.
func WriteBlock(t testing.TB, dir, metric string, from time.Time, span time.Duration, n int, extra ...string) string {
	t.Helper()
	return WriteBlockWith(t, dir, 2*span, func(app storage.Appender) error {
		for i := range n {
			ls := labels.FromStrings(append([]string{"__name__", metric, "i", strconv.Itoa(i)}, extra...)...)
			for k := 0; time.Duration(k)*time.Minute < span; k++ {
				if _, err := app.Append(0, ls, from.Add(time.Duration(k)*time.Minute).UnixMilli(), float64(i*k)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// CorruptChunks cuts the first chunks file of the block in dir in half: the block still
// lists and opens, but its samples cannot all be read.
func CorruptChunks(t testing.TB, dir string) {
	t.Helper()
	chunk := filepath.Join(dir, "chunks", "000001")
	b, err := os.ReadFile(chunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chunk, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
}
