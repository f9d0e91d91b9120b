package ingestlog

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/hatracker"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded NATS server's and client's package-level workers.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine"),
		goleak.IgnoreTopFunction("time.Sleep"),
	)
}

func testConfig(t *testing.T) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	c.Backend = BackendJetStream
	c.Partitions = 4
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// openLog opens a log on an embedded server with cfg, closed when the test ends.
func openLog(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(context.Background(), cfg, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// recorder stores what it is pushed, as strings "workspace|series|t=v".
type recorder struct {
	mu   sync.Mutex
	got  []string
	fail int // the next fail pushes answer an error
}

func (r *recorder) Push(_ context.Context, ws string, req *remotewrite.Request, opts ingest.Options) (ingest.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return ingest.Result{}, fmt.Errorf("disk full")
	}
	for i := range req.Series {
		s := &req.Series[i]
		for _, smp := range s.Samples {
			r.got = append(r.got, fmt.Sprintf("%s|%s|%s|%d=%g", ws, s.String(), opts.DropLabel, smp.Timestamp, smp.Value))
		}
	}
	return ingest.Result{}, nil
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func request(t *testing.T, ts int64, series ...string) *remotewrite.Request {
	t.Helper()
	wr := prompb.WriteRequest{}
	for i, s := range series {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: s}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(i)}},
		})
	}
	return testutil.DecodeV1(t, &wr)
}

// Every sample published is consumed once, in order per series, with its workspace and
// options; a consumer that stops and starts again goes on where it was.
func TestPublishConsume(t *testing.T) {
	l := openLog(t, testConfig(t))
	pub := NewPublisher(l)
	var want []string
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for ts := int64(1); ts <= 20; ts++ {
		for _, ws := range []string{"ws-1", "ws-2"} {
			res, err := pub.Push(context.Background(), ws, request(t, ts, names...), ingest.Options{DropLabel: "__replica__"})
			if err != nil || res.Samples != len(names) {
				t.Fatalf("Push = %+v, %v", res, err)
			}
			for i, n := range names {
				want = append(want, fmt.Sprintf("%s|{__name__=%q}|__replica__|%d=%d", ws, n, ts, i))
			}
		}
	}
	rec := &recorder{fail: 2}
	checkpoints := t.TempDir()
	consume := func(n int) { consumeAll(t, l, checkpoints, rec, n) }
	consume(len(want))
	got := rec.all()
	if len(got) != len(want) {
		t.Fatalf("consumed %d samples, want %d", len(got), len(want))
	}
	// Per series, in publishing order (partitions interleave).
	perSeries := func(lines []string) map[string][]string {
		out := map[string][]string{}
		for _, l := range lines {
			k := l[:strings.LastIndexByte(l, '|')] // workspace|series|drop label
			out[k] = append(out[k], l)
		}
		return out
	}
	if g, w := perSeries(got), perSeries(want); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("consumed per series\n%v\nwant\n%v", g, w)
	}

	// More batches, and a new consumer: only the new ones arrive.
	if _, err := pub.Push(context.Background(), "ws-1", request(t, 21, names...), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	consume(len(want) + len(names))
	if got := rec.all(); len(got) != len(want)+len(names) {
		t.Fatalf("after a restart of the consumer: %d samples, want %d", len(got), len(want)+len(names))
	}
}

// A batch larger than the message limit is split by series; a single series larger than
// it is refused with ErrTooLarge.
func TestSplitBatch(t *testing.T) {
	var names []string
	for i := range 100 {
		names = append(names, fmt.Sprintf("metric_with_a_long_name_%03d", i))
	}
	req := request(t, 1, names...)
	all := make([]int, len(req.Series))
	for i := range all {
		all[i] = i
	}
	newBuf := func() *[]byte { b := []byte{}; return &b }
	var raw []byte
	msgs, err := splitBatch("ws-1", req, ingest.Options{}, all, true, 300, &raw, newBuf)
	if err != nil || len(msgs) < 4 {
		t.Fatalf("split into %d messages, %v", len(msgs), err)
	}
	n := 0
	for _, m := range msgs {
		if len(*m) > 300 {
			t.Fatalf("message of %d bytes", len(*m))
		}
		batch, err := decodeMessage(nil, *m)
		if err != nil {
			t.Fatal(err)
		}
		var r remotewrite.Request
		if _, _, err := ingest.ParseBatch(&r, batch); err != nil {
			t.Fatal(err)
		}
		n += len(r.Series)
	}
	if n != len(names) {
		t.Fatalf("%d series in the parts, want %d", n, len(names))
	}
	if _, err := splitBatch("ws-1", req, ingest.Options{}, all, true, 20, &raw, newBuf); err == nil {
		t.Fatal("a series over the limit was not refused")
	}
}

// The JetStream store of HA elections is a compare-and-set store.
func TestHAStore(t *testing.T) {
	l := openLog(t, testConfig(t))
	s := NewHAStore(l)
	ctx := context.Background()
	if _, _, ok, err := s.Get(ctx, "ws-1", "c/1"); ok || err != nil {
		t.Fatalf("Get of nothing = %v, %v", ok, err)
	}
	e := hatracker.Entry{Workspace: "ws-1", Cluster: "c/1", Replica: "a", ReceivedAt: time.Unix(10, 0).UTC(), ElectedAt: time.Unix(10, 0).UTC()}
	rev, err := s.Put(ctx, e, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, e, 0); !errors.Is(err, hatracker.ErrConflict) {
		t.Fatalf("second create: %v, want a conflict", err)
	}
	got, grev, ok, err := s.Get(ctx, "ws-1", "c/1")
	if err != nil || !ok || grev != rev || got != e {
		t.Fatalf("Get = %+v, %d, %v, %v; want %+v, %d", got, grev, ok, err, e, rev)
	}
	e.Replica = "b"
	if _, err := s.Put(ctx, e, rev+100); !errors.Is(err, hatracker.ErrConflict) {
		t.Fatalf("update at a wrong revision: %v, want a conflict", err)
	}
	if _, err := s.Put(ctx, e, rev); err != nil {
		t.Fatal(err)
	}
	if got, _, _, _ := s.Get(ctx, "ws-1", "c/1"); got.Replica != "b" {
		t.Fatalf("after the update: %+v", got)
	}
}

// A distributor whose tracker watches the store learns of another's failover as it is
// written: the old replica's samples are dropped there too, without waiting for its
// next read of the store.
func TestHAStoreWatch(t *testing.T) {
	l := openLog(t, testConfig(t))
	s := NewHAStore(l)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := hatracker.DefaultConfig()
	mine, err := hatracker.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Second)
	// This distributor elected a, through the store.
	if d, err := mine.Decide("ws-1", "c", "a", t0); err != nil || !d.Changed {
		t.Fatalf("first election: %+v, %v", d, err)
	}
	if ok, err := mine.Confirm(ctx, s, "ws-1", "c", "a", t0); !ok || err != nil {
		t.Fatalf("confirming a: %v, %v", ok, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, mine.Observe) }()
	// Another distributor fails over to b once a is silent (written as it would).
	_, rev, _, err := s.Get(ctx, "ws-1", "c")
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(cfg.FailoverTimeout + time.Second)
	b := hatracker.Entry{Workspace: "ws-1", Cluster: "c", Replica: "b", ReceivedAt: later, ElectedAt: later}
	testutil.Eventually(t, 10*time.Second, "the watching tracker to hold b elected", func() bool {
		// Written again (a heartbeat of b) until the watch, started meanwhile, reports it.
		if n, err := s.Put(ctx, b, rev); err == nil {
			rev = n
			b.ReceivedAt = b.ReceivedAt.Add(time.Millisecond)
		}
		st, ok := mine.Elected("ws-1", "c")
		return ok && st.Replica == "b"
	})
	if d, err := mine.Decide("ws-1", "c", "a", later); err != nil || d.Action == hatracker.Accept {
		t.Fatalf("a sample of the old replica after the failover: %+v, %v; want it dropped", d, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// consumeAll runs a consumer of l with checkpoints in dir until rec holds n samples.
func consumeAll(t *testing.T, l *Log, dir string, rec *recorder, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := NewConsumer(l, dir, rec, nil, prometheus.NewRegistry())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("%d samples consumed", n), func() bool { return len(rec.all()) >= n })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// With several streams, each holds the subjects of its partitions (p mod N), batches go
// to their partition's stream, and a consumer reads them all, keeping a checkpoint per
// stream and partition.
func TestSeveralStreams(t *testing.T) {
	cfg := testConfig(t)
	cfg.Partitions, cfg.JetStream.Streams = 6, 3
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, cfg)
	ctx := context.Background()
	for i := range 3 {
		st, err := l.js.Stream(ctx, fmt.Sprintf("strata-ingest-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{fmt.Sprintf("strata-ingest.p.%d", i), fmt.Sprintf("strata-ingest.p.%d", i+3)}
		if got := st.CachedInfo().Config.Subjects; !slices.Equal(got, want) {
			t.Fatalf("stream %d has subjects %v, want %v", i, got, want)
		}
	}
	if _, err := l.js.Stream(ctx, "strata-ingest"); err == nil {
		t.Fatal("the single stream's name was made too")
	}
	pub := NewPublisher(l)
	var names []string
	for i := range 60 {
		names = append(names, fmt.Sprintf("m%02d", i))
	}
	for ts := int64(1); ts <= 3; ts++ {
		if _, err := pub.Push(ctx, "ws-1", request(t, ts, names...), ingest.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// Every partition's batches are in its stream, and only there (60 series leave no
	// partition empty).
	var msgs uint64
	for i := range 3 {
		st, err := l.js.Stream(ctx, l.streamName(i))
		if err != nil {
			t.Fatal(err)
		}
		for p := range 6 {
			_, err = st.GetLastMsgForSubject(ctx, l.subject(p))
			if in := err == nil; in != (i == p%3) {
				t.Fatalf("partition %d in stream %d: %v (%v)", p, i, in, err)
			}
		}
		msgs += st.CachedInfo().State.Msgs
	}
	if msgs != 3*6 {
		t.Fatalf("%d messages in the streams, want 18 (3 requests × 6 partitions)", msgs)
	}
	rec := &recorder{}
	dir := t.TempDir()
	consumeAll(t, l, dir, rec, 3*len(names))
	if got := len(rec.all()); got != 3*len(names) {
		t.Fatalf("consumed %d samples, want %d", got, 3*len(names))
	}
	for p := range 6 {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("strata-ingest-%d.partition-%d", p%3, p))); err != nil {
			t.Fatalf("checkpoint of partition %d: %v", p, err)
		}
	}
}

// The log's layout (partitions, streams) is fixed once its streams exist: a process
// configured otherwise refuses to start rather than publish or read where the others
// do not.
func TestStreamLayoutFixed(t *testing.T) {
	dir := t.TempDir()
	open := func(partitions, streams int) (*Log, error) {
		cfg := testConfig(t)
		cfg.Partitions, cfg.JetStream.Streams = partitions, streams
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return Open(context.Background(), cfg, dir, nil)
	}
	for _, c := range []struct{ made, partitions, streams int }{{1, 4, 2}, {1, 8, 1}, {2, 4, 1}, {2, 8, 2}, {2, 4, 4}} {
		t.Run(fmt.Sprintf("made_%d_streams/opened_%d_partitions_%d_streams", c.made, c.partitions, c.streams), func(t *testing.T) {
			dir = t.TempDir()
			l, err := open(4, c.made)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			if l, err := open(c.partitions, c.streams); !errors.Is(err, ErrLayout) {
				if err == nil {
					l.Close()
				}
				t.Fatalf("opened with another layout: %v, want ErrLayout", err)
			}
			l, err = open(4, c.made)
			if err != nil {
				t.Fatalf("the layout it was made with: %v", err)
			}
			l.Close()
		})
	}
}

// A checkpoint beyond its stream's last sequence is from a stream since made again
// (NATS' store wiped): the partition is read from the beginning, not skipped up to it.
func TestCheckpointOfAnotherStream(t *testing.T) {
	l := openLog(t, testConfig(t))
	dir := t.TempDir()
	for p := range 4 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("partition-%d", p)), []byte("1000\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	if _, err := NewPublisher(l).Push(context.Background(), "ws-1", request(t, 1, names...), ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	consumeAll(t, l, dir, rec, len(names))
	if got := len(rec.all()); got != len(names) {
		t.Fatalf("consumed %d samples, want %d", got, len(names))
	}
}

// A stream being made for a request its caller gave up on (a bucket made while the
// process stops) is closed with the server: Close waits for the JetStream API to be
// idle before shutting the embedded server down, or the stream's store outlives it.
func TestCloseWaitsForStreamsBeingMade(t *testing.T) {
	for i := range 5 {
		before := goleak.IgnoreCurrent()
		l, err := Open(context.Background(), testConfig(t), t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 40 {
			name := fmt.Sprintf("abandoned-%d-%d", i, j)
			body := fmt.Sprintf(`{"name":%q,"subjects":[%q],"storage":"file"}`, name, name+".>")
			if err := l.nc.Publish("$JS.API.STREAM.CREATE."+name, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		err = goleak.Find(before,
			goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine"),
			goleak.IgnoreTopFunction("time.Sleep"))
		if err != nil {
			t.Fatalf("round %d: goroutines outlived the server: %v", i, err)
		}
	}
}
