// Command twocpus measures how much faster this machine does a fixed amount of work on two
// CPUs than on one, for three kinds of work: registers only (compute), and reads at random
// places of a buffer larger than the CPU caches, independent (scan) or each depending on
// the last (chase). It bounds what any parallel split can gain here, such as a query's
// shards (docs/benchmarks.md): evaluating a query over many series is mostly the memory
// kinds.
//
// Usage: go run ./bench/twocpus [-rounds 5] [-mib 256]
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"time"
)

func main() {
	rounds := flag.Int("rounds", 5, "measurements of each kind")
	mib := flag.Int("mib", 256, "size of the buffer the memory kinds read, in MiB (a power of two)")
	flag.Parse()
	runtime.GOMAXPROCS(2)
	buf := make([]uint64, *mib<<20/8)
	for i := range buf {
		buf[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	kinds := []struct {
		name string
		n    int
		f    func(seed uint64, n int) uint64
	}{
		{"compute", 1 << 30, compute},
		{"scan", 1 << 26, func(seed uint64, n int) uint64 { return scan(buf, seed, n) }},
		{"chase", 1 << 23, func(seed uint64, n int) uint64 { return chase(buf, seed, n) }},
	}
	for _, k := range kinds {
		for range *rounds {
			one, two := whole(k.f, k.n), halves(k.f, k.n)
			fmt.Printf("%-7s one CPU %8.1f ms, two CPUs %8.1f ms, gain %.2fx\n",
				k.name, ms(one), ms(two), float64(one)/float64(two))
		}
	}
}

// sink keeps the results, so that the work is not optimized away.
var sink [2]uint64

func whole(f func(uint64, int) uint64, n int) time.Duration {
	t := time.Now()
	sink[0] = f(1, n)
	return time.Since(t)
}

func halves(f func(uint64, int) uint64, n int) time.Duration {
	t := time.Now()
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() { sink[g] = f(uint64(g)+2, n/2) })
	}
	wg.Wait()
	return time.Since(t)
}

// compute is an xorshift generator: each step depends on the last, in registers.
func compute(x uint64, n int) uint64 {
	var s uint64
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		s += x
	}
	return s
}

// scan reads buf at random places, each read independent of the others: the CPU keeps
// many in flight, so this is bound by what the memory system delivers, as reading many
// series' chunks and index entries is.
func scan(buf []uint64, x uint64, n int) uint64 {
	var s uint64
	mask := uint64(len(buf) - 1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
		s += buf[(x>>20)&mask]
	}
	return s
}

// chase reads buf at places that depend on the last value read (a pointer chase), so it is
// bound by the memory's latency, as following series through maps and postings is.
func chase(buf []uint64, x uint64, n int) uint64 {
	var s uint64
	mask := uint64(len(buf) - 1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407 + buf[(x>>20)&mask]
		s += x
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
