package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// stmt builds a one-statement document from statement members.
func stmt(members string) string {
	return `{"Version":"2012-10-17","Statement":[{` + members + `}]}`
}

const allowAll = `"Effect":"Allow","Action":"aps:*","Resource":"*"`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		doc       string
		parse     func([]byte) (*Policy, error)
		statement int    // want ParseError.Statement
		field     string // want ParseError.Field
		reason    string // substring of ParseError.Reason
	}{
		{"not JSON", `{"Version":`, Parse, -1, "", "invalid JSON"},
		{"trailing data", `{"Statement":[]} {}`, Parse, -1, "", "invalid JSON"},
		{"not an object", `["Statement"]`, Parse, -1, "", "must be a JSON object"},
		{"null document", `null`, Parse, -1, "", "must be a JSON object"},
		{"bad Version", `{"Version":"2012-10-18","Statement":{` + allowAll + `}}`, Parse, -1, "Version", `got "2012-10-18"`},
		{"numeric Version", `{"Version":2012,"Statement":{` + allowAll + `}}`, Parse, -1, "Version", "got 2012"},
		{"bad Id", `{"Id":7,"Statement":{` + allowAll + `}}`, Parse, -1, "Id", "must be a string"},
		{"unknown top-level", `{"Version":"2012-10-17","Statement":{` + allowAll + `},"Extra":1}`, Parse, -1, "Extra", "unknown top-level element"},
		{"lower-case element", `{"version":"2012-10-17","Statement":{` + allowAll + `}}`, Parse, -1, "version", "unknown top-level element"},
		{"duplicate top-level", `{"Statement":{` + allowAll + `},"Statement":{` + allowAll + `}}`, Parse, -1, "", `duplicate element "Statement"`},
		{"no Statement", `{"Version":"2012-10-17"}`, Parse, -1, "Statement", "is required"},
		{"empty Statement", `{"Version":"2012-10-17","Statement":[]}`, Parse, -1, "Statement", "must not be empty"},
		{"Statement string", `{"Version":"2012-10-17","Statement":"Allow"}`, Parse, -1, "Statement", "object or an array"},
		{"statement not object", `{"Version":"2012-10-17","Statement":[{` + allowAll + `}, 5]}`, Parse, 1, "", "must be a JSON object"},
		{"unknown statement element", stmt(allowAll + `,"Actions":"x"`), Parse, 0, "Actions", "unknown statement element"},
		{"duplicate statement element", stmt(allowAll + `,"Effect":"Deny"`), Parse, 0, "", `duplicate element "Effect"`},
		{"Sid not string", stmt(`"Sid":1,` + allowAll), Parse, 0, "Sid", "must be a string"},
		{"duplicate Sid", `{"Statement":[{"Sid":"A",` + allowAll + `},{"Sid":"A",` + allowAll + `}]}`, Parse, 1, "Sid", "duplicates the Sid of Statement[0]"},
		{"no Effect", stmt(`"Action":"aps:*","Resource":"*"`), Parse, 0, "Effect", "is required"},
		{"unknown Effect", stmt(`"Effect":"Permit","Action":"aps:*","Resource":"*"`), Parse, 0, "Effect", `got "Permit"`},
		{"Effect case", stmt(`"Effect":"allow","Action":"aps:*","Resource":"*"`), Parse, 0, "Effect", `got "allow"`},
		{"Effect not string", stmt(`"Effect":true,"Action":"aps:*","Resource":"*"`), Parse, 0, "Effect", "got true"},
		{"Action and NotAction", stmt(allowAll + `,"NotAction":"aps:Get*"`), Parse, 0, "Action", "mutually exclusive"},
		{"neither Action nor NotAction", stmt(`"Effect":"Allow","Resource":"*"`), Parse, 0, "Action", "needs Action or NotAction"},
		{"empty Action list", stmt(`"Effect":"Allow","Action":[],"Resource":"*"`), Parse, 0, "Action", "non-empty array"},
		{"Action number", stmt(`"Effect":"Allow","Action":[1],"Resource":"*"`), Parse, 0, "Action", "string or a non-empty array"},
		{"Action without service", stmt(`"Effect":"Allow","Action":"QueryMetrics","Resource":"*"`), Parse, 0, "Action", "service:action"},
		{"Action bad service", stmt(`"Effect":"Allow","Action":"a ps:Query","Resource":"*"`), Parse, 0, "Action", "invalid service prefix"},
		{"Action bad char", stmt(`"Effect":"Allow","Action":"aps:Query Metrics","Resource":"*"`), Parse, 0, "Action", "invalid character"},
		{"NotAction empty name", stmt(`"Effect":"Allow","NotAction":"aps:","Resource":"*"`), Parse, 0, "NotAction", "service:action"},
		{"Resource and NotResource", stmt(allowAll + `,"NotResource":"*"`), Parse, 0, "Resource", "mutually exclusive"},
		{"neither Resource nor NotResource", stmt(`"Effect":"Allow","Action":"aps:*"`), Parse, 0, "Resource", "needs Resource or NotResource"},
		{"Resource not ARN", stmt(`"Effect":"Allow","Action":"aps:*","Resource":"ws-1"`), Parse, 0, "Resource", "neither"},
		{"Resource short ARN", stmt(`"Effect":"Allow","Action":"aps:*","Resource":"arn:aws:aps:us-east-1"`), Parse, 0, "Resource", "neither"},
		{"NotResource bad variable", stmt(`"Effect":"Allow","Action":"aps:*","NotResource":"arn:aws:aps:*:*:workspace/${aws:username"`), Parse, 0, "NotResource", "unterminated policy variable"},
		{"Principal and NotPrincipal", stmt(allowAll + `,"Principal":"*","NotPrincipal":"*"`), Parse, 0, "Principal", "mutually exclusive"},
		{"Principal string", stmt(allowAll + `,"Principal":"111122223333"`), Parse, 0, "Principal", `must be "*"`},
		{"Principal number", stmt(allowAll + `,"Principal":5`), Parse, 0, "Principal", `must be "*" or an object`},
		{"Principal empty", stmt(allowAll + `,"Principal":{}`), Parse, 0, "Principal", "at least one principal"},
		{"Principal unknown type", stmt(allowAll + `,"Principal":{"User":"alice"}`), Parse, 0, "Principal", `unknown principal type "User"`},
		{"Principal bad account", stmt(allowAll + `,"Principal":{"AWS":"1111"}`), Parse, 0, "Principal", "not an account ID"},
		{"Principal wildcard ARN", stmt(allowAll + `,"Principal":{"AWS":"arn:aws:iam::111122223333:user/*"}`), Parse, 0, "Principal", "wildcards are not allowed"},
		{"Principal bad ARN", stmt(allowAll + `,"Principal":{"AWS":"arn:aws:s3:::bucket"}`), Parse, 0, "Principal", "not an account ID"},
		{"Principal empty list", stmt(allowAll + `,"Principal":{"AWS":[]}`), Parse, 0, "Principal", "AWS: must be a string"},
		{"Principal empty string", stmt(allowAll + `,"Principal":{"AWS":""}`), Parse, 0, "Principal", "empty principal"},
		{"Principal Service wildcard", stmt(allowAll + `,"Principal":{"Service":"*"}`), Parse, 0, "Principal", "wildcard service principal"},
		{"NotPrincipal bad", stmt(allowAll + `,"NotPrincipal":{"AWS":"x"}`), Parse, 0, "NotPrincipal", "not an account ID"},
		{"Principal in identity policy", stmt(allowAll + `,"Principal":"*"`), ParseIdentityPolicy, 0, "Principal", "not allowed in an identity policy"},
		{"NotPrincipal in identity policy", stmt(allowAll + `,"NotPrincipal":{"AWS":"111122223333"}`), ParseIdentityPolicy, 0, "NotPrincipal", "not allowed in an identity policy"},
		{"no Principal in resource policy", stmt(allowAll), ParseResourcePolicy, 0, "Principal", "needs Principal or NotPrincipal"},
		{"Condition not object", stmt(allowAll + `,"Condition":[]`), Parse, 0, "Condition", "must be a JSON object"},
		{"unknown operator", stmt(allowAll + `,"Condition":{"StringEqualz":{"aws:username":"a"}}`), Parse, 0, "Condition.StringEqualz", "unknown condition operator"},
		{"operator case", stmt(allowAll + `,"Condition":{"stringequals":{"aws:username":"a"}}`), Parse, 0, "Condition.stringequals", "unknown condition operator"},
		{"unknown qualifier", stmt(allowAll + `,"Condition":{"ForSomeValues:StringEquals":{"aws:TagKeys":"a"}}`), Parse, 0, "Condition.ForSomeValues:StringEquals", "unknown condition operator"},
		{"double IfExists", stmt(allowAll + `,"Condition":{"StringEqualsIfExistsIfExists":{"aws:username":"a"}}`), Parse, 0, "Condition.StringEqualsIfExistsIfExists", "unknown condition operator"},
		{"NullIfExists", stmt(allowAll + `,"Condition":{"NullIfExists":{"aws:username":"true"}}`), Parse, 0, "Condition.NullIfExists", "Null takes neither"},
		{"ForAnyValue:Null", stmt(allowAll + `,"Condition":{"ForAnyValue:Null":{"aws:username":"true"}}`), Parse, 0, "Condition.ForAnyValue:Null", "Null takes neither"},
		{"operator not object", stmt(allowAll + `,"Condition":{"StringEquals":"a"}`), Parse, 0, "Condition.StringEquals", "must map condition keys"},
		{"operator no keys", stmt(allowAll + `,"Condition":{"StringEquals":{}}`), Parse, 0, "Condition.StringEquals", "at least one condition key"},
		{"duplicate operator", stmt(allowAll + `,"Condition":{"Bool":{"a:b":"true"},"Bool":{"a:c":"true"}}`), Parse, 0, "Condition", `duplicate element "Bool"`},
		{"key without prefix", stmt(allowAll + `,"Condition":{"StringEquals":{"username":"a"}}`), Parse, 0, "Condition.StringEquals.username", `must look like "service:name"`},
		{"key bad prefix", stmt(allowAll + `,"Condition":{"StringEquals":{"a$:b":"a"}}`), Parse, 0, "Condition.StringEquals.a$:b", "invalid prefix"},
		{"key white space", stmt(allowAll + `,"Condition":{"StringEquals":{"aws:user name":"a"}}`), Parse, 0, "Condition.StringEquals.aws:user name", "white space"},
		{"value object", stmt(allowAll + `,"Condition":{"StringEquals":{"aws:username":{"a":1}}}`), Parse, 0, "Condition.StringEquals.aws:username", "string, number or boolean"},
		{"value null", stmt(allowAll + `,"Condition":{"StringEquals":{"aws:username":null}}`), Parse, 0, "Condition.StringEquals.aws:username", "string, number or boolean"},
		{"value empty list", stmt(allowAll + `,"Condition":{"StringEquals":{"aws:username":[]}}`), Parse, 0, "Condition.StringEquals.aws:username", "non-empty array"},
		{"value nested list", stmt(allowAll + `,"Condition":{"StringEquals":{"aws:username":[["a"]]}}`), Parse, 0, "Condition.StringEquals.aws:username", "string, number or boolean"},
		{"bad number", stmt(allowAll + `,"Condition":{"NumericLessThan":{"aps:n":"ten"}}`), Parse, 0, "Condition.NumericLessThan.aps:n", `"ten" is not a number`},
		{"NaN", stmt(allowAll + `,"Condition":{"NumericLessThan":{"aps:n":"NaN"}}`), Parse, 0, "Condition.NumericLessThan.aps:n", "not a number"},
		{"bad date", stmt(allowAll + `,"Condition":{"DateLessThan":{"aws:CurrentTime":"next tuesday"}}`), Parse, 0, "Condition.DateLessThan.aws:CurrentTime", "not an ISO 8601 date"},
		{"bad bool", stmt(allowAll + `,"Condition":{"Bool":{"aws:SecureTransport":"yes"}}`), Parse, 0, "Condition.Bool.aws:SecureTransport", `"yes" is not "true" or "false"`},
		{"bad IP", stmt(allowAll + `,"Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.256"}}`), Parse, 0, "Condition.IpAddress.aws:SourceIp", "not an IP address or CIDR"},
		{"bad CIDR", stmt(allowAll + `,"Condition":{"NotIpAddress":{"aws:SourceIp":"2001:db8::/129"}}`), Parse, 0, "Condition.NotIpAddress.aws:SourceIp", "not an IP address or CIDR"},
		{"IP zone", stmt(allowAll + `,"Condition":{"IpAddress":{"aws:SourceIp":"fe80::1%eth0"}}`), Parse, 0, "Condition.IpAddress.aws:SourceIp", "not an IP address or CIDR"},
		{"bad Null", stmt(allowAll + `,"Condition":{"Null":{"aws:userid":"maybe"}}`), Parse, 0, "Condition.Null.aws:userid", "is not"},
		{"Null two values", stmt(allowAll + `,"Condition":{"Null":{"aws:userid":["true","false"]}}`), Parse, 0, "Condition.Null.aws:userid", "exactly one value"},
		{"bad variable in condition", stmt(allowAll + `,"Condition":{"StringLike":{"aws:username":"${}"}}`), Parse, 0, "Condition.StringLike.aws:username", "invalid policy variable name"},
		{"error names Sid", `{"Statement":[{"Sid":"First",` + allowAll + `},{"Sid":"Second","Effect":"Maybe","Action":"*","Resource":"*"}]}`, Parse, 1, "Effect", "Maybe"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("parsed %s, want an error", tc.doc)
			}
			if p != nil {
				t.Error("returned a policy along with an error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if pe.Statement != tc.statement || pe.Field != tc.field || !strings.Contains(pe.Reason, tc.reason) {
				t.Errorf("got Statement=%d Field=%q Reason=%q\nwant Statement=%d Field=%q Reason containing %q",
					pe.Statement, pe.Field, pe.Reason, tc.statement, tc.field, tc.reason)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse([]byte(`{"Statement":[{"Sid":"W","Effect":"Allow","Action":"aps:*","NotAction":"x:y","Resource":"*"}]}`))
	want := `policy: Statement[0] (Sid "W"): Action: Action and NotAction are mutually exclusive`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	_, err = Parse([]byte(`{"Version":"1"}`))
	want = `policy: Version: must be "2012-10-17" or "2008-10-17", got "1"`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

func TestParseShapes(t *testing.T) {
	// A single Statement object, no Version (AWS's default is 2008-10-17),
	// lists and single strings everywhere.
	doc := `  {
	  "Id": "shapes",
	  "Statement": {"Sid": "One", "Effect": "Deny", "Action": ["aps:Get*", "aps:List*"],
	                "Resource": ["arn:aws:aps:*:*:workspace/a", "arn:aws:aps:*:*:workspace/b"]}
	}  `
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != Version2008 || p.ID != "shapes" || len(p.Statements) != 1 {
		t.Fatalf("got Version=%q ID=%q %d statements", p.Version, p.ID, len(p.Statements))
	}
	s := &p.Statements[0]
	if s.Sid != "One" || s.Effect != EffectDeny || len(s.actions) != 2 || len(s.resources) != 2 || s.HasPrincipal() {
		t.Errorf("statement = %+v", s)
	}
	// The original text, whitespace and all, is kept for echoing back.
	if string(p.JSON()) != doc || p.String() != doc {
		t.Errorf("JSON() = %q", p.JSON())
	}
	out, err := json.Marshal(struct {
		Policy *Policy `json:"policy"`
	}{p})
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Policy json.RawMessage `json:"policy"`
	}
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(back.Policy); err != nil {
		t.Errorf("marshalled policy does not parse: %v", err)
	}
	// The caller's buffer may be reused after Parse.
	buf := []byte(stmt(allowAll))
	p, err = Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	if _, err := Parse(p.JSON()); err != nil {
		t.Errorf("policy shares the caller's buffer: %v", err)
	}
}

func TestParsePrincipalElements(t *testing.T) {
	p, err := ParseResourcePolicy([]byte(stmt(allowAll + `,"Principal":{
		"AWS": ["111122223333", "arn:aws:iam::444455556666:root", "arn:aws:iam::111122223333:user/team/alice",
		        "arn:aws:iam::111122223333:role/ingest", "arn:aws:sts::111122223333:assumed-role/r/s",
		        "arn:aws:sts::111122223333:federated-user/f"],
		"Service": "aps.amazonaws.com",
		"Federated": "cognito-identity.amazonaws.com",
		"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}`)))
	if err != nil {
		t.Fatal(err)
	}
	ps := p.Statements[0].principals
	if len(ps.accounts) != 2 || len(ps.arns) != 4 || len(ps.roles) != 1 || len(ps.services) != 1 || len(ps.federated) != 1 || len(ps.canonical) != 1 {
		t.Errorf("principal set = %+v", ps)
	}
	// {"AWS": "*"} is the same as "*".
	p, err = ParseResourcePolicy([]byte(stmt(allowAll + `,"Principal":{"AWS":"*"}`)))
	if err != nil || !p.Statements[0].principals.any {
		t.Errorf(`{"AWS":"*"}: %v`, err)
	}
}

func TestEffectAndDecisionStrings(t *testing.T) {
	for v, want := range map[string]string{
		EffectAllow.String():           "Allow",
		EffectDeny.String():            "Deny",
		Effect(0).String():             "Effect(0)",
		Allow.String():                 "Allow",
		ImplicitDeny.String():          "ImplicitDeny",
		ExplicitDeny.String():          "ExplicitDeny",
		Decision(9).String():           "Decision(9)",
		Reason(99).String():            "Reason(99)",
		ReasonNoAllow.String():         "no statement allows the request",
		ReasonCrossAccount.String():    "cross-account: allowed by an identity policy and the resource policy",
		ReasonNoResourceGrant.String(): "cross-account: the resource policy does not grant the principal",
	} {
		if v != want {
			t.Errorf("got %q, want %q", v, want)
		}
	}
}
