package importer

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/testutil"
)

func writeBlock(t *testing.T, dir string, from time.Time, span time.Duration, n int) string {
	t.Helper()
	return testutil.WriteBlock(t, dir, "imported", from, span, n)
}

func newImporter(t *testing.T, maxBytes int64) (*Importer, *httptest.Server, *bucket.Filesystem) {
	t.Helper()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	i, err := New(Config{MaxBlockBytes: maxBytes, CreationGracePeriod: 10 * time.Minute, StagedTTL: time.Hour}, t.TempDir(), bkt,
		compactor.StaticWorkspaces{"ws-1": 30 * 24 * time.Hour}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(i.Mux())
	t.Cleanup(srv.Close)
	return i, srv, bkt
}

func client(srv *httptest.Server, ws string, partSize int64) *Client {
	return &Client{Endpoint: srv.URL + "/workspaces/" + ws, HTTP: srv.Client(), PartSize: partSize}
}

// A block goes in parts, is checked and uploaded under its workspace; sent again, it is
// found and nothing changes.
func TestImportBlock(t *testing.T) {
	_, srv, bkt := newImporter(t, 1<<30)
	dir := writeBlock(t, t.TempDir(), time.Now().Add(-48*time.Hour).Truncate(time.Hour), 2*time.Hour, 3)
	c := client(srv, "ws-1", 100)
	var sent int64
	res, err := c.Send(context.Background(), dir, func(n int64) { sent += n })
	if err != nil || res.Status != "imported" || res.Series != 3 || res.Samples != 3*120 || res.ULID != filepath.Base(dir) {
		t.Fatalf("import: %+v %v", res, err)
	}
	_, sizes, _ := BlockFiles(dir)
	var total int64
	for _, n := range sizes {
		total += n
	}
	if sent != total {
		t.Fatalf("%d bytes reported sent, the block has %d", sent, total)
	}
	metas, err := blocks.List(context.Background(), bkt, "ws-1")
	if err != nil || len(metas) != 1 || metas[0].Meta.ULID.String() != res.ULID {
		t.Fatalf("the workspace's blocks: %v %v", metas, err)
	}
	if !blocks.Imported(&metas[0].Meta) {
		t.Fatalf("the imported block's meta.json lacks the hint %q: %+v", blocks.HintImported, metas[0].Meta.Compaction)
	}
	if res, err := c.Send(context.Background(), dir, nil); err != nil || res.Status != "exists" {
		t.Fatalf("the same block again: %+v %v", res, err)
	}
}

// An interrupted import goes on from what is staged: the server says how much of each
// file it has, and a part sent at another offset is refused with the staged size.
func TestImportResumes(t *testing.T) {
	_, srv, bkt := newImporter(t, 1<<30)
	dir := writeBlock(t, t.TempDir(), time.Now().Add(-48*time.Hour).Truncate(time.Hour), 2*time.Hour, 50)
	id := filepath.Base(dir)
	ctx := context.Background()
	c := client(srv, "ws-1", 1000)
	index, err := os.ReadFile(filepath.Join(dir, "index"))
	if err != nil {
		t.Fatal(err)
	}
	// The first two parts of the index, as an interrupted client left them.
	var out map[string]int64
	for off := 0; off < 2000; off += 1000 {
		if err := c.do(ctx, http.MethodPut, "/api/v1/import/blocks/"+id+"/files/index?offset="+strconv.Itoa(off), index[off:off+1000], &out); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.Status(ctx, id)
	if err != nil || st.Status != "staged" || st.Files["index"] != 2000 {
		t.Fatalf("status: %+v %v", st, err)
	}
	err = c.do(ctx, http.MethodPut, "/api/v1/import/blocks/"+id+"/files/index?offset=1000", index[1000:2000], &out)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || !strings.Contains(apiErr.Message, "send from 2000") {
		t.Fatalf("a part at the wrong offset: %v", err)
	}
	var sent int64
	res, err := c.Send(ctx, dir, func(n int64) { sent += n })
	if err != nil || res.Status != "imported" || res.Series != 50 {
		t.Fatalf("resumed: %+v %v", res, err)
	}
	if metas, err := blocks.List(ctx, bkt, "ws-1"); err != nil || len(metas) != 1 {
		t.Fatalf("the workspace's blocks: %v %v", metas, err)
	}
}

// What cannot be imported is refused with what is wrong, and nothing is stored.
func TestImportRefusals(t *testing.T) {
	_, srv, bkt := newImporter(t, 64<<10)
	ctx := context.Background()
	now := time.Now().Truncate(time.Hour)
	good := writeBlock(t, t.TempDir(), now.Add(-48*time.Hour), 2*time.Hour, 2)
	old := writeBlock(t, t.TempDir(), now.Add(-40*24*time.Hour), 2*time.Hour, 2)
	future := writeBlock(t, t.TempDir(), now.Add(2*time.Hour), 2*time.Hour, 2)
	big := writeBlock(t, t.TempDir(), now.Add(-72*time.Hour), 2*time.Hour, 2000)
	corrupt := writeBlock(t, t.TempDir(), now.Add(-96*time.Hour), 2*time.Hour, 2)
	testutil.CorruptChunks(t, corrupt)
	for _, c := range []struct {
		name, ws, dir string
		code          int
		want          string
	}{
		{"unknown workspace", "ws-nope", good, http.StatusNotFound, "ws-nope not found"},
		{"out of retention", "ws-1", old, http.StatusBadRequest, "before the workspace's retention of 720h0m0s"},
		{"in the future", "ws-1", future, http.StatusBadRequest, "further into the future"},
		{"over the size limit", "ws-1", big, http.StatusRequestEntityTooLarge, "larger than the import limit of 65536 bytes"},
		{"a corrupt chunk", "ws-1", corrupt, http.StatusBadRequest, filepath.Base(corrupt)},
	} {
		_, err := client(srv, c.ws, 16<<10).Send(ctx, c.dir, nil)
		var e *APIError
		if !errors.As(err, &e) || e.Status != c.code || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: %v, want %d and %q", c.name, err, c.code, c.want)
		}
		if (c.code == http.StatusBadRequest) != Refused(err) && c.code != http.StatusRequestEntityTooLarge && c.code != http.StatusNotFound {
			t.Errorf("%s: Refused says %v", c.name, Refused(err))
		}
	}
	// Names that are not a block's files, and ULIDs that are not ULIDs.
	c := client(srv, "ws-1", 1<<10)
	var out map[string]int64
	id := filepath.Base(good)
	for path, want := range map[string]string{
		"/api/v1/import/blocks/" + id + "/files/..%2F..%2Fetc%2Fpasswd?offset=0": "not a file of a block",
		"/api/v1/import/blocks/" + id + "/files/chunks/1?offset=0":               "not a file of a block",
		"/api/v1/import/blocks/not-a-ulid/files/index?offset=0":                  "not a block ULID",
		"/api/v1/import/blocks/" + id + "/files/index?offset=-1":                 "offset must be",
	} {
		err := c.do(ctx, http.MethodPut, path, []byte("x"), &out)
		var e *APIError
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, want) {
			t.Errorf("PUT %s: %v, want 400 and %q", path, err, want)
		}
	}
	// Completing without a meta.json.
	if err := c.do(ctx, http.MethodPut, "/api/v1/import/blocks/"+id+"/files/index?offset=0", []byte("x"), &out); err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := c.do(ctx, http.MethodPost, "/api/v1/import/blocks/"+id, nil, &res); err == nil || !strings.Contains(err.Error(), "meta.json is not staged") {
		t.Errorf("completing without meta.json: %v", err)
	}
	if metas, err := blocks.List(ctx, bkt, "ws-1"); err != nil || len(metas) != 0 {
		t.Fatalf("refused blocks were stored: %v %v", metas, err)
	}
}

// Staged parts not continued within the TTL are removed.
func TestStagedPartsExpire(t *testing.T) {
	i, srv, _ := newImporter(t, 1<<30)
	dir := writeBlock(t, t.TempDir(), time.Now().Add(-48*time.Hour).Truncate(time.Hour), 2*time.Hour, 2)
	id := filepath.Base(dir)
	c := client(srv, "ws-1", 1<<10)
	var out map[string]int64
	if err := c.do(context.Background(), http.MethodPut, "/api/v1/import/blocks/"+id+"/files/tombstones?offset=0", []byte("x"), &out); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	i.now = func() time.Time { return now.Add(59 * time.Minute) }
	i.removeStale()
	if st, _ := c.Status(context.Background(), id); st.Status != "staged" {
		t.Fatalf("after 59 minutes: %+v", st)
	}
	i.now = func() time.Time { return now.Add(61 * time.Minute) }
	i.removeStale()
	if st, _ := c.Status(context.Background(), id); st.Status != "none" {
		t.Fatalf("after 61 minutes: %+v", st)
	}
}
