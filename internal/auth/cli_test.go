package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// awsCLI finds the aws command (botocore, the second real signer). Without
// it the test is skipped, except under CI=true, where it must be there.
func awsCLI(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("aws")
	if err != nil {
		if _, serr := os.Stat("/root/.pyenv/shims/aws"); serr == nil {
			return "/root/.pyenv/shims/aws"
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("the aws CLI is required under CI: %v", err)
		}
		t.Skipf("aws CLI not found: %v", err)
	}
	return path
}

// runAWS runs the aws CLI against the harness with user's credentials.
func (h *harness) runAWS(t *testing.T, cli, user string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	creds := testKeys[user]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, append(args, "--endpoint-url", h.srv.URL, "--region", testRegion, "--output", "json")...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"AWS_ACCESS_KEY_ID="+creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey,
		"AWS_CONFIG_FILE="+filepath.Join(h.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(h.dir, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
	)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestAWSCLI(t *testing.T) {
	cli := awsCLI(t)
	h := newHarness(t)

	out, stderr, err := h.runAWS(t, cli, "admin", "amp", "list-workspaces")
	if err != nil {
		t.Fatalf("aws amp list-workspaces: %v\n%s", err, stderr)
	}
	var list struct{ Workspaces []any }
	if err := json.Unmarshal([]byte(out), &list); err != nil || list.Workspaces == nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if p := h.last().principal; p == nil || p.ARN != "arn:aws:iam::111111111111:user/admin" {
		t.Fatalf("handler saw principal %v", p)
	}

	// A signed JSON body (botocore hashes it into the signature).
	out, stderr, err = h.runAWS(t, cli, "admin", "amp", "create-workspace", "--alias", "from-the-cli")
	if err != nil {
		t.Fatalf("aws amp create-workspace: %v\n%s", err, stderr)
	}
	body := strings.ReplaceAll(string(h.last().body), " ", "")
	if !strings.Contains(out, "ws-new") || !strings.Contains(body, `"alias":"from-the-cli"`) {
		t.Fatalf("output %q, handler read %s", out, h.last().body)
	}

	// A denial reaches the CLI as AWS's error.
	calls := h.calls.Load()
	_, stderr, err = h.runAWS(t, cli, "reader", "amp", "describe-workspace", "--workspace-id", "ws-b")
	if err == nil {
		t.Fatal("reader described ws-b")
	}
	if !strings.Contains(stderr, "AccessDeniedException") || !strings.Contains(stderr, "is not authorized to perform: aps:DescribeWorkspace") {
		t.Errorf("stderr: %s", stderr)
	}
	if h.calls.Load() != calls {
		t.Error("handler called for a denied request")
	}
	assertNoSecrets(t, h.audit.String())
}
