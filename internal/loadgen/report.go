package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is what a run did. Run fills it even when it returns an error
// after the sending phase (a failed verification, say).
type Report struct {
	URL            string
	Protocol       string
	Seed           int64
	ActiveSeries   int
	Instances      int // instance slots the active series are spread over
	SeriesCreated  int // distinct series sent, churned-in ones included
	Churn          float64
	ScrapeInterval time.Duration
	Backfill       time.Duration
	// Elapsed is the sending phase, from start until the last worker stopped.
	Elapsed time.Duration
	// CaughtUp is whether every worker reached real time (sent the backfill);
	// CaughtUpAfter is when the last one did, and BackfillSamples how many
	// samples were accepted until then: the server's catch-up throughput is
	// BackfillSamples / CaughtUpAfter.
	CaughtUp        bool
	CaughtUpAfter   time.Duration
	BackfillSamples int64
	// FirstTimestamp and LastTimestamp bound the samples generated.
	FirstTimestamp, LastTimestamp time.Time

	AcceptedSamples          int64 // in 2xx answers (staleness markers of churned series included)
	AcceptedSamplesPerSecond float64
	AcceptedRequests         int64
	DroppedSamples           int64 // in requests given up: other 4xx, retries exhausted, or end of run
	DroppedRequests          int64
	Requests                 int64            // HTTP attempts, retries included
	RequestsByStatus         map[string]int64 // "200", "429", ...; "error" counts attempts without an answer
	Retries                  int64
	Errors                   int64 // attempts without an HTTP answer (connection refused, timeout...)
	// WrittenMismatches counts 2xx answers whose
	// X-Prometheus-Remote-Write-Samples-Written header (remote write 2.0)
	// differs from the number of samples sent.
	WrittenMismatches int64
	Latency           LatencySummary // of attempts that got an answer
	ErrorMessages     []string       // the first few distinct error answers

	Verify *VerifyReport // nil unless Config.Verify
	Attack *AttackReport // nil unless Config.Attack
}

// LatencySummary gives request latency quantiles, within 0.5% (log buckets);
// Max is exact.
type LatencySummary struct {
	Count              int64
	P50, P90, P99, Max time.Duration
}

// VerifyReport is what verification found.
type VerifyReport struct {
	Series         int   // series with acknowledged samples
	Instances      int   // one query or more per instance
	Queries        int   // HTTP queries, re-checks included
	Rounds         int   // passes; more than one when samples were not yet visible
	CheckedSamples int64 // acknowledged samples (staleness markers excepted)
	MissingSamples int64 // acknowledged but not returned
	WrongValues    int64 // returned with another value than was sent
	Elapsed        time.Duration
	// Problems lists the first few missing or wrong samples.
	Problems []SampleProblem
}

// SampleProblem is one acknowledged sample that did not read back.
type SampleProblem struct {
	Series    string
	Timestamp time.Time
	Want      float64
	Got       *float64 // nil: missing
}

func (p SampleProblem) String() string {
	ts := p.Timestamp.UTC().Format(time.RFC3339Nano)
	if p.Got == nil {
		return fmt.Sprintf("missing %s @ %s (%d) want %s", p.Series, ts, p.Timestamp.UnixMilli(), fmtFloat(p.Want))
	}
	return fmt.Sprintf("wrong %s @ %s (%d) want %s got %s", p.Series, ts, p.Timestamp.UnixMilli(), fmtFloat(p.Want), fmtFloat(*p.Got))
}

// OK is whether verification found every acknowledged sample.
func (v *VerifyReport) OK() bool { return v.MissingSamples == 0 && v.WrongValues == 0 }

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// statusKeys sorts "error" last and codes numerically.
func statusKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i] == "error") != (keys[j] == "error") {
			return keys[j] == "error"
		}
		return keys[i] < keys[j]
	})
	return keys
}

// WriteText prints the report for people.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "strata loadgen: remote write %s to %s\n", r.Protocol, r.URL)
	fmt.Fprintf(&b, "  series:    %d active over %d instances, %d created (churn %g/interval), scrape interval %v, seed %d\n",
		r.ActiveSeries, r.Instances, r.SeriesCreated, r.Churn, r.ScrapeInterval, r.Seed)
	fmt.Fprintf(&b, "  run:       %s", fmtDur(r.Elapsed))
	if !r.FirstTimestamp.IsZero() {
		fmt.Fprintf(&b, ", samples from %s to %s", r.FirstTimestamp.UTC().Format(time.RFC3339), r.LastTimestamp.UTC().Format(time.RFC3339))
	}
	if r.Backfill > 0 {
		if r.CaughtUp {
			fmt.Fprintf(&b, "; backfill %v sent in %s", r.Backfill, fmtDur(r.CaughtUpAfter))
			if r.CaughtUpAfter > 0 {
				fmt.Fprintf(&b, " (%d samples, %.0f samples/s)", r.BackfillSamples, float64(r.BackfillSamples)/r.CaughtUpAfter.Seconds())
			}
		} else {
			fmt.Fprintf(&b, "; backfill %v NOT finished within the run", r.Backfill)
		}
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  accepted:  %d samples (%.0f samples/s) in %d requests\n", r.AcceptedSamples, r.AcceptedSamplesPerSecond, r.AcceptedRequests)
	fmt.Fprintf(&b, "  dropped:   %d samples in %d requests\n", r.DroppedSamples, r.DroppedRequests)
	var parts []string
	for _, k := range statusKeys(r.RequestsByStatus) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, r.RequestsByStatus[k]))
	}
	fmt.Fprintf(&b, "  requests:  %d (%s); retries %d; errors %d\n", r.Requests, strings.Join(parts, ", "), r.Retries, r.Errors)
	if r.WrittenMismatches > 0 {
		fmt.Fprintf(&b, "  written:   %d answers reported another number of samples written than sent\n", r.WrittenMismatches)
	}
	l := r.Latency
	fmt.Fprintf(&b, "  latency:   p50 %s  p90 %s  p99 %s  max %s (%d answers)\n", fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max), l.Count)
	for _, m := range r.ErrorMessages {
		fmt.Fprintf(&b, "  error:     %s\n", m)
	}
	if a := r.Attack; a != nil {
		var parts []string
		for _, k := range statusKeys(a.Answers) {
			parts = append(parts, fmt.Sprintf("%s: %d", k, a.Answers[k]))
		}
		fmt.Fprintf(&b, "  attack:    %d slow connections (%s) held; %d opened, %d closed or answered by the server (%s); %d bytes sent\n",
			a.Connections, a.Mode, a.Opened, a.ClosedByServer, strings.Join(parts, ", "), a.BytesSent)
	}
	if v := r.Verify; v != nil {
		verdict := "OK"
		if !v.OK() {
			verdict = "FAILED"
		}
		fmt.Fprintf(&b, "  verify:    %s: %d samples of %d series checked with %d queries in %d rounds (%s): %d missing, %d wrong values\n",
			verdict, v.CheckedSamples, v.Series, v.Queries, v.Rounds, fmtDur(v.Elapsed), v.MissingSamples, v.WrongValues)
		for _, p := range v.Problems {
			fmt.Fprintf(&b, "    %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// MarshalJSON spells durations as seconds and times as RFC 3339.
func (r Report) MarshalJSON() ([]byte, error) {
	type latency struct {
		Count int64   `json:"count"`
		P50   float64 `json:"p50_seconds"`
		P90   float64 `json:"p90_seconds"`
		P99   float64 `json:"p99_seconds"`
		Max   float64 `json:"max_seconds"`
	}
	type problem struct {
		Series    string  `json:"series"`
		Timestamp int64   `json:"timestamp_ms"`
		Want      string  `json:"want"`
		Got       *string `json:"got"`
		Missing   bool    `json:"missing"`
	}
	type verify struct {
		OK             bool      `json:"ok"`
		Series         int       `json:"series"`
		Instances      int       `json:"instances"`
		Queries        int       `json:"queries"`
		Rounds         int       `json:"rounds"`
		CheckedSamples int64     `json:"checked_samples"`
		MissingSamples int64     `json:"missing_samples"`
		WrongValues    int64     `json:"wrong_values"`
		Elapsed        float64   `json:"elapsed_seconds"`
		Problems       []problem `json:"problems"`
	}
	out := struct {
		URL                      string           `json:"url"`
		Protocol                 string           `json:"protocol"`
		Seed                     int64            `json:"seed"`
		ActiveSeries             int              `json:"active_series"`
		Instances                int              `json:"instances"`
		SeriesCreated            int              `json:"series_created"`
		Churn                    float64          `json:"churn"`
		ScrapeInterval           float64          `json:"scrape_interval_seconds"`
		Backfill                 float64          `json:"backfill_seconds"`
		Elapsed                  float64          `json:"elapsed_seconds"`
		CaughtUp                 bool             `json:"caught_up"`
		CaughtUpAfter            float64          `json:"caught_up_after_seconds"`
		BackfillSamples          int64            `json:"backfill_samples"`
		FirstTimestamp           int64            `json:"first_timestamp_ms"`
		LastTimestamp            int64            `json:"last_timestamp_ms"`
		AcceptedSamples          int64            `json:"accepted_samples"`
		AcceptedSamplesPerSecond float64          `json:"accepted_samples_per_second"`
		AcceptedRequests         int64            `json:"accepted_requests"`
		DroppedSamples           int64            `json:"dropped_samples"`
		DroppedRequests          int64            `json:"dropped_requests"`
		Requests                 int64            `json:"requests"`
		RequestsByStatus         map[string]int64 `json:"requests_by_status"`
		Retries                  int64            `json:"retries"`
		Errors                   int64            `json:"errors"`
		WrittenMismatches        int64            `json:"written_header_mismatches"`
		Latency                  latency          `json:"latency"`
		ErrorMessages            []string         `json:"error_messages"`
		Verify                   *verify          `json:"verify,omitempty"`
		Attack                   *AttackReport    `json:"attack,omitempty"`
	}{
		URL: r.URL, Protocol: r.Protocol, Seed: r.Seed, ActiveSeries: r.ActiveSeries, Instances: r.Instances,
		SeriesCreated: r.SeriesCreated, Churn: r.Churn, ScrapeInterval: r.ScrapeInterval.Seconds(),
		Backfill: r.Backfill.Seconds(), Elapsed: r.Elapsed.Seconds(), CaughtUp: r.CaughtUp,
		CaughtUpAfter: r.CaughtUpAfter.Seconds(), BackfillSamples: r.BackfillSamples, AcceptedSamples: r.AcceptedSamples,
		AcceptedSamplesPerSecond: r.AcceptedSamplesPerSecond, AcceptedRequests: r.AcceptedRequests,
		DroppedSamples: r.DroppedSamples, DroppedRequests: r.DroppedRequests, Requests: r.Requests,
		RequestsByStatus: r.RequestsByStatus, Retries: r.Retries, Errors: r.Errors,
		WrittenMismatches: r.WrittenMismatches, ErrorMessages: r.ErrorMessages,
		Latency: latency{Count: r.Latency.Count, P50: r.Latency.P50.Seconds(), P90: r.Latency.P90.Seconds(),
			P99: r.Latency.P99.Seconds(), Max: r.Latency.Max.Seconds()},
		Attack: r.Attack,
	}
	if !r.FirstTimestamp.IsZero() {
		out.FirstTimestamp, out.LastTimestamp = r.FirstTimestamp.UnixMilli(), r.LastTimestamp.UnixMilli()
	}
	if out.RequestsByStatus == nil {
		out.RequestsByStatus = map[string]int64{}
	}
	if out.ErrorMessages == nil {
		out.ErrorMessages = []string{}
	}
	if v := r.Verify; v != nil {
		out.Verify = &verify{OK: v.OK(), Series: v.Series, Instances: v.Instances, Queries: v.Queries, Rounds: v.Rounds,
			CheckedSamples: v.CheckedSamples, MissingSamples: v.MissingSamples, WrongValues: v.WrongValues,
			Elapsed: v.Elapsed.Seconds(), Problems: []problem{}}
		for _, p := range v.Problems {
			q := problem{Series: p.Series, Timestamp: p.Timestamp.UnixMilli(), Want: fmtFloat(p.Want), Missing: p.Got == nil}
			if p.Got != nil {
				g := fmtFloat(*p.Got)
				q.Got = &g
			}
			out.Verify.Problems = append(out.Verify.Problems, q)
		}
	}
	return json.Marshal(out)
}

// latencyHistogram counts durations in log buckets 1% apart, from 1µs to
// about 20 minutes: fixed memory however long the run, quantiles within
// 0.5%. The zero value is ready; not safe for concurrent use (each worker
// has its own, merged at the end).
type latencyHistogram struct {
	buckets [latencyBuckets]int64
	count   int64
	max     time.Duration
}

const (
	latencyBuckets = 2100
	latencyBase    = 1.01
)

var logLatencyBase = math.Log(latencyBase)

func latencyBucket(d time.Duration) int {
	if d <= time.Microsecond {
		return 0
	}
	i := int(math.Log(float64(d)/float64(time.Microsecond)) / logLatencyBase)
	return min(i, latencyBuckets-1)
}

func (h *latencyHistogram) add(d time.Duration) {
	h.buckets[latencyBucket(d)]++
	h.count++
	h.max = max(h.max, d)
}

func (h *latencyHistogram) merge(o *latencyHistogram) {
	for i, n := range o.buckets {
		h.buckets[i] += n
	}
	h.count += o.count
	h.max = max(h.max, o.max)
}

// quantile returns the nearest-rank q-quantile: the geometric middle of its
// bucket, clamped to the maximum.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.count)))
	rank = max(rank, 1)
	var seen int64
	for i, n := range h.buckets {
		seen += n
		if seen >= rank {
			mid := float64(time.Microsecond) * math.Pow(latencyBase, float64(i)+0.5)
			return min(time.Duration(mid), h.max)
		}
	}
	return h.max
}

func (h *latencyHistogram) summary() LatencySummary {
	return LatencySummary{Count: h.count, P50: h.quantile(0.5), P90: h.quantile(0.9), P99: h.quantile(0.99), Max: h.max}
}
