package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/auth"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/controlplane"
	"github.com/stratametrics/strata/internal/distributor"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/ingester"
	"github.com/stratametrics/strata/internal/ingestlog"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/modules"
	"github.com/stratametrics/strata/internal/querier"
	"github.com/stratametrics/strata/internal/query"
	"github.com/stratametrics/strata/internal/remotewrite"
	"github.com/stratametrics/strata/internal/ruler"
	"github.com/stratametrics/strata/internal/server"
	"github.com/stratametrics/strata/internal/storegateway"
	"github.com/stratametrics/strata/internal/usage"
	"github.com/stratametrics/strata/internal/version"

	"github.com/stratametrics/strata/internal/vendedlogs"

	"github.com/stratametrics/strata/internal/scraper"
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

// App is a running set of components: the modules --target names. A component this
// process does not run is nil.
type App struct {
	cfg     *Config
	logger  *slog.Logger
	reg     *prometheus.Registry
	modules *modules.Manager
	// served is set once the server module runs: it closes its listeners when it stops.
	served    bool
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
	ruler     *ruler.Ruler
	ingestLog *ingestlog.Log        // nil with the direct ingest backend
	leases    *ingestlog.Leases     // the partitions this process' ingester owns; nil without
	consumer  *ingestlog.Consumer   // what reads them; nil without
	members   *ingestlog.Membership // the ingesters this process' queriers know; nil without the ingest log
	am        *alertmanager.MultiTenant
	// owners says which workspaces' ruler and Alertmanager run in this process, in a
	// cluster (jetstream); nil otherwise. ownerMux serves their routes without
	// authentication, to requests other processes forward with the cluster key.
	owners *ingestlog.WorkspaceOwners
	// ruleCounts are the workspaces' rule counts, their weights for owners.
	ruleCounts ruleCounts
	ownerMux   *http.ServeMux
	// vlogs writes the records of the workspaces' logging configurations.
	vlogs *vendedlogs.Logs
	// scrapers runs the managed scrapers; nil where they do not run.
	scrapers *scraper.Manager
}

// writeInternal stores a request in a workspace without authentication or quotas: Strata
// writing its own usage series.
func (a *App) writeInternal(ctx context.Context, workspace string, req *prompb.WriteRequest) error {
	b, err := req.Marshal()
	if err != nil {
		return err
	}
	var r remotewrite.Request
	if err := r.Unmarshal(remotewrite.V1, b); err != nil {
		return err
	}
	res, err := a.ingester.Push(ctx, workspace, &r, ingest.Options{})
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
	query *query.API
}

func (h workspaceHooks) Provision(ctx context.Context, ws meta.Workspace) error {
	if h.ing == nil {
		return nil
	}
	return h.ing.Provision(ctx, ws)
}

func (h workspaceHooks) Reconfigure(ctx context.Context, ws meta.Workspace) error {
	if h.query != nil {
		h.query.Invalidate(ws.ID) // its retention may have changed
	}
	if h.ing == nil {
		return nil
	}
	return h.ing.Reconfigure(ctx, ws)
}

// Deprovision stops ingestion before removing data, in the components this process runs.
func (h workspaceHooks) Deprovision(ctx context.Context, id string) error {
	if h.query != nil {
		h.query.Invalidate(id)
	}
	if h.ruler != nil {
		h.ruler.DeleteWorkspace(id)
	}
	if h.am != nil {
		if err := h.am.DeleteWorkspace(ctx, id); err != nil {
			return err
		}
	}
	if h.dis != nil {
		h.dis.DeleteWorkspace(id)
	}
	if h.ing != nil {
		if err := h.ing.Deprovision(ctx, id); err != nil {
			return err
		}
	}
	if h.sg != nil {
		if err := h.sg.DeleteWorkspace(id); err != nil {
			return err
		}
	}
	if h.comp == nil {
		return nil
	}
	// Every object of the workspace in the bucket goes with it, as in AMP.
	return h.comp.DeleteWorkspace(ctx, id)
}

// New opens the bucket, loads the metadata, binds the listener and builds the modules
// --target names, with the modules they depend on. Nothing runs until Run.
func New(ctx context.Context, cfg *Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	run, err := resolveTargets(cfg.Target, cfg.Ingest.Backend)
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: target: %w", err)
	}
	a := &App{cfg: cfg, logger: logger, reg: prometheus.NewRegistry(), modules: modules.New()}
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := version.Get()
	promauto.With(a.reg).NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_build_info",
		Help: "A metric with a constant 1 value labeled by the version, revision and Go version Strata was built from.",
	}, []string{"version", "revision", "goversion"}).WithLabelValues(info.Version, info.Revision, info.GoVersion).Set(1)
	a.registerModules(ctx, a.modules, run)
	if err := a.modules.Init(run...); err != nil {
		return nil, err
	}
	logger.Info("modules initialised", "target", cfg.Target, "modules", strings.Join(a.modules.Initialised(), ","))
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

// Run serves until ctx is done or a module fails, which stops the process. The modules
// start in dependency order and stop in reverse: the HTTP server stops accepting
// requests and drains first; the ruler stores its last evaluations and sends its last
// alerts before the distributor and the alertmanager stop; the alertmanager persists its
// state, the distributor its HA elections, the ingester closes every TSDB; the bucket
// closes last.
func (a *App) Run(ctx context.Context) error {
	return a.modules.Run(ctx)
}

// advertiseURL is the URL other processes reach this one at: --advertise-url, or the
// listener's address, with the host name when it listens on all interfaces.
func (a *App) advertiseURL() (string, error) {
	if a.cfg.AdvertiseURL != "" {
		return strings.TrimSuffix(a.cfg.AdvertiseURL, "/"), nil
	}
	host, port, err := net.SplitHostPort(a.server.Addr().String())
	if err != nil {
		return "", fmt.Errorf("the listener's address: %w", err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("listening on all interfaces and no host name to advertise (set --advertise-url): %w", err)
		}
	}
	scheme := "http"
	if a.server.TLS() {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}
