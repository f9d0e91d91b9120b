package app

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/testutil"
)

type defaultLimits struct{ l limits.Limits }

func (d *defaultLimits) For(string) *limits.Limits { return &d.l }

// Two processes sharing a bucket (and a results cache) agree on a workspace's cache
// version, and every reconfiguration gives a version not seen before, a retention set
// back to an earlier value included; a deleted workspace is not cached.
func TestResultsCacheVersionAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*meta.Store, func(context.Context, string) (string, bool)) {
		b, err := bucket.NewFilesystem(dir)
		if err != nil {
			t.Fatal(err)
		}
		s := meta.New(meta.Config{PollInterval: time.Hour}, b, nil, prometheus.NewRegistry())
		if err := s.Load(ctx); err != nil {
			t.Fatal(err)
		}
		return s, resultsCacheVersion(s, compactor.StoreWorkspaces{Store: s, Limits: &defaultLimits{limits.Default()}}, &fakeHistory{}, time.Now)
	}
	a, versionA := open()
	b, versionB := open()
	const id = "ws-00000000-0000-0000-0000-000000000001"
	now := time.Now().UTC()
	if err := a.CreateWorkspace(ctx, meta.Workspace{ID: id, ARN: "arn:" + id, Status: meta.StatusActive, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	agree := func() string {
		t.Helper()
		if err := b.Refresh(ctx, id); err != nil { // b reads what a wrote, as its poll would
			t.Fatal(err)
		}
		va, okA := versionA(ctx, id)
		vb, okB := versionB(ctx, id)
		if !okA || !okB || va != vb {
			t.Fatalf("versions %q (%v) and %q (%v), want one", va, okA, vb, okB)
		}
		return va
	}
	seen := map[string]bool{agree(): true}
	for _, days := range []int{7, 0, 7, 7} { // 0: the default, 150 days
		if _, err := a.UpdateWorkspace(ctx, id, func(w *meta.Workspace) error {
			w.Configuration.RetentionPeriodInDays = days
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		v := agree()
		if seen[v] {
			t.Fatalf("retention %d days: version %q seen before", days, v)
		}
		seen[v] = true
	}
	if err := a.DeleteWorkspace(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx, id); err != nil {
		t.Fatal(err)
	}
	if v, ok := versionB(ctx, id); ok {
		t.Errorf("a deleted workspace has version %q", v)
	}
}

type fakeHistory struct {
	oldest   int64
	imported []ulid.ULID
	ok       bool
}

func (h *fakeHistory) History(context.Context, string) (int64, []ulid.ULID, bool, error) {
	return h.oldest, h.imported, h.ok, nil
}

// The version changes when the bucket's blocks change the past: history imported, and
// samples missing inside the retention the workspace has now (deleted under a shorter
// one, the workspace record unchanged: an overrides file). It stays when nothing did.
func TestResultsCacheVersionFollowsBlocks(t *testing.T) {
	ctx := context.Background()
	b, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := meta.New(meta.Config{PollInterval: time.Hour}, b, nil, prometheus.NewRegistry())
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	const id = "ws-00000000-0000-0000-0000-000000000001"
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := s.CreateWorkspace(ctx, meta.Workspace{ID: id, ARN: "arn:" + id, Status: meta.StatusActive, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	lim := &defaultLimits{limits.Default()} // 150 days
	h := &fakeHistory{}
	version := resultsCacheVersion(s, compactor.StoreWorkspaces{Store: s, Limits: lim}, h, func() time.Time { return now })
	v := func() string {
		t.Helper()
		v, ok := version(ctx, id)
		if !ok {
			t.Fatal("not cacheable")
		}
		return v
	}
	day := 24 * time.Hour
	empty := v()
	h.oldest, h.ok = now.Add(-10*day).UnixMilli(), true // a young workspace's first blocks
	young := v()
	if young == empty {
		t.Error("the first block does not change the version")
	}
	h.oldest = now.Add(-200 * day).UnixMilli() // history backfilled
	h.imported = []ulid.ULID{ulid.MustNew(1, nil)}
	full := v()
	if full == young {
		t.Error("an import does not change the version")
	}
	now = now.Add(day) // the retention's cutoff moves on; the oldest block is still before it
	if v() != full {
		t.Error("the version changed with the clock alone")
	}
	// 30 days in the overrides for a while, deleting, then 150 again.
	h.oldest = now.Add(-30 * day).UnixMilli()
	if v() == full {
		t.Error("samples deleted inside the retention: the version did not change")
	}
	now = now.Add(121 * day) // the cutoff passed the oldest block: nothing missing inside it
	if v() != full {
		t.Error("the version did not come back once nothing is missing inside the retention")
	}
}

// cacheSteps reads strata_query_results_cache_steps_total{result} from a process' /metrics.
func cacheSteps(t *testing.T, r *running, result string) float64 {
	t.Helper()
	_, body := get(t, r.internal+"/metrics")
	prefix := `strata_query_results_cache_steps_total{result="` + result + `"} `
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// Two processes with one Redis: the second answers from the extents the first evaluated
// (it reads only the bucket, where these samples are not yet), and a retention change
// made through the first makes the second evaluate again.
func TestResultsCacheSharedAcrossProcesses(t *testing.T) {
	redis := testutil.StartRedis(t)
	common := []string{"--bucket.filesystem.dir", t.TempDir(), "--meta.poll-interval", "20ms", "--query.split-interval", "10m",
		"--query.results-cache.backend", "redis", "--query.results-cache.redis.endpoint", redis.Socket}
	p1 := start(t, append([]string{"--data-dir", t.TempDir()}, common...)...)
	p2 := start(t, append([]string{"--data-dir", t.TempDir(), "--target", "read"}, common...)...)
	ws := newWorkspace(t, p1)

	// One sample a minute from 40 to 20 minutes ago: old enough to cache.
	end := time.Now().Truncate(time.Minute).Add(-20 * time.Minute)
	from := end.Add(-20 * time.Minute)
	var samples []prompb.Sample
	for at := from; !at.After(end); at = at.Add(time.Minute) {
		samples = append(samples, prompb.Sample{Value: float64(at.Unix() % 1000), Timestamp: at.UnixMilli()})
	}
	if code, msg, _ := post(t, rwURL(p1, ws), "application/x-protobuf", encodeV1(t, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{Labels: ts("jobs_total", "job", "api"), Samples: samples}},
	})); code != 204 {
		t.Fatalf("write: %d %s", code, msg)
	}
	params := url.Values{"query": {"sum(jobs_total)"}, "start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"60"}}
	query := func(r *running) string {
		t.Helper()
		code, out := queryAPI(t, r, ws, "query_range", params)
		if code != 200 {
			t.Fatalf("range query: %d %v", code, out)
		}
		return fmt.Sprint(out["data"])
	}
	evaluated := query(p1)
	if miss := cacheSteps(t, p1, "miss"); miss != 21 {
		t.Fatalf("first process evaluated %v steps, want 21", miss)
	}
	testutil.Eventually(t, 10*time.Second, "the second process to see the workspace", func() bool {
		code, _ := queryAPI(t, p2, ws, "labels", nil)
		return code == 200
	})
	if got := query(p2); got != evaluated || cacheSteps(t, p2, "hit") != 21 {
		t.Fatalf("second process: %v steps from the cache, answer %s; want 21 and %s", cacheSteps(t, p2, "hit"), got, evaluated)
	}

	ctx := context.Background()
	if _, err := p1.client().UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws), RetentionPeriodInDays: aws.Int32(30)}); err != nil {
		t.Fatal(err)
	}
	waitConfigurationActive(t, p1, ws)
	testutil.Eventually(t, 10*time.Second, "the second process to see the new retention", func() bool {
		out, err := p2.client().DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(ws)})
		return err == nil && aws.ToInt32(out.WorkspaceConfiguration.RetentionPeriodInDays) == 30 && out.WorkspaceConfiguration.Status.StatusCode == "ACTIVE"
	})
	query(p2)
	if miss := cacheSteps(t, p2, "miss"); miss != 21 {
		t.Fatalf("after the retention changed the second process evaluated %v steps, want 21", miss)
	}
}
