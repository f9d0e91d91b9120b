package sigv4

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The AWS signing test suite (testdata/sigv4, from awslabs/aws-c-auth,
// Apache-2.0): every case, both forms, byte for byte.

type vectorContext struct {
	Credentials struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		Token           string `json:"token"`
	} `json:"credentials"`
	ExpirationInSeconds int       `json:"expiration_in_seconds"`
	Normalize           bool      `json:"normalize"`
	Region              string    `json:"region"`
	Service             string    `json:"service"`
	SignBody            bool      `json:"sign_body"`
	Timestamp           time.Time `json:"timestamp"`
	OmitSessionToken    bool      `json:"omit_session_token"`
}

type vectorCase struct {
	name string
	dir  string
	ctx  vectorContext
}

const vectorCount = 38

func loadVectors(t *testing.T) []vectorCase {
	t.Helper()
	root := filepath.Join("testdata", "sigv4")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var cases []vectorCase
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c := vectorCase{name: e.Name(), dir: filepath.Join(root, e.Name())}
		b, err := os.ReadFile(filepath.Join(c.dir, "context.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &c.ctx); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		cases = append(cases, c)
	}
	if len(cases) != vectorCount {
		t.Fatalf("found %d test-suite cases, want %d", len(cases), vectorCount)
	}
	return cases
}

func (c vectorCase) file(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c vectorCase) verifier(t *testing.T) *Verifier {
	return mustVerifier(t, Config{Region: c.ctx.Region, Service: c.ctx.Service}, StaticCredentials{
		c.ctx.Credentials.AccessKeyID: {
			SecretAccessKey: c.ctx.Credentials.SecretAccessKey,
			SessionToken:    c.ctx.Credentials.Token,
			Principal:       "principal-" + c.name,
		},
	}, c.ctx.Timestamp)
}

// parser picks how to read this case's requests: as Go's server does,
// unless Go refuses the unmodified request. Only get-space-normalized and
// get-space-unnormalized are refused ("malformed HTTP version": their path
// holds a literal space); they are parsed by hand (parseByHand), and so are
// their byte-changed copies.
func (c vectorCase) parser(t *testing.T, raw []byte) func([]byte) (*http.Request, []byte, error) {
	t.Helper()
	if _, _, err := readWireRequest(raw); err != nil {
		if !strings.HasPrefix(c.name, "get-space-") {
			t.Fatalf("%s: Go's HTTP parser refuses the request (%v); only get-space-* are expected to need the hand parser", c.name, err)
		}
		t.Logf("%s: Go's HTTP parser refuses the request (%v): parsing by hand", c.name, err)
		return parseByHand
	}
	return readWireRequest
}

var forms = []string{"header", "query"}

func TestVectorsCanonicalAndVerify(t *testing.T) {
	for _, c := range loadVectors(t) {
		for _, form := range forms {
			t.Run(c.name+"/"+form, func(t *testing.T) {
				v := c.verifier(t)
				raw := c.file(t, form+"-signed-request.txt")
				r, body, err := c.parser(t, raw)(raw)
				if err != nil {
					t.Fatal(err)
				}
				omitToken := form == "query" && c.ctx.OmitSessionToken
				creq, sts, sig := canonicalDebug(t, v, r, body, c.ctx.Normalize, omitToken)
				if want := string(c.file(t, form+"-canonical-request.txt")); creq != want {
					t.Errorf("canonical request:\n%s\nwant:\n%s", creq, want)
				}
				if want := string(c.file(t, form+"-string-to-sign.txt")); sts != want {
					t.Errorf("string to sign:\n%s\nwant:\n%s", sts, want)
				}
				wantSig := strings.TrimSpace(string(c.file(t, form+"-signature.txt")))
				if sig != wantSig {
					t.Errorf("signature %s, want %s", sig, wantSig)
				}
				if !bytes.Contains(raw, []byte(wantSig)) {
					t.Errorf("signed request does not carry the expected signature %s", wantSig)
				}

				id, err := v.Verify(r, body)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				want := Identity{
					AccessKeyID:   c.ctx.Credentials.AccessKeyID,
					Principal:     "principal-" + c.name,
					Temporary:     c.ctx.Credentials.Token != "",
					Scope:         Scope{Date: "20150830", Region: c.ctx.Region, Service: c.ctx.Service},
					SignedAt:      c.ctx.Timestamp,
					Presigned:     form == "query",
					PayloadSigned: true,
				}
				if form == "query" {
					want.Expires = c.ctx.Timestamp.Add(time.Duration(c.ctx.ExpirationInSeconds) * time.Second)
				}
				if id != want {
					t.Errorf("identity %+v\nwant %+v", id, want)
				}
			})
		}
	}
}

// mutateByte changes b to a different byte that is neither whitespace nor a
// character the parsers treat as a delimiter alternative: letters and
// digits rotate within their class (so a letter never just changes case,
// which is a no-op in header names), anything else becomes 'x'.
func mutateByte(b byte) byte {
	switch {
	case b == 'z':
		return 'a'
	case b == 'Z':
		return 'A'
	case b == '9':
		return '0'
	case 'a' <= b && b < 'z', 'A' <= b && b < 'Z', '0' <= b && b < '9':
		return b + 1
	}
	return 'x'
}

// TestVectorsRejectEveryByteChange changes each byte of each signed request
// in turn and checks the result no longer verifies. Two ranges are skipped,
// because a change there is semantically a no-op for SigV4:
//   - the protocol version at the end of the request line ("HTTP/1.1"):
//     SigV4 does not sign it, and Go's parser accepts e.g. HTTP/1.2;
//   - bytes after the header block that Content-Length does not cover (the
//     files end in a newline after the blank line): they are not part of
//     the request but would start the next one on the connection;
//   - in cases with normalize: true, a path change that path normalization
//     undoes, i.e. inside a segment that a later ".." removes
//     ("/example/.." -> "/fxample/.."): the normalized path is what is
//     signed, and what the server routes on. Decided by referenceNormalize,
//     written independently of appendCanonicalURI.
//
// Header-name case is no-op too; mutateByte never produces it, and
// TestVectorsHeaderNameCase checks that such changes do verify. A mutant the
// HTTP parser refuses counts as rejected: no server would hand it to us.
func TestVectorsRejectEveryByteChange(t *testing.T) {
	for _, c := range loadVectors(t) {
		for _, form := range forms {
			t.Run(c.name+"/"+form, func(t *testing.T) {
				v := c.verifier(t)
				raw := c.file(t, form+"-signed-request.txt")
				parse := c.parser(t, raw)
				assertEveryByteChangeRejected(t, v, raw, parse, c.ctx.Normalize)
			})
		}
	}
}

// assertEveryByteChangeRejected is the loop of TestVectorsRejectEveryByteChange,
// shared with the botocore cases. raw may use LF or CRLF line ends.
func assertEveryByteChangeRejected(t *testing.T, v *Verifier, raw []byte, parse func([]byte) (*http.Request, []byte, error), normalize bool) {
	t.Helper()
	r0, body0, err := parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(r0, body0); err != nil {
		t.Fatalf("unmodified request does not verify: %v", err)
	}

	lineEnd := bytes.IndexByte(raw, '\n')
	protoStart := bytes.LastIndexByte(raw[:lineEnd], ' ') + 1
	headEnd := -1
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		headEnd = i + 4
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 && (headEnd < 0 || i+2 < headEnd) {
		headEnd = i + 2
	}
	if headEnd < 0 {
		t.Fatal("request has no blank line after its headers")
	}
	requestEnd := headEnd + len(body0)

	var verifiedRejects, parserRejects, normalizedAway int
	for i := range raw {
		if i >= protoStart && i < lineEnd || i >= requestEnd {
			continue
		}
		mut := bytes.Clone(raw)
		mut[i] = mutateByte(raw[i])
		if normalize && i < lineEnd &&
			referenceNormalize(requestPath(mut)) == referenceNormalize(requestPath(raw)) &&
			requestPath(mut) != requestPath(raw) {
			normalizedAway++
			continue
		}
		r, body, err := parse(mut)
		if err != nil {
			parserRejects++
			continue
		}
		_, err = v.Verify(r, body)
		if err == nil {
			t.Errorf("byte %d changed %q -> %q still verifies; context %q", i, raw[i], mut[i], excerpt(mut, i))
			continue
		}
		if _, ok := err.(*Error); !ok {
			t.Errorf("byte %d: error %v is not an *Error", i, err)
		}
		verifiedRejects++
	}
	if verifiedRejects == 0 {
		t.Fatal("no changed request reached the verifier")
	}
	t.Logf("%d changes rejected by the verifier, %d by the HTTP parser, %d skipped as normalized away",
		verifiedRejects, parserRejects, normalizedAway)
}

// requestPath returns the path of a raw request's request line, "" if the
// line has no path.
func requestPath(raw []byte) string {
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	first, last := bytes.IndexByte(line, ' '), bytes.LastIndexByte(line, ' ')
	if first < 0 || last <= first {
		return ""
	}
	path, _, _ := strings.Cut(string(line[first+1:last]), "?")
	return path
}

// referenceNormalize is RFC 3986 dot-segment removal plus dropping empty
// segments, as botocore's remove_dot_segments does it: split, filter, join.
func referenceNormalize(p string) string {
	if p == "" {
		return ""
	}
	var out []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	s := strings.Join(out, "/")
	if p[0] == '/' {
		s = "/" + s
	}
	if p[len(p)-1] == '/' && len(out) > 0 {
		s += "/"
	}
	return s
}

func excerpt(b []byte, i int) string {
	lo, hi := max(0, i-20), min(len(b), i+20)
	return string(b[lo:hi])
}

// TestVectorsHeaderNameCase checks the no-op the byte test avoids: header
// names are case-insensitive, so upper- or lower-casing any of them keeps
// the request valid.
func TestVectorsHeaderNameCase(t *testing.T) {
	for _, c := range loadVectors(t) {
		for _, form := range forms {
			t.Run(c.name+"/"+form, func(t *testing.T) {
				v := c.verifier(t)
				raw := c.file(t, form+"-signed-request.txt")
				parse := c.parser(t, raw)
				head, rest, _ := bytes.Cut(raw, []byte("\n\n"))
				lines := bytes.Split(head, []byte("\n"))
				for i := 1; i < len(lines); i++ {
					colon := bytes.IndexByte(lines[i], ':')
					if colon <= 0 || lines[i][0] == ' ' {
						continue // continuation line
					}
					for _, change := range []func([]byte) []byte{bytes.ToUpper, bytes.ToLower} {
						mod := make([][]byte, len(lines))
						copy(mod, lines)
						mod[i] = append(change(lines[i][:colon]), lines[i][colon:]...)
						mut := append(append(bytes.Join(mod, []byte("\n")), "\n\n"...), rest...)
						r, body, err := parse(mut)
						if err != nil {
							t.Fatalf("line %d %q: %v", i, mod[i], err)
						}
						if _, err := v.Verify(r, body); err != nil {
							t.Errorf("header name case changed on %q: %v", mod[i], err)
						}
					}
				}
			})
		}
	}
}
