package ingester

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/usage"
)

// The series of one request cannot take a workspace past a series limit: the request
// stores as many new series as the limit leaves room for and refuses the rest.
func TestSeriesLimitsAreExactWithinARequest(t *testing.T) {
	for _, c := range []struct {
		name   string
		limits func(*limits.Limits)
		sets   []meta.LimitsPerLabelSet
		quota  string
	}{
		{"per workspace", func(l *limits.Limits) { l.MaxActiveSeries = 3 }, nil, usage.QuotaActiveSeries},
		{"per metric", func(l *limits.Limits) { l.MaxActiveSeriesPerMetric = 3 }, nil, usage.QuotaSeriesMetric},
		{"per label set", nil, []meta.LimitsPerLabelSet{{LabelSet: map[string]string{"team": "a"}, MaxSeries: 3}}, usage.QuotaSeriesLabels},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws := fakeWorkspaces{"ws-1": {ID: "ws-1", Configuration: meta.Configuration{LimitsPerLabelSet: c.sets}}}
			i := newIngester(t, Config{}, defaultLimits(t, c.limits), ws)
			var series [][]string
			for k := range 5 {
				series = append(series, []string{"m", "team", "a", "i", fmt.Sprint(k)})
			}
			res, err := i.Push(context.Background(), "ws-1", request(t, time.Now().UnixMilli(), 1, series...), ingest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Samples != 3 || res.LimitedQuota != c.quota {
				t.Fatalf("stored %d samples, limited by %q (%v); want 3 and %q", res.Samples, res.LimitedQuota, res.Limited, c.quota)
			}
			if n := i.ActiveSeries("ws-1"); n != 3 {
				t.Fatalf("%d active series, want 3", n)
			}
			if got := count(t, i, "ws-1"); len(got) != 3 {
				t.Fatalf("%d series stored, want 3: %v", len(got), got)
			}
		})
	}
}

// Nor can concurrent requests: eight writers racing with new series end at the limit,
// not past it.
func TestSeriesLimitIsExactUnderConcurrentRequests(t *testing.T) {
	const limit, writers, requests, perRequest = 50, 8, 5, 4
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, func(l *limits.Limits) { l.MaxActiveSeries = limit }), ws)
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := 0
	for w := range writers {
		wg.Go(func() {
			for r := range requests {
				var series [][]string
				for k := range perRequest {
					series = append(series, []string{"m", "w", fmt.Sprint(w), "s", fmt.Sprint(r*perRequest + k)})
				}
				res, err := i.Push(context.Background(), "ws-1", request(t, now, 1, series...), ingest.Options{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				stored += res.Samples
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if stored != limit {
		t.Errorf("%d new series stored by %d racing writers, want the limit %d", stored, writers, limit)
	}
	if n := i.ActiveSeries("ws-1"); n != limit {
		t.Errorf("%d active series, want %d", n, limit)
	}
	if got := count(t, i, "ws-1"); len(got) != limit {
		t.Errorf("%d series in the TSDB, want %d", len(got), limit)
	}
}

// An ingester that holds a share of a workspace's series (its partitions of the ingest
// log) holds them to that share of the series limits, rounded up.
func TestSeriesLimitsScaleToTheIngestersShare(t *testing.T) {
	ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
	i := newIngester(t, Config{}, defaultLimits(t, func(l *limits.Limits) { l.MaxActiveSeries, l.MaxActiveSeriesPerMetric = 10, 9 }), ws)
	owned := 1
	i.SetLimitShare(func() (int, int) { return owned, 4 }) // 10 × 1/4 → 3; 9 × 1/4 → 3
	var series [][]string
	for k := range 6 {
		series = append(series, []string{"m", "i", fmt.Sprint(k)})
	}
	now := time.Now().UnixMilli()
	res, err := i.Push(context.Background(), "ws-1", request(t, now, 1, series...), ingest.Options{})
	if err != nil || res.Samples != 3 || res.LimitedQuota != usage.QuotaActiveSeries {
		t.Fatalf("stored %d samples, limited by %q, err %v; want 3 and the workspace limit", res.Samples, res.LimitedQuota, err)
	}
	owned = 2 // 10 × 2/4 → 5, 9 × 2/4 → 5
	res, err = i.Push(context.Background(), "ws-1", request(t, now+1000, 1, series...), ingest.Options{})
	if err != nil || res.Samples != 5 {
		t.Fatalf("with half the partitions stored %d samples (%v); want 5", res.Samples, err)
	}
	owned = 4 // all: the limits as they are
	res, err = i.Push(context.Background(), "ws-1", request(t, now+2000, 1, series...), ingest.Options{})
	if err != nil || res.Samples != 6 {
		t.Fatalf("with every partition stored %d samples (%v); want 6", res.Samples, err)
	}
}
