package ingestlog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratametrics/strata/internal/hatracker"
)

// haBucket is the JetStream key-value bucket of the HA elections.
const haBucket = "strata-ha-elections"

// HAStore keeps the HA elections in a JetStream key-value bucket (replicated like the
// stream), so that the distributors of a cluster agree on them by compare-and-set.
type HAStore struct {
	log *Log
}

// NewHAStore returns the HA elections store of l.
func NewHAStore(l *Log) *HAStore { return &HAStore{log: l} }

func (s *HAStore) bucket(ctx context.Context) (jetstream.KeyValue, error) { return s.log.haBucket(ctx) }

// haBucket returns the HA elections bucket.
func (l *Log) haBucket(ctx context.Context) (jetstream.KeyValue, error) {
	return l.keyValue(ctx, &l.ha, jetstream.KeyValueConfig{
		Bucket:      haBucket,
		Description: "Strata HA-dedup elections, one per workspace and cluster",
		Storage:     jetstream.FileStorage,
	})
}

// key encodes workspace and cluster (any bytes) in the characters keys allow.
func key(workspace, cluster string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(workspace + "\x00" + cluster))
}

// Get implements hatracker.Store.
func (s *HAStore) Get(ctx context.Context, workspace, cluster string) (hatracker.Entry, uint64, bool, error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return hatracker.Entry{}, 0, false, err
	}
	ent, err := kv.Get(ctx, key(workspace, cluster))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return hatracker.Entry{}, 0, false, nil
	}
	if err != nil {
		return hatracker.Entry{}, 0, false, fmt.Errorf("reading an HA election: %w", err)
	}
	var e hatracker.Entry
	if err := json.Unmarshal(ent.Value(), &e); err != nil {
		return hatracker.Entry{}, 0, false, fmt.Errorf("decoding an HA election: %w", err)
	}
	return e, ent.Revision(), true, nil
}

// Put implements hatracker.Store.
func (s *HAStore) Put(ctx context.Context, e hatracker.Entry, rev uint64) (uint64, error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return 0, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	k := key(e.Workspace, e.Cluster)
	var n uint64
	if rev == 0 {
		n, err = kv.Create(ctx, k, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, hatracker.ErrConflict
		}
	} else {
		n, err = kv.Update(ctx, k, b, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, hatracker.ErrConflict
		}
	}
	if err != nil {
		return 0, fmt.Errorf("writing an HA election: %w", err)
	}
	return n, nil
}

// Watch implements hatracker.Watcher.
func (s *HAStore) Watch(ctx context.Context, f func(hatracker.Entry)) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	return watchKV(ctx, kv, "the HA elections", func(e jetstream.KeyValueEntry) bool {
		if e == nil || e.Operation() != jetstream.KeyValuePut {
			return false
		}
		var el hatracker.Entry
		if json.Unmarshal(e.Value(), &el) == nil {
			f(el)
		}
		return false
	}, jetstream.UpdatesOnly())
}
