package ingest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/testutil"
)

func request(t *testing.T) *remotewrite.Request {
	t.Helper()
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "__replica__", Value: "a"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}, {Value: 2, Timestamp: 2000}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "down"}}, Samples: []prompb.Sample{{Value: 3, Timestamp: 1000}}},
	}, Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "is it up"}}}
	return testutil.DecodeV1(t, &wr)
}

// summary is what a pusher saw of a request.
func summary(r *remotewrite.Request) string {
	var b strings.Builder
	for i := range r.Series {
		s := &r.Series[i]
		fmt.Fprintf(&b, "%s", s.String())
		for _, smp := range s.Samples {
			fmt.Fprintf(&b, " %g@%d", smp.Value, smp.Timestamp)
		}
		b.WriteString("; ")
	}
	for _, md := range r.Metadata {
		fmt.Fprintf(&b, "meta %s %s %q; ", md.MetricFamilyName, md.Type, md.Help)
	}
	return b.String()
}

type recorder struct {
	seen      []string
	workspace string
	opts      Options
	req       *remotewrite.Request
	res       Result
	err       error
}

func (p *recorder) Push(_ context.Context, workspace string, req *remotewrite.Request, opts Options) (Result, error) {
	p.seen = append(p.seen, summary(req))
	p.workspace, p.opts, p.req = workspace, opts, req
	return p.res, p.err
}

// A filtered request crosses as it is after filtering, with its workspace and options.
func TestLoopbackCarriesTheBatch(t *testing.T) {
	req := request(t)
	req.Series[0].Samples = req.Series[0].Samples[1:]
	req.Series = req.Series[:1]
	want := summary(req)
	rec := &recorder{res: Result{Samples: 1}}
	lb := &Loopback{Next: rec}
	res, err := lb.Push(context.Background(), "ws-1", req, Options{DropLabel: "__replica__"})
	if err != nil || res.Samples != 1 {
		t.Fatalf("Push = %+v, %v", res, err)
	}
	if rec.req == req {
		t.Fatal("the far side got the caller's request, not one decoded from bytes")
	}
	if rec.workspace != "ws-1" || rec.opts.DropLabel != "__replica__" || !slices.Equal(rec.seen, []string{want}) {
		t.Fatalf("far side saw workspace %q, options %+v, batch %q; want ws-1, __replica__, %q", rec.workspace, rec.opts, rec.seen, want)
	}
}

// The answer keeps its counts, refusals and the identity of the typed errors.
func TestAnswerRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		res  Result
		err  error
	}{
		{"stored", Result{Samples: 7, Histograms: 2, Exemplars: 1}, nil},
		{"refused", Result{Samples: 1, Invalid: errors.New("sample-out-of-order: for series up"), Limited: errors.New("per-user series limit of 10 reached"), LimitedQuota: "active_series"}, nil},
		{"deleted", Result{}, fmt.Errorf("ws-1: %w", ErrWorkspaceDeleted)},
		{"stopped", Result{}, ErrStopped},
		{"other", Result{}, errors.New("disk full")},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := ParseAnswer(AppendAnswer(nil, c.res, c.err))
			if fmt.Sprint(err) != fmt.Sprint(c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			for _, sentinel := range []error{ErrWorkspaceDeleted, ErrStopped} {
				if errors.Is(err, sentinel) != errors.Is(c.err, sentinel) {
					t.Fatalf("errors.Is(%v, %v) = %v across the wire", err, sentinel, errors.Is(err, sentinel))
				}
			}
			if res.Samples != c.res.Samples || res.Histograms != c.res.Histograms || res.Exemplars != c.res.Exemplars ||
				fmt.Sprint(res.Invalid) != fmt.Sprint(c.res.Invalid) || fmt.Sprint(res.Limited) != fmt.Sprint(c.res.Limited) ||
				res.LimitedQuota != c.res.LimitedQuota {
				t.Fatalf("result %+v, want %+v", res, c.res)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	good := AppendBatch(nil, "ws-1", request(t), Options{})
	var r remotewrite.Request
	if ws, _, err := ParseBatch(&r, good); err != nil || ws != "ws-1" {
		t.Fatalf("ParseBatch = %q, %v", ws, err)
	}
	for _, bad := range [][]byte{good[:len(good)-1], {0xff}, AppendAnswer(nil, Result{Samples: 1}, nil), nil} {
		if _, _, err := ParseBatch(&r, bad); err == nil {
			t.Errorf("ParseBatch(%x) accepted", bad)
		}
	}
	if _, err := ParseAnswer([]byte{0x08}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated answer: %v", err)
	}
}

// The distributor hands batches to a Pusher and does not know the ingester: the
// boundary can move onto a network or a log without touching it.
func TestDistributorDoesNotImportTheIngester(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/stratametrics/strata/internal/distributor").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/stratametrics/strata/internal/ingester" {
			t.Fatal("internal/distributor depends on internal/ingester")
		}
	}
}
