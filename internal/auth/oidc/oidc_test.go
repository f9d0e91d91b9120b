package oidc

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/testutil"
	"github.com/stratametrics/strata/internal/testutil/oidctest"
)

const issuer = "https://issuer.example.com/tenant"

func fileProvider(t *testing.T, idp *oidctest.IdP) map[string]*Provider {
	t.Helper()
	p := &Provider{URL: issuer, Account: "111122223333", ClientIDs: []string{"sts.amazonaws.com"}, JWKSFile: idp.WriteJWKS(t, t.TempDir())}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return map[string]*Provider{issuer: p}
}

func TestVerify(t *testing.T) {
	idp := oidctest.New(t, issuer)
	ec := oidctest.NewEC(t, issuer)
	other := oidctest.New(t, "https://other.example.com")
	providers := fileProvider(t, idp)
	v := NewVerifier(nil)
	ctx := context.Background()
	good := oidctest.Claims{"sub": "system:serviceaccount:prom:prometheus", "aud": "sts.amazonaws.com", "amr": []string{"a", "b"},
		"https://aws.amazon.com/tags": map[string]any{"principal_tags": map[string][]string{"team": {"blue"}}, "transitive_tag_keys": []string{"team"}}}

	p, c, err := v.Verify(ctx, idp.Token(t, good)+"\n", providers)
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	if p.ARN() != "arn:aws:iam::111122223333:oidc-provider/issuer.example.com/tenant" || p.KeyPrefix() != "issuer.example.com/tenant" {
		t.Fatalf("provider %s %s", p.ARN(), p.KeyPrefix())
	}
	if c.Subject != good["sub"] || c.Audience != "sts.amazonaws.com" || len(c.AMR) != 2 || c.Tags["team"] != "blue" || c.TransitiveTags[0] != "team" {
		t.Fatalf("claims %+v", c)
	}
	// The same token again: reuse is allowed, as in AWS (SDKs resend their token file).
	if _, _, err := v.Verify(ctx, idp.Token(t, good), providers); err != nil {
		t.Fatalf("reused: %v", err)
	}

	for name, tc := range map[string]struct {
		token string
		code  string
		msg   string
	}{
		"expired":         {idp.Token(t, good.With(oidctest.Claims{"exp": time.Now().Add(-time.Minute).Unix()})), CodeExpiredToken, "Token expired"},
		"wrong audience":  {idp.Token(t, good.With(oidctest.Claims{"aud": "someone-else"})), CodeInvalidIdentityToken, "Incorrect token audience"},
		"azp decides":     {idp.Token(t, good.With(oidctest.Claims{"aud": []string{"sts.amazonaws.com", "x"}, "azp": "x"})), CodeInvalidIdentityToken, "Incorrect token audience"},
		"no audience":     {idp.Token(t, good.With(oidctest.Claims{"aud": nil})), CodeInvalidIdentityToken, "Missing a required claim: aud"},
		"no subject":      {idp.Token(t, good.With(oidctest.Claims{"sub": nil})), CodeInvalidIdentityToken, "Missing a required claim: sub"},
		"no expiry":       {idp.Token(t, good.With(oidctest.Claims{"exp": nil})), CodeInvalidIdentityToken, "exp"},
		"not yet valid":   {idp.Token(t, good.With(oidctest.Claims{"nbf": time.Now().Add(time.Hour).Unix()})), CodeInvalidIdentityToken, "not valid before"},
		"from the future": {idp.Token(t, good.With(oidctest.Claims{"iat": time.Now().Add(time.Hour).Unix()})), CodeInvalidIdentityToken, "issued in the future"},
		"wrong issuer":    {other.Token(t, good), CodeInvalidIdentityToken, "No OpenIDConnect provider found in your account for https://other.example.com"},
		"forged":          {idp.TokenSignedBy(t, other, good), CodeInvalidIdentityToken, "verification key"},
		"other key type":  {ec.Token(t, good), CodeInvalidIdentityToken, ""},
		"tampered":        {oidctest.Tamper(idp.Token(t, good)), CodeInvalidIdentityToken, ""},
		"not a JWT":       {"not-a-jwt", CodeInvalidIdentityToken, "not a signed JWT"},
		"alg none":        {unsigned(t, good), CodeInvalidIdentityToken, "not a signed JWT"},
		"float exp":       {idp.Token(t, good.With(oidctest.Claims{"exp": float64(time.Now().Add(time.Hour).Unix()) + 0.5})), CodeInvalidIdentityToken, "integers"},
		"huge":            {strings.Repeat("a", MaxTokenLength+1), CodeInvalidIdentityToken, "longer than"},
	} {
		_, _, err := v.Verify(ctx, tc.token, providers)
		if err == nil || err.Code != tc.code || !strings.Contains(err.Message, tc.msg) {
			t.Errorf("%s: %v, want %s containing %q", name, err, tc.code, tc.msg)
		}
	}
}

// unsigned is a token with "alg": "none".
func unsigned(t *testing.T, c oidctest.Claims) string {
	t.Helper()
	tok := oidctest.New(t, issuer).Token(t, c)
	parts := strings.Split(tok, ".")
	return "eyJhbGciOiJub25lIn0." + parts[1] + "."
}

// The key set is fetched over TLS (discovery, then jwks_uri), cached, and fetched again
// when a token names a key the cache lacks; a certificate no trusted root signed is
// accepted only by a thumbprint.
func TestFetchedKeys(t *testing.T) {
	ca := testutil.NewCA(t, "idp CA")
	idp := oidctest.New(t, issuer)
	srv := idp.Serve(t, ca, "issuer.example.com")
	now := time.Now()
	clock := func() time.Time { return now }
	v := NewVerifier(clock)
	// Every host resolves to the test server.
	dialer := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	v.client = func(p *Provider) (*http.Client, error) { return httpClientDial(p, dialer) }

	p := &Provider{URL: issuer, Account: "111122223333", ClientIDs: []string{"sts.amazonaws.com"}}
	providers := map[string]*Provider{issuer: p}
	claims := oidctest.Claims{"sub": "s", "aud": "sts.amazonaws.com"}
	ctx := context.Background()

	// Untrusted CA, no thumbprint: refused, as a communication error.
	if _, _, err := v.Verify(ctx, idp.Token(t, claims), providers); err == nil || err.Code != CodeIDPCommunication {
		t.Fatalf("untrusted certificate: %v", err)
	}
	// A thumbprint of the CA: accepted.
	p.Thumbprints = []string{ca.Thumbprint()}
	if _, _, err := v.Verify(ctx, idp.Token(t, claims), providers); err != nil {
		t.Fatalf("pinned by thumbprint: %v", err)
	}
	fetches := idp.JWKSFetches.Load()
	if _, _, err := v.Verify(ctx, idp.Token(t, claims), providers); err != nil || idp.JWKSFetches.Load() != fetches {
		t.Fatalf("second token: %v, fetches %d → %d (want cached)", err, fetches, idp.JWKSFetches.Load())
	}
	// The IdP rotates its key: a token with the new key id triggers a fetch.
	idp.Rotate(t, "key-2")
	now = now.Add(time.Minute)
	if _, _, err := v.Verify(ctx, idp.Token(t, claims), providers); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if idp.JWKSFetches.Load() != fetches+1 {
		t.Fatalf("fetches %d, want %d", idp.JWKSFetches.Load(), fetches+1)
	}
	// A CA file instead of a thumbprint: accepted too.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	v2 := NewVerifier(clock)
	v2.client = v.client
	p2 := &Provider{URL: issuer, Account: "111122223333", ClientIDs: []string{"sts.amazonaws.com"}, CAFile: caFile}
	if _, _, err := v2.Verify(ctx, idp.Token(t, claims), map[string]*Provider{issuer: p2}); err != nil {
		t.Fatalf("with a CA file: %v", err)
	}
}

func TestProviderValidate(t *testing.T) {
	ok := Provider{URL: "https://oidc.eks.us-east-1.amazonaws.com/id/ABC", Account: "111122223333", ClientIDs: []string{"sts.amazonaws.com"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*Provider){
		func(p *Provider) { p.URL = "http://insecure.example.com" },
		func(p *Provider) { p.URL = "https://h.example.com:8443" },
		func(p *Provider) { p.URL = "https://h.example.com?x=1" },
		func(p *Provider) { p.ClientIDs = nil },
		func(p *Provider) { p.Thumbprints = []string{"abc"} },
		func(p *Provider) { p.JWKSFile, p.JWKSURL = "f", "https://k" },
		func(p *Provider) { p.JWKSURL = "http://k.example.com" },
	} {
		p := ok
		bad(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%+v validated", p)
		}
	}
}
