package hatracker

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrConflict is returned by Store.Put when the stored revision is not the expected one:
// another distributor changed the election in between.
var ErrConflict = errors.New("election changed concurrently")

// Store is where the distributors of a cluster agree on elections: one record per
// (workspace, cluster), changed by compare-and-set. Each distributor keeps its Tracker
// as a cache and asks the store before it elects a replica (a cluster's first election
// or a failover), so two distributors never accept two replicas of one cluster.
type Store interface {
	// Get returns the stored election of (workspace, cluster) and its revision; ok is
	// false when there is none.
	Get(ctx context.Context, workspace, cluster string) (e Entry, rev uint64, ok bool, err error)
	// Put stores e if the stored revision is rev (0: nothing stored) and returns the new
	// revision; ErrConflict otherwise.
	Put(ctx context.Context, e Entry, rev uint64) (uint64, error)
}

// Watcher is a Store that reports every election written to it, so that a distributor
// learns of another's failover or heartbeat at once rather than at its next Get.
type Watcher interface {
	// Watch calls f with each election written from now on, until ctx is done.
	Watch(ctx context.Context, f func(Entry)) error
}

// Observe makes an election read from the Store this tracker's: the store is
// authoritative. For the replica the tracker already has, ReceivedAt only moves
// forward. It does not add to the change set (the store has it).
func (t *Tracker) Observe(e Entry) {
	if e.Deleted || e.Cluster == "" || e.Replica == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	clusters := t.workspaces[e.Workspace]
	if clusters == nil {
		clusters = map[string]*clusterState{}
		t.workspaces[e.Workspace] = clusters
	}
	st, ok := clusters[e.Cluster]
	if ok && st.Replica == e.Replica {
		if e.ReceivedAt.After(st.ReceivedAt) {
			st.ReceivedAt = e.ReceivedAt
		}
		if e.ReceivedAt.After(st.reported) {
			st.reported = e.ReceivedAt
		}
		return
	}
	clusters[e.Cluster] = &clusterState{
		ReplicaState: ReplicaState{Replica: e.Replica, ReceivedAt: e.ReceivedAt, ElectedAt: e.ElectedAt},
		key:          clusterKey{workspace: e.Workspace, cluster: e.Cluster},
		reported:     e.ReceivedAt,
	}
}

// Confirm asks the store whether replica may be elected for (workspace, cluster) at now,
// after Decide elected it locally (Decision.Changed). It records the election in the
// store unless another distributor holds a live one there (its replica's last sample
// less than the failover timeout before now), which the tracker then takes over. It
// returns whether replica's samples are to be accepted.
func (t *Tracker) Confirm(ctx context.Context, s Store, workspace, cluster, replica string, now time.Time) (accept bool, err error) {
	defer func() {
		if err != nil {
			// Unconfirmed: the next sample of the cluster asks the store again.
			t.forget(workspace, cluster)
		}
	}()
	for range 5 {
		cur, rev, ok, err := s.Get(ctx, workspace, cluster)
		if err != nil {
			return false, err
		}
		switch {
		case ok && cur.Replica == replica:
			t.Observe(cur)
			return true, nil
		case ok && !cur.Deleted && now.Sub(cur.ReceivedAt) < t.cfg.FailoverTimeout:
			t.Observe(cur) // another distributor's election is live
			return false, nil
		}
		e := Entry{Workspace: workspace, Cluster: cluster, Replica: replica, ReceivedAt: now, ElectedAt: now}
		if _, err := s.Put(ctx, e, rev); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return false, err
		}
		t.Observe(e)
		return true, nil
	}
	return false, ErrConflict
}

// forget drops the tracker's election of (workspace, cluster), without a tombstone.
func (t *Tracker) forget(workspace, cluster string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if clusters := t.workspaces[workspace]; clusters != nil {
		delete(clusters, cluster)
		if len(clusters) == 0 {
			delete(t.workspaces, workspace)
		}
	}
	delete(t.changed, clusterKey{workspace, cluster})
}

// Heartbeat brings the store's record of an election this tracker holds up to date: the
// elected replica's last sample (e, from Changes). When the store elected another
// replica meanwhile, the tracker takes that over.
func (t *Tracker) Heartbeat(ctx context.Context, s Store, e Entry) error {
	if e.Deleted || e.Replica == "" {
		return nil
	}
	for range 5 {
		cur, rev, ok, err := s.Get(ctx, e.Workspace, e.Cluster)
		if err != nil {
			return err
		}
		switch {
		case ok && cur.Replica != e.Replica && !cur.Deleted:
			t.Observe(cur)
			return nil
		case ok && !cur.ReceivedAt.Before(e.ReceivedAt):
			return nil
		}
		if ok && !cur.ElectedAt.IsZero() {
			e.ElectedAt = cur.ElectedAt
		}
		if _, err := s.Put(ctx, e, rev); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return err
		}
		return nil
	}
	return ErrConflict
}

// MemoryStore is a Store in memory, for one process and for tests.
type MemoryStore struct {
	mu      sync.Mutex
	entries map[clusterKey]memEntry
	rev     uint64
}

type memEntry struct {
	e   Entry
	rev uint64
}

// Get implements Store.
func (m *MemoryStore) Get(_ context.Context, workspace, cluster string) (Entry, uint64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	me, ok := m.entries[clusterKey{workspace, cluster}]
	return me.e, me.rev, ok, nil
}

// Put implements Store.
func (m *MemoryStore) Put(_ context.Context, e Entry, rev uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := clusterKey{e.Workspace, e.Cluster}
	if m.entries == nil {
		m.entries = map[clusterKey]memEntry{}
	}
	if m.entries[k].rev != rev {
		return 0, ErrConflict
	}
	m.rev++
	m.entries[k] = memEntry{e: e, rev: m.rev}
	return m.rev, nil
}
