package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/stratametrics/strata/internal/vendedlogs"
)

// Queryables opens a workspace's storage for reading. The ingester implements it; later
// the querier will merge ingesters and the store-gateway behind the same method.
//
// Querier returns a querier over [mint, maxt] (milliseconds, inclusive) that the caller
// must close. ctx bounds opening the querier and is the request's context; the returned
// querier must not keep it. Implementations must be safe for concurrent use.
//
// A Select whose hints have a ShardCount answers only the series of shard ShardIndex,
// those whose labels.StableHash % ShardCount is ShardIndex: sharded queries rely on it.
type Queryables interface {
	Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error)
}

// Workspaces says whether a workspace exists, so that requests for an unknown one are
// answered 404 before anything is opened. Implementations must be safe for concurrent use.
type Workspaces interface {
	Exists(ctx context.Context, workspace string) (bool, error)
}

// Retentions gives a workspace's retention (ok false: none, keep everything); the
// Queryables drop samples older than it, so the results cache must not keep steps that
// read them (cache.go). querier.Retentions has the same method.
type Retentions interface {
	Retention(ctx context.Context, workspace string) (ret time.Duration, ok bool, err error)
}

// Metadata is the metadata of one metric, as /api/v1/metadata lists it.
type Metadata = metadata.Metadata

// MetadataSource lists the metadata of a workspace's metrics: by metric name, every
// distinct metadata seen for it. metric, when not empty, restricts the answer to that
// metric; limit, when positive, to that many metrics (the API enforces it again).
// The returned map is the caller's. Implementations must be safe for concurrent use.
type MetadataSource interface {
	Metadata(ctx context.Context, workspace, metric string, limit int) (map[string][]Metadata, error)
}

// ExemplarQueryables opens a workspace's exemplar storage. The returned querier needs no
// closing (as storage.ExemplarQuerier). Implementations must be safe for concurrent use.
type ExemplarQueryables interface {
	ExemplarQuerier(ctx context.Context, workspace string) (storage.ExemplarQuerier, error)
}

// HeadStatsSource reports the cardinality of a workspace's TSDB head for
// /api/v1/status/tsdb: tsdb.Head.Stats(labels.MetricName, limit) and the number of chunks
// in the head (zero if unknown). Implementations must be safe for concurrent use.
type HeadStatsSource interface {
	HeadStats(ctx context.Context, workspace string, limit int) (*tsdb.Stats, int64, error)
}

// BuildInfo is the answer of /api/v1/status/buildinfo, in Prometheus' shape. Version is
// the Prometheus version whose query API the server implements, because clients (Grafana)
// switch features on it; Revision is Strata's.
type BuildInfo struct {
	Version   string
	Revision  string
	Branch    string
	BuildUser string
	BuildDate string
	GoVersion string
}

// Deps are what the API uses besides its configuration. Queryables and Workspaces are
// required; the rest are optional.
type Deps struct {
	Queryables Queryables
	Workspaces Workspaces
	// Limits gives per-workspace limits; nil applies the Config's to every workspace.
	Limits Limits
	// Metadata answers /api/v1/metadata; nil answers {}.
	Metadata MetadataSource
	// Exemplars answers /api/v1/query_exemplars; nil answers [].
	Exemplars ExemplarQueryables
	// HeadStats answers /api/v1/status/tsdb; nil computes the figures from the series of
	// the last HeadStatsWindow, read through Queryables.
	HeadStats HeadStatsSource
	// CacheVersion, when set, returns what besides the query decides a workspace's
	// answers (its retention): cached answers of another version are not used. Every
	// process sharing a results cache backend must compute the same version for the
	// same state of the workspace, and a version must change whenever that state does
	// (Invalidate reaches only this process). ok false means: do not use the cache (the
	// workspace's state is unknown).
	CacheVersion func(ctx context.Context, workspace string) (version string, ok bool)
	// Retentions, when set, is the retention the Queryables apply: steps reading samples
	// near its moving cutoff are evaluated, never answered from the results cache.
	Retentions Retentions
	// Principal names the caller in the slow-query log; nil logs none.
	Principal func(*http.Request) string
	// QueryLog receives every PromQL query and rule query with its cost, for the
	// workspace's query logging configuration; nil logs none.
	QueryLog QueryLogger
	// BuildInfo overrides the answer of /api/v1/status/buildinfo.
	BuildInfo *BuildInfo
	Logger    *slog.Logger
	// Registerer receives the API's and the PromQL engine's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// QueryLogger logs queries of a workspace; *vendedlogs.Logs implements it.
type QueryLogger interface {
	Query(workspace string, rec vendedlogs.QueryRecord)
}

// HeadStatsWindow is the time range whose series stand for the head when no
// HeadStatsSource is given: the head holds the last 2-3 hours.
const HeadStatsWindow = 2 * time.Hour

// Route is one operation of the API.
type Route struct {
	// Operation is the AMP operation name; the IAM action is "aps:" + Operation.
	Operation string
	Method    string
	// Pattern is a net/http ServeMux path pattern.
	Pattern string
	Handler http.HandlerFunc
}

// API serves Prometheus' HTTP query API per workspace under /workspaces/{workspaceId}/.
// Safe for concurrent use.
type API struct {
	cfg       Config
	deps      Deps
	limits    Limits
	logger    *slog.Logger
	parser    parser.Parser
	buildInfo BuildInfo
	metrics   *metrics
	slots     *slots
	server    *serverLimits
	now       func() time.Time
	tune      func(*promql.EngineOpts) // tests adjust the engine options
	// minStepsPerPart is the fewest steps in a part of a split range query (split.go);
	// tests lower it to split small queries.
	minStepsPerPart int
	// retentionEdge is retentionEdge (cache.go); tests lower it.
	retentionEdge time.Duration

	engMu   sync.Mutex // guards engines
	engines map[int]*promql.Engine

	cache *resultsCache // nil: disabled
}

// Invalidate drops the cached answers of a workspace: call it when the workspace is
// deleted or its configuration (retention) changes. It reaches this process' memory
// only; extents in a shared backend (memcached, Redis) stop being used when the
// workspace's Deps.CacheVersion changes.
func (a *API) Invalidate(workspace string) {
	if a.cache != nil {
		a.cache.Invalidate(workspace)
	}
}

// New returns the API. Call Close when done with it.
func New(cfg Config, deps Deps) (*API, error) {
	return newAPI(cfg, deps, nil)
}

func newAPI(cfg Config, deps Deps, tune func(*promql.EngineOpts)) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Queryables == nil || deps.Workspaces == nil {
		return nil, errors.New("query API needs Queryables and Workspaces")
	}
	m := newMetrics(deps.Registerer)
	server := newServerLimits(cfg, m)
	m.serverLimit.WithLabelValues(limitMaxConcurrentTotal).Set(float64(cfg.MaxConcurrentTotal))
	m.serverLimit.WithLabelValues(limitMaxSamplesTotal).Set(float64(cfg.MaxSamplesTotal))
	// The default samples limit as queries run with it (never above the server's budget),
	// so that the engine of the default limits is the one with the engine metrics.
	cfg.MaxSamples = server.capSamples(cfg.MaxSamples)
	a := &API{
		cfg:             cfg,
		deps:            deps,
		limits:          deps.Limits,
		logger:          deps.Logger,
		parser:          parser.NewParser(parser.Options{EnableExperimentalFunctions: cfg.EnableExperimentalFunctions}),
		metrics:         m,
		slots:           newSlots(),
		server:          server,
		now:             time.Now,
		tune:            tune,
		minStepsPerPart: defaultMinStepsPerPart,
		retentionEdge:   retentionEdge,
		engines:         map[int]*promql.Engine{},
	}
	if a.limits == nil {
		a.limits = StaticLimits(cfg.Limits())
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ResultsCache.Backend != CacheBackendMemory || cfg.ResultsCacheSize > 0 {
		store, err := newExtentStore(cfg, m, time.Now)
		if err != nil {
			return nil, fmt.Errorf("setting up the results cache: %w", err)
		}
		a.cache = newResultsCache(store, cfg.ResultsCache.Backend, cfg.LookbackDelta, cfg.Shards, m, a.logger)
	}
	if deps.BuildInfo != nil {
		a.buildInfo = *deps.BuildInfo
	} else {
		a.buildInfo = defaultBuildInfo()
	}
	// The engine of the default limits registers the engine metrics; see engineFor.
	a.engineFor(cfg.MaxSamples)
	return a, nil
}

// Close releases the engines and the results cache's connections.
func (a *API) Close() error {
	a.engMu.Lock()
	defer a.engMu.Unlock()
	var err error
	if a.cache != nil {
		err = a.cache.store.close()
	}
	for _, e := range a.engines {
		err = errors.Join(err, e.Close())
	}
	a.engines = map[int]*promql.Engine{}
	return err
}

// engineFor returns the engine enforcing maxSamples. The engine holds its sample limit,
// so workspaces whose limit is overridden get their own engine: engines are cheap (no
// goroutines), and the number of distinct limits is small. Only the engine of the
// configured default registers the prometheus_engine_* metrics, since the names would
// collide.
func (a *API) engineFor(maxSamples int) *promql.Engine {
	a.engMu.Lock()
	defer a.engMu.Unlock()
	if e, ok := a.engines[maxSamples]; ok {
		return e
	}
	var reg prometheus.Registerer
	if maxSamples == a.cfg.MaxSamples {
		reg = a.deps.Registerer
	}
	opts := promql.EngineOpts{
		Logger:     a.logger.With("component", "promql"),
		Reg:        reg,
		MaxSamples: maxSamples,
		// Requests carry their own deadline (Limits.Timeout); the engine's own is a
		// backstop far beyond any of them.
		Timeout:            24 * time.Hour,
		ActiveQueryTracker: nil, // per-workspace slots replace Prometheus' global tracker
		LookbackDelta:      a.cfg.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return a.cfg.DefaultEvaluationInterval.Milliseconds()
		},
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// AMP answers totalQueryableSamplesPerStep for stats=all.
		EnablePerStepStats: true,
		Parser:             a.parser,
	}
	if maxSamples <= 0 {
		// Zero means no limit here, but a limit of zero samples to the engine.
		opts.MaxSamples = math.MaxInt
	}
	if a.tune != nil {
		a.tune(&opts)
	}
	e := promql.NewEngine(opts)
	a.engines[maxSamples] = e
	return e
}

// Routes lists the operations served, for the HTTP server to mount. Every endpoint
// answers GET and POST with a form-encoded body, the same parameters either way.
func (a *API) Routes() []Route {
	const p = "/workspaces/{workspaceId}/api/v1/"
	eps := []struct {
		op, path, name string
		h              func(*request) *apiError
	}{
		{"QueryMetrics", "query", "query", a.handleQuery},
		{"QueryMetrics", "query_range", "query_range", a.handleQueryRange},
		{"QueryMetrics", "query_exemplars", "query_exemplars", a.handleExemplars},
		{"QueryMetrics", "format_query", "format_query", a.handleFormatQuery},
		{"QueryMetrics", "parse_query", "parse_query", a.handleParseQuery},
		{"QueryMetrics", "status/buildinfo", "status_buildinfo", a.handleBuildInfo},
		{"QueryMetrics", "status/tsdb", "status_tsdb", a.handleTSDBStatus},
		{"GetSeries", "series", "series", a.handleSeries},
		{"GetLabels", "labels", "labels", a.handleLabels},
		{"GetLabels", "label/{name}/values", "label_values", a.handleLabelValues},
		{"GetMetricMetadata", "metadata", "metadata", a.handleMetadata},
	}
	routes := make([]Route, 0, 2*len(eps))
	for _, ep := range eps {
		h := a.wrap(ep.name, ep.h)
		routes = append(routes,
			Route{ep.op, http.MethodGet, p + ep.path, h},
			Route{ep.op, http.MethodPost, p + ep.path, h})
	}
	return routes
}

// defaultBuildInfo reports the Prometheus version of the engine and Strata's revision.
func defaultBuildInfo() BuildInfo {
	bi := BuildInfo{Version: "3.0.0", Revision: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	for _, d := range info.Deps {
		// Prometheus' library versions v0.3XX.Y correspond to releases v3.XX.Y.
		if d.Path == "github.com/prometheus/prometheus" && strings.HasPrefix(d.Version, "v0.3") {
			var minor, patch int
			if _, err := fmt.Sscanf(d.Version, "v0.3%d.%d", &minor, &patch); err == nil {
				bi.Version = fmt.Sprintf("3.%d.%d", minor, patch)
			}
		}
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			bi.Revision = s.Value
		}
	}
	return bi
}
