package ingesterapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
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
	ws   string // the last workspace asked for
}

func (s *tsdbSource) ChunkQuerier(_ context.Context, ws string, mint, maxt int64) (storage.ChunkQuerier, error) {
	s.ws = ws
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
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
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

type members []Member

func (m members) Ingesters() []Member { return m }

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

func TestSelectAndLabels(t *testing.T) {
	src := newSource(t)
	c := NewClient(members{{ID: "i1", URL: serve(t, src, testKey)}}, testKey, time.Second, nil)
	series, samples, err := count(t, c, 2000, 5000) // inclusive: 4 samples each
	if err != nil || series != 5 || samples != 20 || src.ws != "ws-1" {
		t.Fatalf("got %d series, %d samples, workspace %q, err %v; want 5, 20, ws-1", series, samples, src.ws, err)
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
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "live-too") {
		t.Fatalf("wrong key: %v; want a 401 from the first ingester only", err)
	}

	none := NewClient(members{{ID: "down", URL: down.URL}}, testKey, time.Second, nil)
	if _, _, err := count(t, none, 0, 10_000); err == nil || !strings.Contains(err.Error(), "no ingester answered") {
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
