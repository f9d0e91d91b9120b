package auth

import (
	"context"

	"github.com/stratametrics/strata/internal/auth/policy"
)

// Principal is an authenticated caller: the account root or an IAM user (later
// also role sessions). Verified requests carry one in their context; see
// PrincipalFromContext.
//
// A Principal is immutable once built and shared by every request signed with
// one of its access keys; do not modify it or its slices.
type Principal struct {
	// ARN is "arn:aws:iam::<account>:root" for the account root and
	// "arn:aws:iam::<account>:user/<name>" for a user.
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

	pp policy.Principal
}

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
	p := &Principal{ARN: rootARN(account), AccountID: account, Type: policy.PrincipalTypeAccount}
	p.pp = policy.Principal{ARN: p.ARN, Account: account, Type: p.Type, Root: true}
	return p
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
	p.pp = policy.Principal{ARN: p.ARN, Account: account, Type: p.Type, Username: name}
	return p
}

// Role is an IAM role from the identities file. Nothing assumes roles yet: the
// trust policy is kept for STS AssumeRole, which decides who may assume it.
type Role struct {
	// ARN is "arn:aws:iam::<account>:role/<name>".
	ARN       string
	AccountID string
	Name      string
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
