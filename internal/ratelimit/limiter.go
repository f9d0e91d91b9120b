package ratelimit

import (
	"hash/maphash"
	"math"
	"math/bits"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Never is the retryAfter of a request that no wait can let through: it asks
// for more tokens than the bucket holds when full (n > burst).
const Never = time.Duration(math.MaxInt64)

// maxWait caps finite waits below Never, which keeps its meaning.
const maxWait = Never - 1

// DefaultShards is the number of shards New uses when asked for 0. Hashing
// the key costs ~7ns a call, and on 2 cores a single mutex was as fast under
// parallel load (BenchmarkAllowNParallel); shards are insurance for
// distributors with many cores, where one lock's cache line would bounce.
const DefaultShards = 16

// Limiter holds one token bucket per key (a workspace ID). It is safe for
// concurrent use; keys are spread over shards, each with its own mutex, so
// callers for different workspaces rarely contend.
type Limiter struct {
	seed   maphash.Seed
	mask   uint64
	shards []shard
}

type shard struct {
	shardState
	// Padding keeps each shard's mutex on its own cache line, so that cores
	// locking neighbouring shards do not invalidate each other's line.
	_ [64 - unsafe.Sizeof(shardState{})%64]byte
}

type shardState struct {
	mu sync.Mutex
	// buckets is guarded by mu, and so is every bucket it points to.
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64 // may be fractional; never above burst, never negative
	last   int64   // unix nanoseconds of the last refill
	rate   float64 // tokens per second, as of the last call
	burst  int     // as of the last call
}

// New returns a Limiter with shards rounded up to a power of two; 0 (or less)
// means DefaultShards, and 1 means a single mutex.
func New(shards int) *Limiter {
	if shards <= 0 {
		shards = DefaultShards
	}
	n := 1 << bits.Len(uint(shards-1))
	l := &Limiter{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]shard, n)}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

func (l *Limiter) shard(key string) *shard {
	if l.mask == 0 {
		return &l.shards[0]
	}
	return &l.shards[maphash.String(l.seed, key)&l.mask]
}

// AllowN reports whether n tokens (samples) may be taken from key's bucket at
// now, and takes them if so. On refusal it takes nothing and returns how long
// until n tokens will be available at this rate if nobody else takes any.
//
// The limits come with each call: rate in tokens per second, burst the
// bucket's capacity. A new key starts with a full bucket. When rate or burst
// differ from the previous call, the bucket first refills at the previous rate
// up to now, then adopts the new values, capping its tokens at the new burst:
// a change never refills it to full.
//
// Special values:
//
//   - rate <= 0, NaN or +Inf: unlimited. Every request is allowed and no
//     bucket is touched. This follows the convention of Cortex's other limits
//     ("0 means no limit"), not its ingestion_rate, which it hands to
//     golang.org/x/time/rate where 0 means the bucket never refills. To refuse
//     everything, use burst 0.
//   - n <= 0: allowed, nothing taken (a request with no samples).
//   - n > burst (burst 0 included): refused with retryAfter == Never, since no
//     wait helps. The caller should answer a client error that is not retried
//     (400, not 429), naming both numbers, e.g. "request of 1200000 samples
//     exceeds the ingestion burst of 1000000; send smaller batches".
//
// A now earlier than the bucket's last call (skew between callers) refills
// nothing and does not move the bucket's clock back; retryAfter then counts
// from now, including the gap up to the bucket's clock.
//
// AllowN allocates only the first time it sees a key.
func (l *Limiter) AllowN(key string, now time.Time, n int, rate float64, burst int) (ok bool, retryAfter time.Duration) {
	if !(rate > 0) || math.IsInf(rate, 1) {
		return true, 0
	}
	if n <= 0 {
		return true, 0
	}
	if n > burst {
		return false, Never
	}

	t := now.UnixNano()
	s := l.shard(key)
	s.mu.Lock()
	b, found := s.buckets[key]
	if !found {
		// The key may alias a request buffer; the map keeps its own copy.
		b = &bucket{tokens: float64(burst), last: t, rate: rate, burst: burst}
		s.buckets[strings.Clone(key)] = b
	} else {
		b.refill(t)
		b.rate = rate
		if burst != b.burst {
			b.burst = burst
			b.tokens = min(b.tokens, float64(burst))
		}
	}
	want := float64(n)
	if b.tokens >= want {
		b.tokens -= want
		s.mu.Unlock()
		return true, 0
	}
	tokens, ahead := b.tokens, time.Duration(max(b.last-t, 0))
	s.mu.Unlock()
	if w := wait(tokens, want, rate); w <= maxWait-ahead {
		return false, ahead + w
	}
	return false, maxWait
}

// refill adds the tokens earned at the bucket's rate since its last refill.
func (b *bucket) refill(t int64) {
	if t <= b.last {
		return
	}
	earned := float64(t-b.last) / 1e9 * b.rate
	b.tokens = min(b.tokens+earned, float64(b.burst))
	b.last = t
}

// full reports whether the bucket is full at t, without changing it.
func (b *bucket) full(t int64) bool {
	tokens := b.tokens
	if t > b.last {
		tokens += float64(t-b.last) / 1e9 * b.rate
	}
	return tokens >= float64(b.burst)
}

// wait returns how long a bucket holding tokens takes to reach want at rate:
// the first nanosecond at which refill's own arithmetic gets there, so that
// retrying after it succeeds (if nobody else takes tokens meanwhile).
func wait(tokens, want, rate float64) time.Duration {
	ns := math.Ceil((want - tokens) * 1e9 / rate)
	// Rounding may leave refill a hair short of want at ns; a few more
	// nanoseconds always make up for it.
	for range 3 {
		if ns >= float64(maxWait) {
			return maxWait
		}
		if tokens+ns/1e9*rate >= want {
			break
		}
		ns++
	}
	return time.Duration(ns)
}

// Tokens returns the tokens key's bucket would hold at now, at the rate and
// burst of its last call, without changing it; ok is false for a key without
// a bucket (never limited, deleted or collected), which would start full.
func (l *Limiter) Tokens(key string, now time.Time) (tokens float64, ok bool) {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[key]
	if !ok {
		return 0, false
	}
	tokens = b.tokens
	if t := now.UnixNano(); t > b.last {
		tokens = min(tokens+float64(t-b.last)/1e9*b.rate, float64(b.burst))
	}
	return tokens, true
}

// Delete drops key's bucket, e.g. when its workspace is deleted. A later call
// for key starts with a full bucket.
func (l *Limiter) Delete(key string) {
	s := l.shard(key)
	s.mu.Lock()
	delete(s.buckets, key)
	s.mu.Unlock()
}

// GC drops the buckets not used for at least idleFor before now that would be
// full by now, and returns how many it dropped. Dropping only full buckets
// makes GC invisible to callers (a new bucket starts full), whatever idleFor:
// a short idleFor costs only a re-allocation for keys that come back. It locks
// one shard at a time.
func (l *Limiter) GC(now time.Time, idleFor time.Duration) int {
	t := now.UnixNano()
	removed := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for key, b := range s.buckets {
			if t-b.last >= int64(idleFor) && b.full(t) {
				delete(s.buckets, key)
				removed++
			}
		}
		s.mu.Unlock()
	}
	return removed
}

// Len returns the number of buckets, for a gauge.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
