package query

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Users migrating from Prometheus 2.x see Prometheus 3's semantics. Each difference
// docs/query.md lists ("Coming from Prometheus 2.x") is asked here of Strata and of a real
// Prometheus 2.42 (Debian's) holding the same samples, and both answers are checked, so
// the documentation stays true.
func TestPrometheus2Differences(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	// m{job="demo"} = 1, 2, 3, 4, 5 every 15 s from t0; a label value with a newline.
	data := []fixtureSeries{
		{lset: labels.FromStrings("__name__", "m", "job", "demo")},
		{lset: labels.FromStrings("__name__", "m_nl", "v", "a\nb"), samples: []fixtureSample{{t: ms(0), v: 1}}},
	}
	for i := range 5 {
		data[0].samples = append(data[0].samples, fixtureSample{t: ms(time.Duration(i) * 15 * time.Second), v: float64(i + 1)})
	}

	store := newStore()
	db := openTSDB(t)
	appendFixture(t, db, data)
	store.add(testWS, db)
	strata := newEnv(t, func(_ *Config, d *Deps) { d.Queryables, d.Workspaces = store, store })
	prom := startPrometheus(t, "global:\n  scrape_interval: 1h\n")
	prom.remoteWrite(t, data)

	for _, c := range []struct {
		query         string
		at            time.Duration
		strata, prom2 string
	}{
		// Range selectors are left-open in 3.x: the sample at exactly t-1m is out.
		{`count_over_time(m[1m])`, time.Minute, "4", "5"},
		// rate sees 4 samples over 45 s instead of 5 over 60 s: here the same rate, but
		// computed from other samples (the last digits differ).
		{`rate(m[1m])`, time.Minute, "0.06666666666666665", "0.06666666666666667"},
		// So is the lookback window: 5 minutes after the last sample, nothing.
		{`m`, 6 * time.Minute, "no data", "5"},
		{`m`, 6*time.Minute - time.Millisecond, "5", "5"},
		// holt_winters became double_exponential_smoothing, an experimental function.
		{`holt_winters(m[1m], 0.5, 0.5)`, time.Minute, "bad_data", "5"},
		// UTF-8 metric and label names are quoted inside the braces.
		{`{"m", "job"="demo"}`, time.Minute, "5", "bad_data"},
		// The regular expression's . matches a newline in 3.x.
		{`m_nl{v=~"a.b"}`, time.Minute, "1", "no data"},
	} {
		params := url.Values{"query": {c.query}, "time": {fmt.Sprint(float64(t0.Add(c.at).UnixMilli()) / 1000)}}
		got := summarize(t, strata.do(t, http.MethodGet, testWS, "query", params))
		got2 := summarize(t, prom.do(t, http.MethodGet, "query", params))
		t.Logf("%s at t0+%s: strata %s, prometheus 2.42 %s", c.query, c.at, got, got2)
		if got != c.strata || got2 != c.prom2 {
			t.Errorf("%s at t0+%s: strata answered %s (want %s), prometheus 2.42 %s (want %s)", c.query, c.at, got, c.strata, got2, c.prom2)
		}
	}
}

// summarize reduces an instant query's answer to the value of its single sample, "no
// data", or the error type.
func summarize(t *testing.T, a answer) string {
	t.Helper()
	var body struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Data      struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("%s: %v", a.body, err)
	}
	switch {
	case body.Status != "success":
		return body.ErrorType
	case len(body.Data.Result) == 0:
		return "no data"
	case len(body.Data.Result) > 1:
		return fmt.Sprintf("%d series", len(body.Data.Result))
	}
	return fmt.Sprint(body.Data.Result[0].Value[1])
}
