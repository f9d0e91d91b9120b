package sigv4proxy

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratametrics/strata/internal/testutil"
)

// The proxy serves HTTPS itself (--tls.*) and trusts a private CA for an https upstream
// (--upstream-ca-file): TLS on both legs.
func TestMainTLSBothWays(t *testing.T) {
	envCreds(t)
	up := newTLSUpstream(t, staticStore(testKeyID, testSecret, ""))
	dir := t.TempDir()
	upCA := filepath.Join(dir, "upstream-ca.pem")
	if err := os.WriteFile(upCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testutil.NewCA(t, "proxy CA")
	certFile, keyFile := ca.Issue(t, "proxy", false).WriteFiles(t, dir, "proxy")

	// Without the upstream's CA the proxy cannot reach it.
	addr, _ := startMain(t, "--upstream", up.URL, "--tls.cert-file", certFile, "--tls.key-file", keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := client.Get("https://" + addr + "/workspaces/ws-1/api/v1/labels")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("untrusted upstream certificate: %d", resp.StatusCode)
	}

	addr, _ = startMain(t, "--upstream", up.URL, "--tls.cert-file", certFile, "--tls.key-file", keyFile, "--upstream-ca-file", upCA)
	resp, err = client.Get("https://" + addr + "/workspaces/ws-1/api/v1/labels")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("over TLS both ways: %d", resp.StatusCode)
	}
	if got := up.last(t); got.Identity.AccessKeyID != testKeyID {
		t.Fatalf("upstream saw %s", got.Identity.AccessKeyID)
	}
	// Plain HTTP to the TLS listener gets nothing useful.
	if resp, err := http.Get("http://" + addr + "/workspaces/ws-1/api/v1/labels"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served by the TLS listener")
		}
	}
	client.CloseIdleConnections()
}
