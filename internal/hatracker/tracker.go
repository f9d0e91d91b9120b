package hatracker

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Action says what to do with the samples of one (cluster, replica) pair.
// The zero value is not an action: Decide returns it only with an error.
type Action uint8

const (
	// Accept means store the samples, without the replica label.
	Accept Action = iota + 1
	// DropNotElected means another replica of the cluster is elected: answer
	// 2xx, as AMP and Cortex do, so the sender does not retry, and store
	// nothing.
	DropNotElected
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case DropNotElected:
		return "drop"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Decision is the outcome of [Tracker.Decide].
type Decision struct {
	Action Action
	// Elected is the cluster's elected replica after the call, for logs and
	// error messages; "" when the pair was not tracked.
	Elected string
	// Changed reports that this call elected a replica: the cluster's first
	// election or a failover.
	Changed bool
	// Persist reports that the cluster's entry is now in the change set (see
	// [Tracker.Changes]): always when Changed, and for the elected replica's
	// heartbeat once its ReceivedAt has advanced by Config.UpdateTimeout.
	Persist bool
}

// ReplicaState is the election of one (workspace, cluster).
type ReplicaState struct {
	// Replica is the elected replica.
	Replica string
	// ReceivedAt is when the last sample from Replica was accepted.
	ReceivedAt time.Time
	// ElectedAt is when Replica was elected.
	ElectedAt time.Time
}

// Entry is the serializable form of one election, for the metadata store.
// A tombstone (Deleted) says the election was removed by GC or
// DeleteWorkspace and carries only Workspace and Cluster.
type Entry struct {
	Workspace  string    `json:"workspace"`
	Cluster    string    `json:"cluster"`
	Replica    string    `json:"replica,omitempty"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	ElectedAt  time.Time `json:"elected_at,omitzero"`
	Deleted    bool      `json:"deleted,omitempty"`
}

// ErrTooManyClusters is matched (errors.Is) by every [TooManyClustersError].
var ErrTooManyClusters = errors.New("too many HA clusters")

// TooManyClustersError refuses a sample for a new cluster in a workspace that
// already tracks its limit of clusters. It is the sender's problem, so map it
// to a 4xx (Cortex answers 400): retrying does not help until GC forgets an
// idle cluster.
type TooManyClustersError struct {
	Workspace string
	Limit     int
}

func (e *TooManyClustersError) Error() string {
	return fmt.Sprintf("too many HA clusters in workspace %s: limit of %d clusters (max_clusters) reached", e.Workspace, e.Limit)
}

func (e *TooManyClustersError) Unwrap() error { return ErrTooManyClusters }

// Limits supplies per-workspace limits (the limits package implements it).
// The tracker calls it with its lock held, only for a cluster it does not
// track yet, so it must be cheap and must not call back into the Tracker.
type Limits interface {
	// MaxHAClusters returns the workspace's cluster limit; 0 means no limit.
	MaxHAClusters(workspace string) int
}

// Tracker elects one replica per (workspace, cluster) and decides, for each
// request, whether its samples are kept. See the package documentation for
// the state machine.
//
// A Tracker is safe for concurrent use. Snapshot and Changes consume the
// change set, so only the one goroutine that persists should call them.
type Tracker struct {
	cfg    Config
	limits Limits // nil: cfg.MaxClusters for every workspace

	mu sync.Mutex
	// workspaces maps workspace to cluster to election. Guarded by mu, as is
	// every clusterState it points to.
	workspaces map[string]map[string]*clusterState
	// changed holds the (workspace, cluster) pairs written since the last
	// Snapshot or Changes; a pair without an election is a tombstone.
	// Guarded by mu.
	changed map[clusterKey]struct{}
}

type clusterKey struct{ workspace, cluster string }

type clusterState struct {
	ReplicaState
	// key holds this state's own copies of the names (see clone).
	key clusterKey
	// reported is ReceivedAt as of the last time the pair was added to the
	// change set; it throttles heartbeat persistence.
	reported time.Time
}

// New returns an empty Tracker. limits may be nil, in which case
// cfg.MaxClusters applies to every workspace.
func New(cfg Config, limits Limits) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ha tracker config: %w", err)
	}
	return &Tracker{
		cfg:        cfg,
		limits:     limits,
		workspaces: map[string]map[string]*clusterState{},
		changed:    map[clusterKey]struct{}{},
	}, nil
}

// Decide records that a request with samples from (cluster, replica) of
// workspace arrived at now, and says whether to keep them:
//
//   - an untracked cluster elects replica, unless the workspace is at its
//     cluster limit (*TooManyClustersError, nothing changes);
//   - the elected replica is accepted and its ReceivedAt advances to now;
//   - another replica is dropped while now-ReceivedAt < FailoverTimeout, and
//     elected (accepted, Changed) once now-ReceivedAt >= FailoverTimeout.
//
// The boundary is inclusive, as in Cortex: a replica sending exactly
// FailoverTimeout after the leader's last sample takes over. A now before
// ReceivedAt (clock skew between callers) never moves ReceivedAt back and
// never fails over.
//
// An empty cluster or replica means the series is not from an HA pair: the
// answer is Accept and nothing is tracked. Decide copies the strings it keeps,
// so they may point into a request buffer that is reused afterwards.
//
// The tracker keeps, and its caller persists, cluster and replica as given:
// their number per workspace is bounded by the cluster limit (checked before
// anything is kept), their length and content are not. Callers validate them
// first; the distributor applies the label limits.
//
// Accepting from the elected replica does not allocate.
func (t *Tracker) Decide(workspace, cluster, replica string, now time.Time) (Decision, error) {
	if cluster == "" || replica == "" {
		return Decision{Action: Accept}, nil
	}

	t.mu.Lock()
	defer t.mu.Unlock()

	st, ok := t.workspaces[workspace][cluster]
	if !ok {
		return t.electNewLocked(workspace, cluster, replica, now)
	}

	if st.Replica == replica {
		if now.After(st.ReceivedAt) {
			st.ReceivedAt = now
		}
		d := Decision{Action: Accept, Elected: st.Replica}
		if st.ReceivedAt.After(st.reported) && st.ReceivedAt.Sub(st.reported) >= t.cfg.UpdateTimeout {
			t.markLocked(st)
			d.Persist = true
		}
		return d, nil
	}

	if now.Sub(st.ReceivedAt) < t.cfg.FailoverTimeout {
		return Decision{Action: DropNotElected, Elected: st.Replica}, nil
	}
	st.Replica = strings.Clone(replica)
	st.ReceivedAt, st.ElectedAt = now, now
	t.markLocked(st)
	return Decision{Action: Accept, Elected: st.Replica, Changed: true, Persist: true}, nil
}

func (t *Tracker) electNewLocked(workspace, cluster, replica string, now time.Time) (Decision, error) {
	clusters := t.workspaces[workspace]
	if limit := t.maxClustersLocked(workspace); limit > 0 && len(clusters) >= limit {
		return Decision{}, &TooManyClustersError{Workspace: workspace, Limit: limit}
	}

	// Names from a decoded request may alias its buffer; keep our own copies.
	key := clusterKey{workspace: strings.Clone(workspace), cluster: strings.Clone(cluster)}
	if clusters == nil {
		clusters = map[string]*clusterState{}
		t.workspaces[key.workspace] = clusters
	}
	st := &clusterState{
		ReplicaState: ReplicaState{Replica: strings.Clone(replica), ReceivedAt: now, ElectedAt: now},
		key:          key,
	}
	clusters[key.cluster] = st
	t.markLocked(st)
	return Decision{Action: Accept, Elected: st.Replica, Changed: true, Persist: true}, nil
}

func (t *Tracker) maxClustersLocked(workspace string) int {
	if t.limits != nil {
		return t.limits.MaxHAClusters(workspace)
	}
	return t.cfg.MaxClusters
}

func (t *Tracker) markLocked(st *clusterState) {
	st.reported = st.ReceivedAt
	t.changed[st.key] = struct{}{}
}

// Elected returns the election of (workspace, cluster), if any.
func (t *Tracker) Elected(workspace, cluster string) (ReplicaState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.workspaces[workspace][cluster]
	if !ok {
		return ReplicaState{}, false
	}
	return st.ReplicaState, true
}

// Clusters returns the number of clusters tracked for workspace, for a usage
// gauge next to its limit.
func (t *Tracker) Clusters(workspace string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.workspaces[workspace])
}

// DeleteWorkspace forgets every election of workspace, adds tombstones for
// them to the change set and returns how many there were.
func (t *Tracker) DeleteWorkspace(workspace string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	clusters := t.workspaces[workspace]
	for _, st := range clusters {
		t.changed[st.key] = struct{}{}
	}
	delete(t.workspaces, workspace)
	return len(clusters)
}

// GC forgets every cluster whose last accepted sample is more than
// Config.IdleTimeout before now (strictly, as Cortex's cleanup), adds
// tombstones for them to the change set and returns how many it removed.
// Forgotten clusters stop counting towards the workspace's limit; their next
// sample starts a fresh election. With IdleTimeout 0 it does nothing.
//
// GC walks every election; calling it every minute or so is plenty.
func (t *Tracker) GC(now time.Time) int {
	if t.cfg.IdleTimeout <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	removed := 0
	for workspace, clusters := range t.workspaces {
		for cluster, st := range clusters {
			if now.Sub(st.ReceivedAt) > t.cfg.IdleTimeout {
				delete(clusters, cluster)
				t.changed[st.key] = struct{}{}
				removed++
			}
		}
		if len(clusters) == 0 {
			delete(t.workspaces, workspace)
		}
	}
	return removed
}

// Snapshot returns every election, sorted by workspace then cluster, and
// empties the change set: the snapshot is the new persistence baseline.
func (t *Tracker) Snapshot() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var entries []Entry
	for _, clusters := range t.workspaces {
		for _, st := range clusters {
			entries = append(entries, st.entry())
		}
	}
	clear(t.changed)
	sortEntries(entries)
	return entries
}

// Changes returns what changed since the last Snapshot or Changes, sorted by
// workspace then cluster, and empties the change set: the current election of
// each changed pair, or a tombstone for a pair that no longer has one. Writing
// them to a store holding the previous baseline brings it up to date.
// A caller that fails to write should fall back to a full Snapshot.
func (t *Tracker) Changes() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.changed) == 0 {
		return nil
	}
	entries := make([]Entry, 0, len(t.changed))
	for key := range t.changed {
		if st, ok := t.workspaces[key.workspace][key.cluster]; ok {
			entries = append(entries, st.entry())
		} else {
			entries = append(entries, Entry{Workspace: key.workspace, Cluster: key.cluster, Deleted: true})
		}
	}
	clear(t.changed)
	sortEntries(entries)
	return entries
}

// Restore replaces every election with entries, typically read back from the
// store after a restart, and empties the change set. It skips tombstones and
// entries without a cluster or replica; a later entry for the same pair wins.
// Restored clusters are not checked against the cluster limit: the store
// already admitted them.
func (t *Tracker) Restore(entries []Entry) {
	workspaces := map[string]map[string]*clusterState{}
	for _, e := range entries {
		if e.Deleted || e.Cluster == "" || e.Replica == "" {
			continue
		}
		clusters := workspaces[e.Workspace]
		if clusters == nil {
			clusters = map[string]*clusterState{}
			workspaces[e.Workspace] = clusters
		}
		clusters[e.Cluster] = &clusterState{
			ReplicaState: ReplicaState{Replica: e.Replica, ReceivedAt: e.ReceivedAt, ElectedAt: e.ElectedAt},
			key:          clusterKey{workspace: e.Workspace, cluster: e.Cluster},
			reported:     e.ReceivedAt,
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.workspaces = workspaces
	clear(t.changed)
}

func (st *clusterState) entry() Entry {
	return Entry{
		Workspace:  st.key.workspace,
		Cluster:    st.key.cluster,
		Replica:    st.Replica,
		ReceivedAt: st.ReceivedAt,
		ElectedAt:  st.ElectedAt,
	}
}

func sortEntries(entries []Entry) {
	slices.SortFunc(entries, func(a, b Entry) int {
		return cmp.Or(strings.Compare(a.Workspace, b.Workspace), strings.Compare(a.Cluster, b.Cluster))
	})
}
