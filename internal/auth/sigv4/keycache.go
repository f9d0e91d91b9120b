package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"sync"
)

// keyCacheKey names one derived signing key. The service is fixed per
// Verifier, so it is not part of it; the region is (a Verifier may accept any
// region). The secret is, so that a rotated secret never meets a key derived
// from the old one.
type keyCacheKey struct {
	accessKeyID, secret, date, region string
}

// keyCache holds derived signing keys, at most max of them. Keys change only
// once a day per access key, so a small cache turns four HMACs per request
// into a map lookup. When full, an arbitrary entry is evicted: cheap, and
// good enough because every entry is equally cheap to recompute.
type keyCache struct {
	max int

	mu sync.RWMutex
	m  map[keyCacheKey][sha256.Size]byte // guarded by mu
}

func newKeyCache(max int) *keyCache {
	return &keyCache{max: max, m: make(map[keyCacheKey][sha256.Size]byte)}
}

// signingKey returns the key for (accessKeyID, secret, date) in region and
// service, deriving and caching it on a miss.
func (c *keyCache) signingKey(accessKeyID, secret, date, region, service string) [sha256.Size]byte {
	k := keyCacheKey{accessKeyID, secret, date, region}
	c.mu.RLock()
	key, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return key
	}
	key = deriveSigningKey(secret, date, region, service)
	// The strings may point into a request header; copy them so the cache
	// pins no request memory.
	k = keyCacheKey{strings.Clone(accessKeyID), strings.Clone(secret), strings.Clone(date), strings.Clone(region)}
	c.mu.Lock()
	if len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = key
	c.mu.Unlock()
	return key
}

func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// deriveSigningKey is HMAC("AWS4"+secret, date) chained through region,
// service and "aws4_request". Cold path: allocation is fine here.
func deriveSigningKey(secret, date, region, service string) [sha256.Size]byte {
	mac := func(key []byte, data string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(data))
		return h.Sum(nil)
	}
	k := mac([]byte("AWS4"+secret), date)
	k = mac(k, region)
	k = mac(k, service)
	k = mac(k, scopeTerminator)
	return [sha256.Size]byte(k)
}
