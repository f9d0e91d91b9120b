package integration

// A workspace's logging and query logging configurations through the real binary and
// the AWS CLI: the 8 operations, and the records that reach the file sink — a rule that
// fails, a query over the threshold, a refused write — one each, in AMP's shape.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/testutil/cwlogs"
)

const (
	teamLogGroup  = "arn:aws:logs:us-east-1:000000000000:log-group:/strata/team-a:*"
	teamLogFolder = "000000000000/us-east-1/%2Fstrata%2Fteam-a"
	queryLogGroup = "arn:aws:logs:us-east-1:000000000000:log-group:team-a-queries:*"
)

type loggingStatusJSON struct {
	StatusCode   string `json:"statusCode"`
	StatusReason string `json:"statusReason"`
}

// vendedRecord is a line of a log group's file.
type vendedRecord struct {
	WorkspaceID string         `json:"workspaceId"`
	Component   string         `json:"component"`
	Message     map[string]any `json:"message"`
}

// vendedRecords reads the records of a log group's folder.
func vendedRecords(t *testing.T, folder string) []vendedRecord {
	t.Helper()
	f, err := os.Open(filepath.Join(folder, "events.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []vendedRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r vendedRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %q is not a JSON record: %v", folder, sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// writeInvalidMetricName sends a remote write the distributor refuses (400).
func writeInvalidMetricName(t *testing.T, base, ws string) {
	t.Helper()
	ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "bad metric"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}).Marshal()
	body := snappy.Encode(nil, raw)
	req, _ := http.NewRequest(http.MethodPost, base+"/workspaces/"+ws+"/api/v1/remote_write", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp := signedDo(t, req, body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("remote write of an invalid metric name: %d, want 400", resp.StatusCode)
	}
}

func recordsOf(rs []vendedRecord, component string) []vendedRecord {
	var out []vendedRecord
	for _, r := range rs {
		if r.Component == component {
			out = append(out, r)
		}
	}
	return out
}

func TestLoggingConfigurations(t *testing.T) {
	requireTool(t, "aws")
	dataDir := t.TempDir()
	p := startStrata(t, "--data-dir", dataDir, "--limits.ruler-min-evaluation-interval=0s")
	ws := createWorkspace(t, p.URL)

	// The 4 operations of the logging configuration.
	awsFails(t, p.URL, "ResourceNotFoundException", "describe-logging-configuration", "--workspace-id", ws)
	awsFails(t, p.URL, "ValidationException", "create-logging-configuration", "--workspace-id", ws,
		"--log-group-arn", "arn:aws:logs:us-east-1:111111111111:log-group:other-account:*")
	var created struct{ Status loggingStatusJSON }
	mustAWS(t, p.URL, &created, "create-logging-configuration", "--workspace-id", ws, "--log-group-arn", "arn:aws:logs:us-east-1:000000000000:log-group:first:*")
	if created.Status.StatusCode != "CREATING" {
		t.Fatalf("create-logging-configuration: %+v", created)
	}
	type loggingJSON struct {
		LoggingConfiguration struct {
			Status      loggingStatusJSON
			Workspace   string
			LogGroupArn string
			CreatedAt   float64
			ModifiedAt  float64
		}
	}
	describe := []string{"describe-logging-configuration", "--workspace-id", ws}
	active := func(o loggingJSON) bool { return o.LoggingConfiguration.Status.StatusCode == "ACTIVE" }
	waitCLI(t, p.URL, active, describe...)
	var updated struct{ Status loggingStatusJSON }
	mustAWS(t, p.URL, &updated, "update-logging-configuration", "--workspace-id", ws, "--log-group-arn", teamLogGroup)
	if updated.Status.StatusCode != "UPDATING" {
		t.Fatalf("update-logging-configuration: %+v", updated)
	}
	lc := waitCLI(t, p.URL, active, describe...).LoggingConfiguration
	if lc.LogGroupArn != teamLogGroup || lc.Workspace != ws || lc.CreatedAt == 0 || lc.ModifiedAt < lc.CreatedAt {
		t.Fatalf("describe-logging-configuration: %+v", lc)
	}

	// The 4 operations of the query logging configuration.
	awsFails(t, p.URL, "ResourceNotFoundException", "describe-query-logging-configuration", "--workspace-id", ws)
	dest := func(arn string, qsp int) string {
		b, _ := json.Marshal([]any{map[string]any{"cloudWatchLogs": map[string]string{"logGroupArn": arn}, "filters": map[string]int{"qspThreshold": qsp}}})
		return string(b)
	}
	mustAWS(t, p.URL, nil, "create-query-logging-configuration", "--workspace-id", ws, "--destinations", dest(queryLogGroup, 1000000))
	type queryLoggingJSON struct {
		QueryLoggingConfiguration struct {
			Status       loggingStatusJSON
			Destinations []struct {
				CloudWatchLogs struct{ LogGroupArn string }
				Filters        struct{ QspThreshold int }
			}
		}
	}
	describeQ := []string{"describe-query-logging-configuration", "--workspace-id", ws}
	activeQ := func(o queryLoggingJSON) bool { return o.QueryLoggingConfiguration.Status.StatusCode == "ACTIVE" }
	waitCLI(t, p.URL, activeQ, describeQ...)
	mustAWS(t, p.URL, nil, "update-query-logging-configuration", "--workspace-id", ws, "--destinations", dest(queryLogGroup, 50))
	q := waitCLI(t, p.URL, func(o queryLoggingJSON) bool {
		return activeQ(o) && len(o.QueryLoggingConfiguration.Destinations) == 1 && o.QueryLoggingConfiguration.Destinations[0].Filters.QspThreshold == 50
	}, describeQ...).QueryLoggingConfiguration
	if q.Destinations[0].CloudWatchLogs.LogGroupArn != queryLogGroup {
		t.Fatalf("describe-query-logging-configuration: %+v", q)
	}

	// A rule that fails to evaluate (many-to-one matching without group_left) is logged
	// with its name, group and namespace.
	createNamespace(t, p.URL, ws, "broken", `
groups:
  - name: matching
    interval: 1s
    rules:
      - record: broken:rule
        expr: (vector(1) or label_replace(vector(1), "a", "b", "", "")) * on() vector(1)
`)
	folder := filepath.Join(dataDir, "logs", teamLogFolder)
	var ruler []vendedRecord
	waitFor(t, "the failing rule's record in the log group's file", 30*time.Second, func() bool {
		ruler = recordsOf(vendedRecords(t, folder), "ruler")
		return len(ruler) > 0
	}, p.Log)
	r := ruler[0]
	if r.WorkspaceID != ws || r.Message["name"] != "broken:rule" || r.Message["group"] != "matching" || r.Message["namespace"] != "broken" ||
		!strings.Contains(r.Message["log"].(string), "Evaluating rule failed, name=broken:rule, group=matching, namespace=broken, err=") ||
		!strings.Contains(r.Message["log"].(string), "many-to-one matching must be explicit") {
		t.Fatalf("ruler record: %+v", r)
	}

	// A refused write (an invalid metric name) is logged once.
	writeInvalidMetricName(t, p.URL, ws)
	var ingestion []vendedRecord
	waitFor(t, "the refused write's record", 10*time.Second, func() bool {
		ingestion = recordsOf(vendedRecords(t, folder), "ingestion")
		return len(ingestion) > 0
	}, p.Log)
	if len(ingestion) != 1 || ingestion[0].Message["statusCode"] != 400.0 || ingestion[0].Message["level"] != "ERROR" ||
		!strings.Contains(ingestion[0].Message["log"].(string), "remote write refused: 400") {
		t.Fatalf("ingestion records: %+v", ingestion)
	}

	// A query processing at least 50 samples is logged to the query log group; a cheap
	// one is not.
	for i := range 60 {
		pushGaugeAt(t, p.URL, ws, float64(i), time.Now().Add(time.Duration(i-60)*time.Second), "__name__", "logged_metric")
	}
	for _, query := range []string{"vector(1)", "count_over_time(logged_metric[5m])"} {
		code, b := signedJSON(t, http.MethodGet, p.URL+"/workspaces/"+ws+"/api/v1/query?query="+url.QueryEscape(query), nil)
		if code != http.StatusOK {
			t.Fatalf("query %s: %d %s", query, code, b)
		}
	}
	qFolder := filepath.Join(dataDir, "logs", "000000000000/us-east-1/team-a-queries")
	var queries []vendedRecord
	waitFor(t, "the costly query's record", 10*time.Second, func() bool {
		queries = recordsOf(vendedRecords(t, qFolder), "query")
		return len(queries) > 0
	}, p.Log)
	// The failing rule's queries process no sample and stay out too.
	if len(queries) != 1 || queries[0].Message["query"] != "count_over_time(logged_metric[5m])" || queries[0].Message["samplesProcessed"].(float64) < 50 ||
		queries[0].Message["status"] != "success" || !strings.Contains(queries[0].Message["principal"].(string), "arn:aws:iam::") {
		t.Fatalf("query records: %+v", queries)
	}

	// Deleting the configurations.
	mustAWS(t, p.URL, nil, "delete-logging-configuration", "--workspace-id", ws)
	mustAWS(t, p.URL, nil, "delete-query-logging-configuration", "--workspace-id", ws)
	waitFor(t, "both configurations deleted", 20*time.Second, func() bool {
		_, e1, c1 := awsCLI(t, p.URL, "describe-logging-configuration", "--workspace-id", ws)
		_, e2, c2 := awsCLI(t, p.URL, "describe-query-logging-configuration", "--workspace-id", ws)
		return c1 != 0 && c2 != 0 && strings.Contains(e1, "ResourceNotFoundException") && strings.Contains(e2, "ResourceNotFoundException")
	}, p.Log)
	p.stop(t)
}

// With --logs.cloudwatch.endpoint, a logging configuration needs its log group to exist
// there (ValidationException otherwise, as in AMP), and a refused write reaches it as
// one record in a PutLogEvents batch that botocore's model accepts.
func TestLoggingForwardedToCloudWatchLogs(t *testing.T) {
	requireTool(t, "aws")
	cw := cwlogs.New(t, cwlogs.LoadModel(t), "/strata/team-a")
	dataDir := t.TempDir()
	p := startStrataEnv(t, []string{"AWS_ACCESS_KEY_ID=AKIDCLOUDWATCH000001", "AWS_SECRET_ACCESS_KEY=cloudwatch-secret-0000000000"},
		"--data-dir", dataDir, "--logs.cloudwatch.endpoint", cw.URL, "--logs.cloudwatch.batch-wait", "200ms")
	ws := createWorkspace(t, p.URL)
	stderr := awsFails(t, p.URL, "ValidationException", "create-logging-configuration", "--workspace-id", ws,
		"--log-group-arn", "arn:aws:logs:us-east-1:000000000000:log-group:missing:*")
	if !strings.Contains(stderr, "does not exist") {
		t.Fatalf("a log group missing from CloudWatch Logs: %s", stderr)
	}
	mustAWS(t, p.URL, nil, "create-logging-configuration", "--workspace-id", ws, "--log-group-arn", teamLogGroup)
	waitCLI(t, p.URL, func(o struct {
		LoggingConfiguration struct{ Status loggingStatusJSON }
	}) bool {
		return o.LoggingConfiguration.Status.StatusCode == "ACTIVE"
	}, "describe-logging-configuration", "--workspace-id", ws)

	writeInvalidMetricName(t, p.URL, ws)
	waitFor(t, "the refused write in CloudWatch Logs", 20*time.Second, func() bool { return len(cw.Events()) > 0 }, p.Log)
	if bad := cw.Invalid(); len(bad) > 0 {
		t.Fatalf("requests botocore's model refuses: %v", bad)
	}
	events := cw.Events()
	var rec vendedRecord
	if err := json.Unmarshal([]byte(events[0].Message), &rec); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || cw.Puts() != 1 || events[0].Group != "/strata/team-a" || rec.WorkspaceID != ws || rec.Component != "ingestion" ||
		!strings.Contains(fmt.Sprint(rec.Message["log"]), "remote write refused: 400") {
		t.Fatalf("events %+v (%d calls)", events, cw.Puts())
	}
	if n := len(vendedRecords(t, filepath.Join(dataDir, "logs", teamLogFolder))); n != 1 {
		t.Fatalf("%d records in the file sink, want 1 there too", n)
	}
	p.stop(t)
}
