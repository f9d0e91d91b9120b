package sigv4

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	algorithm        = "AWS4-HMAC-SHA256"
	scopeTerminator  = "aws4_request"
	amzDateLayout    = "20060102T150405Z"
	unsignedPayload  = "UNSIGNED-PAYLOAD"
	emptySHA256Hex   = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	maxPresignExpiry = 7 * 24 * time.Hour

	paramAlgorithm     = "X-Amz-Algorithm"
	paramCredential    = "X-Amz-Credential"
	paramDate          = "X-Amz-Date"
	paramExpires       = "X-Amz-Expires"
	paramSignedHeaders = "X-Amz-SignedHeaders"
	paramSignature     = "X-Amz-Signature"
	paramSecurityToken = "X-Amz-Security-Token"
)

// authParams is what the Authorization header or the presigned query says.
// In header form the strings point into the header; in query form they are
// copies of decoded parameters.
type authParams struct {
	presigned     bool
	accessKeyID   string
	scope         string // date/region/service/aws4_request
	date          string // the scope's yyyymmdd
	region        string
	service       string
	signedHeaders string
	hostSigned    bool
	signature     [32]byte

	amzDate   string    // signing time as the string to sign spells it
	t         time.Time // signing time
	expires   time.Duration
	noExpires bool // presigned without X-Amz-Expires: good within the clock skew

	token    string
	hasToken bool
}

func malformed(msg string) *Error { return newError(ErrMalformedAuthorization, msg) }

// clip keeps client-supplied text in messages short.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// parseAuthorization parses
//
//	AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/aps/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// Components may come in any order, separated by ',' and optional spaces;
// each must appear once and nothing else may.
func parseAuthorization(h string, a *authParams) *Error {
	alg, rest, _ := strings.Cut(h, " ")
	if alg != algorithm {
		if alg == "" {
			return malformed("Authorization header is empty or starts with a space; it must start with the algorithm " + algorithm + ".")
		}
		return newError(ErrUnsupportedAlgorithm, "Unsupported AWS 'algorithm': '"+clip(alg)+"'; only "+algorithm+" is supported.")
	}
	var haveCred, haveSigned, haveSig bool
	for rest != "" {
		var part string
		if i := strings.IndexByte(rest, ','); i >= 0 {
			part, rest = rest[:i], rest[i+1:]
			if rest == "" {
				return malformed("Authorization header ends with ','.")
			}
		} else {
			part, rest = rest, ""
		}
		part = strings.Trim(part, " ")
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return malformed("Authorization header component '" + clip(part) + "' is not of the form name=value.")
		}
		var err *Error
		switch name {
		case "Credential":
			if haveCred {
				return malformed("Authorization header has more than one 'Credential' parameter.")
			}
			haveCred = true
			err = parseCredential(val, a, "Authorization header")
		case "SignedHeaders":
			if haveSigned {
				return malformed("Authorization header has more than one 'SignedHeaders' parameter.")
			}
			haveSigned = true
			a.signedHeaders = val
			a.hostSigned, err = checkSignedHeaders(val, "Authorization header")
		case "Signature":
			if haveSig {
				return malformed("Authorization header has more than one 'Signature' parameter.")
			}
			haveSig = true
			err = parseSignature(val, a, "Authorization header")
		default:
			return malformed("Authorization header has an unknown component '" + clip(name) + "'.")
		}
		if err != nil {
			return err
		}
	}
	switch {
	case !haveCred:
		return malformed("Authorization header requires 'Credential' parameter.")
	case !haveSigned:
		return malformed("Authorization header requires 'SignedHeaders' parameter.")
	case !haveSig:
		return malformed("Authorization header requires 'Signature' parameter.")
	}
	return nil
}

// parseCredential parses AKID/yyyymmdd/region/service/aws4_request.
func parseCredential(v string, a *authParams, where string) *Error {
	bad := func(why string) *Error {
		return malformed(where + ": Credential " + why + "; it must have the form <access key id>/<yyyymmdd>/<region>/<service>/aws4_request.")
	}
	akid, scope, ok := strings.Cut(v, "/")
	if !ok || akid == "" {
		return bad("has no access key ID")
	}
	date, rest, _ := strings.Cut(scope, "/")
	region, rest, _ := strings.Cut(rest, "/")
	service, term, _ := strings.Cut(rest, "/")
	switch {
	case len(date) != 8 || !allDigits(date):
		return bad("has no yyyymmdd date")
	case region == "":
		return bad("has no region")
	case service == "":
		return bad("has no service")
	case term != scopeTerminator:
		return bad("does not end in aws4_request")
	}
	a.accessKeyID, a.scope, a.date, a.region, a.service = akid, scope, date, region, service
	return nil
}

// checkSignedHeaders accepts lowercase header names (token characters) in
// strictly ascending order, as the specification sorts them; this also rules
// out duplicates, which would make the canonical headers ambiguous. It
// reports whether "host" is among them.
func checkSignedHeaders(v string, where string) (hasHost bool, err *Error) {
	if v == "" {
		return false, malformed(where + ": SignedHeaders is empty.")
	}
	prev, start := "", 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) && v[i] != ';' {
			if !lowerToken[v[i]] {
				end := strings.IndexByte(v[i:], ';')
				if end < 0 {
					end = len(v) - i
				}
				return false, malformed(where + ": SignedHeaders name '" + clip(v[start:i+end]) + "' is not a lowercase header name.")
			}
			continue
		}
		name := v[start:i]
		if name == "" {
			return false, malformed(where + ": SignedHeaders has an empty header name.")
		}
		if name <= prev {
			return false, malformed(where + ": SignedHeaders must be sorted and free of duplicates ('" + clip(name) + "' after '" + clip(prev) + "').")
		}
		hasHost = hasHost || name == "host"
		prev, start = name, i+1
	}
	return hasHost, nil
}

// lowerToken is RFC 9110's tchar without upper-case letters.
var lowerToken = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func parseSignature(v string, a *authParams, where string) *Error {
	if len(v) != 64 {
		return malformed(where + ": Signature must be 64 hexadecimal characters.")
	}
	for i := range a.signature {
		hi, ok1 := unhex(v[2*i])
		lo, ok2 := unhex(v[2*i+1])
		if !ok1 || !ok2 {
			return malformed(where + ": Signature must be 64 hexadecimal characters.")
		}
		a.signature[i] = hi<<4 | lo
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseAmzDate parses yyyymmddThhmmssZ without allocating.
func parseAmzDate(s string) (time.Time, bool) {
	if len(s) != 16 || s[8] != 'T' || s[15] != 'Z' || !allDigits(s[:8]) || !allDigits(s[9:15]) {
		return time.Time{}, false
	}
	n := func(i, j int) int {
		v := 0
		for ; i < j; i++ {
			v = v*10 + int(s[i]-'0')
		}
		return v
	}
	y, mo, d := n(0, 4), n(4, 6), n(6, 8)
	h, mi, sec := n(9, 11), n(11, 13), n(13, 15)
	if mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if t.Day() != d { // 20150231 rolled over
		return time.Time{}, false
	}
	return t, true
}

// headerDate finds the signing time of a header-signed request: X-Amz-Date,
// else the HTTP Date header.
func headerDate(h http.Header, a *authParams) *Error {
	if v := h["X-Amz-Date"]; len(v) > 0 {
		if len(v) > 1 {
			return malformed("The request has more than one X-Amz-Date header.")
		}
		t, ok := parseAmzDate(v[0])
		if !ok {
			return malformed("X-Amz-Date '" + clip(v[0]) + "' is not of the form yyyymmddThhmmssZ.")
		}
		a.t, a.amzDate = t, v[0]
		return nil
	}
	v := h["Date"]
	switch len(v) {
	case 0:
		return malformed(msgMissingDate)
	case 1:
	default:
		return malformed("The request has more than one Date header.")
	}
	t, err := http.ParseTime(v[0])
	if err != nil {
		// botocore sends RFC 2822 dates with a numeric zone ("... -0000").
		if t, err = time.Parse(time.RFC1123Z, v[0]); err != nil {
			return malformed("Date header '" + clip(v[0]) + "' is not an HTTP date.")
		}
	}
	a.t = t.UTC()
	a.amzDate = a.t.Format(amzDateLayout)
	return nil
}

// parsePresigned reads the X-Amz-* parameters of a presigned request from
// the parsed query.
func parsePresigned(q *queryParser, a *authParams) *Error {
	a.presigned = true
	get := func(name string) (string, *Error) {
		v, n := q.find(name)
		switch n {
		case 0:
			return "", malformed("Query-string authentication requires the " + name + " parameter.")
		case 1:
			return string(v), nil
		}
		return "", malformed("Query-string authentication allows only one " + name + " parameter.")
	}
	alg, err := get(paramAlgorithm)
	if err != nil {
		return err
	}
	if alg != algorithm {
		return newError(ErrUnsupportedAlgorithm, "Unsupported X-Amz-Algorithm '"+clip(alg)+"'; only "+algorithm+" is supported.")
	}
	const where = "Query-string authentication"
	cred, err := get(paramCredential)
	if err != nil {
		return err
	}
	if err := parseCredential(cred, a, where); err != nil {
		return err
	}
	if a.signedHeaders, err = get(paramSignedHeaders); err != nil {
		return err
	}
	if a.hostSigned, err = checkSignedHeaders(a.signedHeaders, where); err != nil {
		return err
	}
	sig, err := get(paramSignature)
	if err != nil {
		return err
	}
	if err := parseSignature(sig, a, where); err != nil {
		return err
	}
	if a.amzDate, err = get(paramDate); err != nil {
		return err
	}
	var ok bool
	if a.t, ok = parseAmzDate(a.amzDate); !ok {
		return malformed("X-Amz-Date '" + clip(a.amzDate) + "' is not of the form yyyymmddThhmmssZ.")
	}
	// Without X-Amz-Expires (the Go SDK's presigned STS calls have none) the URL is
	// good within the clock skew, as a header-signed request.
	if _, n := q.find(paramExpires); n == 0 {
		a.noExpires = true
		return parsePresignedToken(q, a)
	}
	exp, err := get(paramExpires)
	if err != nil {
		return err
	}
	secs, perr := strconv.ParseInt(exp, 10, 64)
	if perr != nil || secs < 1 || !allDigits(exp) {
		return malformed("X-Amz-Expires must be a positive number of seconds.")
	}
	if secs > int64(maxPresignExpiry/time.Second) {
		return malformed("X-Amz-Expires must be less than a week (in seconds) that is 604800.")
	}
	a.expires = time.Duration(secs) * time.Second
	return parsePresignedToken(q, a)
}

// parsePresignedToken reads a presigned URL's X-Amz-Security-Token, if any.
func parsePresignedToken(q *queryParser, a *authParams) *Error {
	switch v, n := q.find(paramSecurityToken); n {
	case 0:
	case 1:
		a.token, a.hasToken = string(v), true
	default:
		return malformed("Query-string authentication allows only one X-Amz-Security-Token parameter.")
	}
	return nil
}

// isPresigned reports whether the query carries any presigned-URL
// authentication parameter.
func isPresigned(q *queryParser) bool {
	for _, name := range [...]string{paramAlgorithm, paramCredential, paramSignature} {
		if _, n := q.find(name); n > 0 {
			return true
		}
	}
	return false
}
