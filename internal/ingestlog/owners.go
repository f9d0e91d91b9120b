package ingestlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ownersEvery is how often WorkspaceOwners takes free workspaces and notices lost ones.
const ownersEvery = 2 * time.Second

// ownersKind is the lock kind of workspace owners.
const ownersKind = "owner"

// WorkspaceOwners gives each workspace with rules or an Alertmanager to one process of a
// cluster at a time, whose ruler evaluates its rules and whose Alertmanager holds its
// alerts, silences and notification log; the other processes forward its Alertmanager
// and rules API requests there. Ownership is a workspace lock (WorkspaceLocks) held in
// the name of the owner's URL: a killed owner's workspaces are taken by the others a
// lease TTL later. A process takes every free workspace it is asked to.
type WorkspaceOwners struct {
	locks  *WorkspaceLocks
	logger *slog.Logger

	mu   sync.Mutex
	held map[string]heldLock
	subs []chan struct{}
}

type heldLock struct {
	ctx    context.Context // ends when the lock is lost
	unlock func()
}

// NewWorkspaceOwners returns the owners of the log's cluster, taking workspaces in the
// name of self, the URL other processes reach this one at.
func NewWorkspaceOwners(l *Log, self string, logger *slog.Logger) *WorkspaceOwners {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &WorkspaceOwners{locks: NewWorkspaceLocks(l, ownersKind, self), logger: logger, held: map[string]heldLock{}}
}

// Subscribe returns a channel signalled whenever the workspaces this process owns
// change. Call before Run.
func (o *WorkspaceOwners) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	o.mu.Lock()
	o.subs = append(o.subs, ch)
	o.mu.Unlock()
	return ch
}

// Owns reports whether this process owns the workspace.
func (o *WorkspaceOwners) Owns(workspace string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, ok := o.held[workspace]
	return ok && h.ctx.Err() == nil
}

// Owned returns the workspaces this process owns, sorted.
func (o *WorkspaceOwners) Owned() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for ws, h := range o.held {
		if h.ctx.Err() == nil {
			out = append(out, ws)
		}
	}
	slices.Sort(out)
	return out
}

// Owner returns the URL of the process that owns the workspace; ok is false when none
// does.
func (o *WorkspaceOwners) Owner(ctx context.Context, workspace string) (url string, ok bool, err error) {
	kv, err := o.locks.log.locksKV(ctx)
	if err != nil {
		return "", false, err
	}
	e, err := kv.Get(ctx, o.locks.key(workspace))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the owner of workspace %s: %w", workspace, err)
	}
	return string(e.Value()), true, nil
}

// Run takes the workspaces want returns that no process owns, gives up those it no
// longer returns, and notices lost ones, every 2 s and on every signal of changed (the
// workspaces changed) until ctx is done; then it gives up all, so that others take them
// at once.
func (o *WorkspaceOwners) Run(ctx context.Context, want func() []string, changed <-chan struct{}) error {
	t := time.NewTicker(ownersEvery)
	defer t.Stop()
	for {
		o.Reconcile(ctx, want())
		select {
		case <-ctx.Done():
			o.releaseAll()
			return nil
		case <-t.C:
		case <-changed:
		}
	}
}

// Reconcile does one round of Run: it takes the free workspaces of want, and gives up
// those held that are not in it.
func (o *WorkspaceOwners) Reconcile(ctx context.Context, want []string) {
	wanted := map[string]bool{}
	for _, ws := range want {
		wanted[ws] = true
	}
	changed := false
	o.mu.Lock()
	held := maps.Clone(o.held)
	o.mu.Unlock()
	for ws, h := range held {
		lost := h.ctx.Err() != nil
		if lost || !wanted[ws] {
			h.unlock()
			o.mu.Lock()
			delete(o.held, ws)
			o.mu.Unlock()
			changed = true
			if lost && ctx.Err() == nil {
				o.logger.Warn("lost the ownership of a workspace", "workspace", ws)
			}
		}
	}
	taken, err := o.locks.keys(ctx)
	if err != nil {
		if ctx.Err() == nil {
			o.logger.Warn("listing workspace owners", "err", err)
		}
		taken = nil // try them all
	}
	for _, ws := range want {
		if o.Owns(ws) || taken[o.locks.key(ws)] {
			continue
		}
		hctx, unlock, ok, err := o.locks.Lock(ctx, ws)
		if err != nil {
			if ctx.Err() == nil {
				o.logger.Warn("taking the ownership of a workspace", "workspace", ws, "err", err)
			}
			continue
		}
		if !ok {
			continue
		}
		o.mu.Lock()
		o.held[ws] = heldLock{ctx: hctx, unlock: unlock}
		o.mu.Unlock()
		changed = true
		o.logger.Info("owning a workspace", "workspace", ws)
	}
	if changed {
		o.signal()
	}
}

func (o *WorkspaceOwners) signal() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ch := range o.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (o *WorkspaceOwners) releaseAll() {
	o.mu.Lock()
	all := o.held
	o.held = map[string]heldLock{}
	o.mu.Unlock()
	for _, h := range all {
		h.unlock()
	}
	if len(all) > 0 {
		o.signal()
	}
}
