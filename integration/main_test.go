// Package integration starts the real strata binary and drives it with real clients.
package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/stratametrics/strata/internal/testutil"
)

// strataBin is the binary built once for all tests.
var strataBin string

// The root key the servers under test run with; the clients sign with it.
const (
	rootKeyID  = "AKIDSTRATAINTEGRATE1"
	rootSecret = "strata-integration-secret-000000000000000"
)

// signedDo sends req signed with the root key (SigV4, service aps, us-east-1).
func signedDo(t *testing.T, req *http.Request, body []byte) *http.Response {
	t.Helper()
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: rootKeyID, SecretAccessKey: rootSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-race", "-o", strataBin, "../cmd/strata")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool returns the path of a client binary, skipping the test when it is absent —
// except under CI=true, where every client must be installed and the test fails instead.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI must run this test (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed: skipping (install it to run this test)", name)
	}
	return p
}

// proc is a running strata server.
type proc struct {
	cmd *exec.Cmd
	URL string
	// InternalURL is the internal listener: /metrics without a signature.
	InternalURL string
	done        chan struct{}
	mu          sync.Mutex
	log         strings.Builder
}

var (
	listenRe         = regexp.MustCompile(`msg="server listening".* addr=(\S+)`)
	internalListenRe = regexp.MustCompile(`msg="internal server listening".* addr=(\S+)`)
)

// startStrata starts `strata server` with args on a free port and waits until it listens.
// It is killed when the test ends.
func startStrata(t *testing.T, args ...string) *proc {
	t.Helper()
	return startStrataEnv(t, nil, args...)
}

// startStrataEnv is startStrata with more environment variables.
func startStrataEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(strataBin, append([]string{"server", "--listen", "127.0.0.1:0", "--internal.listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "STRATA_ROOT_ACCESS_KEY_ID="+rootKeyID, "STRATA_ROOT_SECRET_ACCESS_KEY="+rootSecret), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	internalAddr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listenRe.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			if m := internalListenRe.FindStringSubmatch(line); m != nil {
				select {
				case internalAddr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	for p.URL == "" || p.InternalURL == "" {
		select {
		case a := <-addr:
			p.URL = "http://" + a
		case a := <-internalAddr:
			p.InternalURL = "http://" + a
		case <-p.done:
			t.Fatalf("strata exited before listening:\n%s", p.Log())
		case <-time.After(30 * time.Second):
			t.Fatalf("strata did not listen within 30s:\n%s", p.Log())
		}
	}
	return p
}

// Log is what the server has written to stderr so far.
func (p *proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// kill ends the process with SIGKILL (no graceful shutdown) and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop ends the process with SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("strata did not stop on SIGINT:\n%s", p.Log())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("strata exited with %d on SIGINT:\n%s", code, p.Log())
	}
}

// awsCLI runs `aws amp ...` against the server and returns stdout, stderr and the exit code.
func awsCLI(t *testing.T, url string, args ...string) (string, string, int) {
	t.Helper()
	return awsCLIWith(t, url, nil, args...)
}

// freeAddr returns a 127.0.0.1 address with a port free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// awsCLIWith is awsCLI with extra environment variables (later ones win).
func awsCLIWith(t *testing.T, url string, env []string, args ...string) (string, string, int) {
	t.Helper()
	env = append([]string{"AWS_ACCESS_KEY_ID=" + rootKeyID, "AWS_SECRET_ACCESS_KEY=" + rootSecret}, env...)
	return awsRun(t, env, append(append([]string{"amp"}, args...), "--endpoint-url", url)...)
}

// awsRun runs the aws CLI with args and, of the AWS_ variables, only those given (plus
// a region, a private HOME and config files), and returns stdout, stderr and the exit
// code.
func awsRun(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	bin := requireTool(t, "aws")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--output", "json")...)
	home := t.TempDir()
	cmd.Env = append(withoutAWSEnv(),
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
		"HOME="+home,
	)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running aws %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// withoutAWSEnv is this process's environment without its AWS_ variables, so that a
// client started from it sees only the credentials a test gives it.
func withoutAWSEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			out = append(out, kv)
		}
	}
	return out
}

// startProxy starts `strata sigv4-proxy` with args and AWS credentials from env (and no
// others), waits until it answers and returns its base URL and log. It is killed when
// the test ends.
func startProxy(t *testing.T, env []string, args ...string) (string, *testutil.SyncBuffer) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(strataBin, append([]string{"sigv4-proxy", "--listen", addr}, args...)...)
	cmd.Env = append(withoutAWSEnv(), "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_EC2_METADATA_DISABLED=true")
	cmd.Env = append(cmd.Env, env...)
	log := &testutil.SyncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	waitFor(t, "the proxy to answer", 20*time.Second, func() bool {
		resp, err := http.Get(base + "/-/healthy")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, log.String)
	return base, log
}

// waitFor waits until cond holds, failing after timeout with the tails of logs. The
// servers under test are other processes that give no signal when what a test waits for
// has happened (a rule evaluated, a notification sent): asking again is the only way to
// know, and every wait of these tests goes through here.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, logs ...func() string) {
	t.Helper()
	if !testutil.Poll(timeout, 50*time.Millisecond, cond) {
		var extra []string
		for _, l := range logs {
			extra = append(extra, tail(l(), 6000))
		}
		t.Fatalf("timed out waiting for %s\n%s", what, strings.Join(extra, "\n"))
	}
}

// startPrometheus starts a Prometheus binary with the configuration cfg (written to
// dir/prometheus.yml; relative paths in it are from dir), its TSDB in dataDir, listening
// on addr, without this process' AWS variables. It returns the process, killed when the
// test ends, and a reader of its log.
func startPrometheus(t *testing.T, bin, dir, cfg, dataDir, addr string) (*exec.Cmd, func() string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", dataDir, "--web.listen-address", addr)
	cmd.Env = withoutAWSEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logFile.Close() })
	return cmd, func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
}
