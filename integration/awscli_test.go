package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mustAWS runs an aws amp command that must succeed and decodes its JSON output into out.
func mustAWS(t *testing.T, url string, out any, args ...string) {
	t.Helper()
	stdout, stderr, code := awsCLI(t, url, args...)
	if code != 0 {
		t.Fatalf("aws amp %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			t.Fatalf("aws amp %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout)
		}
	}
}

type workspaceJSON struct {
	WorkspaceID        string                      `json:"workspaceId"`
	Alias              string                      `json:"alias"`
	ARN                string                      `json:"arn"`
	Status             struct{ StatusCode string } `json:"status"`
	PrometheusEndpoint string                      `json:"prometheusEndpoint"`
	Tags               map[string]string           `json:"tags"`
}

func TestAWSCLIRoundTrip(t *testing.T) {
	requireTool(t, "aws")
	dataDir := t.TempDir()
	p := startStrata(t, "--data-dir", dataDir)

	var created workspaceJSON
	mustAWS(t, p.URL, &created, "create-workspace", "--alias", "demo", "--tags", "team=obs,env=dev")
	if !strings.HasPrefix(created.WorkspaceID, "ws-") || created.Status.StatusCode != "CREATING" {
		t.Fatalf("create-workspace: %+v", created)
	}
	id := created.WorkspaceID
	mustAWS(t, p.URL, nil, "wait", "workspace-active", "--workspace-id", id)

	var described struct{ Workspace workspaceJSON }
	mustAWS(t, p.URL, &described, "describe-workspace", "--workspace-id", id)
	w := described.Workspace
	if w.Alias != "demo" || w.Status.StatusCode != "ACTIVE" || w.PrometheusEndpoint != p.URL+"/workspaces/"+id+"/" || w.Tags["team"] != "obs" {
		t.Fatalf("describe-workspace: %+v", w)
	}

	mustAWS(t, p.URL, nil, "update-workspace-alias", "--workspace-id", id, "--alias", "renamed")
	var listed struct{ Workspaces []workspaceJSON }
	mustAWS(t, p.URL, &listed, "list-workspaces", "--alias", "ren")
	if len(listed.Workspaces) != 1 || listed.Workspaces[0].Alias != "renamed" {
		t.Fatalf("list-workspaces --alias ren: %+v", listed)
	}

	mustAWS(t, p.URL, nil, "tag-resource", "--resource-arn", w.ARN, "--tags", "owner=me")
	mustAWS(t, p.URL, nil, "untag-resource", "--resource-arn", w.ARN, "--tag-keys", "env")
	var tags struct{ Tags map[string]string }
	mustAWS(t, p.URL, &tags, "list-tags-for-resource", "--resource-arn", w.ARN)
	if len(tags.Tags) != 2 || tags.Tags["owner"] != "me" || tags.Tags["team"] != "obs" {
		t.Fatalf("list-tags-for-resource: %v", tags.Tags)
	}

	mustAWS(t, p.URL, nil, "update-workspace-configuration", "--workspace-id", id, "--retention-period-in-days", "30",
		"--limits-per-label-set", `[{"labelSet":{"team":"a"},"limits":{"maxSeries":5000}}]`)
	var conf struct {
		WorkspaceConfiguration struct {
			RetentionPeriodInDays int
			LimitsPerLabelSet     []struct {
				LabelSet map[string]string
				Limits   struct{ MaxSeries int64 }
			}
		}
	}
	mustAWS(t, p.URL, &conf, "describe-workspace-configuration", "--workspace-id", id)
	if c := conf.WorkspaceConfiguration; c.RetentionPeriodInDays != 30 || len(c.LimitsPerLabelSet) != 1 || c.LimitsPerLabelSet[0].Limits.MaxSeries != 5000 {
		t.Fatalf("describe-workspace-configuration: %+v", c)
	}

	// Errors reach the CLI as AWS errors.
	_, stderr, code := awsCLI(t, p.URL, "describe-workspace", "--workspace-id", "ws-does-not-exist")
	if code == 0 || !strings.Contains(stderr, "ResourceNotFoundException") {
		t.Fatalf("describe of a missing workspace: exit %d, %s", code, stderr)
	}
	_, stderr, code = awsCLI(t, p.URL, "update-workspace-configuration", "--workspace-id", id, "--retention-period-in-days", "5000")
	if code == 0 || !strings.Contains(stderr, "ValidationException") || !strings.Contains(stderr, "retentionPeriodInDays") {
		t.Fatalf("invalid retention: exit %d, %s", code, stderr)
	}

	// A second workspace survives a kill -9 and a restart on the same data dir.
	var second workspaceJSON
	mustAWS(t, p.URL, &second, "create-workspace", "--alias", "survivor")
	mustAWS(t, p.URL, nil, "wait", "workspace-active", "--workspace-id", second.WorkspaceID)

	mustAWS(t, p.URL, nil, "delete-workspace", "--workspace-id", id)
	mustAWS(t, p.URL, nil, "wait", "workspace-deleted", "--workspace-id", id)
	_, stderr, code = awsCLI(t, p.URL, "describe-workspace", "--workspace-id", id)
	if code == 0 || !strings.Contains(stderr, "ResourceNotFoundException") {
		t.Fatalf("describe after delete: exit %d, %s", code, stderr)
	}

	p.kill()
	p2 := startStrata(t, "--data-dir", dataDir)
	mustAWS(t, p2.URL, &listed, "list-workspaces")
	if len(listed.Workspaces) != 1 || listed.Workspaces[0].WorkspaceID != second.WorkspaceID || listed.Workspaces[0].Status.StatusCode != "ACTIVE" {
		t.Fatalf("after kill -9 and restart: %+v", listed.Workspaces)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "bucket", "meta", "workspaces", second.WorkspaceID+".json")); err != nil {
		t.Fatal(err)
	}
	p2.stop(t)
}

func TestTwoProcessesShareABucket(t *testing.T) {
	requireTool(t, "aws")
	bkt := t.TempDir()
	a := startStrata(t, "--data-dir", t.TempDir(), "--bucket.filesystem.dir", bkt, "--meta.poll-interval", "200ms")
	b := startStrata(t, "--data-dir", t.TempDir(), "--bucket.filesystem.dir", bkt, "--meta.poll-interval", "200ms")
	var created workspaceJSON
	mustAWS(t, a.URL, &created, "create-workspace", "--alias", "from-a")
	var listed struct{ Workspaces []workspaceJSON }
	waitFor(t, "process b to list a's workspace", 10*time.Second, func() bool {
		listed.Workspaces = nil
		mustAWS(t, b.URL, &listed, "list-workspaces")
		return len(listed.Workspaces) == 1 && listed.Workspaces[0].WorkspaceID == created.WorkspaceID
	}, func() string { return fmt.Sprintf("listed: %+v", listed) })
}

func TestHealthAndMetrics(t *testing.T) {
	p := startStrata(t, "--data-dir", t.TempDir())
	for path, want := range map[string]int{
		"/-/healthy": 200, "/-/ready": 200, "/no/such/route": 404,
		"/metrics":          403, // on the public listener /metrics needs a signature
		"internal /metrics": 200, "internal /-/ready": 200,
	} {
		url := p.URL + path
		if rest, ok := strings.CutPrefix(path, "internal "); ok {
			url = p.InternalURL + rest
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	p.stop(t)
}

func TestAWSCLIRejectedSignature(t *testing.T) {
	requireTool(t, "aws")
	p := startStrata(t, "--data-dir", t.TempDir())
	_, stderr, code := awsCLIWith(t, p.URL, []string{"AWS_SECRET_ACCESS_KEY=not-the-right-secret-0000000000"}, "list-workspaces")
	if code == 0 || !strings.Contains(stderr, "InvalidSignatureException") {
		t.Fatalf("wrong secret: exit %d, %s", code, stderr)
	}
	_, stderr, code = awsCLIWith(t, p.URL, []string{"AWS_ACCESS_KEY_ID=AKIDUNKNOWN000000001"}, "list-workspaces")
	if code == 0 || !strings.Contains(stderr, "UnrecognizedClientException") {
		t.Fatalf("unknown key: exit %d, %s", code, stderr)
	}
}

// curl, which cannot sign, reaches the API through `strata sigv4-proxy`.
func TestSigningProxyWithCurl(t *testing.T) {
	curl := requireTool(t, "curl")
	p := startStrata(t, "--data-dir", t.TempDir())
	base, proxyLog := startProxy(t, []string{"AWS_ACCESS_KEY_ID=" + rootKeyID, "AWS_SECRET_ACCESS_KEY=" + rootSecret},
		"--upstream", p.URL, "--region", "us-east-1", "--allow-control-plane")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "--fail-with-body", "--noproxy", "*"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s\nproxy log:\n%s", args, err, out, proxyLog.String())
		}
		return string(out)
	}
	var created workspaceJSON
	if err := json.Unmarshal([]byte(run("-XPOST", "-H", "Content-Type: application/json", "-d", `{"alias":"via-proxy"}`, base+"/workspaces")), &created); err != nil || created.WorkspaceID == "" {
		t.Fatalf("create through the proxy: %v %+v", err, created)
	}
	if out := run(base + "/workspaces?alias=via"); !strings.Contains(out, created.WorkspaceID) {
		t.Fatalf("list through the proxy: %s", out)
	}
	q := run("-G", "--data-urlencode", `query=count(up{job="a b"}) or vector(42)`, base+"/workspaces/"+created.WorkspaceID+"/api/v1/query")
	if !strings.Contains(q, `"42"`) {
		t.Fatalf("query through the proxy: %s", q)
	}
	// Without the proxy, curl is refused.
	out, _ := exec.Command(curl, "-sS", "--noproxy", "*", p.URL+"/workspaces").CombinedOutput()
	if !strings.Contains(string(out), "Missing Authentication Token") {
		t.Fatalf("unsigned curl: %s", out)
	}
}
