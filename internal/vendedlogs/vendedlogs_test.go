package vendedlogs

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stratametrics/strata/internal/meta"
)

const (
	groupA = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vendedlogs/prometheus/team-a:*"
	groupQ = "arn:aws:logs:us-east-1:123456789012:log-group:queries.team-a:*"
)

// workspaces is a fixed set of workspace records.
type workspaces map[string]meta.Workspace

func (w workspaces) PeekWorkspace(id string) (meta.Workspace, bool) {
	ws, ok := w[id]
	return ws, ok
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testConfig(dir string) Config {
	return Config{Dir: dir, MaxFileBytes: 4096, MaxFileAge: time.Hour, MaxFiles: 2, QueueSize: 100}
}

// start runs l until the test ends.
func start(t *testing.T, l *Logs) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func flush(t *testing.T, l *Logs) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// lines reads the JSON records of a log group's current file.
func lines(t *testing.T, dir, group string) []map[string]any {
	t.Helper()
	folder, err := Folder(dir, group)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(folder, currentFile))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func active(arn string, qsp int64) *meta.LoggingConfiguration {
	return &meta.LoggingConfiguration{LogGroupARN: arn, QSPThreshold: qsp, Status: meta.StatusActive}
}

// Events go to the workspace's log group in AMP's shape; workspaces without a logging
// configuration, or with a failed one, log nothing; queries are logged from the
// threshold up.
func TestEventsAndQueries(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	failed := active(groupA, 0)
	failed.Status = meta.StatusCreationFailed
	l := New(testConfig(dir), workspaces{
		"ws-a":      {ID: "ws-a", Logging: active(groupA, 0), QueryLogging: active(groupQ, 1000)},
		"ws-none":   {ID: "ws-none"},
		"ws-failed": {ID: "ws-failed", Logging: failed},
	}, nil, nil)
	l.SetClock(c.now)
	start(t, l)

	l.Event("ws-a", ComponentRuler, LevelError, "Evaluating rule failed, name=r, group=g, namespace=n, err=boom",
		Field{"name", "r"}, Field{"group", "g"}, Field{"namespace", "n"})
	l.Event("ws-none", ComponentRuler, LevelError, "not logged")
	l.Event("ws-failed", ComponentRuler, LevelError, "not logged")
	l.Event("ws-unknown", ComponentRuler, LevelError, "not logged")
	l.Query("ws-a", QueryRecord{Query: "cheap", Type: "instant", SamplesProcessed: 999, Status: "success"})
	l.Query("ws-a", QueryRecord{Query: "sum(rate(x[5m]))", Type: "range", Start: c.now().Add(-time.Hour), End: c.now(), Step: time.Minute,
		SamplesProcessed: 1000, SeriesFetched: 7, Duration: 1500 * time.Millisecond, Status: "success", Principal: "arn:aws:iam::123456789012:user/u"})
	flush(t, l)

	got := lines(t, dir, groupA)
	if len(got) != 1 {
		t.Fatalf("log group has %d records, want 1: %v", len(got), got)
	}
	want := map[string]any{
		"time":        "2026-12-06T10:00:00Z",
		"workspaceId": "ws-a",
		"component":   "ruler",
		"message": map[string]any{"log": "Evaluating rule failed, name=r, group=g, namespace=n, err=boom", "level": "ERROR",
			"name": "r", "group": "g", "namespace": "n"},
	}
	if b1, b2 := mustJSON(t, got[0]), mustJSON(t, want); b1 != b2 {
		t.Fatalf("record\n %s\nwant\n %s", b1, b2)
	}
	q := lines(t, dir, groupQ)
	if len(q) != 1 {
		t.Fatalf("query log group has %d records, want 1 (the query under the threshold is not logged): %v", len(q), q)
	}
	m := q[0]["message"].(map[string]any)
	if m["query"] != "sum(rate(x[5m]))" || m["samplesProcessed"] != 1000.0 || m["seriesFetched"] != 7.0 || m["durationMs"] != 1500.0 ||
		m["stepSeconds"] != 60.0 || m["principal"] != "arn:aws:iam::123456789012:user/u" || q[0]["component"] != "query" {
		t.Fatalf("query record %v", q[0])
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The current file is rotated by size and by age, and only MaxFiles rotated files stay.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	l := New(testConfig(dir), workspaces{"ws-a": {ID: "ws-a", Logging: active(groupA, 0)}}, nil, nil)
	l.SetClock(c.now)
	start(t, l)
	folder, _ := Folder(dir, groupA)
	rotated := func() []string {
		m, _ := filepath.Glob(filepath.Join(folder, "events-*.log"))
		slices.Sort(m)
		return m
	}
	msg := strings.Repeat("x", 1000)

	// Five records of ~1.1 KiB fill 4 KiB after three: the fourth starts a new file.
	for range 5 {
		l.Event("ws-a", ComponentIngestion, LevelWarn, msg)
		c.advance(time.Second)
	}
	flush(t, l)
	if n := len(rotated()); n != 1 {
		t.Fatalf("%d rotated files after 5 records, want 1", n)
	}
	if n := len(lines(t, dir, groupA)); n != 2 {
		t.Fatalf("current file has %d records, want 2", n)
	}

	// An hour after its first record the current file is rotated, however small.
	c.advance(time.Hour)
	l.Event("ws-a", ComponentIngestion, LevelWarn, "late")
	flush(t, l)
	if n := len(rotated()); n != 2 {
		t.Fatalf("%d rotated files after an hour, want 2", n)
	}
	if got := lines(t, dir, groupA); len(got) != 1 || got[0]["message"].(map[string]any)["log"] != "late" {
		t.Fatalf("current file %v, want the one late record", got)
	}

	// A third rotation removes the oldest file.
	first := rotated()[0]
	c.advance(time.Hour)
	l.Event("ws-a", ComponentIngestion, LevelWarn, "later")
	flush(t, l)
	if r := rotated(); len(r) != 2 || slices.Contains(r, first) {
		t.Fatalf("rotated files %v, want 2 without the oldest %s", r, first)
	}
}

// A full queue drops records and counts them instead of blocking the caller.
func TestFullQueueDrops(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.QueueSize = 2
	reg := prometheus.NewRegistry()
	l := New(cfg, workspaces{"ws-a": {ID: "ws-a", Logging: active(groupA, 0)}}, reg, nil)
	// Not running: nothing takes records off the queue.
	for range 5 {
		l.Event("ws-a", ComponentIngestion, LevelWarn, "m")
	}
	if n := testutil.ToFloat64(l.dropped.WithLabelValues("queue_full")); n != 3 {
		t.Fatalf("%v records dropped, want 3", n)
	}
	start(t, l)
	flush(t, l)
	if n := len(lines(t, cfg.Dir, groupA)); n != 2 {
		t.Fatalf("%d records written, want the 2 queued", n)
	}
}

// Every log group has a folder of its own inside the directory.
func TestFolder(t *testing.T) {
	for arn, want := range map[string]string{
		groupA: "123456789012/us-east-1/%2Faws%2Fvendedlogs%2Fprometheus%2Fteam-a",
		"arn:aws:logs:eu-west-1:123456789012:log-group:..:*":      "123456789012/eu-west-1/%2E.",
		"arn:aws:logs:eu-west-1:123456789012:log-group:../..:*":   "123456789012/eu-west-1/%2E.%2F..",
		"arn:aws:logs:eu-west-1:123456789012:log-group:a.b#c_d:*": "123456789012/eu-west-1/a.b#c_d",
	} {
		got, err := Folder("/d", arn)
		if err != nil {
			t.Fatalf("%s: %v", arn, err)
		}
		if got != filepath.Join("/d", want) {
			t.Errorf("%s: folder %s, want /d/%s", arn, got, want)
		}
	}
	for _, bad := range []string{
		"arn:aws:logs:us-east-1:123456789012:log-group:team-a",  // no :*
		"arn:aws:logs:us-east-1:12345:log-group:team-a:*",       // account
		"arn:aws:logs:us-east-1:123456789012:log-group:a%2Fb:*", // % not allowed
		"arn:aws:s3:us-east-1:123456789012:log-group:team-a:*",  // service
		"arn:aws:logs:us-east-1:123456789012:log-group:a b:*",   // space
		"arn:aws:logs:us-east-1:123456789012:log-group:" + strings.Repeat("a", 513) + ":*",
	} {
		if _, err := Folder("/d", bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
