// Package distributor receives Prometheus remote write: it decodes the request, validates
// every series, deduplicates HA replica pairs, applies the workspace's ingestion rate and
// hands the rest to the ingesters. Start from Distributor; it is stateless but for the HA
// elections, which it persists in the bucket so they survive a restart.
//
//	POST /workspaces/<id>/api/v1/remote_write
//	  ─▶ workspace ACTIVE? ─▶ body ≤ limit? (413) ─▶ decode v1/v2 (415/413/400)
//	  ─▶ validate metadata (bad entries: 400, not stored; samples unaffected)
//	  ─▶ HA: check the cluster/replica labels like any label (bad: 400), then drop
//	     non-elected replicas (2xx for them)
//	  ─▶ validate labels and sample age per series (bad ones: 400, the rest kept)
//	  ─▶ ingestion rate (429) ─▶ Pusher.Push (series limits: 429; metadata families
//	     per workspace: dropped silently) ─▶ 204
package distributor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/hatracker"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/ratelimit"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/usage"

	"github.com/stratametrics/strata/internal/vendedlogs"
)

// Config configures the distributor.
type Config struct {
	// MaxRequestBodyBytes caps a remote write body as sent (compressed); AMP's is 1 MiB.
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
	// MaxDecodedBodyBytes caps a body once decompressed, so a snappy bomb costs nothing.
	MaxDecodedBodyBytes int              `yaml:"max_decoded_body_bytes"`
	HATracker           hatracker.Config `yaml:"ha_tracker"`
}

// RegisterFlags registers the flags under "distributor." and "ha-tracker.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Int64Var(&c.MaxRequestBodyBytes, "distributor.max-request-body-bytes", 1<<20, "Largest remote write body accepted as sent (compressed), in bytes (AMP: 1 MiB); larger ones get 413.")
	f.IntVar(&c.MaxDecodedBodyBytes, "distributor.max-decoded-body-bytes", 32<<20, "Largest remote write body accepted once decompressed, in bytes; checked before decompressing.")
	c.HATracker.RegisterFlags(f)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxRequestBodyBytes < 1024 || c.MaxDecodedBodyBytes < 1024 {
		return errors.New("request body limits must be at least 1024 bytes")
	}
	if err := c.HATracker.Validate(); err != nil {
		return fmt.Errorf("ha_tracker: %w", err)
	}
	return nil
}

// Workspaces tells whether a workspace may receive data.
type Workspaces interface {
	GetWorkspace(ctx context.Context, id string) (meta.Workspace, error)
}

// haObject is where the HA elections are persisted.
const haObject = "meta/ha-tracker/elections.json"

// Distributor serves remote write. Safe for concurrent use.
type Distributor struct {
	cfg        Config
	decoder    *remotewrite.Decoder
	rate       *ratelimit.Limiter
	ha         *hatracker.Tracker
	limits     *limits.Overrides
	workspaces Workspaces
	pusher     ingest.Pusher
	usage      *usage.Metrics
	bkt        objstore.Bucket
	logger     *slog.Logger
	events     vendedlogs.Events
	now        func() time.Time
	m          *metrics

	// haUnsaved is set while the last write of the HA elections failed.
	haUnsaved atomic.Bool
	// haStore, when set (UseHAStore), is where distributors agree on elections.
	haStore hatracker.Store

	statusMu sync.RWMutex
	status   map[string]statusEntry // workspace status cache, refreshed every few seconds
}

type statusEntry struct {
	status  string
	checked time.Time
}

type metrics struct {
	requests *prometheus.CounterVec
	haGroups *prometheus.GaugeVec
}

// New returns a distributor. bkt holds the persisted HA elections.
func New(cfg Config, lim *limits.Overrides, ws Workspaces, pusher ingest.Pusher, use *usage.Metrics, bkt objstore.Bucket, logger *slog.Logger, reg prometheus.Registerer) (*Distributor, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ha, err := hatracker.New(cfg.HATracker, lim)
	if err != nil {
		return nil, fmt.Errorf("creating HA tracker: %w", err)
	}
	f := promauto.With(reg)
	d := &Distributor{
		cfg:        cfg,
		events:     noEvents{},
		decoder:    remotewrite.NewDecoder(remotewrite.Options{MaxDecodedSize: cfg.MaxDecodedBodyBytes}),
		rate:       ratelimit.New(0),
		ha:         ha,
		limits:     lim,
		workspaces: ws,
		pusher:     pusher,
		usage:      use,
		bkt:        bkt,
		logger:     logger,
		now:        time.Now,
		status:     map[string]statusEntry{},
		m: &metrics{
			requests: f.NewCounterVec(prometheus.CounterOpts{
				Name: "strata_distributor_requests_total",
				Help: "Remote write requests, by protocol version and status code.",
			}, []string{"version", "status"}),
			haGroups: f.NewGaugeVec(prometheus.GaugeOpts{
				Name: "strata_workspace_ha_clusters",
				Help: "HA clusters (replica groups) with an elected replica, per workspace.",
			}, []string{"workspace"}),
		},
	}
	return d, nil
}

// UseHAStore makes the distributor agree on HA elections with the other distributors
// through s (compare-and-set): before it elects a replica, and with the elected
// replicas' last samples. Call before serving.
func (d *Distributor) UseHAStore(s hatracker.Store) { d.haStore = s }

// LoadHA restores the persisted HA elections; call before serving.
func (d *Distributor) LoadHA(ctx context.Context) error {
	rc, err := d.bkt.Get(ctx, haObject)
	if err != nil {
		if d.bkt.IsObjNotFoundErr(err) {
			return nil
		}
		return fmt.Errorf("reading HA elections: %w", err)
	}
	defer rc.Close()
	var entries []hatracker.Entry
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		// A corrupt file must not stop ingestion: elections start over.
		d.logger.Error("HA elections object is corrupt; starting without elections", "err", err)
		return nil
	}
	// Elections with a cluster or replica value the label limits now refuse (persisted
	// before those limits applied to HA labels, or by hand) are dropped: no request can
	// renew them, and they would count towards max_ha_clusters.
	valid := entries[:0]
	for _, e := range entries {
		lim := d.limits.For(e.Workspace)
		if !e.Deleted && (validateHALabel(d.cfg.HATracker.ClusterLabel, []byte(e.Cluster), lim) != nil ||
			validateHALabel(d.cfg.HATracker.ReplicaLabel, []byte(e.Replica), lim) != nil) {
			continue
		}
		valid = append(valid, e)
	}
	d.ha.Restore(valid)
	d.logger.Info("HA elections restored", "clusters", len(valid))
	if dropped := len(entries) - len(valid); dropped > 0 {
		d.logger.Warn("HA elections with invalid cluster or replica values dropped", "elections", dropped)
		if err := d.writeHA(ctx, d.ha.Snapshot()); err != nil {
			// Run's next tick tries again; until then a restart drops them again.
			d.haUnsaved.Store(true)
			d.logger.Warn("rewriting HA elections without the invalid ones", "err", err)
		}
	}
	return nil
}

// writeHA replaces the persisted HA elections with entries.
func (d *Distributor) writeHA(ctx context.Context, entries []hatracker.Entry) error {
	body, err := json.Marshal(entries)
	if err != nil {
		return fmt.Errorf("encoding HA elections: %w", err)
	}
	if err := d.bkt.Upload(ctx, haObject, bytes.NewReader(body)); err != nil {
		return fmt.Errorf("writing HA elections: %w", err)
	}
	return nil
}

// Run persists HA elections when they change and garbage-collects idle state until ctx
// is done, then persists a last time.
func (d *Distributor) Run(ctx context.Context) error {
	if w, ok := d.haStore.(hatracker.Watcher); ok {
		// Another distributor's failover or heartbeat is this one's at once.
		var wg sync.WaitGroup
		defer wg.Wait()
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		wg.Go(func() { d.watchHA(wctx, w) })
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	gc := time.NewTicker(time.Minute)
	defer gc.Stop()
	for {
		select {
		case <-ctx.Done():
			d.persistHA(context.Background())
			return nil
		case <-t.C:
			d.persistHA(ctx)
		case <-gc.C:
			now := d.now()
			d.ha.GC(now)
			d.rate.GC(now, 10*time.Minute)
		}
	}
}

// watchHA makes the elections written to the store this distributor's as they are
// written, until ctx is done; a watch that fails is started again.
func (d *Distributor) watchHA(ctx context.Context, w hatracker.Watcher) {
	for ctx.Err() == nil {
		err := w.Watch(ctx, d.ha.Observe)
		if ctx.Err() != nil {
			return
		}
		d.logger.Warn("watching the HA elections; each distributor still reads them before it elects", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (d *Distributor) persistHA(ctx context.Context) {
	changes := d.ha.Changes()
	if d.haStore != nil {
		// The elected replicas' last samples, so that other distributors do not fail over.
		for _, e := range changes {
			if err := d.ha.Heartbeat(ctx, d.haStore, e); err != nil && ctx.Err() == nil {
				d.logger.Warn("updating an HA election", "workspace", e.Workspace, "err", err)
			}
		}
	}
	if len(changes) == 0 && !d.haUnsaved.Load() {
		return
	}
	entries := d.ha.Snapshot()
	if err := d.writeHA(ctx, entries); err != nil {
		// The change set is consumed: remember that the bucket is behind, so the next
		// tick writes a snapshot again even if nothing else changes. (Restoring the
		// snapshot instead would also undo elections made since it was taken.)
		d.haUnsaved.Store(true)
		d.logger.Warn("persisting HA elections; will retry", "err", err)
		return
	}
	d.haUnsaved.Store(false)
	seen := map[string]bool{}
	for _, e := range entries {
		if !seen[e.Workspace] {
			seen[e.Workspace] = true
			d.m.haGroups.WithLabelValues(e.Workspace).Set(float64(d.ha.Clusters(e.Workspace)))
		}
	}
}

// DeleteWorkspace forgets a deleted workspace's HA and rate-limit state.
func (d *Distributor) DeleteWorkspace(id string) {
	d.ha.DeleteWorkspace(id)
	d.rate.Delete(id)
	d.m.haGroups.DeleteLabelValues(id)
	d.statusMu.Lock()
	delete(d.status, id)
	d.statusMu.Unlock()
}

// workspaceStatus returns the workspace's status, cached for a few seconds so the hot
// path does not copy workspace records.
func (d *Distributor) workspaceStatus(ctx context.Context, id string) (string, error) {
	now := d.now()
	d.statusMu.RLock()
	e, ok := d.status[id]
	d.statusMu.RUnlock()
	if ok && now.Sub(e.checked) < 2*time.Second {
		return e.status, nil
	}
	ws, err := d.workspaces.GetWorkspace(ctx, id)
	if err != nil {
		return "", err
	}
	d.statusMu.Lock()
	d.status[id] = statusEntry{status: ws.Status, checked: now}
	d.statusMu.Unlock()
	return ws.Status, nil
}

// Kind classifies why a write was refused; the HTTP edge (ServeHTTP) turns it into a
// status, other callers (the ruler) decide on it themselves.
type Kind uint8

// Kinds of refusal.
const (
	// KindInvalid: the sender's data or request (400); sending it again does not help.
	KindInvalid Kind = iota + 1
	// KindNotFound: the workspace does not exist or takes no data (404).
	KindNotFound
	// KindThrottled: over a rate or series limit (429); retry later.
	KindThrottled
	// KindUnavailable: nothing was stored for now (503: shutting down, HA elections
	// unreachable); retry.
	KindUnavailable
	// KindInternal: storing failed (500); retry.
	KindInternal
)

// HTTPStatus is the remote-write status of a refusal of kind k.
func (k Kind) HTTPStatus() int {
	switch k {
	case KindInvalid:
		return http.StatusBadRequest
	case KindNotFound:
		return http.StatusNotFound
	case KindThrottled:
		return http.StatusTooManyRequests
	case KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// WriteError is a refused write: its kind and the text Prometheus' senders log.
type WriteError struct {
	Kind Kind
	Msg  string
}

func (e *WriteError) Error() string { return e.Msg }

// Status is the HTTP status remote write answers for e.
func (e *WriteError) Status() int { return e.Kind.HTTPStatus() }

func (d *Distributor) reply(w http.ResponseWriter, v remotewrite.Version, status int, msg string, written [3]int) {
	if v == remotewrite.V2 {
		h := w.Header()
		h.Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(written[0]))
		h.Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(written[1]))
		h.Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(written[2]))
	}
	version := "unknown"
	if v != 0 {
		version = v.String()
	}
	d.m.requests.WithLabelValues(version, strconv.Itoa(status)).Inc()
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// fail answers a refused write and vends the refusal to the workspace's log group (its
// logging configuration), as AMP logs remote-write rejections.
func (d *Distributor) fail(w http.ResponseWriter, id string, v remotewrite.Version, status int, msg string, written [3]int) {
	d.reply(w, v, status, msg, written)
	level := vendedlogs.LevelError
	if status == http.StatusTooManyRequests {
		level = vendedlogs.LevelWarn
	}
	d.events.Event(id, vendedlogs.ComponentIngestion, level, fmt.Sprintf("remote write refused: %d %s: %s", status, http.StatusText(status), msg),
		vendedlogs.Field{Key: "statusCode", Value: status})
}

// UseEvents vends refused writes to the workspaces' log groups; call before serving.
func (d *Distributor) UseEvents(e vendedlogs.Events) {
	if e != nil {
		d.events = e
	}
}

// noEvents vends nothing.
type noEvents struct{}

func (noEvents) Event(string, string, string, string, ...vendedlogs.Field) {}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP handles POST /workspaces/{workspaceId}/api/v1/remote_write.
func (d *Distributor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("workspaceId")
	ctx := r.Context()
	if werr := d.accepting(ctx, id); werr != nil {
		d.fail(w, id, 0, werr.Status(), werr.Msg, [3]int{})
		return
	}

	limit := d.cfg.MaxRequestBodyBytes
	if r.ContentLength > limit {
		d.fail(w, id, 0, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes (distributor.max-request-body-bytes)", r.ContentLength, limit), [3]int{})
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	defer bodyPool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		d.fail(w, id, 0, http.StatusBadRequest, "reading the request body: "+err.Error(), [3]int{})
		return
	}
	if int64(buf.Len()) > limit {
		d.fail(w, id, 0, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the limit of %d bytes (distributor.max-request-body-bytes)", limit), [3]int{})
		return
	}
	req, err := d.decoder.DecodeBody(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), buf.Bytes())
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, remotewrite.ErrUnsupportedContentType), errors.Is(err, remotewrite.ErrUnsupportedContentEncoding):
			code = http.StatusUnsupportedMediaType
		case errors.Is(err, remotewrite.ErrBodyTooLarge):
			code = http.StatusRequestEntityTooLarge
		}
		d.fail(w, id, 0, code, err.Error(), [3]int{})
		return
	}
	defer req.Release()
	v := req.Version
	res, werr := d.push(ctx, id, req, WriteOptions{})
	written := [3]int{res.Samples, res.Histograms, res.Exemplars}
	if werr != nil {
		if werr.Kind == KindThrottled && res.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(res.retryAfter.Seconds()))))
		}
		d.fail(w, id, v, werr.Status(), werr.Msg, written)
		return
	}
	d.reply(w, v, http.StatusNoContent, "", written)
}

// accepting says why workspace id takes no data; nil when it does.
func (d *Distributor) accepting(ctx context.Context, id string) *WriteError {
	status, err := d.workspaceStatus(ctx, id)
	switch {
	case errors.Is(err, meta.ErrNotFound):
		return &WriteError{KindNotFound, fmt.Sprintf("workspace %s not found", id)}
	case err != nil:
		d.logger.Error("looking up workspace", "workspace", id, "err", err)
		return &WriteError{KindInternal, "looking up the workspace failed; retry"}
	case status != meta.StatusActive && status != meta.StatusCreating:
		return &WriteError{KindNotFound, fmt.Sprintf("workspace %s is %s and accepts no data", id, status)}
	}
	return nil
}

// WriteOptions tell Write what the writer has done already.
type WriteOptions struct {
	// LabelsChecked, when set, are the LabelChecks under which the writer found every
	// series of the request valid (CheckV1Labels) and none of them an HA replica's: while
	// the workspace's checks are still these, push does not check the labels again.
	LabelsChecked string
}

// Write stores a request that did not come over remote write (the ruler's recorded
// series and ALERTS, the scrapers' samples) through the same path: the workspace's
// status, HA dedup, validation, limits and usage. It returns what was stored, and a
// *WriteError for what was refused. req is consumed (its series are filtered in place);
// the caller releases it.
func (d *Distributor) Write(ctx context.Context, id string, req *remotewrite.Request, opts WriteOptions) (ingest.Result, error) {
	if werr := d.accepting(ctx, id); werr != nil {
		return ingest.Result{}, werr
	}
	out, werr := d.push(ctx, id, req, opts)
	if werr != nil {
		return out.Result, werr
	}
	return out.Result, nil
}

// LabelChecks names the checks a series' labels go through in workspace id now: the
// limits they apply and the HA labels looked for. A writer that encodes each series once
// and sends it again and again (the scrapers) checks it once with CheckV1Labels, and
// passes the checks it passed as WriteOptions.LabelsChecked; the checks were a tenth of
// a scrape's cost.
func (d *Distributor) LabelChecks(id string) string {
	var buf [96]byte
	return string(d.appendLabelChecks(buf[:0], d.limits.For(id)))
}

func (d *Distributor) appendLabelChecks(dst []byte, lim *limits.Limits) []byte {
	dst = strconv.AppendInt(dst, int64(lim.MaxLabelNamesPerSeries), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(lim.MaxLabelNameLength), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(lim.MaxLabelValueLength), 10)
	dst = append(dst, '/')
	dst = append(dst, d.cfg.HATracker.ClusterLabel...)
	dst = append(dst, '/')
	return append(dst, d.cfg.HATracker.ReplicaLabel...)
}

// CheckV1Labels checks a series' labels, encoded as remote write 1.0 label fields
// (remotewrite.AppendV1Labels), as push would in workspace id. ok is false when push
// would refuse the series or take it through HA deduplication; checks are the
// LabelChecks applied.
func (d *Distributor) CheckV1Labels(id string, enc []byte) (checks string, ok bool) {
	lim := d.limits.For(id)
	var buf [96]byte
	checks = string(d.appendLabelChecks(buf[:0], lim))
	s, err := remotewrite.V1LabelsSeries(enc)
	if err != nil {
		return checks, false
	}
	cluster, replica, _, bad := scanLabels(&s, lim, d.cfg.HATracker.ClusterLabel, d.cfg.HATracker.ReplicaLabel)
	return checks, bad == nil && (len(cluster) == 0 || len(replica) == 0)
}

type pushOutcome struct {
	ingest.Result
	retryAfter time.Duration
}

// push runs the request through HA dedup, validation and limits, and stores the rest.
func (d *Distributor) push(ctx context.Context, id string, req *remotewrite.Request, opts WriteOptions) (pushOutcome, *WriteError) {
	var out pushOutcome
	lim := d.limits.For(id)
	// Series checked by the writer under the checks in force need no scan: v1 carries no
	// metadata with its series, which is what the metric name is for.
	var checksBuf [96]byte
	checked := opts.LabelsChecked != "" && req.Version == remotewrite.V1 &&
		string(d.appendLabelChecks(checksBuf[:0], lim)) == opts.LabelsChecked
	now := d.now()
	haCfg := d.cfg.HATracker
	var (
		invalid     *invalidSeries
		invalidAt   string
		badMeta     *invalidMetadata
		haUsed      bool
		lastCluster []byte
		lastReplica []byte
		lastBad     *invalidSeries // the HA labels' own problem, if any
		lastAccept  bool
		lastErr     error
		haErr       error
	)
	// Remote write 1.0's request-level metadata: invalid entries are left out, the
	// samples are not affected.
	if len(req.Metadata) > 0 {
		keptMeta := req.Metadata[:0]
		for k := range req.Metadata {
			md := &req.Metadata[k]
			if bad := validateMetadata(md.MetricFamilyName, md, lim); bad != nil {
				d.usage.DiscardMetadata(id, bad.reason, 1)
				if badMeta == nil {
					badMeta = bad
				}
				continue
			}
			keptMeta = append(keptMeta, *md)
		}
		req.Metadata = keptMeta
	}
	minT, maxT := int64(math.MinInt64), int64(math.MaxInt64)
	if lim.MaxSampleAge > 0 {
		minT = now.Add(-lim.MaxSampleAge).UnixMilli()
	}
	if lim.CreationGracePeriod > 0 {
		maxT = now.Add(lim.CreationGracePeriod).UnixMilli()
	}
	kept := req.Series[:0]
	samples := 0
	for idx := range req.Series {
		s := req.Series[idx]
		n := len(s.Samples) + len(s.Histograms)

		var cluster, replica, metric []byte
		var bad *invalidSeries
		if !checked {
			cluster, replica, metric, bad = scanLabels(&s, lim, haCfg.ClusterLabel, haCfg.ReplicaLabel)
		}
		// HA deduplication first, one decision per distinct (cluster, replica) run: a
		// non-elected replica's series are dropped even when invalid. The HA labels
		// themselves are checked before the tracker sees them: it keeps and persists
		// them, so an invalid one refuses the series without an election.
		if len(cluster) > 0 && len(replica) > 0 {
			if !bytes.Equal(cluster, lastCluster) || !bytes.Equal(replica, lastReplica) {
				lastCluster, lastReplica = cluster, replica
				lastBad = validateHALabel(haCfg.ClusterLabel, cluster, lim)
				if lastBad == nil {
					lastBad = validateHALabel(haCfg.ReplicaLabel, replica, lim)
				}
				lastAccept, lastErr = false, nil
				if lastBad == nil {
					dec, err := d.ha.Decide(id, string(cluster), string(replica), now)
					lastErr = err
					if err != nil && haErr == nil {
						haErr = err
					}
					lastAccept = err == nil && dec.Action == hatracker.Accept
					if lastAccept && dec.Changed && d.haStore != nil {
						// An election: the other distributors must agree first.
						ok, err := d.ha.Confirm(ctx, d.haStore, id, string(cluster), string(replica), now)
						if err != nil {
							d.logger.Error("confirming an HA election", "workspace", id, "err", err)
							return out, &WriteError{KindUnavailable, "the HA elections cannot be reached, nothing was stored; retry"}
						}
						lastAccept = ok
					}
				}
			}
			switch {
			case lastBad != nil:
				bad = lastBad
			case !lastAccept:
				haUsed = true
				if lastErr != nil {
					d.usage.Discard(id, usage.HAClusterLimit, n)
				} else {
					d.usage.Discard(id, usage.HANonElectedReplica, n)
				}
				continue
			default:
				haUsed = true
			}
		}
		if bad != nil {
			d.usage.Discard(id, bad.reason, n)
			if invalid == nil {
				invalid, invalidAt = bad, s.String()
			}
			continue
		}
		// Sample age, per sample: drop the too old and the too new, keep the rest.
		var old, future int
		s.Samples, old, future = filterSamples(s.Samples, minT, maxT)
		var hOld, hFuture int
		s.Histograms, hOld, hFuture = filterHistograms(s.Histograms, minT, maxT)
		if old, future = old+hOld, future+hFuture; old+future > 0 {
			d.usage.Discard(id, usage.GreaterThanMaxSampleAge, old)
			d.usage.Discard(id, usage.TooFarInFuture, future)
			if invalid == nil {
				r := usage.GreaterThanMaxSampleAge
				if old == 0 {
					r = usage.TooFarInFuture
				}
				invalid, invalidAt = ageError(r, lim), s.String()
			}
		}
		if len(s.Samples)+len(s.Histograms) == 0 && len(s.Exemplars) == 0 {
			continue
		}
		// Remote write 2.0's metadata travels with the series: drop an invalid one,
		// keep the series.
		if req.Version == remotewrite.V2 {
			if md := s.Metadata(); md.Type != remotewrite.MetricTypeUnknown || len(md.Help) > 0 || len(md.Unit) > 0 {
				if bm := validateMetadata(metric, &md, lim); bm != nil {
					d.usage.DiscardMetadata(id, bm.reason, 1)
					if badMeta == nil {
						badMeta = bm
					}
					s.DropMetadata()
				}
			}
		}
		samples += len(s.Samples) + len(s.Histograms)
		kept = append(kept, s)
	}
	req.Series = kept

	if samples > 0 && lim.IngestionRate > 0 {
		ok, wait := d.rate.AllowN(id, now, samples, lim.IngestionRate, lim.IngestionBurstSize)
		if !ok {
			d.usage.Discard(id, usage.RateLimited, samples)
			if wait == ratelimit.Never {
				return out, &WriteError{KindInvalid, fmt.Sprintf("request of %d samples exceeds the ingestion burst size of %d for workspace %s; send smaller requests", samples, lim.IngestionBurstSize, id)}
			}
			d.usage.Throttled.WithLabelValues(id, usage.QuotaIngestionRate).Inc()
			out.retryAfter = wait
			return out, &WriteError{KindThrottled, fmt.Sprintf("ingestion rate limit of %g samples/s (burst %d) exceeded for workspace %s; retry later, or raise ingestion_rate for this workspace in the runtime limits file", lim.IngestionRate, lim.IngestionBurstSize, id)}
		}
	}

	// A request may hold metadata only: Prometheus sends remote write 1.0 metadata in
	// requests of its own.
	if len(kept) > 0 || len(req.Metadata) > 0 {
		opts := ingest.Options{}
		if haUsed {
			opts.DropLabel = haCfg.ReplicaLabel
		}
		res, err := d.pusher.Push(ctx, id, req, opts)
		if err != nil {
			if errors.Is(err, ingest.ErrWorkspaceDeleted) {
				return out, &WriteError{KindNotFound, fmt.Sprintf("workspace %s is deleted", id)}
			}
			if errors.Is(err, ingest.ErrTooLarge) {
				return out, &WriteError{KindInvalid, fmt.Sprintf("nothing of this request was stored: %v; send fewer samples per series per request", err)}
			}
			if errors.Is(err, ingest.ErrStopped) {
				// Shutting down: senders retry a 5xx, and nothing of this request was stored.
				return out, &WriteError{KindUnavailable, "the server is shutting down, nothing was stored; retry"}
			}
			d.logger.Error("storing remote write request", "workspace", id, "err", err)
			return out, &WriteError{KindInternal, "storing the samples failed, nothing was stored; retry"}
		}
		out.Result = res
	}
	stored := fmt.Sprintf("%d samples, %d histograms and %d exemplars of this request were stored", out.Samples, out.Histograms, out.Exemplars)
	if out.Limited != nil {
		d.usage.Throttled.WithLabelValues(id, out.LimitedQuota).Inc()
		return out, &WriteError{KindThrottled, fmt.Sprintf("%v; %s", out.Limited, stored)}
	}
	if haErr != nil {
		return out, &WriteError{KindInvalid, fmt.Sprintf("%v; raise max_ha_clusters for this workspace in the runtime limits file; %s", haErr, stored)}
	}
	if invalid != nil {
		return out, &WriteError{KindInvalid, fmt.Sprintf("%s: %s for series %s; %s", invalid.reason, invalid.msg, invalidAt, stored)}
	}
	if out.Invalid != nil {
		return out, &WriteError{KindInvalid, fmt.Sprintf("%v; %s", out.Invalid, stored)}
	}
	if badMeta != nil {
		// As Cortex: too long metadata is a client error, but it loses no sample.
		return out, &WriteError{KindInvalid, fmt.Sprintf("%s: %s; that metadata was not stored; %s", badMeta.reason, badMeta.msg, stored)}
	}
	return out, nil
}

func ageError(r usage.Reason, lim *limits.Limits) *invalidSeries {
	if r == usage.GreaterThanMaxSampleAge {
		return &invalidSeries{r, fmt.Sprintf("sample is older than the maximum sample age of %s (max_sample_age)", lim.MaxSampleAge)}
	}
	return &invalidSeries{r, fmt.Sprintf("sample is more than %s in the future (creation_grace_period)", lim.CreationGracePeriod)}
}

// filterSamples keeps samples within [minT, maxT], in place, and counts the others.
func filterSamples(ss []remotewrite.Sample, minT, maxT int64) (kept []remotewrite.Sample, old, future int) {
	for i, smp := range ss {
		if smp.Timestamp < minT || smp.Timestamp > maxT {
			// Slow path from the first sample out of range on.
			kept = ss[:i]
			for _, smp := range ss[i:] {
				switch {
				case smp.Timestamp < minT:
					old++
				case smp.Timestamp > maxT:
					future++
				default:
					kept = append(kept, smp)
				}
			}
			return kept, old, future
		}
	}
	return ss, 0, 0
}

// filterHistograms is filterSamples for histograms.
func filterHistograms(hs []remotewrite.Histogram, minT, maxT int64) (kept []remotewrite.Histogram, old, future int) {
	for i := range hs {
		if hs[i].Timestamp < minT || hs[i].Timestamp > maxT {
			kept = hs[:i]
			for j := i; j < len(hs); j++ {
				switch {
				case hs[j].Timestamp < minT:
					old++
				case hs[j].Timestamp > maxT:
					future++
				default:
					kept = append(kept, hs[j])
				}
			}
			return kept, old, future
		}
	}
	return hs, 0, 0
}
