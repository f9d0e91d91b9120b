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
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
