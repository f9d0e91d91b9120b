package sigv4

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	f.Fuzz(func(t *testing.T, h string) {
		var a authParams
		if err := parseAuthorization(h, &a); err != nil {
			if err.Kind != ErrMalformedAuthorization && err.Kind != ErrUnsupportedAlgorithm {
				t.Fatalf("parse error of kind %v", err.Kind)
			}
			return
		}
		if a.accessKeyID == "" || len(a.date) != 8 || !allDigits(a.date) || a.region == "" || a.service == "" {
			t.Fatalf("accepted with an incomplete credential: %+v", a)
		}
		if a.scope != a.date+"/"+a.region+"/"+a.service+"/"+scopeTerminator {
			t.Fatalf("scope %q does not match its parts", a.scope)
		}
		names := strings.Split(a.signedHeaders, ";")
		if !slices.IsSorted(names) || slices.Contains(names, "host") != a.hostSigned {
			t.Fatalf("SignedHeaders %q: unsorted, or hostSigned %v wrong", a.signedHeaders, a.hostSigned)
		}
		// What parses, re-serialized in the SDK's layout, parses the same.
		again := fmt.Sprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%x", algorithm, a.accessKeyID, a.scope, a.signedHeaders, a.signature)
		var b authParams
		if err := parseAuthorization(again, &b); err != nil {
			t.Fatalf("re-serialized %q does not parse: %v", again, err)
		}
		if a != b {
			t.Fatalf("round trip changed the parameters:\n%+v\n%+v", a, b)
		}
	})
}

var canonicalURIChars = regexp.MustCompile(`^(?:[A-Za-z0-9\-._~/]|%[0-9A-F]{2})*$`)
var canonicalQueryChars = regexp.MustCompile(`^(?:[A-Za-z0-9\-._~&=]|%[0-9A-F]{2})*$`)

func FuzzCanonicalRequest(f *testing.F) {
	f.Add("GET", "/example space/./a/../b//c", "Param2=value2&Param1=value1&%E1%88%B4=x+y", "my-header1", "  a   b  ", true)
	f.Fuzz(func(t *testing.T, method, path, query, hname, hvalue string, normalize bool) {
		// Path: only encoded bytes, and normalized as the reference does it.
		uri := string(appendCanonicalURI(nil, path, normalize))
		if uri == "" || !canonicalURIChars.MatchString(uri) {
			t.Fatalf("canonical URI %q of %q is empty or not encoded", uri, path)
		}
		if normalize {
			want := referenceNormalize(path)
			if want == "" {
				want = "/"
			}
			if enc := string(appendEncoded(nil, want, true)); uri != enc {
				t.Fatalf("normalized %q to %q, reference says %q", path, uri, enc)
			}
		} else if path != "" && uri != string(appendEncoded(nil, path, true)) {
			t.Fatalf("unnormalized %q became %q", path, uri)
		}

		// Query: sorted, encoded, and what Go's own parser (as the Go SDK
		// uses it) makes of the same query.
		var q queryParser
		ok := q.parse(query)
		_, goErr := url.ParseQuery(query)
		if !ok {
			if goErr == nil {
				t.Fatalf("rejected query %q that Go parses", query)
			}
			return
		}
		q.sort()
		cq := string(q.appendCanonicalQuery(nil, "", ""))
		if !canonicalQueryChars.MatchString(cq) {
			t.Fatalf("canonical query %q is not encoded", cq)
		}
		if goErr == nil {
			if want := referenceCanonicalQuery(t, query); cq != want {
				t.Fatalf("canonical query of %q is %q, reference %q", query, cq, want)
			}
		}

		// Header value: trimmed, space runs collapsed.
		v := string(appendHeaderValue(nil, hvalue))
		if want := regexp.MustCompile(` {2,}`).ReplaceAllString(strings.TrimSpace(hvalue), " "); v != want {
			t.Fatalf("header value %q became %q, want %q", hvalue, v, want)
		}

		// The whole canonical request for a request carrying the header.
		r := &http.Request{Method: method, Host: "example.amazonaws.com", Header: http.Header{}}
		signed := "host"
		if _, err := checkSignedHeaders(hname, ""); err == nil && hname != "host" && !strings.Contains(hname, ";") {
			r.Header[http.CanonicalHeaderKey(hname)] = []string{hvalue}
			signed = strings.Join(slices.Sorted(slices.Values([]string{"host", hname})), ";")
		}
		var st state
		var missing string
		st.hdrs, missing = appendCanonicalHeaders(nil, r, signed, &st.keyBuf)
		if missing != "" {
			t.Fatalf("header %q missing from %v", missing, r.Header)
		}
		st.buildCanonical(method, []byte(uri), []byte(cq), candUnsigned, "")
		lines := strings.Split(string(st.canon), "\n")
		if lines[0] != method && !strings.Contains(method, "\n") {
			t.Fatalf("first line %q, want method %q", lines[0], method)
		}
		if !bytes.HasSuffix(st.canon, []byte("\n"+signed+"\n"+unsignedPayload)) {
			t.Fatalf("canonical request does not end with signed headers and payload:\n%s", st.canon)
		}
	})
}

// referenceCanonicalQuery builds the canonical query the way the Go SDK
// does: url.ParseQuery, url.QueryEscape with "+" as "%20", sort by key then
// value.
func referenceCanonicalQuery(t *testing.T, raw string) string {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for k, vs := range vals {
		for _, v := range vs {
			enc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
			pairs = append(pairs, enc(k)+"\x00"+enc(v))
		}
	}
	sort.Strings(pairs)
	for i, p := range pairs {
		pairs[i] = strings.Replace(p, "\x00", "=", 1)
	}
	return strings.Join(pairs, "&")
}

// FuzzVerify feeds whole raw requests through Go's parser and the verifier:
// no panic, and every failure is an *Error.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\n\n"))
	v := mustVerifier(f, Config{Region: "us-east-1", Service: "service"}, StaticCredentials{
		"AKIDEXAMPLE": {SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
		"ASIAEXAMPLE": {SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "token"},
	}, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, body, err := readWireRequest(raw)
		if err != nil {
			return
		}
		if _, err := v.Verify(r, body); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
		}
	})
}
