package app

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/ingesterapi"
	"github.com/stratametrics/strata/internal/ingestlog"
	"github.com/stratametrics/strata/internal/ruler"
)

// ownerForwardPrefix prefixes the path of a request forwarded to a workspace's owner.
const ownerForwardPrefix = "/internal/owner"

// ownedWorkspaces returns the workspaces whose owner this process can be: with rules
// (when it runs a ruler) or an alert manager definition. A process without a ruler
// takes none with rules, which it could not evaluate. Each weighs what owning it costs:
// 1, plus its rules where they are evaluated, plus its scrapers where they run.
func (a *App) ownedWorkspaces(withRuler, withScrapers bool) []ingestlog.Weighted {
	var out []ingestlog.Weighted
	a.ruleCounts.mu.Lock()
	defer a.ruleCounts.mu.Unlock()
	counts := make(map[string]ruleCount, len(a.ruleCounts.m))
	for _, ws := range a.store.ListWorkspaces() {
		rules := ruler.HasRules(ws)
		if !(rules && withRuler) && !(!rules && alertmanager.HasDefinition(ws)) && !(withScrapers && len(ws.Scrapers) > 0) {
			continue
		}
		w := 1
		if rules && withRuler {
			// Counted again only when the record changed.
			c, ok := a.ruleCounts.m[ws.ID]
			if !ok || !c.updatedAt.Equal(ws.UpdatedAt) {
				c = ruleCount{updatedAt: ws.UpdatedAt, rules: ruler.RuleCount(ws)}
			}
			counts[ws.ID] = c
			w += c.rules
		}
		if withScrapers {
			w += len(ws.Scrapers)
		}
		out = append(out, ingestlog.Weighted{ID: ws.ID, Weight: w})
	}
	a.ruleCounts.m = counts
	return out
}

// ruleCounts caches the rule count of each workspace record (ruler.RuleCount decodes
// its rule files) for ownedWorkspaces.
type ruleCounts struct {
	mu sync.Mutex
	m  map[string]ruleCount
}

type ruleCount struct {
	updatedAt time.Time // of the record counted
	rules     int
}

// ownedRoute mounts a data-plane route served by the workspace's owner (its ruler's
// rules and alerts, its Alertmanager's API): a process that does not own the workspace
// forwards the request, once authenticated and authorized, to the one that does. local,
// when set, names the workspaces whose requests any process answers itself.
func (a *App) ownedRoute(operation, method, pattern string, h http.Handler, local func(workspace string) bool) {
	if a.owners == nil {
		a.dataPlaneRoute(operation, method, pattern, h)
		return
	}
	a.ownerMux.Handle(method+" "+pattern, h)
	a.dataPlaneRoute(operation, method, pattern, a.toOwner(h, local))
}

// withoutRules reports whether a workspace has no rules: its rules API answers empty
// wherever it is asked, even where its owner runs only an Alertmanager.
func (a *App) withoutRules(workspace string) bool {
	ws, ok := a.store.PeekWorkspace(workspace)
	return !ok || !ruler.HasRules(ws)
}

// toOwner serves the request with h when this process owns the workspace, nobody does
// (h then answers as for a workspace without rules or Alertmanager) or local says so,
// and forwards it to the owner otherwise.
func (a *App) toOwner(h http.Handler, local func(string) bool) http.Handler {
	self, _ := a.advertiseURL()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws := r.PathValue("workspaceId")
		if a.owners.Owns(ws) || (local != nil && local(ws)) {
			h.ServeHTTP(w, r)
			return
		}
		owner, ok, err := a.owners.Owner(r.Context(), ws)
		if err != nil {
			a.logger.Warn("finding the owner of a workspace", "workspace", ws, "err", err)
			http.Error(w, "the owner of the workspace cannot be found now; retry", http.StatusServiceUnavailable)
			return
		}
		if !ok || owner == self {
			h.ServeHTTP(w, r)
			return
		}
		target, err := url.Parse(owner)
		if err != nil {
			http.Error(w, "the owner of the workspace has an invalid URL", http.StatusBadGateway)
			return
		}
		a.forwarder(target).ServeHTTP(w, r)
	})
}

// forwarder returns a proxy to target's owner routes: the request goes with the cluster
// key in place of the caller's credentials, which the owner does not check again.
func (a *App) forwarder(target *url.URL) http.Handler {
	key := a.cfg.Ingest.JetStream.Token
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + ownerForwardPrefix + pr.In.URL.Path
			pr.Out.URL.RawPath = ""
			for name := range pr.Out.Header {
				if strings.HasPrefix(strings.ToLower(name), "x-amz-") {
					pr.Out.Header.Del(name)
				}
			}
			pr.Out.Header.Set("Authorization", "Bearer "+key)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.logger.Warn("forwarding to a workspace's owner", "workspace", r.PathValue("workspaceId"), "owner", target.String(), "err", err)
			http.Error(w, "the owner of the workspace did not answer; retry", http.StatusServiceUnavailable)
		},
	}
}

// ownerHandler serves the requests other processes forward to this one as a
// workspace's owner, to callers with the cluster key.
func (a *App) ownerHandler() http.Handler {
	key := ingesterapi.NewClusterKey(a.cfg.Ingest.JetStream.Token)
	inner := http.StripPrefix(ownerForwardPrefix, a.ownerMux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !key.Authorized(r) {
			http.Error(w, "forwarded requests need the cluster key (STRATA_JETSTREAM_TOKEN) as a bearer token", http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	})
}
