package hatracker

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func newTestTracker(t testing.TB, cfg Config) *Tracker {
	t.Helper()
	tr, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		err    string // substring; "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"no cluster label", func(c *Config) { c.ClusterLabel = "" }, "cluster_label must not be empty"},
		{"no replica label", func(c *Config) { c.ReplicaLabel = "" }, "replica_label must not be empty"},
		{"same labels", func(c *Config) { c.ReplicaLabel = c.ClusterLabel }, "must differ"},
		{"zero failover", func(c *Config) { c.FailoverTimeout = 0 }, "failover_timeout must be positive"},
		{"negative update", func(c *Config) { c.UpdateTimeout = -time.Second }, "update_timeout must not be negative"},
		{"zero update", func(c *Config) { c.UpdateTimeout = 0 }, ""},
		{"update equals failover", func(c *Config) { c.UpdateTimeout = c.FailoverTimeout }, "must be below failover_timeout"},
		{"negative max clusters", func(c *Config) { c.MaxClusters = -1 }, "max_clusters must not be negative"},
		{"unlimited clusters", func(c *Config) { c.MaxClusters = 0 }, ""},
		{"negative idle", func(c *Config) { c.IdleTimeout = -time.Second }, "idle_timeout must not be negative"},
		{"idle within failover", func(c *Config) { c.IdleTimeout = c.FailoverTimeout }, "must exceed failover_timeout"},
		{"no gc", func(c *Config) { c.IdleTimeout = 0 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("want error containing %q, got %v", tc.err, err)
			}
			if _, newErr := New(cfg, nil); (newErr == nil) != (err == nil) {
				t.Fatalf("New disagrees with Validate: %v vs %v", newErr, err)
			}
		})
	}
}

func TestRegisterFlagsDefaults(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if cfg != DefaultConfig() {
		t.Fatalf("flag defaults %+v differ from DefaultConfig %+v", cfg, DefaultConfig())
	}
	if err := fs.Parse([]string{"-ha-tracker.failover-timeout=1m", "-ha-tracker.max-clusters=7"}); err != nil {
		t.Fatal(err)
	}
	if cfg.FailoverTimeout != time.Minute || cfg.MaxClusters != 7 {
		t.Fatalf("flags not applied: %+v", cfg)
	}
}

func TestFindHALabels(t *testing.T) {
	for _, tc := range []struct {
		name             string
		lbls             []Label
		cluster, replica string
		ok               bool
	}{
		{"both", []Label{{"__name__", "up"}, {"__replica__", "r1"}, {"cluster", "c1"}}, "c1", "r1", true},
		{"cluster only", []Label{{"__name__", "up"}, {"cluster", "c1"}}, "c1", "", false},
		{"replica only", []Label{{"__replica__", "r1"}}, "", "r1", false},
		{"empty replica value", []Label{{"__replica__", ""}, {"cluster", "c1"}}, "c1", "", false},
		{"neither", []Label{{"job", "x"}}, "", "", false},
		{"none", nil, "", "", false},
		{"first occurrence wins", []Label{{"cluster", "c1"}, {"__replica__", "r1"}, {"cluster", "c2"}}, "c1", "r1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, r, ok := FindHALabelsInList(tc.lbls, DefaultClusterLabel, DefaultReplicaLabel)
			if c != tc.cluster || r != tc.replica || ok != tc.ok {
				t.Errorf("FindHALabelsInList = %q, %q, %v; want %q, %q, %v", c, r, ok, tc.cluster, tc.replica, tc.ok)
			}
			get := func(name string) string {
				for _, l := range tc.lbls {
					if l.Name == name {
						return l.Value
					}
				}
				return ""
			}
			c, r, ok = FindHALabels(get, DefaultClusterLabel, DefaultReplicaLabel)
			if c != tc.cluster || r != tc.replica || ok != tc.ok {
				t.Errorf("FindHALabels = %q, %q, %v; want %q, %q, %v", c, r, ok, tc.cluster, tc.replica, tc.ok)
			}
		})
	}
}

// Pairs without a cluster or a replica are not HA data: accepted, untracked.
func TestDecideUntracked(t *testing.T) {
	tr := newTestTracker(t, DefaultConfig())
	now := time.Unix(0, 0)
	for _, pair := range [][2]string{{"", "r1"}, {"c1", ""}, {"", ""}} {
		d, err := tr.Decide("ws", pair[0], pair[1], now)
		if err != nil || d != (Decision{Action: Accept}) {
			t.Errorf("Decide(%q, %q) = %+v, %v; want plain accept", pair[0], pair[1], d, err)
		}
	}
	if n := tr.Clusters("ws"); n != 0 {
		t.Errorf("Clusters = %d, want 0", n)
	}
	if got := tr.Snapshot(); len(got) != 0 {
		t.Errorf("Snapshot = %v, want empty", got)
	}
}

func TestTooManyClustersError(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxClusters = 1
	tr := newTestTracker(t, cfg)
	now := time.Unix(0, 0)
	if _, err := tr.Decide("ws", "c1", "r1", now); err != nil {
		t.Fatal(err)
	}
	d, err := tr.Decide("ws", "c2", "r1", now)
	if d.Action != 0 {
		t.Errorf("decision with an error = %+v, want the zero Decision", d)
	}
	if !errors.Is(err, ErrTooManyClusters) {
		t.Fatalf("errors.Is(%v, ErrTooManyClusters) = false", err)
	}
	var tooMany *TooManyClustersError
	if !errors.As(err, &tooMany) || tooMany.Limit != 1 || tooMany.Workspace != "ws" {
		t.Fatalf("errors.As = %+v", tooMany)
	}
	if !strings.Contains(err.Error(), "limit of 1 clusters") {
		t.Errorf("message %q does not name the limit", err)
	}
}

// Decide keeps its own copies of the names: the distributor may pass strings
// that alias a request buffer it reuses.
func TestDecideCopiesNames(t *testing.T) {
	tr := newTestTracker(t, DefaultConfig())
	buf := []byte("ws1c1r1")
	alias := func(from, to int) string { return unsafeString(buf[from:to]) }
	if _, err := tr.Decide(alias(0, 3), alias(3, 5), alias(5, 7), time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXX")
	want := []Entry{{Workspace: "ws1", Cluster: "c1", Replica: "r1", ReceivedAt: time.Unix(0, 0), ElectedAt: time.Unix(0, 0)}}
	if got := tr.Snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Snapshot = %v, want %v", got, want)
	}
}

// unsafeString aliases b, as zero-copy protobuf decoders do.
func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }

func TestEntryJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		entry Entry
		json  string
	}{
		{
			Entry{Workspace: "ws-1", Cluster: "prod", Replica: "r1", ReceivedAt: at, ElectedAt: at},
			`{"workspace":"ws-1","cluster":"prod","replica":"r1","received_at":"2026-01-02T03:04:05Z","elected_at":"2026-01-02T03:04:05Z"}`,
		},
		{
			Entry{Workspace: "ws-1", Cluster: "prod", Deleted: true},
			`{"workspace":"ws-1","cluster":"prod","deleted":true}`,
		},
	} {
		got, err := json.Marshal(tc.entry)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.json {
			t.Errorf("Marshal = %s, want %s", got, tc.json)
		}
		var back Entry
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if back != tc.entry {
			t.Errorf("round trip = %+v, want %+v", back, tc.entry)
		}
	}
}

func TestRestoreSkipsInvalid(t *testing.T) {
	tr := newTestTracker(t, DefaultConfig())
	at := time.Unix(100, 0)
	tr.Restore([]Entry{
		{Workspace: "ws", Cluster: "a", Replica: "r1", ReceivedAt: at, ElectedAt: at},
		{Workspace: "ws", Cluster: "b", Deleted: true},
		{Workspace: "ws", Cluster: "", Replica: "r1"},
		{Workspace: "ws", Cluster: "c", Replica: ""},
		{Workspace: "ws", Cluster: "a", Replica: "r2", ReceivedAt: at, ElectedAt: at}, // later wins
	})
	if n := tr.Clusters("ws"); n != 1 {
		t.Fatalf("Clusters = %d, want 1", n)
	}
	if st, _ := tr.Elected("ws", "a"); st.Replica != "r2" {
		t.Fatalf("elected %q, want r2", st.Replica)
	}
	if ch := tr.Changes(); len(ch) != 0 {
		t.Fatalf("Changes after Restore = %v, want none", ch)
	}
}

// The steady state, the elected replica sending again, must not allocate; nor
// must dropping a standby.
func TestDecideSteadyStateAllocs(t *testing.T) {
	tr := newTestTracker(t, DefaultConfig())
	now := time.Unix(0, 0)
	if _, err := tr.Decide("ws", "c", "r1", now); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		if d, _ := tr.Decide("ws", "c", "r1", now); d.Action != Accept {
			t.Fatal("leader not accepted")
		}
	}); a != 0 {
		t.Errorf("accepting the leader allocates %v times", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		if d, _ := tr.Decide("ws", "c", "r2", now); d.Action != DropNotElected {
			t.Fatal("standby not dropped")
		}
	}); a != 0 {
		t.Errorf("dropping the standby allocates %v times", a)
	}
}

// Many goroutines race for the same clusters at the same instant: each cluster
// must accept exactly one replica, whatever the interleaving, while readers,
// the persister, GC and workspace deletion run alongside.
func TestConcurrentDecide(t *testing.T) {
	const (
		workspaces = 4
		clusters   = 8
		replicas   = 4
		rounds     = 200
	)
	tr := newTestTracker(t, DefaultConfig())
	now := time.Unix(1000, 0) // fixed: no failover can happen

	type key struct{ ws, cluster string }
	var (
		mu       sync.Mutex
		accepted = map[key]map[string]bool{}
	)
	var wg sync.WaitGroup
	for r := range replicas {
		replica := fmt.Sprintf("r%d", r)
		wg.Go(func() {
			for range rounds {
				for w := range workspaces {
					for c := range clusters {
						k := key{fmt.Sprintf("ws%d", w), fmt.Sprintf("c%d", c)}
						d, err := tr.Decide(k.ws, k.cluster, replica, now)
						if err != nil {
							t.Error(err)
							return
						}
						if d.Action == Accept {
							mu.Lock()
							if accepted[k] == nil {
								accepted[k] = map[string]bool{}
							}
							accepted[k][replica] = true
							mu.Unlock()
						}
					}
				}
			}
		})
	}
	stop := make(chan struct{})
	var side sync.WaitGroup
	side.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			tr.Changes()
			tr.Snapshot()
			tr.Clusters("ws0")
			tr.Elected("ws1", "c1")
			tr.GC(now)
			// A workspace nobody else uses, so deleting it cannot break the
			// invariant checked below.
			_, _ = tr.Decide("scratch", "c", "r", now)
			tr.DeleteWorkspace("scratch")
		}
	})
	wg.Wait()
	close(stop)
	side.Wait()

	if len(accepted) != workspaces*clusters {
		t.Fatalf("%d clusters accepted something, want %d", len(accepted), workspaces*clusters)
	}
	for k, reps := range accepted {
		if len(reps) != 1 {
			t.Errorf("%v accepted %d replicas %v, want exactly one", k, len(reps), reps)
		}
		if st, ok := tr.Elected(k.ws, k.cluster); !ok || !reps[st.Replica] {
			t.Errorf("%v: elected %+v is not the accepted replica %v", k, st, reps)
		}
	}
}

// At the cluster limit a new cluster is refused before anything is kept: distinct
// values, however many and however long, neither grow the tracker nor reach the
// change set that is persisted, and cost only the error.
func TestClusterLimitCheckedBeforeKeeping(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxClusters = 2
	tr := newTestTracker(t, cfg)
	now := time.Unix(100, 0)
	for _, c := range []string{"a", "b"} {
		if _, err := tr.Decide("ws", c, "r1", now); err != nil {
			t.Fatal(err)
		}
	}
	tr.Changes()
	junk := strings.Repeat("x", 64<<10)
	for i := range 200 {
		if _, err := tr.Decide("ws", junk+fmt.Sprint(i), "r1", now); !errors.Is(err, ErrTooManyClusters) {
			t.Fatalf("cluster %d: %v", i, err)
		}
	}
	if n := tr.Clusters("ws"); n != 2 {
		t.Fatalf("%d clusters tracked", n)
	}
	if ch := tr.Changes(); len(ch) != 0 {
		t.Fatalf("refused clusters in the change set: %d entries", len(ch))
	}
	if snap := tr.Snapshot(); len(snap) != 2 {
		t.Fatalf("snapshot of %d entries", len(snap))
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = tr.Decide("ws", junk, "r1", now) }); n > 1 {
		t.Fatalf("%v allocations for a refused cluster, want only the error's", n)
	}
}

func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		name    string
		replica string
	}{
		{"accept_leader", "r1"},
		{"drop_standby", "r2"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr := newTestTracker(b, DefaultConfig())
			for w := range 100 {
				for c := range 10 {
					if _, err := tr.Decide(fmt.Sprintf("ws-%d", w), fmt.Sprintf("cluster-%d", c), "r1", time.Unix(0, 0)); err != nil {
						b.Fatal(err)
					}
				}
			}
			now := time.Unix(1, 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Decide("ws-42", "cluster-7", bc.replica, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecideParallel(b *testing.B) {
	tr := newTestTracker(b, DefaultConfig())
	const n = 64
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("ws-%d", i)
		if _, err := tr.Decide(names[i], "prod", "r1", time.Unix(0, 0)); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Unix(1, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := tr.Decide(names[i%n], "prod", "r1", now); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkFindHALabelsInList(b *testing.B) {
	lbls := []Label{
		{"__name__", "http_requests_total"}, {"__replica__", "r1"}, {"cluster", "prod"},
		{"code", "200"}, {"instance", "10.0.0.1:9090"}, {"job", "api"}, {"method", "GET"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := FindHALabelsInList(lbls, DefaultClusterLabel, DefaultReplicaLabel); !ok {
			b.Fatal("not found")
		}
	}
}
