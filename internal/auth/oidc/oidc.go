// Package oidc verifies OpenID Connect ID tokens (JWTs) for STS
// AssumeRoleWithWebIdentity, the way IAM does for an OIDC identity provider: the issuer
// must be a declared provider, the signature must verify with one of its keys (JWKS
// from a file, a URL, or the issuer's discovery document), the audience must be one of
// its client IDs, and the token must be current. Start from Verifier.
//
//	token ─▶ parse (RS/ES 256-512 only) ─▶ iss ─▶ Provider ─▶ JWKS (cached; refetched for an
//	unknown key id) ─▶ signature ─▶ exp/nbf/iat ─▶ aud/azp ∈ client IDs ─▶ Claims
//
// Reusing a token is allowed, as in AWS: SDKs send the same projected token (IRSA, valid
// up to 24 h) every time they refresh credentials.
package oidc

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Provider is an OIDC identity provider, as IAM's CreateOpenIDConnectProvider declares
// one.
type Provider struct {
	// URL is the issuer: "https://" + host + optional path, equal to the tokens' iss.
	URL string
	// Account owns the provider; its ARN is arn:aws:iam::<Account>:oidc-provider/<URL
	// without https://>.
	Account string
	// ClientIDs are the accepted audiences (aud, or azp when the token has one).
	ClientIDs []string
	// Thumbprints are hex SHA-1 fingerprints of certificates of the JWKS endpoint's
	// TLS chain. A chain the trusted roots do not verify is accepted when one of its
	// certificates has one of these fingerprints (IAM's rule for IdPs whose
	// certificate no public CA signed).
	Thumbprints []string
	// JWKSFile is a file holding the JSON Web Key Set. JWKSURL is where to fetch it.
	// With neither, it is found through URL + "/.well-known/openid-configuration".
	JWKSFile string
	JWKSURL  string
	// CAFile is a PEM bundle trusted besides the system roots for the JWKS endpoint.
	CAFile string
}

// ARN is the provider's IAM ARN, the "Federated" principal trust policies name.
func (p *Provider) ARN() string {
	return "arn:aws:iam::" + p.Account + ":oidc-provider/" + p.KeyPrefix()
}

// KeyPrefix is the prefix of the provider's condition keys: its URL without "https://"
// (e.g. "oidc.eks.us-east-1.amazonaws.com/id/ABC" in "…/id/ABC:sub").
func (p *Provider) KeyPrefix() string { return strings.TrimPrefix(p.URL, "https://") }

// Validate checks the declaration as IAM does.
func (p *Provider) Validate() error {
	u, err := url.Parse(p.URL)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil:
		return fmt.Errorf("url %q must be an https:// URL", p.URL)
	case u.RawQuery != "" || u.Fragment != "" || u.Port() != "":
		return fmt.Errorf("url %q may have no port, query or fragment", p.URL)
	case len(p.ClientIDs) == 0:
		return errors.New("client_ids: at least one is required")
	case len(p.ClientIDs) > 100:
		return errors.New("client_ids: at most 100")
	case len(p.Thumbprints) > 5:
		return errors.New("thumbprints: at most 5")
	case p.JWKSFile != "" && p.JWKSURL != "":
		return errors.New("set jwks_file or jwks_url, not both")
	}
	for _, c := range p.ClientIDs {
		if c == "" || len(c) > 255 {
			return fmt.Errorf("client_ids: %q must be 1-255 characters", c)
		}
	}
	for _, t := range p.Thumbprints {
		if b, err := hex.DecodeString(t); err != nil || len(b) != sha1.Size {
			return fmt.Errorf("thumbprints: %q is not 40 hex digits", t)
		}
	}
	if p.JWKSURL != "" {
		if ju, err := url.Parse(p.JWKSURL); err != nil || ju.Scheme != "https" || ju.Host == "" {
			return fmt.Errorf("jwks_url %q must be an https:// URL", p.JWKSURL)
		}
	}
	return nil
}

// Error codes of the STS API, which Verify's *Error carries.
const (
	CodeInvalidIdentityToken = "InvalidIdentityToken"
	CodeExpiredToken         = "ExpiredTokenException"
	CodeIDPCommunication     = "IDPCommunicationError"
)

// Error is a refused token: Code is the STS error code, Message AWS's wording.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func invalid(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidIdentityToken, Message: fmt.Sprintf(format, args...)}
}

// Claims is what a verified token says.
type Claims struct {
	Issuer  string
	Subject string
	// Audience is the client ID the token was matched with: azp when present, else the
	// aud value among the provider's client IDs.
	Audience string
	// AllAudiences are the token's aud values (the ":oaud" condition key).
	AllAudiences []string
	AMR          []string
	IssuedAt     time.Time
	Expires      time.Time
	// Tags and TransitiveTags are the session tags of the
	// "https://aws.amazon.com/tags" claim.
	Tags           map[string]string
	TransitiveTags []string
	// SourceIdentity is the "https://aws.amazon.com/source_identity" claim.
	SourceIdentity string
}

// Algorithms IAM accepts for ID tokens.
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512}

// MaxTokenLength is STS's limit on WebIdentityToken.
const MaxTokenLength = 20000

// clockSkew is the leeway for nbf and iat.
const clockSkew = 5 * time.Minute

// Verifier verifies tokens against providers, caching their key sets. It is safe for
// concurrent use; the providers can change between calls (an identities reload).
type Verifier struct {
	now    func() time.Time
	client func(p *Provider) (*http.Client, error)

	mu   sync.Mutex
	sets map[string]*keySet // by provider URL + key source; guarded by mu
}

// keySet is a provider's cached JWKS.
type keySet struct {
	mu      sync.Mutex // serializes fetches
	keys    *jose.JSONWebKeySet
	fetched time.Time
	tried   time.Time // last fetch attempt, to bound refetches for unknown key ids
}

// Key sets are refetched after keyTTL, and at most every refetchEvery when a token names
// a key the cached set lacks (a rotation).
const (
	keyTTL       = time.Hour
	refetchEvery = 10 * time.Second
)

// NewVerifier returns a Verifier; now nil means time.Now.
func NewVerifier(now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{now: now, client: httpClient, sets: map[string]*keySet{}}
}

// Verify checks token and returns the provider of its issuer (from providers, by URL)
// and its claims.
func (v *Verifier) Verify(ctx context.Context, token string, providers map[string]*Provider) (*Provider, *Claims, *Error) {
	token = strings.TrimSpace(token) // token files often end with a newline
	if len(token) > MaxTokenLength {
		return nil, nil, invalid("The web identity token is longer than %d characters.", MaxTokenLength)
	}
	sig, err := jose.ParseSigned(token, algorithms)
	if err != nil {
		return nil, nil, invalid("The web identity token is not a signed JWT with an RS256-512 or ES256-512 signature: %s.", clipErr(err))
	}
	if len(sig.Signatures) != 1 {
		return nil, nil, invalid("The web identity token must have exactly one signature.")
	}
	var raw rawClaims
	if err := json.Unmarshal(sig.UnsafePayloadWithoutVerification(), &raw); err != nil {
		return nil, nil, invalid("The web identity token's claims are not valid JSON: %s.", clipErr(err))
	}
	p, ok := providers[raw.Issuer]
	if !ok {
		return nil, nil, invalid("No OpenIDConnect provider found in your account for %s", clip(raw.Issuer))
	}
	kid := sig.Signatures[0].Header.KeyID
	keys, cerr := v.keys(ctx, p, kid)
	if cerr != nil {
		return nil, nil, cerr
	}
	var payload []byte
	for _, k := range candidates(keys, kid) {
		if out, err := sig.Verify(k); err == nil {
			payload = out
			break
		}
	}
	if payload == nil {
		return nil, nil, invalid("Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements")
	}
	// Read the claims from the verified payload (the same bytes as parsed above).
	raw = rawClaims{}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, nil, invalid("The web identity token's claims are not valid JSON: %s.", clipErr(err))
	}
	c, cerr := v.claims(p, &raw)
	if cerr != nil {
		return nil, nil, cerr
	}
	return p, c, nil
}

// claims checks the time and audience claims and builds Claims.
func (v *Verifier) claims(p *Provider, raw *rawClaims) (*Claims, *Error) {
	now := v.now()
	if raw.Expiry == nil {
		return nil, invalid("Missing a required claim: exp")
	}
	exp := raw.Expiry.time()
	if !now.Before(exp) {
		return nil, &Error{Code: CodeExpiredToken, Message: fmt.Sprintf("Token expired: current date/time %d must be before the expiration date/time %d", now.Unix(), exp.Unix())}
	}
	if raw.NotBefore != nil && now.Add(clockSkew).Before(raw.NotBefore.time()) {
		return nil, invalid("The web identity token is not valid before %d.", raw.NotBefore.time().Unix())
	}
	var iat time.Time
	if raw.IssuedAt != nil {
		iat = raw.IssuedAt.time()
		if now.Add(clockSkew).Before(iat) {
			return nil, invalid("The web identity token was issued in the future (iat %d).", iat.Unix())
		}
	}
	if raw.Subject == "" {
		return nil, invalid("Missing a required claim: sub")
	}
	if len(raw.Audience) == 0 {
		return nil, invalid("Missing a required claim: aud")
	}
	aud := ""
	if raw.AZP != "" {
		if slices.Contains(p.ClientIDs, raw.AZP) {
			aud = raw.AZP
		}
	} else {
		for _, a := range raw.Audience {
			if slices.Contains(p.ClientIDs, a) {
				aud = a
				break
			}
		}
	}
	if aud == "" {
		return nil, invalid("Incorrect token audience")
	}
	c := &Claims{
		Issuer: raw.Issuer, Subject: raw.Subject, Audience: aud, AllAudiences: raw.Audience, AMR: raw.AMR,
		IssuedAt: iat, Expires: exp, SourceIdentity: raw.SourceIdentity,
	}
	if t := raw.Tags; t != nil {
		c.Tags = map[string]string{}
		for k, vs := range t.PrincipalTags {
			if len(vs) != 1 {
				return nil, invalid("Session tag %q must have exactly one value.", clip(k))
			}
			c.Tags[k] = vs[0]
		}
		c.TransitiveTags = t.TransitiveTagKeys
	}
	return c, nil
}

// rawClaims is the JSON of the claims Strata reads.
type rawClaims struct {
	Issuer    string       `json:"iss"`
	Subject   string       `json:"sub"`
	Audience  audience     `json:"aud"`
	AZP       string       `json:"azp"`
	AMR       []string     `json:"amr"`
	Expiry    *numericDate `json:"exp"`
	NotBefore *numericDate `json:"nbf"`
	IssuedAt  *numericDate `json:"iat"`
	Tags      *struct {
		PrincipalTags     map[string][]string `json:"principal_tags"`
		TransitiveTagKeys []string            `json:"transitive_tag_keys"`
	} `json:"https://aws.amazon.com/tags"`
	SourceIdentity string `json:"https://aws.amazon.com/source_identity"`
}

// audience is a JWT aud: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = many
	return nil
}

// numericDate is seconds since the epoch; IAM wants integers.
type numericDate int64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return errors.New("timestamps must be integers")
	}
	*d = numericDate(n)
	return nil
}

func (d numericDate) time() time.Time { return time.Unix(int64(d), 0).UTC() }

// candidates are the keys to try for kid: the one with that id, or every signing key
// when the token names none.
func candidates(set *jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid != "" {
		return set.Key(kid)
	}
	var out []jose.JSONWebKey
	for _, k := range set.Keys {
		if k.Use == "" || k.Use == "sig" {
			out = append(out, k)
		}
	}
	return out
}

// keys returns p's key set, fetching it when not cached, stale, or lacking kid.
func (v *Verifier) keys(ctx context.Context, p *Provider, kid string) (*jose.JSONWebKeySet, *Error) {
	id := p.URL + "\x00" + p.JWKSFile + "\x00" + p.JWKSURL + "\x00" + p.CAFile + "\x00" + strings.Join(p.Thumbprints, ",")
	v.mu.Lock()
	ks, ok := v.sets[id]
	if !ok {
		ks = &keySet{}
		v.sets[id] = ks
	}
	v.mu.Unlock()

	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := v.now()
	fresh := ks.keys != nil && now.Sub(ks.fetched) < keyTTL
	if fresh && (kid == "" || len(ks.keys.Key(kid)) > 0) {
		return ks.keys, nil
	}
	if ks.keys != nil && now.Sub(ks.tried) < refetchEvery {
		return ks.keys, nil // an unknown kid: refetched at most every refetchEvery
	}
	ks.tried = now
	set, err := v.fetch(ctx, p)
	if err != nil {
		if ks.keys != nil {
			return ks.keys, nil // keep serving the keys we have
		}
		return nil, &Error{Code: CodeIDPCommunication, Message: "Couldn't retrieve verification key from your identity provider: " + clipErr(err)}
	}
	ks.keys, ks.fetched = set, now
	return set, nil
}

// maxDocument bounds what is read from an identity provider.
const maxDocument = 1 << 20

func (v *Verifier) fetch(ctx context.Context, p *Provider) (*jose.JSONWebKeySet, error) {
	var body []byte
	if p.JWKSFile != "" {
		b, err := os.ReadFile(p.JWKSFile)
		if err != nil {
			return nil, err
		}
		body = b
	} else {
		client, err := v.client(p)
		if err != nil {
			return nil, err
		}
		jwksURL := p.JWKSURL
		if jwksURL == "" {
			var disc struct {
				Issuer  string `json:"issuer"`
				JWKSURI string `json:"jwks_uri"`
			}
			b, err := get(ctx, client, strings.TrimSuffix(p.URL, "/")+"/.well-known/openid-configuration")
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &disc); err != nil {
				return nil, fmt.Errorf("discovery document: %w", err)
			}
			if disc.Issuer != p.URL {
				return nil, fmt.Errorf("discovery document names issuer %q, not %q", clip(disc.Issuer), p.URL)
			}
			if u, err := url.Parse(disc.JWKSURI); err != nil || u.Scheme != "https" {
				return nil, fmt.Errorf("discovery document's jwks_uri %q is not https", clip(disc.JWKSURI))
			}
			jwksURL = disc.JWKSURI
		}
		if body, err = get(ctx, client, jwksURL); err != nil {
			return nil, err
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("key set holds no key")
	}
	return &set, nil
}

func get(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDocument {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, maxDocument)
	}
	return b, nil
}

// dialFunc dials a TCP connection; tests point hosts at local servers with it.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// httpClient verifies the provider's TLS certificate against the system roots (plus
// CAFile), or, failing that, by the thumbprints.
func httpClient(p *Provider) (*http.Client, error) { return httpClientDial(p, nil) }

func httpClientDial(p *Provider, dial dialFunc) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if p.CAFile != "" {
		pem, err := os.ReadFile(p.CAFile)
		if err != nil {
			return nil, err
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", p.CAFile)
		}
	}
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	thumbs := p.Thumbprints
	// Verified by hand, per connection, knowing the host: by the roots, or by a
	// thumbprint of a certificate of the chain.
	verify := func(host string) func(cs tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, verr := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
			if verr == nil {
				return nil
			}
			if err := leaf.VerifyHostname(host); err != nil {
				return err
			}
			for _, c := range cs.PeerCertificates {
				sum := sha1.Sum(c.Raw)
				if slices.ContainsFunc(thumbs, func(t string) bool { return strings.EqualFold(t, hex.EncodeToString(sum[:])) }) {
					return nil
				}
			}
			return verr
		}
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, &tls.Config{
				MinVersion:         tls.VersionTLS12,
				ServerName:         host,
				InsecureSkipVerify: true, //nolint:gosec // verified by VerifyConnection
				VerifyConnection:   verify(host),
			})
			if err := conn.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return conn, nil
		},
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: tr,
		// A redirect may only go to another https URL.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" || len(via) > 3 {
				return errors.New("redirect refused")
			}
			return nil
		},
	}, nil
}

func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

func clipErr(err error) string { return clip(err.Error()) }
