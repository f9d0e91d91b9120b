package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Verification reads every acknowledged sample back through the Prometheus
// HTTP API and compares timestamp and value exactly.
//
// What was acknowledged is known compactly: per series, ranges of steps
// (stepRanges), and the value at a step is replayed from the workload's
// deterministic model. The store is asked one instant query with a range
// selector per instance and time window,
//
//	{instance="host-0007:9100",loadgen_seed="42"}[<window>ms] @ time=<window end>
//
// which returns the raw samples of the instance's ~100 series: far fewer
// queries than one per series, and exact (count_over_time would only count).
// Windows hold at most maxPointsPerQuery samples, so answers stay a few MB.
// Samples acknowledged but not yet visible (an asynchronous store) are
// re-checked, instance by instance, until VerifyTimeout.

const (
	maxPointsPerQuery = 100_000
	maxProblems       = 10
	queryAttempts     = 8 // with the default backoffs, 7.6s of retries
)

// instanceCheck is one instance's series and the outcome of its last check.
type instanceCheck struct {
	id     uint32
	series []*series
	keys   []string // labels.String() of each series

	checked, missing, wrong int64
	problems                []SampleProblem
}

func verify(ctx context.Context, c *client, cfg Config, wl *workload, all []*series, logger *slog.Logger) (*VerifyReport, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.VerifyTimeout)
	defer cancel()
	base, err := cfg.queryURL()
	if err != nil {
		return nil, err
	}
	v := &verifier{c: c, queryURL: base + "query", wl: wl, intervalMs: cfg.ScrapeInterval.Milliseconds(),
		minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff}

	byInstance := map[uint32]*instanceCheck{}
	rep := &VerifyReport{}
	var lb labels.ScratchBuilder
	for _, s := range all {
		if len(s.acked) == 0 {
			continue
		}
		ic := byInstance[s.id]
		if ic == nil {
			ic = &instanceCheck{id: s.id}
			byInstance[s.id] = ic
		}
		ic.series = append(ic.series, s)
		ic.keys = append(ic.keys, wl.seriesLabels(&lb, s.id, int(s.tmpl)).String())
		rep.Series++
		rep.CheckedSamples += s.acked.count()
	}
	pending := make([]*instanceCheck, 0, len(byInstance))
	for _, ic := range byInstance {
		pending = append(pending, ic)
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].id < pending[j].id })
	instances := pending
	rep.Instances = len(instances)

	delay := time.Second
	for round := 1; len(pending) > 0; round++ {
		rep.Rounds = round
		failing, queries, err := v.checkAll(ctx, pending, cfg.Concurrency)
		rep.Queries += queries
		if err != nil {
			if round > 1 && ctx.Err() != nil {
				break // out of time while re-checking: report the last complete round
			}
			rep.Elapsed = time.Since(start)
			return rep, err
		}
		if len(failing) == 0 {
			break
		}
		if dl, _ := ctx.Deadline(); time.Until(dl) < delay+time.Second {
			break
		}
		logger.Info("verify: samples not found yet, checking again", "instances", len(failing), "round", round, "wait", delay)
		if !sleepFor(ctx, delay) {
			break
		}
		delay = min(2*delay, 10*time.Second)
		pending = failing
	}
	for _, ic := range instances {
		rep.MissingSamples += ic.missing
		rep.WrongValues += ic.wrong
		for _, p := range ic.problems {
			if len(rep.Problems) < maxProblems {
				rep.Problems = append(rep.Problems, p)
			}
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

type verifier struct {
	c          *client
	queryURL   string
	wl         *workload
	intervalMs int64
	// A query answered 429, 5xx or not at all is retried like a write.
	minBackoff, maxBackoff time.Duration
}

// checkAll checks instances with up to conc queries in flight and returns
// those with missing or wrong samples.
func (v *verifier) checkAll(ctx context.Context, ics []*instanceCheck, conc int) (failing []*instanceCheck, queries int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex // guards failing, queries, err
		wg    sync.WaitGroup
		next  = make(chan *instanceCheck)
		errs1 error
	)
	for range min(conc, len(ics)) {
		wg.Go(func() {
			for ic := range next {
				n, e := v.check(ctx, ic)
				mu.Lock()
				queries += n
				if e != nil && errs1 == nil {
					errs1 = e
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	for _, ic := range ics {
		select {
		case next <- ic:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if errs1 != nil {
		return nil, queries, errs1
	}
	if ctx.Err() != nil {
		return nil, queries, ctx.Err()
	}
	for _, ic := range ics {
		if ic.missing > 0 || ic.wrong > 0 {
			failing = append(failing, ic)
		}
	}
	return failing, queries, nil
}

// replay recomputes a series' values step by step, as its worker did.
type replay struct {
	p     valueParams
	st    valueState
	k     int64 // last step computed
	v     float64
	first int64
}

func (r *replay) at(k, intervalMs int64) float64 {
	if !r.st.started {
		r.k = r.first - 1
	}
	for r.k < k {
		r.k++
		r.v = r.p.next(&r.st, r.k, intervalMs)
	}
	return r.v
}

// check queries one instance window by window and counts what is missing.
// The outcome replaces ic's only when the check completes.
func (v *verifier) check(ctx context.Context, ic *instanceCheck) (queries int, err error) {
	res := instanceCheck{}
	from, to := int64(math.MaxInt64), int64(math.MinInt64)
	replays := make([]replay, len(ic.series))
	cursor := make([]int, len(ic.series)) // index into acked ranges
	index := make(map[string]int, len(ic.series))
	for i, s := range ic.series {
		a, b, _ := s.acked.bounds()
		from, to = min(from, a), max(to, b)
		replays[i] = replay{p: v.wl.params(s.id, int(s.tmpl)), first: s.first}
		index[ic.keys[i]] = i
	}
	window := max(1, int64(maxPointsPerQuery/len(ic.series)))
	selector := fmt.Sprintf(`{%s=%q,%s=%q}`, labelInstance, instanceName(ic.id), labelSeed, v.wl.seedLabel)
	for a := from; a <= to; a += window {
		b := min(a+window-1, to)
		got, err := v.query(ctx, selector, a, b, index)
		queries++
		if err != nil {
			return queries, fmt.Errorf("instance %s: %w", instanceName(ic.id), err)
		}
		for i, s := range ic.series {
			pts := got[i]
			j := 0
			for ; cursor[i] < len(s.acked); cursor[i]++ {
				r := s.acked[cursor[i]]
				lo, hi := max(r.from, a), min(r.to, b)
				for k := lo; k <= hi; k++ {
					ts := k * v.intervalMs
					want := replays[i].at(k, v.intervalMs)
					res.checked++
					for j < len(pts) && pts[j].t < ts {
						j++
					}
					switch {
					case j == len(pts) || pts[j].t != ts:
						res.missing++
						res.problem(SampleProblem{Series: ic.keys[i], Timestamp: time.UnixMilli(ts), Want: want})
					case pts[j].v != want:
						res.wrong++
						g := pts[j].v
						res.problem(SampleProblem{Series: ic.keys[i], Timestamp: time.UnixMilli(ts), Want: want, Got: &g})
					}
				}
				if r.to > b {
					break // the rest of this range is in the next window
				}
			}
		}
	}
	ic.checked, ic.missing, ic.wrong, ic.problems = res.checked, res.missing, res.wrong, res.problems
	return queries, nil
}

func (ic *instanceCheck) problem(p SampleProblem) {
	if len(ic.problems) < maxProblems {
		ic.problems = append(ic.problems, p)
	}
}

type point struct {
	t int64 // unix ms
	v float64
}

// queryResponse is the part of the Prometheus API answer we read.
type queryResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string    `json:"metric"`
			Values [][2]json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// query asks for the raw samples of selector in steps [a, b] and returns
// them per series index (sorted by time, as Prometheus returns them).
// Series not in index are ignored.
func (v *verifier) query(ctx context.Context, selector string, a, b int64, index map[string]int) (map[int][]point, error) {
	end := b * v.intervalMs
	// The range covers (a*interval - 1ms, end]: exact whether the store's
	// range selector is left-closed (Prometheus 2) or left-open (3).
	rng := (b-a)*v.intervalMs + 1
	form := url.Values{}
	form.Set("query", fmt.Sprintf("%s[%dms]", selector, rng))
	form.Set("time", formatUnixMs(end))
	body := []byte(form.Encode())
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

	var lastErr error
	backoff := v.minBackoff
	for attempt := 0; attempt < queryAttempts; attempt++ {
		if attempt > 0 {
			if !sleepFor(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, v.maxBackoff)
		}
		resp, err := v.c.do(ctx, http.MethodPost, v.queryURL, header, body, "")
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out, retry, err := decodeQuery(resp, index)
		resp.Body.Close()
		if err == nil {
			return out, nil
		}
		lastErr = err
		if !retry {
			break
		}
	}
	if ctx.Err() != nil && lastErr == nil {
		lastErr = ctx.Err()
	}
	return nil, fmt.Errorf("query %s: %w", form.Get("query"), lastErr)
}

func decodeQuery(resp *http.Response, index map[string]int) (out map[int][]point, retry bool, err error) {
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnprocessableEntity {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyToKeep))
		retry = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		return nil, retry, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	var qr queryResponse
	if err := json.NewDecoder(resp.Body).Decode(&qr); err != nil {
		return nil, resp.StatusCode >= 500, fmt.Errorf("HTTP %d: decoding answer: %w", resp.StatusCode, err)
	}
	if qr.Status != "success" {
		return nil, false, fmt.Errorf("HTTP %d: %s: %s", resp.StatusCode, qr.ErrorType, qr.Error)
	}
	if qr.Data.ResultType != "matrix" {
		return nil, false, fmt.Errorf("result type %q, want matrix", qr.Data.ResultType)
	}
	out = make(map[int][]point, len(qr.Data.Result))
	for _, r := range qr.Data.Result {
		i, ok := index[labels.FromMap(r.Metric).String()]
		if !ok {
			continue
		}
		pts := make([]point, 0, len(r.Values))
		for _, pair := range r.Values {
			t, err := parseUnixMs(string(pair[0]))
			if err != nil {
				return nil, false, err
			}
			s, err := strconv.Unquote(string(pair[1]))
			if err != nil {
				return nil, false, fmt.Errorf("sample value %s: %w", pair[1], err)
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, false, fmt.Errorf("sample value %q: %w", s, err)
			}
			pts = append(pts, point{t, f})
		}
		out[i] = pts
	}
	return out, false, nil
}

// formatUnixMs writes ms as decimal seconds, exactly.
func formatUnixMs(ms int64) string {
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000)
}

// parseUnixMs reads a Prometheus API timestamp (decimal seconds, at most
// millisecond precision) without going through a float.
func parseUnixMs(s string) (int64, error) {
	intPart, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || len(frac) > 3 {
		return 0, fmt.Errorf("timestamp %q: not decimal seconds with at most millisecond precision", s)
	}
	ms := int64(0)
	if frac != "" {
		frac += strings.Repeat("0", 3-len(frac))
		if ms, err = strconv.ParseInt(frac, 10, 64); err != nil || ms < 0 {
			return 0, errors.New("timestamp " + strconv.Quote(s) + ": bad fraction")
		}
	}
	if strings.HasPrefix(intPart, "-") {
		return sec*1000 - ms, nil
	}
	return sec*1000 + ms, nil
}
