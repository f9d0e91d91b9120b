package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// createWorkspace creates a workspace over plain HTTP and waits until it is ACTIVE.
func createWorkspace(t *testing.T, url string) string {
	t.Helper()
	body := []byte(`{"alias":"crash"}`)
	req, _ := http.NewRequest(http.MethodPost, url+"/workspaces", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp := signedDo(t, req, body)
	var out struct{ WorkspaceID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var status string
	waitFor(t, "workspace "+out.WorkspaceID+" ACTIVE", 10*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, url+"/workspaces/"+out.WorkspaceID, nil)
		resp := signedDo(t, req, nil)
		defer resp.Body.Close()
		var d struct {
			Workspace struct{ Status struct{ StatusCode string } }
		}
		_ = json.NewDecoder(resp.Body).Decode(&d)
		status = d.Workspace.Status.StatusCode
		return status == "ACTIVE"
	}, func() string { return "status " + status })
	return out.WorkspaceID
}

// sign signs req with the root key, for use off the test goroutine.
func sign(req *http.Request, body []byte) {
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: rootKeyID, SecretAccessKey: rootSecret}
	_ = v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now())
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
				body := snappy.Encode(nil, b)
				hreq, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
				hreq.Header.Set("Content-Type", "application/x-protobuf")
				hreq.Header.Set("Content-Encoding", "snappy")
				sign(hreq, body)
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
	// Kill once the writers have had a good number of answers, while they go on.
	waitFor(t, "200 acknowledged writes", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	}, p.Log)
	p.kill() // SIGKILL while writers are mid-flight
	stop.Store(true)
	wg.Wait()
	if len(acked) < writers {
		t.Fatalf("only %d requests acknowledged before the kill", len(acked))
	}

	// Restart: the TSDB opens (and replays its WAL) on first use; then stop cleanly.
	p2 := startStrata(t, "--data-dir", dataDir)
	empty := snappy.Encode(nil, nil)
	req, _ := http.NewRequest(http.MethodPost, p2.URL+"/workspaces/"+ws+"/api/v1/remote_write", bytes.NewReader(empty))
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp := signedDo(t, req, empty)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("write after restart: %d", resp.StatusCode)
	}
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
