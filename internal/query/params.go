package query

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// The defaults of optional start and end parameters: the same instants as Prometheus, so
// clients that echo them back (Grafana does) are understood.
var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeText = minTime.Format(time.RFC3339Nano)
	maxTimeText = maxTime.Format(time.RFC3339Nano)
)

// parseTime reads a float of Unix seconds (rounded to the millisecond) or an RFC 3339 time.
func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// time.Parse handles four-digit years only; the defaults above have more.
	switch s {
	case minTimeText:
		return minTime, nil
	case maxTimeText:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// timeParam reads an optional time parameter.
func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// parseDuration reads float seconds or a Prometheus duration ("1m30s", "2d").
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := f * float64(time.Second)
		// NaN fails every comparison, so test for the valid range rather than its complement.
		if !(ns >= float64(math.MinInt64) && ns < float64(math.MaxInt64)) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// limitParam reads Prometheus 3's limit parameter; zero means no limit.
func limitParam(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("limit must be non-negative")
	}
	return n, nil
}

// hintLimit asks storage for one more item than the limit, so truncation is detectable.
func hintLimit(limit int) int {
	if limit > 0 && limit < math.MaxInt {
		return limit + 1
	}
	return limit
}

// matchersParam parses match[] selectors, refusing sets that would match every series.
func matchersParam(p parser.Parser, values []string) ([][]*labels.Matcher, error) {
	sets, err := p.ParseMetricSelectors(values)
	if err != nil {
		return nil, err
	}
	for _, set := range sets {
		if !selectsSomething(set) {
			return nil, errors.New("match[] must contain at least one non-empty matcher")
		}
	}
	return sets, nil
}

// selectsSomething reports whether a matcher set excludes the empty label set, i.e. has a
// matcher that the empty value fails.
func selectsSomething(set []*labels.Matcher) bool {
	for _, m := range set {
		if m != nil && !m.Matches("") {
			return true
		}
	}
	return false
}

// thresholdParam reads one of AMP's max_samples_processed_*_threshold parameters: a
// positive integer, or absent (zero).
func thresholdParam(r *http.Request, name string) (int64, *apiError) {
	v := r.FormValue(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, invalidParam(name, fmt.Errorf("cannot parse %q to a positive integer", v))
	}
	return n, nil
}

// timeRangeParams parses the optional start and end of the metadata endpoints (series,
// labels, label values, exemplars), defaulting to all time, as Prometheus does.
func timeRangeParams(r *http.Request) (start, end time.Time, aerr *apiError) {
	start, err := timeParam(r, "start", minTime)
	if err != nil {
		return start, end, invalidParam("start", err)
	}
	end, err = timeParam(r, "end", maxTime)
	if err != nil {
		return start, end, invalidParam("end", err)
	}
	return start, end, nil
}

// limitedRangeParams parses limit, then start and end (Prometheus' order of checks, so
// the first invalid parameter is the one named).
func limitedRangeParams(r *http.Request) (limit int, start, end time.Time, aerr *apiError) {
	limit, err := limitParam(r.FormValue("limit"))
	if err != nil {
		return 0, start, end, invalidParam("limit", err)
	}
	start, end, aerr = timeRangeParams(r)
	return limit, start, end, aerr
}
