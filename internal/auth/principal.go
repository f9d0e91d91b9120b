package auth

import (
	"context"
	"slices"
	"time"

	"github.com/stratametrics/strata/internal/auth/oidc"
	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/auth/session"
)

// Principal is an authenticated caller: the account root, an IAM user, or a
// session of either or of a role (temporary credentials from STS). Verified
// requests carry one in their context; see PrincipalFromContext.
//
// A Principal is immutable once built and shared by every request signed with
// one of its access keys (or with one session's credentials); do not modify it
// or its slices.
type Principal struct {
	// ARN is "arn:aws:iam::<account>:root" for the account root,
	// "arn:aws:iam::<account>:user/<name>" for a user (also for their
	// GetSessionToken sessions) and
	// "arn:aws:sts::<account>:assumed-role/<role>/<session>" for a role session.
	ARN string
	// AccountID is the 12-digit account the principal belongs to.
	AccountID string
	// Type is the aws:PrincipalType value: policy.PrincipalTypeAccount for the
	// root, policy.PrincipalTypeUser for users.
	Type string
	// Name is the user name; empty for the root.
	Name string
	// Policies are the identity policies attached to the principal, in the
	// order the identities file lists them (named policies first, then inline
	// ones). The root needs none: it may do anything in its own account that
	// no explicit Deny forbids.
	Policies []*policy.Policy
	// PolicyNames names Policies[i] for audit records: the named policy's
	// name, or "<user>/inline-<n>" for an inline document.
	PolicyNames []string
	// UserID is aws:userid and GetCallerIdentity's UserId: the account for the
	// root, AIDA… for a user, AROA…:<session> for a role session.
	UserID string
	// Tags are aws:PrincipalTag/<key>: a user's tags, or a role session's (the
	// role's, overridden by the session's).
	Tags map[string]string
	// SessionPolicies are the session policies of temporary credentials (see
	// policy.Request.SessionPolicies); nil for none.
	SessionPolicies []*policy.Policy
	// Session is the session behind temporary credentials; nil for long-term
	// access keys.
	Session *session.Session
	// Role is the role of a role session.
	Role *Role

	pp      policy.Principal
	context []contextEntry // the condition keys the principal brings
}

// contextEntry is a condition key a principal brings to every request.
type contextEntry struct {
	key    string
	values []string
}

// finish derives what evaluation needs: the policy principal and the condition
// keys (aws:PrincipalTag/<k>, aws:TokenIssueTime, aws:SourceIdentity,
// aws:FederatedProvider).
func (p *Principal) finish() *Principal {
	p.pp = policy.Principal{ARN: p.ARN, Account: p.AccountID, Type: p.Type, Root: p.Type == policy.PrincipalTypeAccount, UserID: p.UserID}
	if p.Type == policy.PrincipalTypeUser {
		p.pp.Username = p.Name
	}
	p.context = p.context[:0]
	keys := make([]string, 0, len(p.Tags))
	for k := range p.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p.context = append(p.context, contextEntry{KeyPrincipalTagPrefix + k, []string{p.Tags[k]}})
	}
	if s := p.Session; s != nil {
		p.context = append(p.context, contextEntry{KeyTokenIssueTime, []string{s.IssuedAt().Format(tokenTimeLayout)}})
		if s.SourceIdentity != "" {
			p.context = append(p.context, contextEntry{KeySourceIdentity, []string{s.SourceIdentity}})
		}
		if s.Provider != "" {
			p.context = append(p.context, contextEntry{KeyFederatedProvider, []string{s.Provider}})
		}
	}
	return p
}

// Condition keys principals bring.
const (
	KeyPrincipalTagPrefix = "aws:PrincipalTag/"
	KeyTokenIssueTime     = "aws:TokenIssueTime"
	KeySourceIdentity     = "aws:SourceIdentity"
	KeyFederatedProvider  = "aws:FederatedProvider"
)

// tokenTimeLayout is how aws:TokenIssueTime is spelled: ISO 8601 with
// milliseconds, as IAM's revoke-sessions policy compares it.
const tokenTimeLayout = "2006-01-02T15:04:05.000Z"

// Temporary reports whether p signs with temporary credentials.
func (p *Principal) Temporary() bool { return p.Session != nil }

// IsRoot reports whether p is the root of its account.
func (p *Principal) IsRoot() bool { return p.Type == policy.PrincipalTypeAccount }

// String returns the ARN; a Principal holds no secret.
func (p *Principal) String() string { return p.ARN }

// PolicyPrincipal returns p as the policy package sees a caller.
func (p *Principal) PolicyPrincipal() policy.Principal { return p.pp }

// policyName names pol for audit records, "" when pol is not one of p's.
func (p *Principal) policyName(pol *policy.Policy) string {
	for i, q := range p.Policies {
		if q == pol && i < len(p.PolicyNames) {
			return p.PolicyNames[i]
		}
	}
	return ""
}

func rootARN(account string) string { return "arn:aws:iam::" + account + ":root" }

// NewRootPrincipal returns the root user of account, for handler tests
// (with WithPrincipal); the Store builds its own.
func NewRootPrincipal(account string) *Principal {
	p := &Principal{ARN: rootARN(account), AccountID: account, Type: policy.PrincipalTypeAccount, UserID: account}
	return p.finish()
}

// NewUserPrincipal returns the IAM user name of account with identity
// policies; names (optional) label them in audit records.
func NewUserPrincipal(account, name string, policies []*policy.Policy, names []string) *Principal {
	p := &Principal{
		ARN:         "arn:aws:iam::" + account + ":user/" + name,
		AccountID:   account,
		Type:        policy.PrincipalTypeUser,
		Name:        name,
		Policies:    policies,
		PolicyNames: names,
	}
	p.UserID = session.UniqueID("AIDA", p.ARN)
	return p.finish()
}

// NewFederatedPrincipal is the caller of AssumeRoleWithWebIdentity: an identity
// provider's user, known only by the provider.
func NewFederatedPrincipal(provider *oidc.Provider) *Principal {
	p := &Principal{}
	p.pp = policy.Principal{Federated: provider.ARN()}
	return p
}

// withSession returns a copy of p signing with the temporary credentials of s:
// same permissions, plus aws:TokenIssueTime (GetSessionToken).
func (p *Principal) withSession(s *session.Session) *Principal {
	c := *p
	c.context = nil
	c.Session = s
	return c.finish()
}

// Role is an IAM role from the identities file, assumed through STS.
type Role struct {
	// ARN is "arn:aws:iam::<account>:role/<name>".
	ARN       string
	AccountID string
	Name      string
	// UniqueID is the role's AROA… id, the first part of its sessions' aws:userid.
	UniqueID string
	// Tags are the role's tags: its sessions' aws:PrincipalTag/<key> unless a
	// session tag overrides one, and aws:ResourceTag/<key> when assuming it.
	Tags map[string]string
	// MaxSessionDuration bounds AssumeRole's DurationSeconds (1 to 12 hours).
	MaxSessionDuration time.Duration
	// RevokeBefore revokes the sessions issued before it (IAM's "revoke active
	// sessions"): they get the AWSRevokeOlderSessions Deny policy. Zero means none.
	RevokeBefore time.Time
	// TrustPolicy is the role's trust (assume-role) policy, compiled as a
	// resource policy on the role: its Principal elements name who may
	// assume the role. TrustPolicyJSON is the document as written.
	TrustPolicy     *policy.Policy
	TrustPolicyJSON []byte
	// Policies are the identity policies sessions of the role get, and
	// PolicyNames their names, as for Principal.
	Policies    []*policy.Policy
	PolicyNames []string
}

// Account is an account from the identities file (or the server's default
// account, which always exists).
type Account struct {
	ID   string
	Name string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p. The middleware does this for every
// request it lets through; tests of handlers can do it directly.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the verified caller of the request whose
// context ctx is. ok is false outside a request that passed Auth.Wrap.
func PrincipalFromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
