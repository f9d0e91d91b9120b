package sigv4proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/auth/sigv4"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var listeningRe = regexp.MustCompile(`msg=listening addr=(\S+)`)

// waitListening waits for the "listening" log line and returns the address.
func waitListening(t *testing.T, stderr *syncBuffer, exited <-chan int) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if m := listeningRe.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-exited:
			t.Fatalf("exited with %d before listening:\n%s", code, stderr.String())
		case <-deadline:
			t.Fatalf("not listening after 20s:\n%s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// startMain runs the command line in-process on a free port, stopped (as a
// signal would) at cleanup, where its exit status must be 0.
func startMain(t *testing.T, args ...string) (addr string, stderr *syncBuffer) {
	t.Helper()
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- runMain(ctx, append([]string{"--listen", "127.0.0.1:0", "--log.level", "debug"}, args...), io.Discard, stderr)
	}()
	addr = waitListening(t, stderr, exited)
	t.Cleanup(func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("exit status %d, want 0:\n%s", code, stderr.String())
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", stderr.String())
		}
	})
	return addr, stderr
}

func TestMainFlags(t *testing.T) {
	isolateAWSEnv(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "Usage: strata sigv4-proxy"},
		{nil, 2, "upstream is required"},
		{[]string{"--upstream", "ftp://x"}, 2, "scheme"},
		{[]string{"--upstream", "http://x", "--log.level", "loud"}, 2, "log.level"},
		{[]string{"--upstream", "http://x", "--log.format", "xml"}, 2, "log.format"},
		{[]string{"--upstream", "http://x", "extra"}, 2, "unexpected argument"},
		{[]string{"--upstream", "http://x", "--no-such-flag"}, 2, "no-such-flag"},
		{[]string{"--upstream", "http://x", "--listen", "0.0.0.0:8005"}, 2, "Pass --allow-non-loopback"},
		{[]string{"--upstream", "http://x", "--listen", ":8005"}, 2, "not a loopback address"},
		{[]string{"--upstream", "http://x", "--listen", "[::]:8005"}, 2, "not a loopback address"},
		{[]string{"--upstream", "http://x", "--listen", "192.0.2.1:8005"}, 2, "not a loopback address"},
		{[]string{"--upstream", "http://x", "--allow", "GET nope"}, 2, "must start with '/'"},
		{[]string{"--upstream", "http://x", "--max-body-bytes", "-1"}, 2, "max_body_bytes"},
		{[]string{"--upstream", "http://x", "--max-buffered-body-bytes", "1"}, 2, "max-buffered-body-bytes"}, // removed with streaming
		{[]string{"--upstream", "http://x"}, 1, "retrieving AWS credentials"},                                // isolated: no credentials anywhere
	} {
		var stderr syncBuffer
		code := runMain(context.Background(), tc.args, io.Discard, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, want %d, and stderr containing %q:\n%s", tc.args, code, tc.code, tc.want, stderr.String())
		}
	}
}

// TestMainStopsOnSIGTERM runs Main itself, with its signal handling, and
// stops it the way an init system does.
func TestMainStopsOnSIGTERM(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	stderr := &syncBuffer{}
	exited := make(chan int, 1)
	go func() {
		exited <- Main([]string{"--listen", "127.0.0.1:0", "--upstream", up.URL}, io.Discard, stderr)
	}()
	addr := waitListening(t, stderr, exited) // logged after signal.NotifyContext: SIGTERM is caught from here on
	resp, err := newClient(t).Get("http://" + addr + "/workspaces/ws-1/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	up.last(t)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("no graceful shutdown in the log:\n%s", stderr.String())
	}
}

// writeSharedFiles writes a shared credentials file with a default and a
// named profile (with a session token).
func writeSharedFiles(t *testing.T, dir string) {
	creds := `[default]
aws_access_key_id = AKIDDEFAULTPROFILE
aws_secret_access_key = default/secret/0123456789

[strata-test]
aws_access_key_id = ASIANAMEDPROFILE
aws_secret_access_key = named/secret/0123456789
aws_session_token = named-profile-session-token
`
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
}

func profileStore() storeFunc {
	return func(id string) (c sigv4.Credential, ok bool) {
		switch id {
		case "AKIDDEFAULTPROFILE":
			return sigv4.Credential{SecretAccessKey: "default/secret/0123456789"}, true
		case "ASIANAMEDPROFILE":
			return sigv4.Credential{SecretAccessKey: "named/secret/0123456789", SessionToken: "named-profile-session-token"}, true
		}
		return c, false
	}
}

// TestCredentialsFromSharedFile takes credentials from the shared
// credentials file (AWS_SHARED_CREDENTIALS_FILE): the default profile,
// --profile, and AWS_PROFILE.
func TestCredentialsFromSharedFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       []string
		args      []string
		wantKey   string
		wantToken string
	}{
		{name: "default profile", wantKey: "AKIDDEFAULTPROFILE"},
		{name: "--profile", args: []string{"--profile", "strata-test"}, wantKey: "ASIANAMEDPROFILE", wantToken: "named-profile-session-token"},
		{name: "AWS_PROFILE", env: []string{"AWS_PROFILE", "strata-test"}, wantKey: "ASIANAMEDPROFILE", wantToken: "named-profile-session-token"},
		// Environment keys beat the default profile, but an explicit
		// --profile beats the environment.
		{name: "env over default profile", env: []string{"AWS_ACCESS_KEY_ID", testKeyID, "AWS_SECRET_ACCESS_KEY", testSecret}, wantKey: testKeyID},
		{name: "--profile over env", env: []string{"AWS_ACCESS_KEY_ID", testKeyID, "AWS_SECRET_ACCESS_KEY", testSecret},
			args: []string{"--profile", "strata-test"}, wantKey: "ASIANAMEDPROFILE", wantToken: "named-profile-session-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolateAWSEnv(t, tc.env...)
			writeSharedFiles(t, dir)
			store := profileStore()
			envStore := staticStore(testKeyID, testSecret, "")
			up := newUpstream(t, storeFunc(func(id string) (sigv4.Credential, bool) {
				if c, ok := store(id); ok {
					return c, true
				}
				c, ok := envStore[id]
				return c, ok
			}))
			addr, _ := startMain(t, append([]string{"--upstream", up.URL}, tc.args...)...)
			resp, err := newClient(t).Get("http://" + addr + "/workspaces/ws-1/api/v1/labels")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := up.last(t)
			if got.Identity.AccessKeyID != tc.wantKey || got.Header.Get("X-Amz-Security-Token") != tc.wantToken {
				t.Errorf("signed with %s token %q, want %s token %q", got.Identity.AccessKeyID,
					got.Header.Get("X-Amz-Security-Token"), tc.wantKey, tc.wantToken)
			}
		})
	}
}

// TestCurlEndToEnd drives the command-line proxy with curl, as a user
// would, against the verifying upstream.
func TestCurlEndToEnd(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("curl is required under CI: %v", err)
		}
		t.Skipf("curl not found: %v", err)
	}
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	addr, _ := startMain(t, "--upstream", up.URL+"/prefix", "--region", "us-east-1")
	base := "http://" + addr

	dir := t.TempDir()
	payload := randomBytes(t, 3<<20)
	file := filepath.Join(dir, "write.bin")
	if err := os.WriteFile(file, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		args = append([]string{"-sS", "--noproxy", "*", "--max-time", "60", "-o", filepath.Join(dir, "out"), "-w", "%{http_code}"}, args...)
		out, err := exec.Command(curl, args...).CombinedOutput()
		body, _ := os.ReadFile(filepath.Join(dir, "out"))
		if err != nil || string(out) != "200" {
			t.Fatalf("curl %q: %v, status %s, body %q", args, err, out, body)
		}
		return string(body)
	}

	run("--data-binary", "@"+file, "-H", "Content-Type: application/x-protobuf", "-H", "Content-Encoding: snappy",
		"-H", "X-Prometheus-Remote-Write-Version: 0.1.0", "-H", "Authorization: Bearer not-forwarded",
		base+"/workspaces/ws-1/api/v1/remote_write")
	got := up.last(t)
	if got.Method != http.MethodPost || got.RequestURI != "/prefix/workspaces/ws-1/api/v1/remote_write" ||
		!bytes.Equal(got.Body, payload) || !got.Identity.PayloadSigned {
		t.Errorf("remote write: %s %s, %d bytes, payload signed %v", got.Method, got.RequestURI, len(got.Body), got.Identity.PayloadSigned)
	}
	if a := got.Header.Get("Authorization"); strings.Contains(a, "Bearer") {
		t.Errorf("the client's Authorization was forwarded: %q", a)
	}

	run("-G", "--data-urlencode", `query=up{job="a b"}`, "--data-urlencode", "time=1700000000", base+"/workspaces/ws-1/api/v1/query")
	got = up.last(t)
	path, rawQuery, _ := strings.Cut(got.RequestURI, "?")
	q, err := url.ParseQuery(rawQuery)
	if got.Method != http.MethodGet || path != "/prefix/workspaces/ws-1/api/v1/query" || err != nil ||
		q.Get("query") != `up{job="a b"}` || q.Get("time") != "1700000000" {
		t.Errorf("query: %s %s (%v)", got.Method, got.RequestURI, err)
	}
}
