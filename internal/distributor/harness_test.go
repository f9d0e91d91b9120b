package distributor

import (
	"bytes"
	"context"
	"flag"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/ingester"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/usage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testWS = "ws-1"

type fakeWorkspaces map[string]meta.Workspace

func (f fakeWorkspaces) GetWorkspace(_ context.Context, id string) (meta.Workspace, error) {
	if ws, ok := f[id]; ok {
		return ws, nil
	}
	return meta.Workspace{}, meta.ErrNotFound
}

// env is a distributor in front of a real ingester, as single-process mode wires them.
type env struct {
	d   *Distributor
	ing *ingester.Ingester
	reg *prometheus.Registry
	bkt objstore.Bucket
	mux *http.ServeMux
	// stopIngester stops the ingester (ends its Run) and waits for it; idempotent.
	stopIngester func()
}

// newEnv builds the distributor and ingester with the flag defaults, changed by mod.
func newEnv(t testing.TB, mod func(*limits.Limits)) *env {
	t.Helper()
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var lcfg limits.Config
	lcfg.RegisterFlags(fs)
	var dcfg Config
	dcfg.RegisterFlags(fs)
	var icfg ingester.Config
	icfg.RegisterFlags(fs)
	if mod != nil {
		mod(&lcfg.Limits)
	}
	reg := prometheus.NewRegistry()
	lim, err := limits.NewOverrides(lcfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ws := fakeWorkspaces{testWS: {ID: testWS, Status: meta.StatusActive}}
	use := usage.New(reg)
	ing, err := ingester.New(icfg, t.TempDir(), lim, ws, nil, use, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	// Run closes the TSDBs when its context ends; it is the only exported way to.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ing.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	bkt := objstore.NewInMemBucket()
	// The distributor's tests hold it to what crosses the boundary: every batch
	// reaches the ingester through its wire form, as a networked one would receive it
	// (the app's tests cover the direct path).
	d, err := New(dcfg, lim, ws, &ingest.Loopback{Next: ing}, use, bkt, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /workspaces/{workspaceId}/api/v1/remote_write", d)
	return &env{d: d, ing: ing, reg: reg, bkt: bkt, mux: mux, stopIngester: stop}
}

// post sends a snappy-compressed remote-write body through the HTTP handler.
func (e *env) post(t testing.TB, v remotewrite.Version, raw []byte) (int, string) {
	t.Helper()
	ct := "application/x-protobuf"
	if v == remotewrite.V2 {
		ct = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	}
	req := httptest.NewRequest(http.MethodPost, "/workspaces/"+testWS+"/api/v1/remote_write", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Encoding", "snappy")
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func (e *env) postV1(t testing.TB, wr *prompb.WriteRequest) (int, string) {
	t.Helper()
	b, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return e.post(t, remotewrite.V1, b)
}

func (e *env) postV2(t testing.TB, wr *writev2.Request) (int, string) {
	t.Helper()
	b, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return e.post(t, remotewrite.V2, b)
}

// stored counts the float samples of every series of the workspace.
func (e *env) stored(t testing.TB) map[string]int {
	t.Helper()
	q, err := e.ing.Querier(context.Background(), testWS, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]int{}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			out[ss.At().Labels().String()]++
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// metadata returns what /api/v1/metadata would list for the workspace.
func (e *env) metadata(t testing.TB) map[string][]string {
	t.Helper()
	md, err := e.ing.Metadata(context.Background(), testWS, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for name, list := range md {
		for _, m := range list {
			out[name] = append(out[name], string(m.Type)+"|"+m.Help+"|"+m.Unit)
		}
	}
	return out
}

// counter returns the value of the counter name with exactly these label values; 0
// when it does not exist.
func (e *env) counter(t testing.TB, name string, lbls map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(lbls) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if lbls[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func lbls(name string, kv ...string) []prompb.Label {
	out := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
