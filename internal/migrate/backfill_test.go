package migrate

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/importer"
	"github.com/stratametrics/strata/internal/testutil"
)

// With --start and --end only the window moves: blocks outside it are passed over, a
// block across a bound is cut to it, and a second run finds the cut block imported.
func TestBackfillWindow(t *testing.T) {
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	imp, err := importer.New(importer.Config{MaxBlockBytes: 1 << 30, CreationGracePeriod: time.Hour, StagedTTL: time.Hour}, t.TempDir(), bkt,
		compactor.StaticWorkspaces{"ws-1": 0}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(imp.Mux())
	t.Cleanup(srv.Close)

	data := t.TempDir()
	day := time.Now().Truncate(24 * time.Hour).Add(-72 * time.Hour)
	for h := range 3 { // three blocks of 2 h: [0, 2h), [2h, 4h), [4h, 6h), 10 series a minute
		testutil.WriteBlock(t, data, "m", day.Add(time.Duration(2*h)*time.Hour), 2*time.Hour, 10)
	}
	work := t.TempDir()
	run := func() (BackfillReport, string) {
		t.Helper()
		var out bytes.Buffer
		rep, err := Backfill(context.Background(), BackfillConfig{
			From: data, WorkDir: work, Out: &out,
			Start: day.Add(90 * time.Minute), End: day.Add(4 * time.Hour), // the last 30 min of the first, all of the second
			Client: &importer.Client{Endpoint: srv.URL + "/workspaces/ws-1", HTTP: srv.Client(), PartSize: 1 << 20},
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep, out.String()
	}
	rep, out := run()
	if rep.Imported != 2 || rep.Samples != 10*30+10*120 || !strings.HasPrefix(out, "2 blocks") {
		t.Fatalf("%+v\n%s", rep, out)
	}
	listed, err := blocks.List(context.Background(), bkt, "ws-1")
	if err != nil || len(listed) != 2 || listed[0].Meta.MinTime != day.Add(90*time.Minute).UnixMilli() {
		t.Fatalf("the workspace's blocks: %+v %v", listed, err)
	}
	if rep, out := run(); rep.Imported != 0 || rep.Existed != 2 {
		t.Fatalf("a second run: %+v\n%s", rep, out)
	}
	// Without the work directory: the block is cut again, as the same block (its ULID
	// comes from what it was cut from).
	work = t.TempDir()
	if rep, out := run(); rep.Imported != 0 || rep.Existed != 2 {
		t.Fatalf("a run with a new work directory: %+v\n%s", rep, out)
	}
}
