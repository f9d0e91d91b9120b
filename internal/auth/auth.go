package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/auth/session"
	"github.com/stratametrics/strata/internal/auth/sigv4"
	"github.com/stratametrics/strata/internal/awsapi"
)

// Error codes this package answers with besides sigv4's (see
// sigv4.AWSErrorCode) and awsapi's.
const (
	// RequestEntityTooLargeException: the body is larger than
	// Config.MaxBodyBytes. HTTP 413.
	RequestEntityTooLargeException = "RequestEntityTooLargeException"
)

const errorTypeHeader = "x-amzn-ErrorType"

// Env is what Auth needs to know about the server it runs in.
type Env struct {
	// Region is the server's region (--region); requests must be signed for
	// it. Required.
	Region string
	// AccountID is the server's default account (--account-id): the root key
	// is its root user. Required.
	AccountID string
	// DataDir keeps the generated root key (root-credentials) when neither
	// the environment nor an identities file provides identities.
	DataDir string
	// Getenv reads STRATA_ROOT_ACCESS_KEY_ID and
	// STRATA_ROOT_SECRET_ACCESS_KEY; nil means os.Getenv.
	Getenv func(string) string
	// Now is the clock for signature times, aws:CurrentTime and audit
	// records; nil means time.Now.
	Now func() time.Time
	// Stdout receives the audit log when Config.AuditLog is "stdout"; nil
	// means os.Stdout.
	Stdout io.Writer
	// Sessions seals and opens the session tokens of temporary credentials
	// (STS). Nil means no temporary credentials are accepted.
	Sessions *session.Ring
}

// ResourceInfo tells Auth about the resource a request acts on. The server
// implements it from the metadata store. Implementations must be safe for
// concurrent use and fast: they are called on every request whose resource
// is an ARN (not for "*").
type ResourceInfo interface {
	// ResourcePolicy returns the resource policy that governs resourceARN,
	// or nil when there is none or the resource does not exist. AMP attaches
	// resource policies to workspaces: for a rule groups namespace ARN,
	// return its workspace's.
	ResourcePolicy(ctx context.Context, resourceARN string) (*policy.Policy, error)
	// ResourceTags returns the resource's tags for aws:ResourceTag/<key>,
	// nil when it has none or does not exist. The map is only read.
	ResourceTags(ctx context.Context, resourceARN string) (map[string]string, error)
}

// RouteInfo says what a route does, for authorization and audit.
type RouteInfo struct {
	// Action is the IAM action, e.g. "aps:CreateWorkspace". Required.
	Action string
	// Resource returns the ARN the request acts on, e.g. from
	// r.PathValue("workspaceId"). Nil, or an empty result, means "*" (for
	// actions with no resource type, such as aps:ListWorkspaces).
	Resource func(r *http.Request) string
	// BodyResource returns the ARN from the verified body, for operations that create a
	// resource named in it (aps:CreateRuleGroupsNamespace acts on the new namespace's
	// ARN, its name is in the body). When set and not empty, it wins over Resource.
	BodyResource func(r *http.Request, body []byte) string
	// PeekResource returns the ARN without I/O (from caches only), for the audit records
	// of requests that were not authenticated: their path must cost no bucket read. Nil
	// means "*" in those records.
	PeekResource func(r *http.Request) string
	// DataPlane marks remote write and query routes: audited only with
	// Config.AuditDataPlane.
	DataPlane bool
	// RequestTags returns the tags the request sets (aws:RequestTag/<key>) and the tag
	// keys it names (aws:TagKeys: the keys it sets, or removes), for tagging routes. It
	// sees the verified body. An error leaves both keys absent; the handler will refuse
	// the request anyway, since it decodes the body the same way. Nil means the route
	// sets no tags.
	RequestTags func(r *http.Request, body []byte) (tags map[string]string, keys []string, err error)
}

// Auth authenticates (SigV4) and authorizes (IAM policies) requests, and
// audits them. Build one with New, wrap each route's handler with Wrap, run
// Run for identities-file reloads and Close at shutdown, after the HTTP
// server has stopped.
//
//	request ─▶ read body (≤ max-body-bytes, else 413) ─▶ sigv4.Verify ─▶ *Principal
//	        ─▶ resource ARN, resource policy, tags ─▶ policy.Explain ─▶ Allow? ─▶ handler
//	                                                     └─ deny ─▶ 403 AccessDeniedException
//	audit record after the response (control plane; data plane when configured)
//
// Auth is safe for concurrent use.
type Auth struct {
	cfg       Config
	env       Env
	logger    *slog.Logger
	now       func() time.Time
	store     *Store
	verifier  *sigv4.Verifier
	stsVerify *sigv4.Verifier // service "sts", any region
	resources ResourceInfo
	audit     *auditLog // nil when off
	proxies   []netip.Prefix
	maxBody   int64
	bodies    *byteBudget // nil: no cap on the bytes of bodies being read
	unauthLog *rateLimiter

	rootInstructions string

	outcomes map[string]prometheus.Counter
	states   sync.Pool // of *reqState
}

// New builds an Auth. It decides the root key: from the environment when
// STRATA_ROOT_ACCESS_KEY_ID/STRATA_ROOT_SECRET_ACCESS_KEY are set; none when
// only an identities file is given (the file defines everyone); otherwise
// the key in <DataDir>/root-credentials, generated on the first start (see
// RootKeyInstructions). It loads the identities file, failing if it does not
// load, and opens the audit log. resources may be nil: no resource policies
// or tags then.
func New(cfg Config, env Env, resources ResourceInfo, logger *slog.Logger, reg prometheus.Registerer) (*Auth, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth config: %w", err)
	}
	if !isAccountID(env.AccountID) {
		return nil, fmt.Errorf("auth: account id %q is not 12 digits", env.AccountID)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.BodyReadTimeout == 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	a := &Auth{cfg: cfg, env: env, logger: logger, now: env.Now, resources: resources, maxBody: cfg.MaxBodyBytes}
	if cfg.MaxInflightBodyBytes > 0 {
		a.bodies = newByteBudget(cfg.MaxInflightBodyBytes, reg)
	}
	a.unauthLog = newRateLimiter(cfg.AuditUnauthenticatedRate, env.Now)
	a.states.New = func() any { return new(reqState) }
	a.proxies, _ = parseTrustedProxies(cfg.TrustedProxies) // validated above

	root, fromEnv, err := RootFromEnv(env.Getenv)
	if err != nil {
		return nil, err
	}
	var rootKey *Credential
	switch {
	case fromEnv:
		rootKey = &root
		logger.Info("root access key from the environment", "access_key_id", root.AccessKeyID, "principal", rootARN(env.AccountID))
	case cfg.IdentitiesFile != "":
		logger.Info("no root access key: the identities file defines every identity", "file", cfg.IdentitiesFile)
	default:
		k, err := LoadOrCreateRootKey(env.DataDir)
		if err != nil {
			return nil, fmt.Errorf("root access key: %w", err)
		}
		if k.LooseMode {
			logger.Warn("the root key file is readable by other users; chmod 600 it", "file", k.Path)
		}
		rootKey = &k.Credential
		a.rootInstructions = RootKeyInstructions(k, env.AccountID)
		logger.Info("root access key from the data directory", "file", k.Path, "generated", k.Created,
			"access_key_id", k.AccessKeyID, "principal", rootARN(env.AccountID))
	}

	a.store, err = newStore(cfg.IdentitiesFile, cfg.IdentitiesReloadPeriod,
		ParseOptions{DefaultAccount: env.AccountID, Root: rootKey}, env.Sessions, logger, reg, env.Now)
	if err != nil {
		return nil, err
	}
	a.verifier, err = sigv4.New(sigv4.Config{Region: env.Region, Service: sigv4.DefaultService, MaxClockSkew: cfg.MaxClockSkew}, a.store, env.Now)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	// STS clients sign for the region they are configured with (aws-global too).
	a.stsVerify, err = sigv4.New(sigv4.Config{Region: sigv4.AnyRegion, Service: "sts", MaxClockSkew: cfg.MaxClockSkew}, a.store, env.Now)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if a.audit, err = newAuditLog(cfg, env.Stdout, logger, reg); err != nil {
		return nil, err
	}
	requests := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "strata_auth_requests_total",
		Help: "Requests through authentication and authorization, by outcome (allowed, denied, unauthenticated, error).",
	}, []string{"outcome"})
	a.outcomes = map[string]prometheus.Counter{}
	for _, o := range []string{OutcomeAllowed, OutcomeDenied, OutcomeUnauthenticated, OutcomeError} {
		a.outcomes[o] = requests.WithLabelValues(o)
	}
	return a, nil
}

// RootKeyInstructions returns the text to show the operator when the root
// key lives in the data directory (generated now or on an earlier start):
// where the file is and the export lines to use it. It never contains the
// secret. Empty when the root key came from the environment or there is none.
func (a *Auth) RootKeyInstructions() string { return a.rootInstructions }

// Store returns the identities store (for STS and diagnostics).
func (a *Auth) Store() *Store { return a.store }

// Run reloads the identities file every reload period until ctx is done.
func (a *Auth) Run(ctx context.Context) error { return a.store.Run(ctx) }

// ErrIdentitiesStale is Ready's answer while the identities file does not load.
var ErrIdentitiesStale = errors.New("the identities file does not load; the last good version is in use (see the logs and strata_auth_identities_last_reload_successful)")

// Ready reports ErrIdentitiesStale while the identities file in place does not load.
// The last good version keeps serving (a broken edit must not lock everyone out), but a
// revocation in the broken file is not in force, so the server says so loudly: in the
// log, in the metric and through /-/ready.
func (a *Auth) Ready() error {
	if a.store.Problem() != nil {
		return ErrIdentitiesStale
	}
	return nil
}

// Close closes the audit log. Stop the HTTP server first: records of
// requests still running are dropped (and counted as write failures).
func (a *Auth) Close() error { return a.audit.close() }

// reqState is per-request scratch space, pooled so that an allowed request
// costs few allocations.
type reqState struct {
	body     []byte
	reserved int64 // bytes of body taken from Auth.bodies
	reader   bodyReader
	ctx      policy.Context
	ip       [1]string
	secure   [1]string
	tagVals  []string
}

// maxPooledBody keeps one huge request from pinning its buffer in the pool.
const maxPooledBody = 1 << 20

func (a *Auth) release(st *reqState) {
	if st.reserved > 0 {
		a.bodies.release(st.reserved)
		st.reserved = 0
	}
	if cap(st.body) > maxPooledBody {
		st.body = nil
	}
	st.body = st.body[:0]
	st.reader.Reset(nil)
	clear(st.ctx)
	clear(st.tagVals)
	st.tagVals = st.tagVals[:0]
	a.states.Put(st)
}

// bodyReader gives the handler the body that was read for verification.
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

// Wrap returns h behind authentication, authorization and audit. A request
// reaches h only when its signature verifies and policies allow route.Action
// on its resource; h then finds the caller with PrincipalFromContext and
// reads the body from r.Body as usual (a buffer reused after h returns, as
// net/http's contract for request bodies allows). Rejections get AWS-shaped
// errors and never reach h.
//
// Wrap panics when route.Action is empty: every route must name its action.
func (a *Auth) Wrap(route RouteInfo, h http.Handler) http.Handler {
	if route.Action == "" {
		panic("auth: RouteInfo.Action is empty")
	}
	audited := a.audit.enabled(route.DataPlane)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.serve(w, r, &route, h, audited)
	})
}

func (a *Auth) serve(w http.ResponseWriter, r *http.Request, route *RouteInfo, h http.Handler, audited bool) {
	start := a.now()
	st := a.states.Get().(*reqState)
	defer a.release(st)

	// rec stays nil for requests that are not audited, so that they do not
	// pay for it.
	var rec *AuditRecord
	if audited {
		rec = &AuditRecord{}
	}
	finish := func(outcome string, status int, code, msg string) {
		a.outcomes[outcome].Inc()
		if rec != nil {
			rec.Outcome, rec.Status, rec.ErrorCode, rec.ErrorMessage = outcome, status, code, msg
			a.writeAudit(rec, w, r, route, start)
		}
	}
	bodyRead := false
	reject := func(outcome string, e *awsapi.Error) {
		if !bodyRead {
			abandonBody(w, r)
		}
		awsapi.WriteError(w, e)
		finish(outcome, e.Status, e.Type, e.Message)
	}
	unauthenticated := func(e *awsapi.Error) {
		if rec != nil {
			if !a.unauthLog.allow() {
				a.audit.dropped.Inc()
				rec = nil
			} else {
				rec.AccessKeyID = claimedAccessKeyID(r)
			}
		}
		reject(OutcomeUnauthenticated, e)
	}
	verifyFailed := func(err error) {
		var se *sigv4.Error
		if !errors.As(err, &se) {
			a.logger.Error("verifying request signature", "action", route.Action, "err", err)
			reject(OutcomeError, awsapi.Internal())
			return
		}
		code, status := sigv4.AWSErrorCode(err)
		unauthenticated(&awsapi.Error{Status: status, Type: code, Message: se.Error()})
	}

	// Everything but the signature is checked before the body is read: nobody without
	// a valid access key makes the server read (or hold memory for) a body.
	check, err := a.verifier.Begin(r)
	if err != nil {
		verifyFailed(err)
		return
	}
	defer check.Release()
	body, berr := a.readBody(w, r, st)
	bodyRead = berr == nil
	if berr != nil {
		unauthenticated(berr)
		return
	}
	id, err := check.Finish(body)
	if err != nil {
		verifyFailed(err)
		return
	}
	if !id.PayloadSigned && (len(body) > 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead)) {
		// UNSIGNED-PAYLOAD, or a presigned URL signed for another body: AWS services
		// other than S3 sign every payload, and so do we, except for an empty GET.
		unauthenticated(&awsapi.Error{Status: http.StatusForbidden, Type: sigv4.ErrSignatureMismatch.AWSCode(),
			Message: "The request's payload is not signed (UNSIGNED-PAYLOAD or a presigned URL): only GET and HEAD requests without a body may leave it unsigned. Sign the SHA-256 of the body."})
		return
	}
	p, ok := id.Principal.(*Principal)
	if !ok || p == nil {
		a.logger.Error("access key has no principal", "access_key_id", id.AccessKeyID)
		reject(OutcomeError, awsapi.Internal())
		return
	}
	resource := "*"
	if route.BodyResource != nil {
		resource = route.BodyResource(r, body)
	}
	if route.Resource != nil && (resource == "" || resource == "*") {
		if s := route.Resource(r); s != "" {
			resource = s
		}
	}
	if resource == "" {
		resource = "*"
	}
	if rec != nil {
		rec.AccessKeyID, rec.PrincipalARN, rec.AccountID, rec.Resource = id.AccessKeyID, p.ARN, p.AccountID, resource
	}

	var facts *requestFacts
	if route.RequestTags != nil {
		if tags, keys, err := route.RequestTags(r, body); err == nil {
			facts = &requestFacts{tags: tags, keys: keys}
		}
	}
	res, derr := a.decide(r, st, p, route.Action, resource, start, facts)
	if derr != nil {
		reject(OutcomeError, derr)
		return
	}
	if rec != nil {
		rec.Decision = a.describe(p, res)
	}
	if res.Decision != policy.Allow {
		reject(OutcomeDenied, accessDenied(p, route.Action, resource, res))
		return
	}

	ctx := WithPrincipal(r.Context(), p)
	if facts != nil {
		ctx = context.WithValue(ctx, requestFactsKey{}, facts)
	}
	r2 := r.WithContext(ctx)
	if body == nil {
		r2.Body = http.NoBody
	} else {
		st.reader.Reset(body)
		r2.Body = &st.reader
	}
	if rec == nil {
		a.outcomes[OutcomeAllowed].Inc()
		h.ServeHTTP(w, r2)
		return
	}
	sw := &statusRecorder{ResponseWriter: w}
	defer func() {
		// Also after a panic: the record says what the client got so far.
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		finish(OutcomeAllowed, status, w.Header().Get(errorTypeHeader), "")
	}()
	h.ServeHTTP(sw, r2)
}

// requestFacts are what a route's RequestTags found, kept in the request's context so
// that Authorize (dependent actions such as aps:TagResource on CreateWorkspace) sees them
// too.
type requestFacts struct {
	tags map[string]string
	keys []string
}

type requestFactsKey struct{}

// setReadDeadline is http.ResponseController's SetReadDeadline without its allocations
// (this runs for every request with a body): it reports whether w supports deadlines.
func setReadDeadline(w http.ResponseWriter, t time.Time) bool {
	for {
		switch x := w.(type) {
		case interface{ SetReadDeadline(time.Time) error }:
			return x.SetReadDeadline(t) == nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// abandonBody makes the server close the connection after the answer instead of reading
// a body nobody will use: a client trickling it must not hold the connection.
func abandonBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	w.Header().Set("Connection", "close")
	setReadDeadline(w, time.Now())
}

// Authorize decides, inside a handler behind Wrap, whether the caller of r
// may also perform action on resource (e.g. aps:TagResource for a
// CreateWorkspace with tags, a dependent action in AWS's terms). It returns
// nil when allowed, else the AWS-shaped error to answer with: 403
// AccessDeniedException, or 500 when looking up the resource failed.
func (a *Auth) Authorize(r *http.Request, action, resource string) *awsapi.Error {
	p, ok := PrincipalFromContext(r.Context())
	if !ok {
		return &awsapi.Error{Status: http.StatusForbidden, Type: sigv4.ErrMissingAuthentication.AWSCode(), Message: "Missing Authentication Token"}
	}
	if resource == "" {
		resource = "*"
	}
	st := a.states.Get().(*reqState)
	defer a.release(st)
	facts, _ := r.Context().Value(requestFactsKey{}).(*requestFacts)
	res, err := a.decide(r, st, p, action, resource, a.now(), facts)
	if err != nil {
		return err
	}
	if res.Decision != policy.Allow {
		return accessDenied(p, action, resource, res)
	}
	return nil
}

// decide evaluates the principal's identity policies and the resource's
// policy with the request's condition keys.
func (a *Auth) decide(r *http.Request, st *reqState, p *Principal, action, resource string, now time.Time, facts *requestFacts) (policy.Result, *awsapi.Error) {
	if st.ctx == nil {
		st.ctx = make(policy.Context, 4)
	}
	if facts != nil {
		// aws:TagKeys is present (possibly empty) whenever the request names tags, so
		// that ForAllValues/ForAnyValue conditions see what IAM would.
		st.ctx[policy.KeyTagKeys] = facts.keys
		for k, v := range facts.tags {
			i := len(st.tagVals)
			st.tagVals = append(st.tagVals, v)
			st.ctx[policy.KeyRequestTagPrefix+k] = st.tagVals[i : i+1 : i+1]
		}
	}
	ip, secure := a.clientFacts(r)
	if ip != "" {
		st.ip[0] = ip
		st.ctx[policy.KeySourceIP] = st.ip[:]
	}
	st.secure[0] = "false"
	if secure {
		st.secure[0] = "true"
	}
	st.ctx[policy.KeySecureTransport] = st.secure[:]

	for _, e := range p.context {
		st.ctx[e.key] = e.values
	}

	var resPolicy *policy.Policy
	if resource != "*" && a.resources != nil {
		var err error
		ctx := r.Context()
		if resPolicy, err = a.resources.ResourcePolicy(ctx, resource); err != nil {
			a.logger.Error("looking up resource policy", "resource", resource, "err", err)
			return policy.Result{}, awsapi.Internal()
		}
		tags, err := a.resources.ResourceTags(ctx, resource)
		if err != nil {
			a.logger.Error("looking up resource tags", "resource", resource, "err", err)
			return policy.Result{}, awsapi.Internal()
		}
		for k, v := range tags {
			i := len(st.tagVals)
			st.tagVals = append(st.tagVals, v)
			st.ctx[policy.KeyResourceTagPrefix+k] = st.tagVals[i : i+1 : i+1]
		}
	}
	return policy.Explain(p.Policies, resPolicy, policy.Request{
		Principal:       p.pp,
		Action:          action,
		Resource:        resource,
		Context:         st.ctx,
		Time:            now,
		SessionPolicies: p.SessionPolicies,
	}), nil
}

// accessDenied words a denial as AWS does, e.g. "User: arn:aws:iam::111122223333:user/bob
// is not authorized to perform: aps:QueryMetrics on resource: arn:aws:aps:us-east-1:111122223333:workspace/ws-1
// because no identity-based policy allows the aps:QueryMetrics action".
func accessDenied(p *Principal, action, resource string, res policy.Result) *awsapi.Error {
	msg := "User: " + p.ARN + " is not authorized to perform: " + action + " on resource: " + resource
	switch {
	case res.Decision == policy.ExplicitDeny && res.Resource.Policy != nil:
		msg += " with an explicit deny in a resource-based policy"
	case res.Decision == policy.ExplicitDeny:
		msg += " with an explicit deny in an identity-based policy"
	case res.Reason == policy.ReasonNoResourceGrant:
		msg += " because no resource-based policy allows the " + action + " action"
	default:
		msg += " because no identity-based policy allows the " + action + " action"
	}
	return &awsapi.Error{Status: http.StatusForbidden, Type: awsapi.AccessDeniedException, Message: msg}
}

// describe renders a decision for the audit log with the policies' names.
func (a *Auth) describe(p *Principal, res policy.Result) string {
	s := res.Decision.String() + ": " + res.Reason.String()
	stmt := func(kind, name string, m policy.Match) string {
		out := kind + " policy"
		if name != "" {
			out += " " + strconv.Quote(name)
		}
		out += " statement " + strconv.Itoa(m.Index)
		if sid := m.Statement().Sid; sid != "" {
			out += " (Sid " + strconv.Quote(sid) + ")"
		}
		return out
	}
	var parts []string
	if res.Identity.Policy != nil {
		parts = append(parts, stmt("identity", p.policyName(res.Identity.Policy), res.Identity))
	}
	if res.Resource.Policy != nil {
		parts = append(parts, stmt("resource", "", res.Resource))
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	return s
}

// readBody reads the request body into st's buffer, up to the limit, within the body
// read timeout. Memory is taken as bytes arrive, never up front from Content-Length, and
// from the server-wide budget of body bytes in flight.
func (a *Auth) readBody(w http.ResponseWriter, r *http.Request, st *reqState) ([]byte, *awsapi.Error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > a.maxBody {
		abandonBody(w, r)
		return nil, a.tooLarge()
	}
	if setReadDeadline(w, time.Now().Add(a.cfg.BodyReadTimeout)) { // the wall clock: a network deadline
		// Cleared once read: a deadline left on the connection would cut off the
		// server's read of the next request or end a long answer's context.
		defer setReadDeadline(w, time.Time{})
	}
	limit := a.maxBody + 1 // one more byte tells a body over the limit
	if r.ContentLength >= 0 {
		limit = r.ContentLength + 1
	}
	buf := st.body[:0]
	lr := io.LimitedReader{R: r.Body, N: a.maxBody + 1}
	for {
		if len(buf) == cap(buf) {
			if lr.N == 0 {
				break // over the limit: no need to make room to see the end
			}
			// Grow by doubling from 16 KiB, never past what the body can be.
			n := min(max(2*int64(cap(buf)), 16<<10), limit)
			if n <= int64(cap(buf)) {
				n = int64(cap(buf)) + 1 // a Content-Length that understated the body
			}
			if grow := n - st.reserved; grow > 0 && a.bodies != nil {
				if !a.bodies.take(grow) {
					st.body = buf
					abandonBody(w, r)
					return nil, &awsapi.Error{Status: http.StatusServiceUnavailable, Type: "ServiceUnavailableException", RetryAfterSeconds: 1,
						Message: "The server is reading as many request bodies as --auth.max-inflight-body-bytes allows; retry."}
				}
				st.reserved += grow
			}
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			buf = nb
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			st.body = buf
			abandonBody(w, r)
			msg := "Reading the request body failed: " + err.Error()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				msg = "The request body did not arrive within " + a.cfg.BodyReadTimeout.String() + " (--auth.body-read-timeout)."
			}
			return nil, &awsapi.Error{Status: http.StatusBadRequest, Type: awsapi.ValidationException, Message: msg}
		}
	}
	st.body = buf
	if int64(len(buf)) > a.maxBody {
		return nil, a.tooLarge()
	}
	if len(buf) == 0 {
		return nil, nil
	}
	return buf, nil
}

func (a *Auth) tooLarge() *awsapi.Error {
	return &awsapi.Error{Status: http.StatusRequestEntityTooLarge, Type: RequestEntityTooLargeException,
		Message: "The request body is larger than " + strconv.FormatInt(a.maxBody, 10) + " bytes, the most this server verifies."}
}

// clientFacts returns the client's address for aws:SourceIp ("" when it
// cannot be told) and whether it used TLS. X-Forwarded-For and
// X-Forwarded-Proto count only when the peer is a trusted proxy.
func (a *Auth) clientFacts(r *http.Request) (ip string, secure bool) {
	secure = r.TLS != nil
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	parsed, err := netip.ParseAddr(host)
	if err != nil {
		return "", secure
	}
	addr := parsed.WithZone("").Unmap()
	if len(a.proxies) == 0 || !a.trusted(addr) {
		if addr == parsed {
			return host, secure // no allocation in the common case
		}
		return addr.String(), secure
	}
	// The peer is a trusted proxy: the client is the right-most address in
	// X-Forwarded-For that is not itself a trusted proxy.
	if proto := r.Header.Get("X-Forwarded-Proto"); proto != "" {
		secure = strings.EqualFold(strings.TrimSpace(proto), "https")
	}
	client := addr
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client.String(), secure // a malformed hop ends what can be trusted
			}
			client = hop.WithZone("").Unmap()
			if !a.trusted(client) {
				return client.String(), secure
			}
		}
	}
	return client.String(), secure
}

func (a *Auth) trusted(addr netip.Addr) bool {
	for _, p := range a.proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// claimedAccessKeyID returns the access key id a request says it is signed
// with, for auditing requests that failed verification; "" if none.
func claimedAccessKeyID(r *http.Request) string {
	cred := ""
	if h := r.Header.Get("Authorization"); h != "" {
		if _, after, ok := strings.Cut(h, "Credential="); ok {
			cred = after
		}
	} else if r.URL != nil {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	id, _, ok := strings.Cut(cred, "/")
	if !ok || checkAccessKeyID(id) != "" {
		return ""
	}
	return id
}

func (a *Auth) writeAudit(rec *AuditRecord, w http.ResponseWriter, r *http.Request, route *RouteInfo, start time.Time) {
	rec.Time = start.UTC().Format(time.RFC3339Nano)
	rec.RequestID = w.Header().Get(awsapi.RequestIDHeader)
	rec.SourceIP, _ = a.clientFacts(r)
	rec.UserAgent = clipUserAgent(r.UserAgent())
	rec.Method = clip(r.Method)
	if r.URL != nil {
		rec.Path = clipAudit(r.URL.Path)
	}
	rec.Action = route.Action
	rec.DataPlane = route.DataPlane
	if rec.Resource == "" { // rejected before the resource was looked at: no I/O for it
		rec.Resource = "*"
		if route.PeekResource != nil {
			if s := route.PeekResource(r); s != "" {
				rec.Resource = clipAudit(s)
			}
		}
	}
	a.audit.write(rec)
}

// maxAuditField bounds the client-chosen strings of an audit record, so that a stream
// of junk requests cannot write big lines.
const maxAuditField = 512

func clipAudit(s string) string {
	if len(s) > maxAuditField {
		return s[:maxAuditField] + "..."
	}
	return s
}

func clipUserAgent(s string) string { return clipAudit(s) }

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the recorder.
func (w *statusRecorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// STSCheck is an STS request whose signature is checked as far as it can be
// before its body is read; see BeginSTS.
type STSCheck struct {
	a     *Auth
	check *sigv4.Check
}

// BeginSTS checks an STS request's signature as far as it can before the body is
// read (service "sts", any region: clients sign STS calls for the region they are
// configured with). Call Finish with the body, then Release. A failure is a
// *sigv4.Error, or the credential store's error.
func (a *Auth) BeginSTS(r *http.Request) (*STSCheck, error) {
	c, err := a.stsVerify.Begin(r)
	if err != nil {
		return nil, err
	}
	return &STSCheck{a: a, check: c}, nil
}

// Finish verifies the signature over body and returns the caller.
func (c *STSCheck) Finish(r *http.Request, body []byte) (*Principal, error) {
	id, err := c.check.Finish(body)
	if err != nil {
		return nil, err
	}
	if !id.PayloadSigned && (len(body) > 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead)) {
		return nil, sigv4.NewError(sigv4.ErrSignatureMismatch, "The request's payload is not signed; sign the SHA-256 of the body.")
	}
	p, ok := id.Principal.(*Principal)
	if !ok || p == nil {
		return nil, fmt.Errorf("access key %s has no principal", id.AccessKeyID)
	}
	return p, nil
}

// Release returns the check's scratch space.
func (c *STSCheck) Release() { c.check.Release() }

// AccessKeyID is the access key the request is signed with.
func (c *STSCheck) AccessKeyID() string { return c.check.AccessKeyID() }

// Evaluate decides action on resource for p with the request's facts (source IP,
// TLS), p's condition keys and extra ones, against p's identity and session
// policies and resPolicy (for sts:AssumeRole, the role's trust policy, with
// requireGrant). It is for handlers that authorize against a policy of their own;
// Wrap's routes are decided by Wrap.
func (a *Auth) Evaluate(r *http.Request, p *Principal, action, resource string, resPolicy *policy.Policy, extra policy.Context, requireGrant bool) policy.Result {
	ctx := make(policy.Context, len(extra)+len(p.context)+2)
	ip, secure := a.clientFacts(r)
	if ip != "" {
		ctx[policy.KeySourceIP] = []string{ip}
	}
	ctx[policy.KeySecureTransport] = []string{strconv.FormatBool(secure)}
	for _, e := range p.context {
		ctx[e.key] = e.values
	}
	for k, v := range extra {
		ctx[k] = v
	}
	return policy.Explain(p.Policies, resPolicy, policy.Request{
		Principal:            p.pp,
		Action:               action,
		Resource:             resource,
		Context:              ctx,
		Time:                 a.now(),
		SessionPolicies:      p.SessionPolicies,
		RequireResourceGrant: requireGrant,
	})
}

// Audit writes rec for a request a handler authenticated itself (STS), when the
// audit log is on; the common fields are filled in here.
func (a *Auth) Audit(w http.ResponseWriter, r *http.Request, action string, rec *AuditRecord, start time.Time) {
	if !a.audit.enabled(false) {
		return
	}
	if rec.Outcome == OutcomeUnauthenticated && !a.unauthLog.allow() {
		a.audit.dropped.Inc()
		return
	}
	a.writeAudit(rec, w, r, &RouteInfo{Action: action}, start)
}
