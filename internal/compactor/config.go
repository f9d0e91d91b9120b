package compactor

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config configures the compactor.
type Config struct {
	// Enabled runs the compactor in this process. Run one compactor per bucket: two
	// would plan the same groups and upload the same data twice (harmless for readers,
	// which deduplicate, but wasted work).
	Enabled bool `yaml:"enabled"`
	// Dir is scratch space for the blocks being compacted; its content is removed at the
	// start of every run. Empty means <data-dir>/compactor.
	Dir string `yaml:"dir"`
	// BlockRanges are the block sizes, smallest first; each a multiple of the previous.
	// The first is the ingesters' block range (--tsdb.block-range).
	BlockRanges DurationList `yaml:"block_ranges"`
	// Interval is the time between the ends of two runs.
	Interval time.Duration `yaml:"interval"`
	// DeletionDelay is how long a block marked for deletion stays in the bucket, so that
	// queries that listed it before the mark still find it. Zero deletes marked blocks on
	// the next run, which can fail queries in flight.
	DeletionDelay time.Duration `yaml:"deletion_delay"`
	// Hold leaves blocks ending less than Hold ago uncompacted (PlanInput.Hold). Not a
	// flag: the server sets it to the ingesters' --tsdb.local-retention.
	Hold time.Duration `yaml:"-"`
}

// Defaults.
var (
	DefaultBlockRanges   = DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	DefaultInterval      = time.Hour
	DefaultDeletionDelay = 12 * time.Hour
)

// RegisterFlags registers the flags under "compactor.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "compactor.enabled", true, "Compact the blocks in the bucket, apply retention and remove the data of deleted workspaces. Run one compactor per bucket.")
	f.StringVar(&c.Dir, "compactor.dir", "", "Scratch directory for blocks being compacted; emptied at the start of every run. Empty means <data-dir>/compactor.")
	c.BlockRanges = append(DurationList(nil), DefaultBlockRanges...)
	f.Var(&c.BlockRanges, "compactor.block-ranges", "Comma-separated block sizes, smallest first, each a multiple of the previous; the first is the ingesters' --tsdb.block-range. Blocks are merged into the next size once its time window is complete.")
	f.DurationVar(&c.Interval, "compactor.interval", DefaultInterval, "Time between two compaction runs.")
	f.DurationVar(&c.DeletionDelay, "compactor.deletion-delay", DefaultDeletionDelay, "How long a block marked for deletion (compacted into another, past retention, of a deleted workspace) stays in the bucket before it is removed, so running queries never miss it. 0 removes it on the next run.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if len(c.BlockRanges) == 0 {
		return errors.New("block_ranges must list at least one range")
	}
	for i, r := range c.BlockRanges {
		if r < time.Millisecond || r%time.Millisecond != 0 {
			return fmt.Errorf("block range %s must be a positive whole number of milliseconds", r)
		}
		if i > 0 && (r <= c.BlockRanges[i-1] || r%c.BlockRanges[i-1] != 0) {
			return fmt.Errorf("block range %s must be larger than and a multiple of %s", r, c.BlockRanges[i-1])
		}
	}
	if c.Interval <= 0 {
		return errors.New("interval must be positive")
	}
	if c.DeletionDelay < 0 {
		return errors.New("deletion_delay must not be negative")
	}
	return nil
}

// DurationList is a list of durations: "2h,12h,24h" as a flag, a YAML sequence or that
// same string in YAML.
type DurationList []time.Duration

// String formats the list as the flag takes it.
func (d *DurationList) String() string {
	if d == nil {
		return ""
	}
	parts := make([]string, len(*d))
	for i, v := range *d {
		parts[i] = formatDuration(v)
	}
	return strings.Join(parts, ",")
}

// Set replaces the list (it does not append: a flag given once sets the whole list).
func (d *DurationList) Set(s string) error {
	var out DurationList
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			return fmt.Errorf("empty duration in %q", s)
		}
		v, err := time.ParseDuration(p)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	*d = out
	return nil
}

// MarshalYAML writes a sequence of duration strings.
func (d DurationList) MarshalYAML() (any, error) {
	out := make([]string, len(d))
	for i, v := range d {
		out[i] = formatDuration(v)
	}
	return out, nil
}

// UnmarshalYAML reads a sequence of durations or a comma-separated string.
func (d *DurationList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return d.Set(n.Value)
	case yaml.SequenceNode:
		var out DurationList
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a duration", e.Line)
			}
			v, err := time.ParseDuration(e.Value)
			if err != nil {
				return fmt.Errorf("line %d: %w", e.Line, err)
			}
			out = append(out, v)
		}
		*d = out
		return nil
	default:
		return fmt.Errorf("line %d: want a list of durations", n.Line)
	}
}

// formatDuration drops the zero minutes and seconds time.Duration prints: 2h, not 2h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
