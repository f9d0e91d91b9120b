package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The attack holds its connections, reopens those the server closes, and reports what
// the server answered.
func TestAttack(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, "Missing Authentication Token", http.StatusForbidden)
	}))
	srv.Config.ReadHeaderTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	rep, err := runAttack(ctx, srv.URL+"/workspaces/ws-1/api/v1/remote_write", AttackConfig{Connections: 4, Mode: AttackMixed, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Body connections get their 403 at once; header connections are cut by the
	// header timeout, and both come back.
	if rep.Answers["403"] == 0 || rep.Opened <= 4 || rep.ClosedByServer == 0 || rep.BytesSent == 0 {
		t.Fatalf("report %+v", rep)
	}
}
