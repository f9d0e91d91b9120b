package query

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// The deterministic data set that the HTTP tests load into Strata and into a reference
// Prometheus. Samples start at fixtureStart and come every 15s, 3.5s after the minute's
// quarters, for 200 scrapes (under 50 minutes: Prometheus' head accepts at most an hour
// behind its newest sample). Queries are evaluated at whole seconds, so no sample sits on
// the boundary of a range selector or of the lookback window, where Prometheus 3 (left-open
// ranges) and 2.42 (closed ranges) legitimately differ.
var fixtureStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	fixtureScrapes  = 200
	fixtureInterval = 15 * time.Second
	fixtureOffset   = 3500 * time.Millisecond
)

func fixtureTime(i int) int64 {
	return fixtureStart.Add(fixtureOffset + time.Duration(i)*fixtureInterval).UnixMilli()
}

// at is fixtureStart plus d, as Unix seconds for a query parameter.
func at(d time.Duration) string {
	return fmt.Sprint(fixtureStart.Add(d).Unix())
}

type fixtureSample struct {
	t int64
	v float64
	h *histogram.Histogram
}

type fixtureSeries struct {
	lset      labels.Labels
	samples   []fixtureSample
	exemplars []exemplar.Exemplar
}

// fixture returns the data set; every call builds the same data.
func fixture() []fixtureSeries {
	var out []fixtureSeries
	// A counter over 16 series, with a reset in one of them.
	for ji, job := range []string{"api", "web"} {
		for ii, inst := range []string{"10.0.0.1:9100", "10.0.0.2:9100"} {
			for mi, method := range []string{"GET", "POST"} {
				for ci, code := range []string{"200", "500"} {
					k := ji*8 + ii*4 + mi*2 + ci
					rate := float64(k+1) * 0.25 // per second
					s := fixtureSeries{lset: labels.FromStrings("__name__", "http_requests_total",
						"job", job, "instance", inst, "method", method, "code", code)}
					v := float64(k * 100)
					for i := range fixtureScrapes {
						if k == 1 && i == 100 {
							v = 3 // counter reset
						}
						s.samples = append(s.samples, fixtureSample{t: fixtureTime(i), v: v})
						v += rate * fixtureInterval.Seconds()
					}
					if k == 0 {
						for i := 10; i < fixtureScrapes; i += 40 {
							s.exemplars = append(s.exemplars, exemplar.Exemplar{
								Labels: labels.FromStrings("trace_id", fmt.Sprintf("%016x", i*7919)),
								Value:  float64(i) / 8, Ts: fixtureTime(i), HasTs: true,
							})
						}
					}
					out = append(out, s)
				}
			}
		}
	}
	// A gauge.
	for k, inst := range []string{"a", "b", "c"} {
		s := fixtureSeries{lset: labels.FromStrings("__name__", "node_memory_bytes", "job", "node", "instance", inst)}
		for i := range fixtureScrapes {
			s.samples = append(s.samples, fixtureSample{t: fixtureTime(i), v: 1e9 + 1e6*float64(i%17) + float64(k)*123456.789})
		}
		out = append(out, s)
	}
	// Values whose formatting matters. (Negative zero is left out: Prometheus 2.42's
	// storage answers it as 0, ours as -0; the encoder's "-0" is tested on its own.)
	fraction := 0.1
	fraction += 0.2 // 0.30000000000000004 at run time; a constant expression would be exact
	for _, sv := range []struct {
		kind string
		v    float64
	}{
		{"nan", math.NaN()}, {"pos_inf", math.Inf(1)}, {"neg_inf", math.Inf(-1)},
		{"tiny", 1.5e-7}, {"huge", 2.5e21}, {"fraction", fraction}, {"big", 123456789.123},
		{"negative", -42.5}, {"integer", 1e20},
	} {
		s := fixtureSeries{lset: labels.FromStrings("__name__", "special_values", "kind", sv.kind)}
		for i := range fixtureScrapes {
			s.samples = append(s.samples, fixtureSample{t: fixtureTime(i), v: sv.v})
		}
		out = append(out, s)
	}
	// A classic histogram.
	bounds := []string{"0.1", "0.5", "1", "+Inf"}
	for bi, le := range bounds {
		s := fixtureSeries{lset: labels.FromStrings("__name__", "request_duration_seconds_bucket", "job", "api", "le", le)}
		for i := range fixtureScrapes {
			s.samples = append(s.samples, fixtureSample{t: fixtureTime(i), v: float64(i * (bi + 1) * 3)})
		}
		out = append(out, s)
	}
	sum := fixtureSeries{lset: labels.FromStrings("__name__", "request_duration_seconds_sum", "job", "api")}
	count := fixtureSeries{lset: labels.FromStrings("__name__", "request_duration_seconds_count", "job", "api")}
	for i := range fixtureScrapes {
		sum.samples = append(sum.samples, fixtureSample{t: fixtureTime(i), v: float64(i) * 4.75})
		count.samples = append(count.samples, fixtureSample{t: fixtureTime(i), v: float64(i * 12)})
	}
	out = append(out, sum, count)
	// A native histogram with a zero bucket, positive and negative buckets.
	nh := fixtureSeries{lset: labels.FromStrings("__name__", "rpc_latency_seconds", "job", "api")}
	for i := range fixtureScrapes {
		n := uint64(i)
		nh.samples = append(nh.samples, fixtureSample{t: fixtureTime(i), h: &histogram.Histogram{
			Schema:          0,
			Count:           10 * n,
			Sum:             float64(n) * 1.25,
			ZeroThreshold:   0.001,
			ZeroCount:       2 * n,
			PositiveSpans:   []histogram.Span{{Offset: -1, Length: 2}, {Offset: 1, Length: 2}},
			PositiveBuckets: []int64{int64(n), int64(n), -int64(n), int64(n)}, // n, 2n, n, 2n
			NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
			NegativeBuckets: []int64{int64(2 * n)},
		}})
	}
	out = append(out, nh)
	// Label values that need escaping in JSON.
	weird := fixtureSeries{lset: labels.FromStrings("__name__", "weird_labels",
		"path", "/a<b>&c", "quote", "say \"hi\" \\o/ tab\there\nline\u2028", "unicode", "日本語 ü")}
	for i := range fixtureScrapes {
		weird.samples = append(weird.samples, fixtureSample{t: fixtureTime(i), v: 1})
	}
	out = append(out, weird)
	return out
}

// fixtureMetadata is the metadata of the fixture's metrics.
func fixtureMetadata() map[string][]metadata.Metadata {
	return map[string][]metadata.Metadata{
		// An OpenMetrics counter family is named without _total.
		"http_requests":            {{Type: "counter", Help: "Requests served, by code."}},
		"node_memory_bytes":        {{Type: "gauge", Help: "Memory in use.", Unit: "bytes"}},
		"request_duration_seconds": {{Type: "histogram", Help: "Request latency <in seconds> & more.", Unit: "seconds"}},
		"special_values":           {{Type: "gauge", Help: "Values with \"special\" formatting."}},
	}
}

// appendFixture writes the data set to db in one transaction.
func appendFixture(t testing.TB, db *tsdb.DB, data []fixtureSeries) {
	t.Helper()
	app := db.AppenderV2(context.Background())
	for _, s := range data {
		var ref storage.SeriesRef
		for i, smp := range s.samples {
			var opts storage.AppendV2Options
			for _, e := range s.exemplars {
				if e.Ts == smp.t {
					opts.Exemplars = append(opts.Exemplars, e)
				}
			}
			var err error
			ref, err = app.Append(ref, s.lset, 0, smp.t, smp.v, smp.h, nil, opts)
			if err != nil {
				t.Fatalf("appending sample %d of %s: %v", i, s.lset, err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func openTSDB(t testing.TB) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = 100000
	opts.EnableSharding = true // as the ingester's (sharded queries)
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// tsdbStore is the test implementation of the API's storage interfaces: one TSDB per
// workspace, as the ingester keeps them.
type tsdbStore struct {
	mu  sync.Mutex
	dbs map[string]*tsdb.DB
	// opened counts open queriers, to check that every one is closed.
	opened, closed int
	// querierCtx receives the context of the last Querier call.
	querierCtx context.Context
}

func newStore() *tsdbStore { return &tsdbStore{dbs: map[string]*tsdb.DB{}} }

func (s *tsdbStore) add(ws string, db *tsdb.DB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dbs[ws] = db
}

func (s *tsdbStore) db(ws string) (*tsdb.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	db, ok := s.dbs[ws]
	if !ok {
		return nil, fmt.Errorf("no TSDB for workspace %s", ws)
	}
	return db, nil
}

func (s *tsdbStore) Exists(_ context.Context, ws string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.dbs[ws]
	return ok, nil
}

func (s *tsdbStore) Querier(ctx context.Context, ws string, mint, maxt int64) (storage.Querier, error) {
	db, err := s.db(ws)
	if err != nil {
		return nil, err
	}
	q, err := db.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.opened++
	s.querierCtx = ctx
	s.mu.Unlock()
	return &countingQuerier{Querier: q, s: s}, nil
}

func (s *tsdbStore) openQueriers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened - s.closed
}

type countingQuerier struct {
	storage.Querier
	s    *tsdbStore
	once sync.Once
}

func (q *countingQuerier) Close() error {
	q.once.Do(func() {
		q.s.mu.Lock()
		q.s.closed++
		q.s.mu.Unlock()
	})
	return q.Querier.Close()
}

func (s *tsdbStore) ExemplarQuerier(ctx context.Context, ws string) (storage.ExemplarQuerier, error) {
	db, err := s.db(ws)
	if err != nil {
		return nil, err
	}
	return db.ExemplarQuerier(ctx)
}

// HeadStats counts the chunks of the head by reading them, as the ingester will.
func (s *tsdbStore) HeadStats(ctx context.Context, ws string, limit int) (*tsdb.Stats, int64, error) {
	db, err := s.db(ws)
	if err != nil {
		return nil, 0, err
	}
	h := db.Head()
	cq, err := db.ChunkQuerier(h.MinTime(), h.MaxTime())
	if err != nil {
		return nil, 0, err
	}
	defer cq.Close()
	var chunks int64
	set := cq.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() {
			chunks++
		}
		if err := it.Err(); err != nil {
			return nil, 0, err
		}
	}
	if err := set.Err(); err != nil {
		return nil, 0, err
	}
	return h.Stats(labels.MetricName, limit), chunks, nil
}

// fakeMetadata serves fixed metadata for every workspace.
type fakeMetadata map[string][]metadata.Metadata

func (m fakeMetadata) Metadata(_ context.Context, _, metric string, limit int) (map[string][]metadata.Metadata, error) {
	out := map[string][]metadata.Metadata{}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if metric != "" && n != metric {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out[n] = slices.Clone(m[n])
	}
	return out, nil
}
