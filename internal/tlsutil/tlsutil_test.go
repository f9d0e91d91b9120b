package tlsutil

import (
	"crypto/tls"

	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	stratatest "github.com/stratametrics/strata/internal/testutil"
)

// serve accepts TLS connections with r's config and completes their handshakes until
// the listener closes.
func serve(t *testing.T, r *Reloader) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Write([]byte("x")) // lets a TLS 1.3 client see a refused certificate // lets a TLS 1.3 client see a refused certificate
				_ = c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// handshake connects and returns the server certificate's common name.
func handshake(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	// The byte may come with io.EOF (the close_notify right behind it).
	buf := make([]byte, 1)
	if n, err := c.Read(buf); n != 1 {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestReloadServesTheNewCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := stratatest.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "first", false).WriteFiles(t, dir, "server")
	reg := prometheus.NewRegistry()
	r, err := NewReloader(Config{CertFile: certFile, KeyFile: keyFile}, "main", nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	client := &tls.Config{RootCAs: ca.Pool()}
	if cn, err := handshake(addr, client); err != nil || cn != "first" {
		t.Fatalf("first handshake: %q %v", cn, err)
	}

	// A half-written renewal does not load: the certificate in use stays.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("a broken certificate file reloaded")
	}
	if v := testutil.ToFloat64(r.lastOK); v != 0 {
		t.Fatalf("strata_tls_last_reload_successful %v after a failed reload", v)
	}
	if cn, err := handshake(addr, client); err != nil || cn != "first" {
		t.Fatalf("after a failed reload: %q %v", cn, err)
	}

	ca.Issue(t, "second", false).WriteFiles(t, dir, "server")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn, err := handshake(addr, client); err != nil || cn != "second" {
		t.Fatalf("after reload: %q %v", cn, err)
	}
	if v := testutil.ToFloat64(r.lastOK); v != 1 {
		t.Fatalf("strata_tls_last_reload_successful %v", v)
	}
}

func TestOldTLSVersionsRefused(t *testing.T) {
	dir := t.TempDir()
	ca := stratatest.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "server", false).WriteFiles(t, dir, "server")
	r, err := NewReloader(Config{CertFile: certFile, KeyFile: keyFile}, "main", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	if _, err := handshake(addr, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	if _, err := handshake(addr, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA := stratatest.NewCA(t, "server CA")
	clientCA := stratatest.NewCA(t, "client CA")
	otherCA := stratatest.NewCA(t, "other CA")
	certFile, keyFile := serverCA.Issue(t, "server", false).WriteFiles(t, dir, "server")
	caFile := filepath.Join(dir, "clients.pem")
	if err := os.WriteFile(caFile, clientCA.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}, "main", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	good := clientCA.Issue(t, "client", true)
	bad := otherCA.Issue(t, "intruder", true)
	for name, tc := range map[string]struct {
		certs []tls.Certificate
		ok    bool
	}{
		"no certificate":        {nil, false},
		"certificate of others": {[]tls.Certificate{bad.TLS}, false},
		"client certificate":    {[]tls.Certificate{good.TLS}, true},
	} {
		_, err := handshake(addr, &tls.Config{RootCAs: serverCA.Pool(), Certificates: tc.certs})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", name, err, tc.ok)
		}
	}
}

func TestWorldReadableKeyRefused(t *testing.T) {
	dir := t.TempDir()
	ca := stratatest.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "server", false).WriteFiles(t, dir, "server")
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewReloader(Config{CertFile: certFile, KeyFile: keyFile}, "main", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "readable by every user") {
		t.Fatalf("world-readable key: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{CertFile: "a"},
		{KeyFile: "a"},
		{ClientCAFile: "ca"},
		{CertFile: "a", KeyFile: "b", MinVersion: "1.1"},
		{CertFile: "a", KeyFile: "b", ClientAuth: ClientAuthRequest},
		{CertFile: "a", KeyFile: "b", ClientCAFile: "c", ClientAuth: "maybe"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("TLS off: %v", err)
	}
}
