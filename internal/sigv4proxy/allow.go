package sigv4proxy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// The allow-list: which requests the proxy signs. Anyone who reaches the proxy acts with
// its credentials, so by default it forwards only the Prometheus data plane of AMP
// workspaces (remote write, the query API, the Alertmanager API) and answers everything
// else 403 without signing it. Config.AllowControlPlane and Config.Allow widen it.
//
// Rules match the canonical path (canonicalPath): dot segments resolved, empty segments
// dropped, each segment percent-decoded. That canonical path, still escaped as the
// client wrote each segment, is what goes upstream, so the upstream routes exactly the
// path that was checked: "/workspaces/ws-1/api/v1/../../../workspaces" is checked and
// forwarded as "/workspaces". A path with no single reading is refused: a '\' (raw or
// encoded), which some servers take for a '/', and an encoded '/' inside a segment
// (servers disagree on whether it splits the segment), except where a rule expects
// one: the resource ARN of AMP's /tags/{resourceArn}.

// rule admits requests whose method is in methods (nil: any method) and whose canonical
// path matches segs, where a "*" segment stands for any one segment.
type rule struct {
	methods []string
	segs    []string
	// self admits the path itself (with or without a trailing slash when sub is set,
	// without one otherwise); sub admits the paths below it.
	self, sub bool
	// encodedSlash admits an encoded '/' in the segments a "*" matches.
	encodedSlash bool
}

func (r rule) admits(method string, p cpath) bool {
	if r.methods != nil && !slices.Contains(r.methods, method) &&
		// HEAD is GET without a body; net/http's ServeMux serves it wherever GET is.
		!(method == "HEAD" && slices.Contains(r.methods, "GET")) {
		return false
	}
	switch {
	case len(p.segs) == len(r.segs):
		if !r.self || (p.dir && !r.sub) {
			return false
		}
	case len(p.segs) > len(r.segs):
		if !r.sub {
			return false
		}
	default:
		return false
	}
	for i, s := range r.segs {
		if s != "*" && s != p.segs[i] {
			return false
		}
	}
	for _, i := range p.slashes {
		if !r.encodedSlash || i >= len(r.segs) || r.segs[i] != "*" {
			return false
		}
	}
	return true
}

func (r rule) String() string {
	m := "*"
	if r.methods != nil {
		m = strings.Join(r.methods, ",")
	}
	s := m + " /" + strings.Join(r.segs, "/")
	if r.sub {
		s += "/…"
	}
	return s
}

// queryPaths are the read endpoints of Prometheus' HTTP API that Strata and AMP serve
// under /workspaces/{id}/api/v1/: internal/query's Routes (a test checks they agree).
var queryPaths = []string{
	"query", "query_range", "query_exemplars", "format_query", "parse_query",
	"status/buildinfo", "status/tsdb", "series", "labels", "label/*/values", "metadata",
}

// dataPlaneRules are the requests forwarded by default.
func dataPlaneRules() []rule {
	rules := []rule{{methods: []string{"POST"}, segs: splitPattern("workspaces/*/api/v1/remote_write"), self: true}}
	for _, p := range queryPaths {
		rules = append(rules, rule{methods: []string{"GET", "POST"}, segs: splitPattern("workspaces/*/api/v1/" + p), self: true})
	}
	// Alertmanager's API v2 (alerts, silences, status, receivers), as AMP serves it.
	rules = append(rules, rule{methods: []string{"GET", "POST", "DELETE"}, segs: splitPattern("workspaces/*/alertmanager/api/v2"), sub: true})
	return rules
}

// controlPlaneRules are AMP's control plane (the 2020-08-01 REST API: workspaces and
// their resources, tags, scrapers), forwarded with Config.AllowControlPlane. Each is a
// family of resources, any method, so that operations AMP adds to a family pass too.
func controlPlaneRules() []rule {
	rules := []rule{
		{segs: splitPattern("workspaces"), self: true},   // CreateWorkspace, ListWorkspaces
		{segs: splitPattern("workspaces/*"), self: true}, // DescribeWorkspace, DeleteWorkspace
		// TagResource, UntagResource, ListTagsForResource: the ARN has an encoded '/'.
		{segs: splitPattern("tags/*"), self: true, encodedSlash: true},
		{segs: splitPattern("scrapers"), self: true, sub: true},
		{segs: splitPattern("scraperconfiguration"), self: true},
	}
	for _, res := range []string{"alias", "configuration", "policy", "logging", "rulegroupsnamespaces",
		"alertmanager/definition", "anomalydetectors"} {
		rules = append(rules, rule{segs: splitPattern("workspaces/*/" + res), self: true, sub: true})
	}
	return rules
}

func splitPattern(p string) []string { return strings.Split(p, "/") }

// parseAllow reads one Config.Allow entry: "METHOD /path/prefix". METHOD is an HTTP
// method or "*" for any; the path is matched by whole segments, a "*" segment matching
// any one segment, and admits itself and every path below it.
func parseAllow(s string) (rule, error) {
	method, path, ok := strings.Cut(strings.TrimSpace(s), " ")
	path = strings.TrimSpace(path)
	if !ok || method == "" || path == "" {
		return rule{}, fmt.Errorf("allow entry %q: want \"METHOD /path/prefix\"", s)
	}
	if !strings.HasPrefix(path, "/") {
		return rule{}, fmt.Errorf("allow entry %q: the path must start with '/'", s)
	}
	if strings.ContainsAny(path, "?#") {
		return rule{}, fmt.Errorf("allow entry %q: a path prefix has no query or fragment", s)
	}
	r := rule{self: true, sub: true}
	if method != "*" {
		method = strings.ToUpper(method)
		if strings.ContainsFunc(method, func(c rune) bool { return c < 'A' || c > 'Z' }) {
			return rule{}, fmt.Errorf("allow entry %q: method %q is not an HTTP method or *", s, method)
		}
		r.methods = []string{method}
	}
	cp, err := canonicalPath(path)
	if err != nil {
		return rule{}, fmt.Errorf("allow entry %q: %w", s, err)
	}
	if cp.escaped != path && cp.escaped+"/" != path {
		return rule{}, fmt.Errorf("allow entry %q: write the path in its canonical form %q", s, cp.escaped)
	}
	r.segs = cp.segs
	return r, nil
}

// allowList is the set of rules of a Proxy.
type allowList []rule

func newAllowList(cfg Config) (allowList, error) {
	list := allowList(dataPlaneRules())
	if cfg.AllowControlPlane {
		list = append(list, controlPlaneRules()...)
	}
	for _, s := range cfg.Allow {
		r, err := parseAllow(s)
		if err != nil {
			return nil, err
		}
		list = append(list, r)
	}
	return list, nil
}

func (l allowList) admits(method string, p cpath) bool {
	for _, r := range l {
		if r.admits(method, p) {
			return true
		}
	}
	return false
}

// cpath is a canonical request path.
type cpath struct {
	// escaped is the path to forward: "/" + the remaining segments as the client escaped
	// them, joined by "/", with a trailing "/" when dir.
	escaped string
	segs    []string // decoded
	dir     bool
	// slashes are the indexes of the segments with an encoded '/'.
	slashes []int
}

var errBackslash = errors.New("the path has a '\\' (or %5C), which some servers read as '/'")

// errEncodedSlash explains the refusal of a path with an encoded '/' that no rule admits.
var errEncodedSlash = errors.New("the path has an encoded '/' (%2F) in a segment, which servers read differently")

// canonicalPath resolves a raw (still escaped) absolute path as RFC 3986 and servers do:
// empty segments ("//") are dropped, "." segments removed, ".." segments remove the
// segment before them (never above the root); "%2e" is a dot. The path keeps a trailing
// slash, also when it ended in a dot segment ("/a/b/.." is "/a/").
func canonicalPath(raw string) (cpath, error) {
	var raws, segs []string
	var slashy []bool
	parts := strings.Split(raw, "/")
	dir := false
	for i, s := range parts {
		if i == 0 {
			continue // before the leading '/'
		}
		last := i == len(parts)-1
		if s == "" {
			dir = dir || last
			continue
		}
		dec, err := url.PathUnescape(s)
		if err != nil {
			return cpath{}, fmt.Errorf("the path does not decode: %w", err)
		}
		if strings.Contains(dec, "\\") {
			return cpath{}, errBackslash
		}
		switch dec {
		case ".":
			dir = last
			continue
		case "..":
			if n := len(segs); n > 0 {
				raws, segs, slashy = raws[:n-1], segs[:n-1], slashy[:n-1]
			}
			dir = last
			continue
		}
		raws = append(raws, s)
		segs = append(segs, dec)
		slashy = append(slashy, strings.Contains(dec, "/"))
		dir = false
	}
	p := cpath{escaped: "/" + strings.Join(raws, "/"), segs: segs, dir: dir && len(raws) > 0}
	if p.dir {
		p.escaped += "/"
	}
	for i, sl := range slashy {
		if sl {
			p.slashes = append(p.slashes, i)
		}
	}
	return p, nil
}

// allowFlag is the --allow flag: repeatable, each value a comma-separated list.
type allowFlag []string

func (f *allowFlag) String() string { return strings.Join(*f, ",") }

func (f *allowFlag) Set(s string) error {
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			if _, err := parseAllow(e); err != nil {
				return err
			}
			*f = append(*f, e)
		}
	}
	return nil
}
