package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/meta"
)

// blockHistory is the store-gateway's view of what a workspace's blocks hold of the past.
type blockHistory interface {
	History(ctx context.Context, ws string) (oldest int64, imported []ulid.ULID, ok bool, err error)
}

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
// The bucket's blocks change answers for old steps in two ways, both in the version:
// blocks imported (backfilled history, found by their hint), and samples deleted inside
// the retention the workspace has now, which a shorter retention in force for a while
// (an overrides file changed and changed back) leaves behind: the oldest block then
// starts after the retention's cutoff, and the version names it until the cutoff passes
// it. (The cutoff's own moving is the query API's: steps near it are never cached.) A
// young workspace's oldest block is after the cutoff too, and stays where it is.
//
// Other writes of the record (tags, rules, the reconciler's status changes) change the
// version too: the cache starts over for the workspace, which is rare and harmless.
func resultsCacheVersion(store *meta.Store, retentions compactor.StoreWorkspaces, blocks blockHistory, now func() time.Time) func(ctx context.Context, ws string) (string, bool) {
	return func(ctx context.Context, ws string) (string, bool) {
		ret, ok, err := retentions.Retention(ctx, ws)
		rec, found := store.PeekWorkspace(ws)
		if err != nil || !ok || !found {
			return "", false
		}
		oldest, imported, has, err := blocks.History(ctx, ws)
		if err != nil {
			return "", false
		}
		floor := "all"
		if has && ret > 0 && oldest > now().Add(-ret).UnixMilli() {
			floor = fmt.Sprint(oldest)
		}
		h := sha256.New()
		for _, id := range imported {
			h.Write(id[:])
		}
		return fmt.Sprint(ret, "@", rec.UpdatedAt.UnixNano(), "@", floor, "@", hex.EncodeToString(h.Sum(nil)[:8])), true
	}
}
