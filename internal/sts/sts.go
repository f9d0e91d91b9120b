// Package sts serves the AWS Security Token Service API on Strata's listener, so that
// AMP users keep their keyless setups: IRSA-style web identity (AssumeRoleWithWebIdentity
// with an OIDC token), AssumeRole across accounts, GetSessionToken and
// GetCallerIdentity. Start from Handler; Config says where it is served.
//
//	POST <path> (query protocol, form body) ─▶ Action
//	  AssumeRoleWithWebIdentity: unsigned ─▶ OIDC token (oidc.Verifier) ─▶ trust policy ─▶ session
//	  others: SigV4 (service sts) ─▶ caller ─▶ trust policy + caller's policies ─▶ session
//	session ─▶ session.Ring.Seal ─▶ ASIA… key, secret, token (the sealed session) ─▶ XML
//
// The credentials it issues are verified on every request by auth.Store.LookupSession,
// from the token alone: no table of sessions, nothing to share between processes but
// the key file.
package sts

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stratametrics/strata/internal/auth"
	"github.com/stratametrics/strata/internal/auth/oidc"
	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/auth/session"
	"github.com/stratametrics/strata/internal/auth/sigv4"
)

// Config configures the STS endpoint.
type Config struct {
	// Enabled serves STS. False means no endpoint and no temporary credentials.
	Enabled bool `yaml:"enabled"`
	// Path is where STS answers on the listener, for AWS_ENDPOINT_URL_STS (and
	// --endpoint-url): "/" (the default) or a path such as "/sts".
	Path string `yaml:"path"`
	// KeyFile holds the keys that seal session tokens (see session.LoadOrCreateRing).
	// Empty means <data-dir>/sts-keys, created on the first start. Every process that
	// verifies another's sessions needs the same file.
	KeyFile string `yaml:"key_file"`
}

// RegisterFlags registers the flags under "sts.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "sts.enabled", true, "Serve the STS API (AssumeRole, AssumeRoleWithWebIdentity, GetSessionToken, GetCallerIdentity) and accept the temporary credentials it issues.")
	f.StringVar(&c.Path, "sts.path", "/", `Path of the STS endpoint on --listen: point AWS_ENDPOINT_URL_STS at <url><path>. "/" is what SDKs use by default.`)
	f.StringVar(&c.KeyFile, "sts.key-file", "", "File of the keys that seal session tokens (base64, one per line, the first seals). Empty means <data-dir>/sts-keys, created on the first start. Processes that verify each other's sessions need the same file.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Path == "" || c.Path[0] != '/' || strings.ContainsAny(c.Path, " ?#{}") {
		return fmt.Errorf("path %q must start with / and hold no space, ?, # or braces", c.Path)
	}
	return nil
}

// Pattern is the ServeMux pattern of the endpoint for method.
func (c *Config) Pattern(method string) string {
	if c.Path == "/" {
		return method + " /{$}"
	}
	return method + " " + c.Path
}

// Deps are what the handler works with.
type Deps struct {
	Auth   *auth.Auth
	Ring   *session.Ring
	OIDC   *oidc.Verifier
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves STS.
type Handler struct {
	cfg    Config
	auth   *auth.Auth
	ring   *session.Ring
	oidc   *oidc.Verifier
	logger *slog.Logger
	now    func() time.Time
}

// New returns the STS handler.
func New(cfg Config, d Deps) *Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handler{cfg: cfg, auth: d.Auth, ring: d.Ring, oidc: d.OIDC, logger: d.Logger, now: d.Now}
}

// Request bounds: STS requests are small (a policy of 2,048 characters, 50 tags).
const (
	maxBody         = 64 << 10
	bodyReadTimeout = 30 * time.Second
)

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	rec := &auth.AuditRecord{}
	action := ""
	answer := func(e *Error) {
		writeError(w, e)
		rec.Status, rec.ErrorCode, rec.ErrorMessage = e.Status, e.Code, e.Message
		if rec.Outcome == "" {
			rec.Outcome = auth.OutcomeDenied
			if e.Status >= 500 {
				rec.Outcome = auth.OutcomeError
			}
		}
		h.auth.Audit(w, r, "sts:"+clipAction(action), rec, start)
	}

	// A signed request is checked as far as it can be before its body is read.
	var check *auth.STSCheck
	if signed(r) {
		c, err := h.auth.BeginSTS(r)
		if err != nil {
			rec.Outcome = auth.OutcomeUnauthenticated
			w.Header().Set("Connection", "close") // the body stays unread
			answer(h.verifyError(err))
			return
		}
		defer c.Release()
		check = c
		rec.AccessKeyID = strings.Clone(c.AccessKeyID())
	}
	body, e := readBody(w, r)
	if e != nil {
		rec.Outcome = auth.OutcomeUnauthenticated
		answer(e)
		return
	}
	params, e := parseParams(r, body)
	if e != nil {
		answer(e)
		return
	}
	action = params.Get("Action")
	if v := params.Get("Version"); v != apiVersion {
		answer(&Error{Status: http.StatusBadRequest, Code: CodeInvalidAction, Message: fmt.Sprintf("Could not find operation %s for version %s", clipAction(action), clip(v))})
		return
	}

	if action == "AssumeRoleWithWebIdentity" || action == "AssumeRoleWithSAML" {
		// Unsigned by design: the token is the credential.
		if action == "AssumeRoleWithSAML" {
			answer(&Error{Status: http.StatusBadRequest, Code: CodeInvalidAction, Message: "AssumeRoleWithSAML is not supported: Strata trusts OpenID Connect providers (AssumeRoleWithWebIdentity)."})
			return
		}
		out, e := h.assumeRoleWithWebIdentity(r, params, rec)
		if e != nil {
			answer(e)
			return
		}
		h.succeed(w, r, action, out, rec, start)
		return
	}
	if check == nil {
		rec.Outcome = auth.OutcomeUnauthenticated
		answer(&Error{Status: http.StatusForbidden, Code: CodeMissingAuthenticationToken, Message: "Request is missing Authentication Token"})
		return
	}
	p, err := check.Finish(r, body)
	if err != nil {
		rec.Outcome = auth.OutcomeUnauthenticated
		answer(h.verifyError(err))
		return
	}
	rec.PrincipalARN, rec.AccountID = p.ARN, p.AccountID
	var out any
	switch action {
	case "GetCallerIdentity":
		out = getCallerIdentity(p)
	case "GetSessionToken":
		out, e = h.getSessionToken(r, p, params)
	case "AssumeRole":
		out, e = h.assumeRole(r, p, params, rec)
	case "":
		e = &Error{Status: http.StatusBadRequest, Code: CodeMissingParameter, Message: "The request must contain the parameter Action."}
	default:
		e = &Error{Status: http.StatusBadRequest, Code: CodeInvalidAction, Message: fmt.Sprintf("Could not find operation %s for version %s", clipAction(action), apiVersion)}
	}
	if e != nil {
		answer(e)
		return
	}
	h.succeed(w, r, action, out, rec, start)
}

// succeed answers out and audits the request.
func (h *Handler) succeed(w http.ResponseWriter, r *http.Request, action string, out any, rec *auth.AuditRecord, start time.Time) {
	setRequestID(out, w.Header().Get(requestIDHeader))
	rec.Outcome, rec.Status = auth.OutcomeAllowed, http.StatusOK
	writeXML(w, http.StatusOK, out)
	h.auth.Audit(w, r, "sts:"+action, rec, start)
}

// signed reports whether r carries SigV4 authentication, in the header or the query.
func signed(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.URL.Query().Has("X-Amz-Signature")
}

// readBody reads a bounded body within a deadline.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *Error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > maxBody {
		w.Header().Set("Connection", "close")
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeInvalidParameterValue, Message: fmt.Sprintf("The request body is larger than %d bytes.", maxBody)}
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)) == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		w.Header().Set("Connection", "close")
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: "Reading the request body failed: " + err.Error()}
	}
	if len(body) > maxBody {
		w.Header().Set("Connection", "close")
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeInvalidParameterValue, Message: fmt.Sprintf("The request body is larger than %d bytes.", maxBody)}
	}
	return body, nil
}

// parseParams reads the query protocol's parameters: the query string, then a form
// body (which wins).
func parseParams(r *http.Request, body []byte) (url.Values, *Error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: "The query string cannot be parsed: " + err.Error()}
	}
	for k := range q {
		if strings.HasPrefix(k, "X-Amz-") {
			delete(q, k) // presigned URL parameters
		}
	}
	if len(body) > 0 {
		ct := r.Header.Get("Content-Type")
		if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(mt) != "application/x-www-form-urlencoded" {
			return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: fmt.Sprintf("The body must be application/x-www-form-urlencoded, not %q.", clip(ct))}
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: "The request body cannot be parsed: " + err.Error()}
		}
		for k, v := range form {
			q[k] = v
		}
	}
	return q, nil
}

// verifyError maps a failed signature check to STS's error.
func (h *Handler) verifyError(err error) *Error {
	var se *sigv4.Error
	if !errors.As(err, &se) {
		h.logger.Error("verifying an STS request", "err", err)
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternalFailure, Message: "An internal error occurred."}
	}
	switch {
	case errors.Is(err, sigv4.ErrMissingAuthentication):
		return &Error{Status: http.StatusForbidden, Code: CodeMissingAuthenticationToken, Message: "Request is missing Authentication Token"}
	case errors.Is(err, sigv4.ErrMalformedAuthorization), errors.Is(err, sigv4.ErrUnsupportedAlgorithm), errors.Is(err, sigv4.ErrHostNotSigned), errors.Is(err, sigv4.ErrMalformedQuery):
		return &Error{Status: http.StatusBadRequest, Code: CodeIncompleteSignature, Message: se.Error()}
	case errors.Is(err, sigv4.ErrUnknownAccessKey), errors.Is(err, sigv4.ErrSecurityToken):
		return &Error{Status: http.StatusForbidden, Code: CodeInvalidClientTokenID, Message: "The security token included in the request is invalid."}
	case errors.Is(err, sigv4.ErrExpiredToken):
		return &Error{Status: http.StatusForbidden, Code: CodeExpiredToken, Message: "The security token included in the request is expired"}
	}
	return &Error{Status: http.StatusForbidden, Code: CodeSignatureDoesNotMatch, Message: se.Error()}
}

func getCallerIdentity(p *auth.Principal) any {
	out := &getCallerIdentityResponse{Xmlns: xmlns}
	out.Result.Arn, out.Result.UserID, out.Result.Account = p.ARN, p.UserID, p.AccountID
	return out
}

// Durations of GetSessionToken, as AWS's.
const (
	defaultUserSession = 12 * time.Hour
	maxUserSession     = 36 * time.Hour
	maxRootSession     = time.Hour
	minSession         = 15 * time.Minute
	defaultRoleSession = time.Hour
	maxRoleSession     = 12 * time.Hour
	maxChainedSession  = time.Hour
)

func (h *Handler) getSessionToken(r *http.Request, p *auth.Principal, params url.Values) (any, *Error) {
	if p.Temporary() {
		return nil, accessDenied("Cannot call GetSessionToken with session credentials")
	}
	var v violations
	dur := durationParam(&v, params, "DurationSeconds", "durationSeconds", defaultUserSession, minSession, maxUserSession)
	if e := refuseMFA(params); e != nil {
		return nil, e
	}
	if e := v.err(); e != nil {
		return nil, e
	}
	if p.IsRoot() && dur > maxRootSession {
		dur = maxRootSession // AWS shortens root sessions to an hour rather than refusing
	}
	if res := h.auth.Evaluate(r, p, "sts:GetSessionToken", "*", nil, nil, false); res.Decision == policy.ExplicitDeny {
		return nil, accessDenied("User: %s is not authorized to perform: sts:GetSessionToken with an explicit deny", p.ARN)
	}
	now := h.now()
	sess := &session.Session{Kind: session.KindUser, Principal: p.ARN, Issued: now.UnixMilli(), Expires: now.Add(dur).UnixMilli()}
	creds, e := h.issue(sess)
	if e != nil {
		return nil, e
	}
	out := &getSessionTokenResponse{Xmlns: xmlns}
	out.Result.Credentials = creds
	return out, nil
}

// refuseMFA refuses MFA: Strata has no MFA devices.
func refuseMFA(params url.Values) *Error {
	if params.Has("SerialNumber") || params.Has("TokenCode") {
		return accessDenied("MultiFactorAuthentication failed: Strata has no MFA devices; call without SerialNumber and TokenCode")
	}
	return nil
}

var (
	sessionNameRe    = regexp.MustCompile(`^[\w+=,.@-]*$`)
	externalIDRe     = regexp.MustCompile(`^[\w+=,.@:/-]*$`)
	tagKeyRe         = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$`)
	tagValueRe       = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	policyDocRe      = regexp.MustCompile(`^[\x{0009}\x{000A}\x{000D}\x{0020}-\x{00FF}]+$`)
	managedPolicyARN = regexp.MustCompile(`^arn:aws:iam::(\d{12}):policy/([\w+=,.@-]{1,128})$`)
)

// Maximum length of the session policies' text, as AWS's.
const maxSessionPolicy = 2048

// roleRequest is what AssumeRole and AssumeRoleWithWebIdentity share.
type roleRequest struct {
	role        *auth.Role
	roleARN     string
	sessionName string
	duration    time.Duration
	policy      string
	policyNames []string
}

// parseRoleRequest validates the parameters both assume-role actions take.
func (h *Handler) parseRoleRequest(v *violations, params url.Values) roleRequest {
	var rr roleRequest
	arn, ok := param(params, "RoleArn")
	switch {
	case !ok:
		v.add(nil, "roleArn", "Member must not be null")
	case len(arn) < 20:
		v.add(&arn, "roleArn", "Member must have length greater than or equal to 20")
	case len(arn) > 2048:
		v.add(&arn, "roleArn", "Member must have length less than or equal to 2048")
	}
	rr.roleARN = arn
	name, ok := param(params, "RoleSessionName")
	switch {
	case !ok:
		v.add(nil, "roleSessionName", "Member must not be null")
	case len(name) < 2:
		v.add(&name, "roleSessionName", "Member must have length greater than or equal to 2")
	case len(name) > 64:
		v.add(&name, "roleSessionName", "Member must have length less than or equal to 64")
	case !sessionNameRe.MatchString(name):
		v.add(&name, "roleSessionName", `Member must satisfy regular expression pattern: [\w+=,.@-]*`)
	}
	rr.sessionName = name
	rr.duration = durationParam(v, params, "DurationSeconds", "durationSeconds", defaultRoleSession, minSession, maxRoleSession)
	if pol, ok := param(params, "Policy"); ok {
		switch {
		case len(pol) < 1:
			v.add(&pol, "policy", "Member must have length greater than or equal to 1")
		case len(pol) > maxSessionPolicy:
			v.add(&pol, "policy", fmt.Sprintf("Member must have length less than or equal to %d", maxSessionPolicy))
		case !policyDocRe.MatchString(pol):
			v.add(&pol, "policy", `Member must satisfy regular expression pattern: [\u0009\u000A\u000D\u0020-\u00FF]+`)
		}
		rr.policy = pol
	}
	for i := 1; ; i++ {
		a, ok := param(params, "PolicyArns.member."+strconv.Itoa(i)+".arn")
		if !ok {
			break
		}
		if i > 10 {
			v.add(nil, "policyArns", "Member must have length less than or equal to 10")
			break
		}
		rr.policyNames = append(rr.policyNames, a) // resolved against the role below
	}
	if rr.roleARN != "" {
		if role, ok := h.auth.Store().Identities().Role(rr.roleARN); ok {
			rr.role = role
		}
	}
	return rr
}

// sessionPolicies checks the session policies of rr for role: a valid document, and
// managed policies of the role's account that exist. It returns the compacted
// document and the policy names.
func (h *Handler) sessionPolicies(rr *roleRequest) (string, []string, *Error) {
	doc := ""
	if rr.policy != "" {
		if _, err := policy.ParseIdentityPolicy([]byte(rr.policy)); err != nil {
			return "", nil, &Error{Status: http.StatusBadRequest, Code: CodeMalformedPolicyDocument, Message: "The policy is not valid: " + err.Error()}
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(rr.policy)); err != nil {
			return "", nil, &Error{Status: http.StatusBadRequest, Code: CodeMalformedPolicyDocument, Message: "The policy is not valid JSON."}
		}
		doc = buf.String()
	}
	var names []string
	ids := h.auth.Store().Identities()
	for _, a := range rr.policyNames {
		m := managedPolicyARN.FindStringSubmatch(a)
		if m == nil {
			return "", nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: fmt.Sprintf("PolicyArns: %q is not a managed policy ARN (arn:aws:iam::<account>:policy/<name>)", clip(a))}
		}
		if m[1] != rr.role.AccountID {
			return "", nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: fmt.Sprintf("PolicyArns: %s is not in the role's account %s", clip(a), rr.role.AccountID)}
		}
		if _, ok := ids.Policy(m[2]); !ok {
			return "", nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: fmt.Sprintf("PolicyArns: policy %s does not exist", clip(a))}
		}
		names = append(names, m[2])
	}
	return doc, names, nil
}

func (h *Handler) assumeRole(r *http.Request, p *auth.Principal, params url.Values, rec *auth.AuditRecord) (any, *Error) {
	var v violations
	rr := h.parseRoleRequest(&v, params)
	ext, hasExt := param(params, "ExternalId")
	if hasExt {
		switch {
		case len(ext) < 2:
			v.add(&ext, "externalId", "Member must have length greater than or equal to 2")
		case len(ext) > 1224:
			v.add(&ext, "externalId", "Member must have length less than or equal to 1224")
		case !externalIDRe.MatchString(ext):
			v.add(&ext, "externalId", `Member must satisfy regular expression pattern: [\w+=,.@:\/-]*`)
		}
	}
	src, hasSrc := param(params, "SourceIdentity")
	if hasSrc {
		switch {
		case len(src) < 2 || len(src) > 64:
			v.add(&src, "sourceIdentity", "Member must have length between 2 and 64")
		case !sessionNameRe.MatchString(src):
			v.add(&src, "sourceIdentity", `Member must satisfy regular expression pattern: [\w+=,.@-]*`)
		}
	}
	tags, transitive := tagParams(&v, params)
	if e := refuseMFA(params); e != nil {
		return nil, e
	}
	if e := v.err(); e != nil {
		return nil, e
	}
	rec.Resource = rr.roleARN
	denied := accessDenied("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", p.ARN, rr.roleARN)
	if rr.role == nil {
		return nil, denied // AWS does not tell a missing role from a refused one
	}
	if hasSrc && strings.HasPrefix(strings.ToLower(src), "aws:") {
		return nil, validationError("SourceIdentity must not start with aws:")
	}

	// Role chaining: a role session assuming a role. Its transitive tags and source
	// identity pass on, and the new session lasts an hour at most.
	caller := p.Session
	chained := caller != nil && caller.Kind == session.KindRole
	if chained && params.Has("DurationSeconds") && rr.duration > maxChainedSession {
		return nil, validationError("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
	}
	if chained && !params.Has("DurationSeconds") {
		rr.duration = min(rr.duration, maxChainedSession)
	}
	if rr.duration > rr.role.MaxSessionDuration {
		return nil, validationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	sessTags := map[string]string{}
	var sessTransitive []string
	if chained {
		for _, k := range caller.Transitive {
			if _, clash := lookupFold(tags, k); clash {
				return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: fmt.Sprintf("Session tag %q is a transitive tag of the calling session and cannot be overridden.", clip(k))}
			}
			if val, ok := caller.Tags[k]; ok {
				sessTags[k] = val
				sessTransitive = append(sessTransitive, k)
			}
		}
		if caller.SourceIdentity != "" {
			if hasSrc && src != caller.SourceIdentity {
				return nil, validationError("SourceIdentity cannot be changed along a role chain.")
			}
			src, hasSrc = caller.SourceIdentity, true
		}
	}
	for k, val := range tags {
		sessTags[k] = val
	}
	sessTransitive = append(sessTransitive, transitive...)

	doc, names, e := h.sessionPolicies(&rr)
	if e != nil {
		return nil, e
	}

	ctx := policy.Context{"sts:RoleSessionName": {rr.sessionName}}
	if hasExt {
		ctx["sts:ExternalId"] = []string{ext}
	}
	if hasSrc {
		ctx["sts:SourceIdentity"] = []string{src}
	}
	tagContext(ctx, tags, rr.role.Tags)
	if len(transitive) > 0 {
		ctx["sts:TransitiveTagKeys"] = transitive
	}
	res := h.auth.Evaluate(r, p, "sts:AssumeRole", rr.role.ARN, rr.role.TrustPolicy, ctx, true)
	rec.Decision = res.String()
	if res.Decision != policy.Allow {
		return nil, denied
	}
	if len(tags) > 0 || len(transitive) > 0 {
		if res := h.auth.Evaluate(r, p, "sts:TagSession", rr.role.ARN, rr.role.TrustPolicy, ctx, true); res.Decision != policy.Allow {
			return nil, accessDenied("User: %s is not authorized to perform: sts:TagSession on resource: %s", p.ARN, rr.roleARN)
		}
	}
	if hasSrc && !chained {
		if res := h.auth.Evaluate(r, p, "sts:SetSourceIdentity", rr.role.ARN, rr.role.TrustPolicy, ctx, true); res.Decision != policy.Allow {
			return nil, accessDenied("User: %s is not authorized to perform: sts:SetSourceIdentity on resource: %s", p.ARN, rr.roleARN)
		}
	}

	now := h.now()
	sess := &session.Session{
		Kind: session.KindRole, Principal: rr.role.ARN, Name: rr.sessionName,
		Issued: now.UnixMilli(), Expires: now.Add(rr.duration).UnixMilli(),
		Policy: doc, PolicyNames: names, Tags: nilIfEmpty(sessTags), Transitive: sessTransitive, Chained: chained,
	}
	if hasSrc {
		sess.SourceIdentity = src
	}
	creds, e := h.issue(sess)
	if e != nil {
		return nil, e
	}
	out := &assumeRoleResponse{Xmlns: xmlns}
	out.Result.AssumedRoleUser = assumedRoleUser{
		Arn:           "arn:aws:sts::" + rr.role.AccountID + ":assumed-role/" + rr.role.Name + "/" + rr.sessionName,
		AssumedRoleID: rr.role.UniqueID + ":" + rr.sessionName,
	}
	out.Result.Credentials = creds
	out.Result.SourceIdentity = sess.SourceIdentity
	out.Result.PackedPolicySize = packedSize(doc, names, sessTags)
	return out, nil
}

func (h *Handler) assumeRoleWithWebIdentity(r *http.Request, params url.Values, rec *auth.AuditRecord) (*assumeRoleWithWebIdentityResponse, *Error) {
	var v violations
	rr := h.parseRoleRequest(&v, params)
	token, ok := param(params, "WebIdentityToken")
	switch {
	case !ok:
		v.add(nil, "webIdentityToken", "Member must not be null")
	case len(token) < 4:
		v.add(&token, "webIdentityToken", "Member must have length greater than or equal to 4")
	case len(token) > oidc.MaxTokenLength:
		v.add(nil, "webIdentityToken", fmt.Sprintf("Member must have length less than or equal to %d", oidc.MaxTokenLength))
	}
	if e := v.err(); e != nil {
		return nil, e
	}
	if params.Has("ProviderId") {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: "ProviderId names an OAuth 2.0 provider (Amazon, Facebook); Strata trusts OpenID Connect providers: omit it."}
	}
	rec.Resource = rr.roleARN
	denied := accessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity")
	if rr.role == nil {
		return nil, denied
	}
	ids := h.auth.Store().Identities()
	prov, claims, oerr := h.oidc.Verify(r.Context(), token, ids.OIDCProviders(rr.role.AccountID))
	if oerr != nil {
		status := http.StatusBadRequest
		if oerr.Code == oidc.CodeIDPCommunication {
			h.logger.Warn("fetching an identity provider's keys", "err", oerr.Message)
		}
		return nil, &Error{Status: status, Code: oerr.Code, Message: oerr.Message}
	}
	rec.PrincipalARN, rec.AccountID = prov.ARN()+":"+claims.Subject, prov.Account
	if rr.duration > rr.role.MaxSessionDuration {
		return nil, validationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	var tv violations
	for k, val := range claims.Tags {
		checkTag(&tv, k, val)
	}
	if len(claims.Tags) > 50 {
		tv = append(tv, "Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	if e := tv.err(); e != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidIdentityToken", Message: "The token's session tags are not valid: " + e.Message}
	}
	doc, names, e := h.sessionPolicies(&rr)
	if e != nil {
		return nil, e
	}

	prefix := prov.KeyPrefix()
	ctx := policy.Context{
		"sts:RoleSessionName":     {rr.sessionName},
		prefix + ":sub":           {claims.Subject},
		prefix + ":aud":           {claims.Audience},
		prefix + ":oaud":          claims.AllAudiences,
		auth.KeyFederatedProvider: {prov.ARN()},
	}
	if len(claims.AMR) > 0 {
		ctx[prefix+":amr"] = claims.AMR
	}
	tagContext(ctx, claims.Tags, rr.role.Tags)
	caller := auth.NewFederatedPrincipal(prov)
	res := h.auth.Evaluate(r, caller, "sts:AssumeRoleWithWebIdentity", rr.role.ARN, rr.role.TrustPolicy, ctx, true)
	rec.Decision = res.String()
	if res.Decision != policy.Allow {
		return nil, denied
	}
	if len(claims.Tags) > 0 {
		if res := h.auth.Evaluate(r, caller, "sts:TagSession", rr.role.ARN, rr.role.TrustPolicy, ctx, true); res.Decision != policy.Allow {
			return nil, accessDenied("Not authorized to perform sts:TagSession")
		}
	}
	if claims.SourceIdentity != "" {
		if res := h.auth.Evaluate(r, caller, "sts:SetSourceIdentity", rr.role.ARN, rr.role.TrustPolicy, ctx, true); res.Decision != policy.Allow {
			return nil, accessDenied("Not authorized to perform sts:SetSourceIdentity")
		}
	}

	now := h.now()
	sess := &session.Session{
		Kind: session.KindRole, Principal: rr.role.ARN, Name: rr.sessionName,
		Issued: now.UnixMilli(), Expires: now.Add(rr.duration).UnixMilli(),
		Policy: doc, PolicyNames: names, Tags: nilIfEmpty(claims.Tags), Transitive: claims.TransitiveTags,
		SourceIdentity: claims.SourceIdentity, Provider: prov.ARN(),
	}
	creds, e := h.issue(sess)
	if e != nil {
		return nil, e
	}
	out := &assumeRoleWithWebIdentityResponse{Xmlns: xmlns}
	out.Result.SubjectFromWebIdentityToken = claims.Subject
	out.Result.Audience = claims.Audience
	out.Result.Provider = prov.ARN()
	out.Result.AssumedRoleUser = assumedRoleUser{
		Arn:           "arn:aws:sts::" + rr.role.AccountID + ":assumed-role/" + rr.role.Name + "/" + rr.sessionName,
		AssumedRoleID: rr.role.UniqueID + ":" + rr.sessionName,
	}
	out.Result.Credentials = creds
	out.Result.SourceIdentity = claims.SourceIdentity
	out.Result.PackedPolicySize = packedSize(doc, names, claims.Tags)
	return out, nil
}

// issue mints the credentials of sess.
func (h *Handler) issue(sess *session.Session) (credentials, *Error) {
	internal := &Error{Status: http.StatusInternalServerError, Code: CodeInternalFailure, Message: "An internal error occurred."}
	akid, err := session.NewAccessKeyID()
	if err != nil {
		return credentials{}, internal
	}
	if sess.Secret, err = session.NewSecret(); err != nil {
		return credentials{}, internal
	}
	token, err := h.ring.Seal(akid, sess)
	if err != nil {
		h.logger.Error("sealing a session token", "err", err)
		return credentials{}, internal
	}
	return credentials{AccessKeyID: akid, SecretAccessKey: sess.Secret, SessionToken: token, Expiration: expiration(sess.ExpiresAt())}, nil
}

// tagParams reads Tags.member.N.{Key,Value} and TransitiveTagKeys.member.N.
func tagParams(v *violations, params url.Values) (map[string]string, []string) {
	var tags map[string]string
	for i := 1; ; i++ {
		k, okK := param(params, "Tags.member."+strconv.Itoa(i)+".Key")
		val, okV := param(params, "Tags.member."+strconv.Itoa(i)+".Value")
		if !okK && !okV {
			break
		}
		if i > 50 {
			v.add(nil, "tags", "Member must have length less than or equal to 50")
			break
		}
		if !okK || !okV {
			v.add(nil, "tags."+strconv.Itoa(i)+".member."+map[bool]string{true: "value", false: "key"}[okK], "Member must not be null")
			continue
		}
		checkTag(v, k, val)
		if tags == nil {
			tags = map[string]string{}
		}
		if _, dup := lookupFold(tags, k); dup {
			v.add(&k, "tags", "Duplicate tag keys found. Please note that Tag keys are case insensitive.")
			continue
		}
		tags[k] = val
	}
	var transitive []string
	for i := 1; ; i++ {
		k, ok := param(params, "TransitiveTagKeys.member."+strconv.Itoa(i))
		if !ok {
			break
		}
		if _, ok := lookupFold(tags, k); !ok {
			v.add(&k, "transitiveTagKeys", "Member must be the key of a tag of this request")
			continue
		}
		transitive = append(transitive, k)
	}
	return tags, transitive
}

func checkTag(v *violations, k, val string) {
	switch {
	case utf8.RuneCountInString(k) < 1 || utf8.RuneCountInString(k) > 128:
		v.add(&k, "tags.member.key", "Member must have length between 1 and 128")
	case !tagKeyRe.MatchString(k):
		v.add(&k, "tags.member.key", `Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]+`)
	case utf8.RuneCountInString(val) > 256:
		v.add(&val, "tags.member.value", "Member must have length less than or equal to 256")
	case !tagValueRe.MatchString(val):
		v.add(&val, "tags.member.value", `Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]*`)
	}
}

// tagContext puts the request's tags (aws:RequestTag/<k>, aws:TagKeys) and the role's
// (aws:ResourceTag/<k>) into ctx.
func tagContext(ctx policy.Context, requestTags, roleTags map[string]string) {
	if len(requestTags) > 0 {
		keys := make([]string, 0, len(requestTags))
		for k, val := range requestTags {
			keys = append(keys, k)
			ctx[policy.KeyRequestTagPrefix+k] = []string{val}
		}
		slices.Sort(keys)
		ctx[policy.KeyTagKeys] = keys
	}
	for k, val := range roleTags {
		ctx[policy.KeyResourceTagPrefix+k] = []string{val}
	}
}

// durationParam reads a DurationSeconds parameter, def when absent.
func durationParam(v *violations, params url.Values, name, member string, def, min, max time.Duration) time.Duration {
	s, ok := param(params, name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		v.add(&s, member, "Member must be an integer")
	case time.Duration(n)*time.Second < min:
		v.add(&s, member, "Member must have value greater than or equal to "+strconv.Itoa(int(min/time.Second)))
	case time.Duration(n)*time.Second > max:
		v.add(&s, member, "Member must have value less than or equal to "+strconv.Itoa(int(max/time.Second)))
	default:
		return time.Duration(n) * time.Second
	}
	return def
}

// param returns a parameter; ok is false when it is absent.
func param(params url.Values, name string) (string, bool) {
	vs, ok := params[name]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

func lookupFold(m map[string]string, key string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// packedSize is PackedPolicySize: how full, in percent, the session policies and tags
// are against the 2,048 characters AWS allows them; nil when there are none.
func packedSize(doc string, names []string, tags map[string]string) *int {
	if doc == "" && len(names) == 0 && len(tags) == 0 {
		return nil
	}
	n := len(doc)
	for _, name := range names {
		n += len(name)
	}
	for k, v := range tags {
		n += len(k) + len(v)
	}
	pct := min(100, (n*100+maxSessionPolicy-1)/maxSessionPolicy)
	return &pct
}

// setRequestID puts the request id into an answer's ResponseMetadata.
func setRequestID(out any, id string) {
	switch o := out.(type) {
	case *assumeRoleResponse:
		o.ResponseMetadata.RequestID = id
	case *assumeRoleWithWebIdentityResponse:
		o.ResponseMetadata.RequestID = id
	case *getCallerIdentityResponse:
		o.ResponseMetadata.RequestID = id
	case *getSessionTokenResponse:
		o.ResponseMetadata.RequestID = id
	}
}

func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// clipAction keeps a client-chosen action name printable and short.
func clipAction(a string) string {
	if len(a) > 64 || strings.ContainsFunc(a, func(r rune) bool { return r < 'A' || r > 'z' }) {
		return "(invalid)"
	}
	return a
}
