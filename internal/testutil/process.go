package testutil

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ErrPortTaken says a server could not bind its port: another process took it between
// FreePort and the server's own bind. Start it again on another port.
var ErrPortTaken = errors.New("the port was taken")

// FreePort returns a loopback port that was free a moment ago, for servers that do not
// say which port they got when given 0.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, l.Close()
}

// Process is a server a test started: its output goes to a file, it is killed when the
// test ends, and its output is logged if the test failed.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// StartProcess starts cmd (name is the server's, for messages).
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) (*Process, error) {
	t.Helper()
	// A file, not a pipe: no goroutine copies it, and it can be read at any time.
	p := &Process{name: name, cmd: cmd, logPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output (pid %d):\n%s", name, cmd.Process.Pid, p.Log())
		}
	})
	return p, nil
}

// WaitReady returns once probe succeeds, or an error when the process exits first (one
// wrapping ErrPortTaken when its output says its address was in use) or timeout
// passes. A server gives no signal when it listens: probing is the only way to know.
func (p *Process) WaitReady(timeout time.Duration, probe func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			out := p.Log()
			err := fmt.Errorf("%s exited (%s) before it answered:\n%s", p.name, p.cmd.ProcessState, out)
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("%w: %w", ErrPortTaken, err)
			}
			return err
		default:
		}
		err := probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s (last: %v):\n%s", p.name, timeout, err, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is the tail of the process's output.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	const max = 16 << 10
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return string(b)
}

// GetOK is a WaitReady probe: a GET of url must answer 200.
func GetOK(url string) func() error {
	// No idle connections: they would outlive the probe (goleak).
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// RequireBinary returns the path of the program name (looked up in PATH, or a path),
// which a test runs as a real client or server. Without it the test is skipped, except
// under CI=true, where .ci/run installs it (install says how) and its absence fails.
func RequireBinary(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; .ci/run installs it (%s): %v", name, install, err)
		}
		t.Skipf("%s is not installed (%s): skipping", name, install)
	}
	return path
}
