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

// ownersKind is the lock kind of workspace owners; ownerMembersKind that of the processes
// that may own workspaces, each holding the lock of its own URL while it runs.
const (
	ownersKind       = "owner"
	ownerMembersKind = "owner-member"
)

// WorkspaceOwners gives each workspace with rules or an Alertmanager to one process of a
// cluster at a time, whose ruler evaluates its rules and whose Alertmanager holds its
// alerts, silences and notification log; the other processes forward its Alertmanager
// and rules API requests there. Ownership is a workspace lock (WorkspaceLocks) held in
// the name of the owner's URL: a killed owner's workspaces are taken by the others a
// lease TTL later. The processes share the workspaces by weight (what owning one costs:
// its rules, say): each process' share is the wanted workspaces' total weight divided by
// the processes running, rounded up. A process takes free workspaces, heaviest first,
// while it holds less than its share, and gives up workspaces beyond it as long as it
// keeps its share, in two steps (stop serving, then unlock a round later) so that its
// Alertmanagers persist their state before another process starts them. A free
// workspace always has a taker: were every process at its share, all weight would be
// held.
type WorkspaceOwners struct {
	locks   *WorkspaceLocks
	members *WorkspaceLocks
	self    string
	logger  *slog.Logger
	member  heldLock // this process' member lock, once held

	mu   sync.Mutex
	held map[string]heldLock
	subs []chan struct{}
}

type heldLock struct {
	ctx       context.Context // ends when the lock is lost
	unlock    func()
	releasing bool // given up: not served, unlocked at the next round
}

// NewWorkspaceOwners returns the owners of the log's cluster, taking workspaces in the
// name of self, the URL other processes reach this one at.
func NewWorkspaceOwners(l *Log, self string, logger *slog.Logger) *WorkspaceOwners {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &WorkspaceOwners{locks: NewWorkspaceLocks(l, ownersKind, self), members: NewWorkspaceLocks(l, ownerMembersKind, self),
		self: self, logger: logger, held: map[string]heldLock{}}
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
	return ok && h.ctx.Err() == nil && !h.releasing
}

// Owned returns the workspaces this process owns, sorted.
func (o *WorkspaceOwners) Owned() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for ws, h := range o.held {
		if h.ctx.Err() == nil && !h.releasing {
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

// Weighted is a workspace to own and its weight, at least 1: what owning it costs.
type Weighted struct {
	ID     string
	Weight int
}

// Run takes the workspaces want returns that no process owns, gives up those it no
// longer returns, and notices lost ones, every 2 s and on every signal of changed (the
// workspaces changed) until ctx is done; then it gives up all, so that others take them
// at once.
func (o *WorkspaceOwners) Run(ctx context.Context, want func() []Weighted, changed <-chan struct{}) error {
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

// Reconcile does one round of Run: it gives up the workspaces held that are not in want,
// unlocks those given up at the last round, gives up those beyond its share, and takes
// free ones of want up to it.
func (o *WorkspaceOwners) Reconcile(ctx context.Context, want []Weighted) {
	want = slices.Clone(want)  // weighed and sorted here
	wanted := map[string]int{} // weights
	total := 0
	for i := range want {
		want[i].Weight = max(1, want[i].Weight)
		wanted[want[i].ID] = want[i].Weight
		total += want[i].Weight
	}
	changed := false
	o.mu.Lock()
	held := maps.Clone(o.held)
	o.mu.Unlock()
	active := 0
	for ws, h := range held {
		lost := h.ctx.Err() != nil
		if lost || h.releasing || wanted[ws] == 0 {
			h.unlock()
			o.mu.Lock()
			delete(o.held, ws)
			o.mu.Unlock()
			changed = changed || !h.releasing
			if lost && ctx.Err() == nil {
				o.logger.Warn("lost the ownership of a workspace", "workspace", ws)
			}
			continue
		}
		active += wanted[ws]
	}
	share := o.share(ctx, total)
	if active > share {
		// The last in order go, while this process keeps its share: which ones matters
		// less than that it converges.
		owned := o.Owned()
		o.mu.Lock()
		for i := len(owned) - 1; i >= 0 && active > share; i-- {
			ws := owned[i]
			if active-wanted[ws] < share {
				continue
			}
			h := o.held[ws]
			h.releasing = true
			o.held[ws] = h
			active -= wanted[ws]
			changed = true
			o.logger.Info("giving up a workspace to balance the owners", "workspace", ws, "weight", wanted[ws], "share", share)
		}
		o.mu.Unlock()
	}
	taken, err := o.locks.keys(ctx)
	if err != nil {
		if ctx.Err() == nil {
			o.logger.Warn("listing workspace owners", "err", err)
		}
		taken = nil // try them all
	}
	// The heaviest first: the lighter ones then even the shares out.
	slices.SortStableFunc(want, func(a, b Weighted) int { return b.Weight - a.Weight })
	for _, w := range want {
		ws := w.ID
		if active >= share {
			break
		}
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
		active += w.Weight
		changed = true
		o.logger.Info("owning a workspace", "workspace", ws)
	}
	if changed {
		o.signal()
	}
}

// share is how much of n, the wanted workspaces' total weight, this process owns: n
// divided by the processes that may own workspaces, rounded up; all when their number
// is unknown.
func (o *WorkspaceOwners) share(ctx context.Context, n int) int {
	if o.member.ctx == nil || o.member.ctx.Err() != nil {
		if o.member.unlock != nil {
			o.member.unlock()
		}
		o.member = heldLock{}
		hctx, unlock, ok, err := o.members.Lock(ctx, o.self)
		if err != nil || !ok {
			// Held by this process' previous life until it expires, or unreachable.
			return n
		}
		o.member = heldLock{ctx: hctx, unlock: unlock}
	}
	live, err := o.members.keys(ctx)
	if err != nil || len(live) == 0 {
		return n
	}
	return (n + len(live) - 1) / len(live)
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
	if o.member.unlock != nil {
		o.member.unlock()
		o.member = heldLock{}
	}
	if len(all) > 0 {
		o.signal()
	}
}
