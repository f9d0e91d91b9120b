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

// StaticCredentials is an in-memory CredentialStore keyed by access key ID,
// for tests and fixed configurations. Do not modify the map once a Verifier
// uses it; concurrent lookups are then safe.
type StaticCredentials map[string]Credential

// LookupCredential implements CredentialStore.
func (s StaticCredentials) LookupCredential(_ context.Context, accessKeyID string) (Credential, bool, error) {
	c, ok := s[accessKeyID]
	return c, ok, nil
}
