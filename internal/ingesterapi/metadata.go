package ingesterapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
)

// The routes of metric metadata and exemplars, JSON both ways.
const (
	PathMetadata  = "/internal/ingester/v1/metadata"
	PathExemplars = "/internal/ingester/v1/exemplars"
)

// MetadataSource is an ingester's metric metadata (ingester.Ingester).
type MetadataSource interface {
	Metadata(ctx context.Context, workspace, metric string, limit int) (map[string][]metadata.Metadata, error)
}

// ExemplarSource is an ingester's exemplar storage (ingester.Ingester).
type ExemplarSource interface {
	ExemplarQuerier(ctx context.Context, workspace string) (storage.ExemplarQuerier, error)
}

type metadataRequest struct {
	Metric string `json:"metric,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

type exemplarsRequest struct {
	Start    int64                    `json:"start"`
	End      int64                    `json:"end"`
	Matchers [][]*prompb.LabelMatcher `json:"matchers"`
}

// exemplarsResult is one series' exemplars on the wire; values as strings, since JSON
// has no NaN or infinities.
type exemplarsResult struct {
	Series    map[string]string `json:"series"`
	Exemplars []wireExemplar    `json:"exemplars"`
}

type wireExemplar struct {
	Labels map[string]string `json:"labels,omitempty"`
	Value  string            `json:"value"`
	T      int64             `json:"t"`
	HasT   bool              `json:"has_t,omitempty"`
}

// serveMetadata answers PathMetadata from the ingester's metadata.
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request, ws string) {
	src, ok := h.src.(MetadataSource)
	if !ok {
		http.Error(w, "this ingester keeps no metadata", http.StatusNotImplemented)
		return
	}
	var req metadataRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxLabelsRequest)).Decode(&req); err != nil {
		http.Error(w, "decoding the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	md, err := src.Metadata(r.Context(), ws, req.Metric, req.Limit)
	if err != nil {
		h.fail(w, ws, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(md)
}

// serveExemplars answers PathExemplars from the ingester's exemplar storage.
func (h *Handler) serveExemplars(w http.ResponseWriter, r *http.Request, ws string) {
	src, ok := h.src.(ExemplarSource)
	if !ok {
		http.Error(w, "this ingester keeps no exemplars", http.StatusNotImplemented)
		return
	}
	var req exemplarsRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxLabelsRequest)).Decode(&req); err != nil {
		http.Error(w, "decoding the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	sets := make([][]*labels.Matcher, 0, len(req.Matchers))
	for _, pm := range req.Matchers {
		ms, err := remote.FromLabelMatchers(pm)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sets = append(sets, ms)
	}
	eq, err := src.ExemplarQuerier(r.Context(), ws)
	if err != nil {
		h.fail(w, ws, err)
		return
	}
	res, err := eq.Select(req.Start, req.End, sets...)
	if err != nil {
		h.fail(w, ws, err)
		return
	}
	out := make([]exemplarsResult, 0, len(res))
	for _, s := range res {
		er := exemplarsResult{Series: s.SeriesLabels.Map(), Exemplars: make([]wireExemplar, 0, len(s.Exemplars))}
		for _, e := range s.Exemplars {
			we := wireExemplar{Value: strconv.FormatFloat(e.Value, 'g', -1, 64), T: e.Ts, HasT: e.HasTs}
			if !e.Labels.IsEmpty() {
				we.Labels = e.Labels.Map()
			}
			er.Exemplars = append(er.Exemplars, we)
		}
		out = append(out, er)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Metadata returns the workspace's metric metadata from ingesters that together answer
// for every partition, each metric's distinct entries once (query.MetadataSource).
func (c *Client) Metadata(ctx context.Context, workspace, metric string, limit int) (map[string][]metadata.Metadata, error) {
	q, err := c.newCall(workspace)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(metadataRequest{Metric: metric, Limit: limit})
	if err != nil {
		return nil, err
	}
	resps, err := q.call(ctx, PathMetadata, "application/json", b)
	if err != nil {
		return nil, err
	}
	out := map[string][]metadata.Metadata{}
	var errs []error
	for _, resp := range resps {
		var md map[string][]metadata.Metadata
		if resp == localAnswer {
			src, ok := c.local.(MetadataSource)
			if !ok {
				continue
			}
			if md, err = src.Metadata(ctx, workspace, metric, limit); err != nil {
				errs = append(errs, err)
			}
		} else {
			if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
				errs = append(errs, fmt.Errorf("decoding an ingester's metadata: %w", err))
			}
			resp.Body.Close()
		}
		for name, ms := range md {
			for _, m := range ms {
				if !slices.Contains(out[name], m) {
					out[name] = append(out[name], m)
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if limit > 0 && len(out) > limit {
		for _, name := range slices.Sorted(maps.Keys(out))[limit:] {
			delete(out, name)
		}
	}
	return out, nil
}

// ExemplarQuerier returns a querier of the workspace's exemplars in ingesters that
// together answer for every partition (query.ExemplarQueryables).
func (c *Client) ExemplarQuerier(ctx context.Context, workspace string) (storage.ExemplarQuerier, error) {
	q, err := c.newCall(workspace)
	if err != nil {
		return nil, err
	}
	return exemplarQuerier{ctx: ctx, q: q}, nil
}

type exemplarQuerier struct {
	ctx context.Context
	q   *remoteQuerier
}

// Select returns each series' exemplars from every ingester asked, merged in time order
// (an exemplar two hold comes out once), series sorted by labels.
func (e exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	req := exemplarsRequest{Start: start, End: end}
	for _, ms := range matchers {
		pm, err := remote.ToLabelMatchers(ms)
		if err != nil {
			return nil, err
		}
		req.Matchers = append(req.Matchers, pm)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resps, err := e.q.call(e.ctx, PathExemplars, "application/json", b)
	if err != nil {
		return nil, err
	}
	bySeries := map[string]*exemplar.QueryResult{}
	add := func(res []exemplar.QueryResult) {
		for _, r := range res {
			k := r.SeriesLabels.String()
			if cur, ok := bySeries[k]; ok {
				cur.Exemplars = append(cur.Exemplars, r.Exemplars...)
			} else {
				bySeries[k] = &r
			}
		}
	}
	var errs []error
	for _, resp := range resps {
		if resp == localAnswer {
			src, ok := e.q.c.local.(ExemplarSource)
			if !ok {
				continue
			}
			eq, err := src.ExemplarQuerier(e.ctx, e.q.ws)
			if err != nil {
				return nil, err
			}
			res, err := eq.Select(start, end, matchers...)
			if err != nil {
				return nil, err
			}
			add(res)
			continue
		}
		var wire []exemplarsResult
		if err := json.NewDecoder(resp.Body).Decode(&wire); err != nil {
			errs = append(errs, fmt.Errorf("decoding an ingester's exemplars: %w", err))
		}
		resp.Body.Close()
		res := make([]exemplar.QueryResult, 0, len(wire))
		for _, w := range wire {
			r := exemplar.QueryResult{SeriesLabels: labels.FromMap(w.Series)}
			for _, we := range w.Exemplars {
				v, err := strconv.ParseFloat(we.Value, 64)
				if err != nil {
					v = math.NaN()
				}
				r.Exemplars = append(r.Exemplars, exemplar.Exemplar{Labels: labels.FromMap(we.Labels), Value: v, Ts: we.T, HasTs: we.HasT})
			}
			res = append(res, r)
		}
		add(res)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]exemplar.QueryResult, 0, len(bySeries))
	for _, k := range slices.Sorted(maps.Keys(bySeries)) {
		r := bySeries[k]
		slices.SortStableFunc(r.Exemplars, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
		r.Exemplars = slices.CompactFunc(r.Exemplars, func(a, b exemplar.Exemplar) bool { return a.Equals(b) })
		out = append(out, *r)
	}
	return out, nil
}
