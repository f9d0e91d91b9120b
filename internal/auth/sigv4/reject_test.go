package sigv4

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var allKinds = []*Kind{
	ErrMissingAuthentication, ErrMalformedAuthorization, ErrUnsupportedAlgorithm, ErrHostNotSigned,
	ErrMalformedQuery, ErrWrongRegion, ErrWrongService, ErrScopeDateMismatch, ErrRequestTimeTooSkewed,
	ErrPresignExpired, ErrUnknownAccessKey, ErrSecurityToken, ErrExpiredToken, ErrSignedHeaderMissing,
	ErrPayloadHashMismatch, ErrSignatureMismatch,
}

var hex64 = regexp.MustCompile(`[0-9a-fA-F]{64}`)

// checkRejected asserts err is an *Error of kind want (and of no other
// kind), maps to want's AWS code, and leaks no secret, token or signature.
func checkRejected(t *testing.T, err error, want *Kind, msgHas string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified; want %v", want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %q (%T) is not an *Error", err, err)
	}
	for _, k := range allKinds {
		if got := errors.Is(err, k); got != (k == want) {
			t.Errorf("errors.Is(%q, %v) = %v", err, k, got)
		}
	}
	if code, status := AWSErrorCode(err); code != want.AWSCode() || status != want.HTTPStatus() {
		t.Errorf("AWSErrorCode = %s %d, want %s %d", code, status, want.AWSCode(), want.HTTPStatus())
	}
	msg := err.Error()
	if !strings.Contains(msg, msgHas) {
		t.Errorf("message %q does not contain %q", msg, msgHas)
	}
	for _, secret := range []string{testSecret, tempSecret, tempToken} {
		if strings.Contains(msg, secret) {
			t.Errorf("message %q leaks a secret", msg)
		}
	}
	if hex64.MatchString(msg) {
		t.Errorf("message %q contains a signature-like hex string", msg)
	}
}

func signedGet(t *testing.T, creds aws.Credentials) *http.Request {
	r := newRequest(t, http.MethodGet, "https://"+testHost+workspace+"/api/v1/query?query=up&time=1764066030", nil)
	sdkSign(t, r, nil, creds, "")
	return r
}

func presignedGet(t *testing.T, creds aws.Credentials) *http.Request {
	r := newRequest(t, http.MethodGet, "https://"+testHost+workspace+"/api/v1/query?query=up", nil)
	return sdkPresign(t, r, nil, creds, emptySHA256Hex, 10*time.Minute)
}

// withQuery returns r with its raw query edited by f.
func withQuery(r *http.Request, f func(string) string) *http.Request {
	r.URL.RawQuery = f(r.URL.RawQuery)
	return r
}

// drop returns a function that deletes every match of the expression.
func drop(expr string) func(string) string {
	re := regexp.MustCompile(expr)
	return func(s string) string { return re.ReplaceAllLiteralString(s, "") }
}

func setAuth(r *http.Request, f func(string) string) *http.Request {
	r.Header.Set("Authorization", f(r.Header.Get("Authorization")))
	return r
}

func replace(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic(fmt.Sprintf("%q not in %q", old, s))
		}
		return strings.Replace(s, old, new, 1)
	}
}

func TestRejections(t *testing.T) {
	sigRe := regexp.MustCompile(`Signature=[0-9a-f]{64}`)
	dropSig := func(s string) string { return sigRe.ReplaceAllString(s, "Signature=") }
	type tc struct {
		name   string
		req    func(t *testing.T) (*http.Request, []byte)
		now    time.Time // zero: signTime
		store  CredentialStore
		want   *Kind
		msgHas string
	}
	get := func(f func(*http.Request) *http.Request) func(t *testing.T) (*http.Request, []byte) {
		return func(t *testing.T) (*http.Request, []byte) { return f(signedGet(t, longTermCreds())), nil }
	}
	pre := func(f func(*http.Request) *http.Request) func(t *testing.T) (*http.Request, []byte) {
		return func(t *testing.T) (*http.Request, []byte) { return f(presignedGet(t, longTermCreds())), nil }
	}
	auth := func(f func(string) string) func(t *testing.T) (*http.Request, []byte) {
		return get(func(r *http.Request) *http.Request { return setAuth(r, f) })
	}
	preQuery := func(f func(string) string) func(t *testing.T) (*http.Request, []byte) {
		return pre(func(r *http.Request) *http.Request { return withQuery(r, f) })
	}
	cases := []tc{
		// Missing authentication.
		{name: "no authentication at all", want: ErrMissingAuthentication, msgHas: "Missing Authentication Token",
			req: func(t *testing.T) (*http.Request, []byte) {
				return newRequest(t, http.MethodGet, "https://"+testHost+workspace+"/api/v1/query?query=up", nil), nil
			}},

		// Malformed Authorization header, each part named.
		{name: "no Credential", want: ErrMalformedAuthorization, msgHas: "'Credential'",
			req: auth(func(s string) string {
				return algorithm + " " + s[strings.Index(s, "SignedHeaders"):]
			})},
		{name: "no SignedHeaders", want: ErrMalformedAuthorization, msgHas: "'SignedHeaders'",
			req: auth(drop(`SignedHeaders=[^,]*, `))},
		{name: "no Signature", want: ErrMalformedAuthorization, msgHas: "'Signature'",
			req: auth(func(s string) string { return s[:strings.Index(s, ", Signature")] })},
		{name: "Credential without terminator", want: ErrMalformedAuthorization, msgHas: "aws4_request",
			req: auth(replace("/aws4_request", ""))},
		{name: "Credential with bad date", want: ErrMalformedAuthorization, msgHas: "yyyymmdd",
			req: auth(replace("/20251125/", "/2025-11-25/"))},
		{name: "Credential without access key", want: ErrMalformedAuthorization, msgHas: "access key ID",
			req: auth(replace("Credential="+testAKID, "Credential="))},
		{name: "Credential without region", want: ErrMalformedAuthorization, msgHas: "no region",
			req: auth(replace("/"+testRegion+"/", "//"))},
		{name: "short Signature", want: ErrMalformedAuthorization, msgHas: "64 hexadecimal",
			req: auth(func(s string) string { return s[:len(s)-1] })},
		{name: "non-hex Signature", want: ErrMalformedAuthorization, msgHas: "64 hexadecimal",
			req: auth(func(s string) string { return s[:len(s)-1] + "g" })},
		{name: "unsorted SignedHeaders", want: ErrMalformedAuthorization, msgHas: "sorted",
			req: auth(replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date;host"))},
		{name: "duplicate SignedHeaders name", want: ErrMalformedAuthorization, msgHas: "duplicates",
			req: auth(replace("SignedHeaders=host;x-amz-date", "SignedHeaders=host;host;x-amz-date"))},
		{name: "upper-case SignedHeaders", want: ErrMalformedAuthorization, msgHas: "lowercase",
			req: auth(replace("SignedHeaders=host", "SignedHeaders=Host"))},
		{name: "empty SignedHeaders", want: ErrMalformedAuthorization, msgHas: "SignedHeaders is empty",
			req: auth(replace("SignedHeaders=host;x-amz-date", "SignedHeaders="))},
		{name: "repeated Credential", want: ErrMalformedAuthorization, msgHas: "more than one 'Credential'",
			req: auth(func(s string) string { return s + ", " + s[strings.Index(s, "Credential="):strings.Index(s, ",")] })},
		{name: "unknown component", want: ErrMalformedAuthorization, msgHas: "unknown component 'Foo'",
			req: auth(func(s string) string { return s + ", Foo=bar" })},
		{name: "trailing comma", want: ErrMalformedAuthorization, msgHas: "ends with ','",
			req: auth(func(s string) string { return s + "," })},
		{name: "component without =", want: ErrMalformedAuthorization, msgHas: "name=value",
			req: auth(func(s string) string { return s + ", Signature" })},
		{name: "empty Authorization", want: ErrMalformedAuthorization, msgHas: "empty",
			req: auth(func(string) string { return "" })},
		{name: "two Authorization headers", want: ErrMalformedAuthorization, msgHas: "more than one Authorization",
			req: get(func(r *http.Request) *http.Request {
				r.Header.Add("Authorization", r.Header.Get("Authorization"))
				return r
			})},
		{name: "no date", want: ErrMalformedAuthorization, msgHas: "'X-Amz-Date' or a 'Date'",
			req: get(func(r *http.Request) *http.Request { r.Header.Del("X-Amz-Date"); return r })},
		{name: "bad X-Amz-Date", want: ErrMalformedAuthorization, msgHas: "yyyymmddThhmmssZ",
			req: get(func(r *http.Request) *http.Request { r.Header.Set("X-Amz-Date", "2025-11-25T10:20:30Z"); return r })},
		{name: "impossible X-Amz-Date", want: ErrMalformedAuthorization, msgHas: "yyyymmddThhmmssZ",
			req: get(func(r *http.Request) *http.Request { r.Header.Set("X-Amz-Date", "20251131T102030Z"); return r })},
		{name: "bad Date header", want: ErrMalformedAuthorization, msgHas: "Date header",
			req: get(func(r *http.Request) *http.Request {
				r.Header.Del("X-Amz-Date")
				r.Header.Set("Date", "yesterday")
				return r
			})},
		{name: "streaming x-amz-content-sha256", want: ErrMalformedAuthorization, msgHas: "streaming",
			req: get(func(r *http.Request) *http.Request {
				r.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
				return r
			})},
		// Dropping X-Amz-Expires from a URL signed with it changes what was signed.
		{name: "presigned, X-Amz-Expires removed", want: ErrSignatureMismatch,
			req: preQuery(drop(`X-Amz-Expires=\d+&?`))},
		{name: "presigned X-Amz-Expires over a week", want: ErrMalformedAuthorization, msgHas: "604800",
			req: preQuery(replace("X-Amz-Expires=600", "X-Amz-Expires=604801"))},
		{name: "presigned X-Amz-Expires not a number", want: ErrMalformedAuthorization, msgHas: "positive number",
			req: preQuery(replace("X-Amz-Expires=600", "X-Amz-Expires=-5"))},
		{name: "presigned without X-Amz-Signature", want: ErrMalformedAuthorization, msgHas: "X-Amz-Signature",
			req: preQuery(drop(`&X-Amz-Signature=[0-9a-f]+`))},
		{name: "presigned without X-Amz-Credential", want: ErrMalformedAuthorization, msgHas: "X-Amz-Credential",
			req: preQuery(drop(`X-Amz-Credential=[^&]+&`))},
		{name: "presigned with two X-Amz-Date", want: ErrMalformedAuthorization, msgHas: "only one X-Amz-Date",
			req: preQuery(func(s string) string { return s + "&X-Amz-Date=20251125T102030Z" })},

		// Unsupported algorithms.
		{name: "SigV4a", want: ErrUnsupportedAlgorithm, msgHas: "AWS4-ECDSA-P256-SHA256",
			req: auth(replace(algorithm, "AWS4-ECDSA-P256-SHA256"))},
		{name: "SigV2", want: ErrUnsupportedAlgorithm, msgHas: "'AWS'",
			req: auth(func(string) string { return "AWS " + testAKID + ":frJIUN8DYpKDtOLCwo//yllqDzg=" })},
		{name: "presigned SigV4a", want: ErrUnsupportedAlgorithm, msgHas: "AWS4-ECDSA-P256-SHA256",
			req: preQuery(replace("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256"))},

		// Host not signed.
		{name: "host not signed", want: ErrHostNotSigned, msgHas: "'Host'",
			req: auth(replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date"))},
		{name: "presigned host not signed", want: ErrHostNotSigned, msgHas: "'Host'",
			req: preQuery(replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date"))},

		// Malformed query.
		{name: "invalid percent escape", want: ErrMalformedQuery, msgHas: "percent-encoding",
			req: get(func(r *http.Request) *http.Request {
				return withQuery(r, func(s string) string { return s + "&a=%zz" })
			})},
		{name: "presigned, truncated percent escape", want: ErrMalformedQuery, msgHas: "percent-encoding",
			req: preQuery(func(s string) string { return s + "&a=%2" })},

		// Credential scope.
		{name: "wrong region", want: ErrWrongRegion, msgHas: "not 'eu-west-1'",
			req: func(t *testing.T) (*http.Request, []byte) {
				r := newRequest(t, http.MethodGet, "https://"+testHost+"/", nil)
				if err := v4.NewSigner().SignHTTP(context.Background(), longTermCreds(), r, emptySHA256Hex, testService, "eu-west-1", signTime); err != nil {
					t.Fatal(err)
				}
				return r, nil
			}},
		{name: "wrong service", want: ErrWrongService, msgHas: "'aps'",
			req: func(t *testing.T) (*http.Request, []byte) {
				r := newRequest(t, http.MethodGet, "https://"+testHost+"/", nil)
				if err := v4.NewSigner().SignHTTP(context.Background(), longTermCreds(), r, emptySHA256Hex, "execute-api", testRegion, signTime); err != nil {
					t.Fatal(err)
				}
				return r, nil
			}},
		{name: "scope date is not X-Amz-Date's", want: ErrScopeDateMismatch, msgHas: "'20251124' != '20251125'",
			req: auth(replace("/20251125/", "/20251124/"))},
		{name: "presigned scope date is not X-Amz-Date's", want: ErrScopeDateMismatch, msgHas: "'20251126' != '20251125'",
			req: preQuery(replace("%2F20251125%2F", "%2F20251126%2F"))},

		// Time.
		{name: "signed more than 5 minutes ago", now: signTime.Add(5*time.Minute + time.Second), want: ErrRequestTimeTooSkewed,
			msgHas: "Signature expired: 20251125T102030Z is now earlier than 20251125T102031Z (20251125T102531Z - 5 min.)",
			req:    get(func(r *http.Request) *http.Request { return r })},
		{name: "signed more than 5 minutes ahead", now: signTime.Add(-5*time.Minute - time.Second), want: ErrRequestTimeTooSkewed,
			msgHas: "Signature not yet current: 20251125T102030Z is still later than 20251125T102029Z (20251125T101529Z + 5 min.)",
			req:    get(func(r *http.Request) *http.Request { return r })},
		{name: "presigned URL expired", now: signTime.Add(10*time.Minute + time.Second), want: ErrPresignExpired,
			msgHas: "Request has expired", req: pre(func(r *http.Request) *http.Request { return r })},
		{name: "presigned URL from the future", now: signTime.Add(-6 * time.Minute), want: ErrRequestTimeTooSkewed,
			msgHas: "not yet current", req: pre(func(r *http.Request) *http.Request { return r })},

		// Credentials.
		{name: "unknown access key", want: ErrUnknownAccessKey, msgHas: "not known",
			req: func(t *testing.T) (*http.Request, []byte) {
				return signedGet(t, aws.Credentials{AccessKeyID: "AKIDNOBODY", SecretAccessKey: testSecret}), nil
			}},
		{name: "wrong secret", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: func(t *testing.T) (*http.Request, []byte) {
				return signedGet(t, aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret + "x"}), nil
			}},
		{name: "temporary credentials without token", want: ErrSecurityToken, msgHas: "carries no X-Amz-Security-Token",
			req: func(t *testing.T) (*http.Request, []byte) {
				r := signedGet(t, tempCreds())
				r.Header.Del("X-Amz-Security-Token")
				return r, nil
			}},
		{name: "temporary credentials, other token", want: ErrSecurityToken, msgHas: msgInvalidToken,
			req: func(t *testing.T) (*http.Request, []byte) {
				c := tempCreds()
				c.SessionToken += "x"
				return signedGet(t, c), nil
			}},
		{name: "presigned temporary credentials without token", want: ErrSecurityToken, msgHas: "carries no X-Amz-Security-Token",
			req: func(t *testing.T) (*http.Request, []byte) {
				return withQuery(presignedGet(t, tempCreds()), drop(`&X-Amz-Security-Token=[^&]+`)), nil
			}},
		{name: "long-term key with a token", want: ErrSecurityToken, msgHas: "long-term",
			req: func(t *testing.T) (*http.Request, []byte) {
				c := longTermCreds()
				c.SessionToken = tempToken
				return signedGet(t, c), nil
			}},
		{name: "expired temporary credentials", want: ErrExpiredToken, msgHas: "expired",
			store: StaticCredentials{tempAKID: {SecretAccessKey: tempSecret, SessionToken: tempToken, Expires: signTime}},
			req:   func(t *testing.T) (*http.Request, []byte) { return signedGet(t, tempCreds()), nil }},

		// Signed content changed after signing.
		{name: "signed header missing", want: ErrSignedHeaderMissing, msgHas: "'x-custom'",
			req: func(t *testing.T) (*http.Request, []byte) {
				r := newRequest(t, http.MethodGet, "https://"+testHost+"/", nil)
				r.Header.Set("X-Custom", "1")
				sdkSign(t, r, nil, longTermCreds(), "")
				r.Header.Del("X-Custom")
				return r, nil
			}},
		{name: "signed header changed", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: func(t *testing.T) (*http.Request, []byte) {
				body := []byte("x")
				r := remoteWriteRequest(t, body)
				sdkSign(t, r, body, longTermCreds(), "")
				r.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
				return r, body
			}},
		{name: "body changed, x-amz-content-sha256 sent", want: ErrPayloadHashMismatch, msgHas: "x-amz-content-sha256",
			req: func(t *testing.T) (*http.Request, []byte) {
				body := []byte("original")
				r := remoteWriteRequest(t, body)
				r.Header.Set("X-Amz-Content-Sha256", hexSHA256(body))
				sdkSign(t, r, body, longTermCreds(), "")
				return r, []byte("tampered")
			}},
		{name: "body changed, no x-amz-content-sha256", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: func(t *testing.T) (*http.Request, []byte) {
				body := []byte("original")
				r := remoteWriteRequest(t, body)
				sdkSign(t, r, body, longTermCreds(), "")
				return r, []byte("tampered")
			}},
		{name: "method changed", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: get(func(r *http.Request) *http.Request { r.Method = http.MethodDelete; return r })},
		{name: "path changed", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: get(func(r *http.Request) *http.Request { r.URL.Path += "x"; return r })},
		{name: "query changed", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: get(func(r *http.Request) *http.Request { return withQuery(r, replace("query=up", "query=down")) })},
		{name: "query parameter added", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: get(func(r *http.Request) *http.Request {
				return withQuery(r, func(s string) string { return s + "&limit=1" })
			})},
		{name: "host changed", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: get(func(r *http.Request) *http.Request { r.Host = "evil.example.com"; return r })},
		{name: "signature changed", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: auth(func(s string) string { return dropSig(s) + strings.Repeat("0", 64) })},
		{name: "presigned query changed", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: preQuery(replace("query=up", "query=down"))},
		{name: "presigned expiry extended", want: ErrSignatureMismatch, msgHas: msgSignatureMismatch,
			req: preQuery(replace("X-Amz-Expires=600", "X-Amz-Expires=6000"))},
		{name: "presigned token changed", want: ErrSecurityToken, msgHas: msgInvalidToken,
			req: func(t *testing.T) (*http.Request, []byte) {
				return withQuery(presignedGet(t, tempCreds()), replace("X-Amz-Security-Token=", "X-Amz-Security-Token=x")), nil
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := c.now
			if now.IsZero() {
				now = signTime
			}
			store := c.store
			if store == nil {
				store = testStore()
			}
			v := mustVerifier(t, Config{Region: testRegion, Service: testService}, store, now)
			r, body := c.req(t)
			_, err := v.Verify(r, body)
			checkRejected(t, err, c.want, c.msgHas)
			// The copy a server reads off the wire is refused the same way.
			wr, _ := overWire(t, r)
			_, err = v.Verify(wr, body)
			checkRejected(t, err, c.want, c.msgHas)
		})
	}
}

// TestClockSkewBoundaries checks the skew limit is inclusive and follows
// Config.MaxClockSkew.
func TestClockSkewBoundaries(t *testing.T) {
	for _, c := range []struct {
		skew   time.Duration
		offset time.Duration
		ok     bool
	}{
		{0, 5 * time.Minute, true},
		{0, -5 * time.Minute, true},
		{0, 5*time.Minute + time.Second, false},
		{0, -5*time.Minute - time.Second, false},
		{time.Minute, time.Minute, true},
		{time.Minute, 61 * time.Second, false},
		{15 * time.Minute, -14 * time.Minute, true},
	} {
		t.Run(fmt.Sprintf("skew=%v offset=%v", c.skew, c.offset), func(t *testing.T) {
			v := mustVerifier(t, Config{Region: testRegion, Service: testService, MaxClockSkew: c.skew}, testStore(), signTime.Add(c.offset))
			_, err := v.Verify(signedGet(t, longTermCreds()), nil)
			if c.ok && err != nil {
				t.Fatal(err)
			}
			if !c.ok && !errors.Is(err, ErrRequestTimeTooSkewed) {
				t.Fatalf("got %v, want ErrRequestTimeTooSkewed", err)
			}
		})
	}
}

// TestDateHeader checks a request carrying both Date and X-Amz-Date (the
// Go SDK signs both) and that X-Amz-Date, once signed, must stay. The
// Date-only form is covered by botocore's header-get-date-header.
func TestDateHeader(t *testing.T) {
	r := newRequest(t, http.MethodGet, "https://"+testHost+"/", nil)
	r.Header.Set("Date", signTime.Format(http.TimeFormat))
	sdkSign(t, r, nil, longTermCreds(), "")
	if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "SignedHeaders=date;host;x-amz-date") {
		t.Fatalf("unexpected SignedHeaders in %s", auth)
	}
	v := testVerifier(t, signTime)
	if _, err := v.Verify(r, nil); err != nil {
		t.Fatal(err)
	}
	// Without X-Amz-Date the Date header dates the request (the same time,
	// so the string to sign is unchanged), but a signed header is gone.
	r.Header.Del("X-Amz-Date")
	_, err := v.Verify(r, nil)
	checkRejected(t, err, ErrSignedHeaderMissing, "'x-amz-date'")
}

type failingStore struct{ err error }

func (s failingStore) LookupCredential(context.Context, string) (Credential, bool, error) {
	return Credential{}, false, s.err
}

func TestStoreFailure(t *testing.T) {
	storeErr := errors.New("database is down")
	v := mustVerifier(t, Config{Region: testRegion}, failingStore{storeErr}, signTime)
	_, err := v.Verify(signedGet(t, longTermCreds()), nil)
	if !errors.Is(err, storeErr) {
		t.Fatalf("got %v, want the store's error", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Fatalf("store failure reported as verification failure %v", e.Kind)
	}
	if code, status := AWSErrorCode(err); code != "InternalFailure" || status != http.StatusInternalServerError {
		t.Fatalf("AWSErrorCode = %s %d", code, status)
	}
}

func TestAWSErrorCode(t *testing.T) {
	want := map[*Kind]struct {
		code   string
		status int
	}{
		ErrMissingAuthentication:  {"MissingAuthenticationTokenException", 403},
		ErrMalformedAuthorization: {"IncompleteSignatureException", 400},
		ErrUnsupportedAlgorithm:   {"IncompleteSignatureException", 400},
		ErrHostNotSigned:          {"IncompleteSignatureException", 400},
		ErrMalformedQuery:         {"MalformedQueryString", 400},
		ErrWrongRegion:            {"InvalidSignatureException", 403},
		ErrWrongService:           {"InvalidSignatureException", 403},
		ErrScopeDateMismatch:      {"InvalidSignatureException", 403},
		ErrRequestTimeTooSkewed:   {"InvalidSignatureException", 403},
		ErrPresignExpired:         {"InvalidSignatureException", 403},
		ErrUnknownAccessKey:       {"UnrecognizedClientException", 403},
		ErrSecurityToken:          {"UnrecognizedClientException", 403},
		ErrExpiredToken:           {"ExpiredTokenException", 403},
		ErrSignedHeaderMissing:    {"InvalidSignatureException", 403},
		ErrPayloadHashMismatch:    {"InvalidSignatureException", 403},
		ErrSignatureMismatch:      {"InvalidSignatureException", 403},
	}
	if len(want) != len(allKinds) {
		t.Fatalf("table has %d kinds, package %d", len(want), len(allKinds))
	}
	for _, k := range allKinds {
		w, ok := want[k]
		if !ok {
			t.Fatalf("%v missing from table", k)
		}
		err := fmt.Errorf("authenticating: %w", newError(k, "m"))
		if code, status := AWSErrorCode(err); code != w.code || status != w.status {
			t.Errorf("%v: %s %d, want %s %d", k, code, status, w.code, w.status)
		}
	}
}

func TestVerifyHashed(t *testing.T) {
	body := remoteWriteBody()
	r := remoteWriteRequest(t, body)
	sdkSign(t, r, body, longTermCreds(), "")
	v := testVerifier(t, signTime)
	if _, err := v.VerifyHashed(r, sha256.Sum256(body)); err != nil {
		t.Fatal(err)
	}
	_, err := v.VerifyHashed(r, sha256.Sum256(body[1:]))
	checkRejected(t, err, ErrSignatureMismatch, msgSignatureMismatch)

	r.Header.Set("X-Amz-Content-Sha256", hexSHA256(body))
	sdkSign(t, r, body, longTermCreds(), "")
	if _, err := v.VerifyHashed(r, sha256.Sum256(body)); err != nil {
		t.Fatal(err)
	}
	_, err = v.VerifyHashed(r, sha256.Sum256(body[1:]))
	checkRejected(t, err, ErrPayloadHashMismatch, "x-amz-content-sha256")
}

// rotatingStore hands out whatever secret is current.
type rotatingStore struct {
	mu     sync.Mutex
	secret string
}

func (s *rotatingStore) LookupCredential(_ context.Context, id string) (Credential, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Credential{SecretAccessKey: s.secret}, id == testAKID, nil
}

func TestSigningKeyCache(t *testing.T) {
	store := &rotatingStore{secret: testSecret}
	v := mustVerifier(t, Config{Region: testRegion, SigningKeyCacheSize: 2}, store, signTime)
	oldReq := signedGet(t, longTermCreds())
	if _, err := v.Verify(oldReq, nil); err != nil {
		t.Fatal(err)
	}
	// A rotated secret must not meet the key cached for the old one.
	store.mu.Lock()
	store.secret = "rotated/secret"
	store.mu.Unlock()
	_, err := v.Verify(oldReq, nil)
	checkRejected(t, err, ErrSignatureMismatch, msgSignatureMismatch)
	if _, err := v.Verify(signedGet(t, aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: "rotated/secret"}), nil); err != nil {
		t.Fatal(err)
	}
	// Keys for more days than fit stay bounded, and all still verify.
	for d := range 5 {
		at := signTime.AddDate(0, 0, d)
		r := newRequest(t, http.MethodGet, "https://"+testHost+"/", nil)
		sdkSign(t, r, nil, aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: "rotated/secret"}, "", at)
		vd := mustVerifier(t, Config{Region: testRegion, SigningKeyCacheSize: 2}, store, at)
		vd.keys = v.keys
		if _, err := vd.Verify(r, nil); err != nil {
			t.Fatalf("day %d: %v", d, err)
		}
		if n := v.keys.len(); n > 2 {
			t.Fatalf("cache holds %d keys, max 2", n)
		}
	}
}

func TestConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-auth.sigv4.region=eu-west-1", "-auth.sigv4.max-clock-skew=2m"}); err != nil {
		t.Fatal(err)
	}
	want := Config{Region: "eu-west-1", Service: "aps", MaxClockSkew: 2 * time.Minute, SigningKeyCacheSize: DefaultSigningKeyCacheSize}
	if cfg != want {
		t.Fatalf("flags give %+v, want %+v", cfg, want)
	}
	for _, bad := range []Config{
		{},
		{Region: "us east"},
		{Region: "us-east-1", Service: "a/b"},
		{Region: "us-east-1", MaxClockSkew: -time.Second},
		{Region: "us-east-1", SigningKeyCacheSize: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
		if _, err := New(bad, testStore(), nil); err == nil {
			t.Errorf("New(%+v) succeeded", bad)
		}
	}
	if _, err := New(Config{Region: "us-east-1"}, nil, nil); err == nil {
		t.Error("New with a nil store succeeded")
	}
	v, err := New(Config{Region: "us-east-1"}, testStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.service != "aps" || v.maxSkew != 5*time.Minute || v.keys.max != 1024 || v.now == nil {
		t.Fatalf("defaults not applied: %+v", v)
	}
}

func TestCredentialRedacted(t *testing.T) {
	c := Credential{SecretAccessKey: testSecret, SessionToken: tempToken}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, testSecret) || strings.Contains(s, tempToken) {
			t.Fatalf("formatted credential leaks: %s", s)
		}
	}
}

// TestConcurrentVerify shares one Verifier (pool, key cache) between
// goroutines; run with -race.
func TestConcurrentVerify(t *testing.T) {
	v := testVerifier(t, signTime)
	body := remoteWriteBody()
	good := remoteWriteRequest(t, body)
	sdkSign(t, good, body, tempCreds(), "")
	bad := remoteWriteRequest(t, body)
	sdkSign(t, bad, body, longTermCreds(), "")
	bad.Header.Set("Content-Type", "text/plain")
	presigned := presignedGet(t, longTermCreds())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if _, err := v.Verify(good, body); err != nil {
					errs <- err
					return
				}
				if _, err := v.Verify(presigned, nil); err != nil {
					errs <- err
					return
				}
				if _, err := v.Verify(bad, body); !errors.Is(err, ErrSignatureMismatch) {
					errs <- fmt.Errorf("goroutine %d iteration %d: %v", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
