package ingestlog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratametrics/strata/internal/ingesterapi"
)

// membersBucket is the JetStream key-value bucket in which ingesters say where they
// answer queries.
const membersBucket = "strata-ingesters"

const (
	// heartbeatEvery is how often an ingester renews its entry.
	heartbeatEvery = 2 * time.Second
	// memberTTL is how long an entry that is not renewed counts: after it, its ingester
	// is taken for gone (a process killed before it could remove its entry).
	memberTTL = 10 * time.Second
	// staleMemberLimit is how long an entry not renewed is still offered to queriers,
	// after the others.
	staleMemberLimit = 5 * time.Minute
)

// member is an ingester's entry.
type member struct {
	ID   string `json:"id"`
	URL  string `json:"url"`
	Zone string `json:"zone"`
	// Partitions are those the ingester owns and has caught up on: read up to where the
	// partition ended when it began reading it. For the others its answers could miss
	// samples.
	Partitions []int `json:"partitions"`
}

type seenMember struct {
	member
	seen time.Time // by this process' clock, so that clocks need not agree
}

// Membership registers this process' ingester and keeps the list of the others, for
// queriers of processes without one.
type Membership struct {
	log  *Log
	zone string // this process' zone: its ingesters are asked first
	now  func() time.Time

	mu      sync.Mutex
	members map[string]seenMember
}

// NewMembership returns the membership of l's cluster; zone is this process' zone.
func NewMembership(l *Log, zone string, now func() time.Time) *Membership {
	if now == nil {
		now = time.Now
	}
	return &Membership{log: l, zone: zone, now: now, members: map[string]seenMember{}}
}

// membersKV returns the ingesters bucket.
func (l *Log) membersKV(ctx context.Context) (jetstream.KeyValue, error) {
	return l.keyValue(ctx, &l.members, jetstream.KeyValueConfig{
		Bucket:      membersBucket,
		Description: "Strata ingesters: where each answers queries, and for which partitions",
		Storage:     jetstream.MemoryStorage,
		TTL:         time.Minute, // entries of ingesters gone for good disappear
	})
}

// Register keeps an entry for the ingester id, reachable at url, until ctx is done,
// then removes it. ready lists the partitions it answers for: the entry is renewed every
// heartbeatEvery, and at once when they change.
func (m *Membership) Register(ctx context.Context, id, url string, ready func() []int) error {
	key := base64.RawURLEncoding.EncodeToString([]byte(id))
	t := time.NewTicker(assignEvery)
	defer t.Stop()
	var (
		kv       jetstream.KeyValue
		last     []int
		renewed  time.Time
		warnedAt time.Time
	)
	for {
		parts := ready()
		if kv == nil || !slices.Equal(parts, last) || time.Since(renewed) >= heartbeatEvery {
			var err error
			if kv == nil {
				kv, err = m.log.membersKV(ctx)
			}
			if err == nil {
				var b []byte
				if b, err = json.Marshal(member{ID: id, URL: url, Zone: m.zone, Partitions: parts}); err == nil {
					_, err = kv.Put(ctx, key, b)
				}
			}
			if err == nil {
				last, renewed = parts, time.Now()
			} else if ctx.Err() == nil && time.Since(warnedAt) >= 10*time.Second {
				m.log.logger.Warn("registering the ingester; retrying", "err", err)
				warnedAt = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			if kv != nil {
				dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = kv.Delete(dctx, key)
				cancel()
			}
			return nil
		case <-t.C:
		}
	}
}

// Watch keeps the list of ingesters up to date until ctx is done.
func (m *Membership) Watch(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := m.watch(ctx); err != nil && ctx.Err() == nil {
			m.log.logger.Warn("watching the ingesters; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (m *Membership) watch(ctx context.Context) error {
	kv, err := m.log.membersKV(ctx)
	if err != nil {
		return err
	}
	return watchKV(ctx, kv, "the ingesters", func(e jetstream.KeyValueEntry) bool {
		if e == nil {
			return false // the initial values are all in
		}
		m.mu.Lock()
		if e.Operation() != jetstream.KeyValuePut {
			delete(m.members, e.Key())
		} else {
			var mem member
			if json.Unmarshal(e.Value(), &mem) == nil {
				m.members[e.Key()] = seenMember{member: mem, seen: m.now()}
			}
		}
		m.mu.Unlock()
		return false
	})
}

// Ingesters implements ingesterapi.Members: the ingesters that renewed their entry
// lately, with the partitions they answer for, those of this zone first, each group in
// random order so that queriers spread their load. Then, as a last resort for
// partitions the others leave uncovered, those whose renewals have not been seen for
// longer (up to staleMemberLimit): while JetStream moves a bucket's leader after a lost
// server, renewals and the watch pause, and an ingester that is alive still answers (a
// dead one fails over).
func (m *Membership) Ingesters() []ingesterapi.Member {
	now := m.now()
	m.mu.Lock()
	var same, other, stale []ingesterapi.Member
	var staleSeen []time.Time
	for _, e := range m.members {
		age := now.Sub(e.seen)
		if len(e.Partitions) == 0 || age > staleMemberLimit {
			continue
		}
		im := ingesterapi.Member{ID: e.ID, URL: e.URL, Zone: e.Zone, Partitions: e.Partitions}
		switch {
		case age > memberTTL:
			stale = append(stale, im)
			staleSeen = append(staleSeen, e.seen)
		case e.Zone == m.zone:
			same = append(same, im)
		default:
			other = append(other, im)
		}
	}
	m.mu.Unlock()
	rand.Shuffle(len(same), func(i, j int) { same[i], same[j] = same[j], same[i] })
	rand.Shuffle(len(other), func(i, j int) { other[i], other[j] = other[j], other[i] })
	// The stale ones most recently seen first.
	idx := make([]int, len(stale))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return staleSeen[b].Compare(staleSeen[a]) })
	out := append(same, other...)
	for _, i := range idx {
		out = append(out, stale[i])
	}
	return out
}

// Partitions implements ingesterapi.Members.
func (m *Membership) Partitions() int { return m.log.cfg.Partitions }

// zoneMembers returns the IDs of the ingesters of zone that renewed their entry lately.
func (m *Membership) zoneMembers(zone string) map[string]bool {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, e := range m.members {
		if e.Zone == zone && now.Sub(e.seen) <= memberTTL {
			out[e.ID] = true
		}
	}
	return out
}

// zoneKey encodes a zone (any text) in the characters keys allow.
func zoneKey(zone string) string { return "z" + base64Key(zone) }

// base64Key encodes any text in the characters keys allow.
func base64Key(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
