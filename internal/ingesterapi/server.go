// Package ingesterapi puts an ingester's read side on the network, so that a querier in
// another process (--target=read) can read the recent samples only ingesters hold.
//
// Series travel as Prometheus remote-read chunk streams (ChunkedReadResponse frames of
// the TSDB's own encoded chunks, as `remote_read` with STREAMED_XOR_CHUNKS), label names
// and values as JSON. Every call carries the cluster key (STRATA_JETSTREAM_TOKEN) as a
// bearer token: these paths are outside SigV4, and a workspace's credentials never
// reach them.
package ingesterapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"
)

// Paths of the API, on the public listener.
const (
	PathRead   = "/internal/ingester/v1/read"
	PathLabels = "/internal/ingester/v1/labels"
)

const (
	headerWorkspace = "X-Strata-Workspace"
	// headerPartitions lists, in an answer, the partitions the ingester answered for
	// when it began (comma-separated; empty: none). A querier whose list of ingesters is
	// out of date (one gave a partition up a moment ago) learns it from the answer and
	// asks another for the rest, rather than miss that partition's newest samples.
	headerPartitions = "X-Strata-Partitions"
	// headerShard says, in an answer to a sharded read, which shard it holds
	// ("index/count"): a querier keeps every series of an answer that says it, and
	// filters an older ingester's, which answers all series.
	headerShard = "X-Strata-Shard"
	// trailerError says why a stream ended early: a chunk stream has no error frame,
	// and a stream cut short must not pass for a complete answer.
	trailerError = "X-Strata-Error"
	// maxFrameBytes bounds one frame of a chunk stream (remote read's default).
	maxFrameBytes = 1 << 20
	// maxLabelsRequest bounds a label request's body.
	maxLabelsRequest = 1 << 20
)

// Source is the ingester: its chunks of a workspace.
type Source interface {
	ChunkQuerier(ctx context.Context, workspace string, mint, maxt int64) (storage.ChunkQuerier, error)
}

// Handler serves PathRead and PathLabels for src to callers that hold the cluster key.
type Handler struct {
	src       Source
	key       ClusterKey
	logger    *slog.Logger
	frames    sync.Pool
	answering func() []int // nil: not said
}

// Answering makes every answer say which partitions the ingester answers for, as
// answering lists them at the time (the partitions it owns and has caught up on).
func (h *Handler) Answering(answering func() []int) *Handler {
	h.answering = answering
	return h
}

// ClusterKey checks that a request between the processes of a cluster carries the
// cluster key (STRATA_JETSTREAM_TOKEN) as a bearer token.
type ClusterKey struct {
	sum [sha256.Size]byte
	set bool
}

// NewClusterKey returns the check of key; an empty key refuses every request.
func NewClusterKey(key string) ClusterKey {
	return ClusterKey{sum: sha256.Sum256([]byte(key)), set: key != ""}
}

// Authorized compares the request's bearer token with the key in constant time.
func (k ClusterKey) Authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !k.set {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1
}

// NewHandler returns the handler. Without a key it refuses every call.
func NewHandler(src Source, key string, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{src: src, key: NewClusterKey(key), logger: logger,
		frames: sync.Pool{New: func() any { return &[]byte{} }}}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.key.Authorized(r) {
		http.Error(w, "the ingester API needs the cluster key (STRATA_JETSTREAM_TOKEN) as a bearer token", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	ws := r.Header.Get(headerWorkspace)
	if ws == "" {
		http.Error(w, "no workspace ("+headerWorkspace+")", http.StatusBadRequest)
		return
	}
	if h.answering != nil {
		w.Header().Set(headerPartitions, formatPartitions(h.answering()))
	}
	switch r.URL.Path {
	case PathRead:
		h.read(w, r, ws)
	case PathLabels:
		h.labels(w, r, ws)
	case PathMetadata:
		h.serveMetadata(w, r, ws)
	case PathExemplars:
		h.serveExemplars(w, r, ws)
	default:
		http.NotFound(w, r)
	}
}

// read streams the series of the one query of a remote-read request.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, ws string) {
	req, err := remote.DecodeReadRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(req.Queries) != 1 {
		http.Error(w, fmt.Sprintf("want one query, got %d", len(req.Queries)), http.StatusBadRequest)
		return
	}
	q := req.Queries[0]
	ms, err := remote.FromLabelMatchers(q.Matchers)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var hints *storage.SelectHints
	if rh := q.Hints; rh != nil {
		hints = &storage.SelectHints{Start: rh.StartMs, End: rh.EndMs, Step: rh.StepMs, Func: rh.Func,
			Grouping: rh.Grouping, By: rh.By, Range: rh.RangeMs}
	}
	if v := r.URL.Query().Get("of"); v != "" {
		of, err1 := strconv.ParseUint(v, 10, 64)
		shard, err2 := strconv.ParseUint(r.URL.Query().Get("shard"), 10, 64)
		if err1 != nil || err2 != nil || shard >= of {
			http.Error(w, "shard must be below of, both whole numbers", http.StatusBadRequest)
			return
		}
		if hints == nil {
			hints = &storage.SelectHints{Start: q.StartTimestampMs, End: q.EndTimestampMs}
		}
		hints.ShardIndex, hints.ShardCount = shard, of
		w.Header().Set(headerShard, formatShard(shard, of))
	}
	cq, err := h.src.ChunkQuerier(r.Context(), ws, q.StartTimestampMs, q.EndTimestampMs)
	if err != nil {
		h.fail(w, ws, err)
		return
	}
	defer cq.Close()
	w.Header().Set("Content-Type", "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse")
	w.Header().Set("Trailer", trailerError)
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	if f == nil {
		f = noFlush{}
	}
	ss := cq.Select(r.Context(), true, hints, ms...)
	_, err = remote.StreamChunkedReadResponses(remote.NewChunkedWriter(w, f), 0, ss, nil, maxFrameBytes, &h.frames)
	if err == nil {
		err = ss.Err()
	}
	if err != nil {
		h.logger.Warn("streaming series to a querier", "workspace", ws, "err", err)
		w.Header().Set(trailerError, err.Error())
	}
}

func formatShard(shard, of uint64) string {
	return strconv.FormatUint(shard, 10) + "/" + strconv.FormatUint(of, 10)
}

type noFlush struct{}

func (noFlush) Flush() {}

// labelsRequest asks for label names (Name empty) or the values of Name.
type labelsRequest struct {
	Start    int64                  `json:"start"`
	End      int64                  `json:"end"`
	Name     string                 `json:"name,omitempty"`
	Limit    int                    `json:"limit,omitempty"`
	Matchers []*prompb.LabelMatcher `json:"matchers,omitempty"`
}

type labelsResponse struct {
	Values   []string `json:"values"`
	Warnings []string `json:"warnings,omitempty"`
}

func (h *Handler) labels(w http.ResponseWriter, r *http.Request, ws string) {
	var req labelsRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxLabelsRequest)).Decode(&req); err != nil {
		http.Error(w, "decoding the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ms, err := remote.FromLabelMatchers(req.Matchers)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cq, err := h.src.ChunkQuerier(r.Context(), ws, req.Start, req.End)
	if err != nil {
		h.fail(w, ws, err)
		return
	}
	defer cq.Close()
	hints := &storage.LabelHints{Limit: req.Limit}
	var (
		vals  []string
		warns annotations.Annotations
	)
	if req.Name == "" {
		vals, warns, err = cq.LabelNames(r.Context(), hints, ms...)
	} else {
		vals, warns, err = cq.LabelValues(r.Context(), req.Name, hints, ms...)
	}
	if err != nil {
		h.fail(w, ws, err)
		return
	}
	resp := labelsResponse{Values: vals}
	for _, w := range warns.AsErrors() {
		resp.Warnings = append(resp.Warnings, w.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (h *Handler) fail(w http.ResponseWriter, ws string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	h.logger.Warn("serving a querier", "workspace", ws, "err", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// matchersJSON encodes matchers for a labels request.
func matchersJSON(ms []*labels.Matcher) ([]*prompb.LabelMatcher, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	return remote.ToLabelMatchers(ms)
}

func formatPartitions(ps []int) string {
	var b []byte
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	return string(b)
}

// parsePartitions reads headerPartitions; ok is false when the header is absent or not
// a list of partitions.
func parsePartitions(h http.Header) (ps []int, ok bool) {
	vs, present := h[headerPartitions]
	if !present || len(vs) != 1 {
		return nil, false
	}
	if vs[0] == "" {
		return []int{}, true
	}
	for f := range strings.SplitSeq(vs[0], ",") {
		p, err := strconv.Atoi(f)
		if err != nil || p < 0 {
			return nil, false
		}
		ps = append(ps, p)
	}
	return ps, true
}
