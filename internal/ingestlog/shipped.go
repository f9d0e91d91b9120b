package ingestlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// shippedBucket holds the partitions' shipped marks.
const shippedBucket = "strata-partition-shipped"

func (l *Log) shippedKV(ctx context.Context) (jetstream.KeyValue, error) {
	return l.keyValue(ctx, &l.shipped, jetstream.KeyValueConfig{
		Bucket:      shippedBucket,
		Description: "Strata ingest log: per partition, a time before which all it carried is in the bucket",
		Storage:     jetstream.FileStorage,
	})
}

// ShippedMarks are, per partition, times M such that every sample the partition carried
// that is not in a block in the bucket came in a batch the log stored at M or later
// (give or take the clocks and --limits.creation-grace-period: see Consumer.Replay).
// Each zone's owner of a partition publishes its own; a reader takes the latest of
// all zones, since every zone's blocks go to the same bucket. A new owner of a
// partition replays it from there instead of from the log's beginning.
type ShippedMarks struct {
	log  *Log
	zone string
}

// NewShippedMarks returns the marks of the log, publishing as zone.
func NewShippedMarks(l *Log, zone string) *ShippedMarks { return &ShippedMarks{log: l, zone: zone} }

func shippedKey(p int, zone string) string { return "p" + strconv.Itoa(p) + "." + zoneKey(zone) }

// Publish sets this zone's mark of partition p.
func (m *ShippedMarks) Publish(ctx context.Context, p int, t time.Time) error {
	kv, err := m.log.shippedKV(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, shippedKey(p, m.zone), []byte(strconv.FormatInt(t.UnixNano(), 10))); err != nil {
		return fmt.Errorf("publishing the shipped mark of partition %d: %w", p, err)
	}
	return nil
}

// Mark returns partition p's latest mark of all zones; ok is false when none published one.
func (m *ShippedMarks) Mark(ctx context.Context, p int) (t time.Time, ok bool, err error) {
	kv, err := m.log.shippedKV(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	prefix := "p" + strconv.Itoa(p) + "."
	keys, err := kv.ListKeysFiltered(ctx, prefix+"*")
	if err != nil {
		return time.Time{}, false, fmt.Errorf("listing the shipped marks of partition %d: %w", p, err)
	}
	defer func() { _ = keys.Stop() }()
	for k := range keys.Keys() {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("reading the shipped mark %s: %w", k, err)
		}
		ns, err := strconv.ParseInt(string(e.Value()), 10, 64)
		if err != nil {
			continue // not ours to read
		}
		if v := time.Unix(0, ns); !ok || v.After(t) {
			t, ok = v, true
		}
	}
	return t, ok, nil
}
