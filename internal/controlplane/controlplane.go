// Package controlplane serves the AMP control-plane API (REST-JSON, API version 2020-08-01,
// signing name aps) over the metadata store. Start from API: Routes lists every operation
// it serves with its method and path pattern; Reconciler moves workspaces through their
// states (CREATING → ACTIVE, DELETING → gone) in the background, and so the rule groups
// namespaces and alert manager definitions stored in them (rules.go, alertmanager.go).
//
//	client ── HTTP ──▶ API handler ──▶ validate ──▶ meta.Store (bucket object + cache)
//	                                                      │ Changes()
//	                                   Reconciler ◀───────┘ ──▶ Lifecycle hooks
package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
)

// Config configures the control plane.
type Config struct {
	// MaxRequestBodyBytes caps a control-plane request body.
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
	// MaxWorkspaces caps the workspaces of the server; zero means no cap.
	MaxWorkspaces int `yaml:"max_workspaces"`
	// MaxWorkspacesPerAccount caps the workspaces of one account, as AMP's "Workspaces
	// per Region per account" quota (25 by default). Zero means no cap.
	MaxWorkspacesPerAccount int `yaml:"max_workspaces_per_account"`
	// MaxScrapersPerAccount caps the managed scrapers of one account (AMP: 10 per
	// Region). Zero means no cap.
	MaxScrapersPerAccount int `yaml:"max_scrapers_per_account"`
}

// RegisterFlags registers the flags under "controlplane.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Int64Var(&c.MaxRequestBodyBytes, "controlplane.max-request-body-bytes", 4<<20, "Largest control-plane request body accepted, in bytes; larger ones get 400 ValidationException.")
	f.IntVar(&c.MaxWorkspaces, "controlplane.max-workspaces", 0, "Most workspaces the server holds; CreateWorkspace beyond it gets 402 ServiceQuotaExceededException. 0 means no limit.")
	f.IntVar(&c.MaxScrapersPerAccount, "controlplane.max-scrapers-per-account", 10, "Most managed scrapers one account holds (AMP's quota: 10 per Region); CreateScraper beyond it gets 402 ServiceQuotaExceededException. 0 means no limit.")
	f.IntVar(&c.MaxWorkspacesPerAccount, "controlplane.max-workspaces-per-account", 25, "Most workspaces one account holds (AMP's quota: 25 per Region); CreateWorkspace beyond it gets 402 ServiceQuotaExceededException. 0 means no limit.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxRequestBodyBytes < 1024 {
		return errors.New("max request body must be at least 1024 bytes")
	}
	if c.MaxWorkspaces < 0 || c.MaxWorkspacesPerAccount < 0 || c.MaxScrapersPerAccount < 0 {
		return errors.New("max workspaces must not be negative")
	}
	return nil
}

// Env is what the control plane needs to know about the server it runs in.
type Env struct {
	Region    string
	AccountID string
	// ExternalURL is the base URL clients reach the server at, without a trailing slash.
	ExternalURL string
}

// Route is one operation of the API.
type Route struct {
	// Operation is the AMP operation name; the IAM action is "aps:" + Operation.
	Operation string
	Method    string
	// Pattern is a net/http ServeMux path pattern.
	Pattern string
	Handler http.HandlerFunc
	// RequestTags returns the tags the request sets and the tag keys it names, for the
	// aws:RequestTag/<key> and aws:TagKeys condition keys; nil for operations that
	// take no tags.
	RequestTags func(r *http.Request, body []byte) (tags map[string]string, keys []string, err error)
	// Resource says what the operation acts on, for authorization: "workspace" (the
	// {workspaceId} of the path), "rulegroupsnamespace" ({workspaceId} and {name}),
	// "newrulegroupsnamespace" ({workspaceId} and the name in the body), "arn" (the
	// {resourceArn} of the path) or "*". Empty means "workspace" when the
	// pattern has a {workspaceId}, "arn" when it has a {resourceArn}, else "*".
	Resource string
}

// API serves the control-plane operations.
type API struct {
	// Account returns the account of the request's authenticated principal; nil or ""
	// means the server's default account. Set before serving.
	Account func(r *http.Request) string
	// Authorize decides a dependent action of the request's caller, e.g. aps:TagResource
	// for a CreateWorkspace with tags, as AWS does; it returns the error to answer with,
	// nil when allowed. Nil means every dependent action is allowed (tests without
	// authentication). Set before serving.
	Authorize func(r *http.Request, action, resource string) error
	// Limits answers the rules and alerting quotas of each workspace. Nil means the
	// defaults of the limits flags (AMP's quotas), without the operator's flags or
	// runtime overrides. Set before serving.
	Limits Limits
	// CheckRoles checks the roleConfiguration of a scraper writing into another
	// account's workspace (the target role trusts the source role and may write there);
	// an error is a ValidationException. Nil checks only the roles' accounts. Set before
	// serving.
	CheckRoles func(ctx context.Context, sourceRole, targetRole, workspaceARN string) error
	// LogGroups checks the log group of a logging configuration when it is created or
	// updated: an error is a ValidationException (with forwarding to CloudWatch Logs,
	// a log group that does not exist there). Nil accepts every log group. Set before
	// serving.
	LogGroups LogGroups
	// PromQL parses the expressions of rule files; it should admit what the ruler
	// evaluates. New sets Prometheus' default parser (no experimental functions).
	PromQL parser.Parser

	cfg      Config
	env      Env
	store    *meta.Store
	logger   *slog.Logger
	now      func() time.Time
	newID    func() string
	defaults limits.Limits
}

// Limits answers the limits in force for a workspace; *limits.Overrides implements it.
type Limits interface {
	For(workspace string) *limits.Limits
}

// New returns the API over store.
func New(cfg Config, env Env, store *meta.Store, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{
		PromQL:   parser.NewParser(parser.Options{}),
		cfg:      cfg,
		env:      env,
		store:    store,
		logger:   logger,
		now:      time.Now,
		newID:    func() string { return "ws-" + uuid.NewString() },
		defaults: limits.Default(),
	}
}

// limitsFor returns the limits of workspace id.
func (a *API) limitsFor(id string) *limits.Limits {
	if a.Limits == nil {
		return &a.defaults
	}
	return a.Limits.For(id)
}

// Routes lists the operations served, for the HTTP server to mount.
func (a *API) Routes() []Route {
	const (
		namespaces = "/workspaces/{workspaceId}/rulegroupsnamespaces"
		namespace  = namespaces + "/{name}"
		definition = "/workspaces/{workspaceId}/alertmanager/definition"
		logging    = "/workspaces/{workspaceId}/logging"
		queryLog   = logging + "/query"
		scraper    = "/scrapers/{scraperId}"
	)
	get, post, put, patch, del := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete
	return []Route{
		{Operation: "CreateWorkspace", Method: post, Pattern: "/workspaces", Handler: a.wrap(a.createWorkspace), RequestTags: bodyTags},
		{Operation: "ListWorkspaces", Method: get, Pattern: "/workspaces", Handler: a.wrap(a.listWorkspaces)},
		{Operation: "DescribeWorkspace", Method: get, Pattern: "/workspaces/{workspaceId}", Handler: a.wrap(a.describeWorkspace)},
		{Operation: "DeleteWorkspace", Method: del, Pattern: "/workspaces/{workspaceId}", Handler: a.wrap(a.deleteWorkspace)},
		{Operation: "UpdateWorkspaceAlias", Method: post, Pattern: "/workspaces/{workspaceId}/alias", Handler: a.wrap(a.updateWorkspaceAlias)},
		{Operation: "DescribeWorkspaceConfiguration", Method: get, Pattern: "/workspaces/{workspaceId}/configuration", Handler: a.wrap(a.describeWorkspaceConfiguration)},
		{Operation: "UpdateWorkspaceConfiguration", Method: patch, Pattern: "/workspaces/{workspaceId}/configuration", Handler: a.wrap(a.updateWorkspaceConfiguration)},
		{Operation: "TagResource", Method: post, Pattern: "/tags/{resourceArn}", Handler: a.wrap(a.tagResource), RequestTags: bodyTags},
		{Operation: "UntagResource", Method: del, Pattern: "/tags/{resourceArn}", Handler: a.wrap(a.untagResource), RequestTags: queryTagKeys},
		{Operation: "ListTagsForResource", Method: get, Pattern: "/tags/{resourceArn}", Handler: a.wrap(a.listTagsForResource)},
		{Operation: "PutResourcePolicy", Method: put, Pattern: "/workspaces/{workspaceId}/policy", Handler: a.wrap(a.putResourcePolicy)},
		{Operation: "DescribeResourcePolicy", Method: get, Pattern: "/workspaces/{workspaceId}/policy", Handler: a.wrap(a.describeResourcePolicy)},
		{Operation: "DeleteResourcePolicy", Method: del, Pattern: "/workspaces/{workspaceId}/policy", Handler: a.wrap(a.deleteResourcePolicy)},
		// As AMP, CreateRuleGroupsNamespace is authorized on the new namespace's ARN, whose
		// name is in the body.
		{Operation: "CreateRuleGroupsNamespace", Method: post, Pattern: namespaces, Handler: a.wrap(a.createRuleGroupsNamespace), RequestTags: bodyTags, Resource: "newrulegroupsnamespace"},
		{Operation: "ListRuleGroupsNamespaces", Method: get, Pattern: namespaces, Handler: a.wrap(a.listRuleGroupsNamespaces), Resource: "workspace"},
		{Operation: "DescribeRuleGroupsNamespace", Method: get, Pattern: namespace, Handler: a.wrap(a.describeRuleGroupsNamespace), Resource: "rulegroupsnamespace"},
		{Operation: "PutRuleGroupsNamespace", Method: put, Pattern: namespace, Handler: a.wrap(a.putRuleGroupsNamespace), Resource: "rulegroupsnamespace"},
		{Operation: "DeleteRuleGroupsNamespace", Method: del, Pattern: namespace, Handler: a.wrap(a.deleteRuleGroupsNamespace), Resource: "rulegroupsnamespace"},
		{Operation: "CreateAlertManagerDefinition", Method: post, Pattern: definition, Handler: a.wrap(a.createAlertManagerDefinition), Resource: "workspace"},
		{Operation: "DescribeAlertManagerDefinition", Method: get, Pattern: definition, Handler: a.wrap(a.describeAlertManagerDefinition), Resource: "workspace"},
		{Operation: "PutAlertManagerDefinition", Method: put, Pattern: definition, Handler: a.wrap(a.putAlertManagerDefinition), Resource: "workspace"},
		{Operation: "DeleteAlertManagerDefinition", Method: del, Pattern: definition, Handler: a.wrap(a.deleteAlertManagerDefinition), Resource: "workspace"},
		{Operation: "CreateLoggingConfiguration", Method: post, Pattern: logging, Handler: a.wrap(a.loggingCreate(workspaceLogging))},
		{Operation: "DescribeLoggingConfiguration", Method: get, Pattern: logging, Handler: a.wrap(a.describeLoggingConfiguration)},
		{Operation: "UpdateLoggingConfiguration", Method: put, Pattern: logging, Handler: a.wrap(a.loggingUpdate(workspaceLogging))},
		{Operation: "DeleteLoggingConfiguration", Method: del, Pattern: logging, Handler: a.wrap(a.loggingDelete(workspaceLogging))},
		{Operation: "CreateQueryLoggingConfiguration", Method: post, Pattern: queryLog, Handler: a.wrap(a.loggingCreate(queryLogging))},
		{Operation: "DescribeQueryLoggingConfiguration", Method: get, Pattern: queryLog, Handler: a.wrap(a.describeQueryLoggingConfiguration)},
		{Operation: "UpdateQueryLoggingConfiguration", Method: put, Pattern: queryLog, Handler: a.wrap(a.loggingUpdate(queryLogging))},
		{Operation: "DeleteQueryLoggingConfiguration", Method: del, Pattern: queryLog, Handler: a.wrap(a.loggingDelete(queryLogging))},
		// A scraper is authorized on its ARN (…:scraper/<id>); the new one of a Create on
		// scraper/* (its id is not known yet), as AMP.
		{Operation: "CreateScraper", Method: post, Pattern: "/scrapers", Handler: a.wrap(a.createScraper), RequestTags: bodyTags},
		{Operation: "ListScrapers", Method: get, Pattern: "/scrapers", Handler: a.wrap(a.listScrapers)},
		{Operation: "DescribeScraper", Method: get, Pattern: scraper, Handler: a.wrap(a.describeScraper), Resource: "scraper"},
		{Operation: "UpdateScraper", Method: put, Pattern: scraper, Handler: a.wrap(a.updateScraperOp), Resource: "scraper"},
		{Operation: "DeleteScraper", Method: del, Pattern: scraper, Handler: a.wrap(a.deleteScraper), Resource: "scraper"},
		{Operation: "GetDefaultScraperConfiguration", Method: get, Pattern: "/scraperconfiguration", Handler: a.wrap(a.getDefaultScraperConfiguration)},
		{Operation: "DescribeScraperLoggingConfiguration", Method: get, Pattern: scraper + "/logging-configuration", Handler: a.wrap(a.describeScraperLoggingConfiguration), Resource: "scraper"},
		{Operation: "UpdateScraperLoggingConfiguration", Method: put, Pattern: scraper + "/logging-configuration", Handler: a.wrap(a.updateScraperLoggingConfiguration), Resource: "scraper"},
		{Operation: "DeleteScraperLoggingConfiguration", Method: del, Pattern: scraper + "/logging-configuration", Handler: a.wrap(a.deleteScraperLoggingConfiguration), Resource: "scraper"},
	}
}

// wrap turns an error-returning handler into an http.HandlerFunc that writes errors in
// the AWS shape. Unexpected errors are logged and answered 500 without details.
func (a *API) wrap(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		e := awsapi.As(err)
		if e == nil {
			a.logger.Error("control-plane request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			e = awsapi.Internal()
		}
		awsapi.WriteError(w, e)
	}
}

func (a *API) workspaceARN(account, id string) string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:workspace/%s", a.env.Region, account, id)
}

// callerAccount is the account of the authenticated caller, or the server's default
// account when the request carries no principal (authentication off in unit tests).
func (a *API) callerAccount(r *http.Request) string {
	if a.Account != nil {
		if acct := a.Account(r); acct != "" {
			return acct
		}
	}
	return a.env.AccountID
}

// accountOf is the account owning ws.
func (a *API) accountOf(ws *meta.Workspace) string {
	if ws.AccountID != "" {
		return ws.AccountID
	}
	return a.env.AccountID
}

func (a *API) prometheusEndpoint(id string) string {
	return a.env.ExternalURL + "/workspaces/" + id + "/"
}

func workspaceNotFound(id string) error {
	return awsapi.NotFound("Workspace", id, "workspace %s not found", id)
}

// getWorkspace loads the workspace named in the path.
func (a *API) getWorkspace(r *http.Request) (meta.Workspace, error) {
	id := r.PathValue("workspaceId")
	if err := validateWorkspaceID(id); err != nil {
		return meta.Workspace{}, err
	}
	ws, err := a.store.GetWorkspace(r.Context(), id)
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Workspace{}, workspaceNotFound(id)
	}
	return ws, err
}

// updateWorkspace applies fn to the workspace in the path and maps store errors.
func (a *API) updateWorkspace(r *http.Request, fn func(*meta.Workspace) error) (meta.Workspace, error) {
	id := r.PathValue("workspaceId")
	if err := validateWorkspaceID(id); err != nil {
		return meta.Workspace{}, err
	}
	ws, err := a.store.UpdateWorkspace(r.Context(), id, fn)
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Workspace{}, workspaceNotFound(id)
	}
	if errors.Is(err, meta.ErrTooLarge) {
		// Rule files and the alert manager definition live in the workspace's record.
		return meta.Workspace{}, awsapi.QuotaExceeded("Workspace", id, "",
			"Limit exceeded. The rule groups namespaces and alert manager definition of workspace %s would take more than the %d bytes its record holds; delete or shrink a rule groups namespace", id, meta.MaxRecordBytes)
	}
	return ws, err
}

func requireStatus(ws *meta.Workspace, op string, allowed ...string) error {
	for _, s := range allowed {
		if ws.Status == s {
			return nil
		}
	}
	return awsapi.Conflict("Workspace", ws.ID, "%s is not allowed while workspace %s is %s", op, ws.ID, ws.Status)
}

func (a *API) createWorkspace(w http.ResponseWriter, r *http.Request) error {
	var req createWorkspaceRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if err := validateAlias("alias", req.Alias); err != nil {
		return err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return err
	}
	if err := validateTags(req.Tags); err != nil {
		return err
	}
	if err := validateKMSKeyARN(req.KMSKeyARN); err != nil {
		return err
	}
	hash := requestHash(req)
	if req.ClientToken != nil {
		if ws, ok := a.store.FindByClientToken(*req.ClientToken); ok && a.accountOf(&ws) == a.callerAccount(r) {
			if ws.RequestHash != hash {
				return awsapi.Conflict("Workspace", ws.ID, "clientToken %q was already used to create workspace %s with other parameters", *req.ClientToken, ws.ID)
			}
			awsapi.WriteJSON(w, http.StatusAccepted, a.createResponse(ws))
			return nil
		}
	}
	account := a.callerAccount(r)
	if a.cfg.MaxWorkspaces > 0 && len(a.store.ListWorkspaces()) >= a.cfg.MaxWorkspaces {
		return awsapi.QuotaExceeded("Workspace", "", "L-003DB6FF", "the limit of %d workspaces is reached; delete a workspace or raise -controlplane.max-workspaces", a.cfg.MaxWorkspaces)
	}
	if max := a.cfg.MaxWorkspacesPerAccount; max > 0 {
		n := 0
		for _, ws := range a.store.ListWorkspaces() {
			if a.accountOf(&ws) == account && ws.Status != meta.StatusDeleting {
				n++
			}
		}
		if n >= max {
			return awsapi.QuotaExceeded("Workspace", "", "L-003DB6FF", "Limit exceeded. Maximum workspaces per account: account %s has %d workspaces, the limit is %d; delete a workspace or raise -controlplane.max-workspaces-per-account", account, n, max)
		}
	}
	now := a.now().UTC()
	id := a.newID()
	// Tagging on create is also a TagResource on the new workspace, as in AWS.
	if len(req.Tags) > 0 && a.Authorize != nil {
		if err := a.Authorize(r, "aps:TagResource", a.workspaceARN(account, id)); err != nil {
			return err
		}
	}
	ws := meta.Workspace{
		ID:          id,
		AccountID:   account,
		ARN:         a.workspaceARN(account, id),
		Status:      meta.StatusCreating,
		CreatedAt:   now,
		UpdatedAt:   now,
		Tags:        req.Tags,
		RequestHash: hash,
		Configuration: meta.Configuration{
			Status: meta.StatusActive,
		},
	}
	if req.Alias != nil {
		ws.Alias = *req.Alias
	}
	if req.ClientToken != nil {
		ws.ClientToken = *req.ClientToken
	}
	if req.KMSKeyARN != nil {
		ws.KMSKeyARN = *req.KMSKeyARN
	}
	if err := a.store.CreateWorkspace(r.Context(), ws); err != nil {
		return fmt.Errorf("creating workspace: %w", err)
	}
	a.logger.Info("workspace created", "workspace", id, "alias", ws.Alias)
	awsapi.WriteJSON(w, http.StatusAccepted, a.createResponse(ws))
	return nil
}

func (a *API) createResponse(ws meta.Workspace) createWorkspaceResponse {
	return createWorkspaceResponse{
		WorkspaceID: ws.ID,
		ARN:         ws.ARN,
		Status:      workspaceStatus{StatusCode: ws.Status},
		Tags:        ws.Tags,
		KMSKeyARN:   ws.KMSKeyARN,
	}
}

// requestHash identifies the parameters of a create, for clientToken idempotency.
func requestHash(req createWorkspaceRequest) string {
	req.ClientToken = nil
	b, _ := json.Marshal(req) // maps marshal with sorted keys: the hash is stable
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (a *API) describeWorkspace(w http.ResponseWriter, r *http.Request) error {
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, describeWorkspaceResponse{Workspace: workspaceDescription{
		WorkspaceID:        ws.ID,
		Alias:              ws.Alias,
		ARN:                ws.ARN,
		Status:             workspaceStatus{StatusCode: ws.Status},
		PrometheusEndpoint: a.prometheusEndpoint(ws.ID),
		CreatedAt:          awsapi.Timestamp(ws.CreatedAt),
		Tags:               ws.Tags,
		KMSKeyARN:          ws.KMSKeyARN,
	}})
	return nil
}

const (
	defaultMaxResults = 100
	maxMaxResults     = 1000
)

func (a *API) listWorkspaces(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	maxResults := defaultMaxResults
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxMaxResults {
			return awsapi.Validation("maxResults", "maxResults must be an integer from 1 to %d, got %q", maxMaxResults, v)
		}
		maxResults = n
	}
	var alias *string
	if q.Has("alias") {
		v := q.Get("alias")
		alias = &v
		if err := validateAlias("alias", alias); err != nil {
			return err
		}
	}
	var after *pageKey
	if v := q.Get("nextToken"); v != "" {
		k, err := decodePageKey(v)
		if err != nil {
			return awsapi.Validation("nextToken", "nextToken is not a token returned by ListWorkspaces")
		}
		after = &k
	}

	resp := listWorkspacesResponse{Workspaces: []workspaceSummary{}}
	account := a.callerAccount(r)
	for _, ws := range a.store.ListWorkspaces() {
		if a.accountOf(&ws) != account {
			continue // ListWorkspaces lists the caller's own account, as in AWS
		}
		if after != nil && !after.before(ws) {
			continue
		}
		if alias != nil && !strings.HasPrefix(ws.Alias, *alias) {
			continue
		}
		if len(resp.Workspaces) == maxResults {
			last := resp.Workspaces[len(resp.Workspaces)-1]
			resp.NextToken = pageKey{CreatedAt: time.Time(last.CreatedAt), ID: last.WorkspaceID}.encode()
			break
		}
		resp.Workspaces = append(resp.Workspaces, workspaceSummary{
			WorkspaceID: ws.ID,
			Alias:       ws.Alias,
			ARN:         ws.ARN,
			Status:      workspaceStatus{StatusCode: ws.Status},
			CreatedAt:   awsapi.Timestamp(ws.CreatedAt),
			Tags:        ws.Tags,
			KMSKeyARN:   ws.KMSKeyARN,
		})
	}
	awsapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// pageKey is the position after which the next page of ListWorkspaces starts. Workspaces
// list oldest first, so pages stay stable while workspaces are created.
type pageKey struct {
	CreatedAt time.Time
	ID        string
}

func (k pageKey) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.CreatedAt.UnixNano(), 10) + "/" + k.ID))
}

func decodePageKey(s string) (pageKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return pageKey{}, err
	}
	ns, id, ok := strings.Cut(string(b), "/")
	if !ok || id == "" {
		return pageKey{}, errors.New("malformed page key")
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		return pageKey{}, err
	}
	return pageKey{CreatedAt: time.Unix(0, n).UTC(), ID: id}, nil
}

// before reports whether ws sorts after the key, i.e. belongs to a later page.
func (k pageKey) before(ws meta.Workspace) bool {
	if c := ws.CreatedAt.Compare(k.CreatedAt); c != 0 {
		return c > 0
	}
	return ws.ID > k.ID
}

func (a *API) deleteWorkspace(w http.ResponseWriter, r *http.Request) error {
	if v := r.URL.Query(); v.Has("clientToken") {
		t := v.Get("clientToken")
		if err := validateClientToken(&t); err != nil {
			return err
		}
	}
	_, err := a.updateWorkspace(r, func(ws *meta.Workspace) error {
		if ws.Status == meta.StatusDeleting {
			return awsapi.Conflict("Workspace", ws.ID, "workspace %s is already being deleted", ws.ID)
		}
		ws.Status = meta.StatusDeleting
		// They go with the workspace's record; DELETING stops the ruler and the
		// alertmanager from running them meanwhile.
		for _, ns := range ws.RuleGroupsNamespaces {
			ns.Status, ns.StatusReason = meta.StatusDeleting, ""
		}
		if d := ws.AlertManagerDefinition; d != nil {
			d.Status, d.StatusReason = meta.StatusDeleting, ""
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.logger.Info("workspace deletion requested", "workspace", r.PathValue("workspaceId"))
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (a *API) updateWorkspaceAlias(w http.ResponseWriter, r *http.Request) error {
	var req updateWorkspaceAliasRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if err := validateAlias("alias", req.Alias); err != nil {
		return err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return err
	}
	_, err := a.updateWorkspace(r, func(ws *meta.Workspace) error {
		if err := requireStatus(ws, "UpdateWorkspaceAlias", meta.StatusActive); err != nil {
			return err
		}
		ws.Alias = ""
		if req.Alias != nil {
			ws.Alias = *req.Alias
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) describeWorkspaceConfiguration(w http.ResponseWriter, r *http.Request) error {
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	c := ws.Configuration
	out := workspaceConfigurationDescription{
		Status:                workspaceConfigurationStatus{StatusCode: c.Status, StatusReason: c.StatusReason},
		RetentionPeriodInDays: a.limitsFor(ws.ID).RetentionDays(c.RetentionPeriodInDays),
	}
	if out.Status.StatusCode == "" {
		out.Status.StatusCode = meta.StatusActive
	}
	for _, l := range c.LimitsPerLabelSet {
		maxSeries := l.MaxSeries
		out.LimitsPerLabelSet = append(out.LimitsPerLabelSet, limitsPerLabelSet{
			Limits:   &limitsPerLabelSetEntry{MaxSeries: &maxSeries},
			LabelSet: l.LabelSet,
		})
	}
	awsapi.WriteJSON(w, http.StatusOK, describeWorkspaceConfigurationResponse{WorkspaceConfiguration: out})
	return nil
}

func (a *API) updateWorkspaceConfiguration(w http.ResponseWriter, r *http.Request) error {
	var req updateWorkspaceConfigurationRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return err
	}
	if req.LimitsPerLabelSet == nil && req.RetentionPeriodInDays == nil {
		return awsapi.Validation("limitsPerLabelSet", "specify at least one of limitsPerLabelSet or retentionPeriodInDays")
	}
	if err := validateRetention(req.RetentionPeriodInDays); err != nil {
		return err
	}
	if err := validateLimitsPerLabelSet(req.LimitsPerLabelSet); err != nil {
		return err
	}
	ws, err := a.updateWorkspace(r, func(ws *meta.Workspace) error {
		if err := requireStatus(ws, "UpdateWorkspaceConfiguration", meta.StatusActive); err != nil {
			return err
		}
		if ws.Configuration.Status == meta.StatusUpdating {
			return awsapi.Conflict("WorkspaceConfiguration", ws.ID, "the configuration of workspace %s is being updated; retry when it is ACTIVE", ws.ID)
		}
		if req.RetentionPeriodInDays != nil {
			ws.Configuration.RetentionPeriodInDays = *req.RetentionPeriodInDays
		}
		if req.LimitsPerLabelSet != nil {
			// The list replaces the previous one, as in AMP.
			ls := make([]meta.LimitsPerLabelSet, 0, len(req.LimitsPerLabelSet))
			for _, l := range req.LimitsPerLabelSet {
				var maxSeries int64
				if l.Limits.MaxSeries != nil {
					maxSeries = *l.Limits.MaxSeries
				}
				ls = append(ls, meta.LimitsPerLabelSet{LabelSet: l.LabelSet, MaxSeries: maxSeries})
			}
			ws.Configuration.LimitsPerLabelSet = ls
		}
		ws.Configuration.Status = meta.StatusUpdating
		ws.Configuration.StatusReason = ""
		return nil
	})
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusAccepted, updateWorkspaceConfigurationResponse{
		Status: workspaceConfigurationStatus{StatusCode: ws.Configuration.Status},
	})
	return nil
}

// taggable is what TagResource, UntagResource and ListTagsForResource act on: a
// workspace, or one of its rule groups namespaces.
type taggable struct {
	arn       string
	workspace string
	namespace string // "" for the workspace itself
	scraper   string // a scraper of the workspace, by id
}

// tagsOf returns the tag map of t in ws, to read or replace.
func (t taggable) tagsOf(ws *meta.Workspace) (*map[string]string, error) {
	if t.scraper != "" {
		s, ok := ws.Scrapers[t.scraper]
		if !ok || s.ARN != t.arn {
			return nil, awsapi.NotFound("Scraper", t.arn, "resource %s not found", t.arn)
		}
		return &s.Tags, nil
	}
	if t.namespace == "" {
		return &ws.Tags, nil
	}
	ns, ok := ws.RuleGroupsNamespaces[t.namespace]
	if !ok || ns.ARN != t.arn {
		return nil, awsapi.NotFound("RuleGroupsNamespace", t.arn, "resource %s not found", t.arn)
	}
	return &ns.Tags, nil
}

// resourceFromARN resolves a tagging ARN to a resource of this server: a workspace
// (…:workspace/<id>) or a rule groups namespace (…:rulegroupsnamespace/<id>/<name>). The
// resource must exist under exactly that ARN (its region and owning account).
func (a *API) resourceFromARN(r *http.Request, arn string) (taggable, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] == "" {
		return taggable{}, awsapi.Validation("resourceArn", "resourceArn %q is not an ARN", arn)
	}
	notFound := awsapi.NotFound("Resource", arn, "resource %s not found", arn)
	if parts[2] != "aps" || parts[3] != a.env.Region {
		return taggable{}, notFound
	}
	kind, rest, _ := strings.Cut(parts[5], "/")
	t := taggable{arn: arn}
	switch kind {
	case "workspace":
		t.workspace = rest
	case "rulegroupsnamespace":
		t.workspace, t.namespace, _ = strings.Cut(rest, "/")
		if ValidateNamespaceName(t.namespace) != nil {
			return taggable{}, notFound
		}
	case "scraper":
		if !scraperIDRe.MatchString(rest) {
			return taggable{}, notFound
		}
		return a.scraperOfARN(arn, rest)
	default:
		return taggable{}, notFound
	}
	if t.workspace == "" || strings.Contains(t.workspace, "/") {
		return taggable{}, notFound
	}
	ws, err := a.store.GetWorkspace(r.Context(), t.workspace)
	if errors.Is(err, meta.ErrNotFound) {
		return taggable{}, notFound
	}
	if err != nil {
		return taggable{}, err
	}
	if t.namespace == "" && ws.ARN != arn {
		return taggable{}, notFound
	}
	if _, err := t.tagsOf(&ws); err != nil {
		return taggable{}, notFound
	}
	return t, nil
}

func (a *API) tagResource(w http.ResponseWriter, r *http.Request) error {
	arn := r.PathValue("resourceArn")
	var req tagResourceRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if req.Tags == nil {
		return awsapi.Validation("tags", "tags is required")
	}
	if err := validateTags(req.Tags); err != nil {
		return err
	}
	t, err := a.resourceFromARN(r, arn)
	if err != nil {
		return err
	}
	return a.updateTags(w, r, t, func(tags map[string]string) (map[string]string, error) {
		merged := make(map[string]string, len(tags)+len(req.Tags))
		for k, v := range tags {
			merged[k] = v
		}
		for k, v := range req.Tags {
			merged[k] = v
		}
		if len(merged) > maxTags {
			return nil, awsapi.Validation("tags", "a resource may have at most %d tags; this request would give it %d", maxTags, len(merged))
		}
		return merged, nil
	})
}

func (a *API) untagResource(w http.ResponseWriter, r *http.Request) error {
	arn := r.PathValue("resourceArn")
	keys := r.URL.Query()["tagKeys"]
	if len(keys) == 0 {
		return awsapi.Validation("tagKeys", "tagKeys is required")
	}
	for _, k := range keys {
		if err := validateTagKey("tagKeys", k); err != nil {
			return err
		}
	}
	t, err := a.resourceFromARN(r, arn)
	if err != nil {
		return err
	}
	return a.updateTags(w, r, t, func(tags map[string]string) (map[string]string, error) {
		for _, k := range keys {
			delete(tags, k)
		}
		return tags, nil
	})
}

// bodyTags finds the tags a CreateWorkspace, CreateRuleGroupsNamespace or TagResource
// body sets, decoded as the handlers decode them.
func bodyTags(_ *http.Request, body []byte) (map[string]string, []string, error) {
	var req tagResourceRequest
	if err := awsapi.DecodeJSON(body, &req); err != nil {
		return nil, nil, err
	}
	keys := make([]string, 0, len(req.Tags))
	for k := range req.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return req.Tags, keys, nil
}

// queryTagKeys finds the tag keys an UntagResource removes.
func queryTagKeys(r *http.Request, _ []byte) (map[string]string, []string, error) {
	return nil, r.URL.Query()["tagKeys"], nil
}

// updateTags replaces the tags of t with what fn makes of them and answers {}.
func (a *API) updateTags(w http.ResponseWriter, r *http.Request, t taggable, fn func(map[string]string) (map[string]string, error)) error {
	_, err := a.store.UpdateWorkspace(r.Context(), t.workspace, func(ws *meta.Workspace) error {
		tags, err := t.tagsOf(ws)
		if err != nil {
			return err
		}
		next, err := fn(*tags)
		if err != nil {
			return err
		}
		*tags = next
		return nil
	})
	if errors.Is(err, meta.ErrNotFound) {
		return awsapi.NotFound("Resource", t.arn, "resource %s not found", t.arn)
	}
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (a *API) listTagsForResource(w http.ResponseWriter, r *http.Request) error {
	arn := r.PathValue("resourceArn")
	t, err := a.resourceFromARN(r, arn)
	if err != nil {
		return err
	}
	ws, err := a.store.GetWorkspace(r.Context(), t.workspace)
	if errors.Is(err, meta.ErrNotFound) {
		return awsapi.NotFound("Resource", arn, "resource %s not found", arn)
	}
	if err != nil {
		return err
	}
	p, err := t.tagsOf(&ws)
	if err != nil {
		return err
	}
	tags := *p
	if tags == nil {
		tags = map[string]string{}
	}
	awsapi.WriteJSON(w, http.StatusOK, listTagsForResourceResponse{Tags: tags})
	return nil
}
