package query

import (
	"bytes"
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiCase is one request of the comparison with Prometheus: the same request goes to
// Strata and to a Prometheus 2.42 holding the same data (prometheus_test.go), and the
// normalized answers must be equal byte for byte. The goldens under testdata/ hold
// Prometheus' normalized answers, so the comparison also runs where Prometheus is not
// installed (golden_test.go).
type apiCase struct {
	name   string
	path   string // under /api/v1/
	params url.Values
	// only3x says why Prometheus 2.42 cannot give Prometheus 3's answer (an endpoint or
	// parameter it lacks). Such a case is compared with our own reviewed answer
	// (testdata/strata/), and the live test checks that 2.42 does answer differently.
	only3x string
	// drop3xAnnotations says why our answer carries warnings or infos that 2.42 has no
	// notion of (PromQL annotations came with Prometheus 2.46 and 3.0); they are removed
	// from our answer before the comparison, and checked to be present.
	drop3xAnnotations string
	// sumsDiffer says why sample values differ in their last bits: Prometheus 3 sums
	// with Kahan compensation, 2.42 naively. Values are compared to 12 significant digits.
	sumsDiffer string
	// messageDiffers says why the error message differs; status and errorType are still
	// compared.
	messageDiffers string
	// metadata cases are answered by a Prometheus that scraped the fixture's metadata:
	// 2.42 keeps metadata from scrapes only.
	metadata bool
}

// p builds parameters from name, value pairs.
func p(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

var (
	t30   = at(30 * time.Minute)
	tEnd  = at(60 * time.Minute)
	tZero = at(0)
)

// apiCases are the requests compared with Prometheus.
var apiCases = []apiCase{
	// Instant queries.
	{name: "query_selector", path: "query", params: p("query", "http_requests_total", "time", t30)},
	{name: "query_filter", path: "query", params: p("query", `http_requests_total{job="api",code=~"5.."}`, "time", t30)},
	{name: "query_sum_rate", path: "query", params: p("query", "sum by (job) (rate(http_requests_total[5m]))", "time", t30)},
	{name: "query_counter_reset", path: "query", params: p("query", `increase(http_requests_total{job="api",instance="10.0.0.1:9100",method="GET",code="500"}[10m])`, "time", t30)},
	{name: "query_special_values", path: "query", params: p("query", "special_values", "time", t30)},
	{name: "query_arithmetic_special", path: "query", params: p("query", "special_values * 2 - 1", "time", t30)},
	{name: "query_scalar", path: "query", params: p("query", "scalar(sum(node_memory_bytes))", "time", t30)},
	{name: "query_scalar_literal", path: "query", params: p("query", "1.5e-7", "time", t30)},
	{name: "query_scalar_big", path: "query", params: p("query", "2^80", "time", t30)},
	{name: "query_string", path: "query", params: p("query", `"a <b> & \"c\""`, "time", t30)},
	{name: "query_matrix", path: "query", params: p("query", `http_requests_total{job="web",method="GET"}[1m]`, "time", t30)},
	{name: "query_histogram_quantile", path: "query", params: p("query", "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))", "time", t30)},
	{name: "query_native_histogram", path: "query", params: p("query", "rpc_latency_seconds", "time", t30)},
	{name: "query_native_histogram_range", path: "query", params: p("query", "rpc_latency_seconds[1m]", "time", t30)},
	{name: "query_native_histogram_count", path: "query", params: p("query", "histogram_count(rpc_latency_seconds)", "time", t30)},
	{name: "query_weird_labels", path: "query", params: p("query", "weird_labels", "time", t30)},
	{name: "query_offset", path: "query", params: p("query", `node_memory_bytes offset 10m`, "time", t30)},
	{name: "query_at", path: "query", params: p("query", "node_memory_bytes @ "+at(10*time.Minute), "time", tEnd)},
	{name: "query_topk", path: "query", params: p("query", "topk(3, http_requests_total)", "time", t30)},
	{name: "query_count_values", path: "query", params: p("query", `count_values("value", special_values)`, "time", t30)},
	{name: "query_label_replace", path: "query", params: p("query", `label_replace(node_memory_bytes, "host", "h-$1", "instance", "(.*)")`, "time", t30)},
	{name: "query_subquery", path: "query", params: p("query", "max_over_time(sum(rate(http_requests_total[5m]))[10m:1m])", "time", t30)},
	{name: "query_empty", path: "query", params: p("query", "no_such_metric", "time", t30)},
	{name: "query_after_data", path: "query", params: p("query", "node_memory_bytes", "time", tEnd)},
	{name: "query_time_rfc3339", path: "query", params: p("query", "node_memory_bytes", "time", "2024-01-01T00:30:00Z")},
	{name: "query_time_millis", path: "query", params: p("query", "node_memory_bytes", "time", "1704069000.123")},
	{name: "query_lookback_delta", path: "query", params: p("query", "node_memory_bytes", "time", t30, "lookback_delta", "1s"),
		only3x: "the lookback_delta parameter came with Prometheus 2.49; 2.42 ignores it"},
	{name: "query_stats", path: "query", params: p("query", "sum(rate(http_requests_total[5m]))", "time", t30, "stats", "all")},
	{name: "query_info_annotation", path: "query", params: p("query", "rate(node_memory_bytes[5m])", "time", t30),
		drop3xAnnotations: "Prometheus 3 adds the info \"metric might not be a counter, name does not end in _total/_sum/_count/_bucket\""},
	{name: "query_warning_annotation", path: "query", params: p("query", "quantile(2, node_memory_bytes)", "time", t30),
		drop3xAnnotations: "Prometheus 3 warns \"quantile value should be between 0 and 1\""},
	{name: "query_limit", path: "query", params: p("query", "http_requests_total", "time", t30, "limit", "2"),
		only3x: "the limit parameter of /query came with Prometheus 3.x; 2.42 ignores it"},

	// Range queries.
	{name: "range_sum_rate", path: "query_range", params: p("query", "sum by (job) (rate(http_requests_total[5m]))", "start", tZero, "end", tEnd, "step", "60"),
		sumsDiffer: "sum() uses Kahan summation in Prometheus 3"},
	{name: "range_gauge_15s", path: "query_range", params: p("query", `node_memory_bytes{instance="a"}`, "start", at(10*time.Minute), "end", at(20*time.Minute), "step", "15s")},
	{name: "range_special_values", path: "query_range", params: p("query", "special_values", "start", tZero, "end", tEnd, "step", "5m")},
	{name: "range_native_histogram", path: "query_range", params: p("query", "rpc_latency_seconds", "start", tZero, "end", tEnd, "step", "10m")},
	{name: "range_scalar", path: "query_range", params: p("query", "scalar(sum(node_memory_bytes))", "start", tZero, "end", at(5*time.Minute), "step", "60")},
	{name: "range_literal", path: "query_range", params: p("query", "1", "start", tZero, "end", at(3*time.Minute), "step", "1m")},
	{name: "range_rfc3339", path: "query_range", params: p("query", "count(http_requests_total)", "start", "2024-01-01T00:10:00Z", "end", "2024-01-01T00:12:30.5Z", "step", "30.25")},
	{name: "range_empty", path: "query_range", params: p("query", "no_such_metric", "start", tZero, "end", tEnd, "step", "60")},
	{name: "range_stats", path: "query_range", params: p("query", "sum(rate(http_requests_total[5m]))", "start", t30, "end", at(33*time.Minute), "step", "60", "stats", "all")},
	{name: "range_limit", path: "query_range", params: p("query", "http_requests_total", "start", t30, "end", at(31*time.Minute), "step", "60", "limit", "1"),
		only3x: "the limit parameter of /query_range came with Prometheus 3.x; 2.42 ignores it"},

	// Series, labels and label values.
	{name: "series", path: "series", params: p("match[]", `http_requests_total{job="api"}`)},
	{name: "series_multi", path: "series", params: p("match[]", "node_memory_bytes", "match[]", `special_values{kind=~"nan|tiny"}`, "match[]", "node_memory_bytes")},
	{name: "series_range", path: "series", params: p("match[]", `{__name__=~".+"}`, "start", tZero, "end", at(time.Minute))},
	{name: "series_no_data_in_range", path: "series", params: p("match[]", "node_memory_bytes", "start", at(24*time.Hour), "end", at(25*time.Hour))},
	{name: "series_weird", path: "series", params: p("match[]", "weird_labels")},
	{name: "series_limit", path: "series", params: p("match[]", "node_memory_bytes", "limit", "2"),
		only3x: "the limit parameter of /series came with Prometheus 3.x; 2.42 ignores it"},
	{name: "labels", path: "labels"},
	{name: "labels_match", path: "labels", params: p("match[]", "node_memory_bytes")},
	{name: "labels_multi_match", path: "labels", params: p("match[]", "node_memory_bytes", "match[]", "weird_labels")},
	{name: "labels_limit", path: "labels", params: p("limit", "3"),
		only3x: "the limit parameter of /labels came with Prometheus 3.x; 2.42 ignores it"},
	{name: "label_values_name", path: "label/__name__/values"},
	{name: "label_values_match", path: "label/job/values", params: p("match[]", "http_requests_total")},
	{name: "label_values_unicode", path: "label/unicode/values"},
	{name: "label_values_none", path: "label/no_such_label/values"},
	{name: "label_values_limit", path: "label/instance/values", params: p("limit", "2"),
		only3x: "the limit parameter of label values came with Prometheus 3.x; 2.42 ignores it"},
	{name: "label_values_escaped", path: "label/U__unicode/values",
		only3x: "Prometheus 3 unescapes U__ label names (UTF-8 names); 2.42 looks the literal name up"},

	// Exemplars, formatting and parsing, status.
	{name: "exemplars", path: "query_exemplars", params: p("query", "http_requests_total", "start", tZero, "end", tEnd)},
	{name: "exemplars_in_expression", path: "query_exemplars", params: p("query", `sum(rate(http_requests_total{job="api"}[5m])) / 2`, "start", at(5*time.Minute), "end", at(25*time.Minute))},
	{name: "exemplars_none", path: "query_exemplars", params: p("query", "node_memory_bytes", "start", tZero, "end", tEnd)},
	{name: "exemplars_no_selector", path: "query_exemplars", params: p("query", "1")},
	{name: "format_query", path: "format_query", params: p("query", `sum(rate(foo{bar="baz",x=~"a|b"}[5m] offset 1m))by(job)>0`)},
	{name: "parse_query", path: "parse_query", params: p("query", `sum by (job) (rate(foo{bar="baz"}[5m] offset 1m)) > on(job) group_left bar @ 100 + -1`),
		only3x: "/parse_query came with Prometheus 3.0; 2.42 answers 404"},
	{name: "parse_query_subquery", path: "parse_query", params: p("query", `topk(3, max_over_time(x[1h:5m] @ end()))`),
		only3x: "/parse_query came with Prometheus 3.0; 2.42 answers 404"},
	{name: "status_tsdb", path: "status/tsdb"},
	{name: "status_tsdb_limit", path: "status/tsdb", params: p("limit", "3"),
		only3x: "the limit parameter of /status/tsdb came with Prometheus 2.45; 2.42 answers its default top 10"},

	// Metadata.
	{name: "metadata", path: "metadata", metadata: true},
	{name: "metadata_metric", path: "metadata", params: p("metric", "node_memory_bytes"), metadata: true},
	{name: "metadata_limit_zero", path: "metadata", params: p("limit", "0"), metadata: true},
	{name: "metadata_limit_metric", path: "metadata", params: p("limit", "2", "metric", "special_values"), metadata: true},
	{name: "metadata_unknown_metric", path: "metadata", params: p("metric", "no_such_metric"), metadata: true},

	// Errors.
	{name: "error_parse", path: "query", params: p("query", "sum(", "time", t30)},
	{name: "error_no_query", path: "query", params: p("time", t30),
		messageDiffers: "Prometheus 3's parser reports \"unknown position\" where 2.42 says \"1:1\""},
	{name: "error_bad_time", path: "query", params: p("query", "up", "time", "yesterday")},
	{name: "error_bad_timeout", path: "query", params: p("query", "up", "time", t30, "timeout", "soon")},
	{name: "error_exec", path: "query", params: p("query", `label_replace(http_requests_total, "job", "x", "", "")`, "time", t30)},
	{name: "error_range_no_start", path: "query_range", params: p("query", "up", "end", tEnd, "step", "60")},
	{name: "error_range_end_before_start", path: "query_range", params: p("query", "up", "start", tEnd, "end", tZero, "step", "60")},
	{name: "error_range_zero_step", path: "query_range", params: p("query", "up", "start", tZero, "end", tEnd, "step", "0")},
	{name: "error_range_bad_step", path: "query_range", params: p("query", "up", "start", tZero, "end", tEnd, "step", "often")},
	{name: "error_range_too_many_points", path: "query_range", params: p("query", "up", "start", tZero, "end", at(24*time.Hour), "step", "7")},
	{name: "error_range_string", path: "query_range", params: p("query", `"text"`, "start", tZero, "end", tEnd, "step", "60"),
		messageDiffers: "Prometheus 3 prefixes the message with invalid parameter \"query\""},
	{name: "error_series_no_match", path: "series"},
	{name: "error_series_empty_matcher", path: "series", params: p("match[]", `{job=~".*"}`)},
	{name: "error_series_bad_matcher", path: "series", params: p("match[]", `up{`)},
	{name: "error_labels_bad_matcher", path: "labels", params: p("match[]", "{")},
	{name: "error_label_values_bad_name", path: "label/%ff/values"},
	{name: "error_exemplars_parse", path: "query_exemplars", params: p("query", "rate(")},
	{name: "error_format_query", path: "format_query", params: p("query", "foo{")},
	{name: "error_tsdb_limit", path: "status/tsdb", params: p("limit", "0"),
		only3x: "the limit parameter of /status/tsdb came with Prometheus 2.45; 2.42 ignores it"},
	{name: "error_metadata_limit", path: "metadata", params: p("limit", "many"), metadata: true},
}

// normalize prepares an answer for comparison, applying the rules that hold for every
// case. Each rule removes an ordering Prometheus does not define or a figure that depends
// on timing or on the storage engine rather than on the API:
//   - the results of instant queries, the series of /series and the entries of
//     /query_exemplars are sorted (Prometheus' order depends on storage internals);
//   - query timings are zeroed; the stats Prometheus 3 adds (samplesRead,
//     samplesReadPerStep, seriesTouched) are removed — 2.42 has none;
//   - /status/tsdb: the lists are sorted by count then name (ties are in arbitrary
//     order), chunkCount is zeroed (3.x cuts native histogram chunks differently) and
//     memoryInBytesByLabelName is removed (2.42 counts the bytes of label values,
//     Prometheus 3 the size of whole label pairs in memory);
//   - error messages: 2.42 capitalizes "Invalid time value", Prometheus 3 does not;
//   - /metadata: 2.42 writes each entry as type, help, unit; Prometheus 3 as type, unit,
//     help; entries are sorted (Prometheus' order is arbitrary).
func normalize(c apiCase, status int, body []byte) []byte {
	if len(body) == 0 {
		return nil
	}
	body = bytes.ReplaceAll(body, []byte("Invalid time value"), []byte("invalid time value"))
	n, err := parseJSON(body)
	if err != nil {
		return append([]byte("unparsable: "), body...)
	}
	if c.messageDiffers != "" && n.get("error") != nil {
		n.set("error", scalar(`"(message differs, see the case)"`))
	}
	data := n.get("data")
	if c.sumsDiffer != "" {
		roundValues(data.get("result"))
	}
	switch c.path {
	case "query", "query_range":
		if res := data.get("result"); res != nil && res.kind == 'a' {
			res.sortArray()
		}
		if st := data.get("stats"); st != nil {
			if tm := st.get("timings"); tm != nil {
				for i := range tm.obj {
					tm.obj[i].val = scalar("0")
				}
			}
			if s := st.get("samples"); s != nil {
				s.del("samplesRead")
				s.del("samplesReadPerStep")
				s.del("seriesTouched")
			}
		}
	case "series", "query_exemplars":
		data.sortArray()
	case "status/tsdb":
		if hs := data.get("headStats"); hs != nil {
			hs.set("chunkCount", scalar("0"))
		}
		data.del("memoryInBytesByLabelName")
		for _, key := range []string{"seriesCountByMetricName", "labelValueCountByLabelName", "seriesCountByLabelValuePair"} {
			if l := data.get(key); l != nil {
				slices.SortStableFunc(l.arr, func(x, y *jnode) int {
					xv, yv := string(x.get("value").raw), string(y.get("value").raw)
					if len(xv) != len(yv) {
						return cmp.Compare(len(yv), len(xv))
					}
					if c := cmp.Compare(yv, xv); c != 0 {
						return c
					}
					return cmp.Compare(string(x.get("name").raw), string(y.get("name").raw))
				})
			}
		}
	case "metadata":
		if data != nil && data.kind == 'o' {
			for _, f := range data.obj {
				for _, e := range f.val.arr {
					slices.SortStableFunc(e.obj, func(x, y jfield) int {
						order := map[string]int{`"type"`: 0, `"unit"`: 1, `"help"`: 2}
						return cmp.Compare(order[x.key], order[y.key])
					})
				}
				f.val.sortArray()
			}
		}
	}
	return n.encode(nil)
}

// withoutAnnotations removes warnings and infos from an answer.
func withoutAnnotations(body []byte) (stripped []byte, had bool) {
	n, err := parseJSON(body)
	if err != nil {
		return body, false
	}
	had = n.get("warnings") != nil || n.get("infos") != nil
	n.del("warnings")
	n.del("infos")
	return n.encode(nil), had
}

// roundValues rounds the sample values of a vector or matrix to 12 significant digits.
func roundValues(res *jnode) {
	round := func(pair *jnode) {
		if pair == nil || len(pair.arr) != 2 {
			return
		}
		v := pair.arr[1]
		f, err := strconv.ParseFloat(strings.Trim(string(v.raw), `"`), 64)
		if err == nil {
			v.raw = []byte(`"` + strconv.FormatFloat(f, 'g', 12, 64) + `"`)
		}
	}
	if res == nil {
		return
	}
	for _, s := range res.arr {
		round(s.get("value"))
		if vs := s.get("values"); vs != nil {
			for _, pair := range vs.arr {
				round(pair)
			}
		}
	}
}
