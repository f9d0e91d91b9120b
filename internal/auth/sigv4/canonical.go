package sigv4

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Canonicalization as AWS specifies it for every service but S3:
//
//	Method \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n HashedPayload
//
// Everything appends to caller-owned buffers so the hot path allocates nothing.

const upperHex = "0123456789ABCDEF"

// unreserved reports the RFC 3986 unreserved characters, the only bytes the
// canonical forms leave unencoded.
var unreserved = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'], t['.'], t['~'] = true, true, true, true
	return t
}()

// appendEncoded percent-encodes every byte of s that is not unreserved, and
// '/' too unless keepSlash.
func appendEncoded(dst []byte, s string, keepSlash bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved[c] || (c == '/' && keepSlash) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
	}
	return dst
}

func appendEncodedBytes(dst, s []byte) []byte {
	for _, c := range s {
		if unreserved[c] {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
	}
	return dst
}

// appendCanonicalURI appends the canonical URI of rawPath, the path exactly
// as the client sent it (still percent-encoded). Non-S3 services encode that
// already-encoded path once more, so "%20" becomes "%2520" and a raw space
// (as in the test suite's request.txt files) becomes "%20".
//
// With normalize, dot segments are removed and empty segments (repeated
// slashes) dropped first, the way botocore and the AWS test suite do it; a
// trailing slash survives unless the path collapses to "/".
func appendCanonicalURI(dst []byte, rawPath string, normalize bool) []byte {
	if rawPath == "" {
		return append(dst, '/')
	}
	if !normalize {
		return appendEncoded(dst, rawPath, true)
	}
	start := len(dst)
	if rawPath[0] == '/' {
		dst = append(dst, '/')
	}
	base := len(dst) // output below base is never popped
	for i := 0; i <= len(rawPath); {
		j := strings.IndexByte(rawPath[i:], '/')
		if j < 0 {
			j = len(rawPath)
		} else {
			j += i
		}
		seg := rawPath[i:j]
		i = j + 1
		switch seg {
		case "", ".":
			continue
		case "..":
			// Drop the last kept segment with the slash before it.
			if k := bytes.LastIndexByte(dst[base:], '/'); k >= 0 {
				dst = dst[:base+k]
			} else {
				dst = dst[:base]
			}
			continue
		}
		if len(dst) > base {
			dst = append(dst, '/')
		}
		dst = appendEncoded(dst, seg, false)
	}
	if len(dst) > base && rawPath[len(rawPath)-1] == '/' {
		dst = append(dst, '/')
	}
	if len(dst) == start {
		dst = append(dst, '/')
	}
	return dst
}

// queryPair holds one parameter as offsets into queryParser.arena: the
// decoded key and value, and their canonical (re-encoded) forms.
type queryPair struct {
	key, val       span // decoded
	encKey, encVal span // canonical encoding
}

type span struct{ start, end int32 }

// queryParser parses a raw query once into decoded and canonical forms.
type queryParser struct {
	arena []byte
	pairs []queryPair
}

func (q *queryParser) reset() {
	q.arena = q.arena[:0]
	q.pairs = q.pairs[:0]
}

func (q *queryParser) bytes(s span) []byte { return q.arena[s.start:s.end] }

// parse splits raw on '&', skips empty parameters, decodes each key and
// value ('+' is a space, as Go's url.Query and the Go SDK read it) and
// stores its canonical encoding. It fails on an invalid percent escape.
func (q *queryParser) parse(raw string) bool {
	for len(raw) > 0 {
		var param string
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			param, raw = raw[:i], raw[i+1:]
		} else {
			param, raw = raw, ""
		}
		if param == "" {
			continue
		}
		k, v, _ := strings.Cut(param, "=")
		var p queryPair
		var ok bool
		if p.key, ok = q.decode(k); !ok {
			return false
		}
		if p.val, ok = q.decode(v); !ok {
			return false
		}
		p.encKey = q.encode(p.key)
		p.encVal = q.encode(p.val)
		q.pairs = append(q.pairs, p)
	}
	return true
}

func (q *queryParser) decode(s string) (span, bool) {
	start := int32(len(q.arena))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(s) {
				return span{}, false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return span{}, false
			}
			c = hi<<4 | lo
			i += 2
		}
		q.arena = append(q.arena, c)
	}
	return span{start, int32(len(q.arena))}, true
}

func (q *queryParser) encode(s span) span {
	start := int32(len(q.arena))
	// Encode from a copy of the indices: append may move the arena.
	for i := s.start; i < s.end; i++ {
		c := q.arena[i]
		if unreserved[c] {
			q.arena = append(q.arena, c)
			continue
		}
		q.arena = append(q.arena, '%', upperHex[c>>4], upperHex[c&15])
	}
	return span{start, int32(len(q.arena))}
}

// sort orders pairs by canonical key, then canonical value.
func (q *queryParser) sort() {
	less := func(a, b queryPair) int {
		if c := bytes.Compare(q.bytes(a.encKey), q.bytes(b.encKey)); c != 0 {
			return c
		}
		return bytes.Compare(q.bytes(a.encVal), q.bytes(b.encVal))
	}
	if slices.IsSortedFunc(q.pairs, less) {
		return
	}
	slices.SortFunc(q.pairs, less)
}

// find returns the decoded values of the parameters named key, at most two
// (enough to tell "once" from "repeated").
func (q *queryParser) find(key string) (first []byte, n int) {
	for _, p := range q.pairs {
		if string(q.bytes(p.key)) == key {
			if n == 0 {
				first = q.bytes(p.val)
			}
			n++
		}
	}
	return first, n
}

// appendCanonicalQuery appends the sorted pairs as k=v joined by '&',
// leaving out the parameters whose decoded key is skip1 or skip2.
func (q *queryParser) appendCanonicalQuery(dst []byte, skip1, skip2 string) []byte {
	first := true
	for _, p := range q.pairs {
		if k := q.bytes(p.key); (skip1 != "" && string(k) == skip1) || (skip2 != "" && string(k) == skip2) {
			continue
		}
		if !first {
			dst = append(dst, '&')
		}
		first = false
		dst = append(dst, q.bytes(p.encKey)...)
		dst = append(dst, '=')
		dst = append(dst, q.bytes(p.encVal)...)
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendHeaderValue appends v trimmed at both ends (as strings.TrimSpace,
// which the Go SDK uses) with runs of spaces collapsed to one. Tabs inside
// a value are kept, as the Go SDK keeps them.
func appendHeaderValue(dst []byte, v string) []byte {
	v = strings.TrimSpace(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' && i > 0 && v[i-1] == ' ' {
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// appendCanonicalHeaders appends "name:value\n" for each name of
// signedHeaders (already validated: lowercase, ascending, ';'-separated),
// then "\n", signedHeaders and "\n". It returns the first signed name the
// request lacks, if any.
//
// host comes from r.Host (Go moves the Host header there). Repeated headers
// are joined with ',' in the order received. keyBuf is scratch space.
func appendCanonicalHeaders(dst []byte, r *http.Request, signedHeaders string, keyBuf *[]byte) ([]byte, string) {
	for rest := signedHeaders; rest != ""; {
		var name string
		if i := strings.IndexByte(rest, ';'); i >= 0 {
			name, rest = rest[:i], rest[i+1:]
		} else {
			name, rest = rest, ""
		}
		dst = append(dst, name...)
		dst = append(dst, ':')
		if name == "host" {
			host := r.Host
			if host == "" && r.URL != nil {
				host = r.URL.Host
			}
			if host == "" {
				return dst, name
			}
			dst = appendHeaderValue(dst, host)
			dst = append(dst, '\n')
			continue
		}
		vals := lookupHeader(r.Header, name, keyBuf)
		if vals == nil {
			// A request built in-process (not read from the wire) keeps its
			// length in ContentLength only; the Go SDK signs that.
			if name == "content-length" && r.ContentLength > 0 {
				dst = strconv.AppendInt(dst, r.ContentLength, 10)
				dst = append(dst, '\n')
				continue
			}
			return dst, name
		}
		for i, v := range vals {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendHeaderValue(dst, v)
		}
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, signedHeaders...)
	dst = append(dst, '\n')
	return dst, ""
}

// lookupHeader returns the values of the lowercase header name. Go's
// server stores keys in canonical MIME form, which is tried first without
// allocating; a map filled by hand may hold other spellings, found by a
// case-insensitive scan.
func lookupHeader(h http.Header, name string, keyBuf *[]byte) []string {
	k := (*keyBuf)[:0]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		upper = c == '-'
		k = append(k, c)
	}
	*keyBuf = k
	if v, ok := h[string(k)]; ok {
		return v
	}
	for key, v := range h {
		if strings.EqualFold(key, name) {
			return v
		}
	}
	return nil
}
