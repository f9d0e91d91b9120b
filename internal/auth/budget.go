package auth

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// byteBudget caps the bytes of request bodies being held at once, across every request:
// what one slow or malicious client can pin is bounded by the per-request limit, and
// what all of them can pin together by this.
type byteBudget struct {
	max      int64
	used     atomic.Int64
	rejected prometheus.Counter
}

func newByteBudget(max int64, reg prometheus.Registerer) *byteBudget {
	b := &byteBudget{max: max}
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_auth_inflight_body_bytes",
		Help: "Bytes of request bodies read and held by requests in flight (--auth.max-inflight-body-bytes caps it).",
	}, func() float64 { return float64(b.used.Load()) })
	b.rejected = f.NewCounter(prometheus.CounterOpts{
		Name: "strata_auth_inflight_body_rejections_total",
		Help: "Requests answered 503 because --auth.max-inflight-body-bytes of bodies were in flight.",
	})
	return b
}

// take reserves n bytes; false when that would pass the cap.
func (b *byteBudget) take(n int64) bool {
	for {
		cur := b.used.Load()
		if cur+n > b.max {
			b.rejected.Inc()
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (b *byteBudget) release(n int64) { b.used.Add(-n) }

// rateLimiter is a token bucket: rate events per second, bursts of up to 10 seconds'
// worth. A zero rate allows everything.
type rateLimiter struct {
	rate float64
	now  func() time.Time

	mu     sync.Mutex
	tokens float64   // guarded by mu
	last   time.Time // guarded by mu
}

func newRateLimiter(rate float64, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: rate, now: now, tokens: 10 * rate}
}

func (l *rateLimiter) allow() bool {
	if l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, 10*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
