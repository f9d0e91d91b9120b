package hatracker

// Script tests: one file per topic under testdata/*.txt, in this small
// language.
//
// A line is a command. Blank lines and lines starting with # are ignored.
// A command followed by "-> want" produces a result that must equal want;
// `go test -run TestScripts -rewrite` regenerates the wants in place.
// Times T are offsets from a fixed base instant, as Go durations (10s, 1m30s).
//
//	config key=value...        replace the tracker with a new, empty one built from
//	                           DefaultConfig and these overrides: failover_timeout,
//	                           update_timeout, max_clusters, idle_timeout. Files that
//	                           do not start with config use DefaultConfig.
//	limit [WS] max_clusters N  set the cluster limit the tracker reads through Limits,
//	                           for WS or, without WS, for every workspace.
//	at T push WS CLUSTER REPLICA -> R
//	                           Decide. R is "accept", "accept elected" (Changed),
//	                           "accept persist" (a heartbeat to persist),
//	                           "drop leader=X" or "error: <message>".
//	at T gc -> N               GC, N is the number of clusters removed.
//	clusters WS -> N           Clusters.
//	elected WS CLUSTER -> E    Elected; E is "REPLICA received=T elected=T" or "none".
//	snapshot -> ENTRIES        Snapshot; the store becomes this baseline.
//	persist -> ENTRIES         Changes, applied to the store.
//	delete WS -> N             DeleteWorkspace.
//	restart                    clean restart: Snapshot into the store, then a new
//	                           tracker restored from the store through JSON.
//	crash                      unclean restart: a new tracker restored from the store
//	                           through JSON; changes not persisted are lost.
//
// ENTRIES is "none" or entries separated by "; ", each
// "WS/CLUSTER=REPLICA received=T elected=T" or "WS/CLUSTER deleted".

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected results of testdata/*.txt")

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScript(t, file)
		})
	}
}

// scriptLimits is the Limits the scripts change with "limit".
type scriptLimits struct {
	all          int
	perWorkspace map[string]int
}

func (l *scriptLimits) MaxHAClusters(workspace string) int {
	if n, ok := l.perWorkspace[workspace]; ok {
		return n
	}
	return l.all
}

type script struct {
	t       *testing.T
	cfg     Config
	limits  *scriptLimits
	tracker *Tracker
	// store is what the persisting loop would have written.
	store map[clusterKey]Entry
}

func (s *script) reset(cfg Config) {
	s.t.Helper()
	s.cfg = cfg
	s.limits = &scriptLimits{all: cfg.MaxClusters, perWorkspace: map[string]int{}}
	s.store = map[clusterKey]Entry{}
	s.tracker = s.newTracker()
}

func (s *script) newTracker() *Tracker {
	s.t.Helper()
	tr, err := New(s.cfg, s.limits)
	if err != nil {
		s.t.Fatal(err)
	}
	return tr
}

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := &script{t: t}
	s.reset(DefaultConfig())

	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		cmd, want, hasWant := strings.Cut(line, "->")
		cmd, want = strings.TrimSpace(cmd), strings.TrimSpace(want)
		if cmd == "" || strings.HasPrefix(cmd, "#") {
			out.WriteString(line + "\n")
			continue
		}
		got, err := s.run(strings.Fields(cmd))
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", file, n, cmd, err)
		}
		if hasWant != (got != "") && !*rewrite {
			t.Fatalf("%s:%d: %s: result %q, but the line expects %q", file, n, cmd, got, want)
		}
		if got == "" {
			out.WriteString(cmd + "\n")
			continue
		}
		if got != want && !*rewrite {
			t.Errorf("%s:%d: %s\n got: %s\nwant: %s", file, n, cmd, got, want)
		}
		out.WriteString(cmd + " -> " + got + "\n")
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// run executes one command and returns its result, "" for commands without
// one.
func (s *script) run(f []string) (string, error) {
	var now time.Time
	if f[0] == "at" {
		if len(f) < 3 {
			return "", errors.New("usage: at T command...")
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return "", err
		}
		now, f = base.Add(d), f[2:]
	}

	switch {
	case f[0] == "config":
		cfg := DefaultConfig()
		for _, kv := range f[1:] {
			if err := setConfig(&cfg, kv); err != nil {
				return "", err
			}
		}
		s.reset(cfg)
		return "", nil

	case f[0] == "limit" && (len(f) == 3 || len(f) == 4) && f[len(f)-2] == "max_clusters":
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			return "", err
		}
		if len(f) == 4 {
			s.limits.perWorkspace[f[1]] = n
		} else {
			s.limits.all = n
		}
		return "", nil

	case f[0] == "push" && len(f) == 4 && !now.IsZero():
		d, err := s.tracker.Decide(f[1], f[2], f[3], now)
		if err != nil {
			return "error: " + err.Error(), nil
		}
		return formatDecision(d), nil

	case f[0] == "gc" && len(f) == 1 && !now.IsZero():
		return strconv.Itoa(s.tracker.GC(now)), nil

	case f[0] == "clusters" && len(f) == 2:
		return strconv.Itoa(s.tracker.Clusters(f[1])), nil

	case f[0] == "elected" && len(f) == 3:
		st, ok := s.tracker.Elected(f[1], f[2])
		if !ok {
			return "none", nil
		}
		return fmt.Sprintf("%s received=%s elected=%s", st.Replica, offset(st.ReceivedAt), offset(st.ElectedAt)), nil

	case f[0] == "snapshot" && len(f) == 1:
		entries := s.tracker.Snapshot()
		clear(s.store)
		s.persist(entries)
		return formatEntries(entries), nil

	case f[0] == "persist" && len(f) == 1:
		entries := s.tracker.Changes()
		s.persist(entries)
		return formatEntries(entries), nil

	case f[0] == "delete" && len(f) == 2:
		return strconv.Itoa(s.tracker.DeleteWorkspace(f[1])), nil

	case f[0] == "restart" && len(f) == 1:
		clear(s.store)
		s.persist(s.tracker.Snapshot())
		return "", s.restoreFromStore()

	case f[0] == "crash" && len(f) == 1:
		return "", s.restoreFromStore()
	}
	return "", fmt.Errorf("unknown command or wrong arguments: %q", strings.Join(f, " "))
}

// persist applies entries to the store as the persisting loop would.
func (s *script) persist(entries []Entry) {
	for _, e := range entries {
		key := clusterKey{e.Workspace, e.Cluster}
		if e.Deleted {
			delete(s.store, key)
		} else {
			s.store[key] = e
		}
	}
}

// restoreFromStore builds a new tracker from the store, through JSON so that
// the tags are exercised too.
func (s *script) restoreFromStore() error {
	entries := make([]Entry, 0, len(s.store))
	for _, e := range s.store {
		entries = append(entries, e)
	}
	data, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	var decoded []Entry
	if err := json.Unmarshal(data, &decoded); err != nil {
		return err
	}
	s.tracker = s.newTracker()
	s.tracker.Restore(decoded)
	return nil
}

func setConfig(cfg *Config, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("config wants key=value, got %q", kv)
	}
	var err error
	switch k {
	case "failover_timeout":
		cfg.FailoverTimeout, err = time.ParseDuration(v)
	case "update_timeout":
		cfg.UpdateTimeout, err = time.ParseDuration(v)
	case "idle_timeout":
		cfg.IdleTimeout, err = time.ParseDuration(v)
	case "max_clusters":
		cfg.MaxClusters, err = strconv.Atoi(v)
	default:
		err = fmt.Errorf("unknown config key %q", k)
	}
	return err
}

func formatDecision(d Decision) string {
	switch {
	case d.Action == DropNotElected:
		return "drop leader=" + d.Elected
	case d.Changed:
		return d.Action.String() + " elected"
	case d.Persist:
		return d.Action.String() + " persist"
	}
	return d.Action.String()
}

func formatEntries(entries []Entry) string {
	if len(entries) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Deleted {
			parts = append(parts, fmt.Sprintf("%s/%s deleted", e.Workspace, e.Cluster))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s/%s=%s received=%s elected=%s",
			e.Workspace, e.Cluster, e.Replica, offset(e.ReceivedAt), offset(e.ElectedAt)))
	}
	return strings.Join(parts, "; ")
}

func offset(t time.Time) string { return t.Sub(base).String() }
