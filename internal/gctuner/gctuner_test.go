package gctuner

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name               string
		base               int
		floor, live, roots uint64
		want               int
	}{
		{"small live heap: the goal is raised to the floor", 100, 256 * mib, 20 * mib, 1 * mib, (236 * 100) / 21},
		{"live heap at half the floor: GOGC as set", 100, 256 * mib, 128 * mib, 0, 100},
		{"live heap over the floor", 100, 256 * mib, 300 * mib, 1 * mib, 100},
		{"a GOGC above what the floor needs stays", 2000, 256 * mib, 20 * mib, 1 * mib, 2000},
		{"nothing live yet: bounded", 100, 256 * mib, 0, 0, maxPercent},
	} {
		if got := Percent(c.base, c.floor, c.live, c.roots); got != c.want {
			t.Errorf("%s: Percent(%d, %d, %d, %d) = %d, want %d", c.name, c.base, c.floor, c.live, c.roots, got, c.want)
		}
	}
}

func noEnv(string) (string, bool) { return "", false }

func gogc() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// The tuner raises GOGC at start and again after every collection, and Stop sets it back.
func TestTunerFollowsCollections(t *testing.T) {
	base := gogc()
	t.Cleanup(func() { debug.SetGCPercent(base) })
	tuned := make(chan int, 16)
	notify := func(p int) {
		select {
		case tuned <- p:
		default:
		}
	}
	wait := func() int {
		t.Helper()
		select {
		case p := <-tuned:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("no tuning after a collection")
			return 0
		}
	}

	tr := start(Config{MinHeapGoal: 1 << 40}, nil, t.TempDir(), noEnv, notify)
	if p := wait(); p <= base || gogc() != p {
		t.Fatalf("at start: tuned %d, GOGC %d; want above %d", p, gogc(), base)
	}
	for range 2 {
		runtime.GC()
		if p := wait(); p <= base || gogc() != p {
			t.Fatalf("after a collection: tuned %d, GOGC %d; want above %d", p, gogc(), base)
		}
	}
	tr.Stop()
	if got := gogc(); got != base {
		t.Errorf("after Stop GOGC is %d, want %d", got, base)
	}
	tr.tune() // as the cleanup armed before Stop would
	if got := gogc(); got != base {
		t.Errorf("a stopped tuner set GOGC to %d, want %d", got, base)
	}
}

// A floor under the live heap leaves GOGC as it was; zero or GOGC=off start nothing.
func TestTunerLeavesLargeHeapsAlone(t *testing.T) {
	base := gogc()
	t.Cleanup(func() { debug.SetGCPercent(base) })
	tuned := make(chan int, 16)
	tr := start(Config{MinHeapGoal: 1}, nil, t.TempDir(), noEnv, func(p int) {
		select {
		case tuned <- p:
		default:
		}
	})
	if p := <-tuned; p != base || gogc() != base {
		t.Errorf("a floor of 1 byte: tuned %d, GOGC %d; want %d", p, gogc(), base)
	}
	tr.Stop()
	if tr := Start(Config{}, nil); tr != nil {
		t.Error("a zero floor started a tuner")
	}
	debug.SetGCPercent(-1)
	if tr := Start(Config{MinHeapGoal: 1 << 30}, nil); tr != nil {
		t.Error("GOGC=off started a tuner")
	}
	if got := gogc(); got != -1 {
		t.Errorf("GOGC=off became %d", got)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{MinHeapGoal: -1}, {MemoryLimitRatio: -0.1}, {MemoryLimitRatio: 1.5}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v is valid", c)
		}
	}
	if err := (&Config{MinHeapGoal: DefaultMinHeapGoal, MemoryLimitRatio: DefaultMemoryLimitRatio}).Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}

// cgroupRoot writes files (path: content) under a new directory, as a cgroup mount.
func cgroupRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestContainerMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		limit int64
		ok    bool
	}{
		{"cgroup v2", map[string]string{"memory.max": "4294967296\n"}, 4 << 30, true},
		{"cgroup v2 without a limit", map[string]string{"memory.max": "max\n", "memory/memory.limit_in_bytes": "1073741824\n"}, 0, false},
		{"cgroup v1", map[string]string{"memory/memory.limit_in_bytes": "1073741824\n"}, 1 << 30, true},
		{"cgroup v1 without a limit", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"no cgroup files", nil, 0, false},
		{"garbage", map[string]string{"memory.max": "lots"}, 0, false},
	} {
		limit, ok := ContainerMemoryLimit(cgroupRoot(t, c.files))
		if limit != c.limit || ok != c.ok {
			t.Errorf("%s: %d, %v; want %d, %v", c.name, limit, ok, c.limit, c.ok)
		}
	}
}

// Under a container's limit Go's memory limit is set to its fraction, unless GOMEMLIMIT
// is set; Stop sets the previous limit back.
func TestMemoryLimitFromContainer(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	root := cgroupRoot(t, map[string]string{"memory.max": "4294967296"})
	tr := start(Config{MemoryLimitRatio: 0.5}, nil, root, noEnv, nil)
	if tr == nil {
		t.Fatal("no tuner for a container limit")
	}
	if got := debug.SetMemoryLimit(-1); got != 2<<30 {
		t.Errorf("memory limit %d, want %d", got, 2<<30)
	}
	tr.Stop()
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("after Stop the memory limit is %d, want %d", got, prev)
	}
	withEnv := func(k string) (string, bool) { return "3GiB", k == "GOMEMLIMIT" }
	if tr := start(Config{MemoryLimitRatio: 0.5}, nil, root, withEnv, nil); tr != nil {
		t.Error("a tuner started with GOMEMLIMIT set and no floor")
	}
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("with GOMEMLIMIT set the memory limit became %d, want %d", got, prev)
	}
}
