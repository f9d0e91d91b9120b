package ingestlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// locksBucket is the JetStream key-value bucket of per-workspace locks: which process
// does a workspace's work of a kind (compaction) at the moment.
const locksBucket = "strata-workspace-locks"

// WorkspaceLocks gives each workspace to one process of a cluster at a time for one kind
// of work (the compactor's), through keys that expire --ingest.lease-ttl after their
// holder's last renewal, so a killed holder's workspaces are free again a TTL later.
type WorkspaceLocks struct {
	log    *Log
	kind   string
	holder string
}

// NewWorkspaceLocks returns the locks of kind (a key prefix: letters and dashes) taken
// in the name of holder.
func NewWorkspaceLocks(l *Log, kind, holder string) *WorkspaceLocks {
	return &WorkspaceLocks{log: l, kind: kind, holder: holder}
}

// locksKV returns the workspace locks bucket.
func (l *Log) locksKV(ctx context.Context) (jetstream.KeyValue, error) {
	return l.keyValue(ctx, &l.locks, jetstream.KeyValueConfig{
		Bucket:      locksBucket,
		Description: "Strata: which process works a workspace (compaction) at the moment",
		Storage:     jetstream.FileStorage,
		TTL:         l.cfg.LeaseTTL,
	})
}

// Lock takes the workspace's lock. ok is false when another process holds it. While
// held, the lock is renewed every 2 s; the returned context ends when it is lost (a
// renewal failed: another may hold it now) or unlock is called, which gives it up.
func (w *WorkspaceLocks) Lock(ctx context.Context, workspace string) (held context.Context, unlock func(), ok bool, err error) {
	kv, err := w.log.locksKV(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	key := w.key(workspace)
	rev, err := kv.Create(ctx, key, []byte(w.holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("taking the %s lock of %s: %w", w.kind, workspace, err)
	}
	held, lose := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(leaseEvery)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
			}
			n, err := kv.Update(held, key, []byte(w.holder), rev)
			if err != nil {
				if held.Err() == nil {
					w.log.logger.Warn("lost a workspace lock", "kind", w.kind, "workspace", workspace, "err", err)
				}
				lose()
				return
			}
			rev = n
		}
	}()
	unlock = func() {
		lose()
		<-done
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = kv.Delete(dctx, key, jetstream.LastRevision(rev))
	}
	return held, unlock, true, nil
}

// key is the workspace's lock key.
func (w *WorkspaceLocks) key(workspace string) string { return w.kind + "." + base64Key(workspace) }

// keys returns the keys of the locks of w's kind held now.
func (w *WorkspaceLocks) keys(ctx context.Context) (map[string]bool, error) {
	kv, err := w.log.locksKV(ctx)
	if err != nil {
		return nil, err
	}
	l, err := kv.ListKeysFiltered(ctx, w.kind+".*")
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Stop() }()
	out := map[string]bool{}
	for k := range l.Keys() {
		out[k] = true
	}
	return out, nil
}
