package loadgen

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func testWorkload(seed int64, active int, churn float64) *workload {
	return newWorkload(workloadOptions{seed: seed, activeSeries: active, churn: churn, interval: 10_000, firstStep: 1000})
}

// snapshot is the label sets and values of every active series over steps.
func snapshot(w *workload, steps int) []string {
	var out []string
	var b labels.ScratchBuilder
	states := map[uint64]*valueState{}
	for k := w.firstStep; k < w.firstStep+int64(steps); k++ {
		for slot := range w.numSlots {
			id := w.instanceAt(slot, k)
			for t := range w.seriesPerSlot(slot) {
				st := states[seriesKey(id, t)]
				if st == nil {
					st = &valueState{}
					states[seriesKey(id, t)] = st
				}
				p := w.params(id, t)
				out = append(out, w.seriesLabels(&b, id, t).String()+" "+fmtFloat(p.next(st, k, w.intervalMs)))
			}
		}
	}
	return out
}

func TestWorkloadDeterministic(t *testing.T) {
	a := snapshot(testWorkload(7, 1000, 0.05), 20)
	b := snapshot(testWorkload(7, 1000, 0.05), 20)
	if len(a) != 1000*20 {
		t.Fatalf("%d samples, want %d", len(a), 1000*20)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed differs at %d:\n%s\n%s", i, a[i], b[i])
		}
	}
	c := snapshot(testWorkload(8, 1000, 0.05), 20)
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 7 and 8 give %d identical series/values", same)
	}
}

func TestWorkloadShape(t *testing.T) {
	w := testWorkload(1, 10_000, 0)
	if got, want := len(w.templates), 103; got != want {
		t.Errorf("%d series per instance, want %d", got, want)
	}
	if w.numSlots != 98 || w.lastSlot != 10_000-97*103 {
		t.Errorf("slots %d, last %d", w.numSlots, w.lastSlot)
	}
	var b labels.ScratchBuilder
	total, names := 0, map[string]bool{}
	seen := map[string]bool{}
	for slot := range w.numSlots {
		for tm := range w.seriesPerSlot(slot) {
			ls := w.seriesLabels(&b, w.instanceAt(slot, w.firstStep), tm)
			if n := ls.Len(); n < 8 || n > 11 {
				t.Errorf("%s: %d labels", ls, n)
			}
			if !validLabelName(ls.Get(labels.MetricName)) {
				t.Errorf("bad name %s", ls)
			}
			if seen[ls.String()] {
				t.Errorf("duplicate series %s", ls)
			}
			seen[ls.String()] = true
			total += ls.Len()
			names[ls.Get(labels.MetricName)] = true
		}
	}
	if len(seen) != 10_000 {
		t.Errorf("%d distinct series, want 10000", len(seen))
	}
	if avg := float64(total) / 10_000; avg < 9 || avg > 11 {
		t.Errorf("%.1f labels per series on average, want about 10", avg)
	}
	for _, n := range []string{"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_network_receive_bytes_total", "node_filesystem_avail_bytes", "node_disk_read_bytes_total"} {
		if !names[n] {
			t.Errorf("no %s", n)
		}
	}
	ls := w.seriesLabels(&b, 7, 0)
	for name, want := range map[string]string{"instance": "host-0007:9100", "job": "node", "cluster": "loadgen", "env": "bench", "cpu": "0", "mode": "idle"} {
		if got := ls.Get(name); got != want {
			t.Errorf("%s=%q, want %q (%s)", name, got, want, ls)
		}
	}
}

func TestWorkloadValues(t *testing.T) {
	w := testWorkload(3, 103, 0)
	for tm, tp := range w.templates {
		p := w.params(5, tm)
		var st valueState
		prev := math.Inf(-1)
		for k := int64(1000); k < 1500; k++ {
			v := p.next(&st, k, w.intervalMs)
			switch tp.kind {
			case kindCounter:
				if v < prev {
					t.Fatalf("%s: counter went from %v to %v at step %d", tp.name, prev, v, k)
				}
			case kindGauge:
				if v < tp.lo-1 || v > tp.hi {
					t.Fatalf("%s: gauge %v outside [%v, %v]", tp.name, v, tp.lo, tp.hi)
				}
			case kindConstant:
				if k > 1000 && v != prev {
					t.Fatalf("%s: constant changed", tp.name)
				}
			case kindClock:
				if v != float64(k*w.intervalMs)/1000 {
					t.Fatalf("%s = %v at step %d", tp.name, v, k)
				}
			}
			prev = v
		}
	}
}

// TestChurnRate: the fraction of series replaced per interval matches
// --churn, and replaced instances get fresh ids.
func TestChurnRate(t *testing.T) {
	for _, churn := range []float64{0, 0.01, 0.05, 0.3} {
		w := testWorkload(1, 10_000, churn)
		const steps = 200
		replaced := 0
		ids := map[uint32]bool{}
		for slot := range w.numSlots {
			ids[w.instanceAt(slot, w.firstStep)] = true
		}
		for k := w.firstStep + 1; k <= w.firstStep+steps; k++ {
			for slot := range w.numSlots {
				prev, cur := w.instanceAt(slot, k-1), w.instanceAt(slot, k)
				if prev != cur {
					replaced += w.seriesPerSlot(slot)
					if ids[cur] {
						t.Fatalf("churn %v: instance %d reused", churn, cur)
					}
					ids[cur] = true
				}
			}
		}
		got := float64(replaced) / steps / 10_000
		if churn == 0 && replaced != 0 || churn > 0 && !approx(got, churn, 0.05) {
			t.Errorf("churn %v: %.4f of series replaced per interval", churn, got)
		}
	}
}

func TestOwnerSpreads(t *testing.T) {
	w := testWorkload(1, 10_000, 0)
	counts := make([]int, 8)
	for slot := range w.numSlots {
		for tm := range w.seriesPerSlot(slot) {
			counts[w.owner(uint32(slot), tm, 8)]++
		}
	}
	for i, n := range counts {
		if n < 1100 || n > 1400 {
			t.Errorf("worker %d owns %d of 10000 series", i, n)
		}
	}
}

func TestStepRanges(t *testing.T) {
	var r stepRanges
	for _, k := range []int64{5, 6, 7, 9, 10, 20} {
		r.add(k)
	}
	if len(r) != 3 || r.count() != 6 {
		t.Fatalf("%v", r)
	}
	if a, b, ok := r.bounds(); !ok || a != 5 || b != 20 {
		t.Fatalf("bounds %d %d", a, b)
	}
}
