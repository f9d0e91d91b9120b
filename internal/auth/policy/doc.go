// Package policy parses IAM-style JSON policy documents and decides requests
// against them, the way AWS does for Amazon Managed Service for Prometheus.
//
// Start from Evaluate (or Explain, which also says which statements
// decided). Policies come from ParseIdentityPolicy (attached to a principal)
// and ParseResourcePolicy (attached to a workspace); both compile patterns
// and condition values once, so evaluation does no parsing and, in the
// common case, no allocation. A *Policy is immutable and safe for
// concurrent use.
//
//	identity policies --------------+
//	                                |
//	Request{Principal, Action,      v
//	  Resource, Context, Time} --> Explain --> Result{Decision, Reason,
//	                                ^                 Identity, Resource}
//	                                |
//	resource policy ----------------+
//
// # Statements
//
// A statement applies to a request when its Action (or NotAction) matches
// the action, its Resource (or NotResource) matches the resource, all its
// conditions hold and, in a resource policy, its Principal (or NotPrincipal)
// matches the caller. Identity policies ignore Principal elements; a
// resource-policy statement without one (possible only through Parse)
// applies to no one.
//
//   - Actions match case-insensitively with `*` and `?` wildcards.
//   - Resources match per ARN component, case-sensitively, with wildcards;
//     a request resource that is not an ARN matches only "*".
//   - Principals allow no wildcards but "*". A 12-digit account ID and
//     "arn:aws:iam::<acct>:root" both name the account. A role ARN also
//     matches that role's sessions (arn:aws:sts::<acct>:assumed-role/<role>/<s>).
//
// # Conditions
//
// Operators are ANDed, keys within an operator are ANDed, and the values of
// one key are ORed (NORed for negated operators such as StringNotEquals).
// Keys are case-insensitive. A key missing from the request makes a positive
// operator false and a negated one true; with the IfExists suffix a missing
// key makes the condition true. ForAnyValue: holds when some request value
// satisfies the operator and is false for a missing key; ForAllValues: holds
// when every request value does and is true for a missing key. Null tests
// presence. Policy variables (${aws:username}, ${aws:PrincipalAccount, 'x'},
// ${*}) are expanded in Resource and in String and Arn condition values of
// 2012-10-17 documents; a variable with no single value and no default makes
// that value not match, and substituted text is literal, never a wildcard.
//
// # Decision rules
//
// Let the resource account be the account field of the request's resource
// ARN (none for "*"), and the principal account be Principal.Account.
//
//  1. A matching Deny statement in any identity policy, or in the resource
//     policy with a Principal naming the caller or the caller's account,
//     gives ExplicitDeny. Nothing overrides it, not even the root.
//  2. Same account (or the resource has no account):
//     - the root of the account is allowed;
//     - else a matching identity Allow allows;
//     - else a resource-policy Allow naming the caller directly ("*", its
//     ARN, or its role) allows. One that names only the caller's account
//     delegates to the account's identity policies, as in AWS, and so does
//     not allow by itself.
//  3. Cross-account: the caller needs both a matching Allow in its own
//     identity policies (the root of the caller's account counts as having
//     one) and a resource-policy Allow naming the caller, its role, its
//     account or "*". This is AWS's documented cross-account rule.
//  4. Service principals (Principal.Service) and anonymous callers (no
//     account) have no identity policies: only a resource-policy Allow naming
//     them directly, or "*", allows.
//  5. Otherwise ImplicitDeny.
//
// Not modelled: permission boundaries, session policies, SCPs, and
// resource-policy grants to the role ARN being limited by session policies.
//
// # Context keys
//
// Callers put request facts into Request.Context: aws:SourceIp,
// aws:SecureTransport, aws:RequestTag/<k>, aws:ResourceTag/<k>,
// aws:TagKeys and any service key. aws:PrincipalAccount, aws:PrincipalArn
// (the role ARN for role sessions), aws:PrincipalType, aws:username and
// aws:userid are derived from Request.Principal, and aws:CurrentTime and
// aws:EpochTime from Request.Time, unless the Context sets them.
package policy
