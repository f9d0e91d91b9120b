// Package gctuner keeps the Go garbage collector from collecting a small heap over and
// over. Go collects when the heap reaches its goal, by default twice the live heap
// (GOGC=100). A Strata process whose live heap is small (a querier reading blocks that
// are mapped from disk holds some tens of MB) then collects once or more per query, and a
// query that uses both CPUs shares them with the collector. Start keeps the goal at
// least Config.MinHeapGoal, raising GOGC after each collection while the live heap is
// small; above the floor GOGC is what the environment set, and GOMEMLIMIT still caps
// the heap. Under a container's memory limit, and without GOMEMLIMIT, Start also sets
// Go's memory limit to a fraction of the container's (as Prometheus 3 does), so that the
// floor gives way before the container runs out.
//
// The garbage collector's settings belong to the process: run one Tuner per process
// (cmd/strata does), not one per component.
package gctuner

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
)

// Config configures the tuner.
type Config struct {
	// MinHeapGoal is the least heap, in bytes, the collector lets grow before it
	// collects. Zero leaves the collector as GOGC sets it.
	MinHeapGoal int64 `yaml:"min_heap_goal"`
	// MemoryLimitRatio sets Go's memory limit to this fraction of the container's memory
	// limit (cgroup) when GOMEMLIMIT is not set. Zero leaves the limit alone.
	MemoryLimitRatio float64 `yaml:"memory_limit_ratio"`
}

// Defaults of Config.
const (
	DefaultMinHeapGoal      = 128 << 20
	DefaultMemoryLimitRatio = 0.9
)

// RegisterFlags registers the tuner's flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Int64Var(&c.MinHeapGoal, "runtime.min-heap-goal", DefaultMinHeapGoal, "Least heap, in bytes, the Go garbage collector lets grow before it collects: GOGC is raised while the live heap is under half of it, so a process with a small heap (a querier reading blocks mapped from disk) does not collect at every query. Above it GOGC applies as set (default 100); GOMEMLIMIT still caps the heap. 0 leaves GOGC alone.")
	f.Float64Var(&c.MemoryLimitRatio, "runtime.memory-limit-ratio", DefaultMemoryLimitRatio, "When GOMEMLIMIT is not set and the process runs under a container memory limit (cgroup v2 memory.max or v1 memory.limit_in_bytes), Go's memory limit is set to this fraction of it: the collector then works harder as the container nears its limit, before --runtime.min-heap-goal or GOGC would let it run out. 0 leaves the limit alone.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MinHeapGoal < 0 {
		return fmt.Errorf("min_heap_goal must not be negative, got %d", c.MinHeapGoal)
	}
	if c.MemoryLimitRatio < 0 || c.MemoryLimitRatio > 1 {
		return fmt.Errorf("memory_limit_ratio must be between 0 and 1, got %v", c.MemoryLimitRatio)
	}
	return nil
}

// Percent is the GOGC that makes the heap goal at least floor: Go's goal is
// live + (live + roots) × GOGC / 100, where roots are the stacks and globals it scans.
// It is never below base, the GOGC the process was started with.
func Percent(base int, floor, live, roots uint64) int {
	if floor <= live {
		return base
	}
	p := (floor - live) * 100 / max(live+roots, 1)
	return max(base, int(min(p, maxPercent)))
}

// maxPercent bounds the GOGC the tuner sets, for a live heap of next to nothing (at
// start).
const maxPercent = 100_000

// Tuner sets GOGC after each garbage collection, and Go's memory limit from the
// container's. Start it with Start; Stop gives the process back the settings it had.
type Tuner struct {
	floor  uint64 // 0: GOGC is not tuned
	base   int
	logger *slog.Logger
	// tuned, when set (tests), is called with each GOGC the tuner decides on.
	tuned func(int)
	// prevLimit is Go's memory limit before Start set it; -1 when Start did not.
	prevLimit int64

	mu      sync.Mutex
	stopped bool
	percent int // the GOGC set last
	samples []metrics.Sample
}

// Start starts a tuner, or returns nil when there is nothing to tune: a zero floor, or
// the collector off (GOGC=off), and no memory limit to set.
func Start(cfg Config, logger *slog.Logger) *Tuner {
	return start(cfg, logger, "/sys/fs/cgroup", os.LookupEnv, nil)
}

func start(cfg Config, logger *slog.Logger, cgroupRoot string, env func(string) (string, bool), tuned func(int)) *Tuner {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tuner{logger: logger, tuned: tuned, prevLimit: -1}
	if _, set := env("GOMEMLIMIT"); !set && cfg.MemoryLimitRatio > 0 {
		if limit, ok := ContainerMemoryLimit(cgroupRoot); ok {
			goal := int64(float64(limit) * cfg.MemoryLimitRatio)
			t.prevLimit = debug.SetMemoryLimit(goal)
			logger.Info("go memory limit set from the container's", "container_limit_bytes", limit, "gomemlimit_bytes", goal)
		}
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if cfg.MinHeapGoal > 0 && base >= 0 {
		t.floor, t.base, t.percent = uint64(cfg.MinHeapGoal), base, base
		t.samples = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
		t.tune()
	}
	if t.floor == 0 && t.prevLimit < 0 {
		return nil
	}
	return t
}

// ContainerMemoryLimit reads the memory limit of the process's container from the
// cgroup file system mounted at root: cgroup v2's memory.max, else cgroup v1's
// memory/memory.limit_in_bytes. ok is false without a limit ("max", or v1's page-rounded
// largest value).
func ContainerMemoryLimit(root string) (limit int64, ok bool) {
	for _, name := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<62 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// arm has t.tune run after the next collection: a cleanup runs once the object it is
// attached to is found unreachable. The object holds a pointer, so that it is not one
// of the tiny allocations whose cleanups may never run.
func (t *Tuner) arm() {
	runtime.AddCleanup(&struct{ _ *int }{}, func(t *Tuner) { t.tune() }, t)
}

func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.floor == 0 {
		return
	}
	metrics.Read(t.samples)
	var v [3]uint64
	for i, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p := Percent(t.base, t.floor, v[0], v[1]+v[2])
	// A few percent either way does not change how often the heap is collected; setting
	// GOGC is cheap, but its logs and metric would churn.
	if p != t.percent && (p == t.base || p < t.percent*19/20 || p > t.percent*21/20) {
		debug.SetGCPercent(p)
		t.logger.Debug("gogc set", "gogc", p, "live_heap_bytes", v[0], "min_heap_goal", t.floor)
		t.percent = p
	}
	if t.tuned != nil {
		t.tuned(t.percent)
	}
	t.arm()
}

// Stop stops tuning and sets GOGC and the memory limit back to what they were at Start.
// A nil Tuner is stopped.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.floor > 0 {
		debug.SetGCPercent(t.base)
	}
	if t.prevLimit >= 0 {
		debug.SetMemoryLimit(t.prevLimit)
	}
}
