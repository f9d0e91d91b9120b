package sigv4

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultService             = "aps"
	DefaultMaxClockSkew        = 5 * time.Minute
	DefaultSigningKeyCacheSize = 1024
)

// Config configures a Verifier.
type Config struct {
	// Region is the region this server answers for, e.g. us-east-1. Requests
	// must be signed for it. Required.
	Region string `yaml:"region"`
	// Service is the signing name requests must be signed for. Zero means
	// "aps", Amazon Managed Service for Prometheus.
	Service string `yaml:"service"`
	// MaxClockSkew is how far a header-signed request's time may be from the
	// server's clock, either way. Zero means 5 minutes.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// SigningKeyCacheSize bounds the number of derived signing keys kept (one
	// per access key and day). Zero means 1024.
	SigningKeyCacheSize int `yaml:"signing_key_cache_size"`
}

// RegisterFlags registers the config's flags under the "auth.sigv4." prefix.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Region, "auth.sigv4.region", "", "Region requests must be signed for (e.g. us-east-1). Required.")
	f.StringVar(&c.Service, "auth.sigv4.service", DefaultService, "Service name requests must be signed for.")
	f.DurationVar(&c.MaxClockSkew, "auth.sigv4.max-clock-skew", DefaultMaxClockSkew, "How far a request's signing time may be from the server's clock.")
	f.IntVar(&c.SigningKeyCacheSize, "auth.sigv4.signing-key-cache-size", DefaultSigningKeyCacheSize, "How many derived signing keys to cache.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("region is required")
	case strings.ContainsAny(c.Region, "/ "):
		return fmt.Errorf("region %q contains '/' or a space", c.Region)
	case strings.ContainsAny(c.Service, "/ "):
		return fmt.Errorf("service %q contains '/' or a space", c.Service)
	case c.MaxClockSkew < 0:
		return fmt.Errorf("max_clock_skew %v is negative", c.MaxClockSkew)
	case c.SigningKeyCacheSize < 0:
		return fmt.Errorf("signing_key_cache_size %d is negative", c.SigningKeyCacheSize)
	}
	return nil
}

// Verifier checks AWS Signature Version 4 on incoming requests, in both the
// Authorization-header form and the presigned-URL (query) form.
//
// A Verifier is safe for concurrent use by many goroutines. It keeps a
// bounded cache of derived signing keys and a pool of scratch buffers; it
// has no other state.
type Verifier struct {
	region   string // "" accepts any region (STS: clients sign for their own)
	service  string
	maxSkew  time.Duration
	now      func() time.Time
	store    CredentialStore
	sessions SessionCredentialStore // store, when it is one
	keys     *keyCache
	states   sync.Pool // of *state
}

// New returns a Verifier that looks up secrets in store. now is the clock;
// nil means time.Now.
func New(cfg Config, store CredentialStore, now func() time.Time) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sigv4 config: %w", err)
	}
	if store == nil {
		return nil, errors.New("sigv4: nil CredentialStore")
	}
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if cfg.MaxClockSkew == 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	if cfg.SigningKeyCacheSize == 0 {
		cfg.SigningKeyCacheSize = DefaultSigningKeyCacheSize
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		region:  cfg.Region,
		service: cfg.Service,
		maxSkew: cfg.MaxClockSkew,
		now:     now,
		store:   store,
		keys:    newKeyCache(cfg.SigningKeyCacheSize),
	}
	if cfg.Region == AnyRegion {
		v.region = ""
	}
	v.sessions, _ = store.(SessionCredentialStore)
	v.states.New = func() any { return new(state) }
	return v, nil
}

// AnyRegion as Config.Region accepts requests signed for any region, as AWS STS does
// behind a custom endpoint: clients sign for the region they are configured with. The
// region still goes into the signing key, so the signature must match it.
const AnyRegion = "*"

// Identity is who signed a verified request, and how.
type Identity struct {
	AccessKeyID string
	// Principal is Credential.Principal of the access key.
	Principal any
	// Temporary is true for credentials with a session token.
	Temporary bool
	// Scope is the credential scope the request was signed for.
	Scope Scope
	// SignedAt is the signing time (X-Amz-Date or Date).
	SignedAt time.Time
	// Presigned is true for query-string (presigned URL) authentication.
	Presigned bool
	// Expires is when a presigned URL stops working; zero for header form.
	Expires time.Time
	// PayloadSigned is false when the signature does not cover the body:
	// UNSIGNED-PAYLOAD, or a presigned URL signed for an empty body that
	// arrived with one.
	PayloadSigned bool
}

// Scope is a credential scope: the day, region and service a signing key
// is good for.
type Scope struct {
	Date    string // yyyymmdd
	Region  string
	Service string
}

// Verify checks the signature of r, whose body the caller has already read
// into body (nil for none); Verify never touches r.Body. The caller bounds
// the body size. body is only read, and not retained.
//
// On failure the error is an *Error wrapping one of the Err* kinds, or, when
// the CredentialStore fails, that failure wrapped.
//
// Payload hash: a present x-amz-content-sha256 header must be
// UNSIGNED-PAYLOAD or the hex SHA-256 of body (else ErrPayloadHashMismatch),
// and is what the canonical request uses. Without it, a header-signed
// request is checked against the SHA-256 of body. A presigned request
// without it is accepted when any of these was signed: the body's hash (the
// AWS test suite when it signs a body), the empty-body hash (the Go SDK's
// PresignHTTP callers pass it; the body then is not covered) or
// UNSIGNED-PAYLOAD (botocore's S3-style presigner). Clients disagree, and
// the server cannot know which one built the URL.
//
// An Authorization header takes precedence over presigned query parameters.
// The path and query are taken as the client sent them (r.RequestURI), so
// middleware that rewrites r.URL does not break verification. With path
// normalization two request paths can share a signature ("/a/../b" and
// "/b"): route on the cleaned path, as http.ServeMux does.
//
// Identity's strings may share memory with r's headers.
func (v *Verifier) Verify(r *http.Request, body []byte) (Identity, error) {
	c, err := v.Begin(r)
	if err != nil {
		return Identity{}, err
	}
	defer c.Release()
	return c.Finish(body)
}

// VerifyHashed is Verify for a caller that already has bodySHA256, the
// SHA-256 of the request body (e.g. hashed while reading it).
func (v *Verifier) VerifyHashed(r *http.Request, bodySHA256 [sha256.Size]byte) (Identity, error) {
	c, err := v.Begin(r)
	if err != nil {
		return Identity{}, err
	}
	defer c.Release()
	return c.FinishHashed(bodySHA256)
}

// Check is a request whose authentication has been checked as far as it can be without
// its body: the Authorization header or presigned parameters parse, the scope names this
// region and service, the signing time is within the clock skew, the access key is
// known, and its security token (if any) is valid and unexpired. Only the signature is
// left, which covers the body. A server calls Begin before it reads a body, so that
// nobody without a valid access key can make it read one, then Finish.
//
// A Check is not safe for concurrent use. Call Release exactly once when done with it;
// it must not be used afterwards.
type Check struct {
	v    *Verifier
	st   *state
	r    *http.Request
	a    authParams
	cred Credential
}

// Begin checks everything about r but its signature (see Check). Errors are as Verify's.
// r's headers and URL must not change until Finish.
func (v *Verifier) Begin(r *http.Request) (*Check, error) {
	st := v.states.Get().(*state)
	c := &st.chk
	*c = Check{v: v, st: st, r: r}
	if err := v.begin(c); err != nil {
		c.Release()
		return nil, err
	}
	return c, nil
}

// AccessKeyID is the access key the request is signed with.
func (c *Check) AccessKeyID() string { return c.a.accessKeyID }

// Finish verifies the signature with the request's body (nil for none), which it only
// reads. See Verify.
func (c *Check) Finish(body []byte) (Identity, error) {
	p := payload{body: body}
	return c.finish(&p)
}

// FinishHashed is Finish with the body's SHA-256.
func (c *Check) FinishHashed(bodySHA256 [sha256.Size]byte) (Identity, error) {
	p := payload{sum: bodySHA256, hashed: true}
	return c.finish(&p)
}

// Release returns the Check's scratch space.
func (c *Check) Release() {
	v, st := c.v, c.st
	*c = Check{}
	v.release(st)
}

type payload struct {
	body   []byte
	sum    [sha256.Size]byte
	hashed bool
}

func (p *payload) hash() *[sha256.Size]byte {
	if !p.hashed {
		p.sum = sha256.Sum256(p.body)
		p.hashed = true
	}
	return &p.sum
}

// candidate is one payload hash the signer may have used.
type candidate uint8

const (
	candBody     candidate = iota // hex SHA-256 of the body
	candUnsigned                  // UNSIGNED-PAYLOAD
	candEmpty                     // hex SHA-256 of nothing
	candHeader                    // the x-amz-content-sha256 value, verbatim
)

// state is per-call scratch space, pooled so the hot path allocates nothing.
type state struct {
	chk          Check
	q            queryParser
	uri          []byte
	uriRaw       []byte
	query        []byte
	queryNoToken []byte
	hdrs         []byte
	canon        []byte
	sts          []byte
	mac          []byte
	keyBuf       []byte
	bodyHex      [2 * sha256.Size]byte
}

// maxPooled keeps one huge request from pinning its buffers in the pool.
const maxPooled = 64 << 10

func (v *Verifier) release(st *state) {
	if cap(st.q.arena) > maxPooled || cap(st.q.pairs) > maxPooled/16 || cap(st.canon) > maxPooled || cap(st.hdrs) > maxPooled {
		return
	}
	v.states.Put(st)
}

// begin does Begin's checks into c.
func (v *Verifier) begin(c *Check) error {
	st, r, a := c.st, c.r, &c.a
	_, rawQuery := requestTarget(r)
	st.q.reset()
	if !st.q.parse(rawQuery) {
		return newError(ErrMalformedQuery, "The query string has an invalid percent-encoding.")
	}

	if authz := r.Header["Authorization"]; len(authz) > 0 {
		if len(authz) > 1 {
			return malformed("The request has more than one Authorization header.")
		}
		if err := parseAuthorization(authz[0], a); err != nil {
			return err
		}
		if err := headerDate(r.Header, a); err != nil {
			return err
		}
	} else {
		if !isPresigned(&st.q) {
			return newError(ErrMissingAuthentication, msgMissingAuth)
		}
		if err := parsePresigned(&st.q, a); err != nil {
			return err
		}
	}
	if !a.hasToken {
		switch t := r.Header["X-Amz-Security-Token"]; len(t) {
		case 0:
		case 1:
			a.token, a.hasToken = t[0], true
		default:
			return malformed("The request has more than one X-Amz-Security-Token header.")
		}
	}

	if !a.hostSigned {
		return newError(ErrHostNotSigned, msgHostNotSigned)
	}
	if v.region != "" && a.region != v.region {
		return newError(ErrWrongRegion, "Credential should be scoped to a valid region, not '"+clip(a.region)+"'.")
	}
	if a.service != v.service {
		return newError(ErrWrongService, "Credential should be scoped to correct service: '"+v.service+"'.")
	}
	if a.date != a.amzDate[:8] {
		return newError(ErrScopeDateMismatch, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '"+
			a.date+"' != '"+a.amzDate[:8]+"', from '"+a.amzDate+"'.")
	}
	now := v.now()
	if err := v.checkTime(a, now); err != nil {
		return err
	}

	var (
		cred Credential
		ok   bool
		err  error
	)
	if a.hasToken && v.sessions != nil {
		cred, ok, err = v.sessions.LookupSession(r.Context(), a.accessKeyID, a.token)
	} else {
		cred, ok, err = v.store.LookupCredential(r.Context(), a.accessKeyID)
	}
	if err != nil {
		return fmt.Errorf("looking up access key %s: %w", a.accessKeyID, err)
	}
	if !ok {
		if a.hasToken {
			return newError(ErrSecurityToken, msgInvalidToken)
		}
		return newError(ErrUnknownAccessKey, msgUnknownKey)
	}
	if !cred.Expires.IsZero() && !now.Before(cred.Expires) {
		return newError(ErrExpiredToken, msgExpiredToken)
	}
	if err := checkToken(a, &cred); err != nil {
		return err
	}
	c.cred = cred
	return nil
}

// finish verifies the signature over the request and pl.
func (c *Check) finish(pl *payload) (Identity, error) {
	v, st, r, a := c.v, c.st, c.r, &c.a
	rawPath, _ := requestTarget(r)
	pp, perr := planPayload(r.Header, a.presigned, pl)
	if perr != nil {
		return Identity{}, perr
	}
	if pp.cands[0] == candBody {
		hex.Encode(st.bodyHex[:], pl.hash()[:])
	}

	var missing string
	st.hdrs, missing = appendCanonicalHeaders(st.hdrs[:0], r, a.signedHeaders, &st.keyBuf)
	if missing != "" {
		return Identity{}, newError(ErrSignedHeaderMissing, "Header '"+clip(missing)+"' is listed in SignedHeaders but absent from the request.")
	}
	st.q.sort()
	skip := ""
	if a.presigned {
		skip = paramSignature // the signature cannot sign itself
	}
	st.query = st.q.appendCanonicalQuery(st.query[:0], skip, "")
	st.uri = appendCanonicalURI(st.uri[:0], rawPath, true)

	key := v.keys.signingKey(a.accessKeyID, c.cred.SecretAccessKey, a.date, a.region, v.service)
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	m := &match{method: method, a: a, key: &key, cands: pp.cands[:pp.n], headerHash: pp.header}

	// Variants beyond the specification's one canonical request, tried only
	// after it fails:
	//   - the path as sent, not normalized: the Go SDK does not normalize
	//     (botocore and the test suite do);
	//   - presigned with X-Amz-Security-Token left out of the canonical query:
	//     some clients (AWS IoT style, the suite's post-sts-header-after)
	//     append the token after signing. The token is still bound: it must
	//     equal the credential's.
	idx := st.try(m, st.uri, st.query)
	if idx < 0 && a.presigned && a.hasToken {
		st.queryNoToken = st.q.appendCanonicalQuery(st.queryNoToken[:0], paramSignature, paramSecurityToken)
		idx = st.try(m, st.uri, st.queryNoToken)
	}
	if idx < 0 {
		st.uriRaw = appendCanonicalURI(st.uriRaw[:0], rawPath, false)
		if !bytes.Equal(st.uriRaw, st.uri) {
			idx = st.try(m, st.uriRaw, st.query)
			if idx < 0 && a.presigned && a.hasToken {
				idx = st.try(m, st.uriRaw, st.queryNoToken)
			}
		}
	}
	if idx < 0 {
		return Identity{}, newError(ErrSignatureMismatch, msgSignatureMismatch)
	}

	id := Identity{
		AccessKeyID:   a.accessKeyID,
		Principal:     c.cred.Principal,
		Temporary:     c.cred.SessionToken != "",
		Scope:         Scope{Date: a.date, Region: a.region, Service: a.service},
		SignedAt:      a.t,
		Presigned:     a.presigned,
		PayloadSigned: pp.signed[idx],
	}
	if a.presigned {
		id.Expires = a.t.Add(a.expires)
		if a.noExpires {
			id.Expires = a.t.Add(v.maxSkew)
		}
	}
	return id, nil
}

var emptySHA256 = sha256.Sum256(nil)

// payloadPlan lists the payload hashes the signer may have used, most
// likely first, and whether each covers the body.
type payloadPlan struct {
	cands  [3]candidate
	signed [3]bool
	n      int
	header string // x-amz-content-sha256, when sent
}

func planPayload(h http.Header, presigned bool, pl *payload) (payloadPlan, *Error) {
	var p payloadPlan
	switch v := h["X-Amz-Content-Sha256"]; {
	case len(v) > 1:
		return p, malformed("The request has more than one x-amz-content-sha256 header.")
	case len(v) == 1:
		p.header = v[0]
		switch {
		case p.header == unsignedPayload:
			p.cands[0], p.signed[0], p.n = candHeader, false, 1
		case isHexHash(p.header):
			if !hexEqual(p.header, pl.hash()) {
				return p, newError(ErrPayloadHashMismatch, msgPayloadHash)
			}
			p.cands[0], p.signed[0], p.n = candHeader, true, 1
		default:
			return p, malformed("x-amz-content-sha256 must be UNSIGNED-PAYLOAD or the hex SHA-256 of the body; streaming (chunked) payloads are not supported.")
		}
	case !presigned:
		p.cands[0], p.signed[0], p.n = candBody, true, 1
	default:
		p.cands[0], p.signed[0] = candBody, true
		p.cands[1], p.signed[1] = candUnsigned, false
		p.n = 2
		if *pl.hash() != emptySHA256 {
			p.cands[2], p.signed[2], p.n = candEmpty, false, 3
		}
	}
	return p, nil
}

// match is what every candidate canonical request of one call shares.
type match struct {
	method     string
	a          *authParams
	key        *[sha256.Size]byte
	cands      []candidate
	headerHash string
}

// try returns the index of the first payload candidate whose canonical
// request, with uri and query, carries the request's signature; -1 if none.
func (st *state) try(m *match, uri, query []byte) int {
	for i, c := range m.cands {
		st.buildCanonical(m.method, uri, query, c, m.headerHash)
		if st.signatureMatches(m.a, m.key) {
			return i
		}
	}
	return -1
}

func (st *state) buildCanonical(method string, uri, query []byte, c candidate, headerHash string) {
	b := st.canon[:0]
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, uri...)
	b = append(b, '\n')
	b = append(b, query...)
	b = append(b, '\n')
	b = append(b, st.hdrs...)
	switch c {
	case candBody:
		b = append(b, st.bodyHex[:]...)
	case candUnsigned:
		b = append(b, unsignedPayload...)
	case candEmpty:
		b = append(b, emptySHA256Hex...)
	case candHeader:
		b = append(b, headerHash...)
	}
	st.canon = b
}

// buildStringToSign hashes st.canon into the string to sign.
func (st *state) buildStringToSign(a *authParams) {
	sum := sha256.Sum256(st.canon)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	b := st.sts[:0]
	b = append(b, algorithm...)
	b = append(b, '\n')
	b = append(b, a.amzDate...)
	b = append(b, '\n')
	b = append(b, a.scope...)
	b = append(b, '\n')
	b = append(b, hexSum[:]...)
	st.sts = b
}

func (st *state) signatureMatches(a *authParams, key *[sha256.Size]byte) bool {
	st.buildStringToSign(a)
	sig := st.hmac(key, st.sts)
	return hmac.Equal(sig[:], a.signature[:])
}

// hmac is HMAC-SHA256 with a 32-byte key, written out over sha256.Sum256 so
// that it needs no hash.Hash (crypto/hmac allocates one per key).
func (st *state) hmac(key *[sha256.Size]byte, msg []byte) [sha256.Size]byte {
	const blockSize = 64
	var pad [blockSize]byte
	for i, k := range key {
		pad[i] = k ^ 0x36
	}
	for i := len(key); i < blockSize; i++ {
		pad[i] = 0x36
	}
	b := append(st.mac[:0], pad[:]...)
	b = append(b, msg...)
	inner := sha256.Sum256(b)
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	b = append(b[:0], pad[:]...)
	b = append(b, inner[:]...)
	st.mac = b
	return sha256.Sum256(b)
}

func (v *Verifier) checkTime(a *authParams, now time.Time) *Error {
	if a.presigned && !a.noExpires {
		if a.t.Sub(now) > v.maxSkew {
			return newError(ErrRequestTimeTooSkewed, "Signature not yet current: "+a.amzDate+" is still later than "+
				amzTime(now.Add(v.maxSkew))+" ("+amzTime(now)+" + "+skewString(v.maxSkew)+".)")
		}
		if end := a.t.Add(a.expires); now.After(end) {
			return newError(ErrPresignExpired, "Request has expired: X-Amz-Date "+a.amzDate+" plus X-Amz-Expires "+
				strconv.FormatInt(int64(a.expires/time.Second), 10)+" seconds ended at "+amzTime(end)+", now is "+amzTime(now)+".")
		}
		return nil
	}
	d := now.Sub(a.t)
	switch {
	case d > v.maxSkew:
		return newError(ErrRequestTimeTooSkewed, "Signature expired: "+a.amzDate+" is now earlier than "+
			amzTime(now.Add(-v.maxSkew))+" ("+amzTime(now)+" - "+skewString(v.maxSkew)+".)")
	case -d > v.maxSkew:
		return newError(ErrRequestTimeTooSkewed, "Signature not yet current: "+a.amzDate+" is still later than "+
			amzTime(now.Add(v.maxSkew))+" ("+amzTime(now)+" + "+skewString(v.maxSkew)+".)")
	}
	return nil
}

func amzTime(t time.Time) string { return t.UTC().Format(amzDateLayout) }

func skewString(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	}
	return d.String()
}

func checkToken(a *authParams, cred *Credential) *Error {
	switch {
	case cred.SessionToken == "" && a.hasToken:
		return newError(ErrSecurityToken, msgInvalidToken+" A long-term access key takes no X-Amz-Security-Token.")
	case cred.SessionToken == "":
		return nil
	case !a.hasToken:
		return newError(ErrSecurityToken, "The request is signed with temporary credentials but carries no X-Amz-Security-Token.")
	case !ConstantTimeEqual(a.token, cred.SessionToken):
		return newError(ErrSecurityToken, msgInvalidToken)
	}
	return nil
}

// ConstantTimeEqual compares two secrets (tokens) without converting them to []byte
// (which would allocate for long tokens); like crypto/subtle it leaks only the lengths.
func ConstantTimeEqual(x, y string) bool {
	if len(x) != len(y) {
		return false
	}
	var d byte
	for i := 0; i < len(x); i++ {
		d |= x[i] ^ y[i]
	}
	return d == 0
}

func isHexHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if _, ok := unhex(s[i]); !ok {
			return false
		}
	}
	return true
}

// hexEqual compares a validated hex hash (either case) with sum.
func hexEqual(s string, sum *[sha256.Size]byte) bool {
	for i, b := range sum {
		hi, _ := unhex(s[2*i])
		lo, _ := unhex(s[2*i+1])
		if hi<<4|lo != b {
			return false
		}
	}
	return true
}

// requestTarget returns the path and query exactly as the client sent them.
// A server request has them in RequestURI; r.URL.Path is decoded and may
// have been rewritten by middleware, and r.URL.EscapedPath re-encodes raw
// bytes (a raw UTF-8 path would then be encoded twice). A request built
// in-process has no RequestURI; its URL is what a Go client would send.
func requestTarget(r *http.Request) (path, query string) {
	if u := r.RequestURI; u != "" && u[0] == '/' {
		path, query, _ = strings.Cut(u, "?")
		return path, query
	}
	if r.URL == nil {
		return "/", ""
	}
	query = r.URL.RawQuery
	if o := r.URL.Opaque; o != "" {
		// As the Go SDK reads an opaque URL: "//host/path?query" or "/path".
		o, _, _ = strings.Cut(o, "?")
		o = strings.TrimPrefix(o, "//")
		if i := strings.IndexByte(o, '/'); i >= 0 {
			return o[i:], query
		}
		return "/", query
	}
	return r.URL.EscapedPath(), query
}
