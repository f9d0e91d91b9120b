package policy

import (
	"fmt"
	"strconv"
	"time"
)

// Request is what is being authorized.
type Request struct {
	// Principal is the authenticated caller.
	Principal Principal
	// Action is "service:Action", e.g. "aps:RemoteWrite". Matched
	// case-insensitively.
	Action string
	// Resource is the ARN acted on, e.g.
	// "arn:aws:aps:us-east-1:123456789012:workspace/ws-1", or "*" for
	// actions on no particular resource. Its account decides whether the
	// request is cross-account; a resource without an account is treated as
	// belonging to the principal's account.
	Resource string
	// Context holds condition keys such as aws:SourceIp,
	// aws:SecureTransport, aws:ResourceTag/<k> and aws:TagKeys. May be nil.
	Context Context
	// Time supplies aws:CurrentTime and aws:EpochTime unless Context sets
	// them. The zero Time leaves both absent. Inject a clock rather than
	// calling time.Now here, so evaluation stays deterministic in tests.
	Time time.Time
	// SessionPolicies are the session policies of the caller's temporary
	// credentials (AssumeRole's Policy and PolicyArns). When there are any, the
	// session may do only what both they and its identity policies allow: an
	// identity Allow counts only where a session policy allows too, and so does
	// a resource-policy grant to the role behind the session (one naming the
	// session itself is not limited). A Deny in them denies. Nil means no
	// session policies.
	SessionPolicies []*Policy
	// RequireResourceGrant makes an Allow need a resource-policy statement that
	// names the caller (or its account, with an identity Allow), even in the
	// resource's own account and for its root: the rule of a role's trust
	// policy for sts:AssumeRole.
	RequireResourceGrant bool
}

// Decision is the outcome of an evaluation.
type Decision uint8

// Decisions. The zero value denies.
const (
	// ImplicitDeny: nothing allowed the request.
	ImplicitDeny Decision = iota
	// Allow: the request may proceed.
	Allow
	// ExplicitDeny: a Deny statement matched; no Allow can override it.
	ExplicitDeny
)

func (d Decision) String() string {
	switch d {
	case ImplicitDeny:
		return "ImplicitDeny"
	case Allow:
		return "Allow"
	case ExplicitDeny:
		return "ExplicitDeny"
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// Reason says which rule produced a Decision.
type Reason uint8

// Reasons.
const (
	// ReasonNoAllow: no applicable statement allows the request.
	ReasonNoAllow Reason = iota
	// ReasonExplicitDeny: a Deny statement matched (see Result.Identity or
	// Result.Resource).
	ReasonExplicitDeny
	// ReasonRoot: the principal is the root of the resource's account.
	ReasonRoot
	// ReasonIdentityPolicy: same account, an identity policy allows.
	ReasonIdentityPolicy
	// ReasonResourcePolicy: the resource policy names the principal (or "*").
	ReasonResourcePolicy
	// ReasonCrossAccount: cross-account, both the principal's identity
	// policy and the resource policy allow.
	ReasonCrossAccount
	// ReasonNoResourceGrant: cross-account, the identity policy allows but
	// the resource policy does not grant the principal or its account.
	ReasonNoResourceGrant
	// ReasonNoIdentityGrant: the resource policy grants access but that is
	// not enough on its own (cross-account, or a grant to the account as a
	// whole), and no identity policy of the principal allows.
	ReasonNoIdentityGrant
	// ReasonNotTrusted: Request.RequireResourceGrant, and the resource policy
	// (a role's trust policy) names neither the principal nor its account.
	ReasonNotTrusted
)

var reasonText = [...]string{
	ReasonNoAllow:         "no statement allows the request",
	ReasonExplicitDeny:    "explicitly denied",
	ReasonRoot:            "root of the resource's account",
	ReasonIdentityPolicy:  "allowed by an identity policy",
	ReasonResourcePolicy:  "allowed by the resource policy",
	ReasonCrossAccount:    "cross-account: allowed by an identity policy and the resource policy",
	ReasonNoResourceGrant: "cross-account: the resource policy does not grant the principal",
	ReasonNoIdentityGrant: "the resource policy grants access, but no identity policy of the principal allows",
	ReasonNotTrusted:      "the resource policy does not trust the principal",
}

func (r Reason) String() string {
	if int(r) < len(reasonText) {
		return reasonText[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// Match points at a statement that took part in a decision.
type Match struct {
	// Policy is nil when no statement took part.
	Policy *Policy
	// Index is the statement's index in Policy.Statements.
	Index int
}

// Statement returns the matched statement, or nil.
func (m Match) Statement() *Statement {
	if m.Policy == nil {
		return nil
	}
	return &m.Policy.Statements[m.Index]
}

// Result is a Decision with the statements behind it, for audit logs.
type Result struct {
	Decision Decision
	Reason   Reason
	// Identity is the deciding identity-policy statement: the Deny, or the
	// Allow that was used or found.
	Identity Match
	// Resource is the deciding resource-policy statement, likewise.
	Resource Match
}

// String renders the result for audit messages, e.g.
// `Allow: allowed by an identity policy (identity policy "p1" statement 0 (Sid "Write"))`.
func (r Result) String() string {
	s := r.Decision.String() + ": " + r.Reason.String()
	var parts []string
	if r.Identity.Policy != nil {
		parts = append(parts, describe("identity", r.Identity))
	}
	if r.Resource.Policy != nil {
		parts = append(parts, describe("resource", r.Resource))
	}
	for i, p := range parts {
		if i == 0 {
			s += " ("
		} else {
			s += "; "
		}
		s += p
		if i == len(parts)-1 {
			s += ")"
		}
	}
	return s
}

func describe(kind string, m Match) string {
	s := kind + " policy"
	if m.Policy.ID != "" {
		s += fmt.Sprintf(" %q", m.Policy.ID)
	}
	s += " statement " + strconv.Itoa(m.Index)
	if sid := m.Statement().Sid; sid != "" {
		s += fmt.Sprintf(" (Sid %q)", sid)
	}
	return s
}

// Evaluate decides req against the principal's identity policies and the
// resource's policy (nil when it has none). See the package documentation
// for the rules. It does not allocate in the common case and is safe for
// concurrent use.
func Evaluate(identityPolicies []*Policy, resourcePolicy *Policy, req Request) Decision {
	return Explain(identityPolicies, resourcePolicy, req).Decision
}

// Explain is Evaluate returning which statements decided.
func Explain(identityPolicies []*Policy, resourcePolicy *Policy, req Request) Result {
	e := newEnv(&req)
	p := &req.Principal

	// Session policies first: a Deny there denies, and whether they allow
	// decides what the identity policies and role grants may give.
	limited := len(req.SessionPolicies) > 0
	sessionAllows := false
	for _, pol := range req.SessionPolicies {
		if pol == nil {
			continue
		}
		for i := range pol.Statements {
			st := &pol.Statements[i]
			if !st.matchAction(req.Action) || !st.matchResource(&e) || !st.matchConditions(&e) {
				continue
			}
			if st.Effect == EffectDeny {
				return Result{Decision: ExplicitDeny, Reason: ReasonExplicitDeny, Identity: Match{pol, i}}
			}
			sessionAllows = true
		}
	}

	// Identity policies apply to their principal wherever the resource is;
	// their Principal elements, if any, are ignored.
	var idAllow Match
	for _, pol := range identityPolicies {
		if pol == nil {
			continue
		}
		for i := range pol.Statements {
			st := &pol.Statements[i]
			if !st.matchAction(req.Action) || !st.matchResource(&e) || !st.matchConditions(&e) {
				continue
			}
			if st.Effect == EffectDeny {
				return Result{Decision: ExplicitDeny, Reason: ReasonExplicitDeny, Identity: Match{pol, i}}
			}
			if idAllow.Policy == nil && (!limited || sessionAllows) {
				idAllow = Match{pol, i}
			}
		}
	}

	var resAllow Match
	resGrant := grantNone
	if pol := resourcePolicy; pol != nil {
		for i := range pol.Statements {
			st := &pol.Statements[i]
			if !st.matchAction(req.Action) {
				continue
			}
			g := st.matchPrincipal(p)
			if g == grantNone || !st.matchResource(&e) || !st.matchConditions(&e) {
				continue
			}
			if st.Effect == EffectDeny {
				return Result{Decision: ExplicitDeny, Reason: ReasonExplicitDeny, Resource: Match{pol, i}}
			}
			if g == grantRole && limited && !sessionAllows {
				continue // a grant to the role is limited by the session policies
			}
			if g > resGrant {
				resGrant, resAllow = g, Match{pol, i}
			}
		}
	}

	allow := func(r Reason) Result {
		return Result{Decision: Allow, Reason: r, Identity: idAllow, Resource: resAllow}
	}
	deny := func(r Reason) Result {
		return Result{Decision: ImplicitDeny, Reason: r, Identity: idAllow, Resource: resAllow}
	}

	acct := p.account()
	resAcct := e.resourceAccount()
	switch {
	case p.Service != "" || acct == "":
		// Service principals and anonymous callers (web identities among
		// them) have no identity policies: only a resource policy naming them
		// can allow.
		if resGrant >= grantRole {
			return allow(ReasonResourcePolicy)
		}
		return deny(ReasonNoAllow)

	case req.RequireResourceGrant && resGrant == grantNone:
		return deny(ReasonNotTrusted)

	case resAcct == "" || resAcct == acct:
		switch {
		case p.isRoot():
			return Result{Decision: Allow, Reason: ReasonRoot, Resource: resAllow}
		case idAllow.Policy != nil:
			return Result{Decision: Allow, Reason: ReasonIdentityPolicy, Identity: idAllow, Resource: resAllow}
		case resGrant >= grantRole:
			return Result{Decision: Allow, Reason: ReasonResourcePolicy, Resource: resAllow}
		case resGrant == grantAccount:
			return deny(ReasonNoIdentityGrant)
		}
		return deny(ReasonNoAllow)

	default:
		// Cross-account: the principal's own account must allow (the root
		// holds every permission in its account) and the resource's account
		// must grant the principal or its account.
		idOK := idAllow.Policy != nil || p.isRoot()
		switch {
		case idOK && resGrant != grantNone:
			return allow(ReasonCrossAccount)
		case idOK:
			return deny(ReasonNoResourceGrant)
		case resGrant != grantNone:
			return deny(ReasonNoIdentityGrant)
		}
		return deny(ReasonNoAllow)
	}
}
