// Command blockgen writes a Prometheus data directory of history, as 2 h blocks, for the
// backfill benchmark (bench/backfill.sh): SERIES series (ten metric families, counters
// and gauges that move) with a sample every INTERVAL over DAYS days ending at the last
// full hour.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

func main() {
	dir := flag.String("dir", "", "Data directory to write the blocks into.")
	series := flag.Int("series", 100000, "Series.")
	days := flag.Int("days", 7, "Days of history.")
	interval := flag.Duration("interval", time.Minute, "Time between samples.")
	flag.Parse()
	if *dir == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, *series, *days, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "blockgen:", err)
		os.Exit(1)
	}
}

func run(dir string, n, days int, interval time.Duration) error {
	const block = 2 * time.Hour
	end := time.Now().Truncate(time.Hour)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	lset := make([]labels.Labels, n)
	for i := range lset {
		lset[i] = labels.FromStrings("__name__", "bench_metric_"+strconv.Itoa(i%10), "instance", fmt.Sprintf("10.0.%d.%d:9100", i/250%250, i%250),
			"job", "node", "series", strconv.Itoa(i))
	}
	values := make([]float64, n)
	var total int
	for from := start; from.Before(end); from = from.Add(block) {
		w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, block.Milliseconds())
		if err != nil {
			return err
		}
		app := w.Appender(context.Background())
		refs := make([]storage.SeriesRef, n)
		for t := from; t.Before(from.Add(block)); t = t.Add(interval) {
			for i := range n {
				if i%2 == 0 {
					values[i] += float64(rand.IntN(100)) // a counter
				} else {
					values[i] = float64(rand.IntN(1000)) / 10 // a gauge
				}
				ref, err := app.Append(refs[i], lset[i], t.UnixMilli(), values[i])
				if err != nil {
					return err
				}
				refs[i] = ref
				total++
			}
		}
		if err := app.Commit(); err != nil {
			return err
		}
		id, err := w.Flush(context.Background())
		if err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		fmt.Printf("%s %s\n", id, from.UTC().Format(time.RFC3339))
	}
	fmt.Printf("%d series, %d samples, %s – %s\n", n, total, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	return nil
}
