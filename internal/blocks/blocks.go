// Package blocks is the layout of TSDB blocks in the bucket, shared by the ingester's
// shipper, the store-gateway and the compactor. Start from Upload and List.
//
//	<workspace>/<block ULID>/meta.json           written last: a block without it is partial
//	<workspace>/<block ULID>/index
//	<workspace>/<block ULID>/chunks/000001 ...
//	<workspace>/<block ULID>/tombstones
//	<workspace>/<block ULID>/deletion-mark.json  the block is going away (compactor)
//
// Readers ignore blocks without meta.json, so an upload interrupted by a crash is never
// served; the next upload of the same block overwrites it.
package blocks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// File names inside a block directory.
const (
	MetaFilename         = "meta.json"
	DeletionMarkFilename = "deletion-mark.json"
	IndexFilename        = "index"
	ChunksDirname        = "chunks"
	TombstonesFilename   = "tombstones"
)

// ErrNoMeta is returned for a block whose meta.json is missing (partial or deleted).
var ErrNoMeta = errors.New("block has no meta.json")

// Meta is a block's meta.json: Prometheus' BlockMeta.
type Meta = tsdb.BlockMeta

// DeletionMark says when a block was marked for deletion.
type DeletionMark struct {
	ID           ulid.ULID `json:"id"`
	DeletionTime int64     `json:"deletion_time"` // unix seconds
	Version      int       `json:"version"`
	Reason       string    `json:"reason,omitempty"`
}

// Dir is the bucket prefix of a block, with a trailing slash.
func Dir(workspace string, id ulid.ULID) string { return workspace + "/" + id.String() + "/" }

// HintImported, in a block's meta.json compaction hints, says the block came through the
// block import API (strata migrate backfill), or was compacted from such blocks only: no
// ingester holds it on local disk, so the compactor need not wait for the ingesters to
// let go of its time window (compactor.PlanInput.Hold).
const HintImported = "strata-imported"

// Imported tells whether m carries HintImported.
func Imported(m *Meta) bool { return slices.Contains(m.Compaction.Hints, HintImported) }

// MarkImported adds HintImported to the meta.json of the block in dir, as Prometheus
// writes the file (replaced whole, through a temporary file).
func MarkImported(dir string) error {
	m, err := ReadLocalMeta(dir)
	if err != nil {
		return err
	}
	if Imported(m) {
		return nil
	}
	m.Compaction.Hints = append(m.Compaction.Hints, HintImported)
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, MetaFilename+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, MetaFilename))
}

// ReadLocalMeta reads meta.json from a block directory on disk.
func ReadLocalMeta(dir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaFilename))
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(dir, MetaFilename), err)
	}
	return &m, nil
}

// Upload copies the block in dir to the workspace's prefix, meta.json last.
func Upload(ctx context.Context, bkt objstore.Bucket, workspace, dir string) (*Meta, error) {
	meta, err := ReadLocalMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("reading block meta: %w", err)
	}
	if meta.ULID.String() != filepath.Base(dir) {
		return nil, fmt.Errorf("block directory %s holds block %s", dir, meta.ULID)
	}
	prefix := Dir(workspace, meta.ULID)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == MetaFilename || rel == DeletionMarkFilename {
			return nil
		}
		return uploadFile(ctx, bkt, p, prefix+filepath.ToSlash(rel))
	})
	if err != nil {
		return nil, fmt.Errorf("uploading block %s: %w", meta.ULID, err)
	}
	if err := uploadFile(ctx, bkt, filepath.Join(dir, MetaFilename), prefix+MetaFilename); err != nil {
		return nil, fmt.Errorf("uploading meta.json of block %s: %w", meta.ULID, err)
	}
	return meta, nil
}

func uploadFile(ctx context.Context, bkt objstore.Bucket, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return bkt.Upload(ctx, dst, f)
}

// Download copies a block from the bucket into dst/<ULID>, meta.json last, through a
// temporary directory so a crash never leaves a block that looks complete.
func Download(ctx context.Context, bkt objstore.BucketReader, workspace string, id ulid.ULID, dst string) (string, error) {
	final := filepath.Join(dst, id.String())
	tmp := final + ".tmp-download"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return "", err
	}
	prefix := Dir(workspace, id)
	var metaSeen bool
	err := bkt.Iter(ctx, prefix, func(name string) error {
		rel := strings.TrimPrefix(name, prefix)
		if rel == DeletionMarkFilename {
			return nil
		}
		if rel == MetaFilename {
			metaSeen = true
		}
		return downloadFile(ctx, bkt, name, filepath.Join(tmp, filepath.FromSlash(rel)))
	}, objstore.WithRecursiveIter())
	if err == nil && !metaSeen {
		err = ErrNoMeta
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("downloading block %s/%s: %w", workspace, id, err)
	}
	if err := os.RemoveAll(final); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

func downloadFile(ctx context.Context, bkt objstore.BucketReader, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	rc, err := bkt.Get(ctx, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Block is a block listed in the bucket.
type Block struct {
	Meta Meta
	// DeletionMark is set when the block is marked for deletion.
	DeletionMark *DeletionMark
}

// List returns the complete blocks (with meta.json) of a workspace, oldest first.
func List(ctx context.Context, bkt objstore.BucketReader, workspace string) ([]Block, error) {
	var ids []ulid.ULID
	err := bkt.Iter(ctx, workspace+"/", func(name string) error {
		base := path.Base(strings.TrimSuffix(name, "/"))
		if id, err := ulid.ParseStrict(base); err == nil && strings.HasSuffix(name, "/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing blocks of %s: %w", workspace, err)
	}
	var out []Block
	for _, id := range ids {
		b, err := ReadMeta(ctx, bkt, workspace, id)
		if errors.Is(err, ErrNoMeta) {
			continue // partial upload or being deleted
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *b)
	}
	sortBlocks(out)
	return out, nil
}

func sortBlocks(bs []Block) {
	for i := 1; i < len(bs); i++ {
		for j := i; j > 0 && (bs[j].Meta.MinTime < bs[j-1].Meta.MinTime ||
			(bs[j].Meta.MinTime == bs[j-1].Meta.MinTime && bs[j].Meta.ULID.Compare(bs[j-1].Meta.ULID) < 0)); j-- {
			bs[j], bs[j-1] = bs[j-1], bs[j]
		}
	}
}

// ReadMeta reads a block's meta.json and deletion mark from the bucket.
func ReadMeta(ctx context.Context, bkt objstore.BucketReader, workspace string, id ulid.ULID) (*Block, error) {
	prefix := Dir(workspace, id)
	b, err := readObject(ctx, bkt, prefix+MetaFilename)
	if bkt.IsObjNotFoundErr(err) {
		return nil, ErrNoMeta
	}
	if err != nil {
		return nil, fmt.Errorf("reading meta.json of %s/%s: %w", workspace, id, err)
	}
	blk := &Block{}
	if err := json.Unmarshal(b, &blk.Meta); err != nil {
		return nil, fmt.Errorf("decoding meta.json of %s/%s: %w", workspace, id, err)
	}
	b, err = readObject(ctx, bkt, prefix+DeletionMarkFilename)
	switch {
	case bkt.IsObjNotFoundErr(err):
	case err != nil:
		return nil, fmt.Errorf("reading deletion mark of %s/%s: %w", workspace, id, err)
	default:
		var m DeletionMark
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("decoding deletion mark of %s/%s: %w", workspace, id, err)
		}
		blk.DeletionMark = &m
	}
	return blk, nil
}

func readObject(ctx context.Context, bkt objstore.BucketReader, name string) ([]byte, error) {
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// MarkForDeletion writes the block's deletion mark; Delete removes it after a delay.
func MarkForDeletion(ctx context.Context, bkt objstore.Bucket, workspace string, id ulid.ULID, reason string, now time.Time) error {
	b, _ := json.Marshal(DeletionMark{ID: id, DeletionTime: now.Unix(), Version: 1, Reason: reason})
	return bkt.Upload(ctx, Dir(workspace, id)+DeletionMarkFilename, bytes.NewReader(b))
}

// Delete removes every object of a block, meta.json first so that readers stop seeing it
// at once and a crash midway leaves a partial block that List ignores.
func Delete(ctx context.Context, bkt objstore.Bucket, workspace string, id ulid.ULID) error {
	prefix := Dir(workspace, id)
	if err := bkt.Delete(ctx, prefix+MetaFilename); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting meta.json of %s/%s: %w", workspace, id, err)
	}
	var names []string
	if err := bkt.Iter(ctx, prefix, func(name string) error { names = append(names, name); return nil }, objstore.WithRecursiveIter()); err != nil {
		return err
	}
	for _, n := range names {
		if err := bkt.Delete(ctx, n); err != nil && !bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("deleting %s: %w", n, err)
		}
	}
	return nil
}

// MaxWorkspaceIDLength is the longest workspace id, as in AMP's API model.
const MaxWorkspaceIDLength = 64

// ValidWorkspace tells whether ws can be a workspace id: 1-64 characters, a letter or
// digit, then letters, digits, '-', '.' and '_' (AMP's ids are ws-<uuid>). Such an id
// names a directory and a bucket prefix safely. A loop, not a regexp: it is on every
// request's path.
func ValidWorkspace(ws string) bool {
	if ws == "" || len(ws) > MaxWorkspaceIDLength {
		return false
	}
	for i := 0; i < len(ws); i++ {
		c := ws[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c == '-' || c == '.' || c == '_'):
		default:
			return false
		}
	}
	return true
}
