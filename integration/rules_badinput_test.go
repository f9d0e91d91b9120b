package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// manyRules is a rule file of n recording rules in groups of perGroup.
func manyRules(n, perGroup int, interval string) string {
	var b strings.Builder
	b.WriteString("groups:\n")
	for i := range n {
		if i%perGroup == 0 {
			fmt.Fprintf(&b, "  - name: g%d\n    interval: %s\n    rules:\n", i/perGroup, interval)
		}
		fmt.Fprintf(&b, "      - record: many:rule%d\n        expr: vector(%d)\n", i, i)
	}
	return b.String()
}

// What a user can throw at the ruler through the real binary and the AWS CLI: a 10 MB
// rule file and 10,000 rules are refused with AMP's errors; a rule whose query exceeds
// the query limits fails alone, logged, while the other groups go on.
func TestRulesBadInput(t *testing.T) {
	requireTool(t, "aws")
	p := startStrata(t, "--data-dir", t.TempDir(), "--limits.ruler-min-evaluation-interval=0s", "--query.max-samples=100")
	ws := createWorkspace(t, p.URL)

	// 10 MB is refused before its signature is checked; 2 MB by the namespace size quota.
	big := "# " + strings.Repeat("x", 10<<20) + "\ngroups: []\n"
	stderr := awsFails(t, p.URL, "RequestEntityTooLargeException", "create-rule-groups-namespace", "--workspace-id", ws, "--name", "big",
		"--data", "fileb://"+writeFile(t, "big.yaml", big))
	t.Logf("10 MB rule file: %s", strings.TrimSpace(stderr))
	stderr = awsFails(t, p.URL, "ServiceQuotaExceededException", "create-rule-groups-namespace", "--workspace-id", ws, "--name", "big",
		"--data", "fileb://"+writeFile(t, "big.yaml", big[len(big)-2<<20:]))
	t.Logf("2 MB rule file: %s", strings.TrimSpace(stderr))

	stderr = awsFails(t, p.URL, "ServiceQuotaExceededException", "create-rule-groups-namespace", "--workspace-id", ws, "--name", "many",
		"--data", "fileb://"+writeFile(t, "many.yaml", manyRules(10000, 10000, "1m")))
	t.Logf("10,000 rules: %s", strings.TrimSpace(stderr))

	// 200 samples of one series: more than the 100 a query may hold.
	now := time.Now()
	ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "heavy_metric"}}}
	for i := range 200 {
		ts.Samples = append(ts.Samples, prompb.Sample{Value: float64(i), Timestamp: now.Add(time.Duration(i-200) * time.Second).UnixMilli()})
	}
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}).Marshal()
	body := snappy.Encode(nil, raw)
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/workspaces/"+ws+"/api/v1/remote_write", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	if resp := signedDo(t, req, body); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("remote write: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	createNamespace(t, p.URL, ws, "mixed", `
groups:
  - name: heavy
    interval: 1s
    rules:
      - record: heavy:samples:count
        expr: count_over_time(heavy_metric[10m])
  - name: light
    interval: 1s
    rules:
      - record: light:one
        expr: vector(1)
`)
	waitFor(t, "the light group's series", 30*time.Second, func() bool {
		code, b := signedJSON(t, http.MethodGet, p.URL+"/workspaces/"+ws+"/api/v1/query?query="+url.QueryEscape("light:one"), nil)
		return code == http.StatusOK && strings.Contains(string(b), `"__name__":"light:one"`)
	}, p.Log)
	var rules []byte
	waitFor(t, "the heavy rule's error in /api/v1/rules", 30*time.Second, func() bool {
		_, rules = signedJSON(t, http.MethodGet, p.URL+"/workspaces/"+ws+"/api/v1/rules?rule_group[]=heavy", nil)
		return strings.Contains(string(rules), `"health":"err"`) && strings.Contains(string(rules), "too many samples")
	}, p.Log, func() string { return string(rules) })
	logLine := regexp.MustCompile(`msg="Evaluating rule failed" component=ruler workspace=` + ws + ` file=` + ws + `/mixed group=heavy name=heavy:samples:count .*rule=.*err=.*too many samples`)
	waitFor(t, "a log line naming workspace, namespace, group, rule and error", 10*time.Second, func() bool {
		return logLine.MatchString(p.Log())
	}, p.Log)
	code, b := signedJSON(t, http.MethodGet, p.URL+"/workspaces/"+ws+"/api/v1/query?query="+url.QueryEscape("heavy:samples:count"), nil)
	if code != http.StatusOK || strings.Contains(string(b), "heavy:samples:count") {
		t.Errorf("the heavy rule recorded something: %d %s", code, b)
	}
	p.stop(t)
}

// 10,000 rules, with the quotas lifted for them, are loaded and all evaluated.
func TestTenThousandRules(t *testing.T) {
	p := startStrata(t, "--data-dir", t.TempDir(), "--limits.ruler-min-evaluation-interval=0s",
		"--limits.ruler-max-rules-per-rule-group=0", "--limits.ruler-max-rules-per-workspace=0", "--limits.ruler-max-rule-groups-per-workspace=0")
	ws := createWorkspace(t, p.URL)
	createNamespace(t, p.URL, ws, "many", manyRules(10000, 1000, "5s"))
	var last []byte
	waitFor(t, "10,000 recorded series", 90*time.Second, func() bool {
		_, last = signedJSON(t, http.MethodGet, p.URL+"/workspaces/"+ws+"/api/v1/query?query="+url.QueryEscape(`count({__name__=~"many:.+"})`), nil)
		return strings.Contains(string(last), `"10000"`)
	}, p.Log, func() string { return string(last) })
	p.stop(t)
}
