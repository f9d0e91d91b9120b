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
	_, _, bad := scanLabels(s, lim, "", "")
	return bad
}

// scanLabels validates a series' labels and, in the same pass, finds the values of the
// HA cluster and replica labels (one pass over the labels is most of the per-series cost).
func scanLabels(s *remotewrite.Series, lim *limits.Limits, clusterLabel, replicaLabel string) (cluster, replica []byte, bad *invalidSeries) {
	n := s.NumLabels()
	if lim.MaxLabelNamesPerSeries > 0 && n > lim.MaxLabelNamesPerSeries {
		// Still find the HA labels: a non-elected replica's series are dropped, not refused.
		for name, value := range s.Labels() {
			switch string(name) {
			case clusterLabel:
				cluster = value
			case replicaLabel:
				replica = value
			}
		}
		return cluster, replica, &invalidSeries{usage.MaxLabelNamesPerSeries, fmt.Sprintf("series has %d labels, more than the limit of %d labels per series (max_label_names_per_series)", n, lim.MaxLabelNamesPerSeries)}
	}
	var metric []byte
	hasMetric := false
	// Names are checked for duplicates pairwise: series have few labels, and this
	// allocates nothing.
	var seen [80][]byte
	idx := 0
	for name, value := range s.Labels() {
		switch string(name) {
		case clusterLabel:
			cluster = value
		case replicaLabel:
			replica = value
		}
		if bad != nil {
			continue // keep looking for the HA labels only
		}
		if string(name) == metricNameLabel {
			hasMetric = true
			metric = value
			if len(value) > 0 && !validMetricName(value) {
				bad = &invalidSeries{usage.MetricNameInvalid, fmt.Sprintf("metric name %q is invalid", value)}
				continue
			}
		} else if !validLabelName(name) {
			bad = &invalidSeries{usage.LabelInvalid, fmt.Sprintf("label name %q is invalid", name)}
			continue
		}
		if lim.MaxLabelNameLength > 0 && len(name) > lim.MaxLabelNameLength {
			bad = &invalidSeries{usage.LabelNameTooLong, fmt.Sprintf("label name %q is longer than %d bytes (max_label_name_length)", name, lim.MaxLabelNameLength)}
			continue
		}
		if lim.MaxLabelValueLength > 0 && len(value) > lim.MaxLabelValueLength {
			bad = &invalidSeries{usage.LabelValueTooLong, fmt.Sprintf("value of label %q is %d bytes long, more than %d (max_label_value_length)", name, len(value), lim.MaxLabelValueLength)}
			continue
		}
		if !utf8.Valid(value) {
			bad = &invalidSeries{usage.LabelInvalid, fmt.Sprintf("value of label %q is not valid UTF-8", name)}
			continue
		}
		if idx < len(seen) {
			for _, prev := range seen[:idx] {
				if string(prev) == string(name) {
					bad = &invalidSeries{usage.DuplicateLabelNames, fmt.Sprintf("label name %q appears more than once", name)}
					break
				}
			}
			seen[idx] = name
		}
		idx++
	}
	if bad == nil && (!hasMetric || len(metric) == 0) {
		bad = &invalidSeries{usage.MissingMetricName, "series has no metric name (__name__ label)"}
	}
	return cluster, replica, bad
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
