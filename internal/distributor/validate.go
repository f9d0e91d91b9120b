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
	_, _, _, bad := scanLabels(s, lim, "", "")
	return bad
}

// scanLabels validates a series' labels and, in the same pass, finds the metric name
// and the values of the HA cluster and replica labels (one pass over the labels is most
// of the per-series cost). With too many labels it stops at the count: the HA values it
// returns are then unchecked, see validateHALabel.
func scanLabels(s *remotewrite.Series, lim *limits.Limits, clusterLabel, replicaLabel string) (cluster, replica, metric []byte, bad *invalidSeries) {
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
		return cluster, replica, nil, &invalidSeries{usage.MaxLabelNamesPerSeries, fmt.Sprintf("series has %d labels, more than the limit of %d labels per series (max_label_names_per_series)", n, lim.MaxLabelNamesPerSeries)}
	}
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
				bad = &invalidSeries{usage.MetricNameInvalid, fmt.Sprintf("metric name %.200q is invalid", value)}
				continue
			}
		} else if !validLabelName(name) {
			bad = &invalidSeries{usage.LabelInvalid, fmt.Sprintf("label name %.200q is invalid", name)}
			continue
		}
		if lim.MaxLabelNameLength > 0 && len(name) > lim.MaxLabelNameLength {
			bad = &invalidSeries{usage.LabelNameTooLong, fmt.Sprintf("label name %.200q is longer than %d bytes (max_label_name_length)", name, lim.MaxLabelNameLength)}
			continue
		}
		if lim.MaxLabelValueLength > 0 && len(value) > lim.MaxLabelValueLength {
			bad = &invalidSeries{usage.LabelValueTooLong, fmt.Sprintf("value of label %.200q is %d bytes long, more than %d (max_label_value_length)", name, len(value), lim.MaxLabelValueLength)}
			continue
		}
		if !utf8.Valid(value) {
			bad = &invalidSeries{usage.LabelInvalid, fmt.Sprintf("value of label %.200q is not valid UTF-8", name)}
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
	return cluster, replica, metric, bad
}

// validateHALabel checks an HA cluster or replica label with the rules and limits of
// every label, so that no value the series validation would refuse reaches the HA
// tracker and its persisted elections. The names come from the configuration, but are
// checked too: they are stored (the cluster label) like any other.
func validateHALabel(name string, value []byte, lim *limits.Limits) *invalidSeries {
	switch {
	case !validLabelName([]byte(name)):
		return &invalidSeries{usage.LabelInvalid, fmt.Sprintf("label name %.200q is invalid", name)}
	case lim.MaxLabelNameLength > 0 && len(name) > lim.MaxLabelNameLength:
		return &invalidSeries{usage.LabelNameTooLong, fmt.Sprintf("label name %.200q is longer than %d bytes (max_label_name_length)", name, lim.MaxLabelNameLength)}
	case lim.MaxLabelValueLength > 0 && len(value) > lim.MaxLabelValueLength:
		return &invalidSeries{usage.LabelValueTooLong, fmt.Sprintf("value of label %.200q is %d bytes long, more than %d (max_label_value_length)", name, len(value), lim.MaxLabelValueLength)}
	case !utf8.Valid(value):
		return &invalidSeries{usage.LabelInvalid, fmt.Sprintf("value of label %.200q is not valid UTF-8", name)}
	}
	return nil
}

// invalidMetadata says why a metadata entry was refused.
type invalidMetadata struct {
	reason usage.MetadataReason
	msg    string
}

// validateMetadata checks one metadata entry of the metric family family (remote write
// 1.0's metric_family_name, 2.0's series metric name) against the naming rules and
// max_metadata_length. Messages quote at most 200 characters of a value.
func validateMetadata(family []byte, md *remotewrite.Metadata, lim *limits.Limits) *invalidMetadata {
	maxLen := lim.MaxMetadataLength
	switch {
	case len(family) == 0:
		return &invalidMetadata{usage.MetadataMissingMetricName, "metadata has no metric family name"}
	case maxLen > 0 && len(family) > maxLen:
		return &invalidMetadata{usage.MetadataMetricNameTooLong, fmt.Sprintf("metric family name %.200q is %d bytes long, more than %d (max_metadata_length)", family, len(family), maxLen)}
	case !validMetricName(family):
		return &invalidMetadata{usage.MetadataMetricNameInvalid, fmt.Sprintf("metric family name %.200q is invalid", family)}
	case maxLen > 0 && len(md.Help) > maxLen:
		return &invalidMetadata{usage.MetadataHelpTooLong, fmt.Sprintf("help of metric family %q is %d bytes long, more than %d (max_metadata_length)", family, len(md.Help), maxLen)}
	case maxLen > 0 && len(md.Unit) > maxLen:
		return &invalidMetadata{usage.MetadataUnitTooLong, fmt.Sprintf("unit of metric family %q is %d bytes long, more than %d (max_metadata_length)", family, len(md.Unit), maxLen)}
	case !md.Type.Valid():
		return &invalidMetadata{usage.MetadataTypeInvalid, fmt.Sprintf("metric family %q has metadata of unknown type %d", family, md.Type)}
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
