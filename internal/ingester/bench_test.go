package ingester

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/remotewrite"
)

const benchSeries = 2000

func benchLabels(i int) []string {
	return []string{"__name__", fmt.Sprintf("node_metric_%d_total", i%50), "instance", fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250),
		"job", "node", "cpu", fmt.Sprint(i % 16), "mode", "idle", "device", "eth0",
		"region", "us-east-1", "zone", "us-east-1a", "env", "prod", "team", "infra"}
}

func benchRequest(b *testing.B, v remotewrite.Version, withMetadata bool) *remotewrite.Request {
	var raw []byte
	var err error
	if v == remotewrite.V1 {
		wr := &prompb.WriteRequest{}
		for i := range benchSeries {
			l := benchLabels(i)
			var ls []prompb.Label
			for k := 0; k < len(l); k += 2 {
				ls = append(ls, prompb.Label{Name: l[k], Value: l[k+1]})
			}
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: float64(i)}}})
		}
		if withMetadata {
			for i := range 50 {
				wr.Metadata = append(wr.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: fmt.Sprintf("node_metric_%d_total", i), Help: "Seconds the CPUs spent in each mode.", Unit: "seconds"})
			}
		}
		raw, err = wr.Marshal()
	} else {
		st := writev2.NewSymbolTable()
		wr := &writev2.Request{}
		for i := range benchSeries {
			ts := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(labels.FromStrings(benchLabels(i)...), nil), Samples: []writev2.Sample{{Value: float64(i)}}}
			if withMetadata {
				ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Seconds the CPUs spent in each mode."), UnitRef: st.Symbolize("seconds")}
			}
			wr.Timeseries = append(wr.Timeseries, ts)
		}
		wr.Symbols = st.Symbols()
		raw, err = wr.Marshal()
	}
	if err != nil {
		b.Fatal(err)
	}
	req, err := remotewrite.NewDecoder(remotewrite.Options{}).Decode(v, raw)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(req.Release)
	return req
}

// BenchmarkPush is the steady state of a shard: the same 2,000 known series with a new
// sample each, one request per scrape interval.
func BenchmarkPush(b *testing.B) {
	for _, tc := range []struct {
		name     string
		v        remotewrite.Version
		metadata bool
	}{
		{"v1", remotewrite.V1, false},
		{"v1-metadata", remotewrite.V1, true},
		{"v2-metadata", remotewrite.V2, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ws := fakeWorkspaces{"ws-1": {ID: "ws-1"}}
			i := newIngester(b, Config{}, defaultLimits(b, nil), ws)
			req := benchRequest(b, tc.v, tc.metadata)
			ts := time.Now().UnixMilli()
			push := func() {
				ts += 15_000
				for k := range req.Series {
					req.Series[k].Samples[0].Timestamp = ts
				}
				res, err := i.Push(context.Background(), "ws-1", req, ingest.Options{})
				if err != nil || res.Samples != benchSeries {
					b.Fatalf("%+v %v", res, err)
				}
			}
			push() // the series are known from here on
			b.ReportAllocs()
			for b.Loop() {
				push()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/series")
		})
	}
}
