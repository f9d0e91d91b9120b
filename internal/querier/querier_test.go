package querier

import (
	"context"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
)

type call struct{ mint, maxt int64 }

type fakeIngester struct {
	calls []call
	local bool
}

func (f *fakeIngester) Querier(_ context.Context, _ string, mint, maxt int64) (storage.Querier, error) {
	f.calls = append(f.calls, call{mint, maxt})
	return storage.NoopQuerier(), nil
}

type fakeLocal struct{ fakeIngester }

func (f *fakeLocal) LocalBlocks(string) func(ulid.ULID) bool {
	f.local = true
	return func(ulid.ULID) bool { return true }
}

type fakeStore struct {
	calls    []call
	skipping bool
}

func (f *fakeStore) QuerierSkipping(_ context.Context, _ string, mint, maxt int64, local func(ulid.ULID) bool) (storage.Querier, error) {
	f.calls = append(f.calls, call{mint, maxt})
	f.skipping = local != nil
	return storage.NoopQuerier(), nil
}

type retention time.Duration

func (r retention) Retention(context.Context, string) (time.Duration, bool, error) {
	return time.Duration(r), r > 0, nil
}

// Who is asked for what, by time.
func TestWindows(t *testing.T) {
	now := time.UnixMilli(100 * 3600_000)
	h := int64(3600_000)
	nowMs := now.UnixMilli()
	for _, c := range []struct {
		name            string
		cfg             Config
		ret             time.Duration
		mint, maxt      int64
		wantIng, wantSt []call
		wantSkip        bool
	}{
		{"single process: both for everything, local blocks skipped", Config{}, 0, 0, nowMs,
			[]call{{0, nowMs}}, []call{{0, nowMs}}, true},
		{"retention cuts the start", Config{}, 10 * time.Hour, 0, nowMs,
			[]call{{nowMs - 10*h, nowMs}}, []call{{nowMs - 10*h, nowMs}}, true},
		{"split: recent from the ingesters, older from the store", Config{QueryIngestersWithin: 13 * time.Hour, QueryStoreAfter: 12 * time.Hour}, 0, 0, nowMs,
			[]call{{nowMs - 13*h, nowMs}, {nowMs - 13*h, nowMs}}, []call{{0, nowMs - 12*h}}, false},
		{"split, recent query: ingesters only", Config{QueryIngestersWithin: 13 * time.Hour, QueryStoreAfter: 12 * time.Hour}, 0, nowMs - h, nowMs,
			[]call{{nowMs - h, nowMs}, {nowMs - h, nowMs}}, nil, false},
		{"split, old query: store only", Config{QueryIngestersWithin: 13 * time.Hour, QueryStoreAfter: 12 * time.Hour}, 0, 0, nowMs - 20*h,
			nil, []call{{0, nowMs - 20*h}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			ing := &fakeLocal{}
			remote := &fakeIngester{}
			st := &fakeStore{}
			ingesters := []Ingester{ing}
			if c.cfg.QueryIngestersWithin > 0 {
				ingesters = append(ingesters, remote)
			}
			q := New(c.cfg, Deps{Ingesters: ingesters, Store: st, Retentions: retention(c.ret), Now: func() time.Time { return now }})
			sq, err := q.Querier(context.Background(), "ws-1", c.mint, c.maxt)
			if err != nil {
				t.Fatal(err)
			}
			_ = sq.Close()
			got := append(append([]call{}, ing.calls...), remote.calls...)
			if len(got) != len(c.wantIng) || (len(got) > 0 && got[0] != c.wantIng[0]) || (len(got) > 1 && got[1] != c.wantIng[1]) {
				t.Errorf("ingesters asked for %v, want %v", got, c.wantIng)
			}
			if len(st.calls) != len(c.wantSt) || (len(st.calls) > 0 && st.calls[0] != c.wantSt[0]) {
				t.Errorf("store asked for %v, want %v", st.calls, c.wantSt)
			}
			if len(st.calls) > 0 && st.skipping != c.wantSkip {
				t.Errorf("store skips local blocks: %v, want %v", st.skipping, c.wantSkip)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{QueryIngestersWithin: 13 * time.Hour, QueryStoreAfter: 12 * time.Hour}, true},
		{Config{QueryIngestersWithin: 13 * time.Hour}, true},
		{Config{QueryStoreAfter: 12 * time.Hour}, true},
		{Config{QueryIngestersWithin: 12 * time.Hour, QueryStoreAfter: 12 * time.Hour}, false},
		{Config{QueryIngestersWithin: -time.Hour}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate() = %v", c.cfg, err)
		}
	}
}
