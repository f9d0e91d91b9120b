package ingestlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leasesBucket is the JetStream key-value bucket of the partitions' leases: one key per
// zone and partition, naming the ingester of that zone that consumes the partition.
const leasesBucket = "strata-partition-leases"

// leaseEvery is how often an ingester renews its leases and looks for partitions to
// take.
const leaseEvery = 2 * time.Second

// lease is the value of a lease key.
type lease struct {
	// Owner consumes the partition for its zone.
	Owner string `json:"owner"`
	// Next, when set, is an ingester of the zone with too few partitions, catching up
	// on this one to take it over: it becomes Owner once it has read to where the
	// partition ended when it began, so the zone never lacks a caught-up reader.
	Next string `json:"next,omitempty"`
}

// Leases shares the partitions among the ingesters of a zone: each partition has one
// owner per zone, through a lease in a key-value bucket whose entries expire when not
// renewed (the bucket's age limit, --ingest.lease-ttl), so a dead ingester's partitions
// are free again a TTL later. An ingester with fewer than its share (partitions divided
// by the zone's live ingesters, rounded up) takes free partitions, then reserves some of
// the most loaded ingester's, catches up on them and takes them over.
type Leases struct {
	log     *Log
	id      string
	zone    string
	members *Membership
	logger  *slog.Logger
	// caughtUp says whether this process' consumer has caught up on a partition.
	caughtUp func(p int) bool

	mu       sync.Mutex     // guards owned and reserved, Tick's state
	owned    map[int]uint64 // partition → revision of this ingester's lease
	reserved map[int]bool   // partitions being caught up on to take over
	// snap is what Assigned, Owned and Count answer, published at the end of each
	// round: they never wait for a round, whose calls to NATS may be slow.
	snap atomic.Pointer[leaseSnap]
}

// leaseSnap is an immutable view of the leases.
type leaseSnap struct {
	assigned []int // owned and reserved, sorted
	owned    map[int]bool
}

// publish makes the current state what the readers see. Call with s.mu held.
func (s *Leases) publish() {
	sn := &leaseSnap{owned: make(map[int]bool, len(s.owned))}
	for p := range s.owned {
		sn.assigned = append(sn.assigned, p)
		sn.owned[p] = true
	}
	for p := range s.reserved {
		sn.assigned = append(sn.assigned, p)
	}
	slices.Sort(sn.assigned)
	s.snap.Store(sn)
}

// Count returns how many partitions Assigned lists, without allocating.
func (s *Leases) Count() int { return len(s.snap.Load().assigned) }

// NewLeases returns the leases of ingester id in zone; members tells which ingesters of
// the zone are alive, caughtUp whether the consumer has caught up on a partition.
func NewLeases(l *Log, id, zone string, members *Membership, caughtUp func(p int) bool) *Leases {
	s := &Leases{log: l, id: id, zone: zone, members: members, logger: l.logger, caughtUp: caughtUp,
		owned: map[int]uint64{}, reserved: map[int]bool{}}
	s.snap.Store(&leaseSnap{})
	return s
}

// leasesKV returns the leases bucket.
func (l *Log) leasesKV(ctx context.Context) (jetstream.KeyValue, error) {
	return l.keyValue(ctx, &l.leases, jetstream.KeyValueConfig{
		Bucket:      leasesBucket,
		Description: "Strata ingest log: which ingester of each zone consumes each partition",
		Storage:     jetstream.FileStorage,
		TTL:         l.cfg.LeaseTTL, // a lease not renewed expires
	})
}

func (s *Leases) key(p int) string { return zoneKey(s.zone) + ".p" + strconv.Itoa(p) }

// Assigned returns the partitions this ingester consumes: those it owns and those it is
// catching up on to take over, sorted. The slice is shared: do not modify it.
func (s *Leases) Assigned() []int { return s.snap.Load().assigned }

// Owned reports whether this ingester owns p.
func (s *Leases) Owned(p int) bool { return s.snap.Load().owned[p] }

// Run renews and takes leases every leaseEvery until ctx is done, then gives up those it
// holds so that others take them at once.
func (s *Leases) Run(ctx context.Context) error {
	t := time.NewTicker(leaseEvery)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("partition leases", "err", err)
		}
		select {
		case <-ctx.Done():
			s.release()
			return nil
		case <-t.C:
		}
	}
}

// release deletes the leases this ingester holds.
func (s *Leases) release() {
	kv, err := s.log.leasesKV(context.Background())
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, rev := range s.owned {
		_ = kv.Delete(ctx, s.key(p), jetstream.LastRevision(rev))
		delete(s.owned, p)
	}
	clear(s.reserved)
	s.publish()
}

// Tick does one round: renew what this ingester owns, take free partitions up to its
// share, reserve partitions of the most loaded ingester, and take over reserved
// partitions it has caught up on.
func (s *Leases) Tick(ctx context.Context) error {
	// A round that cannot reach NATS gives up well before the leases would expire.
	ctx, cancel := context.WithTimeout(ctx, s.log.cfg.LeaseTTL/2)
	defer cancel()
	kv, err := s.log.leasesKV(ctx)
	if err != nil {
		return err
	}
	parts := s.log.cfg.Partitions
	live := s.members.zoneMembers(s.zone)
	live[s.id] = true
	share := (parts + len(live) - 1) / len(live)

	// The zone's leases as they are now.
	leases := make([]lease, parts)
	revs := make([]uint64, parts)
	for p := range parts {
		e, err := kv.Get(ctx, s.key(p))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("reading the lease of partition %d: %w", p, err)
		default:
			if json.Unmarshal(e.Value(), &leases[p]) == nil {
				revs[p] = e.Revision()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publish()
	// put writes a lease; lost is true when another write came first (the lease is not
	// this ingester's to renew), false when NATS could not be reached (it may still be).
	put := func(p int, l lease) (ok, lost bool) {
		b, _ := json.Marshal(l)
		var rev uint64
		var err error
		if revs[p] == 0 {
			rev, err = kv.Create(ctx, s.key(p), b)
		} else {
			rev, err = kv.Update(ctx, s.key(p), b, revs[p])
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return false, true
			}
			s.logger.Warn("writing a partition lease", "partition", p, "err", err)
			return false, false
		}
		leases[p], revs[p] = l, rev
		return true, false
	}
	count := map[string]int{}
	for p := range parts {
		if revs[p] != 0 {
			count[leases[p].Owner]++
		}
	}
	for p := range parts {
		l := leases[p]
		switch {
		case revs[p] != 0 && l.Owner == s.id:
			// Renew; a reservation by an ingester that is gone is dropped.
			if l.Next != "" && !live[l.Next] {
				l.Next = ""
			}
			if ok, lost := put(p, l); ok {
				s.owned[p] = revs[p]
			} else if lost {
				delete(s.owned, p)
			}
			delete(s.reserved, p)
		case s.reserved[p] && (revs[p] == 0 || l.Next != s.id):
			delete(s.reserved, p) // taken by another, or expired: taken below if free
			delete(s.owned, p)
		case s.reserved[p] && s.caughtUp(p):
			if ok, _ := put(p, lease{Owner: s.id}); ok {
				s.logger.Info("partition taken over", "partition", p, "from", l.Owner, "zone", s.zone)
				count[l.Owner]--
				count[s.id]++
				s.owned[p] = revs[p]
				delete(s.reserved, p)
			}
		default:
			delete(s.owned, p)
		}
	}
	// Free partitions, up to the share.
	for p := range parts {
		if revs[p] != 0 || count[s.id]+len(s.reserved) >= share {
			continue
		}
		if ok, _ := put(p, lease{Owner: s.id}); ok {
			s.logger.Info("partition taken", "partition", p, "zone", s.zone)
			s.owned[p] = revs[p]
			count[s.id]++
		}
	}
	// Then partitions of ingesters above their share, most loaded first.
	for count[s.id]+len(s.reserved) < share {
		from, most := "", share
		for owner, n := range count {
			if owner != s.id && n > most {
				from, most = owner, n
			}
		}
		if from == "" {
			break
		}
		took := false
		for p := parts - 1; p >= 0; p-- {
			l := leases[p]
			if revs[p] != 0 && l.Owner == from && (l.Next == "" || !live[l.Next]) {
				l.Next = s.id
				if ok, _ := put(p, l); ok {
					s.logger.Info("catching up on a partition to take it over", "partition", p, "from", from, "zone", s.zone)
					s.reserved[p] = true
					count[from]--
					took = true
					break
				}
			}
		}
		if !took {
			break
		}
	}
	return nil
}
