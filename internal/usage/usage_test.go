package usage

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestIngestedAndRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	t0 := time.Unix(1000, 0)
	m.UpdateRates(t0)
	m.Ingested("ws-1", 100, 20, 3)
	m.Ingested("ws-1", 80, 0, 0)
	m.Discard("ws-1", SampleOutOfOrder, 2)
	m.DiscardMetadata("ws-1", MetadataHelpTooLong, 3)
	m.DiscardMetadata("ws-1", PerUserMetadataLimit, 0) // nothing: no series
	m.UpdateRates(t0.Add(10 * time.Second))
	if v := testutil.ToFloat64(m.Rate.WithLabelValues("ws-1")); v != 20 {
		t.Fatalf("rate %v, want 20 samples/s", v)
	}
	if v := testutil.ToFloat64(m.Samples.WithLabelValues("ws-1")); v != 180 {
		t.Fatalf("samples %v", v)
	}
	if v := testutil.ToFloat64(m.Discarded.WithLabelValues("ws-1", "sample-out-of-order")); v != 2 {
		t.Fatalf("discarded %v", v)
	}
	if v := testutil.ToFloat64(m.DiscardedMetadata.WithLabelValues("ws-1", "help_too_long")); v != 3 {
		t.Fatalf("discarded metadata %v", v)
	}
	if n := testutil.CollectAndCount(m.DiscardedMetadata); n != 1 {
		t.Fatalf("%d discarded-metadata series, want 1", n)
	}
	m.UpdateRates(t0.Add(20 * time.Second))
	if v := testutil.ToFloat64(m.Rate.WithLabelValues("ws-1")); v != 0 {
		t.Fatalf("rate after an idle interval %v", v)
	}
	m.DeleteWorkspace("ws-1")
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n != 0 {
		mfs, _ := reg.Gather()
		var names []string
		for _, mf := range mfs {
			names = append(names, mf.GetName())
		}
		t.Fatalf("%d series left after DeleteWorkspace: %s", n, strings.Join(names, ","))
	}
}

func TestReasonNames(t *testing.T) {
	for r := Reason(0); r < numReasons; r++ {
		if r.String() == "" {
			t.Errorf("reason %d has no name", r)
		}
	}
	for r := MetadataReason(0); r < numMetadataReasons; r++ {
		if r.String() == "" {
			t.Errorf("metadata reason %d has no name", r)
		}
	}
}
