package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Acceptance against AWS's own Go signer: whatever aws-sdk-go-v2 signs, the
// verifier accepts, in process and after a trip through the wire format.

const (
	testRegion  = "us-east-1"
	testService = "aps"
	testAKID    = "AKIDSTRATATEST"
	testSecret  = "strata/SECRET+key/for/tests/0123456789"
	tempAKID    = "ASIASTRATATEMP"
	tempSecret  = "temporary/SECRET+key/0123456789abcdef"
	tempToken   = "IQoJb3JpZ2luX2VjEXAMPLE//token+with/slashes=="
	testHost    = "aps-workspaces.us-east-1.amazonaws.com"
	workspace   = "/workspaces/ws-3f1c2d4e-5a6b-7c8d-9e0f-1a2b3c4d5e6f"
)

var signTime = time.Date(2025, 11, 25, 10, 20, 30, 0, time.UTC)

func testStore() StaticCredentials {
	return StaticCredentials{
		testAKID: {SecretAccessKey: testSecret, Principal: "user/alice"},
		tempAKID: {SecretAccessKey: tempSecret, SessionToken: tempToken, Principal: "assumed-role/writer"},
	}
}

func longTermCreds() aws.Credentials {
	return aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}
}

func tempCreds() aws.Credentials {
	return aws.Credentials{AccessKeyID: tempAKID, SecretAccessKey: tempSecret, SessionToken: tempToken}
}

func testVerifier(t testing.TB, now time.Time) *Verifier {
	return mustVerifier(t, Config{Region: testRegion, Service: testService}, testStore(), now)
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newRequest(t testing.TB, method, target string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sdkSign signs r with the Go SDK at signTime (unless at is given).
func sdkSign(t testing.TB, r *http.Request, body []byte, creds aws.Credentials, payloadHash string, at ...time.Time) {
	t.Helper()
	if payloadHash == "" {
		payloadHash = hexSHA256(body)
	}
	when := signTime
	if len(at) > 0 {
		when = at[0]
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, payloadHash, testService, testRegion, when); err != nil {
		t.Fatal(err)
	}
}

// sdkPresign presigns r with the Go SDK and returns the request a client
// would send for the URL: the URL plus the headers the SDK says it signed.
func sdkPresign(t testing.TB, r *http.Request, body []byte, creds aws.Credentials, payloadHash string, expires time.Duration) *http.Request {
	t.Helper()
	q := r.URL.Query()
	q.Set("X-Amz-Expires", fmt.Sprint(int(expires/time.Second)))
	r.URL.RawQuery = q.Encode()
	uri, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), creds, r, payloadHash, testService, testRegion, signTime)
	if err != nil {
		t.Fatal(err)
	}
	pr := newRequest(t, r.Method, uri, body)
	for k, vs := range hdr {
		if k == "Host" {
			pr.Host = vs[0]
			continue
		}
		pr.Header[k] = vs
	}
	return pr
}

// overWire writes r as a client would and reads it back as Go's server does.
func overWire(t testing.TB, r *http.Request) (*http.Request, []byte) {
	t.Helper()
	if r.GetBody != nil {
		b, err := r.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		r.Body = b
	}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if r.GetBody != nil {
		r.Body, _ = r.GetBody()
	}
	sr, body, err := readWireRequest(buf.Bytes())
	if err != nil {
		t.Fatalf("reading back %q: %v", buf.String(), err)
	}
	return sr, body
}

func remoteWriteBody() []byte {
	// Realistic size and bytes for a snappy-compressed remote-write batch.
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 2048)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func remoteWriteRequest(t testing.TB, body []byte) *http.Request {
	r := newRequest(t, http.MethodPost, "https://"+testHost+workspace+"/api/v1/remote_write", body)
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	r.Header.Set("User-Agent", "Prometheus/3.5.0")
	return r
}

// checkBoth verifies the in-process request and its wire copy.
func checkBoth(t *testing.T, v *Verifier, r *http.Request, body []byte, want Identity) {
	t.Helper()
	id, err := v.Verify(r, body)
	if err != nil {
		t.Fatalf("in process: %v", err)
	}
	if id != want {
		t.Errorf("in process: identity %+v\nwant %+v", id, want)
	}
	wr, wbody := overWire(t, r)
	id, err = v.Verify(wr, wbody)
	if err != nil {
		t.Fatalf("over the wire: %v", err)
	}
	if id != want {
		t.Errorf("over the wire: identity %+v\nwant %+v", id, want)
	}
}

func wantIdentity(temp, presigned, payloadSigned bool) Identity {
	id := Identity{
		AccessKeyID:   testAKID,
		Principal:     "user/alice",
		Scope:         Scope{Date: signTime.Format("20060102"), Region: testRegion, Service: testService},
		SignedAt:      signTime,
		Presigned:     presigned,
		PayloadSigned: payloadSigned,
	}
	if temp {
		id.AccessKeyID, id.Principal, id.Temporary = tempAKID, "assumed-role/writer", true
	}
	return id
}

func TestSDKSignHTTP(t *testing.T) {
	body := remoteWriteBody()
	query := url.Values{
		"query":   {`sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))`},
		"time":    {"1764066030.5"},
		"match[]": {`up{job="node"}`, `up{job="api"}`},
	}.Encode()
	cases := []struct {
		name          string
		req           func(t *testing.T) (*http.Request, []byte)
		creds         aws.Credentials
		payloadHash   string
		payloadSigned bool
	}{
		{
			name: "POST remote_write",
			req: func(t *testing.T) (*http.Request, []byte) {
				return remoteWriteRequest(t, body), body
			},
			payloadSigned: true,
		},
		{
			name: "POST remote_write with session token",
			req: func(t *testing.T) (*http.Request, []byte) {
				return remoteWriteRequest(t, body), body
			},
			creds:         tempCreds(),
			payloadSigned: true,
		},
		{
			name: "GET query",
			req: func(t *testing.T) (*http.Request, []byte) {
				return newRequest(t, http.MethodGet, "https://"+testHost+workspace+"/api/v1/query_range?"+query, nil), nil
			},
			payloadSigned: true,
		},
		{
			name: "GET query with session token",
			req: func(t *testing.T) (*http.Request, []byte) {
				return newRequest(t, http.MethodGet, "https://"+testHost+workspace+"/api/v1/series?"+query, nil), nil
			},
			creds:         tempCreds(),
			payloadSigned: true,
		},
		{
			name: "POST form with x-amz-content-sha256",
			req: func(t *testing.T) (*http.Request, []byte) {
				b := []byte("query=up&time=1764066030")
				r := newRequest(t, http.MethodPost, "https://"+testHost+workspace+"/api/v1/query", b)
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("X-Amz-Content-Sha256", hexSHA256(b))
				return r, b
			},
			payloadSigned: true,
		},
		{
			name: "PUT with UNSIGNED-PAYLOAD",
			req: func(t *testing.T) (*http.Request, []byte) {
				b := []byte("groups:\n  - name: example\n")
				r := newRequest(t, http.MethodPut, "https://"+testHost+workspace+"/rulegroupsnamespaces/ns", b)
				r.Header.Set("X-Amz-Content-Sha256", unsignedPayload)
				return r, b
			},
			payloadHash:   unsignedPayload,
			payloadSigned: false,
		},
		{
			name: "path with characters to escape",
			req: func(t *testing.T) (*http.Request, []byte) {
				r := newRequest(t, http.MethodGet, "https://"+testHost+"/", nil)
				r.URL.Path = "/workspaces/ws 1/a+b=c;d/caf\u00e9/100%/~x"
				return r, nil
			},
			payloadSigned: true,
		},
		{
			name: "path with encoded slash (RawPath)",
			req: func(t *testing.T) (*http.Request, []byte) {
				r := newRequest(t, http.MethodGet, "https://"+testHost+"/workspaces/a%2Fb/c", nil)
				return r, nil
			},
			payloadSigned: true,
		},
		{
			name: "unnormalized path (the SDK does not normalize)",
			req: func(t *testing.T) (*http.Request, []byte) {
				return newRequest(t, http.MethodGet, "https://"+testHost+"/a/./b/../c//d/", nil), nil
			},
			payloadSigned: true,
		},
		{
			name: "repeated and odd headers",
			req: func(t *testing.T) (*http.Request, []byte) {
				r := newRequest(t, http.MethodGet, "https://"+testHost+workspace+"/api/v1/labels", nil)
				r.Header.Add("X-Custom", "  a   b  ")
				r.Header.Add("X-Custom", "c\td")
				r.Header.Set("Accept", "application/json")
				return r, nil
			},
			payloadSigned: true,
		},
		{
			name: "host with port",
			req: func(t *testing.T) (*http.Request, []byte) {
				return newRequest(t, http.MethodGet, "http://127.0.0.1:9090"+workspace+"/api/v1/labels", nil), nil
			},
			payloadSigned: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			creds := c.creds
			if creds.AccessKeyID == "" {
				creds = longTermCreds()
			}
			r, b := c.req(t)
			sdkSign(t, r, b, creds, c.payloadHash)
			checkBoth(t, testVerifier(t, signTime.Add(time.Minute)), r, b,
				wantIdentity(creds.SessionToken != "", false, c.payloadSigned))
		})
	}
}

func TestSDKPresignHTTP(t *testing.T) {
	query := "query=" + url.QueryEscape(`rate(up[5m]) > 0`) + "&time=1764066030"
	cases := []struct {
		name          string
		method        string
		body          []byte
		creds         aws.Credentials
		payloadHash   string
		payloadSigned bool
	}{
		{"GET, empty-body hash", http.MethodGet, nil, longTermCreds(), emptySHA256Hex, true},
		{"GET, UNSIGNED-PAYLOAD", http.MethodGet, nil, longTermCreds(), unsignedPayload, false},
		{"GET with session token", http.MethodGet, nil, tempCreds(), emptySHA256Hex, true},
		{"POST body, empty-body hash: body not covered", http.MethodPost, []byte("query=up"), longTermCreds(), emptySHA256Hex, false},
		{"POST body, body hash", http.MethodPost, []byte("query=up"), tempCreds(), hexSHA256([]byte("query=up")), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRequest(t, c.method, "https://"+testHost+workspace+"/api/v1/query?"+query, c.body)
			pr := sdkPresign(t, r, c.body, c.creds, c.payloadHash, 15*time.Minute)
			want := wantIdentity(c.creds.SessionToken != "", true, c.payloadSigned)
			want.Expires = signTime.Add(15 * time.Minute)
			// Any time inside the window verifies, up to its very end.
			checkBoth(t, testVerifier(t, signTime.Add(15*time.Minute)), pr, c.body, want)

			_, err := testVerifier(t, signTime.Add(15*time.Minute+time.Second)).Verify(pr, c.body)
			if !errors.Is(err, ErrPresignExpired) {
				t.Errorf("after X-Amz-Expires: got %v, want ErrPresignExpired", err)
			}
		})
	}
}

// A URL presigned without X-Amz-Expires (the Go SDK's STS presign client makes these)
// is good within the clock skew, as a header-signed request.
func TestSDKPresignWithoutExpires(t *testing.T) {
	r := newRequest(t, http.MethodGet, "https://"+testHost+workspace+"/api/v1/query?query=up", nil)
	uri, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), longTermCreds(), r, emptySHA256Hex, testService, testRegion, signTime)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(uri, "X-Amz-Expires") {
		t.Fatal("the SDK added X-Amz-Expires")
	}
	pr := newRequest(t, http.MethodGet, uri, nil)
	for k, vs := range hdr {
		if k == "Host" {
			pr.Host = vs[0]
			continue
		}
		pr.Header[k] = vs
	}
	want := wantIdentity(false, true, true)
	want.Expires = signTime.Add(DefaultMaxClockSkew)
	checkBoth(t, testVerifier(t, signTime.Add(DefaultMaxClockSkew)), pr, nil, want)
	if _, err := testVerifier(t, signTime.Add(DefaultMaxClockSkew+time.Second)).Verify(pr, nil); !errors.Is(err, ErrRequestTimeTooSkewed) {
		t.Fatalf("past the skew: %v", err)
	}
}

// TestSDKOverHTTPServer runs the verifier behind a real net/http server and
// client, so RequestURI and headers are exactly what Go's server produces.
func TestSDKOverHTTPServer(t *testing.T) {
	v := testVerifier(t, signTime)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, err := v.Verify(r, body)
		if err != nil {
			code, status := AWSErrorCode(err)
			w.Header().Set("x-amzn-ErrorType", code)
			http.Error(w, err.Error(), status)
			return
		}
		fmt.Fprint(w, id.Principal)
	}))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()

	do := func(r *http.Request) (int, string, string) {
		t.Helper()
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), string(b)
	}

	body := remoteWriteBody()
	r := remoteWriteRequest(t, body)
	r.URL, _ = url.Parse(srv.URL + workspace + "/api/v1/remote_write?x=a%20b&y=caf%C3%A9")
	r.Host = ""
	sdkSign(t, r, body, tempCreds(), "")
	if status, code, msg := do(r); status != http.StatusOK || msg != "assumed-role/writer" {
		t.Fatalf("signed request: %d %s %q", status, code, msg)
	}

	// The same request with another body is refused.
	r2 := remoteWriteRequest(t, append(bytes.Clone(body[:len(body)-1]), body[len(body)-1]^1))
	r2.URL, r2.Host = r.URL, ""
	r2.Header = r.Header.Clone()
	if status, code, _ := do(r2); status != http.StatusForbidden || code != "InvalidSignatureException" {
		t.Fatalf("altered body: %d %s, want 403 InvalidSignatureException", status, code)
	}

	// A presigned GET through the real server.
	g := newRequest(t, http.MethodGet, srv.URL+workspace+"/api/v1/query?query=up", nil)
	pg := sdkPresign(t, g, nil, longTermCreds(), emptySHA256Hex, time.Minute)
	if status, code, msg := do(pg); status != http.StatusOK || msg != "user/alice" {
		t.Fatalf("presigned request: %d %s %q", status, code, msg)
	}
}

// TestSDKRandomized signs random requests (paths, queries, headers, bodies,
// both forms, with and without session tokens) with the Go SDK and checks
// each one verifies, and stops verifying once its signature changes.
func TestSDKRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	const alphabet = "abcXYZ019-_.~ +=&;:@!$'()*,%/?#[]\"<>^`{|}\u00e9\u4e16"
	runes := []rune(alphabet)
	str := func(max int) string {
		n := rng.IntN(max + 1)
		var b strings.Builder
		for range n {
			b.WriteRune(runes[rng.IntN(len(runes))])
		}
		return b.String()
	}
	v := testVerifier(t, signTime)
	n := 400
	if testing.Short() {
		n = 50
	}
	for i := range n {
		method := []string{"GET", "POST", "PUT", "DELETE"}[rng.IntN(4)]
		var segs []string
		for range rng.IntN(5) {
			switch rng.IntN(8) {
			case 0:
				segs = append(segs, ".")
			case 1:
				segs = append(segs, "..")
			case 2:
				segs = append(segs, "")
			default:
				segs = append(segs, strings.ReplaceAll(str(8), "/", ""))
			}
		}
		var body []byte
		if method == "POST" || method == "PUT" {
			body = []byte(str(64))
		}
		r := newRequest(t, method, "https://"+testHost+"/", body)
		r.URL.Path = "/" + strings.Join(segs, "/")
		q := url.Values{}
		for range rng.IntN(4) {
			k := str(6)
			q.Add(k, str(10))
			if rng.IntN(4) == 0 {
				q.Add(k, str(10)) // repeated key
			}
		}
		r.URL.RawQuery = q.Encode()
		if rng.IntN(2) == 0 {
			r.URL.RawQuery = strings.ReplaceAll(r.URL.RawQuery, "+", "%20")
		}
		for h := range rng.IntN(3) {
			val := strings.Map(func(r rune) rune {
				if r > 0x7e || r == '%' {
					return ' '
				}
				return r
			}, str(12))
			r.Header.Add(fmt.Sprintf("X-Random-%d", h), val)
		}
		creds := longTermCreds()
		if rng.IntN(3) == 0 {
			creds = tempCreds()
		}
		presign := rng.IntN(3) == 0
		desc := fmt.Sprintf("case %d: %s %s?%s headers=%q", i, method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header)
		var sent *http.Request
		if presign {
			sent = sdkPresign(t, r, body, creds, emptySHA256Hex, time.Hour)
		} else {
			sdkSign(t, r, body, creds, "")
			sent = r
		}
		wr, wbody := overWire(t, sent)
		if _, err := v.Verify(wr, wbody); err != nil {
			t.Fatalf("%s: %v", desc, err)
		}
		// Break the signature: its last hex digit changes.
		flip := func(s string, i int) string {
			c := byte('0')
			if s[i] == '0' {
				c = '1'
			}
			return s[:i] + string(c) + s[i+1:]
		}
		if presign {
			raw := wr.RequestURI
			wr.RequestURI = flip(raw, strings.LastIndex(raw, "X-Amz-Signature=")+len("X-Amz-Signature=")+63)
		} else {
			a := wr.Header.Get("Authorization")
			wr.Header.Set("Authorization", flip(a, len(a)-1))
		}
		if _, err := v.Verify(wr, wbody); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("%s: changed signature gives %v, want ErrSignatureMismatch", desc, err)
		}
	}
}
