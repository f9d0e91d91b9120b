// Package sigv4 verifies AWS Signature Version 4 on incoming HTTP requests,
// the way an AWS service such as Amazon Managed Service for Prometheus does.
//
// Start from Verifier: build one with New from a Config (region, service,
// clock skew) and a CredentialStore (access key ID -> secret, session token,
// principal), then call Verify for each request with the body the HTTP layer
// has read, or VerifyHashed with the body's SHA-256. A verified request yields
// an Identity; a rejected one an *Error whose Kind (ErrSignatureMismatch,
// ErrRequestTimeTooSkewed, ...) maps to an AWS error code with AWSErrorCode.
//
//	request ──► Authorization header? ──yes──► parse Credential, SignedHeaders, Signature; X-Amz-Date/Date
//	               │ no
//	               └──► X-Amz-Algorithm/Credential/Signature in query? ──no──► ErrMissingAuthentication
//	                       │ yes: parse X-Amz-* (presigned)
//	                       ▼
//	host signed? scope region/service/date? clock skew / expiry?
//	                       ▼
//	CredentialStore.LookupCredential ──► token expired? X-Amz-Security-Token matches?
//	                       ▼
//	x-amz-content-sha256 vs body ──► canonical request ──► string to sign
//	                       ▼
//	HMAC with cached signing key (access key, secret, date) ──► constant-time compare
//
// Canonicalization follows AWS's specification for every service but S3 and
// agrees byte for byte with AWS's signing test suite (testdata/sigv4): the
// path is normalized and then encoded once more, query parameters are decoded
// and re-encoded with the RFC 3986 unreserved set and sorted, header values
// are trimmed with runs of spaces collapsed. Where real clients differ from
// the specification (the Go SDK does not normalize paths; presigners sign the
// payload differently; some append the session token after signing), the
// verifier tries those variants too, after the specification's own form; see
// Verifier.Verify.
package sigv4
