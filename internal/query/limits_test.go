package query

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/storage"
)

// A selector alone stops at exactly the first series over the budget, although the
// budget is counted in batches; selectors reading at once (shards) all count, and the
// request fails once their total passes the limit.
func TestSeriesBudgetCountsInBatches(t *testing.T) {
	selectOf := func(budget *seriesBudget, n int) storage.SeriesSet {
		var selects atomic.Int32
		return limitQuerier(selectCounter{n: n, selects: &selects}, budget).Select(context.Background(), false, nil)
	}
	var over *seriesLimitError

	for _, c := range []struct {
		name        string
		limit, n    int
		want        int // series read
		wantOver    bool
		wantCounted int64
	}{
		{name: "under", limit: 1000, n: 300, want: 300, wantCounted: 300},
		{name: "at the limit", limit: 100, n: 100, want: 100, wantCounted: 100},
		{name: "over, after a batch", limit: 100, n: 150, want: 100, wantOver: true, wantCounted: 101},
		{name: "over, in the first batch", limit: 10, n: 50, want: 10, wantOver: true, wantCounted: 11},
	} {
		t.Run(c.name, func(t *testing.T) {
			budget := &seriesBudget{limit: c.limit}
			set := selectOf(budget, c.n)
			got := 0
			for set.Next() {
				got++
			}
			err := set.Err()
			if got != c.want || errors.As(err, &over) != c.wantOver {
				t.Fatalf("read %d series, error %v; want %d, over the limit %v", got, err, c.want, c.wantOver)
			}
			if n := budget.fetched(); n != c.wantCounted {
				t.Fatalf("budget counted %d series, want %d", n, c.wantCounted)
			}
		})
	}

	t.Run("shards together", func(t *testing.T) {
		budget := &seriesBudget{limit: 100}
		a, b := selectOf(budget, 60), selectOf(budget, 60)
		for an, bn := true, true; an || bn; {
			if an {
				an = a.Next()
			}
			if bn {
				bn = b.Next()
			}
		}
		if !errors.As(a.Err(), &over) && !errors.As(b.Err(), &over) {
			t.Fatalf("120 series read under a budget of 100 without an error: %v, %v", a.Err(), b.Err())
		}
		if n := budget.fetched(); n != 120 {
			t.Fatalf("budget counted %d series, want 120", n)
		}
	})
}
