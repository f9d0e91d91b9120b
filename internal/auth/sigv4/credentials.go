package sigv4

import (
	"context"
	"time"
)

// Credential is what a CredentialStore knows about one access key ID.
type Credential struct {
	// SecretAccessKey signs the request. Never logged, never echoed.
	SecretAccessKey string

	// SessionToken is empty for long-term keys. For temporary credentials
	// (STS) it is the token the request must carry in X-Amz-Security-Token,
	// byte for byte; a request with a long-term key must carry none.
	SessionToken string

	// Expires is when temporary credentials stop working. Zero means never.
	Expires time.Time

	// Principal is opaque to this package: whatever the caller wants back in
	// Identity.Principal (a user, a role session, a workspace grant).
	Principal any
}

// String hides the secret and token from %v and %s.
func (c Credential) String() string { return "sigv4.Credential{redacted}" }

// GoString hides the secret and token from %#v.
func (c Credential) GoString() string { return c.String() }

// CredentialStore looks up the credential for an access key ID.
//
// Implementations must be safe for concurrent use: Verify calls
// LookupCredential from every request goroutine. ok is false for an unknown
// key (Verify answers ErrUnknownAccessKey); a non-nil err means the store
// itself failed (Verify returns it wrapped, which the HTTP layer maps to a
// 500). ctx is the request's context.
type CredentialStore interface {
	LookupCredential(ctx context.Context, accessKeyID string) (cred Credential, ok bool, err error)
}

// SessionCredentialStore is a CredentialStore that also verifies temporary credentials
// whose security token carries the session itself, as AWS STS's do: a request with an
// X-Amz-Security-Token is looked up with LookupSession instead of LookupCredential, so a
// store needs no table of issued sessions and every process that holds the token key
// can verify them.
//
// LookupSession returns ok false when the token is not valid for the access key (the
// request gets UnrecognizedClientException, "The security token included in the
// request is invalid"); an expired session is returned with its Expires, and Verify
// answers ExpiredTokenException. The returned Credential's SessionToken must equal
// sessionToken.
type SessionCredentialStore interface {
	CredentialStore
	LookupSession(ctx context.Context, accessKeyID, sessionToken string) (cred Credential, ok bool, err error)
}

// StaticCredentials is an in-memory CredentialStore keyed by access key ID,
// for tests and fixed configurations. Do not modify the map once a Verifier
// uses it; concurrent lookups are then safe.
type StaticCredentials map[string]Credential

// LookupCredential implements CredentialStore.
func (s StaticCredentials) LookupCredential(_ context.Context, accessKeyID string) (Credential, bool, error) {
	c, ok := s[accessKeyID]
	return c, ok, nil
}
