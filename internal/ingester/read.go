package ingester

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/stratametrics/strata/internal/remotewrite"
)

// metadataStore keeps the metric metadata a workspace's senders declared, by metric
// family. It lives in memory only: Prometheus re-sends metadata every minute.
//
// Its memory is bounded: at most max_metrics_with_metadata families (metadata of a new
// family beyond it is refused), at most maxMetadataPerMetric entries per family, and
// the distributor has bounded each entry's name, help and unit by max_metadata_length.
// A family is forgotten once it has gone metadataRetainPeriod without a declaration and
// no active series carries its name (remote write 2.0 declares metadata with a series,
// and the ingester reads it only for new series), which makes room for new families.
type metadataStore struct {
	// mu guards m. purge takes activeSeries.mu for reading while holding it; nothing
	// takes the two the other way round.
	mu sync.RWMutex
	m  map[string]*metadataFamily
}

type metadataFamily struct {
	list     []metadata.Metadata // replaced, never modified in place: get hands out copies
	lastSeen atomic.Int64        // unix seconds of the last declaration
}

// maxMetadataPerMetric bounds the distinct metadata kept per metric family.
const maxMetadataPerMetric = 10

// metadataRetainPeriod is how long a family without active series keeps its metadata
// after its last declaration: ten of Prometheus' metadata send intervals (Cortex's
// default metadata_retain_period too).
const metadataRetainPeriod = 10 * time.Minute

// add records md for family at now (unix seconds). It returns false, storing nothing,
// when family is new and the store already holds maxFamilies families (0: no limit).
// A known declaration only refreshes its family's lastSeen and allocates nothing.
func (s *metadataStore) add(family []byte, md *remotewrite.Metadata, maxFamilies int, now int64) bool {
	if len(family) == 0 {
		return true // the distributor refuses these; nothing to key them by
	}
	s.mu.RLock()
	f := s.m[string(family)]
	known := f != nil && f.has(md)
	if known {
		f.lastSeen.Store(now)
	}
	s.mu.RUnlock()
	if known {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f = s.m[string(family)]
	if f == nil {
		if maxFamilies > 0 && len(s.m) >= maxFamilies {
			return false
		}
		if s.m == nil {
			s.m = map[string]*metadataFamily{}
		}
		f = &metadataFamily{}
		s.m[string(family)] = f
	}
	f.lastSeen.Store(now)
	if f.has(md) {
		return true
	}
	list := f.list
	if len(list) >= maxMetadataPerMetric {
		list = list[1:] // the newest declarations win
	}
	f.list = append(slices.Clip(list), toMetadata(md))
	return true
}

// has reports whether md is among f's declarations. Call with the store's lock held.
func (f *metadataFamily) has(md *remotewrite.Metadata) bool {
	typ := model.MetricType(md.Type.String())
	for _, m := range f.list {
		if m.Type == typ && m.Help == string(md.Help) && m.Unit == string(md.Unit) {
			return true
		}
	}
	return false
}

// purge forgets the families last declared before cutoff (unix seconds) for which
// active reports no active series, and returns how many it forgot.
func (s *metadataStore) purge(cutoff int64, active func(metric string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for name, f := range s.m {
		if f.lastSeen.Load() < cutoff && !active(name) {
			delete(s.m, name)
			n++
		}
	}
	return n
}

// families returns the number of families with metadata.
func (s *metadataStore) families() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

func (s *metadataStore) get(metric string, limit int) map[string][]metadata.Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string][]metadata.Metadata{}
	for name, f := range s.m {
		if metric != "" && name != metric {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out[name] = slices.Clone(f.list)
	}
	return out
}

func toMetadata(m *remotewrite.Metadata) metadata.Metadata {
	return metadata.Metadata{Type: model.MetricType(m.Type.String()), Help: string(m.Help), Unit: string(m.Unit)}
}

// Metadata returns the workspace's metric metadata, as /api/v1/metadata lists it.
func (i *Ingester) Metadata(ctx context.Context, workspace, metric string, limit int) (map[string][]metadata.Metadata, error) {
	u, err := i.get(ctx, workspace)
	if err != nil {
		return nil, err
	}
	defer u.release()
	return u.meta.get(metric, limit), nil
}

// ExemplarQuerier returns a querier over the workspace's in-memory exemplars.
func (i *Ingester) ExemplarQuerier(ctx context.Context, workspace string) (storage.ExemplarQuerier, error) {
	u, err := i.get(ctx, workspace)
	if err != nil {
		return nil, err
	}
	defer u.release()
	u.touch(i.now()) // keep it open while the caller reads
	return u.db.ExemplarQuerier(ctx)
}

// HeadStats returns the cardinality of the workspace's head, for /api/v1/status/tsdb,
// and the number of chunks in it.
func (i *Ingester) HeadStats(ctx context.Context, workspace string, limit int) (*tsdb.Stats, int64, error) {
	u, err := i.get(ctx, workspace)
	if err != nil {
		return nil, 0, err
	}
	defer u.release()
	h := u.db.Head()
	stats := h.Stats(labels.MetricName, limit)
	cq, err := tsdb.NewBlockChunkQuerier(tsdb.NewRangeHead(h, h.MinTime(), h.MaxTime()), h.MinTime(), h.MaxTime())
	if err != nil {
		return nil, 0, err
	}
	defer cq.Close()
	var n int64
	ss := cq.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	var it chunks.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		for it.Next() {
			n++
		}
	}
	return stats, n, ss.Err()
}
