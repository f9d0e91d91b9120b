package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/loadgen"
)

// clusterLayout places the nodes of a three-node cluster in zones.
type clusterLayout int

const (
	// threeZones: nodes 0, 1 and 2 in zones a, b and c, each ingester reading every
	// partition, as AMP keeps a copy in each of three availability zones. Node 1 lost
	// leaves zone b without an ingester: queriers read zones a and c.
	threeZones clusterLayout = iota
	// sharedZone: node 0 in zone a alone, nodes 1 and 2 in zone b sharing its
	// partitions; node 1 lost moves its partitions' leases to node 2.
	sharedZone
)

// clusterNode is one `strata server` of a three-node cluster: its own data directory and
// address, the shared bucket, the ingest log on JetStream; nats adds
// how it reaches NATS (embedded and clustered, or an external cluster's URL).
//
// Node 0 runs everything; nodes 1 and 2 all but the ruler and alertmanager (one of each
// per cluster), in the zones of the layout. Node 3 runs only a querier and
// store-gateway, in zone b: it reads the others' ingesters over the network, zone b's
// first.
func clusterNode(layout clusterLayout, i int, addr, dataDir, bucket string, nats ...string) []string {
	target, zone := "all", "zone-a"
	switch i {
	case 1:
		target, zone = "write,ingester,read", "zone-b"
	case 2:
		target, zone = "write,ingester,read", "zone-c"
		if layout == sharedZone {
			zone = "zone-b"
		}
	case 3:
		target, zone = "read", "zone-b"
	}
	return append([]string{"--target", target, "--zone", zone, "--data-dir", dataDir, "--listen", addr, "--bucket.filesystem.dir", bucket,
		"--meta.poll-interval", "200ms", "--ingest.backend", "jetstream", "--ingest.partitions", "8",
		// Split by time as docs/operations.md advises a cluster: the ingesters for what
		// they keep locally, the store-gateway only for what is older than 5 h.
		"--querier.query-ingesters-within", "13h", "--querier.query-store-after", "5h"}, nats...)
}

// metric returns the value of an unlabelled metric on p's internal listener; -1 when it
// cannot be read.
func metric(p *proc, name string) float64 {
	resp, err := http.Get(p.InternalURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// settled waits until each zone's ingesters read all eight partitions between them:
// in three zones eight each, with zone b shared four each for nodes 1 and 2.
func settled(t *testing.T, layout clusterLayout, procs [3]*proc) {
	t.Helper()
	want := [3]float64{8, 8, 8}
	if layout == sharedZone {
		want = [3]float64{8, 4, 4}
	}
	var got [3]float64
	waitFor(t, fmt.Sprintf("the ingesters to read %v partitions", want), time.Minute, func() bool {
		for i, p := range procs {
			got[i] = metric(p, "strata_ingest_log_partitions_read")
		}
		return got == want
	}, func() string { return fmt.Sprintf("partitions read by nodes 0, 1, 2: %v", got) })
}

// instantValue runs an instant query on base and returns the first value, "" when the
// answer is empty or an error.
func instantValue(t *testing.T, base, ws, query string, at time.Time) string {
	t.Helper()
	v, _ := queryAnswer(base, ws, query, at)
	return v
}

// queryAnswer is instantValue with the whole answer, for failure messages.
func queryAnswer(base, ws, query string, at time.Time) (string, string) {
	u := fmt.Sprintf("%s/workspaces/%s/api/v1/query?query=%s&time=%d", base, ws, url.QueryEscape(query), at.Unix())
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	sign(req, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	return firstValue(string(b)), string(b)
}

func firstValue(s string) string {
	i := strings.Index(s, `"value":[`)
	if i < 0 {
		return ""
	}
	s = s[i:]
	j := strings.Index(s, `,"`)
	k := strings.Index(s, `"]`)
	if j < 0 || k < j {
		return ""
	}
	return s[j+2 : k]
}

// Three processes in three zones form a cluster through their embedded NATS servers (the
// ingest log replicated 3 ways, in four streams) over one bucket. See testThreeNodes.
func TestThreeNodeClusterSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	t.Setenv("STRATA_JETSTREAM_TOKEN", "integration-cluster-key")
	var clusterAddrs, routes []string
	for range 4 {
		a := freeAddr(t)
		clusterAddrs = append(clusterAddrs, a)
		routes = append(routes, "nats://"+a)
	}
	testThreeNodes(t, threeZones, func(i int) []string {
		// Four streams over the eight partitions: their leaders spread over the servers.
		return []string{"--jetstream.cluster-listen", clusterAddrs[i], "--jetstream.routes", strings.Join(routes, ","),
			"--jetstream.server-name", fmt.Sprintf("node-%d", i), "--jetstream.streams", "4"}
	})
}

// The same against an external cluster of three nats-server processes (built from the
// module in CI), which each Strata process reaches with --jetstream.url and the token;
// two of the Strata processes share a zone, so the lost one's partitions move.
func TestThreeNodesOnExternalNATSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	bin := requireTool(t, "nats-server")
	const token = "integration-external-key"
	t.Setenv("STRATA_JETSTREAM_TOKEN", token)
	var clients, clusters, routes []string
	for range 3 {
		clients = append(clients, freeAddr(t))
		c := freeAddr(t)
		clusters = append(clusters, c)
		routes = append(routes, "nats://"+c)
	}
	for i := range 3 {
		host, port, _ := strings.Cut(clients[i], ":")
		cmd := exec.Command(bin, "-a", host, "-p", port, "-js", "-sd", t.TempDir(), "--name", fmt.Sprintf("nats-%d", i),
			"--cluster_name", "strata-test", "--cluster", "nats://"+clusters[i], "--routes", strings.Join(routes, ","), "--auth", token)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("nats-server %d:\n%s", i, tail(log.String(), 4000))
			}
		})
	}
	var urls []string
	for _, c := range clients {
		urls = append(urls, "nats://"+c)
	}
	testThreeNodes(t, sharedZone, func(int) []string { return []string{"--jetstream.url", strings.Join(urls, ",")} })
}

// testThreeNodes starts three Strata processes over one bucket with the ingest log on
// JetStream (three replicas), natsArgs saying how each reaches NATS. Two load generators
// write through two of them; one of those two is killed with SIGKILL mid-load and
// restarted. Every acknowledged sample is then readable through the others, queries
// answer while it is down, the restarted node catches up, and a workspace created on one
// node is usable on the others at once.
func testThreeNodes(t *testing.T, layout clusterLayout, natsArgs func(i int) []string) {
	bucket := t.TempDir()
	var addrs, dataDirs [4]string
	var procs [3]*proc
	args := func(i int) []string {
		a := clusterNode(layout, i, addrs[i], dataDirs[i], bucket, natsArgs(i)...)
		if i == 3 {
			// The reader shards aggregations: each shard asks the ingesters for its series.
			a = append(a, "--query.shards", "2")
		}
		return a
	}
	// Each listens on a port of its choosing (picked ahead, a port could be taken by an
	// earlier node's own listeners meanwhile); a restarted node takes its port again.
	for i := range addrs {
		addrs[i], dataDirs[i] = "127.0.0.1:0", t.TempDir()
	}
	for i := range procs {
		procs[i] = startStrata(t, args(i)...)
		addrs[i] = strings.TrimPrefix(procs[i].URL, "http://")
	}
	reader := startStrata(t, args(3)...)
	addrs[3] = strings.TrimPrefix(reader.URL, "http://")
	for i, p := range procs {
		// --jetstream.replicas is left to choose: three servers, three replicas.
		if !strings.Contains(p.Log(), `msg="ingest log replicas" component=ingest-log replicas=3`) {
			t.Fatalf("node %d does not replicate the ingest log 3 ways:\n%s", i, p.Log())
		}
	}
	settled(t, layout, procs)
	ws := createWorkspace(t, procs[0].URL)
	// Usable on the others once the cluster has placed the ingest log's stream.
	for i := 1; i < 3; i++ {
		var code int
		waitFor(t, fmt.Sprintf("a remote write to node %d to be stored", i), time.Minute, func() bool {
			code = tryPush(procs[i].URL, ws, float64(i))
			return code == http.StatusNoContent
		}, func() string { return fmt.Sprintf("last status %d\n%s", code, procs[i].Log()) })
	}
	// From then on a workspace created on one node is usable on the others within 1 s
	// (they read its record as its head moves, or on a cache miss).
	second := createWorkspace(t, procs[1].URL)
	for _, i := range []int{0, 2} {
		var code int
		waitFor(t, fmt.Sprintf("a workspace created on node 1 to take writes on node %d", i), time.Second, func() bool {
			code = tryPush(procs[i].URL, second, 1)
			return code == http.StatusNoContent
		}, func() string { return fmt.Sprintf("last status %d\n%s", code, procs[i].Log()) })
	}

	// An HA pair writing through two nodes: one replica is elected across the cluster.
	haPair(t, procs[:], ws, "pair-1", 0, 2)

	type result struct {
		rep loadgen.Report
		err error
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	writes := &writeCounter{next: tr}
	hc := &http.Client{Transport: writes}
	defer hc.CloseIdleConnections()
	run := func(writer, verifier int, seed int64) chan result {
		done := make(chan result, 1)
		go func() {
			cfg := verifiedLoad(hc, procs[writer].URL+"/workspaces/"+ws+"/api/v1/remote_write")
			base := reader.URL
			if verifier >= 0 {
				base = procs[verifier].URL
			}
			cfg.QueryURL = base + "/workspaces/" + ws + "/api/v1/"
			cfg.ActiveSeries, cfg.Backfill, cfg.Duration, cfg.Concurrency = 1000, time.Minute, 10*time.Second, 2
			cfg.Seed, cfg.Labels = seed, map[string]string{"writer": fmt.Sprint(writer)}
			rep, err := loadgen.Run(context.Background(), cfg)
			done <- result{rep, err}
		}()
		return done
	}
	// Writer 0 is verified through the reader, writer 1 (killed) through node 0.
	done0 := run(0, -1, 1)
	done1 := run(1, 0, 2)
	waitFor(t, "the load generators to get 60 writes acknowledged", time.Minute, func() bool { return writes.acked.Load() >= 60 }, procs[1].Log)
	procs[1].kill()
	t.Logf("node 1 killed after %d acknowledged writes", writes.acked.Load())
	if layout == sharedZone {
		// Its partitions go to node 2 once its leases expire.
		waitFor(t, "node 2 to read every partition of zone b", time.Minute, func() bool {
			return metric(procs[2], "strata_ingest_log_partitions_read") == 8
		}, procs[2].Log)
	}
	// Queries keep answering on the survivors while it is down.
	at := time.Now()
	for _, p := range []*proc{procs[0], procs[2], reader} {
		var answer string
		waitFor(t, fmt.Sprintf("%s to answer a query with node 1 down", p.URL), 30*time.Second, func() bool {
			var v string
			v, answer = queryAnswer(p.URL, ws, `count({writer="0"})`, at)
			return v != ""
		}, func() string { return "last answer: " + answer + "\n" + p.Log() })
	}
	waitFor(t, "a write to node 1 to be refused", time.Minute, func() bool { return writes.refused.Load() > 0 })
	procs[1] = startStrata(t, args(1)...)

	for name, done := range map[string]chan result{"writer 0": done0, "writer 1": done1} {
		res := <-done
		if res.err != nil {
			var logs []string
			for i, p := range append(procs[:], reader) {
				logs = append(logs, fmt.Sprintf("--- process %d (warnings and errors):\n%s", i, tail(warnings(p.Log()), 3000)))
			}
			t.Fatalf("%s: %v\n%s", name, res.err, strings.Join(logs, "\n"))
		}
		v := res.rep.Verify
		if v == nil || res.rep.AcceptedSamples == 0 {
			t.Fatalf("%s: nothing accepted or verified: %+v", name, res.rep)
		}
		if !v.OK() {
			t.Fatalf("%s: %d of %d acknowledged samples missing, %d wrong", name, v.MissingSamples, v.CheckedSamples, v.WrongValues)
		}
		t.Logf("%s: %d samples accepted, %d checked through a survivor, none missing", name, res.rep.AcceptedSamples, v.CheckedSamples)
	}
	// The restarted node catches up: it answers as the others do.
	at = time.Now()
	query := `{writer=~".+"}[10m]`
	// Nodes 0 and 2 (zones a and b) agree once both have read what the log holds.
	var want, other int
	waitFor(t, "nodes 0 and 2 to agree", time.Minute, func() bool {
		want, other = sampleCount(t, procs[0].URL, ws, query, at), sampleCount(t, procs[2].URL, ws, query, at)
		return want > 0 && want == other
	}, func() string { return fmt.Sprintf("nodes 0 and 2 answer %d and %d samples", want, other) })
	var got int
	waitFor(t, fmt.Sprintf("the restarted node to catch up (%d samples)", want), time.Minute, func() bool {
		got = sampleCount(t, procs[1].URL, ws, query, at)
		return got == want
	}, func() string { return fmt.Sprintf("it has %d\n%s", got, procs[1].Log()) })
	if got := sampleCount(t, reader.URL, ws, query, at); got != want {
		t.Fatalf("the reader answers %d samples, the nodes %d", got, want)
	}
	// The restarted node took its partitions back.
	settled(t, layout, procs)
	if got := sampleCount(t, reader.URL, ws, query, at); got != want {
		t.Fatalf("with the partitions shared again the reader answers %d samples, the nodes %d", got, want)
	}
	t.Logf("all three nodes hold %d samples, and the reader answers as they do", want)
	// A sharded aggregation on the reader counts what an unsharded one on a node does.
	agg := `count(node_cpu_seconds_total{writer=~".+"})`
	whole, _ := queryAnswer(procs[0].URL, ws, agg, at)
	if sharded, answer := queryAnswer(reader.URL, ws, agg, at); sharded == "" || sharded != whole {
		t.Fatalf("the reader's sharded %s answers %q, node 0's unsharded %q\n%s", agg, sharded, whole, answer)
	}
	if n := metric(reader, `strata_query_sharded_queries_total{outcome="sharded"}`); n < 1 {
		t.Fatalf("the reader sharded %v queries (%v ran whole)", n, metric(reader, `strata_query_sharded_queries_total{outcome="whole"}`))
	}
	// HA dedup still elects one replica across the nodes, the restarted one included.
	haPair(t, procs[:], ws, "pair-2", 1, 2)
}

// haPair writes ten samples from each replica of the HA cluster `cluster`, replica a
// through node na and b through node nb, interleaved, and waits until every node holds
// the elected replica's ten samples only.
func haPair(t *testing.T, procs []*proc, ws, cluster string, na, nb int) {
	t.Helper()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	for k := range 10 {
		for _, w := range []struct {
			node    int
			replica string
			offset  time.Duration
		}{{na, "a", 0}, {nb, "b", 500 * time.Millisecond}} {
			// A 503 (the HA elections bucket still being placed) is retried, as senders do.
			var code int
			waitFor(t, fmt.Sprintf("an HA write to node %d to be stored", w.node), 30*time.Second, func() bool {
				code = pushSample(procs[w.node].URL, ws, "ha_pair", t0.Add(time.Duration(k)*time.Second+w.offset), float64(k),
					"cluster", cluster, "__replica__", w.replica)
				if code != http.StatusNoContent && code != http.StatusServiceUnavailable {
					t.Fatalf("HA write to node %d: %d\n%s", w.node, code, tail(procs[w.node].Log(), 4000))
				}
				return code == http.StatusNoContent
			}, func() string { return fmt.Sprintf("last status %d\n%s", code, procs[w.node].Log()) })
		}
	}
	query := fmt.Sprintf(`ha_pair{cluster=%q}[5m]`, cluster)
	for i := range procs {
		waitFor(t, fmt.Sprintf("node %d to hold the elected replica's 10 samples of %s only", i, cluster), 30*time.Second, func() bool {
			return sampleCount(t, procs[i].URL, ws, query, t0.Add(time.Minute)) == 10
		}, func() string { _, a := queryAnswer(procs[i].URL, ws, query, t0.Add(time.Minute)); return a })
	}
}

// warnings keeps the lines of a log at level WARN or ERROR.
func warnings(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// sampleCount returns the number of samples a range-vector query answers on base; -1
// when it fails.
func sampleCount(t *testing.T, base, ws, query string, at time.Time) int {
	t.Helper()
	_, body := queryAnswer(base, ws, query, at)
	var out struct {
		Status string
		Data   struct {
			Result []struct{ Values [][2]any }
		}
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Status != "success" {
		return -1
	}
	n := 0
	for _, r := range out.Data.Result {
		n += len(r.Values)
	}
	return n
}

// tryPush writes one sample to base and returns the status (0 when unreachable).
func tryPush(base, ws string, v float64) int {
	return pushSample(base, ws, "created_elsewhere", time.Now(), v)
}

// pushSample writes one sample of name with labels (name, value pairs) at ts to base and
// returns the status (0 when unreachable).
func pushSample(base, ws, name string, ts time.Time, v float64, labels ...string) int {
	series := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}},
		Samples: []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}}
	for i := 0; i+1 < len(labels); i += 2 {
		series.Labels = append(series.Labels, prompb.Label{Name: labels[i], Value: labels[i+1]})
	}
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series}}).Marshal()
	if err != nil {
		return 0
	}
	body := snappy.Encode(nil, raw)
	req, _ := http.NewRequest(http.MethodPost, base+"/workspaces/"+ws+"/api/v1/remote_write", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	sign(req, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
