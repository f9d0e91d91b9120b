package sigv4proxy

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/storage"

	"github.com/stratametrics/strata/internal/query"
)

func TestCanonicalPath(t *testing.T) {
	for _, tc := range []struct {
		raw, want string // want "": refused
	}{
		{"/", "/"},
		{"/workspaces", "/workspaces"},
		{"/workspaces/", "/workspaces/"},
		{"//workspaces//ws-1///api", "/workspaces/ws-1/api"},
		{"/a/./b/../c", "/a/c"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/..", "/"},
		{"/../../a", "/a"},
		{"/workspaces/ws-1/api/v1/../../../workspaces", "/workspaces/workspaces"},
		{"/workspaces/ws-1/api/v1/../../../../workspaces", "/workspaces"},
		{"/a/%2e%2E/b", "/b"},
		{"/a/%2e/b", "/a/b"},
		{"/a/.%2e/b", "/b"},
		{"/a/...", "/a/..."}, // not a dot segment
		{"/a/qu%65ry", "/a/qu%65ry"},
		{"/a/x%20y", "/a/x%20y"},
		{"/a%2Fb/c", "/a%2Fb/c"}, // one segment, "a/b": admitted only where a rule expects it
		{"/a%5Cb", ""},
		{"/a\\..\\b", ""},
		{"/a/%zz", ""},
		{"/a/%2", ""},
	} {
		got, err := canonicalPath(tc.raw)
		if tc.want == "" {
			if err == nil {
				t.Errorf("canonicalPath(%q) = %q, want an error", tc.raw, got.escaped)
			}
			continue
		}
		if err != nil || got.escaped != tc.want {
			t.Errorf("canonicalPath(%q) = %q, %v; want %q", tc.raw, got.escaped, err, tc.want)
		}
	}
}

func TestAllowList(t *testing.T) {
	def, _ := newAllowList(Config{})
	cp, _ := newAllowList(Config{AllowControlPlane: true})
	extra, err := newAllowList(Config{Allow: []string{"GET /workspaces/*/api/v1/rules", "* /custom/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path   string
		def, cp, extra bool
	}{
		{"POST", "/workspaces/ws-1/api/v1/remote_write", true, true, true},
		{"GET", "/workspaces/ws-1/api/v1/remote_write", false, false, false},
		{"PUT", "/workspaces/ws-1/api/v1/remote_write", false, false, false},
		{"POST", "/workspaces/ws-1/api/v1/remote_write/", false, false, false},
		{"POST", "/workspaces/ws-1/api/v1/remote_write/x", false, false, false},
		{"GET", "/workspaces/ws-1/api/v1/query", true, true, true},
		{"HEAD", "/workspaces/ws-1/api/v1/query", true, true, true},
		{"POST", "/workspaces/ws-1/api/v1/query_range", true, true, true},
		{"DELETE", "/workspaces/ws-1/api/v1/query", false, false, false},
		{"GET", "/workspaces/ws-1/api/v1/label/job/values", true, true, true},
		{"GET", "/workspaces/ws-1/api/v1/label/values", false, false, false},
		{"GET", "/workspaces/ws-1/api/v1/status/tsdb", true, true, true},
		{"GET", "/workspaces/ws-1/api/v1/status/config", false, false, false},
		{"POST", "/workspaces/ws-1/api/v1/admin/tsdb/delete_series", false, false, false},
		{"GET", "/workspaces/ws-1/api/v1/rules", false, false, true},
		{"GET", "/workspaces/ws-1/api/v1/rules/x", false, false, true},
		{"POST", "/workspaces/ws-1/api/v1/rules", false, false, false},
		{"GET", "/workspaces/ws-1/alertmanager/api/v2/alerts", true, true, true},
		{"POST", "/workspaces/ws-1/alertmanager/api/v2/silences", true, true, true},
		{"DELETE", "/workspaces/ws-1/alertmanager/api/v2/silence/abc", true, true, true},
		{"PUT", "/workspaces/ws-1/alertmanager/api/v2/silences", false, false, false},
		{"GET", "/workspaces/ws-1/alertmanager/api/v2", false, false, false},
		{"GET", "/workspaces/ws-1/alertmanager/api/v1/alerts", false, false, false},
		// The control plane.
		{"POST", "/workspaces", false, true, false},
		{"GET", "/workspaces", false, true, false},
		{"GET", "/workspaces/ws-1", false, true, false},
		{"DELETE", "/workspaces/ws-1", false, true, false},
		{"POST", "/workspaces/ws-1/alias", false, true, false},
		{"PATCH", "/workspaces/ws-1/configuration", false, true, false},
		{"PUT", "/workspaces/ws-1/policy", false, true, false},
		{"PUT", "/workspaces/ws-1/alertmanager/definition", false, true, false},
		{"DELETE", "/workspaces/ws-1/rulegroupsnamespaces/ns", false, true, false},
		{"POST", "/workspaces/ws-1/logging", false, true, false},
		{"POST", "/tags/arn:aws:aps:us-east-1:123456789012:workspace%2Fws-1", false, true, false},
		{"DELETE", "/scrapers/s-1", false, true, false},
		// An encoded '/' passes only where a rule expects one (an ARN).
		{"GET", "/workspaces/ws%2F1/api/v1/query", false, false, false},
		{"GET", "/workspaces/ws-1/api/v1/label/a%2Fb/values", false, false, false},
		{"GET", "/tags/arn%2Fx/y", false, false, false},
		{"GET", "/custom/a%2Fb", false, false, false},
		{"GET", "/scraperconfiguration", false, true, false},
		// Neither.
		{"GET", "/", false, false, false},
		{"GET", "/metrics", false, false, false},
		{"GET", "/workspaces/ws-1/unknown", false, false, false},
		{"POST", "/", false, false, false},
		{"GET", "/custom", false, false, true},
		{"PATCH", "/custom/a/b", false, false, true},
		{"GET", "/customer", false, false, false},
	} {
		p, err := canonicalPath(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		for _, c := range []struct {
			name string
			l    allowList
			want bool
		}{{"default", def, tc.def}, {"control plane", cp, tc.cp}, {"extra", extra, tc.extra}} {
			if got := c.l.admits(tc.method, p); got != c.want {
				t.Errorf("%s: %s %s admitted %v, want %v", c.name, tc.method, tc.path, got, c.want)
			}
		}
	}
}

// stubStorage satisfies query.Deps; TestAllowListCoversQueryRoutes only lists routes.
type stubStorage struct{}

func (stubStorage) Querier(context.Context, string, int64, int64) (storage.Querier, error) {
	return nil, errors.New("stub")
}
func (stubStorage) Exists(context.Context, string) (bool, error) { return false, nil }

// TestAllowListCoversQueryRoutes: every route of the query API, with the
// methods it is served with, is on the default allow-list, so that the list
// follows internal/query when it grows.
func TestAllowListCoversQueryRoutes(t *testing.T) {
	var cfg query.Config
	cfg.RegisterFlags(flag.NewFlagSet("q", flag.ContinueOnError))
	api, err := query.New(cfg, query.Deps{Queryables: stubStorage{}, Workspaces: stubStorage{}})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	def, _ := newAllowList(Config{})
	routes := api.Routes()
	if len(routes) == 0 {
		t.Fatal("no routes")
	}
	for _, r := range routes {
		path := strings.NewReplacer("{workspaceId}", "ws-1", "{name}", "job").Replace(r.Pattern)
		p, err := canonicalPath(path)
		if err != nil || !def.admits(r.Method, p) {
			t.Errorf("%s %s (%s) is not on the default allow-list (%v)", r.Method, r.Pattern, path, err)
		}
	}
}

// TestProxyAllowList drives the proxy's HTTP server with requests the
// allow-list must refuse, among them paths that reach the control plane
// only through "..", encoded dots, "//", encoded slashes or backslashes:
// each answers 403 in plain text, naming the flag when one would admit it,
// and nothing reaches the upstream. Those it admits go upstream as the path
// that was checked.
func TestProxyAllowList(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	_, base := startProxy(t, Config{Upstream: up.URL})
	addr := hostOf(t, base)
	const (
		controlPlane = "is AMP's control plane, which this proxy does not sign for its clients unless started with --allow-control-plane"
		notListed    = "is not on the proxy's allow-list"
		encodedSlash = "has an encoded '/' (%2F) in a segment"
		backslash    = "has a '\\' (or %5C)"
	)
	for _, tc := range []struct {
		method, target, want string
	}{
		{"POST", "/workspaces", controlPlane},
		{"GET", "/workspaces?alias=prod", controlPlane},
		{"DELETE", "/workspaces/ws-1", controlPlane},
		{"PUT", "/workspaces/ws-1/policy", controlPlane},
		{"PATCH", "/workspaces/ws-1/configuration", controlPlane},
		{"PUT", "/workspaces/ws-1/alertmanager/definition", controlPlane},
		{"GET", "/tags/arn:aws:aps:us-east-1:123456789012:workspace", controlPlane},
		{"POST", "/tags/arn%3Aaws%3Aaps%3Aus-east-1%3A123456789012%3Aworkspace%2Fws-1", controlPlane},
		{"PUT", "/workspaces/ws-1/api/v1/remote_write", notListed},
		{"PATCH", "/workspaces/ws-1/api/v1/query", notListed},
		{"DELETE", "/workspaces/ws-1/api/v1/series", notListed},
		{"POST", "/workspaces/ws-1/api/v1/admin/tsdb/delete_series", notListed},
		{"GET", "/metrics", notListed},
		{"GET", "/", notListed},
		{"GET", "/workspaces/ws-1/unknown", notListed},
		// Traversal: what is checked (and would be forwarded) is the resolved path.
		{"POST", "/workspaces/ws-1/api/v1/../../../workspaces", controlPlane},    // POST /workspaces/workspaces
		{"POST", "/workspaces/ws-1/api/v1/../../../../workspaces", controlPlane}, // CreateWorkspace
		{"GET", "/workspaces/ws-1/api/v1/query/../../../../workspaces?alias=x", controlPlane},
		{"DELETE", "/workspaces/ws-1/alertmanager/api/v2/../../../../ws-2", controlPlane},
		{"DELETE", "/workspaces/ws-1/alertmanager/api/v2/%2e%2e/%2E%2E/%2e%2E/%2E%2e/ws-1", controlPlane}, // DeleteWorkspace
		{"DELETE", "/workspaces/ws-1/alertmanager/api/v2/silence/.%2e/.%2e/.%2e/.%2e/.%2e/ws-1", controlPlane},
		{"DELETE", "/workspaces/ws-1/alertmanager/api/v2/%2e%2e/%2E%2E/%2e%2E", notListed}, // "/workspaces/ws-1/"
		{"PUT", "/workspaces/ws-1/alertmanager/api/v2/../../definition", controlPlane},
		{"POST", "/workspaces/ws-1/api/v1/remote_write/../../../../../tags/arn", controlPlane},
		{"POST", "/workspaces/ws-1/api/v1/remote_write/../../../../../../../../tags/arn", controlPlane},
		{"POST", "//workspaces", controlPlane},
		{"DELETE", "//workspaces//ws-1", controlPlane},
		{"POST", "/./workspaces", controlPlane},
		{"POST", "/workspaces//", notListed}, // not even the control plane's: AMP has no "/workspaces/"
		{"POST", "/workspaces/ws-1/api/v1/remote_write/..", notListed},
		{"POST", "/workspaces/ws-1/api/v1/remote_write/.", notListed},
		{"GET", "/workspaces/ws-1/api/v1/query/.", notListed},
		{"GET", "/workspaces/ws-1/api/v1/../../../../metrics", notListed},
		// Encoded separators: refused whatever they decode to.
		{"DELETE", "/workspaces/ws-1/alertmanager/api/v2/silence/..%2F..%2F..%2F..%2F..", encodedSlash},
		{"DELETE", "/workspaces/..%2F..%2Fworkspaces%2Fws-1/alertmanager/api/v2/silence/x", encodedSlash},
		{"GET", "/workspaces/ws-1%2Fapi%2Fv1%2Fquery", encodedSlash},
		{"GET", "/workspaces/ws-1/api/v1/label/a%2fb/values", encodedSlash},
		{"POST", "/tags/..%2F..%2Fworkspaces", controlPlane}, // the shape of TagResource: one segment
		{"GET", "/workspaces/ws-1/api/v1/label/a%5Cb/values", backslash},
		{"DELETE", "/workspaces/ws-1/alertmanager/api/v2/silence/..\\..\\..\\..", backslash},
		// Absolute-form targets are checked the same way.
		{"POST", "http://upstream.example/workspaces", controlPlane},
		{"POST", "http://upstream.example/workspaces/ws-1/api/v1/../../../workspaces", controlPlane},
	} {
		resp, body := rawRequest(t, addr, tc.method+" "+tc.target+" HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), tc.want) ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s %s: %d %s %q, want 403 saying %q", tc.method, tc.target, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.want)
		}
		if tc.want == notListed && !strings.Contains(string(body), "--allow \"") {
			t.Errorf("%s %s: %q does not name --allow", tc.method, tc.target, body)
		}
	}
	if got := up.requests(); len(got) != 0 {
		t.Fatalf("the upstream got %d refused requests, the first %s %s", len(got), got[0].Method, got[0].RequestURI)
	}

	// Admitted after resolution: forwarded as resolved, never as sent.
	for target, want := range map[string]string{
		"/workspaces/ws-1/api/v1/query/../../../../../workspaces/ws-1/api/v1/labels": "/workspaces/ws-1/api/v1/labels",
		"/workspaces/ws-2/../ws-1/api/v1/query?query=up":                             "/workspaces/ws-1/api/v1/query?query=up",
		"//workspaces/ws-1/.//api/v1/series?match[]=up":                              "/workspaces/ws-1/api/v1/series?match[]=up",
		"/workspaces/ws-1/api/v1/%2E%2E/v1/status/buildinfo":                         "/workspaces/ws-1/api/v1/status/buildinfo",
	} {
		resp, body := rawRequest(t, addr, "GET "+target+" HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", target, resp.StatusCode, body)
			continue
		}
		if got := up.last(t); got.RequestURI != want {
			t.Errorf("GET %s reached the upstream as %s, want %s", target, got.RequestURI, want)
		}
	}
}

// TestProxyAllowFlags: --allow-control-plane and --allow widen the
// allow-list of the command line.
func TestProxyAllowFlags(t *testing.T) {
	envCreds(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	send := func(addr, method, target string) int {
		t.Helper()
		resp, _ := rawRequest(t, addr, method+" "+target+" HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return resp.StatusCode
	}
	def, _ := startMain(t, "--upstream", up.URL)
	cp, _ := startMain(t, "--upstream", up.URL, "--allow-control-plane")
	extra, _ := startMain(t, "--upstream", up.URL, "--allow", "GET /workspaces/*/api/v1/rules,get /workspaces/*/api/v1/alerts", "--allow", "DELETE /custom/")
	for _, tc := range []struct {
		addr, method, target string
		want                 int
	}{
		{def, "POST", "/workspaces", 403},
		{cp, "POST", "/workspaces", 200},
		{cp, "DELETE", "/workspaces/ws-1", 200},
		{cp, "POST", "/tags/arn%3Aaws%3Aaps%3Aus-east-1%3A123456789012%3Aworkspace%2Fws-1", 200},
		{cp, "POST", "/workspaces/ws%2F1/alias", 403},
		{cp, "GET", "/workspaces/ws-1/api/v1/rules", 403},
		{def, "GET", "/workspaces/ws-1/api/v1/rules", 403},
		{extra, "GET", "/workspaces/ws-1/api/v1/rules", 200},
		{extra, "GET", "/workspaces/ws-1/api/v1/alerts", 200},
		{extra, "DELETE", "/custom/x", 200},
		{extra, "GET", "/custom/x", 403},
		{extra, "POST", "/workspaces", 403},
	} {
		before := len(up.requests())
		if got := send(tc.addr, tc.method, tc.target); got != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.target, got, tc.want)
		}
		got := up.requests()[before:]
		if len(got) != map[bool]int{true: 1}[tc.want == 200] {
			t.Errorf("%s %s: forwarded %d times", tc.method, tc.target, len(got))
		} else if len(got) == 1 && got[0].RequestURI != tc.target {
			t.Errorf("%s %s: forwarded as %s", tc.method, tc.target, got[0].RequestURI)
		}
	}
	var stderr syncBuffer
	if code := runMain(context.Background(), []string{"--upstream", up.URL, "--allow", "GET workspaces"}, io.Discard, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "must start with '/'") {
		t.Errorf("bad --allow: exit %d: %s", code, stderr.String())
	}
}
