package compactor

import (
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
)

func TestConfigFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if !cfg.Enabled || cfg.Interval != time.Hour || cfg.DeletionDelay != 12*time.Hour ||
		!slices.Equal(cfg.BlockRanges, DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}) {
		t.Fatalf("defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("compactor.block-ranges").DefValue; got != "2h,12h,24h" {
		t.Errorf("block ranges default shows as %q", got)
	}
	// The default list is not shared with the package variable.
	cfg.BlockRanges[0] = time.Minute
	if DefaultBlockRanges[0] != 2*time.Hour {
		t.Fatal("RegisterFlags aliases DefaultBlockRanges")
	}

	cfg = Config{}
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-compactor.block-ranges=1h, 4h", "-compactor.deletion-delay=0s", "-compactor.enabled=false", "-compactor.dir=/x", "-compactor.interval=5m"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Enabled || cfg.Dir != "/x" || cfg.Interval != 5*time.Minute || cfg.DeletionDelay != 0 ||
		!slices.Equal(cfg.BlockRanges, DurationList{time.Hour, 4 * time.Hour}) {
		t.Fatalf("parsed: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		return Config{BlockRanges: DurationList{2 * time.Hour, 12 * time.Hour}, Interval: time.Hour, DeletionDelay: time.Hour}
	}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"no ranges":       {func(c *Config) { c.BlockRanges = nil }, "at least one"},
		"not a multiple":  {func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour, 5 * time.Hour} }, "multiple"},
		"not ascending":   {func(c *Config) { c.BlockRanges = DurationList{12 * time.Hour, 2 * time.Hour} }, "larger"},
		"sub-millisecond": {func(c *Config) { c.BlockRanges = DurationList{time.Microsecond} }, "milliseconds"},
		"zero interval":   {func(c *Config) { c.Interval = 0 }, "interval"},
		"negative delay":  {func(c *Config) { c.DeletionDelay = -time.Second }, "deletion_delay"},
	} {
		c := base()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
	if _, err := New(Config{}, t.TempDir(), nil, nil, nil, nil, nil); err == nil {
		t.Error("New accepts an invalid configuration")
	}
}

func TestDurationListYAML(t *testing.T) {
	var c struct {
		A DurationList `yaml:"a"`
		B DurationList `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("a: [2h, 12h]\nb: 1h,90m\n"), &c); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.A, DurationList{2 * time.Hour, 12 * time.Hour}) || !slices.Equal(c.B, DurationList{time.Hour, 90 * time.Minute}) {
		t.Fatalf("decoded %+v", c)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "a:\n    - 2h\n    - 12h\nb:\n    - 1h\n    - 1h30m\n" {
		t.Fatalf("encoded %q", out)
	}
	for _, bad := range []string{"a: [2h, x]\n", "a: {x: 1}\n", "a: 2h,,3h\n", "a: [[1h]]\n"} {
		if err := yaml.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%q decodes", bad)
		}
	}
}

func FuzzDurationListSet(f *testing.F) {
	for _, s := range []string{"2h,12h,24h", "1h", "", ",", "1h,-2m", "90m, 3h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d DurationList
		if err := d.Set(s); err != nil {
			return
		}
		// What String prints, Set reads back to the same list.
		var again DurationList
		if err := again.Set(d.String()); err != nil || !slices.Equal(d, again) {
			t.Fatalf("%q → %v → %q → %v %v", s, d, d.String(), again, err)
		}
	})
}

type fakeStore map[string]meta.Workspace

// PeekWorkspace finds nothing cached: Retention reads through.
func (f fakeStore) PeekWorkspace(string) (meta.Workspace, bool) { return meta.Workspace{}, false }

func (f fakeStore) GetWorkspace(_ context.Context, id string) (meta.Workspace, error) {
	if id == "broken" {
		return meta.Workspace{}, errors.New("bucket down")
	}
	ws, ok := f[id]
	if !ok {
		return meta.Workspace{}, meta.ErrNotFound
	}
	return ws, nil
}

// fakeLimits gives every workspace a retention of 150 days, except those listed.
type fakeLimits map[string]int

func (f fakeLimits) For(id string) *limits.Limits {
	l := limits.Default()
	l.RetentionPeriodDays = 150
	if d, ok := f[id]; ok {
		l.RetentionPeriodDays = d
	}
	return &l
}

// A workspace's own retention wins over its limits' (the runtime file's or the flag's).
func TestStoreWorkspaces(t *testing.T) {
	s := StoreWorkspaces{
		Store: fakeStore{
			"ws-default":  {ID: "ws-default", Status: meta.StatusActive},
			"ws-30":       {ID: "ws-30", Status: meta.StatusActive, Configuration: meta.Configuration{RetentionPeriodInDays: 30}},
			"ws-override": {ID: "ws-override", Status: meta.StatusActive},
			"ws-both":     {ID: "ws-both", Status: meta.StatusActive, Configuration: meta.Configuration{RetentionPeriodInDays: 30}},
			"ws-going":    {ID: "ws-going", Status: meta.StatusDeleting},
		},
		Limits: fakeLimits{"ws-override": 60, "ws-both": 60},
	}
	ctx := context.Background()
	for _, tc := range []struct {
		id     string
		ret    time.Duration
		exists bool
		err    bool
	}{
		{"ws-default", 150 * 24 * time.Hour, true, false},
		{"ws-30", 30 * 24 * time.Hour, true, false},
		{"ws-override", 60 * 24 * time.Hour, true, false},
		{"ws-both", 30 * 24 * time.Hour, true, false},
		{"ws-going", 0, false, false},
		{"ws-unknown", 0, false, false},
		{"broken", 0, false, true},
	} {
		ret, exists, err := s.Retention(ctx, tc.id)
		if ret != tc.ret || exists != tc.exists || (err != nil) != tc.err {
			t.Errorf("%s: %v %v %v", tc.id, ret, exists, err)
		}
	}
}
