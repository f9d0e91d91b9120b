package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/sync/errgroup"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/auth"
	"github.com/stratametrics/strata/internal/auth/oidc"
	"github.com/stratametrics/strata/internal/auth/session"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/controlplane"
	"github.com/stratametrics/strata/internal/distributor"
	"github.com/stratametrics/strata/internal/importer"
	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/ingester"
	"github.com/stratametrics/strata/internal/ingesterapi"
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
	"github.com/stratametrics/strata/internal/sts"
	"github.com/stratametrics/strata/internal/usage"

	"github.com/stratametrics/strata/internal/vendedlogs"

	"github.com/stratametrics/strata/internal/scraper"
)

// Modules: the components a process can run. --target names them, or groups of them.
const (
	ModuleServer        = "server"
	ModuleAuth          = "auth"
	ModuleMeta          = "meta"
	ModuleControlPlane  = "controlplane"
	ModuleDistributor   = "distributor"
	ModuleIngester      = "ingester"
	ModuleQuerier       = "querier"
	ModuleStoreGateway  = "store-gateway"
	ModuleCompactor     = "compactor"
	ModuleRuler         = "ruler"
	ModuleAlertmanager  = "alertmanager"
	moduleBucket        = "bucket"
	moduleLimits        = "limits"
	moduleRouter        = "router"
	moduleUsage         = "usage"
	moduleReconciler    = "reconciler"
	moduleSessionTokens = "sts"
	moduleIngestLog     = "ingest-log"
	moduleConsumer      = "ingest-consumer"
	moduleIngesterAPI   = "ingester-api"
	moduleOwners        = "workspace-owners"
	moduleVendedLogs    = "vended-logs"
	moduleScraper       = "scraper"
)

// Targets that stand for several modules.
const (
	TargetAll     = "all"
	TargetWrite   = "write"
	TargetRead    = "read"
	TargetBackend = "backend"
)

// targetGroups are the targets that name groups of modules.
var targetGroups = map[string][]string{
	TargetAll:     {ModuleDistributor, ModuleIngester, ModuleQuerier, ModuleStoreGateway, ModuleCompactor, ModuleRuler, ModuleAlertmanager},
	TargetWrite:   {ModuleDistributor},
	TargetRead:    {ModuleQuerier, ModuleStoreGateway},
	TargetBackend: {ModuleCompactor, ModuleRuler, ModuleAlertmanager},
}

// targetModules can be named on their own in --target.
var targetModules = []string{ModuleServer, ModuleAuth, ModuleMeta, ModuleControlPlane, ModuleDistributor, ModuleIngester,
	ModuleQuerier, ModuleStoreGateway, ModuleCompactor, ModuleRuler, ModuleAlertmanager}

// targets lists every value --target takes, for the flag's help and errors.
var targets = append([]string{TargetAll, TargetWrite, TargetRead, TargetBackend}, targetModules...)

// alwaysOn are the modules of every process: it answers /ready and /metrics, signs and
// authorizes requests, sees the workspaces, and serves the control plane.
var alwaysOn = []string{ModuleServer, ModuleAuth, ModuleMeta, ModuleControlPlane}

// resolveTargets turns --target into the modules this process runs (without the
// modules they depend on), or says why the combination cannot run with the ingest
// backend.
func resolveTargets(target, backend string) ([]string, error) {
	set := map[string]bool{}
	for _, t := range strings.Split(target, ",") {
		t = strings.TrimSpace(t)
		switch {
		case targetGroups[t] != nil:
			for _, m := range targetGroups[t] {
				set[m] = true
			}
		case slices.Contains(targetModules, t):
			set[t] = true
		default:
			return nil, fmt.Errorf("unknown target %q (known: %s)", t, strings.Join(targets, ", "))
		}
	}
	direct := backend != ingestlog.BackendJetStream
	if !direct && set[ModuleRuler] {
		// The ruler evaluates through a querier (reading the ingesters of other
		// processes and the bucket), writes through a distributor and alerts through an
		// alertmanager, all of its own process: it brings them.
		for _, m := range []string{ModuleDistributor, ModuleQuerier, ModuleStoreGateway, ModuleAlertmanager} {
			set[m] = true
		}
	}
	switch {
	case direct && set[ModuleDistributor] && !set[ModuleIngester]:
		return nil, errors.New("with --ingest.backend=direct the distributor hands its batches to an ingester in the same process: run distributor with ingester (write,ingester), or all, or use --ingest.backend=jetstream")
	case direct && set[ModuleIngester] && !set[ModuleDistributor]:
		return nil, errors.New("with --ingest.backend=direct an ingester receives its samples from a distributor in the same process: run ingester with distributor (write,ingester), or all, or use --ingest.backend=jetstream")
	case set[ModuleRuler] && direct && (!set[ModuleDistributor] || !set[ModuleQuerier] || !set[ModuleAlertmanager] || !set[ModuleIngester]):
		// With the direct backend only this process' ingester holds the recent samples.
		return nil, errors.New("with --ingest.backend=direct the ruler evaluates through a querier reading the ingester, writes through a distributor and alerts through an alertmanager, all in the same process: run it in all, or use --ingest.backend=jetstream")
	}
	mods := slices.Clone(alwaysOn)
	for _, m := range targetModules {
		if set[m] && !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	return mods, nil
}

// registerModules registers the modules of the process, given the ones it runs (with
// resolveTargets): a module's dependencies on optional peers (the querier reads the
// ingester if this process has one) follow from what runs.
func (a *App) registerModules(ctx context.Context, m *modules.Manager, run []string) {
	cfg, logger := a.cfg, a.logger
	has := func(name string) bool { return slices.Contains(run, name) }
	present := func(names ...string) []string {
		var out []string
		for _, n := range names {
			if has(n) {
				out = append(out, n)
			}
		}
		return out
	}
	use := usage.New(a.reg)
	var ring *session.Ring

	m.Register(moduleBucket, modules.Module{
		Init: func() (modules.Service, error) {
			if err := privateDir(cfg.DataDir, logger); err != nil {
				return nil, err
			}
			var err error
			if a.bkt, err = bucket.New(cfg.Bucket, cfg.DataDir, logger); err != nil {
				return nil, fmt.Errorf("opening bucket: %w", err)
			}
			return nil, nil
		},
		Close: func() error { return a.bkt.Close() },
	})
	jetStream := cfg.Ingest.Backend == ingestlog.BackendJetStream
	metaDeps := []string{moduleBucket}
	if jetStream {
		metaDeps = append(metaDeps, moduleIngestLog)
	}
	m.Register(ModuleMeta, modules.Module{
		Deps: metaDeps,
		Init: func() (modules.Service, error) {
			a.store = meta.New(cfg.Meta, a.bkt, logger.With("component", "meta"), a.reg)
			if jetStream {
				// Processes sharing the bucket write the records by compare-and-set of
				// their heads in JetStream, and read each other's writes as the heads move.
				a.store.UseHeads(ingestlog.NewMetaHeads(a.ingestLog))
			}
			a.resources = newResources(a.store, cfg.Region, cfg.AccountID)
			if jetStream {
				// The heads need the cluster's JetStream, which may form only once the
				// other processes start: Run loads when it can, and /ready waits for it.
				return modules.ServiceFunc(a.store.Run), nil
			}
			lctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := a.store.Load(lctx); err != nil {
				return nil, fmt.Errorf("loading metadata from the bucket: %w", err)
			}
			return modules.ServiceFunc(a.store.Run), nil
		},
	})
	m.Register(moduleLimits, modules.Module{
		Init: func() (modules.Service, error) {
			var err error
			if a.limits, err = limits.NewOverrides(cfg.Limits, logger.With("component", "limits"), a.reg); err != nil {
				return nil, fmt.Errorf("loading limits: %w", err)
			}
			return modules.ServiceFunc(a.limits.Run), nil
		},
	})
	m.Register(ModuleAuth, modules.Module{
		Deps: []string{ModuleMeta},
		Init: func() (modules.Service, error) {
			if cfg.STS.Enabled {
				keyFile, create := cfg.STS.KeyFile, false
				if keyFile == "" {
					keyFile, create = filepath.Join(cfg.DataDir, session.KeyFileName), true
				}
				var created bool
				var err error
				if ring, created, err = session.LoadOrCreateRing(keyFile, create); err != nil {
					return nil, fmt.Errorf("STS session keys: %w", err)
				}
				if created {
					logger.Info("generated the STS session token key; processes that verify each other's sessions need the same file (--sts.key-file)", "file", keyFile)
				}
			}
			var err error
			a.auth, err = auth.New(cfg.Auth, auth.Env{Region: cfg.Region, AccountID: cfg.AccountID, DataDir: cfg.DataDir, Sessions: ring},
				a.resources, logger.With("component", "auth"), a.reg)
			if err != nil {
				return nil, fmt.Errorf("setting up authentication: %w", err)
			}
			return modules.ServiceFunc(a.auth.Run), nil
		},
		Close: func() error {
			if err := a.auth.Close(); err != nil {
				return fmt.Errorf("closing the audit log: %w", err)
			}
			return nil
		},
	})
	// The router is the HTTP server before it serves: modules mount their routes on it
	// while they are initialised; the server module serves them once all have started.
	m.Register(moduleRouter, modules.Module{
		Deps: []string{ModuleAuth},
		Init: func() (modules.Service, error) {
			var err error
			if a.server, err = server.New(cfg.Server, logger.With("component", "server"), a.reg, a.reg, a.ready); err != nil {
				return nil, err
			}
			// On the public listener the operator endpoints need a signature: /metrics
			// names every workspace.
			a.route(RouteAction{Operation: "metrics", Method: http.MethodGet, Pattern: "/metrics", Action: ActionGetMetrics, Resource: "*"}, a.server.MetricsHandler())
			if h := a.server.ProfilingHandler(); h != nil {
				a.route(RouteAction{Operation: "pprof", Method: http.MethodGet, Pattern: "/debug/pprof/", Action: ActionGetProfile, Resource: "*"}, h)
			}
			return nil, nil
		},
		Close: func() error {
			if a.served {
				return nil // Run closed the listeners
			}
			return a.server.Close()
		},
	})
	m.Register(moduleSessionTokens, modules.Module{
		Deps: []string{moduleRouter},
		Init: func() (modules.Service, error) {
			if ring == nil {
				return nil, nil
			}
			// STS authenticates its own requests: its actions are in the body, and
			// AssumeRoleWithWebIdentity is unsigned by design.
			h := sts.New(cfg.STS, sts.Deps{Auth: a.auth, Ring: ring, OIDC: oidc.NewVerifier(nil), Logger: logger.With("component", "sts")})
			a.server.Handle("sts", cfg.STS.Pattern(http.MethodPost), h)
			a.server.Handle("sts", cfg.STS.Pattern(http.MethodGet), h)
			return nil, nil
		},
	})
	// Rule files admit what queries admit.
	promql := parser.NewParser(parser.Options{EnableExperimentalFunctions: cfg.Query.EnableExperimentalFunctions})
	m.Register(moduleVendedLogs, modules.Module{
		Deps: []string{ModuleMeta},
		Init: func() (modules.Service, error) {
			vcfg := cfg.Logs
			if vcfg.Dir == "" {
				vcfg.Dir = filepath.Join(cfg.DataDir, "logs")
			}
			a.vlogs = vendedlogs.New(vcfg, a.store, a.reg, logger.With("component", "vended-logs"))
			if vcfg.CloudWatchEndpoint != "" {
				client, err := vendedlogs.NewCloudWatchClient(ctx, vcfg.CloudWatchEndpoint, cfg.Region)
				if err != nil {
					return nil, err
				}
				a.vlogs.UseCloudWatch(client)
			}
			// It writes what is queued when it stops, after the components that log.
			return modules.ServiceFunc(a.vlogs.Run), nil
		},
	})
	m.Register(ModuleControlPlane, modules.Module{
		Deps: []string{ModuleMeta, moduleLimits, moduleRouter, moduleSessionTokens, moduleVendedLogs},
		Init: func() (modules.Service, error) {
			api := controlplane.New(cfg.ControlPlane, controlplane.Env{
				Region:      cfg.Region,
				AccountID:   cfg.AccountID,
				ExternalURL: a.server.ExternalURL(),
			}, a.store, logger.With("component", "controlplane"))
			api.Account = callerAccount
			api.Limits = a.limits
			api.LogGroups = a.vlogs
			api.CheckRoles = a.scraperRoles
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
			return nil, nil
		},
	})
	m.Register(ModuleIngester, modules.Module{
		Deps: []string{ModuleMeta, moduleLimits, moduleBucket},
		Init: func() (modules.Service, error) {
			var err error
			a.ingester, err = ingester.New(cfg.Ingester, cfg.DataDir, a.limits, a.store, a.bkt, use, logger.With("component", "ingester"), a.reg)
			if err != nil {
				return nil, err
			}
			return modules.ServiceFunc(a.ingester.Run), nil
		},
	})
	m.Register(moduleUsage, modules.Module{
		Deps: []string{ModuleIngester},
		Init: func() (modules.Service, error) {
			a.exporter = usage.NewExporter(cfg.Usage, a.reg, a.writeInternal, logger.With("component", "usage"))
			return modules.ServiceFunc(a.exporter.Run), nil
		},
	})
	m.Register(moduleIngestLog, modules.Module{
		Init: func() (modules.Service, error) {
			var err error
			if a.ingestLog, err = ingestlog.Open(ctx, cfg.Ingest, cfg.DataDir, logger.With("component", "ingest-log")); err != nil {
				return nil, fmt.Errorf("opening the ingest log: %w", err)
			}
			return modules.ServiceFunc(a.ingestLog.Run), nil
		},
		Close: func() error { return a.ingestLog.Close() },
	})
	var (
		consumer *ingestlog.Consumer
		leases   *ingestlog.Leases
		members  *ingestlog.Membership
		selfURL  string
	)
	// answering lists the partitions this process' ingester answers queries for: those
	// it owns and has caught up on.
	answering := func() []int {
		var out []int
		for _, p := range leases.Assigned() {
			if leases.Owned(p) && consumer.CaughtUpOn(p) {
				out = append(out, p)
			}
		}
		return out
	}
	m.Register(moduleConsumer, modules.Module{
		// It stops before the ingester: a batch read but not stored is sent again. The
		// ingester reads the partitions it owns among the ingesters of its zone.
		Deps: []string{ModuleIngester, moduleIngestLog, moduleRouter},
		Init: func() (modules.Service, error) {
			var err error
			if selfURL, err = a.advertiseURL(); err != nil {
				return nil, err
			}
			zone := cmp.Or(cfg.Zone, selfURL) // without a zone, a zone of its own: it reads every partition
			members = ingestlog.NewMembership(a.ingestLog, zone, nil)
			consumer = ingestlog.NewConsumer(a.ingestLog, filepath.Join(cfg.DataDir, "ingest-log"), a.ingester, logger.With("component", "ingest-consumer"), a.reg)
			leases = ingestlog.NewLeases(a.ingestLog, selfURL, zone, members, consumer.CaughtUpOn)
			a.leases, a.consumer, a.members = leases, consumer, members
			consumer.Assign(leases)
			// A partition it takes over without having read it is replayed from the
			// partition's shipped mark: before it, all is in the bucket.
			consumer.Replay(ingestlog.Replay{
				Marks:    ingestlog.NewShippedMarks(a.ingestLog, zone),
				Ingester: a.ingester,
				Margin:   cfg.Ingest.ReplayMargin,
				Settle:   2 * cfg.StoreGateway.SyncInterval,
				Recent:   cfg.Querier.QueryStoreAfter,
			})
			// The zone's ingesters share the series, so they share the series limits.
			a.ingester.SetLimitShare(func() (int, int) { return leases.Count(), cfg.Ingest.Partitions })
			return modules.ServiceFunc(func(ctx context.Context) error {
				g, gctx := errgroup.WithContext(ctx)
				g.Go(func() error { return members.Watch(gctx) })
				g.Go(func() error { return leases.Run(gctx) })
				g.Go(func() error { return consumer.Run(gctx) })
				return g.Wait()
			}), nil
		},
	})
	m.Register(moduleIngesterAPI, modules.Module{
		// Queriers of other processes read this ingester; it says where in the ingesters
		// bucket, with the partitions it owns and has caught up on.
		Deps: []string{moduleConsumer},
		Init: func() (modules.Service, error) {
			h := ingesterapi.NewHandler(a.ingester, cfg.Ingest.JetStream.Token, logger.With("component", "ingester-api")).Answering(answering)
			a.server.Handle("IngesterAPI", "POST /internal/ingester/v1/", h)
			return modules.ServiceFunc(func(ctx context.Context) error {
				logger.Info("ingester registered for queriers of other processes", "url", selfURL, "zone", cmp.Or(cfg.Zone, selfURL))
				return members.Register(ctx, selfURL, selfURL, answering)
			}), nil
		},
	})
	pusherDep := ModuleIngester
	if jetStream {
		pusherDep = moduleIngestLog
	}
	m.Register(ModuleDistributor, modules.Module{
		Deps: []string{pusherDep, ModuleMeta, moduleLimits, moduleBucket, moduleRouter, moduleVendedLogs},
		Init: func() (modules.Service, error) {
			var pusher ingest.Pusher = a.ingester
			if jetStream {
				pusher = ingestlog.NewPublisher(a.ingestLog)
			}
			var err error
			a.distrib, err = distributor.New(cfg.Distributor, a.limits, a.store, pusher, use, a.bkt, logger.With("component", "distributor"), a.reg)
			if err != nil {
				return nil, err
			}
			a.distrib.UseEvents(a.vlogs)
			if jetStream {
				// Distributors of several processes agree on HA elections.
				a.distrib.UseHAStore(ingestlog.NewHAStore(a.ingestLog))
			}
			lctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := a.distrib.LoadHA(lctx); err != nil {
				return nil, err
			}
			a.route(RouteAction{Operation: "RemoteWrite", Method: http.MethodPost, Pattern: "/workspaces/{workspaceId}/api/v1/remote_write",
				Action: "aps:RemoteWrite", Resource: "workspace", DataPlane: true}, a.distrib)
			// Blocks of `strata migrate backfill`, next to the samples of remote write.
			imp, err := importer.New(cfg.Import, filepath.Join(cfg.DataDir, "import"), a.bkt,
				compactor.StoreWorkspaces{Store: a.store, Limits: a.limits}, logger.With("component", "importer"), a.reg)
			if err != nil {
				return nil, err
			}
			for _, r := range imp.Routes() {
				a.route(RouteAction{Operation: r.Name, Method: r.Method, Pattern: r.Pattern,
					Action: "aps:ImportBlocks", Resource: "workspace", DataPlane: true}, r.Handler)
			}
			return modules.ServiceFunc(a.distrib.Run), nil
		},
	})
	m.Register(ModuleStoreGateway, modules.Module{
		Deps: []string{moduleBucket},
		Init: func() (modules.Service, error) {
			var err error
			if a.sg, err = storegateway.New(cfg.StoreGateway, cfg.DataDir, a.bkt, logger.With("component", "store-gateway"), a.reg); err != nil {
				return nil, err
			}
			return modules.ServiceFunc(a.sg.Run), nil
		},
		Close: func() error { return a.sg.Close() },
	})
	compactorDeps := []string{moduleBucket, ModuleMeta, moduleLimits}
	if jetStream {
		compactorDeps = append(compactorDeps, moduleIngestLog, moduleRouter)
	}
	m.Register(ModuleCompactor, modules.Module{
		Deps: compactorDeps,
		Init: func() (modules.Service, error) {
			// Blocks the ingesters still hold locally are compacted once they are gone
			// from local disk, so that no query reads a sample from both.
			ccfg := cfg.Compactor
			ccfg.Hold = cfg.Ingester.TSDB.LocalRetention
			var err error
			a.compactor, err = compactor.New(ccfg, cfg.DataDir, a.bkt, compactor.StoreWorkspaces{Store: a.store, Limits: a.limits},
				logger.With("component", "compactor"), a.reg, time.Now)
			if err != nil {
				return nil, err
			}
			if jetStream {
				// Compactors of several processes share the bucket: one works a
				// workspace at a time.
				self, err := a.advertiseURL()
				if err != nil {
					return nil, err
				}
				a.compactor.UseLocker(ingestlog.NewWorkspaceLocks(a.ingestLog, "compactor", self))
			}
			return modules.ServiceFunc(a.compactor.Run), nil
		},
	})
	// In distributed mode a querier reads ingesters that together own every partition:
	// its own process' in process, the others' over the network.
	querierDeps := append([]string{ModuleStoreGateway, ModuleMeta, moduleLimits, moduleRouter, moduleVendedLogs}, present(ModuleIngester)...)
	if jetStream {
		querierDeps = append(querierDeps, moduleIngestLog)
		if has(ModuleIngester) {
			querierDeps = append(querierDeps, moduleConsumer)
		}
	}
	m.Register(ModuleQuerier, modules.Module{
		Deps: querierDeps,
		Init: func() (modules.Service, error) {
			var svc modules.Service
			retentions := compactor.StoreWorkspaces{Store: a.store, Limits: a.limits}
			deps := querier.Deps{Store: a.sg, Retentions: retentions}
			qdeps := query.Deps{
				Workspaces: workspaceExists{a.store},
				Limits:     queryLimits{base: cfg.Query.Limits(), overrides: a.limits},
				Principal: func(r *http.Request) string {
					if p, ok := auth.PrincipalFromContext(r.Context()); ok {
						return p.ARN
					}
					return ""
				},
				Logger:     logger.With("component", "query"),
				Registerer: a.reg,
				QueryLog:   a.vlogs,
				// A cached answer holds the samples of the retention it was made under.
				CacheVersion: resultsCacheVersion(a.store, retentions, a.sg, time.Now),
				Retentions:   retentions,
			}
			if a.ingester != nil {
				deps.Ingesters = []querier.Ingester{a.ingester}
				qdeps.Metadata, qdeps.Exemplars, qdeps.HeadStats = a.ingester, a.ingester, a.ingester
			}
			if jetStream {
				ms := members // this process' ingester's, watched with its leases
				if ms == nil {
					ms = ingestlog.NewMembership(a.ingestLog, cfg.Zone, nil)
					a.members = ms
					svc = modules.ServiceFunc(ms.Watch)
				}
				c := ingesterapi.NewClient(ms, cfg.Ingest.JetStream.Token, cfg.Querier.IngesterTimeout, nil)
				if a.ingester != nil {
					c.WithLocal(selfURL, a.ingester).LocalAnswering(answering)
				}
				deps.Ingesters = []querier.Ingester{c}
				// Metadata and exemplars from the ingesters of every partition too; the
				// head statistics stay this process' ingester's.
				qdeps.Metadata, qdeps.Exemplars = c, c
			}
			a.querier = querier.New(cfg.Querier, deps)
			qdeps.Queryables = a.querier
			var err error
			if a.query, err = query.New(cfg.Query, qdeps); err != nil {
				return nil, fmt.Errorf("setting up the query API: %w", err)
			}
			for _, r := range a.query.Routes() {
				a.dataPlaneRoute(r.Operation, r.Method, r.Pattern, r.Handler)
			}
			return svc, nil
		},
		Close: func() error {
			if err := a.query.Close(); err != nil {
				return fmt.Errorf("closing the query API: %w", err)
			}
			return nil
		},
	})
	// In a cluster each workspace's ruler and Alertmanager run in one process at a time.
	owned := jetStream && has(ModuleAlertmanager)
	var ownerDeps []string
	if owned {
		ownerDeps = []string{moduleOwners}
		m.Register(moduleOwners, modules.Module{
			Deps: []string{moduleIngestLog, ModuleMeta, moduleRouter},
			Init: func() (modules.Service, error) {
				self, err := a.advertiseURL()
				if err != nil {
					return nil, err
				}
				a.owners = ingestlog.NewWorkspaceOwners(a.ingestLog, self, logger.With("component", "workspace-owners"))
				a.ownerMux = http.NewServeMux()
				a.server.Handle("OwnerForward", ownerForwardPrefix+"/", a.ownerHandler())
				withRuler, withScrapers, changed := has(ModuleRuler), cfg.Scraper.Enabled && has(ModuleDistributor), a.store.Subscribe()
				return modules.ServiceFunc(func(ctx context.Context) error {
					return a.owners.Run(ctx, func() []ingestlog.Weighted { return a.ownedWorkspaces(withRuler, withScrapers) }, changed)
				}), nil
			},
		})
	}
	m.Register(ModuleAlertmanager, modules.Module{
		Deps: append([]string{ModuleMeta, moduleBucket, moduleLimits, moduleRouter, moduleVendedLogs}, ownerDeps...),
		Init: func() (modules.Service, error) {
			var err error
			var owners alertmanager.Owners
			if a.owners != nil {
				owners = a.owners
			}
			a.am, err = alertmanager.New(cfg.Alertmanager, alertmanager.Deps{
				Workspaces:  a.store,
				Changes:     a.store.Subscribe(),
				Owners:      owners,
				Bucket:      a.bkt,
				DataDir:     cfg.Alertmanager.Dir(cfg.DataDir),
				ExternalURL: a.server.ExternalURL(),
				Limits:      alertmanagerLimits{a.limits},
				Events:      a.vlogs,
				Logger:      logger.With("component", "alertmanager"),
				Registerer:  a.reg,
			})
			if err != nil {
				return nil, fmt.Errorf("setting up the alertmanager: %w", err)
			}
			for _, r := range a.am.Routes() {
				a.ownedRoute(r.Operation, r.Method, r.Pattern, r.Handler, nil)
			}
			// It persists its state to the bucket when it stops.
			return modules.ServiceFunc(a.am.Run), nil
		},
	})
	m.Register(ModuleRuler, modules.Module{
		// It stops before all three: it stores its last evaluations through the write
		// path and sends to the alertmanager.
		Deps: append([]string{ModuleQuerier, ModuleDistributor, ModuleAlertmanager, ModuleMeta, moduleRouter, moduleVendedLogs}, ownerDeps...),
		Init: func() (modules.Service, error) {
			var err error
			var owners ruler.Owners
			if a.owners != nil {
				owners = a.owners
			}
			a.ruler, err = ruler.New(cfg.Ruler, ruler.Deps{
				Owners:      owners,
				Store:       a.store,
				Querier:     a.query,
				Queryables:  a.querier,
				Writer:      ruleWriter{dis: a.distrib, decoder: remotewrite.NewDecoder(remotewrite.Options{})},
				Alerts:      alertSender{a.am},
				ExternalURL: a.server.ExternalURL(),
				Logger:      logger.With("component", "ruler"),
				Registerer:  a.reg,
				Parser:      promql,
				Events:      a.vlogs,
			})
			if err != nil {
				return nil, fmt.Errorf("setting up the ruler: %w", err)
			}
			for _, r := range a.ruler.Routes() {
				a.ownedRoute(r.Operation, r.Method, r.Pattern, r.Handler, a.withoutRules)
			}
			return modules.ServiceFunc(a.ruler.Run), nil
		},
	})
	// Managed scrapers write through this process' distributor: in a cluster each runs
	// in the process owning its destination workspace, so only where owners are kept.
	scrapers := cfg.Scraper.Enabled && has(ModuleDistributor) && (!jetStream || owned)
	if scrapers {
		m.Register(moduleScraper, modules.Module{
			Deps: append([]string{ModuleMeta, ModuleDistributor, moduleVendedLogs}, ownerDeps...),
			Init: func() (modules.Service, error) {
				var owners scraper.Owners
				if a.owners != nil {
					owners = a.owners
				}
				var err error
				a.scrapers, err = scraper.New(cfg.Scraper, scraper.Deps{
					Workspaces: a.store,
					Changes:    a.store.Subscribe(),
					Writer:     ruleWriter{dis: a.distrib, decoder: remotewrite.NewDecoder(remotewrite.Options{})},
					Owners:     owners,
					Events:     a.vlogs,
					Logger:     logger.With("component", "scraper"),
					Registerer: a.reg,
					DataDir:    cfg.DataDir,
				})
				if err != nil {
					return nil, err
				}
				return modules.ServiceFunc(a.scrapers.Run), nil
			},
		})
	}
	lifecycle := present(ModuleIngester, ModuleDistributor, ModuleStoreGateway, ModuleCompactor, ModuleRuler, ModuleAlertmanager, ModuleQuerier)
	if scrapers {
		lifecycle = append(lifecycle, moduleScraper)
	}
	m.Register(moduleReconciler, modules.Module{
		Deps: append([]string{ModuleMeta, moduleLimits, moduleVendedLogs}, lifecycle...),
		Init: func() (modules.Service, error) {
			hooks := []controlplane.Lifecycle{workspaceHooks{ing: a.ingester, dis: a.distrib, sg: a.sg, comp: a.compactor, ruler: a.ruler, am: a.am, query: a.query}}
			a.recon = controlplane.NewReconciler(a.store, hooks, cfg.Meta.PollInterval, logger.With("component", "reconciler"))
			a.recon.Limits = a.limits
			a.recon.LogGroups = a.vlogs
			if a.scrapers != nil {
				a.recon.Scrapers = a.scrapers
			}
			return modules.ServiceFunc(a.recon.Run), nil
		},
	})
	// The server serves once everything else has started and stops first, draining the
	// requests in flight before any component stops.
	others := append(present(targetModules...), moduleReconciler, moduleSessionTokens)
	if has(ModuleIngester) {
		others = append(others, moduleUsage)
		if jetStream {
			others = append(others, moduleConsumer, moduleIngesterAPI)
		}
	}
	others = slices.DeleteFunc(others, func(n string) bool { return n == ModuleServer })
	m.Register(ModuleServer, modules.Module{
		Deps: append([]string{moduleRouter}, others...),
		Init: func() (modules.Service, error) {
			return modules.ServiceFunc(func(ctx context.Context) error {
				a.served = true
				return a.server.Run(ctx)
			}), nil
		},
	})
}
