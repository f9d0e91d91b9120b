package distributor

import (
	"fmt"
	"unicode/utf8"

	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/usage"
)

const metricNameLabel = "__name__"

// invalidSeries says why a series was refused.
type invalidSeries struct {
	reason usage.Reason
	msg    string
}

// validateLabels checks one series' labels against the naming rules and the limits.
// Unsorted labels are fine (the ingester sorts them); repeated names are not.
func validateLabels(s *remotewrite.Series, lim *limits.Limits) *invalidSeries {
	n := s.NumLabels()
	if lim.MaxLabelNamesPerSeries > 0 && n > lim.MaxLabelNamesPerSeries {
		return &invalidSeries{usage.MaxLabelNamesPerSeries, fmt.Sprintf("series has %d labels, more than the limit of %d labels per series (max_label_names_per_series)", n, lim.MaxLabelNamesPerSeries)}
	}
	var metric []byte
	hasMetric := false
	// Names are checked for duplicates pairwise: series have few labels, and this
	// allocates nothing.
	var seen [80][]byte
	idx := 0
	for name, value := range s.Labels() {
		if string(name) == metricNameLabel {
			hasMetric = true
			metric = value
			if len(value) > 0 && !validMetricName(value) {
				return &invalidSeries{usage.MetricNameInvalid, fmt.Sprintf("metric name %q is invalid", value)}
			}
		} else if !validLabelName(name) {
			return &invalidSeries{usage.LabelInvalid, fmt.Sprintf("label name %q is invalid", name)}
		}
		if lim.MaxLabelNameLength > 0 && len(name) > lim.MaxLabelNameLength {
			return &invalidSeries{usage.LabelNameTooLong, fmt.Sprintf("label name %q is longer than %d bytes (max_label_name_length)", name, lim.MaxLabelNameLength)}
		}
		if lim.MaxLabelValueLength > 0 && len(value) > lim.MaxLabelValueLength {
			return &invalidSeries{usage.LabelValueTooLong, fmt.Sprintf("value of label %q is %d bytes long, more than %d (max_label_value_length)", name, len(value), lim.MaxLabelValueLength)}
		}
		if !utf8.Valid(value) {
			return &invalidSeries{usage.LabelInvalid, fmt.Sprintf("value of label %q is not valid UTF-8", name)}
		}
		if idx < len(seen) {
			for _, prev := range seen[:idx] {
				if string(prev) == string(name) {
					return &invalidSeries{usage.DuplicateLabelNames, fmt.Sprintf("label name %q appears more than once", name)}
				}
			}
			seen[idx] = name
		}
		idx++
	}
	if !hasMetric || len(metric) == 0 {
		return &invalidSeries{usage.MissingMetricName, "series has no metric name (__name__ label)"}
	}
	return nil
}

// validMetricName reports whether b matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9' && i > 0) {
			continue
		}
		return false
	}
	return true
}

// validLabelName reports whether b matches [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9' && i > 0) {
			continue
		}
		return false
	}
	return true
}
