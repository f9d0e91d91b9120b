package app

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	var body string
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("%s to answer %s", query, want), func() bool {
		var code int
		code, body = signedGet(t, creds, q)
		return code == 200 && strings.Contains(body, `"`+want+`"]`)
	})
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
	t.Setenv("STRATA_JETSTREAM_TOKEN", "cluster-key-for-tests")
	bkt := t.TempDir()
	nats := freeAddr(t)
	common := []string{"--bucket.filesystem.dir", bkt, "--meta.poll-interval", "50ms", "--ingest.backend", "jetstream",
		"--ingest.partitions", "4"}
	w := start(t, append([]string{"--data-dir", t.TempDir(), "--target", "write", "--jetstream.listen", nats}, common...)...)
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
