package alertmanager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/thanos-io/objstore"
)

// The states of a workspace's Alertmanager that outlive the process, and their names in
// the bucket (alertmanager/<workspace>/<state>) and in the data directory
// (<dir>/<workspace>/<state>). Both hold the library's snapshot format.
const (
	stateSilences = "silences"
	stateNflog    = "nflog"
)

var states = []string{stateSilences, stateNflog}

// bucketPrefix holds every workspace's states.
const bucketPrefix = "alertmanager/"

// maxStateBytes bounds what is read of one state: 1,000 silences or notification log
// entries take well under a megabyte.
const maxStateBytes = 256 << 20

func objectName(workspace, state string) string {
	return bucketPrefix + workspace + "/" + state
}

func (m *MultiTenant) localPath(workspace, state string) string {
	return filepath.Join(m.dir, workspace, state)
}

// loadStates reads a workspace's states from the bucket and from the data directory.
// Both are returned: merging them keeps the newest of each entry, so the copy the bucket
// has (another process, or a lost disk) and the one a failed upload left on disk both
// count. A bucket that cannot be read fails the load: an Alertmanager started without
// its state would write that empty state over it at its next persist. A working copy
// that cannot be read is logged and skipped.
func (m *MultiTenant) loadStates(ctx context.Context, workspace string) (map[string][][]byte, error) {
	out := map[string][][]byte{}
	for _, st := range states {
		b, err := m.readObject(ctx, objectName(workspace, st))
		switch {
		case err == nil:
			out[st] = append(out[st], b)
		case !m.bkt.IsObjNotFoundErr(err):
			return nil, fmt.Errorf("reading %s from the bucket: %w", st, err)
		}
		b, err = readFile(m.localPath(workspace, st))
		switch {
		case err == nil:
			out[st] = append(out[st], b)
		case !errors.Is(err, os.ErrNotExist):
			m.logger.Warn("reading alertmanager state from disk", "workspace", workspace, "state", st, "err", err)
		}
	}
	return out, nil
}

func (m *MultiTenant) readObject(ctx context.Context, name string) ([]byte, error) {
	rc, err := m.bkt.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxStateBytes))
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxStateBytes))
}

// persist garbage-collects the given states of t and writes each to the data directory
// and, when it changed since the last write, to the bucket. The bucket's Upload replaces
// the whole object, and the file is written to a temporary name, synced and renamed, so
// neither is ever half written.
func (m *MultiTenant) persist(ctx context.Context, t *tenant, which ...string) error {
	t.persistMu.Lock()
	defer t.persistMu.Unlock()
	if t.retired {
		return nil
	}
	var errs error
	for _, st := range which {
		b, err := t.snapshot(st)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("snapshot of %s: %w", st, err))
			continue
		}
		digest := stateDigest(b)
		if digest == t.persisted[st] {
			continue
		}
		if err := writeFileAtomic(m.localPath(t.id, st), b); err != nil {
			// The bucket copy is what counts; the local one only helps when it fails.
			m.logger.Warn("writing alertmanager state to disk", "workspace", t.id, "state", st, "err", err)
		}
		if err := m.bkt.Upload(ctx, objectName(t.id, st), bytes.NewReader(b)); err != nil {
			m.metrics.persists.WithLabelValues(st, "failure").Inc()
			errs = errors.Join(errs, fmt.Errorf("writing %s to the bucket: %w", st, err))
			continue
		}
		m.metrics.persists.WithLabelValues(st, "success").Inc()
		t.persisted[st] = digest
	}
	return errs
}

// snapshot garbage-collects a state and returns it in the library's snapshot format.
func (t *tenant) snapshot(st string) ([]byte, error) {
	var buf bytes.Buffer
	switch st {
	case stateSilences:
		if _, err := t.silences.GC(); err != nil {
			t.logger.Warn("collecting expired silences", "err", err)
		}
		if _, err := t.silences.Snapshot(&buf); err != nil {
			return nil, err
		}
	case stateNflog:
		if _, err := t.nflog.GC(); err != nil {
			t.logger.Warn("collecting expired notification log entries", "err", err)
		}
		if _, err := t.nflog.Snapshot(&buf); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown state %q", st)
	}
	return buf.Bytes(), nil
}

// stateDigest identifies a snapshot's content whatever the order of its entries (the
// library writes them in map order): the hash of its length-delimited messages' sorted
// hashes.
func stateDigest(b []byte) string {
	var sums [][sha256.Size]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			sums = append(sums, sha256.Sum256(b)) // not the expected format: hash the rest
			break
		}
		sums = append(sums, sha256.Sum256(b[k:k+int(n)]))
		b = b[k+int(n):]
	}
	slices.SortFunc(sums, func(x, y [sha256.Size]byte) int { return bytes.Compare(x[:], y[:]) })
	h := sha256.New()
	for _, s := range sums {
		h.Write(s[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeFileAtomic writes b to path through a synced temporary file renamed into place.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(b); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// deleteStates removes a workspace's states from the bucket and the data directory.
func (m *MultiTenant) deleteStates(ctx context.Context, workspace string) error {
	var names []string
	err := m.bkt.Iter(ctx, bucketPrefix+workspace+"/", func(name string) error {
		if !strings.HasSuffix(name, objstore.DirDelim) {
			names = append(names, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("listing the alertmanager state of workspace %s: %w", workspace, err)
	}
	for _, name := range names {
		if err := m.bkt.Delete(ctx, name); err != nil && !m.bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("deleting %s: %w", name, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(m.dir, workspace)); err != nil {
		return fmt.Errorf("deleting the alertmanager data of workspace %s: %w", workspace, err)
	}
	return nil
}
