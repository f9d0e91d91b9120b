package distributor

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
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

	res, err := e.d.Write(context.Background(), testWS, decode(), WriteOptions{})
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

	_, err = e.d.Write(context.Background(), "ws-nope", decode(), WriteOptions{})
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

// A writer that checked its series' labels (CheckV1Labels) under the checks still in
// force is not checked again; under other checks (the limits changed since) it is.
func TestLabelsChecked(t *testing.T) {
	e := newEnv(t, func(l *limits.Limits) { l.MaxLabelNamesPerSeries = 3 })
	checks := e.d.LabelChecks(testWS)
	for _, c := range []struct {
		labels labels.Labels
		ok     bool
	}{
		{labels.FromStrings("__name__", "up", "job", "node"), true},
		{labels.FromStrings("__name__", "up", "cluster", "a"), true}, // no replica: no HA path
		{labels.FromStrings("__name__", "up", "cluster", "a", "__replica__", "r1"), false},
		{labels.FromStrings("__name__", "too_many", "a", "1", "b", "2", "c", "3"), false},
		{labels.FromStrings("__name__", "up", "bad-name", "x"), false},
		{labels.FromStrings("job", "node"), false},
	} {
		got, ok := e.d.CheckV1Labels(testWS, remotewrite.AppendV1Labels(nil, c.labels))
		if got != checks || ok != c.ok {
			t.Errorf("CheckV1Labels(%s) = %q, %v; want %q, %v", c.labels, got, ok, checks, c.ok)
		}
	}
	if _, ok := e.d.CheckV1Labels(testWS, []byte{0x0a, 0x05}); ok {
		t.Error("truncated label fields passed the checks")
	}

	now := time.Now().UnixMilli()
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("too_many", "a", "1", "b", "2", "c", "3"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}},
	}}
	// Checks other than those in force: the series is checked, and refused.
	_, err := e.d.Write(context.Background(), testWS, testutil.DecodeV1(t, wr), WriteOptions{LabelsChecked: "0/0/0/cluster/__replica__"})
	var we *WriteError
	if !errors.As(err, &we) || !contains(we.Msg, "max_label_names_per_series") {
		t.Fatalf("write under stale checks: %v", err)
	}
	// The checks in force: the writer is taken at its word (this one is wrong on purpose,
	// to show the labels were not looked at).
	res, err := e.d.Write(context.Background(), testWS, testutil.DecodeV1(t, wr), WriteOptions{LabelsChecked: checks})
	if err != nil || res.Samples != 1 {
		t.Fatalf("write under the checks in force: %+v %v", res, err)
	}
}
