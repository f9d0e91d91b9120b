package query

import (
	"bytes"
	"compress/gzip"
	"github.com/stratametrics/strata/internal/testutil"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// testWS is the workspace the fixture is loaded into.
const testWS = "ws-fixture"

// env is an API over per-workspace TSDBs behind an httptest server, mounted the way the
// HTTP server mounts Routes.
type env struct {
	api   *API
	srv   *httptest.Server
	store *tsdbStore
	reg   *prometheus.Registry
	logs  *syncBuffer
}

type syncBuffer = testutil.SyncBuffer

// newEnv starts an API with the fixture in testWS. mod adjusts the configuration and the
// dependencies before the API is built.
func newEnv(t testing.TB, mod func(*Config, *Deps)) *env {
	t.Helper()
	store := newStore()
	db := openTSDB(t)
	appendFixture(t, db, fixture())
	store.add(testWS, db)
	e := &env{store: store, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	cfg := testConfig()
	deps := Deps{
		Queryables: store,
		Workspaces: store,
		Metadata:   fakeMetadata(fixtureMetadata()),
		Exemplars:  store,
		HeadStats:  store,
		BuildInfo:  &BuildInfo{Version: "3.16.0", Revision: "test", GoVersion: "go1.26"},
		Logger:     slog.New(slog.NewTextHandler(e.logs, nil)),
		Registerer: e.reg,
	}
	if mod != nil {
		mod(&cfg, &deps)
	}
	a, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.api = a
	mux := http.NewServeMux()
	for _, r := range a.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, r.Handler)
	}
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		_ = a.Close()
	})
	return e
}

// testTransport neither asks for compression by itself (tests that want it say so and
// check it) nor keeps idle connections, whose goroutines goleak would report.
var testTransport = &http.Transport{DisableCompression: true, DisableKeepAlives: true}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request for path (under the workspace's /api/v1/) with params in the query
// string (GET) or a form body (POST).
func (e *env) do(t testing.TB, method, ws, path string, params url.Values) answer {
	t.Helper()
	return doHTTP(t, method, e.srv.URL+"/workspaces/"+ws+"/api/v1/"+path, params, nil)
}

func doHTTP(t testing.TB, method, u string, params url.Values, header http.Header) answer {
	t.Helper()
	var body io.Reader
	if method == http.MethodGet {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := testTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}
