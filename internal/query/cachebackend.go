package query

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Results cache backends (--query.results-cache.backend).
const (
	CacheBackendMemory    = "memory"
	CacheBackendMemcached = "memcached"
	CacheBackendRedis     = "redis"
)

// extentStore is where the results cache keeps its extents: this process' LRU
// (memoryExtents), or a memcached or Redis server that processes share (remoteExtents).
// Implementations must be safe for concurrent use.
type extentStore interface {
	// get returns the extent stored under key, nil when there is none. The extent is
	// never modified, by the store or the caller. An error is a failure of the backend
	// or a corrupt item, and the caller takes it as a miss.
	get(ctx context.Context, key string) (*extent, error)
	// put stores e under e.key, replacing what was there. The store may drop it (it is
	// too large, or evicted later); e is the store's from then on.
	put(ctx context.Context, e *extent) error
	close() error
}

// errTooLarge: the extent is larger than a backend item may be.
var errTooLarge = errors.New("extent larger than the results cache's maximum item size")

// memoryExtents is an LRU of extents bounded by their estimated size in bytes.
type memoryExtents struct {
	maxBytes int64
	m        *metrics

	mu      sync.Mutex // guards the fields below
	bytes   int64
	lru     *list.List // of *extent, most recently used first
	entries map[string]*list.Element
}

func newMemoryExtents(maxBytes int64, m *metrics) *memoryExtents {
	return &memoryExtents{maxBytes: maxBytes, m: m, lru: list.New(), entries: map[string]*list.Element{}}
}

func (c *memoryExtents) get(_ context.Context, key string) (*extent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*extent), nil
}

// put stores e and evicts the least recently used beyond the size bound.
func (c *memoryExtents) put(_ context.Context, e *extent) error {
	if e.size > c.maxBytes {
		return nil // never stored, as evicted at once: not an error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		c.bytes -= el.Value.(*extent).size
		c.lru.Remove(el)
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.bytes += e.size
	for c.bytes > c.maxBytes {
		el := c.lru.Back()
		old := el.Value.(*extent)
		c.lru.Remove(el)
		delete(c.entries, old.key)
		c.bytes -= old.size
		c.m.cacheEvictions.Inc()
	}
	c.m.cacheBytes.Set(float64(c.bytes))
	return nil
}

func (c *memoryExtents) close() error { return nil }

// kvClient is a remote key-value server: memcached or Redis.
type kvClient interface {
	// get returns the value of key; ok is false when there is none. The value is the
	// caller's.
	get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// set stores value under key for ttl (zero: until evicted). value is not kept.
	set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	close() error
}

// remoteExtents keeps extents encoded (cachecodec.go) in a server that processes share.
// The server's key is a fixed prefix and the hash of the results cache's key; the item
// holds the whole key, which decoding checks.
//
// A server that fails (down, over its timeout) is not asked again for remoteRetryAfter:
// a black-holed server would otherwise cost every day of every query its timeout, twice.
type remoteExtents struct {
	kv          kvClient
	ttl         time.Duration
	maxItemSize int
	now         func() time.Time
	bufs        sync.Pool    // of *[]byte, for encoding
	downUntil   atomic.Int64 // Unix ns; until then get and put fail with errBackendDown
}

// remoteRetryAfter is how long a failed server is taken as down.
const remoteRetryAfter = time.Second

// errBackendDown: the server failed less than remoteRetryAfter ago, and was not asked.
var errBackendDown = errors.New("results cache backend failed within the last second; not asked")

func (r *remoteExtents) down() bool { return r.now().UnixNano() < r.downUntil.Load() }

// failed notes a failure of the server, unless the request's own context ended.
func (r *remoteExtents) failed(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		r.downUntil.Store(r.now().Add(remoteRetryAfter).UnixNano())
	}
	return err
}

// remoteKeyPrefix names the encoding's version: items of another encoding are not read.
const remoteKeyPrefix = "strata:qrc1:"

// remoteKey is the server's key of a results cache key ("<workspace>:<hex hash>", whose
// hash covers the workspace): short, and only the characters memcached accepts.
func remoteKey(key string) string {
	return remoteKeyPrefix + key[strings.LastIndexByte(key, ':')+1:]
}

func (r *remoteExtents) get(ctx context.Context, key string) (*extent, error) {
	if r.down() {
		return nil, errBackendDown
	}
	v, ok, err := r.kv.get(ctx, remoteKey(key))
	if err != nil {
		return nil, r.failed(ctx, err)
	}
	if !ok {
		return nil, nil
	}
	return decodeExtent(v, key)
}

func (r *remoteExtents) put(ctx context.Context, e *extent) error {
	bp, _ := r.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer r.bufs.Put(bp)
	*bp = appendExtent((*bp)[:0], e)
	if len(*bp) > r.maxItemSize {
		if cap(*bp) > 4*r.maxItemSize {
			*bp = nil // do not pool what an oversized extent grew
		}
		return errTooLarge
	}
	if r.down() {
		return errBackendDown
	}
	if err := r.kv.set(ctx, remoteKey(e.key), *bp, r.ttl); err != nil {
		return r.failed(ctx, err)
	}
	return nil
}

func (r *remoteExtents) close() error { return r.kv.close() }

// newExtentStore returns the store the configuration names.
func newExtentStore(cfg Config, m *metrics, now func() time.Time) (extentStore, error) {
	rc := cfg.ResultsCache
	var kv kvClient
	switch rc.Backend {
	case CacheBackendMemory:
		return newMemoryExtents(cfg.ResultsCacheSize, m), nil
	case CacheBackendMemcached:
		c, err := newMemcachedKV(rc.Memcached)
		if err != nil {
			return nil, err
		}
		kv = c
	case CacheBackendRedis:
		c, err := newRedisKV(rc.Redis)
		if err != nil {
			return nil, err
		}
		kv = c
	default:
		return nil, fmt.Errorf("unknown results cache backend %q", rc.Backend)
	}
	return &remoteExtents{kv: kv, ttl: rc.TTL, maxItemSize: rc.MaxItemSize, now: now}, nil
}

// memcachedKV is a memcached client over one or more servers (keys spread by hash).
// Operations do not follow ctx: each is bounded by the client's timeout.
type memcachedKV struct{ c *memcache.Client }

func newMemcachedKV(cfg MemcachedConfig) (*memcachedKV, error) {
	var addrs []string
	for a := range strings.SplitSeq(cfg.Addresses, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	// Addresses are resolved once, here: a name that does not resolve fails the start.
	var servers memcache.ServerList
	if err := servers.SetServers(addrs...); err != nil {
		return nil, fmt.Errorf("resolving the memcached addresses: %w", err)
	}
	c := memcache.NewFromSelector(&servers)
	c.Timeout = cfg.Timeout
	c.MaxIdleConns = cfg.MaxIdleConnections
	return &memcachedKV{c: c}, nil
}

func (m *memcachedKV) get(_ context.Context, key string) ([]byte, bool, error) {
	it, err := m.c.Get(key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return it.Value, true, nil
}

func (m *memcachedKV) set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	return m.c.Set(&memcache.Item{Key: key, Value: value, Expiration: memcachedExpiration(ttl, time.Now())})
}

// memcachedExpiration is memcached's expiration of ttl: seconds up to 30 days, beyond
// that an absolute Unix time.
func memcachedExpiration(ttl time.Duration, now time.Time) int32 {
	const maxRelative = 30 * 24 * time.Hour
	switch {
	case ttl <= 0:
		return 0
	case ttl < time.Second:
		return 1
	case ttl <= maxRelative:
		return int32(ttl / time.Second)
	default:
		return int32(now.Add(ttl).Unix())
	}
}

func (m *memcachedKV) close() error { return m.c.Close() }

// redisKV is a Redis client of one server (or a proxy in front of several).
type redisKV struct {
	c       *redis.Client
	timeout time.Duration
}

func newRedisKV(cfg RedisConfig) (*redisKV, error) {
	network := "tcp"
	if strings.Contains(cfg.Endpoint, "/") {
		network = "unix"
	}
	opts := &redis.Options{
		Network:  network,
		Addr:     cfg.Endpoint,
		Username: cfg.Username,
		Password: cfg.Password,
		DB:       cfg.DB,
		// One retry, for a pooled connection the server closed; the context bounds
		// both tries together.
		MaxRetries:            1,
		DialerRetries:         1, // one dial a try: a server that is down is a miss at once
		DialTimeout:           cfg.Timeout,
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		PoolTimeout:           cfg.Timeout,
		ContextTimeoutEnabled: true,
		PoolSize:              cfg.PoolSize,
		// A cache of one server: no CLIENT SETINFO, no maintenance notifications.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if cfg.TLSEnabled {
		tc := &tls.Config{ServerName: cfg.TLSServerName, InsecureSkipVerify: cfg.TLSInsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opted into by a flag
		if cfg.TLSCAPath != "" {
			pem, err := os.ReadFile(cfg.TLSCAPath)
			if err != nil {
				return nil, fmt.Errorf("reading the Redis CA: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificate in the Redis CA file %s", cfg.TLSCAPath)
			}
		}
		if cfg.TLSCertPath != "" || cfg.TLSKeyPath != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TLSCertPath, cfg.TLSKeyPath)
			if err != nil {
				return nil, fmt.Errorf("loading the Redis client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts.TLSConfig = tc
	}
	// go-redis logs every failed dial through a logger of its package, which would write
	// a line per query while Redis is down; strata_query_results_cache_backend_errors_total
	// counts those failures instead.
	logging.Disable()
	return &redisKV{c: redis.NewClient(opts), timeout: cfg.Timeout}, nil
}

func (r *redisKV) get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	v, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func (r *redisKV) set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.c.Set(ctx, key, value, ttl).Err()
}

func (r *redisKV) close() error { return r.c.Close() }
