package compactor

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
)

// nodeSeries is one series of the node-exporter-like workload and how its value moves.
type nodeSeries struct {
	lbls labels.Labels
	kind int     // seriesCounter, seriesGauge or seriesConstant
	v    float64 // current value
	rate float64 // counters: mean increase per second; gauges: step size
	lo   float64 // gauges stay in [lo, hi]
	hi   float64
	unit float64 // values are multiples of it (0.01 s of CPU, 4 KiB pages, 1 byte)
	// phase is the host's scrape offset: timestamps are regular (Prometheus aligns them
	// to the interval) but hosts are not scraped at the same instant.
	phase int64
}

const (
	seriesCounter = iota
	seriesGauge
	seriesConstant
)

// nodeWorkload makes hosts×100 series in the proportions node-exporter exposes on a
// small VM: CPU-time counters in hundredths of a second (busy modes move every scrape,
// nice and steal never), guest CPU at zero, memory and filesystem gauges in pages doing
// random walks next to constant totals, network and disk counters, idle error and drop
// counters, load averages, and info-style constants. About a third of the series are
// constant, as on real hosts; the rest change at every scrape.
func nodeWorkload(hosts int, r *rng) []*nodeSeries {
	var out []*nodeSeries
	f := func() float64 { return float64(r.next()>>11) / (1 << 53) }
	const gib = 1 << 30
	for h := range hosts {
		inst := fmt.Sprintf("10.0.%d.%d:9100", h/250, h%250)
		phase := int64(r.intn(15000))
		add := func(kind int, v, rate, lo, hi, unit float64, kv ...string) {
			b := labels.NewScratchBuilder(len(kv)/2 + 4)
			b.Add("__name__", kv[0])
			b.Add("instance", inst)
			b.Add("job", "node")
			b.Add("cluster", "prod-eu-1")
			for i := 1; i+1 < len(kv); i += 2 {
				b.Add(kv[i], kv[i+1])
			}
			b.Sort()
			out = append(out, &nodeSeries{lbls: b.Labels(), kind: kind, v: v, rate: rate, lo: lo, hi: hi, unit: unit, phase: phase})
		}
		counter := func(v, rate, unit float64, kv ...string) { add(seriesCounter, v, rate, 0, 0, unit, kv...) }
		gauge := func(lo, hi, unit float64, kv ...string) {
			add(seriesGauge, lo+(hi-lo)*f(), (hi-lo)/500, lo, hi, unit, kv...)
		}
		constant := func(v float64, kv ...string) { add(seriesConstant, v, 0, 0, 0, 0, kv...) }

		for cpu := range 4 { // 32 + 8
			c := strconv.Itoa(cpu)
			for _, m := range []struct {
				mode string
				rate float64
			}{{"idle", 0.75}, {"user", 0.17}, {"system", 0.06}, {"iowait", 0.01}, {"irq", 0.0005}, {"softirq", 0.004}} {
				counter(math.Round(1e6*f()), m.rate, 0.01, "node_cpu_seconds_total", "cpu", c, "mode", m.mode)
			}
			constant(0, "node_cpu_seconds_total", "cpu", c, "mode", "nice")
			constant(0, "node_cpu_seconds_total", "cpu", c, "mode", "steal")
			constant(0, "node_cpu_guest_seconds_total", "cpu", c, "mode", "user")
			constant(0, "node_cpu_guest_seconds_total", "cpu", c, "mode", "nice")
		}
		for _, n := range []string{"MemFree", "MemAvailable", "Cached", "Buffers", "Active", "Inactive", "Dirty", "Slab"} { // 8
			gauge(0.5*gib, 6*gib, 4096, "node_memory_"+n+"_bytes")
		}
		for _, n := range []string{"MemTotal", "SwapTotal", "SwapFree", "HugePages_Total", "Hugepagesize", "VmallocTotal", "CommitLimit", "Mlocked"} { // 8
			constant(math.Round(8*gib*f()/4096)*4096, "node_memory_"+n+"_bytes")
		}
		for _, dev := range []struct {
			name string
			bps  float64
		}{{"eth0", 2e6}, {"eth1", 2e5}, {"lo", 1e4}} { // 24
			d := dev.name
			counter(math.Round(1e10*f()), dev.bps, 1, "node_network_receive_bytes_total", "device", d)
			counter(math.Round(1e10*f()), dev.bps/2, 1, "node_network_transmit_bytes_total", "device", d)
			counter(math.Round(1e7*f()), dev.bps/800, 1, "node_network_receive_packets_total", "device", d)
			counter(math.Round(1e7*f()), dev.bps/1600, 1, "node_network_transmit_packets_total", "device", d)
			for _, n := range []string{"receive_errs", "transmit_errs", "receive_drop", "transmit_drop"} {
				constant(math.Round(10*f()), "node_network_"+n+"_total", "device", d)
			}
		}
		for _, mp := range []string{"/", "/var/lib/data"} { // 10
			size := math.Round(500 * gib * f() / 4096 * 4096)
			constant(size, "node_filesystem_size_bytes", "mountpoint", mp, "fstype", "ext4")
			constant(3e7, "node_filesystem_files", "mountpoint", mp, "fstype", "ext4")
			gauge(size/3, size/2, 4096, "node_filesystem_free_bytes", "mountpoint", mp, "fstype", "ext4")
			gauge(size/4, size/3, 4096, "node_filesystem_avail_bytes", "mountpoint", mp, "fstype", "ext4")
			gauge(2e7, 2.1e7, 1, "node_filesystem_files_free", "mountpoint", mp, "fstype", "ext4")
		}
		counter(math.Round(1e7*f()), 50, 1, "node_disk_reads_completed_total", "device", "nvme0n1") // 5
		counter(math.Round(1e7*f()), 120, 1, "node_disk_writes_completed_total", "device", "nvme0n1")
		counter(math.Round(1e11*f()), 2e6, 512, "node_disk_read_bytes_total", "device", "nvme0n1")
		counter(math.Round(1e11*f()), 5e6, 512, "node_disk_written_bytes_total", "device", "nvme0n1")
		counter(math.Round(1e5*f()), 0.05, 0.001, "node_disk_io_time_seconds_total", "device", "nvme0n1")
		for _, n := range []string{"node_load1", "node_load5", "node_load15"} { // 3
			gauge(0, 4, 0.01, n)
		}
		constant(math.Round(1.7e9*f()), "node_boot_time_seconds") // 2
		constant(1, "node_uname_info", "release", "6.1.0-13-amd64", "machine", "x86_64")
	}
	return out
}

// step advances a series by one scrape interval.
func (s *nodeSeries) step(r *rng, interval float64) {
	f := float64(r.next()>>11) / (1 << 53)
	switch s.kind {
	case seriesCounter:
		s.v += s.rate * interval * (0.5 + f) // about the mean rate, uneven
	case seriesGauge:
		s.v += s.rate * (2*f - 1)
		s.v = min(max(s.v, s.lo), s.hi)
	}
	if s.unit > 0 {
		s.v = math.Round(s.v/s.unit) * s.unit
	}
}

// writeWorkload writes 2h blocks of the workload for [0, span) into dir and returns their
// directories and the sample count.
func writeWorkload(tb testing.TB, dir string, series []*nodeSeries, r *rng, span, interval time.Duration) ([]string, int) {
	tb.Helper()
	var dirs []string
	n := 0
	blockRange := 2 * time.Hour
	for start := time.Duration(0); start < span; start += blockRange {
		w, err := tsdb.NewBlockWriter(discard, dir, blockRange.Milliseconds())
		if err != nil {
			tb.Fatal(err)
		}
		app := w.Appender(context.Background())
		refs := make([]storage.SeriesRef, len(series))
		for ts := start; ts < start+blockRange; ts += interval {
			for i, s := range series {
				s.step(r, interval.Seconds())
				ref, err := app.Append(refs[i], s.lbls, ts.Milliseconds()+s.phase, s.v)
				if err != nil {
					tb.Fatal(err)
				}
				refs[i] = ref
				n++
			}
		}
		if err := app.Commit(); err != nil {
			tb.Fatal(err)
		}
		id, err := w.Flush(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
		dirs = append(dirs, filepath.Join(dir, id.String()))
	}
	return dirs, n
}

func dirSize(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkBytesPerSample reports the bucket bytes per sample of a day of 1,000
// node-exporter-like series scraped every 15 s (5.76 million samples), as ingesters
// upload it (12 blocks of 2h) and after compaction into one 24h block. Each iteration
// uploads the 2h blocks to a new bucket and compacts them.
func BenchmarkBytesPerSample(b *testing.B) {
	const hosts = 10 // ×100 series
	r := newRand(42)
	series := nodeWorkload(hosts, r)
	dirs, samples := writeWorkload(b, b.TempDir(), series, r, 24*time.Hour, 15*time.Second)
	var before int64
	for _, d := range dirs {
		before += dirSize(b, d)
	}
	var after float64
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		bkt, err := bucket.NewFilesystem(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range dirs {
			if _, err := blocks.Upload(context.Background(), bkt, "ws-bench", d); err != nil {
				b.Fatal(err)
			}
		}
		clk := &clock{}
		clk.set(26 * time.Hour) // the day is complete
		c, err := New(testConfig(b), b.TempDir(), bkt, StaticWorkspaces{"ws-bench": 0}, discard, nil, clk.now)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := c.CompactOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		list, err := blocks.List(context.Background(), bkt, "ws-bench")
		if err != nil {
			b.Fatal(err)
		}
		var live []blocks.Block
		for _, bl := range list {
			if bl.DeletionMark == nil {
				live = append(live, bl)
			}
		}
		if len(live) != 1 || live[0].Meta.Stats.NumSamples != uint64(samples) {
			b.Fatalf("after compaction: %d blocks", len(live))
		}
		size, err := c.blockSize(context.Background(), "ws-bench", live[0].Meta.ULID)
		if err != nil {
			b.Fatal(err)
		}
		after = float64(size) / float64(samples)
		b.StartTimer()
	}
	b.ReportMetric(after, "B/sample")
	b.ReportMetric(float64(before)/float64(samples), "B/sample-2h-blocks")
	b.ReportMetric(float64(samples), "samples")
}
