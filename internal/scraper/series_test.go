package scraper

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/remotewrite"
)

// A series keeps its ref and encoded labels while its target exposes it; once it has
// not been scraped for sweepEvery scrapes its slot is freed, and the old ref no longer
// names it, nor the series that takes the slot next.
func TestSeriesTable(t *testing.T) {
	var tab seriesTable
	a, b := labels.FromStrings("__name__", "a", "job", "j"), labels.FromStrings("__name__", "b", "job", "j")
	encA, refA, _ := tab.labelsFor(0, a, nil)
	encB, refB, _ := tab.labelsFor(0, b, nil)
	if refA == 0 || refB == 0 || refA == refB {
		t.Fatalf("refs %x and %x", refA, refB)
	}
	if !bytes.Equal(encA, remotewrite.AppendV1Labels(nil, a)) || !bytes.Equal(encB, remotewrite.AppendV1Labels(nil, b)) {
		t.Fatal("encoded labels differ from AppendV1Labels")
	}
	// Scrapes that expose only a: b's slot is freed after sweepEvery of them.
	for range 2 * sweepEvery {
		if enc, ref, _ := tab.labelsFor(refA, a, nil); ref != refA || !bytes.Equal(enc, encA) {
			t.Fatalf("a known series got ref %x (had %x)", ref, refA)
		}
		tab.scraped()
	}
	if len(tab.free) != 1 {
		t.Fatalf("%d free slots after b was gone for %d scrapes, want 1", len(tab.free), 2*sweepEvery)
	}
	// c takes b's slot; b's old ref names neither.
	c := labels.FromStrings("__name__", "c", "job", "j")
	encC, refC, _ := tab.labelsFor(0, c, nil)
	if uint32(refC) != uint32(refB) || refC == refB {
		t.Fatalf("c got ref %x, want b's slot (%x) in a new generation", refC, refB)
	}
	enc, ref, _ := tab.labelsFor(refB, b, nil)
	if ref == refB || ref == refC || !bytes.Equal(enc, remotewrite.AppendV1Labels(nil, b)) {
		t.Fatalf("b's stale ref gave ref %x and labels %q", ref, enc)
	}
	if enc, _, _ := tab.labelsFor(refC, c, nil); !bytes.Equal(enc, encC) {
		t.Fatal("c's labels changed")
	}
	// A ref beyond the table (or of another table) is encoded anew.
	if enc, ref, _ := tab.labelsFor(1<<32|999, a, nil); !bytes.Equal(enc, encA) || ref == 1<<32|999 {
		t.Fatalf("an unknown ref gave ref %x", ref)
	}
}

// checker passes the series whose labels do not contain "bad", under the checks it has.
type checker struct {
	checks string
	asked  map[string]int // encoded labels → times checked
}

func (c *checker) LabelChecks(string) string { return c.checks }

func (c *checker) CheckV1Labels(_ string, enc []byte) (string, bool) {
	c.asked[string(enc)]++
	return c.checks, !bytes.Contains(enc, []byte("bad"))
}

// Each series' labels are checked once while the write path's checks stay the same, and
// again when they change; a series that fails them is reported, scrape after scrape.
func TestSeriesChecked(t *testing.T) {
	var tab seriesTable
	c := &checker{checks: "10/1024/2048/cluster/__replica__", asked: map[string]int{}}
	good, bad := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "bad")
	var refs [2]storage.SeriesRef // as the scrape loop keeps them
	scrape := func() (goodOK, badOK bool) {
		chk := &labelCheck{c: c, workspace: "ws", checks: c.LabelChecks("ws")}
		_, refs[0], goodOK = tab.labelsFor(refs[0], good, chk)
		_, refs[1], badOK = tab.labelsFor(refs[1], bad, chk)
		tab.scraped()
		return goodOK, badOK
	}
	encGood, encBad := string(remotewrite.AppendV1Labels(nil, good)), string(remotewrite.AppendV1Labels(nil, bad))
	for range 3 {
		if g, b := scrape(); !g || b {
			t.Fatalf("verdicts %v, %v; want true, false", g, b)
		}
	}
	if c.asked[encGood] != 1 || c.asked[encBad] != 1 {
		t.Fatalf("checked %v over three scrapes, want each series once", c.asked)
	}
	c.checks = "5/1024/2048/cluster/__replica__" // the workspace's limits changed
	if g, b := scrape(); !g || b {
		t.Fatalf("verdicts under new checks %v, %v", g, b)
	}
	if c.asked[encGood] != 2 || c.asked[encBad] != 2 {
		t.Fatalf("checked %v after the checks changed, want each series twice in all", c.asked)
	}
	// The checks change between the scrape's start and a series' check: no verdict.
	chk := &labelCheck{c: c, workspace: "ws", checks: c.checks}
	c.checks = "4/1024/2048/cluster/__replica__"
	if _, _, ok := tab.labelsFor(0, labels.FromStrings("__name__", "new"), chk); ok {
		t.Fatal("a series checked under other checks than the scrape's passed")
	}
	// Without a checker nothing passes: the write path checks everything.
	if _, _, ok := tab.labelsFor(0, good, nil); ok {
		t.Fatal("a series passed without a checker")
	}
}

// A series that disappears from its target's page gets a stale marker, as Prometheus
// writes one: the scrape loop tracks staleness by the refs the appender hands out.
func TestVanishedSeriesGetStaleMarkers(t *testing.T) {
	var dropped atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "first 1\n")
		if !dropped.Load() {
			fmt.Fprint(w, "second 2\nthird 3\n")
		}
		fmt.Fprint(w, "last 4\n")
	}))
	t.Cleanup(target.Close)
	instance := strings.TrimPrefix(target.URL, "http://")
	blob := fmt.Sprintf("global: {scrape_interval: 100ms, scrape_timeout: 100ms}\nscrape_configs: [{job_name: j, static_configs: [{targets: [%q]}]}]\n", instance)
	wss := &workspaces{}
	wss.set(meta.Workspace{ID: "ws-a", Status: meta.StatusActive, Scrapers: map[string]*meta.Scraper{"s-1": scraperOf("s-1", blob)}})
	w := newWriter()
	startManager(t, wss, w)

	series := func(name string) string { return fmt.Sprintf(`__name__=%q,instance=%q,job="j",`, name, instance) }
	waitFor(t, "all four series", func() bool {
		v, ok := w.value("ws-a", series("third"))
		return ok && v == 3
	})
	dropped.Store(true)
	waitFor(t, "stale markers for the two series gone", func() bool {
		v2, _ := w.value("ws-a", series("second"))
		v3, _ := w.value("ws-a", series("third"))
		return value.IsStaleNaN(v2) && value.IsStaleNaN(v3)
	})
	for name, want := range map[string]float64{"first": 1, "last": 4} {
		if v, _ := w.value("ws-a", series(name)); v != want || math.IsNaN(v) {
			t.Fatalf("%s = %v, want %v", name, v, want)
		}
	}
}
