package integration

// Managed scrapers through the real binary and the AWS CLI: the 9 operations and their
// waiters, a scraper of Debian's prometheus-node-exporter filling the workspace with
// node metrics, its logging configuration receiving the collector's warnings, and
// deleting it stopping the samples.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/testutil"
)

type scraperJSON struct {
	ScraperID           string `json:"scraperId"`
	ARN                 string `json:"arn"`
	Alias               string `json:"alias"`
	Status              struct{ StatusCode string }
	StatusReason        string `json:"statusReason"`
	ScrapeConfiguration struct{ ConfigurationBlob string }
	Destination         struct{ AmpConfiguration struct{ WorkspaceArn string } }
}

// startNodeExporter runs Debian's node exporter on a free local port and returns its
// address.
func startNodeExporter(t *testing.T) string {
	t.Helper()
	bin := requireTool(t, "prometheus-node-exporter")
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.loadavg")
	p, err := testutil.StartProcess(t, "node-exporter", cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(20*time.Second, testutil.GetOK("http://"+addr+"/metrics")); err != nil {
		t.Fatal(err)
	}
	return addr
}

// queryValue runs an instant query and returns the number of series of its answer.
func querySeries(t *testing.T, base, ws, query string) int {
	t.Helper()
	code, b := signedJSON(t, http.MethodGet, base+"/workspaces/"+ws+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if code != http.StatusOK {
		t.Fatalf("query %s: %d %s", query, code, b)
	}
	var out struct {
		Data struct{ Result []json.RawMessage }
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return len(out.Data.Result)
}

func TestAWSCLIScrapers(t *testing.T) {
	requireTool(t, "aws")
	node := startNodeExporter(t)
	dataDir := t.TempDir()
	p := startStrata(t, "--data-dir", dataDir, "--scraper.discovery-update-interval=500ms")
	var ws workspaceJSON
	mustAWS(t, p.URL, &ws, "create-workspace", "--alias", "scraped")
	mustAWS(t, p.URL, nil, "wait", "workspace-active", "--workspace-id", ws.WorkspaceID)

	var def struct{ Configuration string }
	mustAWS(t, p.URL, &def, "get-default-scraper-configuration")
	if b, _ := base64.StdEncoding.DecodeString(def.Configuration); !strings.Contains(string(b), "kubernetes_sd_configs") {
		t.Fatalf("get-default-scraper-configuration: %q", b)
	}

	// The node job scrapes every second; the "limited" job exceeds its sample limit of
	// 1 at every scrape, which the collector logs.
	blob := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node
    static_configs: [{targets: [%q]}]
  - job_name: limited
    sample_limit: 1
    static_configs: [{targets: [%q]}]
`, node, node)
	// The CLI (v1) sends a blob given as text as those bytes.
	scrapeConfig, _ := json.Marshal(map[string]string{"configurationBlob": blob})
	source := `eksConfiguration={clusterArn=arn:aws:eks:us-east-1:000000000000:cluster/local,subnetIds=[subnet-0a1b2c]}`
	awsFails(t, p.URL, "ValidationException", "create-scraper", "--scrape-configuration", `{"configurationBlob": "scrape_configs: [{job_name: a, scrape_intervall: 1s}]"}`,
		"--source", source, "--destination", "ampConfiguration={workspaceArn="+ws.ARN+"}")
	var created scraperJSON
	mustAWS(t, p.URL, &created, "create-scraper", "--alias", "node", "--scrape-configuration", string(scrapeConfig),
		"--source", source, "--destination", "ampConfiguration={workspaceArn="+ws.ARN+"}", "--tags", "team=a")
	id := created.ScraperID
	if !strings.HasPrefix(id, "s-") || created.Status.StatusCode != "CREATING" {
		t.Fatalf("create-scraper: %+v", created)
	}
	mustAWS(t, p.URL, nil, "wait", "scraper-active", "--scraper-id", id)
	var described struct{ Scraper scraperJSON }
	mustAWS(t, p.URL, &described, "describe-scraper", "--scraper-id", id)
	if b, _ := base64.StdEncoding.DecodeString(described.Scraper.ScrapeConfiguration.ConfigurationBlob); string(b) != blob ||
		described.Scraper.Destination.AmpConfiguration.WorkspaceArn != ws.ARN || described.Scraper.Alias != "node" {
		t.Fatalf("describe-scraper: %+v", described.Scraper)
	}
	var listed struct{ Scrapers []scraperJSON }
	mustAWS(t, p.URL, &listed, "list-scrapers", "--filters", `{"status": ["ACTIVE"], "alias": ["node"]}`)
	if len(listed.Scrapers) != 1 || listed.Scrapers[0].ScraperID != id {
		t.Fatalf("list-scrapers: %+v", listed)
	}

	// Node metrics fill the workspace.
	start := time.Now()
	waitFor(t, "node metrics in the workspace", 30*time.Second, func() bool {
		return querySeries(t, p.URL, ws.WorkspaceID, `up{job="node"} == 1`) == 1 && querySeries(t, p.URL, ws.WorkspaceID, `node_cpu_seconds_total{job="node"}`) > 0
	}, p.Log)
	t.Logf("node metrics %s after the scraper became ACTIVE", time.Since(start).Round(100*time.Millisecond))
	if n := querySeries(t, p.URL, ws.WorkspaceID, `up{job="limited"} == 0`); n != 1 {
		t.Fatalf("the job over its sample limit: %d series of up == 0, want 1", n)
	}

	// The scraper's logging configuration gets the collector's warnings.
	group := "arn:aws:logs:us-east-1:000000000000:log-group:scrapers:*"
	var lstatus struct{ Status loggingStatusJSON }
	mustAWS(t, p.URL, &lstatus, "update-scraper-logging-configuration", "--scraper-id", id,
		"--logging-destination", "cloudWatchLogs={logGroupArn="+group+"}", "--scraper-components", "type=COLLECTOR")
	if lstatus.Status.StatusCode != "CREATING" {
		t.Fatalf("update-scraper-logging-configuration: %+v", lstatus)
	}
	waitCLI(t, p.URL, func(o struct {
		Status            loggingStatusJSON
		ScraperComponents []struct{ Type string }
	}) bool {
		return o.Status.StatusCode == "ACTIVE" && len(o.ScraperComponents) == 1 && o.ScraperComponents[0].Type == "COLLECTOR"
	}, "describe-scraper-logging-configuration", "--scraper-id", id)
	folder := filepath.Join(dataDir, "logs", "000000000000/us-east-1/scrapers")
	var records []vendedRecord
	waitFor(t, "the collector's sample-limit warning in the scraper's log group", 30*time.Second, func() bool {
		records = vendedRecords(t, folder)
		for _, r := range records {
			if r.Component == "COLLECTOR" && strings.Contains(fmt.Sprint(r.Message["log"]), "sample limit exceeded") {
				return true
			}
		}
		return false
	}, p.Log)
	mustAWS(t, p.URL, nil, "delete-scraper-logging-configuration", "--scraper-id", id)

	// Deleting the scraper stops its collector: once this process has seen the
	// deletion, its scrape loops have ended (Manager.Sync waits for them) and nothing
	// writes for the scraper any more.
	mustAWS(t, p.URL, nil, "delete-scraper", "--scraper-id", id)
	mustAWS(t, p.URL, nil, "wait", "scraper-deleted", "--scraper-id", id)
	awsFails(t, p.URL, "ResourceNotFoundException", "describe-scraper", "--scraper-id", id)
	waitFor(t, "the collector stopped", 10*time.Second, func() bool {
		return strings.Contains(p.Log(), `msg="scraper stopped" component=scraper scraper=`+id)
	}, p.Log)
	// Its series end with stale markers: instant queries no longer find them (without
	// the markers they would linger for the 5-minute lookback).
	waitFor(t, "the node metrics gone from instant queries", 10*time.Second, func() bool {
		return querySeries(t, p.URL, ws.WorkspaceID, `up{job="node"}`) == 0 && querySeries(t, p.URL, ws.WorkspaceID, `node_cpu_seconds_total{job="node"}`) == 0
	}, p.Log)
	resp, err := http.Get(p.InternalURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(metrics), `strata_scraper_running{scraper="`+id+`"`) {
		t.Fatalf("the deleted scraper still runs:\n%s", metrics)
	}
	if !strings.Contains(string(metrics), `strata_scraper_samples_written_total{outcome="ok",scraper="`+id+`"}`) {
		t.Fatalf("no samples counted for the scraper:\n%s", metrics)
	}
	p.stop(t)
}
