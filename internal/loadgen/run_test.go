package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// TestRunOrderedAcrossWorkers: with several workers, backfill, churn and a
// server that refuses a third of the requests (retried), every series'
// accepted samples arrive in strictly increasing timestamp order, nothing
// accepted is lost, and the report adds up.
func TestRunOrderedAcrossWorkers(t *testing.T) {
	for _, proto := range []string{ProtocolV1, ProtocolV2} {
		t.Run("protocol="+proto, func(t *testing.T) {
			f, srv := newFakeStore(t)
			var mu sync.Mutex
			rng := rand.New(rand.NewPCG(1, 2))
			f.status = func(int) int {
				mu.Lock()
				defer mu.Unlock()
				switch rng.IntN(6) {
				case 0:
					return http.StatusTooManyRequests
				case 1:
					return http.StatusServiceUnavailable
				}
				return http.StatusNoContent
			}
			cfg := testConfig(srv.URL + "/api/v1/remote_write")
			cfg.Protocol = proto
			cfg.Churn = 0.1
			cfg.MaxRetries = 50
			cfg.Duration = 2 * time.Second // time to catch up under -race
			// Retries in flight at the end must finish, not be dropped, on a busy machine.
			cfg.DrainTimeout = 30 * time.Second
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			total, nseries := f.total()
			f.mu.Lock()
			defer f.mu.Unlock()
			for k, s := range f.series {
				for i := 1; i < len(s); i++ {
					if s[i].t <= s[i-1].t {
						t.Fatalf("%s: out of order: %s", k, fmtSamples(s))
					}
				}
			}
			if rep.DroppedSamples != 0 || rep.Retries == 0 || rep.RequestsByStatus["429"] == 0 || rep.RequestsByStatus["503"] == 0 {
				t.Errorf("dropped %d, retries %d, statuses %v", rep.DroppedSamples, rep.Retries, rep.RequestsByStatus)
			}
			if got := int64(total + f.stale); got != rep.AcceptedSamples {
				t.Errorf("server stored %d samples (+%d stale), report says %d accepted", total, f.stale, rep.AcceptedSamples)
			}
			// On a slow machine the last churned-in series may be created but not sent.
			if f.stale == 0 || nseries <= cfg.ActiveSeries || nseries > rep.SeriesCreated || rep.SeriesCreated-nseries > cfg.ActiveSeries/5 {
				t.Errorf("churn: %d stale markers, %d series stored, %d created", f.stale, nseries, rep.SeriesCreated)
			}
			// Backfill of 2s at 100ms: about 20 steps, then ~20 real-time.
			if min := int64(cfg.ActiveSeries * 20); rep.AcceptedSamples < min {
				t.Errorf("accepted %d samples, want at least %d", rep.AcceptedSamples, min)
			}
			if !rep.CaughtUp {
				t.Error("backfill not caught up")
			}
			if proto == ProtocolV2 {
				if rep.WrittenMismatches != 0 {
					t.Errorf("%d written-header mismatches", rep.WrittenMismatches)
				}
				if f.meta["node_cpu_seconds_total"] != 1 || f.meta["node_load1"] != 2 {
					t.Errorf("v2 metadata types: %v", f.meta)
				}
			}
			// Timestamps are aligned to the interval.
			for k, s := range f.series {
				if s[0].t%100 != 0 {
					t.Fatalf("%s: unaligned timestamp %d", k, s[0].t)
				}
				break
			}
		})
	}
}

func TestRetryBehaviour(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // per request; the last repeats
		retries  int64
		accepted bool
	}{
		{"429 then ok", []int{429, 429, 204}, 2, true},
		{"500 then ok", []int{500, 502, 204}, 2, true},
		{"400 not retried", []int{400}, 0, false},
		{"403 not retried", []int{403}, 0, false},
		{"500 until out of retries", []int{500}, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFakeStore(t)
			f.status = func(n int) int { return tc.statuses[min(n, len(tc.statuses))-1] }
			cfg := testConfig(srv.URL + "/api/v1/remote_write")
			cfg.ActiveSeries, cfg.BatchSize, cfg.Concurrency, cfg.Backfill = 10, 10, 1, 0
			cfg.Duration, cfg.ScrapeInterval = 500*time.Millisecond, 10*time.Second // one step, one request
			cfg.Now = stepStartClock(cfg.ScrapeInterval)
			cfg.MaxRetries = 3
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Retries != tc.retries || rep.Requests != tc.retries+1 {
				t.Errorf("%d retries in %d requests, want %d", rep.Retries, rep.Requests, tc.retries)
			}
			if tc.accepted != (rep.AcceptedSamples == 10) || tc.accepted != (rep.DroppedSamples == 0) {
				t.Errorf("accepted %d, dropped %d", rep.AcceptedSamples, rep.DroppedSamples)
			}
			if !tc.accepted && len(rep.ErrorMessages) == 0 || !tc.accepted && !strings.Contains(rep.ErrorMessages[0], "fake says") {
				t.Errorf("error messages %q", rep.ErrorMessages)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var n atomic.Int32
	var first time.Time
	var gap time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			return
		}
		gap = time.Since(first)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.ActiveSeries, cfg.BatchSize, cfg.Concurrency, cfg.Backfill = 10, 10, 1, 0
	cfg.ScrapeInterval, cfg.Duration = 10*time.Second, 3*time.Second
	cfg.Now = stepStartClock(cfg.ScrapeInterval)
	cfg.MaxBackoff = 2 * time.Second
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.AcceptedSamples != 10 || gap < 900*time.Millisecond {
		t.Errorf("accepted %d, retried after %v", rep.AcceptedSamples, gap)
	}
}

// TestDurationBound: the run stops by itself even when the server never
// answers: at Duration nothing new is sent, and requests in flight are cut
// after DrainTimeout.
func TestDurationBound(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := testConfig(srv.URL)
	cfg.Duration, cfg.DrainTimeout, cfg.Timeout = 300*time.Millisecond, 200*time.Millisecond, time.Minute
	start := time.Now()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("run took %v, want about 500ms", el)
	}
	if rep.AcceptedSamples != 0 || rep.DroppedRequests != int64(cfg.Concurrency) || rep.Errors != int64(cfg.Concurrency) {
		t.Errorf("accepted %d, dropped requests %d, errors %d", rep.AcceptedSamples, rep.DroppedRequests, rep.Errors)
	}

	// A long real-time run also stops on time, between two steps.
	f, srv2 := newFakeStore(t)
	cfg = testConfig(srv2.URL + "/api/v1/remote_write")
	cfg.Backfill, cfg.ScrapeInterval, cfg.Duration = 0, 10*time.Second, 400*time.Millisecond
	cfg.Now = stepStartClock(cfg.ScrapeInterval)
	start = time.Now()
	rep, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 350*time.Millisecond || el > time.Second {
		t.Errorf("run took %v, want 400ms", el)
	}
	if n, _ := f.total(); n != cfg.ActiveSeries || rep.AcceptedSamples != int64(n) {
		t.Errorf("stored %d samples, accepted %d; want one step of %d", n, rep.AcceptedSamples, cfg.ActiveSeries)
	}
}

// TestSigV4: requests carry a SigV4 Authorization header for service aps
// that re-signing the received request with aws-sdk-go-v2 reproduces.
func TestSigV4(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "token"}
	f, srv := newFakeStore(t)
	var checked, queries atomic.Int32
	f.check = func(r *http.Request, body []byte) {
		if r.URL.Path == "/api/v1/query" {
			queries.Add(1)
		}
		auth := r.Header.Get("Authorization")
		if !strings.Contains(auth, "/eu-west-1/aps/aws4_request") || !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") {
			t.Errorf("Authorization %q", auth)
			return
		}
		if err := resign(r, body, creds, "eu-west-1"); err != nil {
			t.Error(err)
			return
		}
		checked.Add(1)
	}
	cfg := testConfig(srv.URL + "/api/v1/remote_write")
	cfg.SigV4, cfg.SigV4Region, cfg.Verify = true, "eu-west-1", true
	cfg.Credentials = credentials.StaticCredentialsProvider{Value: creds}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if q := int64(queries.Load()); checked.Load() == 0 || int64(checked.Load()) != rep.Requests+q || q != int64(rep.Verify.Queries) || !rep.Verify.OK() {
		t.Errorf("%d of %d writes and %d queries verified", checked.Load(), rep.Requests, q)
	}
	cfg.Verify = false

	// Without credentials anywhere, --sigv4 fails before sending.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg.Credentials = nil
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("no credentials: err = %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", creds.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", creds.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", creds.SessionToken)
	checked.Store(0)
	queries.Store(0)
	rep, err = Run(context.Background(), cfg) // credentials from the environment
	if err != nil || checked.Load() == 0 || int64(checked.Load()) != rep.Requests {
		t.Errorf("env credentials: err %v, %d of %d verified", err, checked.Load(), rep.Requests)
	}
}

// resign signs a copy of the received request (only the headers it says it
// signed) at the same time and compares the signatures.
func resign(r *http.Request, body []byte, creds aws.Credentials, region string) error {
	auth := r.Header.Get("Authorization")
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	for _, h := range strings.Split(signed, ";") {
		if h != "host" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	req.Header.Del("X-Amz-Date")
	req.Header.Del("X-Amz-Security-Token")
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hashHex(body), "aps", region, when); err != nil {
		return err
	}
	if got := req.Header.Get("Authorization"); got != auth {
		return &signatureError{got, auth}
	}
	return nil
}

type signatureError struct{ want, got string }

func (e *signatureError) Error() string {
	return "signature mismatch:\nwant " + e.want + "\ngot  " + e.got
}

func TestVerify(t *testing.T) {
	f, srv := newFakeStore(t)
	cfg := testConfig(srv.URL + "/api/v1/remote_write")
	cfg.Verify, cfg.Churn = true, 0.2
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := rep.Verify
	// Every series the store holds was checked. (A series created in the last moments
	// of a slow run may have had no sample acknowledged: it is created, not checked.)
	total, nseries := f.total()
	if !v.OK() || v.CheckedSamples != int64(total) || v.CheckedSamples == 0 || v.Series != nseries || v.Series > rep.SeriesCreated || v.Rounds != 1 {
		t.Fatalf("verify %+v; stored %d samples of %d series; %d series created", v, total, nseries, rep.SeriesCreated)
	}
	if v.Queries != v.Instances || v.Instances <= 3 {
		t.Errorf("%d queries for %d instances", v.Queries, v.Instances)
	}
}

// TestVerifyFindsLoss: acknowledged samples the store does not return are
// counted exactly, re-checked until the timeout, and the first few listed.
func TestVerifyFindsLoss(t *testing.T) {
	f, srv := newFakeStore(t)
	lost := func(series string, ts int64) bool { return strings.Contains(series, `mode="idle"`) && ts%300 == 0 }
	f.hide = lost
	cfg := testConfig(srv.URL + "/api/v1/remote_write")
	cfg.Verify, cfg.VerifyTimeout = true, 3500*time.Millisecond
	start := time.Now()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	f.mu.Lock()
	for k, ss := range f.series {
		for _, s := range ss {
			if lost(k, s.t) {
				want++
			}
		}
	}
	f.mu.Unlock()
	v := rep.Verify
	if v.OK() || v.MissingSamples != want || want == 0 || v.WrongValues != 0 || len(v.Problems) != maxProblems || v.Rounds < 2 {
		t.Fatalf("verify %+v, want %d missing", v, want)
	}
	if p := v.Problems[0]; p.Got != nil || !lost(p.Series, p.Timestamp.UnixMilli()) || !strings.Contains(p.String(), "missing {") {
		t.Errorf("first problem %v", p)
	}
	if el := time.Since(start); el > cfg.Duration+cfg.VerifyTimeout+2*time.Second {
		t.Errorf("took %v", el)
	}
	var out bytes.Buffer
	rep.WriteText(&out)
	if !strings.Contains(out.String(), "verify:    FAILED") {
		t.Errorf("text report:\n%s", out.String())
	}
}

// TestVerifyFindsWrongValues: a sample returned with another value than
// was sent is reported with both values.
func TestVerifyFindsWrongValues(t *testing.T) {
	f, srv := newFakeStore(t)
	cfg := testConfig(srv.URL + "/api/v1/remote_write")
	cfg.Verify, cfg.VerifyTimeout = true, 1500*time.Millisecond
	f.mutate = func(series string, ts int64, v float64) float64 {
		if strings.Contains(series, `__name__="node_load5"`) && ts%500 == 0 {
			return v + 0.5
		}
		return v
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := rep.Verify
	if v.OK() || v.MissingSamples != 0 || v.WrongValues == 0 || len(v.Problems) == 0 {
		t.Fatalf("verify %+v", v)
	}
	if p := v.Problems[0]; p.Got == nil || *p.Got != p.Want+0.5 {
		t.Errorf("problem %v", p)
	}
}

// TestVerifyQueryErrors: a store that refuses queries fails verification
// with an error, after bounded retries of 5xx.
func TestVerifyQueryErrors(t *testing.T) {
	var queries atomic.Int32
	f, srv := newFakeStore(t)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/remote_write", f)
	mux.HandleFunc("/bad/query", func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		http.Error(w, "overloaded", 503)
	})
	srv2 := httptest.NewServer(mux)
	defer srv2.Close()
	_ = srv
	cfg := testConfig(srv2.URL + "/api/v1/remote_write")
	cfg.Verify, cfg.QueryURL, cfg.Concurrency = true, srv2.URL+"/bad/", 1
	rep, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "503") || rep.AcceptedSamples == 0 {
		t.Fatalf("err %v, accepted %d", err, rep.AcceptedSamples)
	}
	if n := queries.Load(); n != queryAttempts {
		t.Errorf("%d queries, want %d attempts", n, queryAttempts)
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var h latencyHistogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	s := h.summary()
	for _, c := range []struct {
		got, want time.Duration
	}{{s.P50, 500 * time.Millisecond}, {s.P90, 900 * time.Millisecond}, {s.P99, 990 * time.Millisecond}, {s.Max, time.Second}} {
		if !approx(float64(c.got), float64(c.want), 0.006) {
			t.Errorf("got %v, want %v", c.got, c.want)
		}
	}
	if s.Count != 1000 || s.Max != time.Second {
		t.Errorf("%+v", s)
	}
	var o latencyHistogram
	o.add(5 * time.Second)
	o.add(500 * time.Nanosecond)
	h.merge(&o)
	if s := h.summary(); s.Max != 5*time.Second || s.Count != 1002 {
		t.Errorf("merged %+v", s)
	}
	var empty latencyHistogram
	if s := empty.summary(); s != (LatencySummary{}) {
		t.Errorf("empty %+v", s)
	}
}

func TestMainFlagsAndJSON(t *testing.T) {
	f, srv := newFakeStore(t)
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), []string{
		"--url", srv.URL + "/api/v1/remote_write", "--protocol", "2.0", "--active-series", "206",
		"--scrape-interval", "100ms", "--backfill", "1s", "--duration", "300ms", "--batch-size", "500",
		"--concurrency", "3", "--seed", "5", "--label", "cluster=prod", "--label", "team=x",
		"--verify", "--output", "json",
	}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep["protocol"] != "2.0" || rep["seed"] != 5.0 || rep["accepted_samples"].(float64) == 0 || rep["verify"].(map[string]any)["ok"] != true {
		t.Errorf("report %s", out.String())
	}
	f.mu.Lock()
	for k := range f.series {
		if !strings.Contains(k, `cluster="prod"`) || !strings.Contains(k, `team="x"`) || !strings.Contains(k, `env="bench"`) {
			t.Errorf("labels %s", k)
		}
		break
	}
	f.mu.Unlock()

	out.Reset()
	code = runMain(context.Background(), []string{"--url", srv.URL + "/api/v1/remote_write", "--duration", "200ms", "--active-series", "10", "--scrape-interval", "1s"}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "accepted:  ") || !strings.Contains(out.String(), "0 samples (") || !strings.Contains(out.String(), "p99") {
		t.Errorf("exit %d, text report:\n%s", code, out.String())
	}

	for _, args := range [][]string{
		{},
		{"--url", srv.URL, "--duration", "0s"},
		{"--url", srv.URL, "--protocol", "3.0"},
		{"--url", srv.URL, "--label", "instance=x"},
		{"--url", srv.URL, "--output", "yaml"},
		{"--url", "http://h/x", "--verify"}, // no query URL to derive
		{"--nope"},
	} {
		errOut.Reset()
		if code := runMain(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
	if code := runMain(context.Background(), []string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "--active-series") && !strings.Contains(errOut.String(), "-active-series") {
		t.Errorf("help: exit %d", code)
	}

	// Nothing accepted: exit 1.
	f.status = func(int) int { return 400 }
	if code := runMain(context.Background(), []string{"--url", srv.URL + "/api/v1/remote_write", "--duration", "100ms", "--active-series", "10"}, &out, &errOut); code != 1 {
		t.Errorf("all refused: exit %d, want 1", code)
	}
}

func TestQueryURL(t *testing.T) {
	for url, want := range map[string]string{
		"http://h:8080/workspaces/ws-1/api/v1/remote_write": "http://h:8080/workspaces/ws-1/api/v1/",
		"http://127.0.0.1:9090/api/v1/write":                "http://127.0.0.1:9090/api/v1/",
	} {
		if got, err := (Config{URL: url}).queryURL(); err != nil || got != want {
			t.Errorf("%s: %q, %v", url, got, err)
		}
	}
	if got, _ := (Config{URL: "x", QueryURL: "http://q/api/v1"}).queryURL(); got != "http://q/api/v1/" {
		t.Errorf("explicit: %q", got)
	}
}

func TestTimestamps(t *testing.T) {
	for _, ms := range []int64{0, 1, 999, 1000, 1700000000123} {
		got, err := parseUnixMs(formatUnixMs(ms))
		if err != nil || got != ms {
			t.Errorf("%d: %d %v", ms, got, err)
		}
	}
	for s, want := range map[string]int64{"1435781451.781": 1435781451781, "1435781451": 1435781451000, "1435781451.7": 1435781451700} {
		if got, err := parseUnixMs(s); err != nil || got != want {
			t.Errorf("%s: %d %v", s, got, err)
		}
	}
	if _, err := parseUnixMs("1.2345"); err == nil {
		t.Error("sub-millisecond accepted")
	}
}

// TestStopAfterBackfill: the run ends once the backfill is sent, long before
// --duration, and everything sent is the backfill: each series has one sample
// per interval of the backfill window and none from real time.
func TestStopAfterBackfill(t *testing.T) {
	f, srv := newFakeStore(t)
	cfg := testConfig(srv.URL + "/api/v1/remote_write")
	cfg.Duration = time.Hour
	cfg.StopAfterBackfill = true
	// A clock that stands still, between two steps: the backfill is exactly steps
	// (t-2s, t], 20 of them.
	clock := time.Unix(1_700_000_000, 50_000_000)
	cfg.Now = func() time.Time { return clock }
	done := make(chan struct{})
	var rep Report
	var err error
	go func() { defer close(done); rep, err = Run(context.Background(), cfg) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the run did not stop after its backfill")
	}
	if err != nil {
		t.Fatal(err)
	}
	total, nseries := f.total()
	if rep.AcceptedSamples != int64(total) || rep.BackfillSamples != rep.AcceptedSamples {
		t.Fatalf("accepted %d, backfill %d, stored %d: want all equal", rep.AcceptedSamples, rep.BackfillSamples, total)
	}
	if nseries != cfg.ActiveSeries || total != 20*nseries {
		t.Fatalf("stored %d samples of %d series: want 20 steps of %d series", total, nseries, cfg.ActiveSeries)
	}
}

// With workspaces, the workers send to their workspaces' URLs: every workspace gets
// data, and every series is sent.
func TestWorkspaces(t *testing.T) {
	var mu sync.Mutex
	byPath := map[string]int{}
	f, _ := newFakeStore(t)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		byPath[r.URL.Path]++
		mu.Unlock()
		r.URL.Path = "/api/v1/remote_write"
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	cfg := testConfig(front.URL + "/workspaces/{workspace}/api/v1/remote_write")
	cfg.Workspaces = []string{"ws-a", "ws-b", "ws-c"}
	for name, mod := range map[string]func(*Config){
		"fewer workers than workspaces": func(c *Config) { c.Concurrency = 2 },
		"no placeholder":                func(c *Config) { c.URL = front.URL + "/api/v1/remote_write" },
		"verify":                        func(c *Config) { c.Verify = true },
	} {
		bad := cfg
		mod(&bad)
		if err := bad.withDefaults().Validate(); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
	cfg.StopAfterBackfill, cfg.Duration = true, time.Hour
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	total, nseries := f.total()
	if rep.AcceptedSamples != int64(total) || nseries != cfg.ActiveSeries {
		t.Fatalf("accepted %d, stored %d samples of %d series", rep.AcceptedSamples, total, nseries)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ws := range cfg.Workspaces {
		if byPath["/workspaces/"+ws+"/api/v1/remote_write"] == 0 {
			t.Errorf("nothing sent to %s: %v", ws, byPath)
		}
	}
	if len(byPath) != 3 {
		t.Errorf("paths: %v", byPath)
	}
}
