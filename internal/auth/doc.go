// Package auth authenticates and authorizes every request the way Amazon
// Managed Service for Prometheus does: AWS Signature Version 4, then IAM
// policies, then an audit record.
//
// Start from Auth: New builds it from a Config (flags under "auth."), the
// server's Env (region, default account, data directory) and a ResourceInfo
// (resource policies and tags, from the metadata store); Wrap puts a route's
// handler behind it, given the route's IAM action and resource ARN
// (RouteInfo); handlers find the caller with PrincipalFromContext.
//
//	               ┌──────────────────────── Auth.Wrap ────────────────────────┐
//	request ──▶ body ≤ max ──▶ sigv4.Verifier ──▶ Store ──▶ policy.Explain ──▶ handler
//	               │ 413          │ 400/403          (*Principal)   │ 403 AccessDenied
//	               └──────────────┴───────────── audit record ◀─────┴────────────┘
//
// The building blocks live in subpackages: auth/sigv4 verifies signatures
// against a sigv4.CredentialStore, which Store implements from the
// identities file (ParseIdentities documents its format) and the root key;
// auth/policy parses and evaluates IAM policy documents.
//
// Identities: the root key (STRATA_ROOT_ACCESS_KEY_ID and
// STRATA_ROOT_SECRET_ACCESS_KEY, or one generated into <data-dir>/root-credentials
// when there is neither that nor an identities file) is the root user of the
// server's default account. The identities file adds accounts, users with
// access keys, roles and policies, and is reloaded when it changes; a version
// that does not validate is logged and ignored.
//
// Secrets never leave the Store: not in errors, logs, audit records or
// metrics.
package auth
