package distributor

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/testutil"
)

// Write applies what remote write applies: an invalid series is refused with the
// status remote write would answer, the valid ones are stored; an unknown workspace is
// refused whole.
func TestWrite(t *testing.T) {
	e := newEnv(t, func(l *limits.Limits) { l.MaxLabelNamesPerSeries = 3 })
	now := time.Now().UnixMilli()
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("job:up:sum", "job", "node"), Samples: []prompb.Sample{{Value: 2, Timestamp: now}}},
		{Labels: lbls("too_many", "a", "1", "b", "2", "c", "3"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}},
	}}
	decode := func() *remotewrite.Request {
		return testutil.DecodeV1(t, wr)
	}

	res, err := e.d.Write(context.Background(), testWS, decode())
	var we *WriteError
	if !errors.As(err, &we) || we.Status() != http.StatusBadRequest || !contains(we.Msg, "too_many", "1 samples, 0 histograms and 0 exemplars of this request were stored") {
		t.Fatalf("Write: %+v %v", res, err)
	}
	if res.Samples != 1 {
		t.Errorf("samples written = %d", res.Samples)
	}
	if got := e.stored(t); got[`{__name__="job:up:sum", job="node"}`] != 1 || len(got) != 1 {
		t.Errorf("stored = %v", got)
	}

	_, err = e.d.Write(context.Background(), "ws-nope", decode())
	if !errors.As(err, &we) || we.Status() != http.StatusNotFound {
		t.Fatalf("unknown workspace: %v", err)
	}
}

// A write that reaches a stopped ingester (the server is shutting down) is a 503 the
// sender retries, not a 500.
func TestWriteToStoppedIngester(t *testing.T) {
	e := newEnv(t, nil)
	e.stopIngester()
	code, body := e.postV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("up", "job", "node"), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}},
	}})
	if code != http.StatusServiceUnavailable || !contains(body, "shutting down") {
		t.Fatalf("write after the ingester stopped: %d %s", code, body)
	}
}
