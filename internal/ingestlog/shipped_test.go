package ingestlog

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/testutil"
)

// replayIngester records the replay calls a consumer makes.
type replayIngester struct {
	mu        sync.Mutex
	from      map[int]int64 // partitions being replayed
	started   map[int]int64 // every ReplayFrom
	unshipped int64
}

func (r *replayIngester) UnshippedFrom(time.Time) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unshipped, true
}

func (r *replayIngester) ReplayFrom(p int, mint int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from[p], r.started[p] = mint, mint
}

func (r *replayIngester) ReplayDone(p int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.from, p)
}

func (r *replayIngester) replaying() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.from)
}

// A consumer without checkpoints starts each partition at its shipped mark (the latest
// of all zones' marks), not at the log's beginning, lets the ingester take old samples
// until it has caught up, and publishes marks from what it read and what the ingester
// has not shipped.
func TestReplayFromShippedMark(t *testing.T) {
	cfg := testConfig(t)
	l := openLog(t, cfg)
	ctx := context.Background()
	pub := NewPublisher(l)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	if _, err := pub.Push(ctx, "ws-1", request(t, 1, names...), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	// Every batch stored so far is before the mark, every later one after it.
	mark := time.Now()
	testutil.Eventually(t, 5*time.Second, "the clock to move past the mark", func() bool { return time.Now().After(mark) })
	if _, err := pub.Push(ctx, "ws-1", request(t, 2, names...), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	zoneA, zoneB := NewShippedMarks(l, "zone-a"), NewShippedMarks(l, "zone-b")
	for p := range cfg.Partitions {
		if err := zoneA.Publish(ctx, p, mark); err != nil {
			t.Fatal(err)
		}
		if err := zoneB.Publish(ctx, p, mark.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok, err := zoneB.Mark(ctx, 1); err != nil || !ok || !got.Equal(mark) {
		t.Fatalf("Mark = %s, %v, %v; want the latest of the zones, %s", got, ok, err, mark)
	}

	checkpoints := t.TempDir()
	rec := &recorder{}
	ing := &replayIngester{from: map[int]int64{}, started: map[int]int64{}, unshipped: math.MaxInt64}
	c, stop := runReplayConsumer(t, l, checkpoints, rec, ing)
	checkStored(t, rec, names, 2)
	if n := ing.replaying(); n != 0 {
		t.Fatalf("%d partitions still replaying after catching up", n)
	}
	for p := range cfg.Partitions {
		if ing.started[p] != mark.UnixMilli() {
			t.Fatalf("partition %d replayed from %d, want the mark %d", p, ing.started[p], mark.UnixMilli())
		}
	}

	// Marks: the last batch read, or older samples the ingester has not shipped.
	c.publishMarks(ctx)
	for p := range cfg.Partitions {
		m, _, err := zoneA.Mark(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if m.Before(mark) || m.After(time.Now()) {
			t.Fatalf("partition %d: mark %s, want from the batches read, after %s", p, m, mark)
		}
	}
	old := mark.Add(-30 * time.Minute)
	ing.mu.Lock()
	ing.unshipped = old.UnixMilli()
	ing.mu.Unlock()
	c.markMu.Lock()
	clear(c.published) // as after a restart: marks may move back
	c.markMu.Unlock()
	c.publishMarks(ctx)
	kv, err := l.shippedKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p := range cfg.Partitions {
		e, err := kv.Get(ctx, shippedKey(p, "zone-c"))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(old.Truncate(time.Millisecond).UnixNano()); string(e.Value()) != want {
			t.Fatalf("partition %d: zone-c's mark %s, want the oldest unshipped sample %s", p, e.Value(), want)
		}
	}
	stop()

	// Checkpoints older than the mark: reading starts at the mark, past batches of
	// before it.
	if _, err := pub.Push(ctx, "ws-1", request(t, 3, names...), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	mark = time.Now()
	testutil.Eventually(t, 5*time.Second, "the clock to move past the mark", func() bool { return time.Now().After(mark) })
	if _, err := pub.Push(ctx, "ws-1", request(t, 4, names...), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	for p := range cfg.Partitions {
		if err := zoneA.Publish(ctx, p, mark); err != nil {
			t.Fatal(err)
		}
	}
	rec = &recorder{}
	_, stop = runReplayConsumer(t, l, checkpoints, rec, ing)
	checkStored(t, rec, names, 4)
	stop()

	// Checkpoints past the marks: reading goes on after them.
	if _, err := pub.Push(ctx, "ws-1", request(t, 5, names...), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	rec = &recorder{}
	_, stop = runReplayConsumer(t, l, checkpoints, rec, ing)
	defer stop()
	checkStored(t, rec, names, 5)
}

// runReplayConsumer runs a consumer replaying from marks into rec and ing until every
// partition is caught up; stop stops it.
func runReplayConsumer(t *testing.T, l *Log, checkpoints string, rec *recorder, ing *replayIngester) (c *Consumer, stop func()) {
	t.Helper()
	c = NewConsumer(l, checkpoints, rec, nil, prometheus.NewRegistry())
	c.Replay(Replay{Marks: NewShippedMarks(l, "zone-c"), Ingester: ing})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	testutil.Eventually(t, 20*time.Second, "every partition caught up", func() bool {
		for p := range l.cfg.Partitions {
			if !c.CaughtUpOn(p) {
				return false
			}
		}
		return true
	})
	return c, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// checkStored fails unless rec holds exactly the samples of request(t, ts, names...)
// of workspace ws-1.
func checkStored(t *testing.T, rec *recorder, names []string, ts int64) {
	t.Helper()
	got := rec.all()
	slices.Sort(got)
	var want []string
	for i, n := range names {
		want = append(want, fmt.Sprintf("ws-1|{__name__=%q}||%d=%d", n, ts, i))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stored\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
