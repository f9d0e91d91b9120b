package loadgen

import (
	"fmt"
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
)

// The workload is a deterministic core: given the options, which series exist
// at a step and what value each has there is a pure function of (seed, step),
// with no I/O and no clock. The workers generate from it in real time, and
// verification replays it to know what every acknowledged sample must read.
//
// Shape: the active series are cut into slots of one node-exporter instance
// each (the last slot may be partial so the total is exact). Churn replaces
// whole instances, oldest slot first, as a rolling deployment or pod churn
// does: a replaced instance gets a new, never used id, so its series are new.

// valueKind says how a series' value evolves from one step to the next.
type valueKind uint8

const (
	kindCounter  valueKind = iota // grows by about rate per second, never decreases
	kindGauge                     // random walk inside [lo, hi]
	kindConstant                  // a fixed value in [lo, hi] for the series' life
	kindClock                     // the sample's own timestamp in seconds (node_time_seconds)
)

// metricTemplate is one series of a node-exporter instance.
type metricTemplate struct {
	name, help string
	typ        metricType
	labels     []labels.Label // metric-specific labels (cpu, mode, device...)
	kind       valueKind
	lo, hi     float64 // gauge/constant range; counters start in it
	rate       float64 // counters: mean increase per second
	integer    bool    // bytes, packets: floor the exposed value
}

type metricType uint8

// The values are remote write 2.0's Metadata.MetricType.
const (
	typeCounter metricType = 1
	typeGauge   metricType = 2
)

// nodeTemplates is a small node-exporter host: 4 CPUs, 3 network devices, 3
// filesystems, 2 disks; 103 series. With the common labels a series has 8 to
// 11 labels, about what node-exporter plus a few external labels produce.
func nodeTemplates() []metricTemplate {
	var ts []metricTemplate
	lbl := func(kv ...string) []labels.Label {
		out := make([]labels.Label, 0, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			out = append(out, labels.Label{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	counter := func(name, help string, l []labels.Label, rate float64, integer bool) {
		ts = append(ts, metricTemplate{name: name, help: help, typ: typeCounter, labels: l, kind: kindCounter, lo: 1e3, hi: 1e6, rate: rate, integer: integer})
	}
	gauge := func(name, help string, l []labels.Label, lo, hi float64, integer bool) {
		ts = append(ts, metricTemplate{name: name, help: help, typ: typeGauge, labels: l, kind: kindGauge, lo: lo, hi: hi, integer: integer})
	}
	constant := func(name, help string, l []labels.Label, lo, hi float64) {
		ts = append(ts, metricTemplate{name: name, help: help, typ: typeGauge, labels: l, kind: kindConstant, lo: lo, hi: hi, integer: true})
	}

	modes := []struct {
		mode string
		rate float64
	}{{"idle", 0.75}, {"iowait", 0.01}, {"irq", 0.001}, {"nice", 0.002}, {"softirq", 0.005}, {"steal", 0.001}, {"system", 0.06}, {"user", 0.17}}
	for cpu := range 4 {
		for _, m := range modes {
			counter("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", lbl("cpu", strconv.Itoa(cpu), "mode", m.mode), m.rate, false)
		}
	}

	const gib = 1 << 30
	constant("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.", nil, 16*gib, 64*gib)
	gauge("node_memory_MemFree_bytes", "Memory information field MemFree_bytes.", nil, 1*gib, 8*gib, true)
	gauge("node_memory_MemAvailable_bytes", "Memory information field MemAvailable_bytes.", nil, 4*gib, 12*gib, true)
	gauge("node_memory_Buffers_bytes", "Memory information field Buffers_bytes.", nil, 100<<20, 1*gib, true)
	gauge("node_memory_Cached_bytes", "Memory information field Cached_bytes.", nil, 1*gib, 8*gib, true)
	constant("node_memory_SwapTotal_bytes", "Memory information field SwapTotal_bytes.", nil, 2*gib, 4*gib)
	gauge("node_memory_SwapFree_bytes", "Memory information field SwapFree_bytes.", nil, 1*gib, 2*gib, true)
	gauge("node_memory_Active_bytes", "Memory information field Active_bytes.", nil, 2*gib, 8*gib, true)
	gauge("node_memory_Inactive_bytes", "Memory information field Inactive_bytes.", nil, 1*gib, 4*gib, true)
	gauge("node_memory_Dirty_bytes", "Memory information field Dirty_bytes.", nil, 0, 64<<20, true)

	for _, dev := range []struct {
		name  string
		bytes float64
	}{{"eth0", 2e6}, {"eth1", 5e5}, {"lo", 1e5}} {
		d := lbl("device", dev.name)
		counter("node_network_receive_bytes_total", "Network device statistic receive_bytes.", d, dev.bytes, true)
		counter("node_network_transmit_bytes_total", "Network device statistic transmit_bytes.", d, dev.bytes/2, true)
		counter("node_network_receive_packets_total", "Network device statistic receive_packets.", d, dev.bytes/800, true)
		counter("node_network_transmit_packets_total", "Network device statistic transmit_packets.", d, dev.bytes/1600, true)
		counter("node_network_receive_errs_total", "Network device statistic receive_errs.", d, 0.01, true)
		counter("node_network_transmit_errs_total", "Network device statistic transmit_errs.", d, 0.01, true)
		counter("node_network_receive_drop_total", "Network device statistic receive_drop.", d, 0.1, true)
		counter("node_network_transmit_drop_total", "Network device statistic transmit_drop.", d, 0.05, true)
	}

	for _, fs := range []struct{ device, fstype, mountpoint string }{
		{"/dev/nvme0n1p1", "ext4", "/"},
		{"/dev/nvme1n1", "xfs", "/var/lib/data"},
		{"tmpfs", "tmpfs", "/run"},
	} {
		l := lbl("device", fs.device, "fstype", fs.fstype, "mountpoint", fs.mountpoint)
		gauge("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", l, 10*gib, 90*gib, true)
		constant("node_filesystem_size_bytes", "Filesystem size in bytes.", l, 100*gib, 500*gib)
		gauge("node_filesystem_free_bytes", "Filesystem free space in bytes.", l, 15*gib, 95*gib, true)
		constant("node_filesystem_files", "Filesystem total file nodes.", l, 1e6, 3e7)
		gauge("node_filesystem_files_free", "Filesystem total free file nodes.", l, 5e5, 2e7, true)
	}

	for _, dev := range []string{"nvme0n1", "nvme1n1"} {
		d := lbl("device", dev)
		counter("node_disk_reads_completed_total", "The total number of reads completed successfully.", d, 50, true)
		counter("node_disk_writes_completed_total", "The total number of writes completed successfully.", d, 120, true)
		counter("node_disk_read_bytes_total", "The total number of bytes read successfully.", d, 2e6, true)
		counter("node_disk_written_bytes_total", "The total number of bytes written successfully.", d, 5e6, true)
		counter("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", d, 0.05, false)
	}

	gauge("node_load1", "1m load average.", nil, 0, 8, false)
	gauge("node_load5", "5m load average.", nil, 0, 8, false)
	gauge("node_load15", "15m load average.", nil, 0, 8, false)
	constant("node_boot_time_seconds", "Node boot time, in unixtime.", nil, 1.6e9, 1.7e9)
	ts = append(ts, metricTemplate{name: "node_time_seconds", help: "System time in seconds since epoch (1970).", typ: typeGauge, kind: kindClock})
	counter("node_context_switches_total", "Total number of context switches.", nil, 5000, true)
	counter("node_intr_total", "Total number of interrupts serviced.", nil, 3000, true)
	counter("node_forks_total", "Total number of forks.", nil, 10, true)
	gauge("node_procs_running", "Number of processes in runnable state.", nil, 1, 16, true)
	gauge("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", nil, 0, 4, true)
	gauge("node_entropy_available_bits", "Bits of available entropy.", nil, 256, 4096, true)
	gauge("node_filefd_allocated", "File descriptor statistics: allocated.", nil, 1000, 20000, true)
	return ts
}

// Label names the generator owns; --label may not set them.
const (
	labelSeed     = "loadgen_seed"
	labelInstance = "instance"
	labelJob      = "job"
	labelAZ       = "az"
	labelNodePool = "nodepool"
)

var reservedLabels = map[string]bool{
	labels.MetricName: true, labelSeed: true, labelInstance: true, labelJob: true,
	labelAZ: true, labelNodePool: true,
	"cpu": true, "mode": true, "device": true, "fstype": true, "mountpoint": true,
}

var zones = [...]string{"a", "b", "c"}

// workload is the deterministic series set and value model of one run.
// It is read-only after newWorkload, so workers share it.
type workload struct {
	seed       int64
	seedLabel  string
	churnRate  float64 // instances replaced per step: churn × numSlots
	intervalMs int64
	firstStep  int64 // churn is counted from here
	templates  []metricTemplate
	static     []labels.Label // external labels: cluster, env, loadgen_seed and --label
	numSlots   int
	lastSlot   int // number of series of the last slot
	region     string
}

type workloadOptions struct {
	seed         int64
	activeSeries int
	churn        float64
	interval     int64 // milliseconds
	firstStep    int64
	labels       map[string]string // overrides/extends the static labels
	region       string            // az label prefix
}

func newWorkload(o workloadOptions) *workload {
	w := &workload{
		seed:       o.seed,
		seedLabel:  strconv.FormatInt(o.seed, 10),
		intervalMs: o.interval,
		firstStep:  o.firstStep,
		templates:  nodeTemplates(),
		region:     o.region,
	}
	if w.region == "" {
		w.region = "us-east-1"
	}
	t := len(w.templates)
	w.numSlots = (o.activeSeries + t - 1) / t
	w.lastSlot = o.activeSeries - (w.numSlots-1)*t
	w.churnRate = o.churn * float64(w.numSlots)

	static := map[string]string{"cluster": "loadgen", "env": "bench"}
	for k, v := range o.labels {
		static[k] = v
	}
	static[labelSeed] = w.seedLabel
	for k, v := range static {
		w.static = append(w.static, labels.Label{Name: k, Value: v})
	}
	return w
}

// seriesPerSlot is how many series slot s holds (all but the last hold a
// full instance).
func (w *workload) seriesPerSlot(slot int) int {
	if slot == w.numSlots-1 {
		return w.lastSlot
	}
	return len(w.templates)
}

// replacements is how many instance replacements happened up to and
// including step k. Fractional churn accumulates, so churn 0.01 over 100
// slots replaces one instance per step and over 10 slots one every 10 steps.
func (w *workload) replacements(k int64) int64 {
	if k <= w.firstStep || w.churnRate == 0 {
		return 0
	}
	return int64(math.Floor(float64(k-w.firstStep) * w.churnRate))
}

// instanceAt returns the id of the instance in slot at step k. Slot s starts
// with instance s; replacement number r (0, 1, 2...) goes to slot r mod
// numSlots and brings instance numSlots+r, so ids are never reused.
func (w *workload) instanceAt(slot int, k int64) uint32 {
	r := w.replacements(k)
	n := int64(w.numSlots)
	if r <= int64(slot) {
		return uint32(slot)
	}
	last := int64(slot) + (r-1-int64(slot))/n*n // last replacement that hit this slot
	return uint32(n + last)
}

func instanceName(id uint32) string { return fmt.Sprintf("host-%04d:9100", id) }

// seriesLabels builds the label set of template tmpl on instance id. The
// per-instance labels (az, nodepool) are derived from the seed so a
// different seed gives a different-looking fleet.
func (w *workload) seriesLabels(b *labels.ScratchBuilder, id uint32, tmpl int) labels.Labels {
	t := &w.templates[tmpl]
	h := mix(uint64(w.seed), uint64(id))
	b.Reset()
	b.Add(labels.MetricName, t.name)
	b.Add(labelJob, "node")
	b.Add(labelInstance, instanceName(id))
	b.Add(labelAZ, w.region+zones[h%uint64(len(zones))])
	b.Add(labelNodePool, "pool-"+strconv.Itoa(int(h>>32)%4))
	for _, l := range w.static {
		b.Add(l.Name, l.Value)
	}
	for _, l := range t.labels {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

// seriesKey identifies a series of the run without its labels.
func seriesKey(id uint32, tmpl int) uint64 { return uint64(id)<<16 | uint64(tmpl) }

// owner is the worker that sends a series. A series always hashes to the
// same worker, so its samples leave in order; like Prometheus' shards, no
// two requests in flight carry the same series.
func (w *workload) owner(id uint32, tmpl int, workers int) int {
	return int(mix(uint64(w.seed)^0x5bd1e995, seriesKey(id, tmpl)) % uint64(workers))
}

// valueParams are a series' constant value parameters.
type valueParams struct {
	seed    uint64
	kind    valueKind
	integer bool
	v0      float64 // value at the series' first step
	rate    float64 // counter: mean increase per step
	lo, hi  float64 // gauge bounds
	step    float64 // gauge: max move per step
}

func (w *workload) params(id uint32, tmpl int) valueParams {
	t := &w.templates[tmpl]
	s := mix(uint64(w.seed), seriesKey(id, tmpl)^0x9e3779b97f4a7c15)
	p := valueParams{seed: s, kind: t.kind, integer: t.integer, lo: t.lo, hi: t.hi}
	p.v0 = t.lo + (t.hi-t.lo)*unit(mix(s, 1))
	switch t.kind {
	case kindCounter:
		p.rate = t.rate * (0.5 + unit(mix(s, 2))) * float64(w.intervalMs) / 1000
	case kindGauge:
		p.step = (t.hi - t.lo) * 0.02
	}
	return p
}

// valueState is where a series' value is between steps. The generator and
// the verifier advance it with the same function, one step at a time, so the
// verifier computes bit-identical floats.
type valueState struct {
	v       float64
	started bool
}

// next advances st to step k (the step after the previous call, or the
// series' first step) and returns the value to send.
func (p *valueParams) next(st *valueState, k, intervalMs int64) float64 {
	if !st.started {
		st.started = true
		st.v = p.v0
	} else {
		u := unit(mix(p.seed, uint64(k)))
		switch p.kind {
		case kindCounter:
			// At least half the mean increase: strictly monotonic.
			st.v += p.rate * (0.5 + u)
		case kindGauge:
			st.v += p.step * (2*u - 1)
			if st.v > p.hi {
				st.v = 2*p.hi - st.v
			} else if st.v < p.lo {
				st.v = 2*p.lo - st.v
			}
		}
	}
	switch {
	case p.kind == kindClock:
		return float64(k*intervalMs) / 1000
	case p.integer:
		return math.Floor(st.v)
	}
	return st.v
}

// mix is splitmix64's finalizer over a and b: a cheap, well-spread hash.
func mix(a, b uint64) uint64 {
	z := a ^ (b * 0x9e3779b97f4a7c15)
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps a hash to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }
