package distributor

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/usage"
)

func series(t *testing.T, lbls ...string) *remotewrite.Request {
	t.Helper()
	ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}}
	for i := 0; i+1 < len(lbls); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: lbls[i], Value: lbls[i+1]})
	}
	return testutil.DecodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}})
}

func TestValidateLabels(t *testing.T) {
	lim := &limits.Limits{MaxLabelNamesPerSeries: 4, MaxLabelNameLength: 10, MaxLabelValueLength: 8}
	for _, tc := range []struct {
		lbls   []string
		reason usage.Reason
		msg    string
	}{
		{[]string{"__name__", "up", "job", "x"}, 255, ""},
		{[]string{"job", "x", "__name__", "up"}, 255, ""}, // unsorted is fine
		{[]string{"__name__", "ns:rule"}, 255, ""},
		{[]string{"job", "x"}, usage.MissingMetricName, "no metric name"},
		{[]string{"__name__", ""}, usage.MissingMetricName, "no metric name"},
		{[]string{"__name__", "1up"}, usage.MetricNameInvalid, `"1up"`},
		{[]string{"__name__", "up-time"}, usage.MetricNameInvalid, `"up-time"`},
		{[]string{"__name__", "up", "a:b", "x"}, usage.LabelInvalid, `"a:b"`},
		{[]string{"__name__", "up", "é", "x"}, usage.LabelInvalid, "invalid"},
		{[]string{"__name__", "up", "a", "x", "a", "y"}, usage.DuplicateLabelNames, `"a"`},
		{[]string{"__name__", "up", "a", "1", "b", "2", "c", "3", "d", "4"}, usage.MaxLabelNamesPerSeries, "5 labels"},
		{[]string{"__name__", "up", "abcdefghijk", "x"}, usage.LabelNameTooLong, "10 bytes"},
		{[]string{"__name__", "up", "a", "123456789"}, usage.LabelValueTooLong, "more than 8"},
		{[]string{"__name__", "up", "a", "\xff\xfe"}, usage.LabelInvalid, "UTF-8"},
	} {
		req := series(t, tc.lbls...)
		got := validateLabels(&req.Series[0], lim)
		if tc.msg == "" {
			if got != nil {
				t.Errorf("%v: unexpected %s: %s", tc.lbls, got.reason, got.msg)
			}
			continue
		}
		if got == nil || got.reason != tc.reason || !strings.Contains(got.msg, tc.msg) {
			t.Errorf("%v: got %+v, want %s containing %q", tc.lbls, got, tc.reason, tc.msg)
		}
	}
}

func TestFilterSamples(t *testing.T) {
	ss := []remotewrite.Sample{{Timestamp: 5}, {Timestamp: 1}, {Timestamp: 7}, {Timestamp: 20}, {Timestamp: 6}}
	kept, old, future := filterSamples(ss, 5, 10)
	if len(kept) != 3 || old != 1 || future != 1 || kept[0].Timestamp != 5 || kept[1].Timestamp != 7 || kept[2].Timestamp != 6 {
		t.Fatalf("kept %v old %d future %d", kept, old, future)
	}
	all := []remotewrite.Sample{{Timestamp: 6}}
	if k, o, f := filterSamples(all, 5, 10); len(k) != 1 || o+f != 0 {
		t.Fatal("in-range samples changed")
	}
}

func TestValidateMetadata(t *testing.T) {
	lim := &limits.Limits{MaxMetadataLength: 8}
	for _, tc := range []struct {
		family string
		md     remotewrite.Metadata
		reason usage.MetadataReason
		msg    string
	}{
		{"up", remotewrite.Metadata{Type: remotewrite.MetricTypeGauge, Help: []byte("12345678"), Unit: []byte("seconds")}, 255, ""},
		{"up", remotewrite.Metadata{Type: remotewrite.MetricTypeStateset}, 255, ""},
		{"up", remotewrite.Metadata{Type: remotewrite.MetricTypeUnknown, Help: []byte("h")}, 255, ""},
		{"", remotewrite.Metadata{Type: remotewrite.MetricTypeGauge}, usage.MetadataMissingMetricName, "no metric family name"},
		{"123456789", remotewrite.Metadata{}, usage.MetadataMetricNameTooLong, "more than 8 (max_metadata_length)"},
		{"up-time", remotewrite.Metadata{}, usage.MetadataMetricNameInvalid, `"up-time" is invalid`},
		{"up", remotewrite.Metadata{Help: []byte("123456789")}, usage.MetadataHelpTooLong, `help of metric family "up" is 9 bytes long`},
		{"up", remotewrite.Metadata{Unit: []byte("123456789")}, usage.MetadataUnitTooLong, `unit of metric family "up" is 9 bytes long`},
		{"up", remotewrite.Metadata{Type: 8}, usage.MetadataTypeInvalid, "unknown type 8"},
		{"up", remotewrite.Metadata{Type: -1}, usage.MetadataTypeInvalid, "unknown type -1"},
	} {
		got := validateMetadata([]byte(tc.family), &tc.md, lim)
		if tc.msg == "" {
			if got != nil {
				t.Errorf("%q %+v: unexpected %s: %s", tc.family, tc.md, got.reason, got.msg)
			}
			continue
		}
		if got == nil || got.reason != tc.reason || !strings.Contains(got.msg, tc.msg) {
			t.Errorf("%q %+v: got %+v, want %s containing %q", tc.family, tc.md, got, tc.reason, tc.msg)
		}
	}
	// 0 means no length limit; messages quote at most 200 characters of a value.
	long := []byte(strings.Repeat("a", 5000))
	if got := validateMetadata(long, &remotewrite.Metadata{Help: long}, &limits.Limits{}); got != nil {
		t.Errorf("no limit: %+v", got)
	}
	if got := validateMetadata(append(long, '-'), &remotewrite.Metadata{}, &limits.Limits{}); got == nil || len(got.msg) > 300 {
		t.Errorf("invalid long name: %+v", got)
	}
}

func TestValidateHALabel(t *testing.T) {
	lim := &limits.Limits{MaxLabelNameLength: 9, MaxLabelValueLength: 4}
	for _, tc := range []struct {
		name, value string
		reason      usage.Reason
	}{
		{"cluster", "prod", 255},
		{"cluster", "", 255},
		{"cluster", "prod1", usage.LabelValueTooLong},
		{"cluster", "\xff", usage.LabelInvalid},
		{"__replica__", "r1", usage.LabelNameTooLong},
		{"a-b", "r1", usage.LabelInvalid},
	} {
		got := validateHALabel(tc.name, []byte(tc.value), lim)
		switch {
		case tc.reason == 255 && got != nil:
			t.Errorf("%s=%q: unexpected %+v", tc.name, tc.value, got)
		case tc.reason != 255 && (got == nil || got.reason != tc.reason):
			t.Errorf("%s=%q: got %+v, want %s", tc.name, tc.value, got, tc.reason)
		}
	}
}
