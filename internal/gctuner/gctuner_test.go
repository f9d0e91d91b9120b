package gctuner

import (
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

	tr := start(Config{MinHeapGoal: 1 << 40}, nil, notify)
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
	tr := start(Config{MinHeapGoal: 1}, nil, func(p int) {
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
	if err := (&Config{MinHeapGoal: -1}).Validate(); err == nil {
		t.Error("a negative floor is valid")
	}
}
