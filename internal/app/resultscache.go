package app

import (
	"context"
	"fmt"

	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/meta"
)

// resultsCacheVersion is the query API's Deps.CacheVersion: what, besides the query,
// decides a workspace's answers.
//
// A cached answer holds the samples of the retention it was made under, and a results
// cache in memcached or Redis is shared by every process: the version must change, in
// all of them alike, whenever the retention may have, even back to an earlier value
// (data beyond the shorter one may be gone meanwhile). The workspace record's UpdatedAt
// does: every write of the record (a reconfiguration among them) sets it, strictly later
// than the one it replaces (meta.Store.UpdateWorkspace), and every process reads the same
// record from the bucket. The retention also comes from the limits overrides, hence the
// resolved value beside it. Deleted workspaces need nothing more: their ids are never
// reused ("ws-" and a random UUID; a create of an existing id fails), and a missing or
// deleting workspace is not cached at all.
//
// Other writes of the record (tags, rules, the reconciler's status changes) change the
// version too: the cache starts over for the workspace, which is rare and harmless.
func resultsCacheVersion(store *meta.Store, retentions compactor.StoreWorkspaces) func(ctx context.Context, ws string) (string, bool) {
	return func(ctx context.Context, ws string) (string, bool) {
		ret, ok, err := retentions.Retention(ctx, ws)
		rec, found := store.PeekWorkspace(ws)
		if err != nil || !ok || !found {
			return "", false
		}
		return fmt.Sprint(ret, "@", rec.UpdatedAt.UnixNano()), true
	}
}
