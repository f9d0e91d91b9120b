package distributor

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/usage"
)

// nopPusher stores nothing, so the benchmarks measure the distributor alone.
type nopPusher struct{}

func (nopPusher) Push(_ context.Context, _ string, req *remotewrite.Request, _ ingest.Options) (ingest.Result, error) {
	var res ingest.Result
	for i := range req.Series {
		res.Samples += len(req.Series[i].Samples)
	}
	return res, nil
}

// benchSeries is the shape of a typical Prometheus shard batch: 2,000 node-exporter-like
// series of ten labels, one sample each.
const benchSeries = 2000

func benchLabels(i int, ha bool) []string {
	l := []string{"__name__", fmt.Sprintf("node_metric_%d_total", i%50), "instance", fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250),
		"job", "node", "cpu", fmt.Sprint(i % 16), "mode", "idle", "device", "eth0",
		"region", "us-east-1", "zone", "us-east-1a", "env", "prod"}
	if ha {
		l = append(l, "cluster", "prod-1", "__replica__", "replica-a")
	} else {
		l = append(l, "team", "infra", "tier", "backend")
	}
	return l
}

func benchV1(ha, withMetadata bool, ts int64) []byte {
	wr := &prompb.WriteRequest{}
	for i := range benchSeries {
		l := benchLabels(i, ha)
		var ls []prompb.Label
		for k := 0; k < len(l); k += 2 {
			ls = append(ls, prompb.Label{Name: l[k], Value: l[k+1]})
		}
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: float64(i), Timestamp: ts}}})
	}
	if withMetadata {
		for i := range 50 {
			wr.Metadata = append(wr.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: fmt.Sprintf("node_metric_%d_total", i), Help: "Seconds the CPUs spent in each mode.", Unit: "seconds"})
		}
	}
	b, err := wr.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, b)
}

func benchV2(ts int64) []byte {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for i := range benchSeries {
		req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings(benchLabels(i, false)...), nil),
			Samples:    []writev2.Sample{{Value: float64(i), Timestamp: ts}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Seconds the CPUs spent in each mode."), UnitRef: st.Symbolize("seconds")},
		})
	}
	req.Symbols = st.Symbols()
	b, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, b)
}

// BenchmarkServeHTTP is one remote-write request through the handler: decode,
// validation, HA dedup, rate limit, with a pusher that stores nothing.
func BenchmarkServeHTTP(b *testing.B) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var lcfg limits.Config
	lcfg.RegisterFlags(fs)
	var dcfg Config
	dcfg.RegisterFlags(fs)
	lcfg.IngestionRate = 0 // measure the path, not the bucket running dry
	reg := prometheus.NewRegistry()
	lim, err := limits.NewOverrides(lcfg, nil, reg)
	if err != nil {
		b.Fatal(err)
	}
	ws := fakeWorkspaces{testWS: {ID: testWS, Status: meta.StatusActive}}
	d, err := New(dcfg, lim, ws, nopPusher{}, usage.New(reg), objstore.NewInMemBucket(), nil, reg)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for _, tc := range []struct {
		name, ct string
		body     []byte
	}{
		{"v1", "application/x-protobuf", benchV1(false, false, now)},
		{"v1-ha", "application/x-protobuf", benchV1(true, false, now)},
		{"v1-metadata", "application/x-protobuf", benchV1(false, true, now)},
		{"v2-metadata", "application/x-protobuf;proto=io.prometheus.write.v2.Request", benchV2(now)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req.SetPathValue("workspaceId", testWS)
			req.Header.Set("Content-Type", tc.ct)
			req.Header.Set("Content-Encoding", "snappy")
			body := bytes.NewReader(tc.body)
			rec := &discardWriter{h: http.Header{}}
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(tc.body)
				req.Body = io.NopCloser(body)
				req.ContentLength = int64(len(tc.body))
				clear(rec.h)
				d.ServeHTTP(rec, req)
				if rec.code != http.StatusNoContent {
					b.Fatalf("status %d", rec.code)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status, so the benchmark
// measures the handler and not a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
