// Package ratelimit enforces per-workspace ingestion quotas with token
// buckets: AMP's 70,000 samples/s with a burst of 1,000,000 by default, over
// which remote write answers HTTP 429.
//
// Start from [Limiter] and its [Limiter.AllowN]. The limits are arguments of
// every call rather than state of the limiter, so an operator's overrides file
// can change them at runtime and the bucket follows at the next call, keeping
// the tokens it holds. Time is an argument too, for deterministic tests.
//
//	request of n samples for workspace w at now
//	  │
//	  ├─ rate <= 0, NaN or +Inf ──────────────▶ allowed (unlimited; no bucket)
//	  ├─ n <= 0 ──────────────────────────────▶ allowed
//	  ├─ n > burst ───────────────────────────▶ refused, retryAfter = Never
//	  │                                          (no wait helps: answer 4xx)
//	  └─ refill w's bucket: tokens += elapsed × previous rate, capped at burst
//	       ├─ tokens >= n: tokens -= n ───────▶ allowed
//	       └─ otherwise ──────────────────────▶ refused (429), nothing taken,
//	                                             retryAfter = (n - tokens) / rate
//
// The limiter starts no goroutine: call [Limiter.GC] periodically to drop the
// buckets of idle workspaces and [Limiter.Delete] when a workspace is deleted.
package ratelimit
