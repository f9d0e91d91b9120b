package ratelimit

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// step is one AllowN call at base+at. Rates and times are chosen so that the
// float arithmetic is exact (powers of two, or whole tokens).
type step struct {
	at        time.Duration
	key       string // "" means "ws"
	n         int
	rate      float64
	burst     int
	ok        bool
	retry     time.Duration
	tokens    float64 // checked after the call when checkTokens
	hasTokens bool
}

func TestAllowN(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"burst then steady rate", []step{
			{at: 0, n: 20, rate: 10, burst: 20, ok: true},
			{at: 0, n: 1, rate: 10, burst: 20, ok: false, retry: 100 * ms},
			{at: 100 * ms, n: 1, rate: 10, burst: 20, ok: true},
			{at: 100 * ms, n: 1, rate: 10, burst: 20, ok: false, retry: 100 * ms},
			{at: 1100 * ms, n: 10, rate: 10, burst: 20, ok: true},
			{at: 1100 * ms, n: 1, rate: 10, burst: 20, ok: false, retry: 100 * ms},
			// 10 tokens a second, every second, indefinitely.
			{at: 2100 * ms, n: 10, rate: 10, burst: 20, ok: true},
			{at: 3100 * ms, n: 10, rate: 10, burst: 20, ok: true},
			{at: 4100 * ms, n: 11, rate: 10, burst: 20, ok: false, retry: 100 * ms},
		}},
		{"new key starts full, n == burst allowed", []step{
			{at: 0, n: 1000000, rate: 70000, burst: 1000000, ok: true},
			{at: 0, n: 70000, rate: 70000, burst: 1000000, ok: false, retry: time.Second},
			{at: time.Second, n: 70000, rate: 70000, burst: 1000000, ok: true},
		}},
		{"refill caps at burst after a long idle", []step{
			{at: 0, n: 5, rate: 1, burst: 5, ok: true},
			{at: 1000 * time.Hour, n: 0, rate: 1, burst: 5, ok: true},
			{at: 1000 * time.Hour, n: 5, rate: 1, burst: 5, ok: true, tokens: 0, hasTokens: true},
		}},
		{"fractional tokens", []step{
			{at: 0, n: 4, rate: 4, burst: 4, ok: true},
			// 125ms at 4/s earns half a token: short by half, which takes 125ms more.
			{at: 125 * ms, n: 1, rate: 4, burst: 4, ok: false, retry: 125 * ms, tokens: 0.5, hasTokens: true},
			{at: 250 * ms, n: 1, rate: 4, burst: 4, ok: true, tokens: 0, hasTokens: true},
			{at: 375 * ms, n: 1, rate: 4, burst: 4, ok: false, retry: 125 * ms},
			// A refusal takes nothing: the half token is still there.
			{at: 500 * ms, n: 1, rate: 4, burst: 4, ok: true},
			// Halves add up.
			{at: 625 * ms, n: 0, rate: 4, burst: 4, ok: true, tokens: 0.5, hasTokens: true},
			{at: 750 * ms, n: 1, rate: 4, burst: 4, ok: true, tokens: 0, hasTokens: true},
			// A fractional rate: 0.5/s needs 2s per token.
			{at: 750 * ms, n: 1, rate: 0.5, burst: 4, ok: false, retry: 2 * time.Second},
			{at: 2750 * ms, n: 1, rate: 0.5, burst: 4, ok: true},
		}},
		{"retryAfter rounds up to the nanosecond", []step{
			{at: 0, n: 3, rate: 3, burst: 3, ok: true},
			// One token at 3/s takes 333,333,333.3ns: waiting 333,333,333ns is not enough.
			{at: 0, n: 1, rate: 3, burst: 3, ok: false, retry: 333333334},
			{at: 333333334, n: 1, rate: 3, burst: 3, ok: true},
		}},
		{"rate raised: earned tokens at the old rate, then the new rate", []step{
			{at: 0, n: 10, rate: 10, burst: 10, ok: true},
			// 500ms at the old 10/s earns 5; 6 are asked: short by 1, 10ms at 100/s.
			{at: 500 * ms, n: 6, rate: 100, burst: 10, ok: false, retry: 10 * ms, tokens: 5, hasTokens: true},
			{at: 510 * ms, n: 6, rate: 100, burst: 10, ok: true},
		}},
		{"rate lowered", []step{
			{at: 0, n: 8, rate: 8, burst: 8, ok: true},
			{at: 500 * ms, n: 8, rate: 2, burst: 8, ok: false, retry: 2 * time.Second, tokens: 4, hasTokens: true},
			{at: 2500 * ms, n: 8, rate: 2, burst: 8, ok: true},
		}},
		{"a change of limits does not refill the bucket", []step{
			{at: 0, n: 10, rate: 10, burst: 10, ok: true},
			{at: 0, n: 1, rate: 20, burst: 20, ok: false, retry: 50 * ms, tokens: 0, hasTokens: true},
		}},
		{"burst lowered: tokens capped at the new burst", []step{
			{at: 0, n: 10, rate: 1, burst: 100, ok: true, tokens: 90, hasTokens: true},
			{at: 0, n: 50, rate: 1, burst: 50, ok: true, tokens: 0, hasTokens: true},
			{at: 0, n: 1, rate: 1, burst: 50, ok: false, retry: time.Second},
		}},
		{"burst raised: tokens kept, room to grow", []step{
			{at: 0, n: 1, rate: 1, burst: 10, ok: true, tokens: 9, hasTokens: true},
			{at: 0, n: 11, rate: 1, burst: 100, ok: false, retry: 2 * time.Second, tokens: 9, hasTokens: true},
			{at: 50 * time.Second, n: 59, rate: 1, burst: 100, ok: true, tokens: 0, hasTokens: true},
		}},
		{"n > burst is never allowed and takes nothing", []step{
			{at: 0, n: 6, rate: 10, burst: 5, ok: false, retry: Never},
			{at: time.Hour, n: 6, rate: 10, burst: 5, ok: false, retry: Never},
			{at: time.Hour, n: 5, rate: 10, burst: 5, ok: true},
		}},
		{"burst 0 refuses everything", []step{
			{at: 0, n: 1, rate: 70000, burst: 0, ok: false, retry: Never},
			{at: 0, n: 0, rate: 70000, burst: 0, ok: true},
		}},
		{"negative burst is burst 0", []step{
			{at: 0, n: 1, rate: 1, burst: -5, ok: false, retry: Never},
		}},
		{"n <= 0 is always allowed", []step{
			{at: 0, n: 1, rate: 1, burst: 1, ok: true},
			{at: 0, n: 0, rate: 1, burst: 1, ok: true, tokens: 0, hasTokens: true},
			{at: 0, n: -3, rate: 1, burst: 1, ok: true, tokens: 0, hasTokens: true},
		}},
		{"rate <= 0, NaN or +Inf is unlimited", []step{
			{at: 0, n: math.MaxInt, rate: 0, burst: 0, ok: true},
			{at: 0, n: math.MaxInt, rate: -1, burst: 10, ok: true},
			{at: 0, n: math.MaxInt, rate: math.Inf(1), burst: 10, ok: true},
			{at: 0, n: math.MaxInt, rate: math.NaN(), burst: 10, ok: true},
			{at: 0, n: math.MaxInt, rate: math.Inf(-1), burst: 10, ok: true},
		}},
		{"unlimited leaves an existing bucket alone", []step{
			{at: 0, n: 10, rate: 10, burst: 10, ok: true},
			{at: 0, n: 1000, rate: 0, burst: 10, ok: true, tokens: 0, hasTokens: true},
			{at: 0, n: 1, rate: 10, burst: 10, ok: false, retry: 100 * ms},
		}},
		{"clock going back refills nothing", []step{
			{at: time.Second, n: 8, rate: 8, burst: 8, ok: true},
			// The token comes at 1.125s by the bucket's clock: 625ms from this now.
			{at: 500 * ms, n: 1, rate: 8, burst: 8, ok: false, retry: 625 * ms, tokens: 0, hasTokens: true},
			{at: 1062500 * time.Microsecond, n: 1, rate: 8, burst: 8, ok: false, retry: 62500 * time.Microsecond},
			{at: 1125 * ms, n: 1, rate: 8, burst: 8, ok: true},
		}},
		{"keys are independent", []step{
			{at: 0, key: "a", n: 5, rate: 1, burst: 5, ok: true},
			{at: 0, key: "a", n: 1, rate: 1, burst: 5, ok: false, retry: time.Second},
			{at: 0, key: "b", n: 5, rate: 1, burst: 5, ok: true},
		}},
		{"a tiny rate waits long, but not Never", []step{
			{at: 0, n: 1, rate: 1e-12, burst: 1, ok: true},
			{at: 0, n: 1, rate: 1e-12, burst: 1, ok: false, retry: maxWait},
			// Behind the bucket's clock as well: still no overflow.
			{at: -time.Hour, n: 1, rate: 1e-12, burst: 1, ok: false, retry: maxWait},
		}},
	} {
		for _, shards := range []int{1, 0} {
			t.Run(fmt.Sprintf("%s/shards=%d", tc.name, shards), func(t *testing.T) {
				l := New(shards)
				for i, s := range tc.steps {
					key := s.key
					if key == "" {
						key = "ws"
					}
					now := base.Add(s.at)
					ok, retry := l.AllowN(key, now, s.n, s.rate, s.burst)
					if ok != s.ok || retry != s.retry {
						t.Fatalf("step %d %+v: AllowN = %v, %v; want %v, %v", i, s, ok, retry, s.ok, s.retry)
					}
					if s.hasTokens {
						if got, _ := l.Tokens(key, now); got != s.tokens {
							t.Fatalf("step %d: tokens = %v, want %v", i, got, s.tokens)
						}
					}
				}
			})
		}
	}
}

func TestUnlimitedCreatesNoBucket(t *testing.T) {
	l := New(0)
	l.AllowN("ws", base, 1, 0, 0)
	l.AllowN("ws", base, 1, math.Inf(1), 0)
	if n := l.Len(); n != 0 {
		t.Fatalf("Len = %d, want 0", n)
	}
	if _, ok := l.Tokens("ws", base); ok {
		t.Fatal("Tokens found a bucket")
	}
}

// Retrying after retryAfter succeeds, for awkward rates too.
func TestRetryAfterIsEnough(t *testing.T) {
	rates := []float64{3, 7, 0.3, 1.0 / 7, 70000, 123456.789}
	for i := range 200 {
		rates = append(rates, 0.01+float64(i)*1.37, 1e3+float64(i)*997.3)
	}
	for _, rate := range rates {
		l := New(1)
		now := base
		burst := 1000
		l.AllowN("ws", now, burst, rate, burst)
		for i := range 50 {
			n := 1 + i*17%burst
			ok, retry := l.AllowN("ws", now, n, rate, burst)
			if ok {
				continue
			}
			now = now.Add(retry)
			if ok, _ := l.AllowN("ws", now, n, rate, burst); !ok {
				t.Fatalf("rate %v: %d tokens refused after waiting the %v retryAfter", rate, n, retry)
			}
		}
	}
}

func TestDeleteAndGC(t *testing.T) {
	l := New(4)
	// "idle": used at 0, full again after 1s.
	l.AllowN("idle", base, 10, 10, 10)
	// "slow": used at 0, needs 100s to refill.
	l.AllowN("slow", base, 100, 1, 100)
	// "recent": used at 9s.
	l.AllowN("recent", base.Add(9*time.Second), 1, 10, 10)
	// "gone": deleted.
	l.AllowN("gone", base, 10, 10, 10)
	l.Delete("gone")
	l.Delete("never-seen")
	if n := l.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	if ok, _ := l.AllowN("gone", base, 10, 10, 10); !ok {
		t.Fatal("a deleted key must start with a full bucket")
	}
	l.Delete("gone")

	now := base.Add(10 * time.Second)
	if got := l.GC(now, 11*time.Second); got != 0 {
		t.Fatalf("GC(idleFor 11s) removed %d, want 0", got)
	}
	// idle for 10s: "idle" is full, "slow" is not (10 of 100), "recent" idle 1s.
	if got := l.GC(now, 10*time.Second); got != 1 {
		t.Fatalf("GC(idleFor 10s) removed %d, want 1", got)
	}
	if _, ok := l.Tokens("idle", now); ok {
		t.Fatal("idle bucket survived GC")
	}
	if tokens, ok := l.Tokens("slow", now); !ok || tokens != 10 {
		t.Fatalf("slow bucket: %v, %v; want 10 tokens kept", tokens, ok)
	}
	// Once "slow" has refilled, it goes too; "recent" as well.
	if got := l.GC(base.Add(100*time.Second), time.Minute); got != 2 {
		t.Fatalf("GC at 100s removed %d, want 2", got)
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("Len = %d, want 0", n)
	}
}

func TestNewRoundsShards(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{-1, DefaultShards}, {0, DefaultShards}, {1, 1}, {2, 2}, {3, 4}, {16, 16}, {17, 32}} {
		if got := len(New(tc.in).shards); got != tc.want {
			t.Errorf("New(%d) has %d shards, want %d", tc.in, got, tc.want)
		}
	}
}

func TestAllowNSteadyStateAllocs(t *testing.T) {
	l := New(0)
	now := base
	l.AllowN("ws-1", now, 1, 70000, 1000000)
	if a := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		l.AllowN("ws-1", now, 500, 70000, 1000000)
	}); a != 0 {
		t.Fatalf("AllowN allocates %v times per call", a)
	}
}

// With the clock frozen nothing refills, so whatever the interleaving exactly
// burst tokens are handed out in total, per key.
func TestConcurrentAllowN(t *testing.T) {
	const (
		goroutines = 8
		attempts   = 400
		burst      = 1000
	)
	for _, shards := range []int{1, 0} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			l := New(shards)
			keys := []string{"ws-a", "ws-b", "ws-c"}
			var granted [3]atomic.Int64
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range attempts {
						k := (g + i) % len(keys)
						if ok, _ := l.AllowN(keys[k], base, 1, 10, burst); ok {
							granted[k].Add(1)
						}
					}
				})
			}
			// Housekeeping alongside, on keys the invariant does not cover.
			wg.Go(func() {
				for i := range attempts {
					l.AllowN("scratch", base, 1, 10, burst)
					l.Delete("scratch")
					l.GC(base, 0)
					l.Len()
					l.Tokens("ws-a", base)
					_ = i
				}
			})
			wg.Wait()
			total := goroutines * attempts / len(keys)
			for k := range keys {
				want := int64(min(total, burst))
				if got := granted[k].Load(); got != want {
					t.Errorf("%s: %d tokens granted, want %d", keys[k], got, want)
				}
			}
		})
	}
}

func BenchmarkAllowN(b *testing.B) {
	for _, shards := range []int{1, DefaultShards} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			l := New(shards)
			now := base
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Microsecond)
				l.AllowN("ws-0123456789", now, 100, 70000, 1000000)
			}
		})
	}
}

func BenchmarkAllowNParallel(b *testing.B) {
	for _, shards := range []int{1, DefaultShards} {
		for _, keys := range []int{1, 1000} {
			b.Run(fmt.Sprintf("shards=%d/keys=%d", shards, keys), func(b *testing.B) {
				l := New(shards)
				names := make([]string, keys)
				for i := range names {
					names[i] = fmt.Sprintf("ws-%08d", i)
				}
				var worker atomic.Int64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := int(worker.Add(1)) * 7919
					now := base
					for pb.Next() {
						now = now.Add(time.Microsecond)
						l.AllowN(names[i%keys], now, 100, 70000, 1000000)
						i++
					}
				})
			})
		}
	}
}
