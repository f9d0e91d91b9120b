package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Principal types, the values of aws:PrincipalType.
const (
	PrincipalTypeAccount       = "Account" // the account root
	PrincipalTypeUser          = "User"
	PrincipalTypeAssumedRole   = "AssumedRole"
	PrincipalTypeFederatedUser = "FederatedUser"
	PrincipalTypeAnonymous     = "Anonymous"
)

// Principal is the authenticated caller of a request.
//
// Build one with ParsePrincipal from the caller's ARN, or fill the fields
// directly; empty Account, Type and Username are then derived from ARN.
type Principal struct {
	// ARN identifies the caller: "arn:aws:iam::<acct>:root",
	// "arn:aws:iam::<acct>:user/<path/><name>",
	// "arn:aws:sts::<acct>:assumed-role/<role>/<session>",
	// "arn:aws:sts::<acct>:federated-user/<name>" or an IAM role ARN.
	// Empty for anonymous callers and service principals.
	ARN string
	// Account is the caller's 12-digit account ID. Empty means taken from ARN.
	Account string
	// Type is the aws:PrincipalType value. Empty means derived from ARN.
	Type string
	// Root marks the account's root user. The root of the resource's account
	// is allowed everything not explicitly denied. ParsePrincipal sets it for
	// ":root" ARNs.
	Root bool
	// Username is aws:username. Empty means the last path element of an IAM
	// user ARN.
	Username string
	// UserID is aws:userid. Empty means the key is absent.
	UserID string
	// Service is set instead of ARN for AWS service principals, e.g.
	// "aps.amazonaws.com". Service principals are matched only by resource
	// policies.
	Service string
	// Federated is set instead of ARN for a caller authenticated by an
	// identity provider (AssumeRoleWithWebIdentity): the provider's ARN, e.g.
	// "arn:aws:iam::111122223333:oidc-provider/issuer.example.com". It is
	// matched only by a resource policy's "Federated" principal.
	Federated string
}

// ParsePrincipal builds a Principal from an IAM or STS ARN and checks its
// shape.
func ParsePrincipal(arn string) (Principal, error) {
	a, ok := parsePrincipalARN(arn)
	if !ok {
		return Principal{}, fmt.Errorf("policy: %q is not an IAM user, role, assumed-role, federated-user or root ARN", arn)
	}
	p := Principal{ARN: arn, Account: a.account, Type: a.typ, Root: a.typ == PrincipalTypeAccount}
	if a.typ == principalTypeRole {
		// AWS has no "Role" principal type: a role acts through sessions.
		p.Type = PrincipalTypeAssumedRole
	}
	if a.typ == PrincipalTypeUser {
		p.Username = a.name
	}
	return p, nil
}

// principalARN is a parsed IAM/STS principal ARN.
type principalARN struct {
	partition, account string
	typ                string // PrincipalType*, or "Role" for an IAM role ARN
	name               string // user, role or federated user name (no path)
	path               string // role or user path and name, e.g. "team/alice"
}

const principalTypeRole = "Role"

func parsePrincipalARN(s string) (principalARN, bool) {
	parts, ok := splitARN(s, false)
	if !ok || parts[0] != "arn" || parts[1] == "" || parts[3] != "" || !isAccountID(parts[4]) {
		return principalARN{}, false
	}
	a := principalARN{partition: parts[1], account: parts[4]}
	res := parts[5]
	switch parts[2] {
	case "iam":
		if res == "root" {
			a.typ = PrincipalTypeAccount
			return a, true
		}
		kind, rest, ok := strings.Cut(res, "/")
		if !ok || rest == "" || strings.HasSuffix(rest, "/") {
			return principalARN{}, false
		}
		switch kind {
		case "user":
			a.typ = PrincipalTypeUser
		case "role":
			a.typ = principalTypeRole
		default:
			return principalARN{}, false
		}
		a.path = rest
		a.name = rest[strings.LastIndexByte(rest, '/')+1:]
		return a, true
	case "sts":
		kind, rest, ok := strings.Cut(res, "/")
		if !ok {
			return principalARN{}, false
		}
		switch kind {
		case "assumed-role":
			role, session, ok := strings.Cut(rest, "/")
			if !ok || role == "" || session == "" || strings.Contains(session, "/") {
				return principalARN{}, false
			}
			a.typ, a.name = PrincipalTypeAssumedRole, role
			return a, true
		case "federated-user":
			if rest == "" || strings.Contains(rest, "/") {
				return principalARN{}, false
			}
			a.typ, a.name = PrincipalTypeFederatedUser, rest
			return a, true
		}
	}
	return principalARN{}, false
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// The helpers below derive condition-key values from the ARN when the caller
// left a field empty. They slice the ARN and never allocate, except
// principalArn for role sessions.

func (p *Principal) account() string {
	if p.Account != "" {
		return p.Account
	}
	if parts, ok := splitARN(p.ARN, false); ok && isAccountID(parts[4]) {
		return parts[4]
	}
	return ""
}

func (p *Principal) isRoot() bool {
	if p.Root {
		return true
	}
	parts, ok := splitARN(p.ARN, false)
	return ok && parts[2] == "iam" && parts[5] == "root"
}

func (p *Principal) principalType() string {
	if p.Type != "" {
		return p.Type
	}
	if p.Service != "" || p.Federated != "" {
		return "" // AWS defines no aws:PrincipalType for these
	}
	if p.ARN == "" {
		return PrincipalTypeAnonymous
	}
	if a, ok := parsePrincipalARN(p.ARN); ok {
		if a.typ == principalTypeRole {
			return PrincipalTypeAssumedRole
		}
		return a.typ
	}
	return ""
}

func (p *Principal) username() string {
	if p.Username != "" {
		return p.Username
	}
	if a, ok := parsePrincipalARN(p.ARN); ok && a.typ == PrincipalTypeUser {
		return a.name
	}
	return ""
}

// principalArn is aws:PrincipalArn: for a role session AWS reports the role's
// ARN, not the session's.
func (p *Principal) principalArn() string {
	if a, ok := parsePrincipalARN(p.ARN); ok && a.typ == PrincipalTypeAssumedRole {
		return "arn:" + a.partition + ":iam::" + a.account + ":role/" + a.name
	}
	return p.ARN
}

// grant says how a Principal element matched a caller.
type grant uint8

const (
	grantNone grant = iota
	// grantAccount: matched only through the caller's account ("123456789012"
	// or "arn:aws:iam::123456789012:root"). AWS calls this delegating to the
	// account: the account's identity policies must still allow.
	grantAccount
	// grantRole: matched the role behind the caller's role session (limited
	// by the session's policies, see Request.SessionPolicies).
	grantRole
	// grantDirect: matched "*" or the caller's own ARN.
	grantDirect
)

// principalSet is a compiled Principal or NotPrincipal element. AWS allows no
// wildcards in principals except a lone "*", so matching is string equality.
type principalSet struct {
	any       bool
	accounts  []string // account IDs
	arns      []string // user, role, session and federated-user ARNs
	roles     []roleRef
	services  []string
	federated []string // identity providers: matched by Principal.Federated (web identities)
	canonical []string // likewise
}

// roleRef lets a role ARN match sessions of that role, whose ARNs omit the
// role's path.
type roleRef struct {
	partition, account, name string
}

var errPrincipalWildcard = errors.New("wildcards are not allowed in principals except a lone \"*\"")

func (ps *principalSet) addAWS(v string) error {
	switch {
	case v == "*":
		ps.any = true
		return nil
	case isAccountID(v):
		ps.accounts = append(ps.accounts, v)
		return nil
	case strings.ContainsAny(v, "*?"):
		return errPrincipalWildcard
	}
	a, ok := parsePrincipalARN(v)
	if !ok {
		return fmt.Errorf("%q is not an account ID or an IAM/STS principal ARN", v)
	}
	switch a.typ {
	case PrincipalTypeAccount:
		ps.accounts = append(ps.accounts, a.account)
	case principalTypeRole:
		ps.arns = append(ps.arns, v)
		ps.roles = append(ps.roles, roleRef{a.partition, a.account, a.name})
	default:
		ps.arns = append(ps.arns, v)
	}
	return nil
}

func (ps *principalSet) match(p *Principal) grant {
	if ps.any {
		return grantDirect
	}
	if p.Service != "" {
		if contains(ps.services, p.Service) {
			return grantDirect
		}
		return grantNone
	}
	if p.Federated != "" {
		if contains(ps.federated, p.Federated) {
			return grantDirect
		}
		return grantNone
	}
	if p.ARN != "" {
		if contains(ps.arns, p.ARN) {
			return grantDirect
		}
		if len(ps.roles) > 0 {
			if a, ok := parsePrincipalARN(p.ARN); ok && a.typ == PrincipalTypeAssumedRole {
				for _, r := range ps.roles {
					if r.name == a.name && r.account == a.account && r.partition == a.partition {
						return grantRole
					}
				}
			}
		}
	}
	if acct := p.account(); acct != "" && contains(ps.accounts, acct) {
		if p.isRoot() {
			return grantDirect
		}
		return grantAccount
	}
	return grantNone
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
