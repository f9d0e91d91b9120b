package sigv4

import (
	"errors"
	"net/http"
)

// Kind classifies why a request failed verification. The Err* values below
// are the only Kinds; test for one with errors.Is(err, sigv4.ErrSignatureMismatch).
//
// A Kind knows the error code name and HTTP status an AWS JSON service
// (AMP speaks restJson1) answers with, so the HTTP layer maps every failure in
// one place: AWSCode goes into the x-amzn-ErrorType header and the body's
// "__type", HTTPStatus is the status line.
//
// The code names are the JSON-protocol ones (suffix "Exception"). AWS query
// protocol services (STS, IAM, EC2) spell the same conditions differently:
//
//	JSON protocol (returned here)         query protocol
//	MissingAuthenticationTokenException   MissingAuthenticationToken
//	IncompleteSignatureException          IncompleteSignature
//	InvalidSignatureException             SignatureDoesNotMatch
//	UnrecognizedClientException           InvalidClientTokenId
//	ExpiredTokenException                 ExpiredToken
//	MalformedQueryString                  MalformedQueryString
type Kind struct {
	name   string
	code   string
	status int
}

// Error returns the kind's short name, e.g. "sigv4: signature mismatch".
func (k *Kind) Error() string { return k.name }

// AWSCode returns the AWS error code name for this kind.
func (k *Kind) AWSCode() string { return k.code }

// HTTPStatus returns the HTTP status AWS answers this kind with.
func (k *Kind) HTTPStatus() int { return k.status }

const (
	codeMissingAuth      = "MissingAuthenticationTokenException"
	codeIncomplete       = "IncompleteSignatureException"
	codeInvalidSignature = "InvalidSignatureException"
	codeUnrecognized     = "UnrecognizedClientException"
	codeExpiredToken     = "ExpiredTokenException"
	codeMalformedQuery   = "MalformedQueryString"
	codeInternal         = "InternalFailure"
)

// The verification failures. Each *Error that Verify returns wraps exactly
// one of them. The comment after each gives AWSCode and HTTPStatus.
var (
	// ErrMissingAuthentication: neither an Authorization header nor
	// query-string (presigned) authentication parameters.
	// MissingAuthenticationTokenException, 403.
	ErrMissingAuthentication = &Kind{"sigv4: missing authentication", codeMissingAuth, http.StatusForbidden}

	// ErrMalformedAuthorization: the Authorization header, a presigned
	// URL's X-Amz-* parameters, the date or x-amz-content-sha256 cannot be
	// parsed; the message names the part. IncompleteSignatureException, 400.
	ErrMalformedAuthorization = &Kind{"sigv4: malformed authorization", codeIncomplete, http.StatusBadRequest}

	// ErrUnsupportedAlgorithm: an algorithm other than AWS4-HMAC-SHA256
	// (SigV2, SigV4a). IncompleteSignatureException, 400.
	ErrUnsupportedAlgorithm = &Kind{"sigv4: unsupported algorithm", codeIncomplete, http.StatusBadRequest}

	// ErrHostNotSigned: SignedHeaders lacks "host".
	// IncompleteSignatureException, 400.
	ErrHostNotSigned = &Kind{"sigv4: host not signed", codeIncomplete, http.StatusBadRequest}

	// ErrMalformedQuery: the query string has an invalid percent escape, so
	// it has no canonical form. MalformedQueryString, 400 (AWS documents 404
	// for this code; 400 keeps clients from mistaking it for a wrong URL).
	ErrMalformedQuery = &Kind{"sigv4: malformed query string", codeMalformedQuery, http.StatusBadRequest}

	// ErrWrongRegion: the credential scope names another region.
	// InvalidSignatureException, 403.
	ErrWrongRegion = &Kind{"sigv4: wrong region in credential scope", codeInvalidSignature, http.StatusForbidden}

	// ErrWrongService: the credential scope names another service.
	// InvalidSignatureException, 403.
	ErrWrongService = &Kind{"sigv4: wrong service in credential scope", codeInvalidSignature, http.StatusForbidden}

	// ErrScopeDateMismatch: the credential scope date is not the date of
	// X-Amz-Date. InvalidSignatureException, 403.
	ErrScopeDateMismatch = &Kind{"sigv4: credential scope date mismatch", codeInvalidSignature, http.StatusForbidden}

	// ErrRequestTimeTooSkewed: the signing time is further than the allowed
	// clock skew from the server's clock ("Signature expired" / "Signature
	// not yet current"). InvalidSignatureException, 403.
	ErrRequestTimeTooSkewed = &Kind{"sigv4: request time too skewed", codeInvalidSignature, http.StatusForbidden}

	// ErrPresignExpired: X-Amz-Date + X-Amz-Expires has passed.
	// InvalidSignatureException, 403.
	ErrPresignExpired = &Kind{"sigv4: presigned request expired", codeInvalidSignature, http.StatusForbidden}

	// ErrUnknownAccessKey: the CredentialStore does not know the access key
	// ID. UnrecognizedClientException, 403.
	ErrUnknownAccessKey = &Kind{"sigv4: unknown access key id", codeUnrecognized, http.StatusForbidden}

	// ErrSecurityToken: temporary credentials without X-Amz-Security-Token,
	// a token that differs from the credential's, or a token sent with a
	// long-term key. UnrecognizedClientException, 403.
	ErrSecurityToken = &Kind{"sigv4: invalid security token", codeUnrecognized, http.StatusForbidden}

	// ErrExpiredToken: the credential's Expires has passed.
	// ExpiredTokenException, 403.
	ErrExpiredToken = &Kind{"sigv4: expired security token", codeExpiredToken, http.StatusForbidden}

	// ErrSignedHeaderMissing: a header listed in SignedHeaders is absent.
	// InvalidSignatureException, 403.
	ErrSignedHeaderMissing = &Kind{"sigv4: signed header missing", codeInvalidSignature, http.StatusForbidden}

	// ErrPayloadHashMismatch: x-amz-content-sha256 is not the SHA-256 of the
	// body, i.e. the body changed after signing. InvalidSignatureException, 403.
	ErrPayloadHashMismatch = &Kind{"sigv4: payload hash mismatch", codeInvalidSignature, http.StatusForbidden}

	// ErrSignatureMismatch: the signature is not the one the credential's
	// secret gives for this request. InvalidSignatureException, 403.
	ErrSignatureMismatch = &Kind{"sigv4: signature mismatch", codeInvalidSignature, http.StatusForbidden}
)

// Error is a verification failure: a Kind and a message for the client.
// The message says what is wrong in AWS's words where AWS has them; it never
// contains a secret, a session token or the signature the server expected.
type Error struct {
	Kind *Kind
	msg  string
}

// Error returns the client-facing message.
func (e *Error) Error() string { return e.msg }

// Unwrap returns e.Kind, so errors.Is matches the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

func newError(k *Kind, msg string) *Error { return &Error{Kind: k, msg: msg} }

// NewError returns an *Error of kind k with msg, for callers that refuse a request
// on grounds of their own (e.g. an unsigned payload where one must be signed).
func NewError(k *Kind, msg string) *Error { return newError(k, msg) }

// AWSErrorCode maps err to the AWS error code name and HTTP status the HTTP
// layer should answer with: the Kind's for a verification failure,
// InternalFailure and 500 for anything else (a CredentialStore that failed).
func AWSErrorCode(err error) (code string, status int) {
	var k *Kind
	if errors.As(err, &k) {
		return k.code, k.status
	}
	return codeInternal, http.StatusInternalServerError
}

// The messages AWS itself uses, where clients or people search for them.
const (
	msgSignatureMismatch = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method."
	msgMissingAuth   = "Missing Authentication Token"
	msgUnknownKey    = "The security token included in the request is invalid: the access key ID is not known."
	msgInvalidToken  = "The security token included in the request is invalid."
	msgExpiredToken  = "The security token included in the request is expired"
	msgHostNotSigned = "'Host' must be a 'SignedHeader' in the AWS Authorization."
	msgPayloadHash   = "The provided 'x-amz-content-sha256' header does not match what was computed."
	msgMissingDate   = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
)
