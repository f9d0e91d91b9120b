package testutil

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
)

// WriteBlock writes a Prometheus TSDB block into dir and returns its directory: n series
// of metric (label i numbered, plus the label pairs of extra), each with a sample every
// minute over [from, from+span), the value i×k for the k-th sample.
func WriteBlock(t testing.TB, dir, metric string, from time.Time, span time.Duration, n int, extra ...string) string {
	t.Helper()
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, (2 * span).Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
	app := w.Appender(context.Background())
	for i := range n {
		ls := labels.FromStrings(append([]string{"__name__", metric, "i", strconv.Itoa(i)}, extra...)...)
		for k := 0; time.Duration(k)*time.Minute < span; k++ {
			if _, err := app.Append(0, ls, from.Add(time.Duration(k)*time.Minute).UnixMilli(), float64(i*k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	id, err := w.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	return filepath.Join(dir, id.String())
}
