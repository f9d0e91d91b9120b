package testutil

import (
	"testing"
	"time"
)

// Eventually waits until cond holds, failing the test after timeout. It is for what
// other goroutines make true without telling: a server's handler finishing after its
// answer was written, a library's own timers and workers (the Alertmanager's
// dispatcher), a connection the kernel closes. Where the code can say when (a reload,
// a tick, an evaluation), trigger it and assert at once instead.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, 5*time.Millisecond, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Poll asks cond every interval until it holds (true) or timeout passes (false), for
// callers that report a timeout their own way (with the logs of the processes they
// wait for). The same caveat as Eventually: only for what nothing signals.
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}
