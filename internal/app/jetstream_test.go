package app

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/testutil"
)

// freeAddr returns a loopback address nothing listens on, for a listener that takes no
// port 0 (the embedded NATS server's address is given to the others up front).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// queryValue waits until an instant query on r answers want.
func queryValue(t *testing.T, r *running, ws, query string, at time.Time, want string) {
	t.Helper()
	creds := &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	q := fmt.Sprintf("%s/workspaces/%s/api/v1/query?query=%s&time=%d", r.url, ws, query, at.Unix())
	var (
		code int
		body string
	)
	if !testutil.Poll(20*time.Second, 50*time.Millisecond, func() bool {
		code, body = signedGet(t, creds, q)
		return code == 200 && strings.Contains(body, `"`+want+`"]`)
	}) {
		t.Fatalf("timed out after 20s waiting for %s to answer %s; last answer: %d %s", query, want, code, body)
	}
}

// jetStreamWriter starts a write process whose embedded NATS server listens at nats for
// the other processes of a test, and returns it with the flags they share (one bucket,
// 4 partitions); the cluster key is set.
func jetStreamWriter(t *testing.T, extra ...string) (w *running, nats string, common []string) {
	t.Helper()
	t.Setenv("STRATA_JETSTREAM_TOKEN", "cluster-key-for-tests")
	nats = freeAddr(t)
	common = []string{"--bucket.filesystem.dir", t.TempDir(), "--meta.poll-interval", "50ms", "--ingest.backend", "jetstream",
		"--ingest.partitions", "4"}
	w = start(t, append(append([]string{"--data-dir", t.TempDir(), "--target", "write", "--jetstream.listen", nats}, common...), extra...)...)
	return w, nats, common
}

// queryError waits until the query fails on r with an error saying want.
func queryError(t *testing.T, r *running, ws, query string, at time.Time, want string) {
	t.Helper()
	creds := &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	q := fmt.Sprintf("%s/workspaces/%s/api/v1/query?query=%s&time=%d", r.url, ws, query, at.Unix())
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("%s to fail with %q", query, want), func() bool {
		code, body := signedGet(t, creds, q)
		return code >= 400 && strings.Contains(body, want)
	})
}

// labelValues waits until r lists want (JSON) as the values of label name.
func labelValues(t *testing.T, r *running, ws, name, want string) {
	t.Helper()
	creds := &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	var body string
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("the values of %s to be %s", name, want), func() bool {
		var code int
		code, body = signedGet(t, creds, fmt.Sprintf("%s/workspaces/%s/api/v1/label/%s/values", r.url, ws, name))
		return code == 200 && strings.Contains(body, `"data":`+want)
	})
}

func writeSamples(t *testing.T, r *running, ws, name string, at time.Time, n int) {
	t.Helper()
	for k := range n {
		s := prompb.TimeSeries{Labels: ts(name, "k", fmt.Sprint(k%5)), Samples: []prompb.Sample{{Value: 1, Timestamp: at.Add(time.Duration(k/5) * time.Second).UnixMilli()}}}
		if code, msg, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}})); code != 204 {
			t.Fatalf("write: %d %s", code, msg)
		}
	}
}

// One process with the ingest log embedded: a sample is answered once JetStream holds
// it, and the ingester consumes it into the TSDB; after a restart nothing is lost and
// nothing doubled.
func TestJetStreamOneProcess(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--ingest.backend", "jetstream", "--ingest.partitions", "4"}
	r := start(t, args...)
	ws := newWorkspace(t, r)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	writeSamples(t, r, ws, "js_one", at, 50)
	queryValue(t, r, ws, "sum(count_over_time(js_one[5m]))", at.Add(time.Minute), "50")
	r.stop()
	r = start(t, args...)
	queryValue(t, r, ws, "sum(count_over_time(js_one[5m]))", at.Add(time.Minute), "50")
	writeSamples(t, r, ws, "js_one", at.Add(20*time.Second), 10)
	queryValue(t, r, ws, "sum(count_over_time(js_one[5m]))", at.Add(time.Minute), "60")
}

// A write process with the embedded NATS server on the network and an ingester process
// that consumes from it: the write path crosses processes. The ingester process stops
// and starts again; what was written meanwhile is consumed once it is back.
func TestJetStreamWriteAndIngesterProcesses(t *testing.T) {
	w, nats, common := jetStreamWriter(t)
	ingArgs := append([]string{"--data-dir", t.TempDir(), "--target", "ingester,querier,store-gateway", "--jetstream.url", "nats://" + nats}, common...)
	i := start(t, ingArgs...)
	ws := newWorkspace(t, w)
	testutil.Eventually(t, 5*time.Second, "the ingester process to see the workspace", func() bool {
		_, err := i.app.store.GetWorkspace(context.Background(), ws)
		return err == nil
	})
	// A read process has no ingester: it asks the ingester process over the network,
	// with the cluster key, for what is not in the bucket yet (here: everything).
	r := start(t, append([]string{"--data-dir", t.TempDir(), "--target", "read", "--jetstream.url", "nats://" + nats}, common...)...)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	writeSamples(t, w, ws, "js_two", at, 40)
	queryValue(t, i, ws, "sum(count_over_time(js_two[5m]))", at.Add(time.Minute), "40")
	queryValue(t, r, ws, "sum(count_over_time(js_two[5m]))", at.Add(time.Minute), "40")
	labelValues(t, r, ws, "k", `["0","1","2","3","4"]`)

	i.stop()
	// With the only ingester gone the read process says so rather than answer without
	// the recent samples.
	queryError(t, r, ws, "sum(count_over_time(js_two[5m]))", at.Add(time.Minute), "no ingester is ready")
	writeSamples(t, w, ws, "js_two", at.Add(10*time.Second), 20) // acknowledged by JetStream alone
	i = start(t, ingArgs...)
	queryValue(t, i, ws, "sum(count_over_time(js_two[5m]))", at.Add(time.Minute), "60")
	queryValue(t, r, ws, "sum(count_over_time(js_two[5m]))", at.Add(time.Minute), "60")

	// Without the cluster key the NATS server takes no client.
	t.Setenv("STRATA_JETSTREAM_TOKEN", "wrong")
	cfg := load(t, append([]string{"--data-dir", t.TempDir(), "--target", "ingester", "--jetstream.url", "nats://" + nats}, common...)...)
	if _, err := New(context.Background(), cfg, discardLogger()); err == nil || !strings.Contains(err.Error(), "uthorization") {
		t.Fatalf("an ingester with the wrong cluster key: %v", err)
	}
}

// writeSeries writes one sample at at to each of n series of name through r.
func writeSeries(t *testing.T, r *running, ws, name string, at time.Time, n int) {
	t.Helper()
	var wr prompb.WriteRequest
	for k := range n {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ts(name, "k", fmt.Sprint(k)),
			Samples: []prompb.Sample{{Value: 1, Timestamp: at.UnixMilli()}}})
	}
	if code, msg, _ := post(t, rwURL(r, ws), "application/x-protobuf", encodeV1(t, &wr)); code != 204 {
		t.Fatalf("write: %d %s", code, msg)
	}
}

// counterValue is the sum of r's counters called name with the label values given
// (name, value pairs).
func counterValue(t *testing.T, r *running, name string, lv ...string) float64 {
	t.Helper()
	mfs, err := r.app.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k := 0; k+1 < len(lv); k += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == lv[k] && l.GetValue() == lv[k+1] }) {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// A partition taken over from a stopped ingester is replayed from its shipped mark, and
// its samples older than the new owner's TSDB takes outside a replay (two hours older
// than the newest here) are stored, not refused.
func TestNewOwnerReplaysFromTheShippedMark(t *testing.T) {
	c := newZoneCluster(t, "--limits.max-sample-age", "0")
	w, i1, i2, ws := c.w, c.i1, c.i2, c.ws
	const series = 40
	old, recent := time.Now().Add(-2*time.Hour).Truncate(time.Second), time.Now().Add(-time.Minute).Truncate(time.Second)
	// The old samples are stored before any recent one: the partitions are read in
	// parallel, and one behind the others would have them refused as too old.
	writeSeries(t, w, ws, "js_old", old, series)
	queryValue(t, i1, ws, "count(js_old)", old.Add(time.Second), fmt.Sprint(series))
	writeSeries(t, w, ws, "js_recent", recent, series)
	queryValue(t, i1, ws, "count(js_recent)", recent.Add(time.Second), fmt.Sprint(series))
	held := localSeries(t, i1, ws, "js_old")
	if held == 0 || held == series {
		t.Fatalf("the first ingester holds %d of the %d series; want a share", held, series)
	}
	testutil.Eventually(t, 30*time.Second, "the second ingester to publish its partitions' shipped marks", func() bool {
		return counterValue(t, i2, "strata_ingest_log_shipped_marks_published_total") >= 2
	})
	i2.stop()
	testutil.Eventually(t, 20*time.Second, "the first ingester to own and have caught up on every partition", func() bool {
		if len(owns(i1)) != 4 {
			return false
		}
		for p := range 4 {
			if !i1.app.consumer.CaughtUpOn(p) {
				return false
			}
		}
		return true
	})
	if n := counterValue(t, i1, "strata_ingest_log_replays_total", "from", "mark"); n != 2 {
		t.Fatalf("%g partitions taken over from their shipped marks, want 2", n)
	}
	if n := localSeries(t, i1, ws, "js_old"); n != series {
		t.Fatalf("after taking over, the ingester holds %d series of two hours ago, want %d", n, series)
	}
	queryValue(t, i1, ws, "count(js_old)", old.Add(time.Second), fmt.Sprint(series))
}

// zoneCluster is a write process, two ingester processes sharing zone-a's partitions
// (two each, reading only those), a read process of zone-a, and a workspace all of them
// see.
type zoneCluster struct {
	w, i1, i2, r *running
	ws           string
}

// newZoneCluster starts a zoneCluster; extra are flags of the write process.
func newZoneCluster(t *testing.T, extra ...string) zoneCluster {
	t.Helper()
	w, nats, common := jetStreamWriter(t, extra...)
	args := func(target string) []string {
		return append([]string{"--data-dir", t.TempDir(), "--target", target, "--zone", "zone-a", "--jetstream.url", "nats://" + nats}, common...)
	}
	c := zoneCluster{w: w}
	c.i1, c.i2 = start(t, args("ingester,querier,store-gateway")...), start(t, args("ingester,querier,store-gateway")...)
	c.r = start(t, args("read")...)
	testutil.Eventually(t, 20*time.Second, "the two ingesters to own and read two partitions each", func() bool {
		a, b := owns(c.i1), owns(c.i2)
		return len(a) == 2 && len(b) == 2 && !slices.ContainsFunc(a, func(p int) bool { return slices.Contains(b, p) }) &&
			slices.Equal(c.i1.app.consumer.Reading(), a) && slices.Equal(c.i2.app.consumer.Reading(), b)
	})
	// Every process' queriers must know the split too: until the ingesters' renewed
	// entries reach them, one may still be listed with the partitions it gave up.
	testutil.Eventually(t, 10*time.Second, "every process to list each ingester with its own partitions", func() bool {
		want := map[string][]int{c.i1.url: owns(c.i1), c.i2.url: owns(c.i2)}
		for _, p := range []*running{c.i1, c.i2, c.r} {
			got := map[string][]int{}
			for _, m := range p.app.members.Ingesters() {
				got[m.URL] = m.Partitions
			}
			if !maps.EqualFunc(got, want, slices.Equal) {
				return false
			}
		}
		return true
	})
	c.ws = newWorkspace(t, w)
	testutil.Eventually(t, 5*time.Second, "the other processes to see the workspace", func() bool {
		for _, p := range []*running{c.i1, c.i2, c.r} {
			if _, err := p.app.store.GetWorkspace(context.Background(), c.ws); err != nil {
				return false
			}
		}
		return true
	})
	return c
}

// owns lists the partitions r's ingester owns.
func owns(r *running) []int {
	var out []int
	for _, p := range r.app.leases.Assigned() {
		if r.app.leases.Owned(p) {
			out = append(out, p)
		}
	}
	return out
}

// localSeries counts the series of name in r's own ingester.
func localSeries(t *testing.T, r *running, ws, name string) int {
	t.Helper()
	q, err := r.app.Ingester().Querier(context.Background(), ws, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	n := 0
	for ss.Next() {
		n++
	}
	return n
}

// Two ingesters of one zone share the partitions: each reads and holds only its own,
// and a query on either, or on a read process, merges both. When one stops the other
// takes its partitions over and reads them from the log.
func TestIngestersOfAZoneSharePartitions(t *testing.T) {
	c := newZoneCluster(t)
	w, i1, i2, r, ws := c.w, c.i1, c.i2, c.r, c.ws
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	const series = 40
	write := func(at time.Time) { writeSeries(t, w, ws, "js_zone", at, series) }
	write(at)
	for _, p := range []*running{i1, i2, r} {
		queryValue(t, p, ws, "count(js_zone)", at.Add(time.Second), fmt.Sprint(series))
	}
	n1, n2 := localSeries(t, i1, ws, "js_zone"), localSeries(t, i2, ws, "js_zone")
	if n1+n2 != series || n1 == 0 || n2 == 0 {
		t.Fatalf("the ingesters hold %d and %d series; want the %d split between them", n1, n2, series)
	}

	i2.stop()
	testutil.Eventually(t, 20*time.Second, "the first ingester to own every partition", func() bool { return len(owns(i1)) == 4 })
	write(at.Add(10 * time.Second))
	for _, p := range []*running{i1, r} {
		queryValue(t, p, ws, "sum(count_over_time(js_zone[5m]))", at.Add(20*time.Second), fmt.Sprint(2*series))
	}
	if n := localSeries(t, i1, ws, "js_zone"); n != series {
		t.Fatalf("after taking the partitions over the ingester holds %d series, want %d", n, series)
	}
}

// Metric metadata and exemplars come from the ingesters of every partition: through
// either ingester of a zone, or a process without one, all of them.
func TestMetadataAndExemplarsAcrossProcesses(t *testing.T) {
	c := newZoneCluster(t)
	w, i1, i2, r, ws := c.w, c.i1, c.i2, c.r, c.ws
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	const series = 20
	wr := prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "js_meta", Type: prompb.MetricMetadata_COUNTER, Help: "requests served"}}}
	for k := range series {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ts("js_meta", "k", fmt.Sprint(k)),
			Samples:   []prompb.Sample{{Value: 1, Timestamp: at.UnixMilli()}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprintf("trace-%02d", k)}}, Value: 1, Timestamp: at.UnixMilli()}}})
	}
	if code, msg, _ := post(t, rwURL(w, ws), "application/x-protobuf", encodeV1(t, &wr)); code != 204 {
		t.Fatalf("write: %d %s", code, msg)
	}
	queryValue(t, r, ws, "count(js_meta)", at.Add(time.Second), fmt.Sprint(series))
	if n1, n2 := localSeries(t, i1, ws, "js_meta"), localSeries(t, i2, ws, "js_meta"); n1 == 0 || n2 == 0 {
		t.Fatalf("the ingesters hold %d and %d of the series; want them shared", n1, n2)
	}
	creds := &aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	for name, p := range map[string]*running{"first ingester": i1, "second ingester": i2, "read process": r} {
		code, body := signedGet(t, creds, p.url+"/workspaces/"+ws+"/api/v1/metadata?metric=js_meta")
		if code != 200 || !strings.Contains(body, `"help":"requests served"`) {
			t.Errorf("metadata through the %s: %d %s", name, code, body)
		}
		code, body = signedGet(t, creds, fmt.Sprintf("%s/workspaces/%s/api/v1/query_exemplars?query=js_meta&start=%d&end=%d", p.url, ws, at.Add(-time.Minute).Unix(), at.Add(time.Minute).Unix()))
		if n := strings.Count(body, `"trace_id":"trace-`); code != 200 || n != series {
			t.Errorf("exemplars through the %s: %d, %d of %d: %s", name, code, n, series, body)
		}
	}
}

// A change made through one process of a cluster is seen by the others at once (within
// 10 s under a loaded race-detector run; usually milliseconds), though they poll the
// bucket only every hour: the processes tell each other.
func TestClusterSeesChangesAtOnce(t *testing.T) {
	t.Setenv("STRATA_JETSTREAM_TOKEN", "cluster-key-for-tests")
	nats := freeAddr(t)
	common := []string{"--bucket.filesystem.dir", t.TempDir(), "--meta.poll-interval", "1h", "--ingest.backend", "jetstream", "--ingest.partitions", "4"}
	p1 := start(t, append([]string{"--data-dir", t.TempDir(), "--target", "write", "--jetstream.listen", nats}, common...)...)
	p2 := start(t, append([]string{"--data-dir", t.TempDir(), "--target", "write", "--jetstream.url", "nats://" + nats}, common...)...)
	ws := newWorkspace(t, p1)
	ctx := context.Background()
	seen := func(what string, cond func(amp.DescribeWorkspaceOutput, error) bool) {
		t.Helper()
		var (
			out *amp.DescribeWorkspaceOutput
			err error
		)
		if !testutil.Poll(10*time.Second, 10*time.Millisecond, func() bool {
			out, err = p2.client().DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)})
			if out == nil {
				out = &amp.DescribeWorkspaceOutput{}
			}
			return cond(*out, err)
		}) {
			t.Fatalf("the other process did not see %s within 10 s: %+v, %v", what, out.Workspace, err)
		}
	}
	seen("the workspace", func(o amp.DescribeWorkspaceOutput, err error) bool { return err == nil })
	if _, err := p1.client().UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: aws.String(ws), Alias: aws.String("renamed")}); err != nil {
		t.Fatal(err)
	}
	seen("the new alias", func(o amp.DescribeWorkspaceOutput, err error) bool {
		return err == nil && o.Workspace != nil && aws.ToString(o.Workspace.Alias) == "renamed"
	})
	if _, err := p1.client().DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(ws)}); err != nil {
		t.Fatal(err)
	}
	seen("the deletion", func(o amp.DescribeWorkspaceOutput, err error) bool {
		return err != nil || (o.Workspace != nil && o.Workspace.Status != nil && o.Workspace.Status.StatusCode != "ACTIVE")
	})
}
