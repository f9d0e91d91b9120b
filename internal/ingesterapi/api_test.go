package ingesterapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"
)

const testKey = "the-cluster-key"

// tsdbSource serves a real TSDB holding series a{i="0".."4"} with 10 samples each; fail
// makes a select end with an error after its first series.
type tsdbSource struct {
	db   *tsdb.DB
	fail bool
	ws   atomic.Value // the last workspace asked for
}

func (s *tsdbSource) ChunkQuerier(_ context.Context, ws string, mint, maxt int64) (storage.ChunkQuerier, error) {
	s.ws.Store(ws)
	q, err := s.db.ChunkQuerier(mint, maxt)
	if err != nil || !s.fail {
		return q, err
	}
	return failingQuerier{q}, nil
}

type failingQuerier struct{ storage.ChunkQuerier }

func (q failingQuerier) Select(ctx context.Context, sorted bool, h *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return &failAfterOne{ChunkSeriesSet: q.ChunkQuerier.Select(ctx, sorted, h, ms...)}
}

type failAfterOne struct {
	storage.ChunkSeriesSet
	n int
}

func (s *failAfterOne) Next() bool {
	s.n++
	return s.n == 1 && s.ChunkSeriesSet.Next()
}

func (s *failAfterOne) Err() error { return errors.New("disk on fire") }

func (s *failAfterOne) Warnings() annotations.Annotations { return nil }

func newSource(t *testing.T) *tsdbSource {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.EnableSharding = true // as the ingester's
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	app := db.Appender(context.Background())
	for i := range 5 {
		ls := labels.FromStrings("__name__", "a", "i", string(rune('0'+i)))
		for ts := range int64(10) {
			if _, err := app.Append(0, ls, ts*1000, float64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return &tsdbSource{db: db}
}

// members answer for one partition, each for all of it unless it says otherwise.
type members []Member

func (m members) Ingesters() []Member {
	out := make([]Member, len(m))
	for i, mem := range m {
		if mem.Partitions == nil {
			mem.Partitions = []int{0}
		}
		out[i] = mem
	}
	return out
}

func (m members) Partitions() int {
	n := 1
	for _, mem := range m {
		for _, p := range mem.Partitions {
			n = max(n, p+1)
		}
	}
	return n
}

func serve(t *testing.T, src Source, key string) string {
	t.Helper()
	srv := httptest.NewServer(NewHandler(src, key, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// count selects a{} through the client and returns the series and samples it read.
func count(t *testing.T, c *Client, mint, maxt int64) (series, samples int, err error) {
	t.Helper()
	q, err := c.Querier(context.Background(), "ws-1", mint, maxt)
	if err != nil {
		return 0, 0, err
	}
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "a"))
	for ss.Next() {
		series++
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			samples++
		}
		if it.Err() != nil {
			return series, samples, it.Err()
		}
	}
	return series, samples, ss.Err()
}

// wantAll checks that c reads every series of the source once (5 series, 50 samples) and
// all their values of label i; why says which ingesters should have been asked.
func wantAll(t *testing.T, c *Client, why string) {
	t.Helper()
	if series, samples, err := count(t, c, 0, 10_000); err != nil || series != 5 || samples != 50 {
		t.Fatalf("got %d series, %d samples, err %v; want 5 and 50 (%s)", series, samples, err, why)
	}
	q, _ := c.Querier(context.Background(), "ws-1", 0, 10_000)
	vals, _, err := q.LabelValues(context.Background(), "i", nil)
	q.Close()
	if err != nil || strings.Join(vals, ",") != "0,1,2,3,4" {
		t.Fatalf("label values %v, %v", vals, err)
	}
}

func TestSelectAndLabels(t *testing.T) {
	src := newSource(t)
	c := NewClient(members{{ID: "i1", URL: serve(t, src, testKey)}}, testKey, time.Second, nil)
	series, samples, err := count(t, c, 2000, 5000) // inclusive: 4 samples each
	if err != nil || series != 5 || samples != 20 || src.ws.Load() != "ws-1" {
		t.Fatalf("got %d series, %d samples, workspace %v, err %v; want 5, 20, ws-1", series, samples, src.ws.Load(), err)
	}
	q, err := c.Querier(context.Background(), "ws-1", 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	names, _, err := q.LabelNames(context.Background(), nil)
	if err != nil || strings.Join(names, ",") != "__name__,i" {
		t.Fatalf("label names %v, %v", names, err)
	}
	vals, _, err := q.LabelValues(context.Background(), "i", &storage.LabelHints{Limit: 2}, labels.MustNewMatcher(labels.MatchRegexp, "i", "[1-4]"))
	if err != nil || strings.Join(vals, ",") != "1,2" {
		t.Fatalf("label values %v, %v; want 1,2", vals, err)
	}
}

// A sharded query's select asks the ingester for its shard's series only: each shard's
// answer holds the series of that shard, and the shards together all of them. An older
// ingester, which ignores the shard and answers every series, is filtered by the client;
// a current one's answer says its shard and is read as it is.
func TestShardedSelect(t *testing.T) {
	src := newSource(t)
	for _, older := range []bool{false, true} {
		t.Run(fmt.Sprintf("older=%v", older), func(t *testing.T) {
			h := NewHandler(src, testKey, nil)
			var (
				mu   sync.Mutex
				said []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if older {
					r.URL.RawQuery = ""
				}
				h.ServeHTTP(headerSeen{w, func(hd http.Header) {
					mu.Lock()
					defer mu.Unlock()
					said = append(said, hd.Get(headerShard))
				}}, r)
			}))
			t.Cleanup(srv.Close)
			c := NewClient(members{{ID: "i1", URL: srv.URL}}, testKey, time.Second, nil)
			q, err := c.Querier(context.Background(), "ws-1", 0, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			const shards = 2
			total := 0
			for shard := range uint64(shards) {
				n := 0
				ss := q.Select(context.Background(), true, &storage.SelectHints{Start: 0, End: 10_000, ShardIndex: shard, ShardCount: shards},
					labels.MustNewMatcher(labels.MatchEqual, "__name__", "a"))
				for ss.Next() {
					if h := labels.StableHash(ss.At().Labels()); h%shards != shard {
						t.Errorf("shard %d answered %s, of shard %d", shard, ss.At().Labels(), h%shards)
					}
					n++
				}
				if err := ss.Err(); err != nil {
					t.Fatal(err)
				}
				if n == 0 || n == 5 {
					t.Errorf("shard %d: %d of 5 series", shard, n)
				}
				total += n
			}
			if total != 5 {
				t.Errorf("the shards answered %d series, want 5", total)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"0/2", "1/2"}; !older && !slices.Equal(said, want) {
				t.Errorf("the answers said shards %q, want %q", said, want)
			}
		})
	}
}

// headerSeen calls seen with the headers of the answer as it is sent.
type headerSeen struct {
	http.ResponseWriter
	seen func(http.Header)
}

func (w headerSeen) WriteHeader(code int) {
	w.seen(w.Header())
	w.ResponseWriter.WriteHeader(code)
}

// An ingester that does not answer is passed over; one that refuses the request (4xx)
// is not: the others would refuse it too.
func TestNextIngesterOnFailure(t *testing.T) {
	src := newSource(t)
	live := serve(t, src, testKey)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	c := NewClient(members{{ID: "down", URL: down.URL}, {ID: "failing", URL: failing.URL}, {ID: "live", URL: live}}, testKey, time.Second, nil)
	if series, _, err := count(t, c, 0, 10_000); err != nil || series != 5 {
		t.Fatalf("got %d series, err %v; want the live ingester's 5", series, err)
	}

	wrong := NewClient(members{{ID: "live", URL: live}, {ID: "live-too", URL: live}}, "not-the-key", time.Second, nil)
	_, _, err := count(t, wrong, 0, 10_000)
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "live-too") || errors.Is(err, ErrNoIngester) {
		t.Fatalf("wrong key: %v; want a 401 from the first ingester only", err)
	}

	none := NewClient(members{{ID: "down", URL: down.URL}}, testKey, time.Second, nil)
	if _, _, err := count(t, none, 0, 10_000); !errors.Is(err, ErrNoIngester) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("no ingester up: %v", err)
	}
	if _, err := NewClient(members{}, testKey, time.Second, nil).Querier(context.Background(), "ws-1", 0, 1); !errors.Is(err, ErrNoIngester) {
		t.Fatalf("no ingester registered: %v", err)
	}
}

// A server without a key refuses everyone, even a caller sending an empty token.
func TestNoKeyNoAccess(t *testing.T) {
	url := serve(t, newSource(t), "")
	for _, key := range []string{"", "anything"} {
		c := NewClient(members{{ID: "i1", URL: url}}, key, time.Second, nil)
		if _, _, err := count(t, c, 0, 10_000); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("key %q: %v; want 401", key, err)
		}
	}
}

// A stream the ingester cuts short is an error, not a shorter answer.
func TestStreamCutShortIsAnError(t *testing.T) {
	src := newSource(t)
	src.fail = true
	c := NewClient(members{{ID: "i1", URL: serve(t, src, testKey)}}, testKey, time.Second, nil)
	series, _, err := count(t, c, 0, 10_000)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got %d series and err %v; want the ingester's error", series, err)
	}
}

// splitSource serves the series a{i} of a real TSDB whose i is in keep.
type splitSource struct {
	*tsdbSource
	keep string
}

func (s splitSource) ChunkQuerier(ctx context.Context, ws string, mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := s.tsdbSource.ChunkQuerier(ctx, ws, mint, maxt)
	if err != nil {
		return nil, err
	}
	return keepQuerier{q, s.keep}, nil
}

type keepQuerier struct {
	storage.ChunkQuerier
	keep string
}

func (q keepQuerier) Select(ctx context.Context, sorted bool, h *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return q.ChunkQuerier.Select(ctx, sorted, h, append(ms, labels.MustNewMatcher(labels.MatchRegexp, "i", "["+q.keep+"]"))...)
}

func (q keepQuerier) LabelValues(ctx context.Context, name string, h *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.ChunkQuerier.LabelValues(ctx, name, h, append(ms, labels.MustNewMatcher(labels.MatchRegexp, "i", "["+q.keep+"]"))...)
}

// With the partitions shared among ingesters, a query asks enough of them to cover every
// partition and merges their answers; an ingester that does not answer is replaced by
// others answering for its partitions.
func TestPartitionsCoveredAndMerged(t *testing.T) {
	src := newSource(t)
	low := serve(t, splitSource{src, "0-2"}, testKey)  // partition 0: a{i=0..2}
	high := serve(t, splitSource{src, "2-4"}, testKey) // partition 1: a{i=2..4}, i=2 in both
	all := serve(t, src, testKey)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	c := NewClient(members{{ID: "low", URL: low, Partitions: []int{0}}, {ID: "high", URL: high, Partitions: []int{1}}}, testKey, time.Second, nil)
	wantAll(t, c, "the series of both, each once")

	// The owner of partition 1 in this zone is down: the other zone's ingester, which
	// answers for both, replaces it.
	c = NewClient(members{{ID: "low", URL: low, Partitions: []int{0}}, {ID: "high-down", URL: down.URL, Partitions: []int{1}},
		{ID: "other-zone", URL: all, Partitions: []int{0, 1}}}, testKey, time.Second, nil)
	if series, samples, err := count(t, c, 0, 10_000); err != nil || series != 5 || samples != 50 {
		t.Fatalf("got %d series, %d samples, err %v; want 5 and 50", series, samples, err)
	}

	// Nobody answers for partition 1.
	c = NewClient(members{{ID: "low", URL: low, Partitions: []int{0}}, {ID: "high-down", URL: down.URL, Partitions: []int{1}}}, testKey, time.Second, nil)
	if _, _, err := count(t, c, 0, 10_000); !errors.Is(err, ErrNoIngester) || !strings.Contains(err.Error(), "partitions [1]") {
		t.Fatalf("partition 1 uncovered: %v", err)
	}
}

// serveAnswering serves src saying, in every answer, that it answers for parts.
func serveAnswering(t *testing.T, src Source, parts ...int) string {
	t.Helper()
	srv := httptest.NewServer(NewHandler(src, testKey, nil).Answering(func() []int { return parts }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// An ingester still listed with a partition it gave up a moment ago says so in its
// answer: the querier asks another ingester for that partition, or fails when none
// answers for it, rather than answer without that partition's newest samples.
func TestAnswersSayTheirPartitions(t *testing.T) {
	src := newSource(t)
	// "low" is listed with both partitions but now answers for partition 0 only.
	low := serveAnswering(t, splitSource{src, "0-2"}, 0)
	high := serveAnswering(t, splitSource{src, "2-4"}, 1)
	stale := members{{ID: "low", URL: low, Partitions: []int{0, 1}}, {ID: "high", URL: high, Partitions: []int{1}}}
	c := NewClient(stale, testKey, time.Second, nil)
	wantAll(t, c, "both ingesters asked")

	// Nobody else is listed for partition 1: the query fails.
	c = NewClient(members{{ID: "low", URL: low, Partitions: []int{0, 1}}}, testKey, time.Second, nil)
	if _, _, err := count(t, c, 0, 10_000); !errors.Is(err, ErrNoIngester) || !strings.Contains(err.Error(), "partitions [1]") {
		t.Fatalf("partition 1 given up: %v", err)
	}

	// An ingester that does not say (an older one) is taken at its listing.
	c = NewClient(members{{ID: "all", URL: serve(t, src, testKey), Partitions: []int{0, 1}}}, testKey, time.Second, nil)
	if series, _, err := count(t, c, 0, 10_000); err != nil || series != 5 {
		t.Fatalf("an ingester that does not say its partitions: %d series, %v", series, err)
	}
}
