package compactor

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/stratametrics/strata/internal/blocks"
)

var update = flag.Bool("update", false, "rewrite the expected plans in testdata/*.txt")

// TestPlan runs the planner on the cases in testdata/*.txt. A case is:
//
//	=== name
//	ranges 2h 12h 24h          block ranges (default 2h 12h 24h)
//	now 30h                    the planner's clock, as a time since the epoch
//	retention 48h              default: none (keep forever)
//	delay 12h                  deletion delay (default 12h)
//	hold 13h                   windows ending less than this ago stay (default 0)
//	deleted                    the workspace no longer exists
//	block a [0h,2h)            a complete block [mint, maxt) named a
//	block c [0h,4h) sources=a,b marked=26h
//	partial p marked=20h       a block without meta.json (marked=… optional)
//	---
//	expected plan, one action a line:
//	delete NAME | mark NAME REASON | compact RANGE|overlap [MINT,MAXT): NAMES | purge
//
// Times accept d (days) besides Go's units. Blocks get ULIDs in order of first mention,
// so a block named later has the larger ULID. go test -run TestPlan -update rewrites
// the expectations.
func TestPlan(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	total := 0
	for _, file := range files {
		cases := readCases(t, file)
		total += len(cases)
		changed := false
		for i := range cases {
			c := &cases[i]
			t.Run(filepath.Base(file)+"/"+c.name, func(t *testing.T) {
				got := c.run(t)
				if *update {
					if got != c.want {
						c.want = got
						changed = true
					}
					return
				}
				if got != c.want {
					t.Errorf("%s:%d: plan differs\n--- got\n%s\n--- want\n%s", file, c.line, got, c.want)
				}
			})
		}
		if changed {
			writeCases(t, file, cases)
		}
	}
	if total < 15 {
		t.Errorf("only %d planner cases", total)
	}
}

type planCase struct {
	name  string
	line  int
	input []string // directive lines as written (comments kept for rewriting)
	want  string
}

func readCases(t *testing.T, file string) []planCase {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		cases    []planCase
		inExpect bool
		want     []string
	)
	finish := func() {
		if len(cases) > 0 {
			for len(want) > 0 && strings.TrimSpace(want[len(want)-1]) == "" {
				want = want[:len(want)-1]
			}
			cases[len(cases)-1].want = strings.Join(want, "\n")
		}
		want = nil
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== "):
			finish()
			cases = append(cases, planCase{name: strings.TrimPrefix(line, "=== "), line: n})
			inExpect = false
		case len(cases) == 0:
			// File header: comments before the first case.
		case line == "---":
			inExpect = true
		case inExpect:
			want = append(want, line)
		default:
			cases[len(cases)-1].input = append(cases[len(cases)-1].input, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	finish()
	return cases
}

func writeCases(t *testing.T, file string, cases []planCase) {
	t.Helper()
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for line := range strings.SplitSeq(string(orig), "\n") {
		if strings.HasPrefix(line, "=== ") {
			break
		}
		b.WriteString(line + "\n")
	}
	for i, c := range cases {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("=== " + c.name + "\n")
		for _, l := range c.input {
			b.WriteString(l + "\n")
		}
		b.WriteString("---\n" + c.want + "\n")
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// names maps the names of a case to ULIDs and back.
type names struct {
	ids   map[string]ulid.ULID
	names map[ulid.ULID]string
}

func (n *names) id(name string) ulid.ULID {
	if id, ok := n.ids[name]; ok {
		return id
	}
	var id ulid.ULID
	if err := id.SetTime(uint64(len(n.ids) + 1)); err != nil {
		panic(err)
	}
	n.ids[name] = id
	n.names[id] = name
	return id
}

func (c *planCase) run(t *testing.T) string {
	t.Helper()
	nm := &names{ids: map[string]ulid.ULID{}, names: map[ulid.ULID]string{}}
	in := PlanInput{
		Ranges:        []time.Duration{2 * time.Hour, 12 * time.Hour, 24 * time.Hour},
		DeletionDelay: 12 * time.Hour,
	}
	nowSet := false
	for _, line := range c.input {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %q: %q: %s", c.name, line, fmt.Sprintf(format, args...))
		}
		switch f[0] {
		case "ranges":
			in.Ranges = nil
			for _, s := range f[1:] {
				in.Ranges = append(in.Ranges, mustDur(t, s))
			}
		case "now":
			in.Now = time.UnixMilli(0).Add(mustDur(t, f[1]))
			nowSet = true
		case "retention":
			in.Retention = mustDur(t, f[1])
		case "hold":
			in.Hold = mustDur(t, f[1])
		case "delay":
			in.DeletionDelay = mustDur(t, f[1])
		case "deleted":
			in.Deleted = true
		case "block":
			if len(f) < 3 {
				fail("want: block NAME [MINT,MAXT) [marked=T] [sources=A,B] [imported]")
			}
			id := nm.id(f[1])
			rng := strings.TrimSuffix(strings.TrimPrefix(f[2], "["), ")")
			lo, hi, ok := strings.Cut(rng, ",")
			if !ok || !strings.HasPrefix(f[2], "[") || !strings.HasSuffix(f[2], ")") {
				fail("bad range %q", f[2])
			}
			b := blocks.Block{Meta: blocks.Meta{
				ULID:    id,
				MinTime: mustDur(t, lo).Milliseconds(),
				MaxTime: mustDur(t, hi).Milliseconds(),
			}}
			b.Meta.Compaction.Level = 1
			b.Meta.Compaction.Sources = []ulid.ULID{id}
			for _, opt := range f[3:] {
				k, v, _ := strings.Cut(opt, "=")
				switch k {
				case "imported": // through the block import API (blocks.HintImported)
					b.Meta.Compaction.Hints = append(b.Meta.Compaction.Hints, blocks.HintImported)
				case "marked":
					b.DeletionMark = mark(id, mustDur(t, v))
				case "sources":
					b.Meta.Compaction.Sources = nil
					for s := range strings.SplitSeq(v, ",") {
						b.Meta.Compaction.Sources = append(b.Meta.Compaction.Sources, nm.id(s))
					}
					b.Meta.Compaction.Level = 2
				default:
					fail("unknown option %q", k)
				}
			}
			in.Blocks = append(in.Blocks, b)
		case "partial":
			p := PartialBlock{ID: nm.id(f[1])}
			for _, opt := range f[2:] {
				k, v, _ := strings.Cut(opt, "=")
				if k != "marked" {
					fail("unknown option %q", k)
				}
				p.DeletionMark = mark(p.ID, mustDur(t, v))
			}
			in.Partial = append(in.Partial, p)
		default:
			fail("unknown directive")
		}
	}
	if !nowSet {
		t.Fatalf("case %q sets no time (now)", c.name)
	}
	return formatPlan(PlanWorkspace(in), nm)
}

func mark(id ulid.ULID, at time.Duration) *blocks.DeletionMark {
	return &blocks.DeletionMark{ID: id, DeletionTime: int64(at / time.Second), Version: 1}
}

func formatPlan(p Plan, nm *names) string {
	var lines []string
	for _, id := range p.Delete {
		lines = append(lines, "delete "+nm.names[id])
	}
	for _, m := range p.Mark {
		lines = append(lines, "mark "+nm.names[m.ID]+" "+m.Reason)
	}
	for _, g := range p.Compact {
		kind := "overlap"
		if g.Window > 0 {
			kind = formatDuration(g.Window)
		}
		var ns []string
		for _, id := range g.IDs {
			ns = append(ns, nm.names[id])
		}
		lines = append(lines, fmt.Sprintf("compact %s [%s,%s): %s", kind, fmtMs(g.MinTime), fmtMs(g.MaxTime), strings.Join(ns, " ")))
	}
	if p.Purge {
		lines = append(lines, "purge")
	}
	if len(lines) == 0 {
		return "nothing to do"
	}
	return strings.Join(lines, "\n")
}

func fmtMs(ms int64) string {
	if ms == 0 {
		return "0h"
	}
	return formatDuration(time.Duration(ms) * time.Millisecond)
}

// mustDur parses a Go duration that may start with a number of days: 150d, 1d12h, -2h.
func mustDur(t *testing.T, s string) time.Duration {
	t.Helper()
	neg := strings.HasPrefix(s, "-")
	rest := strings.TrimPrefix(s, "-")
	var d time.Duration
	if days, after, ok := strings.Cut(rest, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			t.Fatalf("duration %q: %v", s, err)
		}
		d = time.Duration(n) * 24 * time.Hour
		rest = after
	}
	if rest != "" {
		v, err := time.ParseDuration(rest)
		if err != nil {
			t.Fatalf("duration %q: %v", s, err)
		}
		d += v
	}
	if neg {
		d = -d
	}
	return d
}

// The planner never plans a block twice, never touches a marked block except to delete
// it, and compacts only what it was given: checked on random inputs.
func TestPlanInvariants(t *testing.T) {
	r := newRand(1)
	for i := range 2000 {
		var in PlanInput
		in.Ranges = []time.Duration{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
		in.DeletionDelay = time.Duration(r.intn(3)) * 6 * time.Hour
		in.Now = time.UnixMilli(0).Add(time.Duration(r.intn(100)) * time.Hour)
		if r.intn(4) == 0 {
			in.Retention = time.Duration(1+r.intn(60)) * time.Hour
		}
		in.Deleted = r.intn(20) == 0
		n := r.intn(12)
		for j := range n {
			var id ulid.ULID
			_ = id.SetTime(uint64(j + 1))
			mint := int64(r.intn(48)) * time.Hour.Milliseconds()
			b := blocks.Block{Meta: tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: mint + int64(1+r.intn(6))*time.Hour.Milliseconds()}}
			if r.intn(5) == 0 {
				b.DeletionMark = mark(id, time.Duration(r.intn(100))*time.Hour)
			}
			in.Blocks = append(in.Blocks, b)
		}
		p := PlanWorkspace(in)
		seen := map[ulid.ULID]string{}
		use := func(id ulid.ULID, what string) {
			if prev, ok := seen[id]; ok {
				t.Fatalf("input %d: block %s planned twice (%s, %s)", i, id, prev, what)
			}
			seen[id] = what
		}
		marked := map[ulid.ULID]bool{}
		for _, b := range in.Blocks {
			marked[b.Meta.ULID] = b.DeletionMark != nil
		}
		for _, id := range p.Delete {
			if !marked[id] {
				t.Fatalf("input %d: deletes unmarked block %s", i, id)
			}
			use(id, "delete")
		}
		for _, m := range p.Mark {
			if marked[m.ID] {
				t.Fatalf("input %d: marks a marked block", i)
			}
			use(m.ID, "mark")
		}
		for _, g := range p.Compact {
			if len(g.IDs) < 2 {
				t.Fatalf("input %d: group of %d", i, len(g.IDs))
			}
			for _, id := range g.IDs {
				if _, ok := marked[id]; !ok || marked[id] {
					t.Fatalf("input %d: compacts unknown or marked block %s", i, id)
				}
				use(id, "compact")
			}
		}
		if in.Deleted && len(p.Compact) > 0 {
			t.Fatalf("input %d: compacts a deleted workspace", i)
		}
		// Performing the plans converges: at a fixed time, a few rounds leave nothing
		// to compact or mark (the second CompactOnce does nothing).
		next := uint64(1000)
		for round := 0; ; round++ {
			if round == 6 {
				t.Fatalf("input %d: plans do not converge; last: %+v", i, p)
			}
			in.Blocks = apply(in, p, &next)
			p = PlanWorkspace(in)
			if len(p.Compact) == 0 && len(p.Mark) == 0 {
				break
			}
		}
	}
}

// apply performs a plan on the listed blocks as the Compactor does on the bucket.
func apply(in PlanInput, p Plan, next *uint64) []blocks.Block {
	byID := map[ulid.ULID]*blocks.Block{}
	var out []*blocks.Block
	for _, b := range in.Blocks {
		b := b
		byID[b.Meta.ULID] = &b
		out = append(out, &b)
	}
	deleted := map[ulid.ULID]bool{}
	for _, id := range p.Delete {
		deleted[id] = true
	}
	markAt := func(id ulid.ULID) {
		byID[id].DeletionMark = &blocks.DeletionMark{ID: id, DeletionTime: in.Now.Unix()}
	}
	for _, m := range p.Mark {
		markAt(m.ID)
	}
	for _, g := range p.Compact {
		var metas []*tsdb.BlockMeta
		for _, id := range g.IDs {
			m := byID[id].Meta
			if len(m.Compaction.Sources) == 0 {
				m.Compaction.Sources = []ulid.ULID{m.ULID}
			}
			metas = append(metas, &m)
		}
		var id ulid.ULID
		*next++
		_ = id.SetTime(*next)
		res := tsdb.CompactBlockMetas(id, metas...)
		out = append(out, &blocks.Block{Meta: *res})
		for _, src := range g.IDs {
			markAt(src)
		}
	}
	var bs []blocks.Block
	for _, b := range out {
		if !deleted[b.Meta.ULID] {
			bs = append(bs, *b)
		}
	}
	return bs
}

// newRand is a tiny deterministic generator, so the invariants test needs no seed setup.
type rng struct{ s uint64 }

func newRand(seed uint64) *rng { return &rng{s: seed} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }
