package migrate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/stratametrics/strata/internal/sigv4proxy"
)

const verifyUsage = `Usage: strata migrate verify --prometheus URL --workspace-endpoint URL [flags]

The dual-write check: while a Prometheus writes to a workspace as well as to its own
storage, runs the same range queries against both over the window they share and lists
every difference — a series one side has and the other lacks, a point present on one side
only, a value that differs beyond --tolerance. The queries come from --queries (one PromQL
expression per line, # for comments) or, by default: series and up by job, and the count
and sum of the Prometheus' ten largest metrics. Requests to the workspace are signed with
the standard AWS credential chain. Exits 1 when a difference is found, 2 when a query
fails on either side.

Flags:
`

// VerifyConfig is what `strata migrate verify` compares.
type VerifyConfig struct {
	Prometheus string
	// WorkspaceEndpoint is the workspace's Prometheus-compatible API
	// (https://…/workspaces/ws-…): /api/v1/query_range is added.
	WorkspaceEndpoint string
	Queries           []string // empty: DefaultVerifyQueries
	Start, End        time.Time
	Step              time.Duration
	Tolerance         float64 // relative
	// PromClient reads the Prometheus; WorkspaceClient signs for the workspace.
	PromClient, WorkspaceClient *http.Client
}

// QueryCheck is one query's comparison.
type QueryCheck struct {
	Query  string
	Series int // on the Prometheus' side
	Points int
	// Differences, at most maxDifferences of them; Total counts them all.
	Differences []string
	Total       int
}

const maxDifferences = 10

// DefaultVerifyQueries are the queries verify runs when none are given: what a migration
// must not lose, and the largest metrics of the Prometheus.
func DefaultVerifyQueries(ctx context.Context, prom *promClient) ([]string, error) {
	qs := []string{
		`count by (job) ({__name__=~".+"})`,
		`sum by (job) (up)`,
	}
	var st struct {
		SeriesCountByMetricName []struct {
			Name  string `json:"name"`
			Value uint64 `json:"value"`
		} `json:"seriesCountByMetricName"`
	}
	if err := prom.get(ctx, "/api/v1/status/tsdb", url.Values{"limit": {"10"}}, &st); err != nil {
		return nil, err
	}
	for _, m := range st.SeriesCountByMetricName {
		if len(qs) >= 2+2*10 {
			break
		}
		sel := strconv.Quote(m.Name)
		qs = append(qs, fmt.Sprintf(`count({__name__=%s})`, sel), fmt.Sprintf(`sum({__name__=%s})`, sel))
	}
	return qs, nil
}

// Verify runs cfg's queries against both sides and compares the answers.
func Verify(ctx context.Context, cfg VerifyConfig) ([]QueryCheck, error) {
	prom := &promClient{base: strings.TrimSuffix(cfg.Prometheus, "/"), hc: cfg.PromClient}
	ws := &promClient{base: strings.TrimSuffix(cfg.WorkspaceEndpoint, "/"), hc: cfg.WorkspaceClient}
	queries := cfg.Queries
	if len(queries) == 0 {
		var err error
		if queries, err = DefaultVerifyQueries(ctx, prom); err != nil {
			return nil, fmt.Errorf("the Prometheus' largest metrics: %w", err)
		}
	}
	var out []QueryCheck
	for _, q := range queries {
		want, err := prom.matrix(ctx, q, cfg.Start, cfg.End, cfg.Step)
		if err != nil {
			return out, fmt.Errorf("%s on the Prometheus: %w", q, err)
		}
		got, err := ws.matrix(ctx, q, cfg.Start, cfg.End, cfg.Step)
		if err != nil {
			return out, fmt.Errorf("%s on the workspace: %w", q, err)
		}
		out = append(out, compareMatrices(q, want, got, cfg.Tolerance))
	}
	return out, nil
}

// series is one series of a range query's answer: its points by timestamp (ms).
type series struct {
	labels labels.Labels
	points map[int64]float64
}

// matrix runs a range query and returns its series by label set.
func (c *promClient) matrix(ctx context.Context, query string, start, end time.Time, step time.Duration) (map[string]series, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	params := url.Values{
		"query": {query},
		"start": {strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	if err := c.get(ctx, "/api/v1/query_range", params, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "matrix" {
		return nil, fmt.Errorf("a %s answer, not a matrix", data.ResultType)
	}
	out := make(map[string]series, len(data.Result))
	for _, r := range data.Result {
		ls := labels.FromMap(r.Metric)
		s := series{labels: ls, points: make(map[int64]float64, len(r.Values))}
		for _, p := range r.Values {
			ts, _ := p[0].(float64)
			str, _ := p[1].(string)
			v, err := strconv.ParseFloat(str, 64)
			if err != nil {
				return nil, fmt.Errorf("value %q of %s: %w", str, ls, err)
			}
			s.points[int64(math.Round(ts*1000))] = v
		}
		out[ls.String()] = s
	}
	return out, nil
}

// compareMatrices lists how got (the workspace's answer) differs from want (the
// Prometheus').
func compareMatrices(q string, want, got map[string]series, tol float64) QueryCheck {
	c := QueryCheck{Query: q, Series: len(want)}
	add := func(format string, args ...any) {
		c.Total++
		if len(c.Differences) < maxDifferences {
			c.Differences = append(c.Differences, fmt.Sprintf(format, args...))
		}
	}
	keys := make([]string, 0, len(want)+len(got))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		w, inWant := want[k]
		g, inGot := got[k]
		switch {
		case !inGot:
			add("%s: only in the Prometheus (%d points)", k, len(w.points))
			continue
		case !inWant:
			add("%s: only in the workspace (%d points)", k, len(g.points))
			continue
		}
		c.Points += len(w.points)
		ts := make([]int64, 0, len(w.points)+len(g.points))
		for t := range w.points {
			ts = append(ts, t)
		}
		for t := range g.points {
			if _, ok := w.points[t]; !ok {
				ts = append(ts, t)
			}
		}
		slices.Sort(ts)
		for _, t := range ts {
			wv, inW := w.points[t]
			gv, inG := g.points[t]
			at := time.UnixMilli(t).UTC().Format(time.RFC3339)
			switch {
			case !inG:
				add("%s at %s: %v in the Prometheus, nothing in the workspace", k, at, wv)
			case !inW:
				add("%s at %s: %v in the workspace, nothing in the Prometheus", k, at, gv)
			case !sameValue(wv, gv, tol):
				add("%s at %s: %v in the Prometheus, %v in the workspace", k, at, wv, gv)
			}
		}
	}
	return c
}

// sameValue compares two answers' values: equal, both NaN, or within tol of each other
// relative to the larger.
func sameValue(a, b, tol float64) bool {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return true
	}
	return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b))
}

func readQueries(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var qs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			qs = append(qs, l)
		}
	}
	return qs, sc.Err()
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("verify", verifyUsage, stderr)
	var cfg VerifyConfig
	fs.StringVar(&cfg.Prometheus, "prometheus", "", "Base URL of the Prometheus (http://host:9090).")
	fs.StringVar(&cfg.WorkspaceEndpoint, "workspace-endpoint", "", "The workspace's query endpoint (https://…/workspaces/ws-…).")
	queries := fs.String("queries", "", "A file of PromQL expressions, one per line (default: series and up by job, the ten largest metrics).")
	window := fs.Duration("window", time.Hour, "How far back the compared window starts, from --end.")
	end := fs.String("end", "", "End of the window, RFC 3339 (default: now less --settle).")
	settle := fs.Duration("settle", 2*time.Minute, "Without --end, how long before now the window ends: the newest samples may still be on their way to the workspace.")
	fs.DurationVar(&cfg.Step, "step", time.Minute, "Step of the range queries.")
	fs.Float64Var(&cfg.Tolerance, "tolerance", 1e-9, "Relative difference two values may have and still be equal.")
	region := fs.String("region", os.Getenv("AWS_REGION"), "The region the workspace's requests are signed for.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if cfg.Prometheus == "" || cfg.WorkspaceEndpoint == "" || fs.NArg() > 0 || cfg.Step <= 0 || *window <= 0 {
		fs.Usage()
		return 2
	}
	cfg.End = time.Now().Add(-*settle)
	if *end != "" {
		t, err := time.Parse(time.RFC3339, *end)
		if err != nil {
			fmt.Fprintln(stderr, "strata migrate verify: --end:", err)
			return 2
		}
		cfg.End = t
	}
	cfg.Start = cfg.End.Add(-*window)
	if *queries != "" {
		qs, err := readQueries(*queries)
		if err != nil {
			fmt.Fprintln(stderr, "strata migrate verify:", err)
			return 2
		}
		cfg.Queries = qs
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(*region))
	if err != nil {
		fmt.Fprintln(stderr, "strata migrate verify:", err)
		return 2
	}
	cfg.PromClient = &http.Client{Timeout: 2 * time.Minute}
	cfg.WorkspaceClient = &http.Client{Timeout: 2 * time.Minute,
		Transport: sigv4proxy.NewTransport(http.DefaultTransport, awsCfg.Credentials, awsCfg.Region, "aps")}
	checks, err := Verify(ctx, cfg)
	diffs := 0
	fmt.Fprintf(stdout, "window %s – %s, step %s\n", cfg.Start.UTC().Format(time.RFC3339), cfg.End.UTC().Format(time.RFC3339), cfg.Step)
	for _, c := range checks {
		if c.Total == 0 {
			fmt.Fprintf(stdout, "ok    %s (%d series, %d points)\n", c.Query, c.Series, c.Points)
			continue
		}
		diffs += c.Total
		fmt.Fprintf(stdout, "DIFF  %s: %d differences\n", c.Query, c.Total)
		for _, d := range c.Differences {
			fmt.Fprintf(stdout, "      %s\n", d)
		}
		if c.Total > len(c.Differences) {
			fmt.Fprintf(stdout, "      … and %d more\n", c.Total-len(c.Differences))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "strata migrate verify:", err)
		return 2
	}
	if diffs > 0 {
		fmt.Fprintf(stdout, "%d differences in %d queries\n", diffs, len(checks))
		return 1
	}
	fmt.Fprintf(stdout, "no differences in %d queries\n", len(checks))
	return 0
}
