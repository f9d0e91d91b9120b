package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// With Heads (distributed mode), a workspace's record is never rewritten in place: each
// write uploads the new record as an object of its own (meta/revisions/<id>/<ulid>.json)
// and then moves the workspace's head, in a compare-and-set key-value store, from the
// revision it read to the new object. Of two processes writing one workspace at once,
// one moves the head and the other finds it moved, reads the new record and applies its
// change again: no change is lost, whatever the two processes' timing (a lock with an
// expiry cannot promise that to a holder that pauses past it). The record may be larger
// than a key-value store takes (MaxRecordBytes); the head is only its object's name.
//
// The object a head left is deleted after the move; a reader that still had its name
// reads the head again. A writer that dies between its upload and its move leaves an
// object no head names: the workspace's deletion removes it.
//
// Records written before the heads existed (meta/workspaces/<id>.json) get a head naming
// that object at Load, so a cluster keeps its workspaces when it upgrades.

// revisionsDir holds the records of workspaces with heads: meta/revisions/<id>/<ulid>.json.
const revisionsDir = "meta/revisions/"

// ErrConflict is returned by Heads when the head moved since the revision given.
var ErrConflict = errors.New("the head moved")

// Head is the current revision of a workspace's record: the object that holds it, and
// the store's revision of the head (never 0).
type Head struct {
	Object string
	Rev    uint64
}

// Heads is a compare-and-set key-value store of each workspace's head (UseHeads).
type Heads interface {
	// Get returns the workspace's head; ErrNotFound when it has none.
	Get(ctx context.Context, id string) (Head, error)
	// Put names object as the workspace's record if the head's revision is still rev (0:
	// the workspace has no head) and returns the new revision; ErrConflict otherwise.
	Put(ctx context.Context, id, object string, rev uint64) (uint64, error)
	// Delete removes the workspace's head if its revision is still rev; ErrConflict
	// otherwise.
	Delete(ctx context.Context, id string, rev uint64) error
	// List returns every workspace's head.
	List(ctx context.Context) (map[string]Head, error)
	// Watch calls f with the id of every workspace whose head moves or is deleted, until
	// ctx is done; first with "" once it watches (what moved before, it does not report).
	Watch(ctx context.Context, f func(id string)) error
}

// maxHeadAttempts bounds how often one write reads again a record another process
// changed under it.
const maxHeadAttempts = 20

// UseHeads keeps the workspaces' records behind heads in h (see above), read on their
// moves as the notifier's reports (it replaces any notifier). Call before use.
func (s *Store) UseHeads(h Heads) {
	s.heads = h
	s.notifier = headsNotifier{h}
}

// headsNotifier reports the heads' moves: a move is its own report.
type headsNotifier struct{ h Heads }

func (headsNotifier) Changed(context.Context, string) error { return nil }

func (n headsNotifier) Watch(ctx context.Context, f func(string)) error { return n.h.Watch(ctx, f) }

// revisionObject names a new object for a record of workspace id.
func revisionObject(id string) string {
	return revisionsDir + id + "/" + ulid.Make().String() + ".json"
}

// readHead returns the workspace's record and the head that names it. A head moved on
// while its object was read is read again.
func (s *Store) readHead(ctx context.Context, id string) (Workspace, Head, error) {
	for range maxHeadAttempts {
		h, err := s.heads.Get(ctx, id)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return Workspace{}, Head{}, ErrNotFound
			}
			return Workspace{}, Head{}, fmt.Errorf("reading the head of workspace %s: %w", id, err)
		}
		ws, err := s.readObject(ctx, id, h.Object)
		if errors.Is(err, ErrNotFound) {
			if now, err2 := s.heads.Get(ctx, id); err2 == nil && now.Rev != h.Rev {
				continue // deleted after the head moved on
			}
			// A head naming no object: an upgrade imported a record deleted meanwhile.
			return Workspace{}, Head{}, fmt.Errorf("workspace %s: its head names %s, which is gone: %w", id, h.Object, ErrNotFound)
		}
		return ws, h, err
	}
	return Workspace{}, Head{}, fmt.Errorf("reading workspace %s: its head kept moving", id)
}

// importRecords gives each record written before the heads existed a head naming it.
func (s *Store) importRecords(ctx context.Context) error {
	var ids []string
	err := s.bkt.Iter(ctx, workspacesDir, func(name string) error {
		if id, ok := idFromObject(name); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the records to import: %w", err)
	}
	for _, id := range ids {
		_, err := s.heads.Put(ctx, id, objectName(id), 0)
		if err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("importing workspace %s: %w", id, err)
		}
	}
	return nil
}

// headsCreate writes a new workspace's record and its head, and returns the head's
// revision; ErrExists when it has one.
func (s *Store) headsCreate(ctx context.Context, ws Workspace) (uint64, error) {
	body, err := s.encode(ws)
	if err != nil {
		return 0, err
	}
	obj := revisionObject(ws.ID)
	if err := s.upload(ctx, ws.ID, obj, body); err != nil {
		return 0, err
	}
	rev, err := s.heads.Put(ctx, ws.ID, obj, 0)
	if err != nil {
		if errors.Is(err, ErrConflict) {
			s.deleteObject(ctx, obj)
			return 0, fmt.Errorf("workspace %s: %w", ws.ID, ErrExists)
		}
		// The outcome is unknown: the object stays, in case the head names it.
		return 0, fmt.Errorf("writing the head of workspace %s: %w", ws.ID, err)
	}
	return rev, nil
}

// headsUpdate applies change to the workspace's current record and moves its head to the
// result, again from the newer record each time another process moved the head first.
func (s *Store) headsUpdate(ctx context.Context, id string, change func(*Workspace) error) (Workspace, uint64, error) {
	for range maxHeadAttempts {
		ws, h, err := s.readHead(ctx, id)
		if err != nil {
			return Workspace{}, 0, err
		}
		if err := change(&ws); err != nil {
			return Workspace{}, 0, err
		}
		body, err := s.encode(ws)
		if err != nil {
			return Workspace{}, 0, err
		}
		obj := revisionObject(id)
		if err := s.upload(ctx, id, obj, body); err != nil {
			return Workspace{}, 0, err
		}
		rev, err := s.heads.Put(ctx, id, obj, h.Rev)
		if err != nil {
			if errors.Is(err, ErrConflict) {
				s.m.conflicts.Inc()
				s.deleteObject(ctx, obj)
				continue
			}
			return Workspace{}, 0, fmt.Errorf("moving the head of workspace %s: %w", id, err)
		}
		s.deleteObject(ctx, h.Object)
		return ws, rev, nil
	}
	return Workspace{}, 0, fmt.Errorf("updating workspace %s: %d other writes came first, one after the other", id, maxHeadAttempts)
}

// headsDelete removes the workspace's head, then its record and any object a writer that
// died left. Deleting a workspace with no head is not an error.
func (s *Store) headsDelete(ctx context.Context, id string) error {
	for range maxHeadAttempts {
		h, err := s.heads.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the head of workspace %s: %w", id, err)
		}
		if err := s.heads.Delete(ctx, id, h.Rev); err != nil {
			if errors.Is(err, ErrConflict) {
				s.m.conflicts.Inc()
				continue
			}
			return fmt.Errorf("deleting the head of workspace %s: %w", id, err)
		}
		s.deleteObject(ctx, h.Object)
		break
	}
	err := s.bkt.Iter(ctx, revisionsDir+id+"/", func(name string) error {
		s.deleteObject(ctx, name)
		return nil
	})
	if err != nil {
		s.logger.Warn("listing a deleted workspace's leftover records", "workspace", id, "err", err)
	}
	return nil
}

// headsList lists every workspace's head and reads the records whose head moved since
// they were cached.
func (s *Store) headsList(ctx context.Context) (map[string]bool, []read, error) {
	heads, err := s.heads.List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the workspaces' heads: %w", err)
	}
	listed := map[string]bool{}
	s.mu.RLock()
	var toRead []string
	for id, h := range heads {
		listed[id] = true
		if e, ok := s.workspaces[id]; !ok || e.rev != h.Rev {
			toRead = append(toRead, id)
		}
	}
	s.mu.RUnlock()
	return listed, s.readListed(ctx, toRead, listed, func(string) time.Time { return time.Time{} }), nil
}

// deleteObject deletes a record's object, logging a failure: what it leaves costs only
// space.
func (s *Store) deleteObject(ctx context.Context, name string) {
	if err := s.bkt.Delete(ctx, name); err != nil && !s.bkt.IsObjNotFoundErr(err) {
		s.logger.Warn("deleting a workspace record no head names", "object", name, "err", err)
	}
}

// upload writes a record's body to the object name.
func (s *Store) upload(ctx context.Context, id, name string, body []byte) error {
	if err := s.bkt.Upload(ctx, name, bytes.NewReader(body)); err != nil {
		return fmt.Errorf("writing workspace %s: %w", id, err)
	}
	return nil
}
