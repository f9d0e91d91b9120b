package sigv4

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readWireRequest parses a raw request the way Go's HTTP server does and
// reads its body.
func readWireRequest(raw []byte) (*http.Request, []byte, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, nil, err
	}
	return r, body, nil
}

// parseByHand parses a raw request that Go's server refuses: the test
// suite's get-space-* cases put a literal space in the path
// ("GET /example space/ HTTP/1.1"), meaning "this path, encode it". The
// request line is split at the first and the last space; header lines are
// "Name:value", a line starting with a space or tab continues the previous
// value (joined by one space, as RFC 9112's obs-fold rule says); the body is
// what follows the blank line, bounded by Content-Length when present.
func parseByHand(raw []byte) (*http.Request, []byte, error) {
	head, body, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		head, body, ok = bytes.Cut(raw, []byte("\r\n\r\n"))
		if !ok {
			return nil, nil, errors.New("no blank line after the headers")
		}
	}
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	reqLine := lines[0]
	first, last := strings.IndexByte(reqLine, ' '), strings.LastIndexByte(reqLine, ' ')
	if first <= 0 || last <= first+1 {
		return nil, nil, fmt.Errorf("bad request line %q", reqLine)
	}
	method, target, proto := reqLine[:first], reqLine[first+1:last], reqLine[last+1:]
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return nil, nil, fmt.Errorf("bad protocol %q", proto)
	}
	for _, c := range []byte(method) {
		if !lowerToken[c] && (c < 'A' || c > 'Z') {
			return nil, nil, fmt.Errorf("bad method %q", method)
		}
	}
	if !strings.HasPrefix(target, "/") {
		return nil, nil, fmt.Errorf("bad target %q", target)
	}
	h := http.Header{}
	var lastKey string
	for _, l := range lines[1:] {
		if l != "" && (l[0] == ' ' || l[0] == '\t') {
			if lastKey == "" {
				return nil, nil, errors.New("continuation line before any header")
			}
			vs := h[lastKey]
			vs[len(vs)-1] += " " + strings.Trim(l, " \t")
			continue
		}
		name, val, ok := strings.Cut(l, ":")
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("bad header line %q", l)
		}
		for _, c := range []byte(name) {
			if !lowerToken[c] && (c < 'A' || c > 'Z') {
				return nil, nil, fmt.Errorf("bad header name %q", name)
			}
		}
		lastKey = http.CanonicalHeaderKey(name)
		h.Add(lastKey, strings.Trim(val, " \t"))
	}
	path, query, _ := strings.Cut(target, "?")
	r := &http.Request{
		Method:     method,
		RequestURI: target,
		URL:        &url.URL{Path: path, RawQuery: query},
		Proto:      proto,
		Header:     h,
		Host:       h.Get("Host"),
	}
	h.Del("Host")
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n > len(body) {
			return nil, nil, fmt.Errorf("bad content-length %q", cl)
		}
		body = body[:n]
		r.ContentLength = int64(n)
	} else {
		body = nil // without a length the bytes after the headers are not this request's
	}
	return r, body, nil
}

// mustVerifier builds a Verifier or fails the test.
func mustVerifier(t testing.TB, cfg Config, store CredentialStore, now time.Time) *Verifier {
	t.Helper()
	v, err := New(cfg, store, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// canonicalDebug runs the verifier's canonicalization for one variant and
// returns the canonical request, string to sign and hex signature it gives.
// It uses the same functions as Verify, without the checks around them.
func canonicalDebug(t testing.TB, v *Verifier, r *http.Request, body []byte, normalize, omitToken bool) (creq, sts, sig string) {
	t.Helper()
	st := new(state)
	rawPath, rawQuery := requestTarget(r)
	if !st.q.parse(rawQuery) {
		t.Fatal("query does not parse")
	}
	var a authParams
	if authz := r.Header.Get("Authorization"); authz != "" {
		if err := parseAuthorization(authz, &a); err != nil {
			t.Fatal(err)
		}
		if err := headerDate(r.Header, &a); err != nil {
			t.Fatal(err)
		}
	} else if err := parsePresigned(&st.q, &a); err != nil {
		t.Fatal(err)
	}
	cand, headerHash := candBody, ""
	if hh := r.Header.Get("X-Amz-Content-Sha256"); hh != "" {
		cand, headerHash = candHeader, hh
	}
	p := payload{body: body}
	hexSum := fmt.Sprintf("%x", *p.hash())
	copy(st.bodyHex[:], hexSum)
	var missing string
	st.hdrs, missing = appendCanonicalHeaders(nil, r, a.signedHeaders, &st.keyBuf)
	if missing != "" {
		t.Fatalf("signed header %q missing", missing)
	}
	st.q.sort()
	skip1, skip2 := "", ""
	if a.presigned {
		skip1 = paramSignature
		if omitToken {
			skip2 = paramSecurityToken
		}
	}
	query := st.q.appendCanonicalQuery(nil, skip1, skip2)
	uri := appendCanonicalURI(nil, rawPath, normalize)
	method := r.Method
	st.buildCanonical(method, uri, query, cand, headerHash)
	st.buildStringToSign(&a)
	cred, _, _ := v.store.LookupCredential(r.Context(), a.accessKeyID)
	key := deriveSigningKey(cred.SecretAccessKey, a.date, a.region, a.service)
	mac := st.hmac(&key, st.sts)
	return string(st.canon), string(st.sts), fmt.Sprintf("%x", mac)
}
