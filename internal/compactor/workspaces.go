package compactor

import (
	"context"
	"errors"
	"time"

	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
)

// Workspaces is what the compactor needs from the metadata store. Implementations must be
// safe for concurrent use.
type Workspaces interface {
	// Retention returns how long the workspace keeps samples (its retentionPeriodInDays,
	// or the server default when it set none; zero keeps them forever) and whether the
	// workspace exists. A workspace being deleted does not exist. The answer must not
	// come from a stale cache alone: "does not exist" removes the workspace's data, so a
	// workspace another process just created must be found (meta.Store reads through to
	// the bucket on a cache miss). An error skips the workspace for this run.
	Retention(ctx context.Context, workspace string) (retention time.Duration, exists bool, err error)
}

// StoreWorkspaces answers Retention from the metadata store and the limits: the
// workspace's own retention (UpdateWorkspaceConfiguration), else its limits' (the runtime
// file's, or --limits.retention-period-days), as limits.Limits.Retention resolves it. The
// compactor and the query path both ask it.
type StoreWorkspaces struct {
	Store interface {
		// PeekWorkspace returns the cached workspace without copying it.
		PeekWorkspace(id string) (meta.Workspace, bool)
		// GetWorkspace reads through to the bucket on a cache miss.
		GetWorkspace(ctx context.Context, id string) (meta.Workspace, error)
	}
	Limits interface {
		For(workspace string) *limits.Limits
	}
}

// Retention implements Workspaces.
func (s StoreWorkspaces) Retention(ctx context.Context, id string) (time.Duration, bool, error) {
	// Every query asks: the cached workspace, read without copying, when there is one.
	ws, ok := s.Store.PeekWorkspace(id)
	if !ok {
		var err error
		ws, err = s.Store.GetWorkspace(ctx, id)
		if errors.Is(err, meta.ErrNotFound) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
	}
	if ws.Status == meta.StatusDeleting {
		return 0, false, nil
	}
	return s.Limits.For(id).Retention(ws.Configuration.RetentionPeriodInDays), true, nil
}

// StaticWorkspaces is a fixed set of workspaces and their retention (zero: forever), for
// tests and tools. It must not be modified while in use.
type StaticWorkspaces map[string]time.Duration

// Retention implements Workspaces.
func (s StaticWorkspaces) Retention(_ context.Context, id string) (time.Duration, bool, error) {
	r, ok := s[id]
	return r, ok, nil
}
