package ingester

import (
	"context"
	"errors"
	"flag"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/usage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeWorkspaces map[string]meta.Workspace

func (f fakeWorkspaces) GetWorkspace(_ context.Context, id string) (meta.Workspace, error) {
	if ws, ok := f[id]; ok {
		return ws, nil
	}
	return meta.Workspace{}, meta.ErrNotFound
}

func defaultLimits(t testing.TB, mod func(*limits.Limits)) *limits.Overrides {
	t.Helper()
	var cfg limits.Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	if mod != nil {
		mod(&cfg.Limits)
	}
	o, err := limits.NewOverrides(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func newIngester(t testing.TB, cfg Config, lim *limits.Overrides, ws fakeWorkspaces) *Ingester {
	t.Helper()
	return newIngesterWithBucket(t, cfg, lim, ws, nil)
}

func newIngesterWithBucket(t testing.TB, cfg Config, lim *limits.Overrides, ws fakeWorkspaces, bkt objstore.Bucket) *Ingester {
	t.Helper()
	if cfg.TSDB.BlockRange == 0 {
		cfg.TSDB.BlockRange = 2 * time.Hour
	}
	if cfg.ActiveSeriesWindow == 0 {
		cfg.ActiveSeriesWindow = 2 * time.Hour
	}
	if cfg.TSDB.LocalRetention == 0 {
		cfg.TSDB.LocalRetention = 13 * time.Hour
	}
	if cfg.TSDB.ShipInterval == 0 {
		cfg.TSDB.ShipInterval = time.Minute
	}
	i, err := New(cfg, t.TempDir(), lim, ws, bkt, usage.New(prometheus.NewRegistry()), nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = i.closeAll() })
	return i
}

var decoder = remotewrite.NewDecoder(remotewrite.Options{})

// request builds a decoded v1 request; each series is name + label pairs, with one
// sample (t, v).
func request(t *testing.T, ts int64, v float64, series ...[]string) *remotewrite.Request {
	t.Helper()
	wr := &prompb.WriteRequest{}
	for _, s := range series {
		var ls []prompb.Label
		ls = append(ls, prompb.Label{Name: "__name__", Value: s[0]})
		for k := 1; k+1 < len(s); k += 2 {
			ls = append(ls, prompb.Label{Name: s[k], Value: s[k+1]})
		}
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: ts}}})
	}
	return testutil.DecodeV1(t, wr)
}

func count(t *testing.T, i *Ingester, ws string) map[string]int {
	t.Helper()
	q, err := i.Querier(context.Background(), ws, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]int{}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			out[ss.At().Labels().String()]++
		}
	}
	return out
}

func TestPushAndActiveSeries(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, nil), ws)
	now := time.Unix(1_800_000_000, 0)
	i.now = func() time.Time { return now }
	ctx := context.Background()
	base := now.UnixMilli()
	res, err := i.Push(ctx, "ws-1", request(t, base, 1, []string{"a"}, []string{"b", "x", "1"}), ingest.Options{})
	if err != nil || res.Samples != 2 {
		t.Fatalf("push: %+v %v", res, err)
	}
	// The same series again hit the cache; the count stays 2.
	if res, err := i.Push(ctx, "ws-1", request(t, base+1000, 2, []string{"a"}, []string{"b", "x", "1"}), ingest.Options{}); err != nil || res.Samples != 2 {
		t.Fatalf("second push: %+v %v", res, err)
	}
	if n := i.ActiveSeries("ws-1"); n != 2 {
		t.Fatalf("active series %d, want 2", n)
	}
	// Two hours later, a is still sent and b is not: b is no longer active.
	now = now.Add(90 * time.Minute)
	i.Push(ctx, "ws-1", request(t, base+2000, 3, []string{"a"}), ingest.Options{})
	now = now.Add(31 * time.Minute)
	i.housekeeping(ctx)
	if n := i.ActiveSeries("ws-1"); n != 1 {
		t.Fatalf("active series after the window %d, want 1", n)
	}
	if got := count(t, i, "ws-1"); got[`{__name__="a"}`] != 3 || got[`{__name__="b", x="1"}`] != 2 {
		t.Fatalf("stored: %v", got)
	}
}

func TestDropLabelAndAliasKeys(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, func(l *limits.Limits) { l.MaxActiveSeries = 1 }), ws)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	opts := ingest.Options{DropLabel: "__replica__"}
	// Two replicas' encodings of one series: stored once, counted once, and the limit of
	// one active series does not refuse the second encoding.
	if res, err := i.Push(ctx, "ws-1", request(t, now, 1, []string{"m", "cluster", "c", "__replica__", "r1"}), opts); err != nil || res.Limited != nil || res.Samples != 1 {
		t.Fatalf("first replica: %+v %v", res, err)
	}
	if res, err := i.Push(ctx, "ws-1", request(t, now+1, 2, []string{"m", "cluster", "c", "__replica__", "r2"}), opts); err != nil || res.Limited != nil || res.Samples != 1 {
		t.Fatalf("second replica: %+v %v", res, err)
	}
	if n := i.ActiveSeries("ws-1"); n != 1 {
		t.Fatalf("active series %d, want 1", n)
	}
	if got := count(t, i, "ws-1"); len(got) != 1 || got[`{__name__="m", cluster="c"}`] != 2 {
		t.Fatalf("stored: %v", got)
	}
	res, err := i.Push(ctx, "ws-1", request(t, now+2, 3, []string{"other"}), opts)
	if err != nil || res.Limited == nil || res.LimitedQuota != usage.QuotaActiveSeries {
		t.Fatalf("a genuinely new series must be refused: %+v %v", res, err)
	}
}

// A cached series ref the head has since dropped falls back to the labels.
func TestStaleRefAfterHeadGC(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{TSDB: TSDBConfig{BlockRange: time.Minute}}, defaultLimits(t, func(l *limits.Limits) { l.OutOfOrderTimeWindow = 0 }), ws)
	ctx := context.Background()
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	if _, err := i.Push(ctx, "ws-1", request(t, t0, 1, []string{"gone"}), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	// Another series moves the head forward; compaction drops "gone" from the head.
	for k := int64(1); k <= 5; k++ {
		if _, err := i.Push(ctx, "ws-1", request(t, t0+k*60_000, 1, []string{"ticker"}), ingest.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := i.get(ctx, "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	u.release()
	res, err := i.Push(ctx, "ws-1", request(t, t0+5*60_000+1, 2, []string{"gone"}), ingest.Options{})
	if err != nil || res.Samples != 1 || res.Invalid != nil {
		t.Fatalf("push with a stale cached ref: %+v %v", res, err)
	}
	if got := count(t, i, "ws-1"); got[`{__name__="gone"}`] != 2 {
		t.Fatalf("stored: %v", got)
	}
}

func TestSampleErrorsAreClassified(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, func(l *limits.Limits) { l.OutOfOrderTimeWindow = 0 }), ws)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	i.Push(ctx, "ws-1", request(t, now, 1, []string{"m"}), ingest.Options{})
	res, _ := i.Push(ctx, "ws-1", request(t, now, 2, []string{"m"}), ingest.Options{})
	if res.Invalid == nil || res.Samples != 0 {
		t.Fatalf("new value for timestamp: %+v", res)
	}
	if msg := res.Invalid.Error(); !contains(msg, "new-value-for-timestamp") || !contains(msg, `__name__="m"`) {
		t.Fatalf("message %q", msg)
	}
	res, _ = i.Push(ctx, "ws-1", request(t, now-1000, 2, []string{"m"}), ingest.Options{})
	if res.Invalid == nil || !contains(res.Invalid.Error(), "sample-out-of-order") {
		t.Fatalf("out of order: %+v", res)
	}
	// Identical duplicates are no-ops, not errors: the write path is replayable.
	res, _ = i.Push(ctx, "ws-1", request(t, now, 1, []string{"m"}), ingest.Options{})
	if res.Invalid != nil {
		t.Fatalf("identical duplicate refused: %v", res.Invalid)
	}
}

func TestOutOfOrderWindow(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, func(l *limits.Limits) { l.OutOfOrderTimeWindow = time.Minute }), ws)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	i.Push(ctx, "ws-1", request(t, now, 1, []string{"m"}), ingest.Options{})
	if res, _ := i.Push(ctx, "ws-1", request(t, now-30_000, 2, []string{"m"}), ingest.Options{}); res.Invalid != nil || res.Samples != 1 {
		t.Fatalf("30s out of order within a 60s window: %+v", res)
	}
	if res, _ := i.Push(ctx, "ws-1", request(t, now-120_000, 2, []string{"m"}), ingest.Options{}); res.Invalid == nil || !contains(res.Invalid.Error(), "sample-too-old") {
		t.Fatalf("120s out of order: %+v", res)
	}
	// Replaying the out-of-order sample stores it once.
	i.Push(ctx, "ws-1", request(t, now-30_000, 2, []string{"m"}), ingest.Options{})
	if got := count(t, i, "ws-1"); got[`{__name__="m"}`] != 2 {
		t.Fatalf("stored: %v", got)
	}
}

func TestLabelSetLimitsReconfigure(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1", Configuration: meta.Configuration{LimitsPerLabelSet: []meta.LimitsPerLabelSet{
		{LabelSet: map[string]string{"team": "a"}, MaxSeries: 1},
		{LabelSet: map[string]string{}, MaxSeries: 2},
	}}}}
	i := newIngester(t, Config{}, defaultLimits(t, nil), ws)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	push := func(ts int64, series ...[]string) ingest.Result {
		res, err := i.Push(ctx, "ws-1", request(t, ts, 1, series...), ingest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := push(now, []string{"m", "team", "a", "i", "1"}); res.Limited != nil {
		t.Fatal(res.Limited)
	}
	if res := push(now, []string{"m", "team", "a", "i", "2"}); res.LimitedQuota != usage.QuotaSeriesLabels {
		t.Fatalf("second team=a series: %+v", res)
	}
	// The default bucket (empty label set) takes series matching no other set.
	if res := push(now, []string{"m", "team", "b", "i", "1"}, []string{"m", "team", "b", "i", "2"}); res.Limited != nil {
		t.Fatal(res.Limited)
	}
	if res := push(now, []string{"m", "team", "c"}); res.LimitedQuota != usage.QuotaSeriesLabels {
		t.Fatalf("third default-bucket series: %+v", res)
	}
	// Raise team=a to 2 and re-send the known series so the counts rebuild.
	ws["ws-1"] = meta.Workspace{ID: "ws-1", Configuration: meta.Configuration{LimitsPerLabelSet: []meta.LimitsPerLabelSet{{LabelSet: map[string]string{"team": "a"}, MaxSeries: 2}}}}
	if err := i.Reconfigure(ctx, ws["ws-1"]); err != nil {
		t.Fatal(err)
	}
	push(now+1, []string{"m", "team", "a", "i", "1"})
	if res := push(now+1, []string{"m", "team", "a", "i", "2"}); res.Limited != nil {
		t.Fatalf("after raising the limit: %v", res.Limited)
	}
	if res := push(now+2, []string{"m", "team", "a", "i", "3"}); res.LimitedQuota != usage.QuotaSeriesLabels {
		t.Fatalf("third team=a series after raising to 2: %+v", res)
	}
}

func TestDeprovision(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, nil), ws)
	ctx := context.Background()
	i.Push(ctx, "ws-1", request(t, time.Now().UnixMilli(), 1, []string{"m"}), ingest.Options{})
	if err := i.Deprovision(ctx, "ws-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Push(ctx, "ws-1", request(t, time.Now().UnixMilli(), 1, []string{"m"}), ingest.Options{}); err != ingest.ErrWorkspaceDeleted {
		t.Fatalf("push after deprovision: %v", err)
	}
}

func TestIdleClose(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{IdleTimeout: time.Minute}, defaultLimits(t, nil), ws)
	now := time.Now()
	i.now = func() time.Time { return now }
	ctx := context.Background()
	i.Push(ctx, "ws-1", request(t, now.UnixMilli(), 1, []string{"m"}), ingest.Options{})
	now = now.Add(2 * time.Minute)
	i.housekeeping(ctx)
	if i.openDB("ws-1") != nil {
		t.Fatal("idle TSDB still open")
	}
	// It reopens on the next use with its data.
	if got := count(t, i, "ws-1"); got[`{__name__="m"}`] != 1 {
		t.Fatalf("after reopening: %v", got)
	}
}

func TestConcurrentPushes(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}, "ws-2": {ID: "ws-2"}}
	i := newIngester(t, Config{}, defaultLimits(t, nil), ws)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := []string{"ws-1", "ws-2"}[w%2]
			for k := range 50 {
				req := request(t, now+int64(k), float64(k), []string{"m", "w", string(rune('a' + w))}, []string{"shared"})
				if _, err := i.Push(ctx, id, req, ingest.Options{}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if n := i.ActiveSeries("ws-1"); n != 5 {
		t.Fatalf("ws-1 active series %d, want 5", n)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// After a restart, Run opens the TSDB of every workspace on disk (replaying its WAL)
// without waiting for a request to ask for it.
func TestRunOpensTSDBsAtStart(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}, "ws-2": {ID: "ws-2"}}
	lim := defaultLimits(t, nil)
	i := newIngester(t, Config{}, lim, ws)
	ctx := context.Background()
	for _, w := range []string{"ws-1", "ws-2"} {
		if _, err := i.Push(ctx, w, request(t, time.Now().UnixMilli(), 1, []string{"m"}), ingest.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := i.closeAll(); err != nil {
		t.Fatal(err)
	}
	j := newIngester(t, Config{TSDB: TSDBConfig{Dir: i.dir}}, lim, ws)
	if j.openDB("ws-1") != nil || j.openDB("ws-2") != nil {
		t.Fatal("TSDBs open before Run")
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- j.Run(rctx) }()
	testutil.Eventually(t, 30*time.Second, "Run to open the TSDBs", func() bool {
		return j.openDB("ws-1") != nil && j.openDB("ws-2") != nil
	})
	if got := count(t, j, "ws-2"); got[`{__name__="m"}`] != 1 {
		t.Fatalf("ws-2 after restart: %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Once stopped, the ingester refuses writes and reads instead of opening a TSDB again
// behind the ones it closed.
func TestStoppedIngesterRefusesWork(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}, "ws-2": {ID: "ws-2"}}
	i := newIngester(t, Config{}, defaultLimits(t, nil), ws)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- i.Run(ctx) }()
	now := time.Now().UnixMilli()
	if _, err := i.Push(context.Background(), "ws-1", request(t, now, 1, []string{"m"}), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ws-1", "ws-2"} { // open before the stop, and never opened
		if _, err := i.Push(context.Background(), id, request(t, now+1, 2, []string{"m"}), ingest.Options{}); !errors.Is(err, ingest.ErrStopped) {
			t.Errorf("push to %s after the stop: %v, want ingest.ErrStopped", id, err)
		}
		if _, err := i.Querier(context.Background(), id, 0, now); !errors.Is(err, ingest.ErrStopped) {
			t.Errorf("querier of %s after the stop: %v, want ingest.ErrStopped", id, err)
		}
		if i.openDB(id) != nil {
			t.Errorf("the TSDB of %s is open after the stop", id)
		}
	}
}
