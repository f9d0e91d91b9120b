// Command blockgen writes a Prometheus data directory of history, as 2 h blocks, for the
// backfill and query benchmarks (bench/backfill.sh, bench/query.sh): SERIES series with a
// sample every INTERVAL over DAYS days (or HOURS hours) ending at the last full hour (or at
// END).
//
// Two layouts: flat (the default; ten metric families bench_metric_N, counters and gauges
// that move) and node (hosts of 100 series each, node-exporter-like, with a classic
// histogram: node_cpu_seconds_total{cpu,mode} (32), node_network_{receive,transmit}_bytes_total
// (3 each), node_load1/5/15, 31 other node_* gauges and counters and
// http_request_duration_seconds{handler} (2 handlers × 12 le buckets plus _sum and _count);
// labels job (one of ten, node-0 … node-9), instance and az, so that `sum by (job)` groups).
// The values are a pure function of --seed.
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
	series := flag.Int("series", 100000, "Series (the node layout rounds down to hosts of 100).")
	days := flag.Int("days", 7, "Days of history.")
	hours := flag.Int("hours", 0, "Hours of history; overrides --days when above 0.")
	interval := flag.Duration("interval", time.Minute, "Time between samples.")
	layout := flag.String("layout", "flat", "Series layout: flat or node.")
	endFlag := flag.String("end", "", "End of the history (RFC 3339); empty means the last full hour.")
	seed := flag.Uint64("seed", 42, "Seed of the values.")
	flag.Parse()
	if *dir == "" || (*layout != "flat" && *layout != "node") {
		flag.Usage()
		os.Exit(2)
	}
	end := time.Now().Truncate(time.Hour)
	if *endFlag != "" {
		t, err := time.Parse(time.RFC3339, *endFlag)
		if err != nil {
			fmt.Fprintln(os.Stderr, "blockgen: --end:", err)
			os.Exit(2)
		}
		end = t.Truncate(*interval)
	}
	span := time.Duration(*days) * 24 * time.Hour
	if *hours > 0 {
		span = time.Duration(*hours) * time.Hour
	}
	var g generator
	if *layout == "node" {
		g = newNodeGen(*series, *seed)
	} else {
		g = newFlatGen(*series, *seed)
	}
	if err := run(*dir, g, end.Add(-span), end, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "blockgen:", err)
		os.Exit(1)
	}
}

// A generator has a fixed list of series and advances all their values by one interval
// at a time.
type generator interface {
	series() []labels.Labels
	// step sets values (one per series) to those of the next interval.
	step(values []float64)
}

func run(dir string, g generator, start, end time.Time, interval time.Duration) error {
	const block = 2 * time.Hour
	lset := g.series()
	n := len(lset)
	values := make([]float64, n)
	var total int
	// Blocks are aligned to multiples of 2 h, as Prometheus cuts them; the first and the
	// last may be partial.
	for from := start.Truncate(block); from.Before(end); from = from.Add(block) {
		w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, block.Milliseconds())
		if err != nil {
			return err
		}
		app := w.Appender(context.Background())
		refs := make([]storage.SeriesRef, n)
		for t := from; t.Before(from.Add(block)) && t.Before(end); t = t.Add(interval) {
			if t.Before(start) {
				continue
			}
			g.step(values)
			for i := range n {
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

// flatGen: ten metric families, even series counters, odd ones gauges.
type flatGen struct {
	lset []labels.Labels
	rnd  *rand.Rand
}

func newFlatGen(n int, seed uint64) *flatGen {
	g := &flatGen{lset: make([]labels.Labels, n), rnd: rand.New(rand.NewPCG(seed, 0))}
	for i := range g.lset {
		g.lset[i] = labels.FromStrings("__name__", "bench_metric_"+strconv.Itoa(i%10), "instance", fmt.Sprintf("10.0.%d.%d:9100", i/250%250, i%250),
			"job", "node", "series", strconv.Itoa(i))
	}
	return g
}

func (g *flatGen) series() []labels.Labels { return g.lset }

func (g *flatGen) step(values []float64) {
	for i := range values {
		if i%2 == 0 {
			values[i] += float64(g.rnd.IntN(100)) // a counter
		} else {
			values[i] = float64(g.rnd.IntN(1000)) / 10 // a gauge
		}
	}
}

// The kinds of the node layout's series.
const (
	kindCounter   = iota // grows by up to rate per interval
	kindGauge            // random in [0, rate)
	kindBucket           // a histogram bucket: grows by the share of the interval's observations up to le
	kindHistSum          // grows by the observations times their mean
	kindHistCount        // grows by the interval's observations
)

// latencyBuckets are the le bounds of http_request_duration_seconds (Prometheus' default
// buckets); latencyCDF the share of observations in each, before a random shift per interval.
var (
	latencyBuckets = []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	latencyCDF     = []float64{0.02, 0.05, 0.15, 0.35, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 1}
)

type nodeSeries struct {
	kind int
	rate float64
	// hist: index of the histogram (host*2+handler) of a bucket, sum or count series; le: the
	// bucket's index in latencyBuckets.
	hist, le int
}

type nodeGen struct {
	lset []labels.Labels
	meta []nodeSeries
	rnd  *rand.Rand
	obs  []float64 // observations of each histogram in the current interval
	// shift scales latencyCDF of each histogram in the current interval
	shift []float64
}

func newNodeGen(n int, seed uint64) *nodeGen {
	hosts := max(n/100, 1)
	g := &nodeGen{rnd: rand.New(rand.NewPCG(seed, 1)), obs: make([]float64, hosts*2), shift: make([]float64, hosts*2)}
	for h := range hosts {
		common := []string{"job", "node-" + strconv.Itoa(h%10), "instance", fmt.Sprintf("host-%04d:9100", h), "az", "az-" + strconv.Itoa(h%3)}
		add := func(name string, kind int, rate float64, hist, le int, kv ...string) {
			g.lset = append(g.lset, labels.FromStrings(append(append([]string{"__name__", name}, common...), kv...)...))
			g.meta = append(g.meta, nodeSeries{kind: kind, rate: rate, hist: hist, le: le})
		}
		for cpu := range 4 {
			for _, mode := range []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"} {
				add("node_cpu_seconds_total", kindCounter, 15, 0, 0, "cpu", strconv.Itoa(cpu), "mode", mode)
			}
		}
		for _, dev := range []string{"eth0", "eth1", "lo"} {
			add("node_network_receive_bytes_total", kindCounter, 3e7, 0, 0, "device", dev)
			add("node_network_transmit_bytes_total", kindCounter, 1.5e7, 0, 0, "device", dev)
		}
		for _, name := range []string{"node_load1", "node_load5", "node_load15"} {
			add(name, kindGauge, 8, 0, 0)
		}
		for _, name := range []string{"MemFree", "MemAvailable", "Buffers", "Cached", "SwapFree", "Active", "Inactive", "Dirty", "Shmem", "Slab"} {
			add("node_memory_"+name+"_bytes", kindGauge, 8<<30, 0, 0)
		}
		for _, fs := range []string{"/", "/var/lib/data", "/run"} {
			for _, name := range []string{"avail_bytes", "free_bytes", "files_free"} {
				add("node_filesystem_"+name, kindGauge, 1e11, 0, 0, "mountpoint", fs)
			}
		}
		for _, dev := range []string{"nvme0n1", "nvme1n1"} {
			for _, name := range []string{"reads_completed_total", "writes_completed_total", "read_bytes_total", "written_bytes_total", "io_time_seconds_total"} {
				add("node_disk_"+name, kindCounter, 1e6, 0, 0, "device", dev)
			}
		}
		for _, name := range []string{"context_switches_total", "intr_total"} {
			add("node_"+name, kindCounter, 1e5, 0, 0)
		}
		for i, handler := range []string{"/api/v1/query", "/api/v1/write"} {
			hist := h*2 + i
			for le, b := range latencyBuckets {
				add("http_request_duration_seconds_bucket", kindBucket, 0, hist, le, "handler", handler, "le", b)
			}
			add("http_request_duration_seconds_sum", kindHistSum, 0.2, hist, 0, "handler", handler)
			add("http_request_duration_seconds_count", kindHistCount, 0, hist, 0, "handler", handler)
		}
	}
	return g
}

func (g *nodeGen) series() []labels.Labels { return g.lset }

func (g *nodeGen) step(values []float64) {
	for i := range g.obs {
		g.obs[i] = float64(g.rnd.IntN(200))
		g.shift[i] = 0.7 + 0.6*g.rnd.Float64()
	}
	for i, m := range g.meta {
		switch m.kind {
		case kindCounter:
			values[i] += float64(g.rnd.IntN(int(m.rate) + 1))
		case kindGauge:
			values[i] = g.rnd.Float64() * m.rate
		case kindBucket:
			// Cumulative in le: the shares are monotonic in le, +Inf gets all.
			values[i] += float64(int(g.obs[m.hist] * min(1, latencyCDF[m.le]*g.shift[m.hist])))
			if m.le == len(latencyBuckets)-1 {
				values[i] += g.obs[m.hist] - float64(int(g.obs[m.hist]*min(1, g.shift[m.hist])))
			}
		case kindHistSum:
			values[i] += g.obs[m.hist] * m.rate / g.shift[m.hist]
		case kindHistCount:
			values[i] += g.obs[m.hist]
		}
	}
}
