package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/auth"
	"github.com/stratametrics/strata/internal/auth/oidc"
	"github.com/stratametrics/strata/internal/auth/session"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/controlplane"
	"github.com/stratametrics/strata/internal/distributor"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/ingester"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/querier"
	"github.com/stratametrics/strata/internal/query"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/ruler"
	"github.com/stratametrics/strata/internal/server"
	"github.com/stratametrics/strata/internal/storegateway"
	"github.com/stratametrics/strata/internal/sts"
	"github.com/stratametrics/strata/internal/usage"
	"github.com/stratametrics/strata/internal/version"
)

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("strata server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// NewLogger builds the process logger from the log block.
func NewLogger(cfg LogConfig, w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// App is a running set of components.
type App struct {
	cfg       *Config
	logger    *slog.Logger
	reg       *prometheus.Registry
	bkt       objstore.Bucket
	store     *meta.Store
	server    *server.Server
	recon     *controlplane.Reconciler
	limits    *limits.Overrides
	ingester  *ingester.Ingester
	distrib   *distributor.Distributor
	auth      *auth.Auth
	resources *resources
	routes    []RouteAction
	query     *query.API
	querier   *querier.Querier
	exporter  *usage.Exporter
	sg        *storegateway.StoreGateway
	compactor *compactor.Compactor
	decoder   *remotewrite.Decoder
	ruler     *ruler.Ruler
	am        *alertmanager.MultiTenant
}

// writeInternal stores a request in a workspace without authentication or quotas: Strata
// writing its own usage series.
func (a *App) writeInternal(ctx context.Context, workspace string, req *prompb.WriteRequest) error {
	b, err := req.Marshal()
	if err != nil {
		return err
	}
	r, err := a.decoder.Decode(remotewrite.V1, b)
	if err != nil {
		return err
	}
	defer r.Release()
	res, err := a.ingester.Push(ctx, workspace, r, ingest.Options{})
	if err != nil {
		return err
	}
	return errors.Join(res.Invalid, res.Limited)
}

// workspaceExists answers the query API: a workspace exists while it is not deleted.
type workspaceExists struct{ store *meta.Store }

func (w workspaceExists) Exists(ctx context.Context, id string) (bool, error) {
	ws, err := w.store.GetWorkspace(ctx, id)
	if errors.Is(err, meta.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ws.Status != meta.StatusDeleting && ws.Status != meta.StatusCreationFailed, nil
}

// workspaceHooks tells the data path about workspace lifecycle changes.
type workspaceHooks struct {
	ing   *ingester.Ingester
	dis   *distributor.Distributor
	sg    *storegateway.StoreGateway
	comp  *compactor.Compactor
	ruler *ruler.Ruler
	am    *alertmanager.MultiTenant
}

func (h workspaceHooks) Provision(ctx context.Context, ws meta.Workspace) error {
	return h.ing.Provision(ctx, ws)
}

func (h workspaceHooks) Reconfigure(ctx context.Context, ws meta.Workspace) error {
	return h.ing.Reconfigure(ctx, ws)
}

// Deprovision stops ingestion before removing data.
func (h workspaceHooks) Deprovision(ctx context.Context, id string) error {
	h.ruler.DeleteWorkspace(id)
	if err := h.am.DeleteWorkspace(ctx, id); err != nil {
		return err
	}
	h.dis.DeleteWorkspace(id)
	if err := h.ing.Deprovision(ctx, id); err != nil {
		return err
	}
	if err := h.sg.DeleteWorkspace(id); err != nil {
		return err
	}
	// Every object of the workspace in the bucket goes with it, as in AMP.
	return h.comp.DeleteWorkspace(ctx, id)
}

// New opens the bucket, loads the metadata and binds the listener. Nothing runs until Run.
func New(ctx context.Context, cfg *Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	a := &App{cfg: cfg, logger: logger, reg: prometheus.NewRegistry()}
	var err error
	// On failure, close what was opened so far, newest first.
	var closers []func() error
	fail := func(err error) (*App, error) {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
		return nil, err
	}
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := version.Get()
	promauto.With(a.reg).NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_build_info",
		Help: "A metric with a constant 1 value labeled by the version, revision and Go version Strata was built from.",
	}, []string{"version", "revision", "goversion"}).WithLabelValues(info.Version, info.Revision, info.GoVersion).Set(1)

	if err := privateDir(cfg.DataDir, logger); err != nil {
		return nil, err
	}
	a.bkt, err = bucket.New(cfg.Bucket, cfg.DataDir, logger)
	if err != nil {
		return nil, fmt.Errorf("opening bucket: %w", err)
	}
	closers = append(closers, a.bkt.Close)
	a.store = meta.New(cfg.Meta, a.bkt, logger.With("component", "meta"), a.reg)
	a.resources = newResources(a.store, cfg.Region, cfg.AccountID)
	var ring *session.Ring
	if cfg.STS.Enabled {
		keyFile, create := cfg.STS.KeyFile, false
		if keyFile == "" {
			keyFile, create = filepath.Join(cfg.DataDir, session.KeyFileName), true
		}
		var created bool
		if ring, created, err = session.LoadOrCreateRing(keyFile, create); err != nil {
			return fail(fmt.Errorf("STS session keys: %w", err))
		}
		if created {
			logger.Info("generated the STS session token key; processes that verify each other's sessions need the same file (--sts.key-file)", "file", keyFile)
		}
	}
	a.auth, err = auth.New(cfg.Auth, auth.Env{Region: cfg.Region, AccountID: cfg.AccountID, DataDir: cfg.DataDir, Sessions: ring},
		a.resources, logger.With("component", "auth"), a.reg)
	if err != nil {
		return fail(fmt.Errorf("setting up authentication: %w", err))
	}
	closers = append(closers, a.auth.Close)
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := a.store.Load(lctx); err != nil {
		return fail(fmt.Errorf("loading metadata from the bucket: %w", err))
	}

	a.limits, err = limits.NewOverrides(cfg.Limits, logger.With("component", "limits"), a.reg)
	if err != nil {
		return fail(fmt.Errorf("loading limits: %w", err))
	}
	use := usage.New(a.reg)
	a.ingester, err = ingester.New(cfg.Ingester, cfg.DataDir, a.limits, a.store, a.bkt, use, logger.With("component", "ingester"), a.reg)
	if err != nil {
		return fail(err)
	}
	a.distrib, err = distributor.New(cfg.Distributor, a.limits, a.store, a.ingester, use, a.bkt, logger.With("component", "distributor"), a.reg)
	if err != nil {
		return fail(err)
	}
	if err := a.distrib.LoadHA(lctx); err != nil {
		return fail(err)
	}

	a.sg, err = storegateway.New(cfg.StoreGateway, cfg.DataDir, a.bkt, logger.With("component", "store-gateway"), a.reg)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, a.sg.Close)

	// Blocks the ingesters still hold locally are compacted once they are gone from
	// local disk, so that no query reads a sample from both.
	ccfg := cfg.Compactor
	ccfg.Hold = cfg.Ingester.TSDB.LocalRetention
	a.compactor, err = compactor.New(ccfg, cfg.DataDir, a.bkt, compactor.StoreWorkspaces{Store: a.store, Limits: a.limits},
		logger.With("component", "compactor"), a.reg, time.Now)
	if err != nil {
		return fail(err)
	}

	a.server, err = server.New(cfg.Server, logger.With("component", "server"), a.reg, a.reg, a.ready)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, a.server.Close)
	// On the public listener the operator endpoints need a signature: /metrics names every
	// workspace.
	a.route(RouteAction{Operation: "metrics", Method: http.MethodGet, Pattern: "/metrics", Action: ActionGetMetrics, Resource: "*"}, a.server.MetricsHandler())
	if h := a.server.ProfilingHandler(); h != nil {
		a.route(RouteAction{Operation: "pprof", Method: http.MethodGet, Pattern: "/debug/pprof/", Action: ActionGetProfile, Resource: "*"}, h)
	}
	if ring != nil {
		// STS authenticates its own requests: its actions are in the body, and
		// AssumeRoleWithWebIdentity is unsigned by design.
		h := sts.New(cfg.STS, sts.Deps{Auth: a.auth, Ring: ring, OIDC: oidc.NewVerifier(nil), Logger: logger.With("component", "sts")})
		a.server.Handle("sts", cfg.STS.Pattern(http.MethodPost), h)
		a.server.Handle("sts", cfg.STS.Pattern(http.MethodGet), h)
	}
	api := controlplane.New(cfg.ControlPlane, controlplane.Env{
		Region:      cfg.Region,
		AccountID:   cfg.AccountID,
		ExternalURL: a.server.ExternalURL(),
	}, a.store, logger.With("component", "controlplane"))
	api.Account = callerAccount
	api.Limits = a.limits
	// Rule files admit what queries admit.
	promql := parser.NewParser(parser.Options{EnableExperimentalFunctions: cfg.Query.EnableExperimentalFunctions})
	api.PromQL = promql
	api.Authorize = func(r *http.Request, action, resource string) error {
		if e := a.auth.Authorize(r, action, resource); e != nil {
			return e
		}
		return nil
	}
	for _, r := range api.Routes() {
		resource := r.Resource
		switch {
		case resource != "":
		case strings.Contains(r.Pattern, "{workspaceId}"):
			resource = "workspace"
		case strings.Contains(r.Pattern, "{resourceArn}"):
			resource = "arn"
		default:
			resource = "*"
		}
		a.route(RouteAction{Operation: r.Operation, Method: r.Method, Pattern: r.Pattern, Action: "aps:" + r.Operation, Resource: resource, RequestTags: r.RequestTags}, r.Handler)
	}
	a.route(RouteAction{Operation: "RemoteWrite", Method: http.MethodPost, Pattern: "/workspaces/{workspaceId}/api/v1/remote_write",
		Action: "aps:RemoteWrite", Resource: "workspace", DataPlane: true}, a.distrib)
	a.querier = querier.New(cfg.Querier, querier.Deps{
		Ingesters:  []querier.Ingester{a.ingester},
		Store:      a.sg,
		Retentions: compactor.StoreWorkspaces{Store: a.store, Limits: a.limits},
	})
	a.query, err = query.New(cfg.Query, query.Deps{
		Queryables: a.querier,
		Workspaces: workspaceExists{a.store},
		Limits:     queryLimits{base: cfg.Query.Limits(), overrides: a.limits},
		Metadata:   a.ingester,
		Exemplars:  a.ingester,
		HeadStats:  a.ingester,
		Principal: func(r *http.Request) string {
			if p, ok := auth.PrincipalFromContext(r.Context()); ok {
				return p.ARN
			}
			return ""
		},
		Logger:     logger.With("component", "query"),
		Registerer: a.reg,
	})
	if err != nil {
		return fail(fmt.Errorf("setting up the query API: %w", err))
	}
	a.decoder = remotewrite.NewDecoder(remotewrite.Options{})
	a.exporter = usage.NewExporter(cfg.Usage, a.reg, a.writeInternal, logger.With("component", "usage"))
	for _, r := range a.query.Routes() {
		a.dataPlaneRoute(r.Operation, r.Method, r.Pattern, r.Handler)
	}
	a.am, err = alertmanager.New(cfg.Alertmanager, alertmanager.Deps{
		Workspaces:  a.store,
		Changes:     a.store.Subscribe(),
		Bucket:      a.bkt,
		DataDir:     cfg.Alertmanager.Dir(cfg.DataDir),
		ExternalURL: a.server.ExternalURL(),
		Limits:      alertmanagerLimits{a.limits},
		Logger:      logger.With("component", "alertmanager"),
		Registerer:  a.reg,
	})
	if err != nil {
		return fail(fmt.Errorf("setting up the alertmanager: %w", err))
	}
	for _, r := range a.am.Routes() {
		a.dataPlaneRoute(r.Operation, r.Method, r.Pattern, r.Handler)
	}
	a.ruler, err = ruler.New(cfg.Ruler, ruler.Deps{
		Store:       a.store,
		Querier:     a.query,
		Queryables:  a.querier,
		Writer:      ruleWriter{dis: a.distrib, decoder: a.decoder},
		Alerts:      alertSender{a.am},
		ExternalURL: a.server.ExternalURL(),
		Logger:      logger.With("component", "ruler"),
		Registerer:  a.reg,
		Parser:      promql,
	})
	if err != nil {
		return fail(fmt.Errorf("setting up the ruler: %w", err))
	}
	for _, r := range a.ruler.Routes() {
		a.dataPlaneRoute(r.Operation, r.Method, r.Pattern, r.Handler)
	}
	hooks := []controlplane.Lifecycle{workspaceHooks{ing: a.ingester, dis: a.distrib, sg: a.sg, comp: a.compactor, ruler: a.ruler, am: a.am}}
	a.recon = controlplane.NewReconciler(a.store, hooks, cfg.Meta.PollInterval, logger.With("component", "reconciler"))
	a.recon.Limits = a.limits
	return a, nil
}

// privateDir creates the data directory readable by its owner only (it holds the root
// key, the WAL and blocks), and tightens one that others can read.
func privateDir(dir string, logger *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, perm&0o700); err != nil {
			return fmt.Errorf("making the data directory private: %w", err)
		}
		logger.Warn("data directory was accessible to other users; made it private", "dir", dir, "was", fmt.Sprintf("%04o", perm), "now", fmt.Sprintf("%04o", perm&0o700))
	}
	return nil
}

// IAM actions of Strata's own operator routes (not AMP's).
const (
	ActionGetMetrics = "strata:GetMetrics"
	ActionGetProfile = "strata:GetProfile"
)

// ready says why the process cannot serve yet, nil when it can.
func (a *App) ready() error {
	if !a.store.Ready() {
		return errors.New("metadata not loaded yet")
	}
	return a.auth.Ready()
}

// Addr is the address the server listens on.
func (a *App) Addr() string { return a.server.Addr().String() }

// InternalAddr is the internal listener's address, "" when there is none.
func (a *App) InternalAddr() string {
	if addr := a.server.InternalAddr(); addr != nil {
		return addr.String()
	}
	return ""
}

// route mounts h behind authentication; Routes lists what was mounted.
func (a *App) route(r RouteAction, h http.Handler) {
	a.routes = append(a.routes, r)
	a.server.Handle(r.Operation, r.Method+" "+r.Pattern, a.authenticated(r, h))
}

// dataPlaneRoute mounts a route of a workspace's data plane, authorized for "aps:" +
// operation on the workspace. The route name in metrics is the path: several paths
// share one IAM action.
func (a *App) dataPlaneRoute(operation, method, pattern string, h http.Handler) {
	name := strings.TrimPrefix(pattern, "/workspaces/{workspaceId}/")
	a.route(RouteAction{Operation: name, Method: method, Pattern: pattern, Action: "aps:" + operation, Resource: "workspace", DataPlane: true}, h)
}

// Routes lists every authenticated route with its IAM action (docs/security.md).
func (a *App) Routes() []RouteAction { return a.routes }

// RootKeyInstructions says where the generated root key is and how to use it; empty
// when the root key came from the environment or there is none.
func (a *App) RootKeyInstructions() string { return a.auth.RootKeyInstructions() }

// Ingester returns the ingester, for tests that read what was stored.
func (a *App) Ingester() *ingester.Ingester { return a.ingester }

// Run serves until ctx is done. Stop order: the HTTP server stops accepting requests and
// drains first; then the background loops stop — the distributor persists its HA
// elections and the ingester closes every TSDB — then the bucket closes. A background
// loop that fails stops the whole process.
func (a *App) Run(ctx context.Context) error {
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		bgErr error
	)
	for name, run := range map[string]func(context.Context) error{
		"meta":        a.store.Run,
		"reconciler":  a.recon.Run,
		"limits":      a.limits.Run,
		"distributor": a.distrib.Run,
		"ingester":    a.ingester.Run,
		"auth":        a.auth.Run,
		"usage":       a.exporter.Run,
		"storegw":     a.sg.Run,
		"compactor":   a.compactor.Run,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(bgCtx); err != nil {
				a.logger.Error("component failed", "component", name, "err", err)
				mu.Lock()
				bgErr = errors.Join(bgErr, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				stopServer()
			}
		}()
	}
	// The ruler and the alertmanager run on contexts of their own and stop first, in
	// that order: the ruler stores its last evaluations through the write path and sends
	// to the alertmanager, which persists its state to the bucket when it stops.
	runOwn := func(name string, run func(context.Context) error) (stop func()) {
		ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := run(ctx); err != nil {
				a.logger.Error("component failed", "component", name, "err", err)
				mu.Lock()
				bgErr = errors.Join(bgErr, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				stopServer()
			}
		}()
		return func() { cancel(); <-done }
	}
	stopRuler := runOwn("ruler", a.ruler.Run)
	stopAM := runOwn("alertmanager", a.am.Run)
	err := a.server.Run(srvCtx)
	stopRuler()
	stopAM()
	stopBackground()
	wg.Wait()
	if cerr := a.query.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing the query API: %w", cerr))
	}
	if cerr := a.auth.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing the audit log: %w", cerr))
	}
	if cerr := a.bkt.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing bucket: %w", cerr))
	}
	return errors.Join(err, bgErr)
}
