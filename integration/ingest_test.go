package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// createWorkspace creates a workspace over plain HTTP and waits until it is ACTIVE.
func createWorkspace(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Post(url+"/workspaces", "application/json", bytes.NewReader([]byte(`{"alias":"crash"}`)))
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ WorkspaceID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/workspaces/" + out.WorkspaceID)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Workspace struct{ Status struct{ StatusCode string } }
		}
		_ = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if d.Workspace.Status.StatusCode == "ACTIVE" {
			return out.WorkspaceID
		}
		if time.Now().After(deadline) {
			t.Fatalf("workspace %s not ACTIVE: %s", out.WorkspaceID, d.Workspace.Status.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every sample answered 2xx survives kill -9: the WAL holds it and replays on restart.
func TestAcknowledgedSamplesSurviveKill9(t *testing.T) {
	dataDir := t.TempDir()
	p := startStrata(t, "--data-dir", dataDir)
	ws := createWorkspace(t, p.URL)
	target := p.URL + "/workspaces/" + ws + "/api/v1/remote_write"

	const writers, seriesPerWriter = 4, 50
	type ack struct{ writer, round int }
	var (
		mu    sync.Mutex
		acked []ack
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	base := time.Now().UnixMilli()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for round := 0; !stop.Load(); round++ {
				req := &prompb.WriteRequest{}
				for s := range seriesPerWriter {
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						Labels:  []prompb.Label{{Name: "__name__", Value: "crash_test"}, {Name: "series", Value: fmt.Sprint(s)}, {Name: "writer", Value: fmt.Sprint(w)}},
						Samples: []prompb.Sample{{Value: float64(round), Timestamp: base + int64(round)}},
					})
				}
				b, _ := req.Marshal()
				hreq, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(snappy.Encode(nil, b)))
				hreq.Header.Set("Content-Type", "application/x-protobuf")
				hreq.Header.Set("Content-Encoding", "snappy")
				resp, err := client.Do(hreq)
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					acked = append(acked, ack{w, round})
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	p.kill() // SIGKILL while writers are mid-flight
	stop.Store(true)
	wg.Wait()
	if len(acked) < writers {
		t.Fatalf("only %d requests acknowledged before the kill", len(acked))
	}

	// Restart: the TSDB opens (and replays its WAL) on first use; then stop cleanly.
	p2 := startStrata(t, "--data-dir", dataDir)
	resp, err := http.Post(p2.URL+"/workspaces/"+ws+"/api/v1/remote_write", "application/x-protobuf", bytes.NewReader(snappy.Encode(nil, nil)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p2.stop(t)

	db, err := tsdb.OpenDBReadOnly(filepath.Join(dataDir, "tsdb", ws), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	have := map[string]map[int64]bool{}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "crash_test"))
	for ss.Next() {
		s := ss.At()
		key := s.Labels().Get("writer") + "/" + s.Labels().Get("series")
		have[key] = map[int64]bool{}
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, _ := it.At()
			have[key][ts] = true
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, a := range acked {
		for s := range seriesPerWriter {
			if !have[fmt.Sprintf("%d/%d", a.writer, s)][base+int64(a.round)] {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d acknowledged samples lost after kill -9 (of %d)", missing, len(acked)*seriesPerWriter)
	}
	t.Logf("%d acknowledged requests (%d samples) all present after kill -9 and restart", len(acked), len(acked)*seriesPerWriter)
}
