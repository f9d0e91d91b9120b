package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/ingester"
	"github.com/stratametrics/strata/internal/ingesterapi"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/querier"
	"github.com/stratametrics/strata/internal/query"
	"github.com/stratametrics/strata/internal/storegateway"
	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/usage"
)

var (
	diffSeed    = flag.Uint64("differential.seed", 0, "seed of TestQueryDifferential's data and queries; 0 picks one (logged)")
	diffQueries = flag.Int("differential.queries", 0, "queries TestQueryDifferential runs per storage path; 0 means 300, or 40 under the race detector")
)

// diffWS is the workspace of the differential test.
const diffWS = "ws-differential"

// TestQueryDifferential compares the query API's answers with Prometheus' engine run
// directly on the same samples in an in-memory TSDB. The data is random (seeded, the seed
// logged; rerun one with -differential.seed): counters and gauges on and off a 15 s grid,
// gaps, staleness markers, out-of-order samples, a native histogram. The queries are
// random too: instant and range, ranges and steps that put samples exactly on range
// boundaries, offsets, @, subqueries, aggregations. Every query runs through each storage
// path the server has, each answer compared value for value (bitwise floats) with the
// reference:
//
//   - ingester: the ingester's head and the blocks it cut, nothing in the bucket;
//   - ingester+bucket: the same after its blocks are shipped (the bucket copies of local
//     blocks are skipped, the merge across the boundary runs);
//   - split-by-time: two ingesters holding the same samples (a replica with blocks of
//     its own IDs, shipped too), asked for the recent hours only, and the bucket, asked
//     for the older ones, holding both copies of every block, as in a cluster;
//   - bucket: a new ingester with no data, everything from the bucket's blocks (both
//     copies);
//   - compacted: the same after the compactor merged the 2 h blocks into 12 h ones and
//     deduplicated the copies;
//
// each with range queries evaluated whole, and split into parts evaluated in parallel
// with the aggregations of the others sharded (where the sums of a sharded sum or avg,
// added in another order, may differ in their last bits: compared within 1e-12). The
// answers' warnings and infos are compared too, text and position.
func TestQueryDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	seed := *diffSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -differential.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ctx := context.Background()

	// Three days ago, on an hour: the compactor's 12 h windows are complete.
	start := time.Now().Add(-72 * time.Hour).Truncate(time.Hour)
	data := genDiffData(rng, start, 8*time.Hour)
	ref := newReference(t, data)

	lim := diffLimits(t)
	bktDir := t.TempDir()
	bkt, err := bucket.NewFilesystem(bktDir)
	if err != nil {
		t.Fatal(err)
	}
	ws := diffWorkspaces{}
	ing := newDiffIngester(t, lim, ws, bkt)
	for _, req := range data.requests {
		pushDiff(t, ing, req)
	}
	sg := newDiffStoreGateway(t, bkt)
	n := *diffQueries
	if n == 0 {
		n = 300
		if raceEnabled {
			n = 40
		}
	}
	queries := genDiffQueries(rng, data, n)

	checkWith := func(name string, q *querier.Querier) {
		// Whole, and with long range queries split by steps and the others' aggregations
		// sharded.
		for _, v := range []struct{ parallelism, shards int }{{1, 0}, {3, 3}} {
			t.Run(fmt.Sprintf("%s/parallelism=%d/shards=%d", name, v.parallelism, v.shards), func(t *testing.T) {
				srv, reg := newDiffAPI(t, q, v.parallelism, v.shards)
				compareAll(t, srv, ref, queries, v.shards > 1)
				if n := registryCounter(t, reg, "strata_query_sharded_queries_total", "outcome", "sharded"); v.shards > 1 && n == 0 {
					t.Errorf("no query was sharded (%v fell back whole)", registryCounter(t, reg, "strata_query_sharded_queries_total", "outcome", "whole"))
				}
			})
		}
	}
	check := func(name string, ing *ingester.Ingester) {
		checkWith(name, querier.New(querier.Config{}, querier.Deps{Ingesters: []querier.Ingester{ing}, Store: sg, Retentions: compactor.StaticWorkspaces{diffWS: 0}}))
	}
	sentinel := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "diff_sentinel"}},
		Samples: []prompb.Sample{{Timestamp: data.end.Add(4 * time.Hour).UnixMilli(), Value: 1}},
	}}}

	check("ingester", ing)
	// Through the network, as a querier of another process reads it; the first
	// ingester it is offered does not answer.
	remote := remoteIngester(t, ing)
	checkRemote := func(name string) {
		checkWith(name, querier.New(querier.Config{}, querier.Deps{Ingesters: []querier.Ingester{remote}, Store: sg, Retentions: compactor.StaticWorkspaces{diffWS: 0}}))
	}
	checkRemote("remote-ingester")

	// A sample of another series 4 h past the data moves the head on, so compacting it
	// cuts all the data into blocks (a head keeps its last 1.5 block ranges).
	pushDiff(t, ing, sentinel)
	shipAll(t, ing, sg)
	check("ingester+bucket", ing)
	// The remote ingester cannot say which bucket blocks it holds: both copies are read.
	checkRemote("remote-ingester+bucket")

	// A replica: a second ingester with the same samples, whose blocks have IDs of their
	// own, shipped to the same bucket. The querier splits by time, as in a cluster: the
	// ingesters for the last 2 h before a clock set 6 h into the data, the bucket (both
	// copies of every block) for what is older than 1 h before it.
	replica := newDiffIngester(t, lim, ws, bkt)
	for _, req := range data.requests {
		pushDiff(t, replica, req)
	}
	pushDiff(t, replica, sentinel)
	shipAll(t, replica, sg)
	checkWith("split-by-time", querier.New(querier.Config{QueryIngestersWithin: 2 * time.Hour, QueryStoreAfter: time.Hour}, querier.Deps{
		Ingesters:  []querier.Ingester{ing, replica},
		Store:      sg,
		Retentions: compactor.StaticWorkspaces{diffWS: 0},
		Now:        func() time.Time { return data.start.Add(6 * time.Hour) },
	}))

	// A cluster's querier: its own process' ingester in process, another over the
	// network, each owning one of two partitions (here each holds every series, as
	// after partitions moved), and the bucket without the local ingester's blocks.
	const key = "differential-cluster-key"
	srv := httptest.NewServer(ingesterapi.NewHandler(replica, key, nil))
	t.Cleanup(srv.Close)
	cluster := ingesterapi.NewClient(staticMembers{{ID: "local", Partitions: []int{0}}, {ID: "replica", URL: srv.URL, Partitions: []int{1}}},
		key, time.Second, nil).WithLocal("local", ing)
	checkWith("local+remote", querier.New(querier.Config{}, querier.Deps{Ingesters: []querier.Ingester{cluster}, Store: sg, Retentions: compactor.StaticWorkspaces{diffWS: 0}}))

	empty := newDiffIngester(t, lim, ws, nil)
	check("bucket", empty)

	ccfg := compactor.Config{}
	ccfg.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	ccfg.DeletionDelay = 0
	c, err := compactor.New(ccfg, t.TempDir(), bkt, compactor.StaticWorkspaces{diffWS: 0}, nil, prometheus.NewRegistry(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second run deletes the blocks the first marked
		if err := c.CompactOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := sg.SyncWorkspace(ctx, diffWS); err != nil {
		t.Fatal(err)
	}
	check("compacted", empty)
}

// diffData is the test's samples, as the remote-write requests that carry them in the
// order they are sent (out-of-order samples last).
type diffData struct {
	start, end time.Time
	requests   []*prompb.WriteRequest
}

// genDiffData makes 12 counters, 12 gauges (two jobs, six instances) and one native
// histogram over span from start. Most series sample every 15 s on the grid, some off it
// by a fixed jitter; some have gaps, some end with a staleness marker and come back; a
// few samples of the last minutes are held back and sent last, out of order.
func genDiffData(rng *rand.Rand, start time.Time, span time.Duration) diffData {
	type series struct {
		lbls      []prompb.Label
		counter   bool
		jitter    int64 // ms off the grid
		gapFrom   int64 // step index where a gap starts (0: none)
		gapLen    int64
		staleAt   int64 // step index of a staleness marker (0: none)
		value     float64
		histogram bool
	}
	const step = int64(15_000)
	var all []*series
	for _, kind := range []string{"diff_counter", "diff_gauge"} {
		for job := range 2 {
			for inst := range 6 {
				s := &series{
					lbls: []prompb.Label{{Name: "__name__", Value: kind}, {Name: "instance", Value: fmt.Sprintf("i-%d", inst)},
						{Name: "job", Value: string(rune('a' + job))}},
					counter: kind == "diff_counter",
					value:   float64(rng.IntN(100)),
				}
				if rng.IntN(3) == 0 {
					s.jitter = rng.Int64N(step-1) + 1
				}
				if rng.IntN(3) == 0 {
					s.gapFrom, s.gapLen = rng.Int64N(1500)+10, rng.Int64N(60)+2
				}
				if rng.IntN(4) == 0 {
					s.staleAt = rng.Int64N(1500) + 10
				}
				all = append(all, s)
			}
		}
	}
	all = append(all, &series{lbls: []prompb.Label{{Name: "__name__", Value: "diff_hist"}, {Name: "job", Value: "a"}}, histogram: true})

	steps := int64(span / time.Millisecond / time.Duration(step))
	base := start.UnixMilli()
	held := &prompb.WriteRequest{} // out of order, sent last
	var reqs []*prompb.WriteRequest
	hcount := uint64(0)
	for k := int64(0); k < steps; k += 4 { // one request per minute
		wr := &prompb.WriteRequest{}
		for _, s := range all {
			ts := prompb.TimeSeries{Labels: s.lbls}
			for j := k; j < min(k+4, steps); j++ {
				if s.gapFrom > 0 && j >= s.gapFrom && j < s.gapFrom+s.gapLen {
					continue
				}
				t := base + j*step + s.jitter
				if s.histogram {
					if j%2 == 1 {
						continue
					}
					hcount += uint64(rng.IntN(20))
					h := diffHistogram(hcount)
					ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(t, h))
					continue
				}
				v := s.value
				switch {
				case s.staleAt > 0 && j == s.staleAt:
					v = math.Float64frombits(value.StaleNaN)
				case s.counter:
					s.value += float64(rng.IntN(50))
					if rng.IntN(400) == 0 {
						s.value = float64(rng.IntN(10)) // a reset
					}
					v = s.value
				default:
					s.value = float64(rng.IntN(1000)) / 8
					v = s.value
				}
				// Within the last 8 minutes, some samples go out of order (the
				// window is 10 minutes).
				if j > steps-32 && j < steps-1 && rng.IntN(5) == 0 {
					held.Timeseries = append(held.Timeseries, prompb.TimeSeries{Labels: s.lbls, Samples: []prompb.Sample{{Timestamp: t, Value: v}}})
					continue
				}
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: v})
			}
			if len(ts.Samples) > 0 || len(ts.Histograms) > 0 {
				wr.Timeseries = append(wr.Timeseries, ts)
			}
		}
		reqs = append(reqs, wr)
	}
	reqs = append(reqs, held)
	return diffData{start: start, end: start.Add(span), requests: reqs}
}

// diffHistogram is an exponential histogram with total count n spread over four buckets.
func diffHistogram(n uint64) *histogram.Histogram {
	a, b := int64(n/4), int64(n/4)
	c, d := int64(n/4), int64(n-3*(n/4))
	return &histogram.Histogram{
		Schema: 0, Count: n, Sum: float64(n) * 1.5, ZeroThreshold: 0.001,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 4}},
		PositiveBuckets: []int64{a, b - a, c - b, d - c},
	}
}

// reference is Prometheus' engine over an in-memory TSDB holding the test's samples.
type reference struct {
	db  *tsdb.DB
	eng *promql.Engine
}

func newReference(t *testing.T, data diffData) *reference {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = (10 * time.Minute).Milliseconds()
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	// Everything stays in the head: a compaction in the background would change the
	// reference's series order (head: creation order; blocks: label order) while the
	// queries run, and with it which series ties keep, at random.
	db.DisableCompactions()
	for _, wr := range data.requests {
		app := db.Appender(context.Background())
		for _, ts := range wr.Timeseries {
			b := labels.NewScratchBuilder(len(ts.Labels))
			for _, l := range ts.Labels {
				b.Add(l.Name, l.Value)
			}
			b.Sort()
			lbls := b.Labels()
			for _, s := range ts.Samples {
				if _, err := app.Append(0, lbls, s.Timestamp, s.Value); err != nil {
					t.Fatalf("reference: %s at %d: %v", lbls, s.Timestamp, err)
				}
			}
			for _, h := range ts.Histograms {
				if _, err := app.AppendHistogram(0, lbls, h.Timestamp, h.ToIntHistogram(), nil); err != nil {
					t.Fatalf("reference: %s at %d: %v", lbls, h.Timestamp, err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// The engine options of the query API (internal/query), with its defaults.
	eng := promql.NewEngine(promql.EngineOpts{
		MaxSamples: math.MaxInt, Timeout: time.Hour, LookbackDelta: 5 * time.Minute,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true, EnableNegativeOffset: true,
	})
	return &reference{db: db, eng: eng}
}

func diffLimits(t *testing.T) *limits.Overrides {
	t.Helper()
	var cfg limits.Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	cfg.Limits.OutOfOrderTimeWindow = 10 * time.Minute
	o, err := limits.NewOverrides(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

type diffWorkspaces struct{}

func (diffWorkspaces) GetWorkspace(_ context.Context, id string) (meta.Workspace, error) {
	return meta.Workspace{ID: id, Status: meta.StatusActive}, nil
}

func (diffWorkspaces) Exists(context.Context, string) (bool, error) { return true, nil }

// newDiffIngester is an ingester with the server's defaults (2 h blocks) shipping to
// bkt (nil: none).
func newDiffIngester(t *testing.T, lim *limits.Overrides, ws diffWorkspaces, bkt *bucket.Filesystem) *ingester.Ingester {
	t.Helper()
	var cfg ingester.Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	cfg.IdleTimeout = 0
	var b objstore.Bucket // a nil *Filesystem would not be a nil Bucket
	if bkt != nil {
		b = bkt
	}
	i, err := ingester.New(cfg, t.TempDir(), lim, ws, b, usage.New(prometheus.NewRegistry()), nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = i.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return i
}

// shipAll cuts everything ing holds into blocks, ships them and has sg see them.
func shipAll(t *testing.T, ing *ingester.Ingester, sg *storegateway.StoreGateway) {
	t.Helper()
	ctx := context.Background()
	if err := ing.Compact(ctx, diffWS); err != nil {
		t.Fatal(err)
	}
	if err := ing.ShipOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sg.SyncWorkspace(ctx, diffWS); err != nil {
		t.Fatal(err)
	}
}

// remoteIngester serves ing over the ingester API and returns a client of it, whose
// first member is an address nothing listens on.
func remoteIngester(t *testing.T, ing *ingester.Ingester) *ingesterapi.Client {
	t.Helper()
	const key = "differential-cluster-key"
	srv := httptest.NewServer(ingesterapi.NewHandler(ing, key, nil))
	t.Cleanup(srv.Close)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	members := staticMembers{{ID: "gone", URL: dead.URL, Partitions: []int{0}}, {ID: "live", URL: srv.URL, Partitions: []int{0}}}
	return ingesterapi.NewClient(members, key, time.Second, nil)
}

type staticMembers []ingesterapi.Member

func (m staticMembers) Ingesters() []ingesterapi.Member { return m }

func (m staticMembers) Partitions() int {
	n := 0
	for _, mem := range m {
		n = max(n, slices.Max(mem.Partitions)+1)
	}
	return n
}

func newDiffStoreGateway(t *testing.T, bkt *bucket.Filesystem) *storegateway.StoreGateway {
	t.Helper()
	var cfg storegateway.Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	sg, err := storegateway.New(cfg, t.TempDir(), bkt, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sg.Close() })
	return sg
}

func pushDiff(t *testing.T, ing *ingester.Ingester, wr *prompb.WriteRequest) {
	t.Helper()
	res, err := ing.Push(context.Background(), diffWS, testutil.DecodeV1(t, wr), ingest.Options{})
	if err != nil || res.Invalid != nil || res.Limited != nil {
		t.Fatalf("push: %+v %v", res, err)
	}
}

// newDiffAPI serves the query API over q, with range queries cut into parallelism parts
// and aggregations into shards. It returns the registry of the API's metrics.
func newDiffAPI(t *testing.T, q query.Queryables, parallelism, shards int) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	var cfg query.Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	cfg.Parallelism = parallelism
	cfg.Shards = shards
	reg := prometheus.NewRegistry()
	a, err := query.New(cfg, query.Deps{Queryables: q, Workspaces: diffWorkspaces{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range a.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, r.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		_ = a.Close()
	})
	return srv, reg
}

// registryCounter is the value of the counter name{label=value} in reg, 0 if absent.
func registryCounter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// diffQuery is one query: instant at end when start is zero, else range.
type diffQuery struct {
	expr            string
	start, end, ref time.Time
	step            time.Duration
}

func (q diffQuery) String() string {
	if q.start.IsZero() {
		return fmt.Sprintf("%s at %d", q.expr, q.end.UnixMilli())
	}
	return fmt.Sprintf("%s from %d to %d step %s", q.expr, q.start.UnixMilli(), q.end.UnixMilli(), q.step)
}

// genDiffQueries makes n queries over the data: expressions from templates with random
// selectors, ranges, offsets and @ times, at random instants or over random ranges, all
// on the data's 15 s grid or off it.
func genDiffQueries(rng *rand.Rand, data diffData, n int) []diffQuery {
	templates := []string{
		"{g}", "{c}", "rate({c}[{r}])", "increase({c}[{r}])", "irate({c}[{r}])", "delta({g}[{r}])",
		"deriv({g}[{r}])", "avg_over_time({g}[{r}])", "sum_over_time({g}[{r}])", "count_over_time({g}[{r}])",
		"max_over_time({g}[{r}])", "min_over_time({g}[{r}])", "last_over_time({g}[{r}])",
		"stddev_over_time({g}[{r}])", "quantile_over_time(0.3, {g}[{r}])", "changes({g}[{r}])",
		"resets({c}[{r}])", "sum by (job) (rate({c}[{r}]))", "avg by (instance) ({g})",
		// topk and bottomk pick among equal values by the order series come from storage,
		// which Prometheus leaves unspecified (its own TSDB reads a head in the order series
		// were created, blocks in label order): compare what ties cannot change (the gauges
		// are multiples of 1/8, so their sums are exact in any order). Not which series a
		// tie keeps: max by (job) over bottomk across both jobs would show a job or not
		// depending on it, so the bottomk groups by job too.
		"sum(topk(3, {g}))", "count(bottomk(2, rate({c}[{r}])))", "max by (job) (bottomk by (job) (2, rate({c}[{r}])))", "count({g})", "max({g})", "quantile(0.7, {g})",
		`count_values("v", floor({g} / 10))`, "{g} offset {o}", "{g} @ {at}", "rate({c}[{r}] offset {o})",
		"max_over_time(rate({c}[{r}])[{sr}:{ss}])", "timestamp({g})", `absent({g}{job="nope"})`,
		"{g} > 50", "{g} > bool 50", "sum by (job) (rate({c}[{r}])) / sum by (job) ({g})",
		"{c} - {c} offset {o}", "histogram_quantile(0.9, rate(diff_hist[{r}]))", "histogram_count(diff_hist)",
		"histogram_sum(rate(diff_hist[{r}]))", "histogram_avg(increase(diff_hist[{r}]))",
		"sum_over_time({g}[{r}] @ {at})", "rate({c}[{r}] @ end())", "last_over_time({g}[{r}] offset -{o})",
		"sort_desc(sum by (instance) (increase({c}[{r}])))", "predict_linear({g}[{r}], 600)",
	}
	counters := []string{"diff_counter", `diff_counter{job="a"}`, `diff_counter{instance=~"i-[0-2]"}`}
	gauges := []string{"diff_gauge", `diff_gauge{job="b"}`, `diff_gauge{instance!="i-3"}`}
	durs := []string{"15s", "30s", "1m", "75s", "2m", "5m", "10m", "37s", "1h"}
	span := data.end.Sub(data.start)
	// A time in the data (or just past its end), on the 15 s grid or off it.
	at := func() time.Time {
		t := data.start.Add(time.Duration(rng.Int64N(int64(span+10*time.Minute)/int64(15*time.Second))) * 15 * time.Second)
		if rng.IntN(3) == 0 {
			t = t.Add(time.Duration(rng.IntN(15000)) * time.Millisecond)
		}
		return t
	}
	out := make([]diffQuery, 0, n)
	for range n {
		expr := templates[rng.IntN(len(templates))]
		r := strings.NewReplacer(
			"{c}", counters[rng.IntN(len(counters))], "{g}", gauges[rng.IntN(len(gauges))],
			"{r}", durs[rng.IntN(len(durs))], "{o}", durs[rng.IntN(len(durs))],
			"{sr}", []string{"10m", "30m"}[rng.IntN(2)], "{ss}", []string{"", "30s", "1m", "45s"}[rng.IntN(4)],
			"{at}", strconv.FormatFloat(float64(at().UnixMilli())/1000, 'f', -1, 64),
		)
		expr = r.Replace(expr)
		q := diffQuery{expr: expr, end: at()}
		if rng.IntN(2) == 0 {
			q.step = []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 97 * time.Second, 5 * time.Minute}[rng.IntN(5)]
			q.start = q.end.Add(-time.Duration(rng.IntN(1000)+1) * q.step)
			if q.start.Before(data.start.Add(-time.Hour)) {
				q.start = data.start.Add(-time.Hour)
			}
		}
		out = append(out, q)
	}
	// One instant aggregation that is always sharded, so that the sharded path runs
	// whatever the random templates were (40 under the race detector may hold none; a
	// rate over diff_counter, not named as a counter, has an info annotation and runs
	// whole).
	return append(out, diffQuery{expr: "avg by (job) (diff_gauge)", end: at()})
}

// compareAll runs every query against srv and the reference and reports each
// difference; rounding allows values to differ by 1e-12 of their size.
func compareAll(t *testing.T, srv *httptest.Server, ref *reference, queries []diffQuery, rounding bool) {
	t.Helper()
	diffs, withData, annotated := 0, 0, 0
	// Answers that agree only because both are empty prove little: most must hold data.
	defer func() {
		t.Logf("%d of %d reference answers hold data, %d have annotations", withData, len(queries), annotated)
		if !t.Failed() && withData < len(queries)*3/5 {
			t.Errorf("only %d of %d reference answers hold data: the queries miss the data", withData, len(queries))
		}
	}()
	for _, q := range queries {
		want, werr := ref.eval(q)
		if werr == nil && !strings.HasPrefix(want, "\n") {
			withData++
		}
		if werr == nil && !strings.HasSuffix(want, "\n") {
			annotated++
		}
		got, gerr := evalHTTP(t, srv, q)
		switch {
		case (werr != nil) != (gerr != nil):
			t.Errorf("%s:\n  reference error: %v\n  strata error:    %v", q, werr, gerr)
		case werr == nil && got != want && !(rounding && withinRounding(want, got)):
			t.Errorf("%s: the answers differ from byte %d:\n  reference: %s\n  strata:    %s", q, firstDiff(want, got), around(want, firstDiff(want, got)), around(got, firstDiff(want, got)))
		default:
			continue
		}
		if diffs++; diffs == 10 {
			t.Fatal("stopping after 10 differences")
		}
	}
}

// pointRE finds the points of a canonical answer: t:value.
var pointRE = regexp.MustCompile(`(\d+):([^ \]]+)`)

// withinRounding tells whether two canonical answers are the same but for values that
// differ by at most 1e-12 of their size.
func withinRounding(a, b string) bool {
	a, anotes, _ := strings.Cut(a, "\n")
	b, bnotes, _ := strings.Cut(b, "\n")
	if anotes != bnotes || pointRE.ReplaceAllString(a, "$1:v") != pointRE.ReplaceAllString(b, "$1:v") {
		return false
	}
	x, y := pointRE.FindAllStringSubmatch(a, -1), pointRE.FindAllStringSubmatch(b, -1)
	for i := range x {
		f, err1 := strconv.ParseFloat(x[i][2], 64)
		g, err2 := strconv.ParseFloat(y[i][2], 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if f != g && !(math.IsNaN(f) && math.IsNaN(g)) && math.Abs(f-g) > 1e-12*math.Max(math.Abs(f), math.Abs(g)) {
			return false
		}
	}
	return true
}

// firstDiff is the index of the first byte where a and b differ.
func firstDiff(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// around is s near byte i, with the series it is in named.
func around(s string, i int) string {
	from := strings.LastIndex(s[:i], "{")
	if from < 0 || i-from > 300 {
		from = max(0, i-300)
	}
	to := min(len(s), i+300)
	return "…" + s[from:to] + "…"
}

// eval runs q on Prometheus' engine and renders the answer canonically (see canonical).
func (r *reference) eval(q diffQuery) (string, error) {
	ctx := context.Background()
	var (
		qry promql.Query
		err error
	)
	if q.start.IsZero() {
		qry, err = r.eng.NewInstantQuery(ctx, r.db, nil, q.expr, q.end)
	} else {
		qry, err = r.eng.NewRangeQuery(ctx, r.db, nil, q.expr, q.start, q.end, q.step)
	}
	if err != nil {
		return "", err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return "", res.Err
	}
	var series []canonSeries
	switch v := res.Value.(type) {
	case promql.Scalar:
		series = append(series, canonSeries{points: []string{point(v.T, v.V)}})
	case promql.Vector:
		for _, s := range v {
			if s.H != nil {
				return "", fmt.Errorf("the reference answered a histogram; the test compares floats only")
			}
			series = append(series, canonSeries{labels: s.Metric.String(), points: []string{point(s.T, s.F)}})
		}
	case promql.Matrix:
		for _, s := range v {
			if len(s.Histograms) > 0 {
				return "", fmt.Errorf("the reference answered a histogram; the test compares floats only")
			}
			cs := canonSeries{labels: s.Metric.String()}
			for _, p := range s.Floats {
				cs.points = append(cs.points, point(p.T, p.F))
			}
			series = append(series, cs)
		}
	default:
		return "", fmt.Errorf("unexpected result type %T", res.Value)
	}
	warnings, infos := res.Warnings.AsStrings(q.expr, 10, 10)
	return canonical(series) + notes(warnings, infos), nil
}

// notes renders an answer's annotations after its series, on a line of their own,
// sorted (the API lists them in no order).
func notes(warnings, infos []string) string {
	all := append(slices.Clone(warnings), infos...)
	slices.Sort(all)
	return "\n" + strings.Join(all, " | ")
}

type canonSeries struct {
	labels string
	points []string
}

// canonical renders series sorted by their labels, each value exact (shortest
// round-trip form), so two answers are equal when their strings are.
func canonical(series []canonSeries) string {
	slices.SortFunc(series, func(a, b canonSeries) int { return strings.Compare(a.labels, b.labels) })
	var b strings.Builder
	for _, s := range series {
		fmt.Fprintf(&b, "%s [%s] ", s.labels, strings.Join(s.points, " "))
	}
	return b.String()
}

func point(t int64, v float64) string {
	return strconv.FormatInt(t, 10) + ":" + strconv.FormatFloat(v, 'g', -1, 64)
}

// evalHTTP runs q through the API and renders the answer as eval does.
func evalHTTP(t *testing.T, srv *httptest.Server, q diffQuery) (string, error) {
	t.Helper()
	params := url.Values{"query": {q.expr}}
	path := "query"
	if q.start.IsZero() {
		params.Set("time", seconds(q.end))
	} else {
		path = "query_range"
		params.Set("start", seconds(q.start))
		params.Set("end", seconds(q.end))
		params.Set("step", strconv.FormatFloat(q.step.Seconds(), 'f', -1, 64))
	}
	resp, err := http.PostForm(srv.URL+"/workspaces/"+diffWS+"/api/v1/"+path, params)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status   string   `json:"status"`
		Error    string   `json:"error"`
		Warnings []string `json:"warnings"`
		Infos    []string `json:"infos"`
		Data     struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: decoding the answer (status %d): %v", q, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return "", fmt.Errorf("%d: %s", resp.StatusCode, body.Error)
	}
	type sample [2]any
	var series []canonSeries
	switch body.Data.ResultType {
	case "scalar":
		var s sample
		if err := json.Unmarshal(body.Data.Result, &s); err != nil {
			t.Fatal(err)
		}
		series = append(series, canonSeries{points: []string{jsonPoint(t, s)}})
	case "vector", "matrix":
		var rs []struct {
			Metric     map[string]string `json:"metric"`
			Value      *sample           `json:"value"`
			Values     []sample          `json:"values"`
			Histogram  any               `json:"histogram"`
			Histograms any               `json:"histograms"`
		}
		if err := json.Unmarshal(body.Data.Result, &rs); err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Histogram != nil || r.Histograms != nil {
				return "", fmt.Errorf("strata answered a histogram; the test compares floats only")
			}
			cs := canonSeries{labels: labels.FromMap(r.Metric).String()}
			if r.Value != nil {
				cs.points = append(cs.points, jsonPoint(t, *r.Value))
			}
			for _, v := range r.Values {
				cs.points = append(cs.points, jsonPoint(t, v))
			}
			series = append(series, cs)
		}
	default:
		t.Fatalf("%s: result type %q", q, body.Data.ResultType)
	}
	return canonical(series) + notes(body.Warnings, body.Infos), nil
}

func seconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

// jsonPoint reads a [seconds, "value"] pair of the API's JSON.
func jsonPoint(t *testing.T, s [2]any) string {
	t.Helper()
	ts, ok := s[0].(float64)
	vs, ok2 := s[1].(string)
	if !ok || !ok2 {
		t.Fatalf("malformed sample %v", s)
	}
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil {
		t.Fatalf("value %q: %v", vs, err)
	}
	return point(int64(math.Round(ts*1000)), v)
}
