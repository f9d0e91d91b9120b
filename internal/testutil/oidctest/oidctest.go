// Package oidctest is an OpenID Connect identity provider for tests: it signs ID tokens
// (JWTs) with its own keys and serves its discovery document and key set over TLS.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stratametrics/strata/internal/testutil"
)

// IdP signs tokens as Issuer.
type IdP struct {
	Issuer string

	mu    sync.Mutex // guards KeyID, key and alg (Rotate while the server runs)
	KeyID string
	key   crypto.Signer
	alg   jose.SignatureAlgorithm

	// Server, when started, serves /.well-known/openid-configuration and /jwks.
	Server *httptest.Server
	// JWKSFetches counts requests for the key set.
	JWKSFetches atomic.Int64
}

// New returns an IdP with an RSA key (RS256).
func New(t testing.TB, issuer string) *IdP {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &IdP{Issuer: issuer, KeyID: "key-1", key: k, alg: jose.RS256}
}

// NewEC returns an IdP with an ECDSA P-256 key (ES256).
func NewEC(t testing.TB, issuer string) *IdP {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &IdP{Issuer: issuer, KeyID: "ec-1", key: k, alg: jose.ES256}
}

// JWKS returns the public key set.
func (i *IdP) JWKS() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: i.key.Public(), KeyID: i.KeyID, Algorithm: string(i.alg), Use: "sig"}}}
	b, _ := json.Marshal(set)
	return b
}

// WriteJWKS writes the key set into dir and returns its path.
func (i *IdP) WriteJWKS(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(p, i.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Claims are a token's claims; Token fills iss, iat and exp unless set.
type Claims map[string]any

// Token signs claims.
func (i *IdP) Token(t testing.TB, c Claims) string {
	t.Helper()
	i.mu.Lock()
	key, kid, alg := i.key, i.KeyID, i.alg
	i.mu.Unlock()
	return i.sign(t, key, kid, alg, c)
}

// TokenSignedBy signs claims with another IdP's key under this IdP's key id: a forgery.
func (i *IdP) TokenSignedBy(t testing.TB, other *IdP, c Claims) string {
	t.Helper()
	other.mu.Lock()
	key, alg := other.key, other.alg
	other.mu.Unlock()
	i.mu.Lock()
	kid := i.KeyID
	i.mu.Unlock()
	return i.sign(t, key, kid, alg, c)
}

func (i *IdP) sign(t testing.TB, key crypto.Signer, kid string, alg jose.SignatureAlgorithm, c Claims) string {
	t.Helper()
	claims := Claims{"iss": i.Issuer, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range c {
		if v == nil {
			delete(claims, k)
			continue
		}
		claims[k] = v
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Serve starts an HTTPS server with a certificate from ca for 127.0.0.1 and localhost
// (and dnsNames), serving the discovery document (with jwks_uri on this server) and
// the key set. It stops when the test ends.
func (i *IdP) Serve(t testing.TB, ca *testutil.CA, dnsNames ...string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests check
	base := ""
	if u, err := url.Parse(i.Issuer); err == nil {
		base = strings.TrimSuffix(u.Path, "/")
	}
	mux.HandleFunc("GET "+base+"/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": i.Issuer, "jwks_uri": srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		i.JWKSFetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(i.JWKS())
	})
	leaf := ca.IssueFor(t, "idp", dnsNames...)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	i.Server = srv
	return srv
}

// Rotate replaces the signing key (and key id): the old tokens no longer verify.
func (i *IdP) Rotate(t testing.TB, kid string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	i.mu.Lock()
	i.key, i.KeyID, i.alg = k, kid, jose.RS256
	i.mu.Unlock()
}

// With returns c with the claims of more set over it (nil values remove a claim when
// signed).
func (c Claims) With(more Claims) Claims {
	out := Claims{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// Tamper changes one character of a token's payload, keeping it base64: a token whose
// signature no longer verifies.
func Tamper(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) < 10 {
		return token + "x"
	}
	b := []byte(parts[1])
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	parts[1] = string(b)
	return strings.Join(parts, ".")
}
