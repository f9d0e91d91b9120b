package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	stratatest "github.com/stratametrics/strata/internal/testutil"
)

const (
	benchSeries  = 10_000
	benchScrapes = 240 // one hour at 15s
)

// newBenchAPI returns an API over a TSDB holding benchSeries counters of one hour at 15s
// (2.4M samples), with the handler of every route by path. mods adjust the configuration.
func newBenchAPI(b *testing.B, mods ...func(*Config)) map[string]http.HandlerFunc {
	b.Helper()
	return newBenchAPIOf(b, benchSeries, mods...)
}

// newBenchAPIOf is newBenchAPI with n series.
func newBenchAPIOf(b *testing.B, n int, mods ...func(*Config)) map[string]http.HandlerFunc {
	b.Helper()
	db := openTSDB(b)
	app := db.AppenderV2(context.Background())
	for i := range n {
		ls := labels.FromStrings("__name__", "bench_requests_total",
			"job", fmt.Sprintf("job-%d", i%10), "instance", fmt.Sprintf("10.0.%d.%d:9100", i/256, i%256))
		var ref storage.SeriesRef
		for j := range benchScrapes {
			var err error
			if ref, err = app.Append(ref, ls, 0, fixtureTime(j), float64(j*(i%7+1)), nil, nil, storage.AppendV2Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		b.Fatal(err)
	}
	store := newStore()
	store.add(testWS, db)
	cfg := testConfig()
	for _, mod := range mods {
		mod(&cfg)
	}
	a, err := New(cfg, Deps{Queryables: store, Workspaces: store})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	h := map[string]http.HandlerFunc{}
	for _, r := range a.Routes() {
		if r.Method == http.MethodGet {
			h[strings.TrimPrefix(r.Pattern, "/workspaces/{workspaceId}/api/v1/")] = r.Handler
		}
	}
	return h
}

// benchRequest serves GET route with params; label, if set, is the {name} of the route.
func benchRequest(b *testing.B, h map[string]http.HandlerFunc, route string, params url.Values, label ...string) {
	b.Helper()
	handler := h[route]
	path := strings.ReplaceAll(route, "{name}", strings.Join(label, ""))
	req := httptest.NewRequest(http.MethodGet, "/workspaces/"+testWS+"/api/v1/"+path+"?"+params.Encode(), nil)
	req.SetPathValue("workspaceId", testWS)
	if len(label) > 0 {
		req.SetPathValue("name", label[0])
	}
	var size int
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		handler(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
		size = w.Body.Len()
	}
	b.StopTimer()
	b.ReportMetric(float64(size), "resp-bytes")
	// The process' CPU time per request (GC included): what a query costs whatever else
	// runs on the machine, where ns/op is its wall time.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}

// processCPU is the CPU time this process has used, user and system, in nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkQueryInstant(b *testing.B) {
	h := newBenchAPI(b)
	ts := at(50 * time.Minute)
	for _, c := range []struct{ name, q string }{
		{"selector_10k_series", "bench_requests_total"},
		{"sum_by_job_rate_5m", "sum by (job) (rate(bench_requests_total[5m]))"},
		{"topk_rate_5m", "topk(5, rate(bench_requests_total[5m]))"},
	} {
		b.Run(c.name, func(b *testing.B) { benchRequest(b, h, "query", p("query", c.q, "time", ts)) })
	}
}

// BenchmarkQueryShards runs instant aggregations over 100k series unsharded and in two
// shards evaluated at once (shard.go); shards=2 needs two free CPUs to show its gain.
func BenchmarkQueryShards(b *testing.B) {
	ts := at(50 * time.Minute)
	for _, shards := range []int{0, 2} {
		h := newBenchAPIOf(b, 100_000, func(c *Config) { c.Shards = shards })
		for _, c := range []struct{ name, q string }{
			{"sum_by_job_rate_5m_100k_series", "sum by (job) (rate(bench_requests_total[5m]))"},
			{"topk_rate_5m_100k_series", "topk(5, rate(bench_requests_total[5m]))"},
			{"count_100k_series", "count(bench_requests_total)"},
			{"avg_by_job_rate_5m_100k_series", "avg by (job) (rate(bench_requests_total[5m]))"},
		} {
			b.Run(fmt.Sprintf("%s/shards=%d", c.name, shards), func(b *testing.B) {
				benchRequest(b, h, "query", p("query", c.q, "time", ts))
			})
		}
	}
}

// BenchmarkBlockRead is the storage work of an instant rate query over one block without
// the engine: each of 32,000 series' labels, chunks and last 5 minutes of samples, read by
// one goroutine (whole) and by two at once, half the series each, split by series hash as
// shards are (halves). Its wall-time gain bounds what two shards can gain on the machine:
// the two CPUs share caches and memory bandwidth.
func BenchmarkBlockRead(b *testing.B) {
	const n, scrapes = 32_000, 480 // 2 h at 15 s
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	modes := []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}
	dir := stratatest.WriteBlockWith(b, b.TempDir(), 4*time.Hour, func(app storage.Appender) error {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range n {
			ls := labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", strconv.Itoa(i%16),
				"instance", fmt.Sprintf("host-%d:9100", i/128), "job", "node", "mode", modes[i/16%8])
			v := 0.0
			for k := range scrapes {
				v += float64(rng.IntN(1500)) / 100
				if _, err := app.Append(0, ls, t0+int64(k)*15_000, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	block, err := tsdb.OpenBlock(nil, dir, chunkenc.NewPool(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer block.Close()
	ir, err := block.Index()
	if err != nil {
		b.Fatal(err)
	}
	defer ir.Close()
	cr, err := block.Chunks()
	if err != nil {
		b.Fatal(err)
	}
	defer cr.Close()
	p, err := ir.Postings(context.Background(), "__name__", "node_cpu_seconds_total")
	if err != nil {
		b.Fatal(err)
	}
	var all []storage.SeriesRef
	var halves [2][]storage.SeriesRef
	var sb labels.ScratchBuilder
	for p.Next() {
		if err := ir.Series(p.At(), &sb, nil); err != nil {
			b.Fatal(err)
		}
		all = append(all, p.At())
		h := labels.StableHash(sb.Labels()) % 2
		halves[h] = append(halves[h], p.At())
	}
	mint := t0 + scrapes*15_000 - 5*60_000
	read := func(refs []storage.SeriesRef) error {
		var (
			sb   labels.ScratchBuilder
			chks []chunks.Meta
			it   chunkenc.Iterator
		)
		for _, ref := range refs {
			if err := ir.Series(ref, &sb, &chks); err != nil {
				return err
			}
			_ = sb.Labels()
			for _, c := range chks {
				if c.MaxTime < mint {
					continue
				}
				chk, _, err := cr.ChunkOrIterable(c)
				if err != nil {
					return err
				}
				it = chk.Iterator(it)
				for it.Next() != chunkenc.ValNone {
				}
				if err := it.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, c := range []struct {
		name  string
		parts [][]storage.SeriesRef
	}{{"whole", [][]storage.SeriesRef{all}}, {"halves", halves[:]}} {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := processCPU(b)
			for b.Loop() {
				errs := make([]error, len(c.parts))
				var wg sync.WaitGroup
				for i, part := range c.parts {
					wg.Go(func() { errs[i] = read(part) })
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}

// BenchmarkQueryRange runs range queries whole (parallelism=1) and cut into parts of their
// steps evaluated at once (split.go); parallelism=2 needs two free CPUs to show its gain.
func BenchmarkQueryRange(b *testing.B) {
	for _, par := range []int{1, 2} {
		h := newBenchAPI(b, func(c *Config) { c.Parallelism = par; c.ResultsCacheSize = 0 })
		for _, c := range []struct{ name, q string }{
			{"sum_by_job_rate_5m_1h_step60", "sum by (job) (rate(bench_requests_total[5m]))"},
			{"selector_10k_series_1h_step60", "bench_requests_total"},
		} {
			b.Run(fmt.Sprintf("%s/parallelism=%d", c.name, par), func(b *testing.B) {
				benchRequest(b, h, "query_range", p("query", c.q, "start", tZero, "end", tEnd, "step", "60"))
			})
		}
	}
}

// BenchmarkQueryRangeCached repeats a range query whose steps are all old enough to be
// cached (cache.go): after the first, every request is answered from the results cache;
// compare with BenchmarkQueryRange's parallelism=1.
// With memcached and Redis (Debian's, on unix sockets) the extents are fetched from the
// server and decoded at each request; the selector's 10k series are larger than an item
// may be (--query.results-cache.max-item-size), so only the sum is cached there.
func BenchmarkQueryRangeCached(b *testing.B) {
	for _, backend := range []string{CacheBackendMemory, CacheBackendMemcached, CacheBackendRedis} {
		var srv *stratatest.CacheServer
		switch backend {
		case CacheBackendMemcached:
			srv = stratatest.StartMemcached(b)
		case CacheBackendRedis:
			srv = stratatest.StartRedis(b)
		}
		h := newBenchAPI(b, func(c *Config) {
			c.Parallelism = 1
			c.ResultsCache.Backend = backend
			if srv != nil {
				c.ResultsCache.Memcached.Addresses, c.ResultsCache.Redis.Endpoint = srv.Socket, srv.Socket
			}
		})
		for _, c := range []struct{ name, q string }{
			{"sum_by_job_rate_5m_1h_step60", "sum by (job) (rate(bench_requests_total[5m]))"},
			{"selector_10k_series_1h_step60", "bench_requests_total"},
		} {
			if srv != nil && c.name != "sum_by_job_rate_5m_1h_step60" {
				continue
			}
			b.Run(c.name+"/"+backend, func(b *testing.B) {
				benchRequest(b, h, "query_range", p("query", c.q, "start", tZero, "end", tEnd, "step", "60"))
			})
		}
	}
}

func BenchmarkQueryMetadataEndpoints(b *testing.B) {
	h := newBenchAPI(b)
	b.Run("series_10k", func(b *testing.B) { benchRequest(b, h, "series", p("match[]", "bench_requests_total")) })
	b.Run("labels", func(b *testing.B) { benchRequest(b, h, "labels", nil) })
	b.Run("label_values_instance", func(b *testing.B) { benchRequest(b, h, "label/{name}/values", nil, "instance") })
}

// BenchmarkAppendMatrix measures the encoder alone on a range query's answer of 10k series
// of 61 points.
func BenchmarkAppendMatrix(b *testing.B) {
	m := benchMatrix(benchSeries, 61)
	buf := appendMatrix(nil, m)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendMatrix(buf[:0], m)
	}
}
