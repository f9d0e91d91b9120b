package ingester

import (
	"context"
	"slices"
	"sync"

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
type metadataStore struct {
	mu sync.RWMutex // guards m
	m  map[string][]metadata.Metadata
}

// maxMetadataPerMetric bounds the distinct metadata kept per metric family.
const maxMetadataPerMetric = 10

func (s *metadataStore) add(family string, md metadata.Metadata) {
	if family == "" {
		return
	}
	s.mu.RLock()
	known := slices.Contains(s.m[family], md)
	s.mu.RUnlock()
	if known {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]metadata.Metadata{}
	}
	list := s.m[family]
	if slices.Contains(list, md) {
		return
	}
	if len(list) >= maxMetadataPerMetric {
		list = list[1:] // the newest declarations win
	}
	s.m[family] = append(slices.Clone(list), md)
}

func (s *metadataStore) get(metric string, limit int) map[string][]metadata.Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string][]metadata.Metadata{}
	for name, list := range s.m {
		if metric != "" && name != metric {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out[name] = slices.Clone(list)
	}
	return out
}

func toMetadata(m remotewrite.Metadata) metadata.Metadata {
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
