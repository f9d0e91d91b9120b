package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/stratametrics/strata/internal/auth"
	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/controlplane"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/query"
)

// RouteAction is one route's IAM action and how to find the resource it acts on; the
// server registers every route through it so that docs/security.md and the code agree.
type RouteAction struct {
	Operation string // route name in metrics
	Method    string
	Pattern   string
	Action    string // IAM action, e.g. aps:RemoteWrite
	// Resource says where the ARN comes from: "workspace" (the {workspaceId} path
	// value), "rulegroupsnamespace" ({workspaceId} and {name}), "newrulegroupsnamespace"
	// ({workspaceId} and the body's name), "arn" (the {resourceArn} path value) or "*"
	// (no resource type).
	Resource  string
	DataPlane bool
	// RequestTags finds the tags a tagging request sets (see auth.RouteInfo).
	RequestTags func(r *http.Request, body []byte) (map[string]string, []string, error) `json:"-"`
}

// resources answers auth's questions about resources from the metadata store.
type resources struct {
	store     *meta.Store
	region    string
	accountID string

	mu       sync.Mutex
	policies map[string]*policy.Policy // parsed resource policies, by revision id
}

func newResources(store *meta.Store, region, accountID string) *resources {
	return &resources{store: store, region: region, accountID: accountID, policies: map[string]*policy.Policy{}}
}

// workspaceARN is the ARN of the workspace in the request path: the stored one when the
// workspace exists, else one in the server's default account (the handler answers 404
// when the caller is allowed to ask).
func (r *resources) workspaceARN(req *http.Request) string {
	id := req.PathValue("workspaceId")
	if ws, ok := r.store.PeekWorkspace(id); ok {
		return ws.ARN
	}
	if ws, err := r.store.GetWorkspace(req.Context(), id); err == nil {
		return ws.ARN
	}
	return fmt.Sprintf("arn:aws:aps:%s:%s:workspace/%s", r.region, r.accountID, id)
}

// scraperARN is the ARN of the scraper in the request path, in its account; for a
// scraper that does not exist, in the server's default account (the handler answers
// ResourceNotFoundException).
func (r *resources) scraperARN(req *http.Request) string {
	id := req.PathValue("scraperId")
	if ws, ok := r.store.FindScraper(id); ok {
		return ws.Scrapers[id].ARN
	}
	return fmt.Sprintf("arn:aws:aps:%s:%s:scraper/%s", r.region, r.accountID, id)
}

// ruleGroupsNamespaceARN is the ARN of the rule groups namespace in the request path
// (arn:…:rulegroupsnamespace/<workspace>/<name>), in the workspace's account.
func (r *resources) ruleGroupsNamespaceARN(req *http.Request) string {
	return namespaceARN(r.workspaceARN(req), req.PathValue("name"))
}

// newRuleGroupsNamespaceARN is the ARN of the namespace a CreateRuleGroupsNamespace
// body names; "" when the body names none that is valid, which the handler refuses, as
// it reads the body the same way (awsapi.DecodeJSON).
func (r *resources) newRuleGroupsNamespaceARN(req *http.Request, body []byte) string {
	var in struct {
		Name string `json:"name"`
	}
	if awsapi.DecodeJSON(body, &in) != nil || controlplane.ValidateNamespaceName(in.Name) != nil {
		return ""
	}
	return namespaceARN(r.workspaceARN(req), in.Name)
}

// peekRuleGroupsNamespaceARN is ruleGroupsNamespaceARN from the cache only.
func (r *resources) peekRuleGroupsNamespaceARN(req *http.Request) string {
	if ws := r.peekWorkspaceARN(req); ws != "" {
		return namespaceARN(ws, req.PathValue("name"))
	}
	return ""
}

// namespaceARN turns a workspace ARN into the ARN of its rule groups namespace name.
func namespaceARN(workspaceARN, name string) string {
	prefix, id, ok := strings.Cut(workspaceARN, ":workspace/")
	if !ok {
		return ""
	}
	return prefix + ":rulegroupsnamespace/" + id + "/" + name
}

// peekWorkspaceARN is workspaceARN from the cache only, for the audit records of
// requests that were not authenticated: they must not cost a bucket read.
func (r *resources) peekWorkspaceARN(req *http.Request) string {
	id := req.PathValue("workspaceId")
	if ws, ok := r.store.PeekWorkspace(id); ok {
		return ws.ARN
	}
	if !blocks.ValidWorkspace(id) {
		return ""
	}
	return fmt.Sprintf("arn:aws:aps:%s:%s:workspace/%s", r.region, r.accountID, id)
}

// workspaceOf finds the workspace an AMP ARN belongs to (workspace/<id>, or
// rulegroupsnamespace/<id>/<name> and the like, which are governed by their workspace).
func (r *resources) workspaceOf(arn string) (meta.Workspace, bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "aps" {
		return meta.Workspace{}, false
	}
	kind, rest, ok := strings.Cut(parts[5], "/")
	if !ok || kind == "" {
		return meta.Workspace{}, false
	}
	id, _, _ := strings.Cut(rest, "/")
	ws, ok := r.store.PeekWorkspace(id)
	// The region and account in the ARN must be the workspace's own.
	if !ok || !strings.HasPrefix(ws.ARN, strings.Join(parts[:5], ":")+":") {
		return meta.Workspace{}, false
	}
	return ws, true
}

func (r *resources) ResourcePolicy(_ context.Context, arn string) (*policy.Policy, error) {
	ws, ok := r.workspaceOf(arn)
	if !ok || ws.ResourcePolicy == nil {
		return nil, nil
	}
	rev := ws.ResourcePolicy.RevisionID
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.policies[rev]; ok {
		return p, nil
	}
	p, err := policy.ParseResourcePolicy([]byte(ws.ResourcePolicy.Document))
	if err != nil {
		return nil, fmt.Errorf("resource policy of workspace %s: %w", ws.ID, err)
	}
	if len(r.policies) > 10000 {
		clear(r.policies) // a crude bound; policies change rarely
	}
	r.policies[rev] = p
	return p, nil
}

func (r *resources) ResourceTags(_ context.Context, arn string) (map[string]string, error) {
	ws, ok := r.workspaceOf(arn)
	if !ok {
		return nil, nil
	}
	// A rule groups namespace has tags of its own (none while it does not exist).
	if rest, isNamespace := strings.CutPrefix(strings.SplitN(arn, ":", 6)[5], "rulegroupsnamespace/"); isNamespace {
		_, name, _ := strings.Cut(rest, "/")
		if ns, ok := ws.RuleGroupsNamespaces[name]; ok && ns.ARN == arn {
			return ns.Tags, nil
		}
		return nil, nil
	}
	return ws.Tags, nil
}

// queryLimits overlays the per-workspace query limits of the runtime file on the
// server-wide --query.* settings.
type queryLimits struct {
	base      query.QueryLimits
	overrides *limits.Overrides
}

func (q queryLimits) QueryLimits(workspace string) query.QueryLimits {
	out := q.base
	l := q.overrides.For(workspace)
	if l.QueryTimeout > 0 {
		out.Timeout = l.QueryTimeout
	}
	if l.MaxQuerySamples > 0 {
		out.MaxSamples = l.MaxQuerySamples
	}
	if l.MaxQuerySeries > 0 {
		out.MaxSeries = l.MaxQuerySeries
	}
	if l.MaxConcurrentQueries > 0 {
		out.MaxConcurrent = l.MaxConcurrentQueries
	}
	return out
}

// authenticated wraps h with authentication and authorization for route.
func (a *App) authenticated(route RouteAction, h http.Handler) http.Handler {
	info := auth.RouteInfo{Action: route.Action, DataPlane: route.DataPlane, RequestTags: route.RequestTags}
	switch route.Resource {
	case "workspace":
		info.Resource = a.resources.workspaceARN
		info.PeekResource = a.resources.peekWorkspaceARN
		// A workspace id is checked before anything else: before it names an object in
		// the bucket (the resource's lookup), a log line or an audit record.
		return validWorkspacePath(a.auth.Wrap(info, h))
	case "rulegroupsnamespace":
		info.Resource = a.resources.ruleGroupsNamespaceARN
		info.PeekResource = a.resources.peekRuleGroupsNamespaceARN
		return validWorkspacePath(a.auth.Wrap(info, h))
	case "newrulegroupsnamespace":
		// The namespace named in the body; a body without a valid name is authorized
		// on the workspace, and the handler refuses it.
		info.BodyResource = a.resources.newRuleGroupsNamespaceARN
		info.Resource = a.resources.workspaceARN
		info.PeekResource = a.resources.peekWorkspaceARN
		return validWorkspacePath(a.auth.Wrap(info, h))
	case "arn":
		info.Resource = func(r *http.Request) string { return r.PathValue("resourceArn") }
		info.PeekResource = info.Resource
	case "scraper":
		info.Resource = a.resources.scraperARN
		info.PeekResource = a.resources.scraperARN
	}
	return a.auth.Wrap(info, h)
}

// validWorkspacePath answers 400 ValidationException, without reading the body or
// looking anything up, when the {workspaceId} of the path is not a workspace id.
func validWorkspacePath(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.PathValue("workspaceId"); !blocks.ValidWorkspace(id) {
			if r.ContentLength != 0 {
				w.Header().Set("Connection", "close") // do not wait for a body nobody reads
			}
			if len(id) > 64 {
				id = id[:64] + "..."
			}
			awsapi.WriteError(w, awsapi.Validation("workspaceId", "workspaceId %q is not a valid workspace id", id))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// callerAccount is the authenticated caller's account, for handlers that act in it.
func callerAccount(r *http.Request) string {
	if p, ok := auth.PrincipalFromContext(r.Context()); ok {
		return p.AccountID
	}
	return ""
}
