package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/stratametrics/strata/internal/limits"
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

// Reconciler drives workspaces from their requested state to the next one, and so the
// rule groups namespaces and alert manager definitions of active workspaces (CREATING and
// UPDATING → ACTIVE or *_FAILED, DELETING → removed). Every process runs one; when several
// share a bucket they may do the same step twice, which the Lifecycle contract allows.
type Reconciler struct {
	// Limits answers the quotas a namespace or definition is checked against again
	// before it becomes ACTIVE (they may have been lowered since the request). Nil means
	// the defaults of the limits flags. Set before Run.
	Limits Limits
	// LogGroups checks the log group of a logging configuration before it becomes
	// ACTIVE. Nil accepts every log group. Set before Run.
	LogGroups LogGroups
	// Scrapers checks that a scraper can run before it becomes ACTIVE. Nil accepts
	// every scraper. Set before Run.
	Scrapers ScraperChecker

	store    *meta.Store
	hooks    []Lifecycle
	logger   *slog.Logger
	interval time.Duration
	defaults limits.Limits
}

// NewReconciler returns a reconciler over store. interval is how often it looks again at
// workspaces whose step failed.
func NewReconciler(store *meta.Store, hooks []Lifecycle, interval time.Duration, logger *slog.Logger) *Reconciler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{store: store, hooks: hooks, logger: logger, interval: interval, defaults: limits.Default()}
}

func (r *Reconciler) limitsFor(id string) *limits.Limits {
	if r.Limits == nil {
		return &r.defaults
	}
	return r.Limits.For(id)
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
		if ws.Status == meta.StatusActive && rulesPending(&ws) {
			err = errors.Join(err, r.settleRules(ctx, ws.ID))
		}
		if ws.Status == meta.StatusActive && (pendingLogging(ws.Logging) || pendingLogging(ws.QueryLogging)) {
			err = errors.Join(err, r.settleLogging(ctx, ws))
		}
		if ws.Status == meta.StatusActive && scrapersPending(&ws) {
			err = errors.Join(err, r.settleScrapers(ctx, ws))
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

// pending reports whether a namespace or definition in status waits for the reconciler.
func pending(status string) bool {
	return status == meta.StatusCreating || status == meta.StatusUpdating || status == meta.StatusDeleting
}

// rulesPending reports whether a namespace or the definition of ws waits for the
// reconciler.
func rulesPending(ws *meta.Workspace) bool {
	for _, ns := range ws.RuleGroupsNamespaces {
		if pending(ns.Status) {
			return true
		}
	}
	return ws.AlertManagerDefinition != nil && pending(ws.AlertManagerDefinition.Status)
}

// failed is the status a namespace or definition in status goes to when it cannot
// become ACTIVE.
func failed(status string) string {
	if status == meta.StatusCreating {
		return meta.StatusCreationFailed
	}
	return meta.StatusUpdateFailed
}

// settleRules takes the namespaces and the definition of workspace id that wait one
// step further: those created or updated become ACTIVE when they are still within the
// workspace's quotas, else CREATION_FAILED or UPDATE_FAILED with the reason; those
// deleted are removed from the record. The ruler and the alertmanager follow the record.
func (r *Reconciler) settleRules(ctx context.Context, id string) error {
	l := r.limitsFor(id)
	type event struct{ msg, namespace, status, reason string }
	var events []event
	_, err := r.store.UpdateWorkspace(ctx, id, func(ws *meta.Workspace) error {
		events = events[:0]
		if ws.Status != meta.StatusActive || !rulesPending(ws) {
			return errStale
		}
		for name, ns := range ws.RuleGroupsNamespaces {
			switch ns.Status {
			case meta.StatusCreating, meta.StatusUpdating:
				next, why := meta.StatusActive, recheckNamespace(ws, name, ns, l)
				if why != "" {
					next = failed(ns.Status)
				}
				ns.Status, ns.StatusReason = next, why
				events = append(events, event{"rule groups namespace settled", name, ns.Status, ns.StatusReason})
			case meta.StatusDeleting:
				delete(ws.RuleGroupsNamespaces, name)
				events = append(events, event{"rule groups namespace deleted", name, "", ""})
			}
		}
		if d := ws.AlertManagerDefinition; d != nil {
			switch d.Status {
			case meta.StatusCreating, meta.StatusUpdating:
				next, why := meta.StatusActive, recheckDefinition(d.Data, l)
				if why != "" {
					next = failed(d.Status)
				}
				d.Status, d.StatusReason = next, why
				events = append(events, event{"alert manager definition settled", "", d.Status, d.StatusReason})
			case meta.StatusDeleting:
				ws.AlertManagerDefinition = nil
				events = append(events, event{"alert manager definition deleted", "", "", ""})
			}
		}
		return nil
	})
	if err != nil {
		return ignoreStale(err)
	}
	for _, e := range events {
		args := []any{"workspace", id}
		if e.namespace != "" {
			args = append(args, "namespace", e.namespace)
		}
		if e.status != "" {
			args = append(args, "status", e.status)
		}
		if e.reason != "" {
			r.logger.Warn(e.msg, append(args, "reason", e.reason)...)
			continue
		}
		r.logger.Info(e.msg, args...)
	}
	return nil
}

func pendingLogging(c *meta.LoggingConfiguration) bool {
	return c != nil && pending(c.Status)
}

// settleLogging takes the logging configurations of ws that wait one step further:
// created or updated ones become ACTIVE when their log group is accepted, else
// CREATION_FAILED or UPDATE_FAILED with the reason; deleted ones are removed.
func (r *Reconciler) settleLogging(ctx context.Context, ws meta.Workspace) error {
	type verdict struct {
		kind   loggingKind
		seen   meta.LoggingConfiguration // as checked; a change since makes the verdict stale
		reason string
	}
	var verdicts []verdict
	for _, k := range []loggingKind{workspaceLogging, queryLogging} {
		c := *k.field(&ws)
		if !pendingLogging(c) {
			continue
		}
		v := verdict{kind: k, seen: *c}
		if c.Status != meta.StatusDeleting && r.LogGroups != nil {
			if err := r.LogGroups.CheckLogGroup(ctx, c.LogGroupARN); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				v.reason = "log group " + c.LogGroupARN + ": " + err.Error()
			}
		}
		verdicts = append(verdicts, v)
	}
	_, err := r.store.UpdateWorkspace(ctx, ws.ID, func(cur *meta.Workspace) error {
		changed := false
		for _, v := range verdicts {
			field := v.kind.field(cur)
			c := *field
			if c == nil || c.Status != v.seen.Status || !c.ModifiedAt.Equal(v.seen.ModifiedAt) || c.LogGroupARN != v.seen.LogGroupARN {
				continue
			}
			changed = true
			switch {
			case c.Status == meta.StatusDeleting:
				*field = nil
			case v.reason != "":
				c.Status, c.StatusReason = failed(c.Status), v.reason
			default:
				c.Status, c.StatusReason = meta.StatusActive, ""
			}
		}
		if !changed {
			return errStale
		}
		return nil
	})
	if err == nil {
		for _, v := range verdicts {
			if v.reason != "" {
				r.logger.Warn(v.kind.what+" failed", "workspace", ws.ID, "reason", v.reason)
			} else {
				r.logger.Info(v.kind.what+" settled", "workspace", ws.ID, "was", v.seen.Status)
			}
		}
	}
	return ignoreStale(err)
}

// ScraperChecker says whether a scraper can run; *scraper.Manager implements it.
type ScraperChecker interface {
	Check(ctx context.Context, s meta.Scraper) error
}

func scrapersPending(ws *meta.Workspace) bool {
	for _, s := range ws.Scrapers {
		if pending(s.Status) || (s.Logging != nil && pending(s.Logging.Status)) {
			return true
		}
	}
	return false
}

// settleScrapers takes the scrapers of ws, and their logging configurations, one step
// further: created or updated ones become ACTIVE when they can run (their log group
// accepted), else CREATION_FAILED or UPDATE_FAILED with the reason; deleted ones go.
func (r *Reconciler) settleScrapers(ctx context.Context, ws meta.Workspace) error {
	type verdict struct {
		seen       meta.Scraper
		reason     string // of the scraper
		logReason  string // of its logging configuration
		logPending bool
	}
	verdicts := map[string]verdict{}
	for id, s := range ws.Scrapers {
		v := verdict{seen: *s}
		if (s.Status == meta.StatusCreating || s.Status == meta.StatusUpdating) && r.Scrapers != nil {
			if err := r.Scrapers.Check(ctx, *s); err != nil {
				v.reason = err.Error()
			}
		}
		if l := s.Logging; l != nil && pending(l.Status) {
			v.logPending = true
			if l.Status != meta.StatusDeleting && r.LogGroups != nil {
				if err := r.LogGroups.CheckLogGroup(ctx, l.LogGroupARN); err != nil {
					v.logReason = "log group " + l.LogGroupARN + ": " + err.Error()
				}
			}
		}
		if pending(s.Status) || v.logPending {
			verdicts[id] = v
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	_, err := r.store.UpdateWorkspace(ctx, ws.ID, func(cur *meta.Workspace) error {
		changed := false
		for id, v := range verdicts {
			s, ok := cur.Scrapers[id]
			if !ok || !s.ModifiedAt.Equal(v.seen.ModifiedAt) {
				continue
			}
			if s.Status == v.seen.Status {
				changed = true
				switch {
				case s.Status == meta.StatusDeleting:
					delete(cur.Scrapers, id)
					continue
				case s.Status == meta.StatusActive:
				case v.reason != "":
					s.Status, s.StatusReason = failed(s.Status), truncate(v.reason, 256)
				default:
					s.Status, s.StatusReason = meta.StatusActive, ""
				}
			}
			if l := s.Logging; v.logPending && l != nil && v.seen.Logging != nil && l.Status == v.seen.Logging.Status && l.ModifiedAt.Equal(v.seen.Logging.ModifiedAt) {
				changed = true
				switch {
				case l.Status == meta.StatusDeleting:
					s.Logging = nil
				case v.logReason != "":
					l.Status, l.StatusReason = failed(l.Status), v.logReason
				default:
					l.Status, l.StatusReason = meta.StatusActive, ""
				}
			}
		}
		if !changed {
			return errStale
		}
		return nil
	})
	if err == nil {
		for id, v := range verdicts {
			if v.reason != "" {
				r.logger.Warn("scraper failed", "workspace", ws.ID, "scraper", id, "reason", v.reason)
			} else {
				r.logger.Info("scraper settled", "workspace", ws.ID, "scraper", id, "was", v.seen.Status)
			}
		}
	}
	return ignoreStale(err)
}

// truncate cuts s to n bytes (AMP's statusReason holds 256).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func ignoreStale(err error) error {
	if errors.Is(err, errStale) || errors.Is(err, meta.ErrNotFound) {
		return nil
	}
	return err
}
