package testutil

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// CacheServer is a memcached or Redis server a test started on a unix socket in a
// temporary directory. It is killed when the test ends.
type CacheServer struct {
	// Socket is the path of the server's unix socket.
	Socket string
	name   string
	cmd    *exec.Cmd
}

// StartMemcached starts Debian's memcached (skipped when absent, failed under CI=true).
func StartMemcached(t testing.TB) *CacheServer {
	t.Helper()
	bin := RequireBinary(t, "memcached", "apt-get install -y memcached")
	s := &CacheServer{Socket: filepath.Join(t.TempDir(), "memcached.sock"), name: "memcached"}
	args := []string{"-s", s.Socket, "-a", "0700", "-m", "64"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses to run as root otherwise
	}
	s.start(t, exec.Command(bin, args...))
	return s
}

// StartRedis starts Debian's redis-server without persistence (skipped when absent,
// failed under CI=true).
func StartRedis(t testing.TB) *CacheServer {
	t.Helper()
	bin := RequireBinary(t, "redis-server", "apt-get install -y redis-server")
	dir := t.TempDir()
	s := &CacheServer{Socket: filepath.Join(dir, "redis.sock"), name: "redis-server"}
	s.start(t, exec.Command(bin, "--port", "0", "--unixsocket", s.Socket, "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", dir))
	return s
}

func (s *CacheServer) start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	s.cmd = cmd
	p, err := StartProcess(t, s.name, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(10*time.Second, func() error { return dialUnix(s.Socket) }); err != nil {
		t.Fatal(err)
	}
}

// Kill stops the server as a crash does (SIGKILL) and returns once it no longer accepts
// connections.
func (s *CacheServer) Kill(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, s.name+" to stop", func() bool { return dialUnix(s.Socket) != nil })
}

func dialUnix(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
	}
	return err
}
