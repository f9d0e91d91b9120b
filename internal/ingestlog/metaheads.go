package ingestlog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratametrics/strata/internal/meta"
)

// workspacesBucket is the JetStream key-value bucket of the workspaces' heads: which
// object holds each workspace's current record (meta.Heads).
const workspacesBucket = "strata-workspaces"

// MetaHeads keeps the workspaces' heads in a JetStream key-value bucket, replicated like
// the stream, so that the processes of a cluster write the records by compare-and-set.
type MetaHeads struct{ log *Log }

// NewMetaHeads returns the workspaces' heads of l's cluster.
func NewMetaHeads(l *Log) *MetaHeads { return &MetaHeads{log: l} }

func (h *MetaHeads) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	return h.log.keyValue(ctx, &h.log.heads, jetstream.KeyValueConfig{
		Bucket:      workspacesBucket,
		Description: "Strata workspaces: the object holding each one's current record",
		Storage:     jetstream.FileStorage,
	})
}

func headKey(id string) string { return base64Key(id) }

func headID(key string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(key)
	return string(b), err == nil
}

// Get implements meta.Heads.
func (h *MetaHeads) Get(ctx context.Context, id string) (meta.Head, error) {
	kv, err := h.bucket(ctx)
	if err != nil {
		return meta.Head{}, err
	}
	e, err := kv.Get(ctx, headKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return meta.Head{}, meta.ErrNotFound
	}
	if err != nil {
		return meta.Head{}, fmt.Errorf("reading the head of workspace %s: %w", id, err)
	}
	return meta.Head{Object: string(e.Value()), Rev: e.Revision()}, nil
}

// Put implements meta.Heads.
func (h *MetaHeads) Put(ctx context.Context, id, object string, rev uint64) (uint64, error) {
	kv, err := h.bucket(ctx)
	if err != nil {
		return 0, err
	}
	var n uint64
	if rev == 0 {
		n, err = kv.Create(ctx, headKey(id), []byte(object))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, meta.ErrConflict
		}
	} else {
		n, err = kv.Update(ctx, headKey(id), []byte(object), rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, meta.ErrConflict
		}
	}
	if err != nil {
		return 0, fmt.Errorf("writing the head of workspace %s: %w", id, err)
	}
	return n, nil
}

// Delete implements meta.Heads.
func (h *MetaHeads) Delete(ctx context.Context, id string, rev uint64) error {
	kv, err := h.bucket(ctx)
	if err != nil {
		return err
	}
	err = kv.Delete(ctx, headKey(id), jetstream.LastRevision(rev))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return meta.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("deleting the head of workspace %s: %w", id, err)
	}
	return nil
}

// List implements meta.Heads.
func (h *MetaHeads) List(ctx context.Context) (map[string]meta.Head, error) {
	kv, err := h.bucket(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]meta.Head{}
	complete := false
	err = watchKV(ctx, kv, "the workspaces' heads", func(e jetstream.KeyValueEntry) bool {
		if e == nil {
			complete = true // all listed
			return true
		}
		if id, ok := headID(e.Key()); ok {
			out[id] = meta.Head{Object: string(e.Value()), Rev: e.Revision()}
		}
		return false
	}, jetstream.IgnoreDeletes())
	if err == nil && !complete {
		err = ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Watch implements meta.Heads: f("") once the watch is in place.
func (h *MetaHeads) Watch(ctx context.Context, f func(id string)) error {
	kv, err := h.bucket(ctx)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watching the workspaces' heads: %w", err)
	}
	f("")
	return readWatch(ctx, w, "the workspaces' heads", func(e jetstream.KeyValueEntry) bool {
		if e != nil {
			if id, ok := headID(e.Key()); ok {
				f(id)
			}
		}
		return false
	})
}

// watchKV calls f with each entry kv's watch (opts) delivers, nil once the initial values
// are all in, until f returns true (nil returned) or ctx is done (nil returned). what
// names the watch in errors.
func watchKV(ctx context.Context, kv jetstream.KeyValue, what string, f func(jetstream.KeyValueEntry) (stop bool), opts ...jetstream.WatchOpt) error {
	w, err := kv.WatchAll(ctx, opts...)
	if err != nil {
		return fmt.Errorf("watching %s: %w", what, err)
	}
	return readWatch(ctx, w, what, f)
}

// readWatch is watchKV's loop over a watch in place, which it stops.
func readWatch(ctx context.Context, w jetstream.KeyWatcher, what string, f func(jetstream.KeyValueEntry) (stop bool)) error {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watching %s: the watch ended", what)
			}
			if f(e) {
				return nil
			}
		}
	}
}
