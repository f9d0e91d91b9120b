package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/stratametrics/strata/internal/meta"
)

// Lifecycle lets other components prepare for a workspace, apply a new configuration and
// clean up after one. Each call is retried until it succeeds, so implementations must be
// idempotent; they are called from one goroutine.
type Lifecycle interface {
	// Provision runs while the workspace is CREATING; success makes it ACTIVE.
	Provision(ctx context.Context, ws meta.Workspace) error
	// Reconfigure runs while the configuration is UPDATING; success makes it ACTIVE.
	Reconfigure(ctx context.Context, ws meta.Workspace) error
	// Deprovision runs while the workspace is DELETING; success removes the workspace.
	Deprovision(ctx context.Context, id string) error
}

// Reconciler drives workspaces from their requested state to the next one. Every process
// runs one; when several share a bucket they may do the same step twice, which the
// Lifecycle contract allows.
type Reconciler struct {
	store    *meta.Store
	hooks    []Lifecycle
	logger   *slog.Logger
	interval time.Duration
}

// NewReconciler returns a reconciler over store. interval is how often it looks again at
// workspaces whose step failed.
func NewReconciler(store *meta.Store, hooks []Lifecycle, interval time.Duration, logger *slog.Logger) *Reconciler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{store: store, hooks: hooks, logger: logger, interval: interval}
}

// Run reconciles after every store change and every interval until ctx is done.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.ReconcileOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-r.store.Changes():
		case <-t.C:
		}
	}
}

// ReconcileOnce takes one step for every workspace that needs one.
func (r *Reconciler) ReconcileOnce(ctx context.Context) {
	for _, ws := range r.store.ListWorkspaces() {
		if ctx.Err() != nil {
			return
		}
		var err error
		switch {
		case ws.Status == meta.StatusCreating:
			err = r.provision(ctx, ws)
		case ws.Status == meta.StatusDeleting:
			err = r.deprovision(ctx, ws.ID)
		case ws.Status == meta.StatusActive && ws.Configuration.Status == meta.StatusUpdating:
			err = r.reconfigure(ctx, ws)
		}
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("reconciling workspace; will retry", "workspace", ws.ID, "status", ws.Status, "err", err)
		}
	}
}

// errStale aborts a transition when the workspace changed state meanwhile.
var errStale = errors.New("workspace changed state meanwhile")

func (r *Reconciler) provision(ctx context.Context, ws meta.Workspace) error {
	for _, h := range r.hooks {
		if err := h.Provision(ctx, ws); err != nil {
			return err
		}
	}
	_, err := r.store.UpdateWorkspace(ctx, ws.ID, func(cur *meta.Workspace) error {
		if cur.Status != meta.StatusCreating {
			return errStale
		}
		cur.Status = meta.StatusActive
		return nil
	})
	if err == nil {
		r.logger.Info("workspace active", "workspace", ws.ID)
	}
	return ignoreStale(err)
}

func (r *Reconciler) reconfigure(ctx context.Context, ws meta.Workspace) error {
	for _, h := range r.hooks {
		if err := h.Reconfigure(ctx, ws); err != nil {
			return err
		}
	}
	_, err := r.store.UpdateWorkspace(ctx, ws.ID, func(cur *meta.Workspace) error {
		// Only finish the update we applied: a newer one stays UPDATING for the next pass.
		if cur.Status != meta.StatusActive || cur.Configuration.Status != meta.StatusUpdating || !cur.UpdatedAt.Equal(ws.UpdatedAt) {
			return errStale
		}
		cur.Configuration.Status = meta.StatusActive
		return nil
	})
	return ignoreStale(err)
}

func (r *Reconciler) deprovision(ctx context.Context, id string) error {
	for _, h := range r.hooks {
		if err := h.Deprovision(ctx, id); err != nil {
			return err
		}
	}
	if err := r.store.DeleteWorkspace(ctx, id); err != nil {
		return err
	}
	r.logger.Info("workspace deleted", "workspace", id)
	return nil
}

func ignoreStale(err error) error {
	if errors.Is(err, errStale) || errors.Is(err, meta.ErrNotFound) {
		return nil
	}
	return err
}
