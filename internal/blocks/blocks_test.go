package blocks

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writeBlock makes a real TSDB block with n series in dir and returns its directory.
func writeBlock(t *testing.T, dir string, n int, mint int64) string {
	t.Helper()
	return testutil.WriteBlockWith(t, dir, 2*time.Hour, func(app storage.Appender) error {
		for i := range n {
			if _, err := app.Append(0, labels.FromStrings("__name__", "m", "i", string(rune('a'+i))), mint+int64(i), float64(i)); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestUploadListDownloadDelete(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	d1 := writeBlock(t, src, 3, 1000)
	d2 := writeBlock(t, src, 2, 500)
	m1, err := Upload(ctx, bkt, "ws-1", d1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Upload(ctx, bkt, "ws-1", d2); err != nil {
		t.Fatal(err)
	}
	// A partial upload (no meta.json) is not listed.
	if err := bkt.Upload(ctx, "ws-1/01ARZ3NDEKTSV4RRFFQ69G5FAV/index", bytesReader("x")); err != nil {
		t.Fatal(err)
	}
	list, err := List(ctx, bkt, "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Meta.MinTime != 500 || list[1].Meta.ULID != m1.ULID {
		t.Fatalf("list: %+v", list)
	}
	if other, _ := List(ctx, bkt, "ws-2"); len(other) != 0 {
		t.Fatalf("another workspace lists %v", other)
	}
	dst := t.TempDir()
	got, err := Download(ctx, bkt, "ws-1", m1.ULID, dst)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), got, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Meta().Stats.NumSeries != 3 {
		t.Fatalf("downloaded block has %d series", b.Meta().Stats.NumSeries)
	}
	b.Close()

	if err := MarkForDeletion(ctx, bkt, "ws-1", m1.ULID, "test", time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	blk, err := ReadMeta(ctx, bkt, "ws-1", m1.ULID)
	if err != nil || blk.DeletionMark == nil || blk.DeletionMark.DeletionTime != 100 {
		t.Fatalf("deletion mark: %+v %v", blk, err)
	}
	if err := Delete(ctx, bkt, "ws-1", m1.ULID); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeta(ctx, bkt, "ws-1", m1.ULID); !errors.Is(err, ErrNoMeta) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := Download(ctx, bkt, "ws-1", m1.ULID, dst); !errors.Is(err, ErrNoMeta) {
		t.Fatalf("download of a deleted block: %v", err)
	}
	list, _ = List(ctx, bkt, "ws-1")
	if len(list) != 1 {
		t.Fatalf("after delete: %+v", list)
	}
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }

func TestImport(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := writeBlock(t, t.TempDir(), 4, 1000)
	m, err := Import(ctx, bkt, "ws-1", good)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := List(ctx, bkt, "ws-1"); len(l) != 1 || l[0].Meta.ULID != m.ULID {
		t.Fatalf("after import: %+v", l)
	}

	// A block whose meta.json lies about its contents is refused and not uploaded.
	bad := writeBlock(t, t.TempDir(), 2, 1000)
	meta, _ := ReadLocalMeta(bad)
	meta.Stats.NumSamples++
	b, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(bad, MetaFilename), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, bkt, "ws-1", bad); err == nil || !strings.Contains(err.Error(), "meta.json says") {
		t.Fatalf("lying meta.json: %v", err)
	}
	// A corrupted index is refused.
	corrupt := writeBlock(t, t.TempDir(), 2, 1000)
	if err := os.WriteFile(filepath.Join(corrupt, IndexFilename), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, bkt, "ws-1", corrupt); err == nil {
		t.Fatal("corrupt index accepted")
	}
	// A directory not named after its block is refused.
	renamed := filepath.Join(t.TempDir(), "not-a-ulid")
	if err := os.Rename(writeBlock(t, t.TempDir(), 1, 1000), renamed); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, bkt, "ws-1", renamed); err == nil {
		t.Fatal("misnamed block accepted")
	}
	if l, _ := List(ctx, bkt, "ws-1"); len(l) != 1 {
		t.Fatalf("refused imports reached the bucket: %+v", l)
	}
}
