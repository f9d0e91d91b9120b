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

	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/remotewrite"
)

// A series keeps its ref and encoded labels while its target exposes it; once it has
// not been scraped for sweepEvery scrapes its slot is freed, and the old ref no longer
// names it, nor the series that takes the slot next.
func TestSeriesTable(t *testing.T) {
	var tab seriesTable
	a, b := labels.FromStrings("__name__", "a", "job", "j"), labels.FromStrings("__name__", "b", "job", "j")
	encA, refA := tab.labelsFor(0, a)
	encB, refB := tab.labelsFor(0, b)
	if refA == 0 || refB == 0 || refA == refB {
		t.Fatalf("refs %x and %x", refA, refB)
	}
	if !bytes.Equal(encA, remotewrite.AppendV1Labels(nil, a)) || !bytes.Equal(encB, remotewrite.AppendV1Labels(nil, b)) {
		t.Fatal("encoded labels differ from AppendV1Labels")
	}
	// Scrapes that expose only a: b's slot is freed after sweepEvery of them.
	for range 2 * sweepEvery {
		if enc, ref := tab.labelsFor(refA, a); ref != refA || !bytes.Equal(enc, encA) {
			t.Fatalf("a known series got ref %x (had %x)", ref, refA)
		}
		tab.scraped()
	}
	if len(tab.free) != 1 {
		t.Fatalf("%d free slots after b was gone for %d scrapes, want 1", len(tab.free), 2*sweepEvery)
	}
	// c takes b's slot; b's old ref names neither.
	c := labels.FromStrings("__name__", "c", "job", "j")
	encC, refC := tab.labelsFor(0, c)
	if uint32(refC) != uint32(refB) || refC == refB {
		t.Fatalf("c got ref %x, want b's slot (%x) in a new generation", refC, refB)
	}
	enc, ref := tab.labelsFor(refB, b)
	if ref == refB || ref == refC || !bytes.Equal(enc, remotewrite.AppendV1Labels(nil, b)) {
		t.Fatalf("b's stale ref gave ref %x and labels %q", ref, enc)
	}
	if enc, _ := tab.labelsFor(refC, c); !bytes.Equal(enc, encC) {
		t.Fatal("c's labels changed")
	}
	// A ref beyond the table (or of another table) is encoded anew.
	if enc, ref := tab.labelsFor(1<<32|999, a); !bytes.Equal(enc, encA) || ref == 1<<32|999 {
		t.Fatalf("an unknown ref gave ref %x", ref)
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
