package policy

import (
	"testing"
	"time"
)

var (
	alice = Principal{ARN: "arn:aws:iam::111122223333:user/alice"}
	wsA1  = "arn:aws:aps:us-east-1:111122223333:workspace/ws-a1"
	t2024 = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
)

// condHolds reports whether cond (a Condition element) holds, by evaluating
// an Allow statement guarded by it.
func condHolds(t *testing.T, cond string, ctx Context, now time.Time) bool {
	t.Helper()
	doc := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":` + cond + `}}`
	p, err := ParseIdentityPolicy([]byte(doc))
	if err != nil {
		t.Fatalf("parse %s: %v", cond, err)
	}
	req := Request{Principal: alice, Action: "aps:QueryMetrics", Resource: wsA1, Context: ctx, Time: now}
	return Evaluate([]*Policy{p}, nil, req) == Allow
}

func TestConditionOperators(t *testing.T) {
	ip4 := Context{"aws:SourceIp": {"10.1.2.3"}}
	ip6 := Context{"aws:SourceIp": {"2001:db8::7"}}
	tags := func(keys ...string) Context { return Context{"aws:TagKeys": keys} }
	tests := []struct {
		name string
		cond string
		ctx  Context
		now  time.Time
		want bool
	}{
		// Strings.
		{"StringEquals", `{"StringEquals":{"aws:username":"alice"}}`, nil, time.Time{}, true},
		{"StringEquals other", `{"StringEquals":{"aws:username":"bob"}}`, nil, time.Time{}, false},
		{"StringEquals case", `{"StringEquals":{"aws:username":"Alice"}}`, nil, time.Time{}, false},
		{"StringEquals values ORed", `{"StringEquals":{"aws:username":["bob","alice"]}}`, nil, time.Time{}, true},
		{"StringEquals no wildcards", `{"StringEquals":{"aws:username":"al*"}}`, nil, time.Time{}, false},
		{"StringEquals missing key", `{"StringEquals":{"aws:userid":"x"}}`, nil, time.Time{}, false},
		{"StringNotEquals", `{"StringNotEquals":{"aws:username":"bob"}}`, nil, time.Time{}, true},
		{"StringNotEquals equal", `{"StringNotEquals":{"aws:username":"alice"}}`, nil, time.Time{}, false},
		{"StringNotEquals values NORed", `{"StringNotEquals":{"aws:username":["bob","alice"]}}`, nil, time.Time{}, false},
		{"StringNotEquals missing key", `{"StringNotEquals":{"aws:userid":"x"}}`, nil, time.Time{}, true},
		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}`, nil, time.Time{}, true},
		{"StringEqualsIgnoreCase other", `{"StringEqualsIgnoreCase":{"aws:username":"BOB"}}`, nil, time.Time{}, false},
		{"StringNotEqualsIgnoreCase", `{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}`, nil, time.Time{}, false},
		{"StringNotEqualsIgnoreCase other", `{"StringNotEqualsIgnoreCase":{"aws:username":"BOB"}}`, nil, time.Time{}, true},
		{"StringLike", `{"StringLike":{"aws:username":"al?c*"}}`, nil, time.Time{}, true},
		{"StringLike no", `{"StringLike":{"aws:username":"b*"}}`, nil, time.Time{}, false},
		{"StringLike case-sensitive", `{"StringLike":{"aws:username":"AL*"}}`, nil, time.Time{}, false},
		{"StringLike missing key", `{"StringLike":{"aws:userid":"*"}}`, nil, time.Time{}, false},
		{"StringNotLike", `{"StringNotLike":{"aws:username":"b*"}}`, nil, time.Time{}, true},
		{"StringNotLike matching", `{"StringNotLike":{"aws:username":"a*"}}`, nil, time.Time{}, false},
		{"StringNotLike missing key", `{"StringNotLike":{"aws:userid":"*"}}`, nil, time.Time{}, true},
		{"key case-insensitive", `{"StringEquals":{"AWS:USERNAME":"alice"}}`, nil, time.Time{}, true},
		{"context key case-insensitive", `{"StringEquals":{"aws:ResourceTag/Team":"x"}}`, Context{"aws:resourcetag/team": {"x"}}, time.Time{}, true},
		{"ResourceTag", `{"StringEquals":{"aws:ResourceTag/env":"prod"}}`, Context{"aws:ResourceTag/env": {"prod"}}, time.Time{}, true},
		{"ResourceTag other value", `{"StringEquals":{"aws:ResourceTag/env":"prod"}}`, Context{"aws:ResourceTag/env": {"dev"}}, time.Time{}, false},
		{"RequestTag", `{"StringLike":{"aws:RequestTag/owner":"team-*"}}`, Context{"aws:RequestTag/owner": {"team-a"}}, time.Time{}, true},
		{"empty value list is absent", `{"StringNotEquals":{"aws:RequestTag/x":"v"}}`, Context{"aws:RequestTag/x": {}}, time.Time{}, true},
		{"variable in value", `{"StringEquals":{"aws:ResourceTag/owner":"${aws:username}"}}`, Context{"aws:ResourceTag/owner": {"alice"}}, time.Time{}, true},
		{"variable in value, other", `{"StringEquals":{"aws:ResourceTag/owner":"${aws:username}"}}`, Context{"aws:ResourceTag/owner": {"bob"}}, time.Time{}, false},

		// Principal keys derived from Request.Principal.
		{"PrincipalAccount", `{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}`, nil, time.Time{}, true},
		{"PrincipalAccount other", `{"StringEquals":{"aws:PrincipalAccount":"444455556666"}}`, nil, time.Time{}, false},
		{"PrincipalType", `{"StringEquals":{"aws:PrincipalType":"User"}}`, nil, time.Time{}, true},
		{"PrincipalArn ArnLike", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/*"}}`, nil, time.Time{}, true},
		{"PrincipalArn ArnLike other account", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::444455556666:user/*"}}`, nil, time.Time{}, false},
		{"Context overrides derived", `{"StringEquals":{"aws:PrincipalAccount":"999999999999"}}`, Context{"aws:PrincipalAccount": {"999999999999"}}, time.Time{}, true},

		// ARNs.
		{"ArnEquals", `{"ArnEquals":{"aws:SourceArn":"arn:aws:aps:us-east-1:111122223333:workspace/ws-a1"}}`, Context{"aws:SourceArn": {wsA1}}, time.Time{}, true},
		{"ArnEquals wildcard", `{"ArnEquals":{"aws:SourceArn":"arn:aws:aps:*:111122223333:workspace/*"}}`, Context{"aws:SourceArn": {wsA1}}, time.Time{}, true},
		{"ArnLike other", `{"ArnLike":{"aws:SourceArn":"arn:aws:aps:*:444455556666:*"}}`, Context{"aws:SourceArn": {wsA1}}, time.Time{}, false},
		{"ArnLike not an ARN", `{"ArnLike":{"aws:SourceArn":"arn:aws:aps:*:*:*"}}`, Context{"aws:SourceArn": {"ws-a1"}}, time.Time{}, false},
		{"ArnNotEquals", `{"ArnNotEquals":{"aws:SourceArn":"arn:aws:aps:*:444455556666:*"}}`, Context{"aws:SourceArn": {wsA1}}, time.Time{}, true},
		{"ArnNotLike matching", `{"ArnNotLike":{"aws:SourceArn":"arn:aws:aps:*:111122223333:*"}}`, Context{"aws:SourceArn": {wsA1}}, time.Time{}, false},
		{"ArnNotLike missing key", `{"ArnNotLike":{"aws:SourceArn":"arn:aws:aps:*:111122223333:*"}}`, nil, time.Time{}, true},

		// Numbers.
		{"NumericEquals", `{"NumericEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"10.0"}}, time.Time{}, true},
		{"NumericEquals JSON number", `{"NumericEquals":{"aps:Series":10}}`, Context{"aps:Series": {"10"}}, time.Time{}, true},
		{"NumericEquals other", `{"NumericEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"11"}}, time.Time{}, false},
		{"NumericEquals not a number", `{"NumericEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"ten"}}, time.Time{}, false},
		{"NumericNotEquals", `{"NumericNotEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"11"}}, time.Time{}, true},
		{"NumericNotEquals equal", `{"NumericNotEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"10"}}, time.Time{}, false},
		{"NumericLessThan", `{"NumericLessThan":{"aps:Series":"10"}}`, Context{"aps:Series": {"9.5"}}, time.Time{}, true},
		{"NumericLessThan equal", `{"NumericLessThan":{"aps:Series":"10"}}`, Context{"aps:Series": {"10"}}, time.Time{}, false},
		{"NumericLessThanEquals", `{"NumericLessThanEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"10"}}, time.Time{}, true},
		{"NumericLessThanEquals more", `{"NumericLessThanEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"11"}}, time.Time{}, false},
		{"NumericGreaterThan", `{"NumericGreaterThan":{"aps:Series":"10"}}`, Context{"aps:Series": {"11"}}, time.Time{}, true},
		{"NumericGreaterThan equal", `{"NumericGreaterThan":{"aps:Series":"10"}}`, Context{"aps:Series": {"10"}}, time.Time{}, false},
		{"NumericGreaterThanEquals", `{"NumericGreaterThanEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"10"}}, time.Time{}, true},
		{"NumericGreaterThanEquals less", `{"NumericGreaterThanEquals":{"aps:Series":"10"}}`, Context{"aps:Series": {"-3"}}, time.Time{}, false},
		{"Numeric missing key", `{"NumericLessThan":{"aps:Series":"10"}}`, nil, time.Time{}, false},
		{"NumericNotEquals missing key", `{"NumericNotEquals":{"aps:Series":"10"}}`, nil, time.Time{}, true},
		{"EpochTime numeric", `{"NumericLessThan":{"aws:EpochTime":"1717243201"}}`, nil, t2024, true},
		{"EpochTime numeric later", `{"NumericLessThan":{"aws:EpochTime":"1717243200"}}`, nil, t2024, false},

		// Dates, against aws:CurrentTime from Request.Time.
		{"DateGreaterThan", `{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}`, nil, t2024, true},
		{"DateGreaterThan later", `{"DateGreaterThan":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}`, nil, t2024, false},
		{"DateGreaterThan equal", `{"DateGreaterThan":{"aws:CurrentTime":"2024-06-01T12:00:00Z"}}`, nil, t2024, false},
		{"DateGreaterThanEquals equal", `{"DateGreaterThanEquals":{"aws:CurrentTime":"2024-06-01T12:00:00Z"}}`, nil, t2024, true},
		{"DateLessThan", `{"DateLessThan":{"aws:CurrentTime":"2025-01-01"}}`, nil, t2024, true},
		{"DateLessThan earlier", `{"DateLessThan":{"aws:CurrentTime":"2024-06-01"}}`, nil, t2024, false},
		{"DateLessThanEquals", `{"DateLessThanEquals":{"aws:CurrentTime":"2024-06-01T14:00:00+02:00"}}`, nil, t2024, true},
		{"DateEquals epoch", `{"DateEquals":{"aws:CurrentTime":"1717243200"}}`, nil, t2024, true},
		{"DateEquals other", `{"DateEquals":{"aws:CurrentTime":"1717243201"}}`, nil, t2024, false},
		{"DateNotEquals", `{"DateNotEquals":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}`, nil, t2024, true},
		{"DateNotEquals equal", `{"DateNotEquals":{"aws:CurrentTime":"2024-06-01T12:00:00.000Z"}}`, nil, t2024, false},
		{"Date missing time", `{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}`, nil, time.Time{}, false},
		{"Date epoch key", `{"DateGreaterThan":{"aws:EpochTime":"2024-01-01T00:00:00Z"}}`, nil, t2024, true},
		{"Date from Context", `{"DateLessThan":{"aps:Expiry":"2025-01-01T00:00:00Z"}}`, Context{"aps:Expiry": {"2024-12-31T23:59:59Z"}}, time.Time{}, true},
		{"Date from Context epoch", `{"DateLessThan":{"aps:Expiry":"2025-01-01T00:00:00Z"}}`, Context{"aps:Expiry": {"1735689600"}}, time.Time{}, false},
		{"Date unparsable request value", `{"DateLessThan":{"aps:Expiry":"2025-01-01T00:00:00Z"}}`, Context{"aps:Expiry": {"soon"}}, time.Time{}, false},

		// Bool.
		{"Bool true", `{"Bool":{"aws:SecureTransport":"true"}}`, Context{"aws:SecureTransport": {"true"}}, time.Time{}, true},
		{"Bool JSON true", `{"Bool":{"aws:SecureTransport":true}}`, Context{"aws:SecureTransport": {"TRUE"}}, time.Time{}, true},
		{"Bool false", `{"Bool":{"aws:SecureTransport":"true"}}`, Context{"aws:SecureTransport": {"false"}}, time.Time{}, false},
		{"Bool garbage", `{"Bool":{"aws:SecureTransport":"false"}}`, Context{"aws:SecureTransport": {"no"}}, time.Time{}, false},
		{"Bool missing key", `{"Bool":{"aws:SecureTransport":"false"}}`, nil, time.Time{}, false},

		// IP addresses.
		{"IpAddress v4 CIDR", `{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ip4, time.Time{}, true},
		{"IpAddress v4 other", `{"IpAddress":{"aws:SourceIp":"192.168.0.0/16"}}`, ip4, time.Time{}, false},
		{"IpAddress v4 plain", `{"IpAddress":{"aws:SourceIp":"10.1.2.3"}}`, ip4, time.Time{}, true},
		{"IpAddress v4 plain other", `{"IpAddress":{"aws:SourceIp":"10.1.2.4"}}`, ip4, time.Time{}, false},
		{"IpAddress host bits masked", `{"IpAddress":{"aws:SourceIp":"10.9.9.9/8"}}`, ip4, time.Time{}, true},
		{"IpAddress v6 CIDR", `{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}`, ip6, time.Time{}, true},
		{"IpAddress v6 other", `{"IpAddress":{"aws:SourceIp":"2001:db9::/32"}}`, ip6, time.Time{}, false},
		{"IpAddress v6 vs v4 CIDR", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, ip6, time.Time{}, false},
		{"IpAddress v4-mapped v6 request", `{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, Context{"aws:SourceIp": {"::ffff:10.1.2.3"}}, time.Time{}, true},
		{"IpAddress mixed list", `{"IpAddress":{"aws:SourceIp":["2001:db8::/32","192.0.2.0/24"]}}`, ip6, time.Time{}, true},
		{"IpAddress garbage", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, Context{"aws:SourceIp": {"localhost"}}, time.Time{}, false},
		{"IpAddress missing key", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, nil, time.Time{}, false},
		{"NotIpAddress", `{"NotIpAddress":{"aws:SourceIp":"192.168.0.0/16"}}`, ip4, time.Time{}, true},
		{"NotIpAddress inside", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ip4, time.Time{}, false},
		{"NotIpAddress missing key", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, nil, time.Time{}, true},

		// Binary.
		{"BinaryEquals", `{"BinaryEquals":{"aps:Blob":"QmluYXJ5"}}`, Context{"aps:Blob": {"QmluYXJ5"}}, time.Time{}, true},
		{"BinaryEquals other", `{"BinaryEquals":{"aps:Blob":"QmluYXJ5"}}`, Context{"aps:Blob": {"qmluyxj5"}}, time.Time{}, false},

		// Null.
		{"Null true, absent", `{"Null":{"aws:userid":"true"}}`, nil, time.Time{}, true},
		{"Null true, present", `{"Null":{"aws:username":"true"}}`, nil, time.Time{}, false},
		{"Null false, present", `{"Null":{"aws:username":"false"}}`, nil, time.Time{}, true},
		{"Null false, absent", `{"Null":{"aws:userid":false}}`, nil, time.Time{}, false},

		// IfExists.
		{"IfExists missing key", `{"StringEqualsIfExists":{"aws:userid":"x"}}`, nil, time.Time{}, true},
		{"IfExists present, match", `{"StringEqualsIfExists":{"aws:username":"alice"}}`, nil, time.Time{}, true},
		{"IfExists present, no match", `{"StringEqualsIfExists":{"aws:username":"bob"}}`, nil, time.Time{}, false},
		{"NotIfExists present, match", `{"StringNotEqualsIfExists":{"aws:username":"alice"}}`, nil, time.Time{}, false},
		{"BoolIfExists missing key", `{"BoolIfExists":{"aws:SecureTransport":"false"}}`, nil, time.Time{}, true},
		{"BoolIfExists present", `{"BoolIfExists":{"aws:SecureTransport":"false"}}`, Context{"aws:SecureTransport": {"true"}}, time.Time{}, false},
		{"IpAddressIfExists missing", `{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}`, nil, time.Time{}, true},
		{"IpAddressIfExists outside", `{"IpAddressIfExists":{"aws:SourceIp":"172.16.0.0/12"}}`, ip4, time.Time{}, false},
		{"DateLessThanIfExists missing", `{"DateLessThanIfExists":{"aws:CurrentTime":"2000-01-01"}}`, nil, time.Time{}, true},
		{"NumericLessThanIfExists present", `{"NumericLessThanIfExists":{"aps:Series":"5"}}`, Context{"aps:Series": {"6"}}, time.Time{}, false},

		// Set qualifiers on a multi-valued key.
		{"ForAllValues subset", `{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}`, tags("env"), time.Time{}, true},
		{"ForAllValues all", `{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}`, tags("env", "team"), time.Time{}, true},
		{"ForAllValues extra", `{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}`, tags("env", "owner"), time.Time{}, false},
		{"ForAllValues missing key", `{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}`, nil, time.Time{}, true},
		{"ForAllValues StringLike", `{"ForAllValues:StringLike":{"aws:TagKeys":"key1*"}}`, tags("key1a", "key1b"), time.Time{}, true},
		{"ForAllValues StringNotLike none match", `{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}`, tags("key2"), time.Time{}, true},
		{"ForAllValues StringNotLike one matches", `{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}`, tags("key2", "key1x"), time.Time{}, false},
		{"ForAnyValue one", `{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}`, tags("owner", "env"), time.Time{}, true},
		{"ForAnyValue none", `{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}`, tags("owner"), time.Time{}, false},
		{"ForAnyValue missing key", `{"ForAnyValue:StringEquals":{"aws:TagKeys":["team"]}}`, nil, time.Time{}, false},
		{"ForAnyValue StringNotEquals one differs", `{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"team"}}`, tags("team", "env"), time.Time{}, true},
		{"ForAnyValue StringNotEquals all equal", `{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"team"}}`, tags("team"), time.Time{}, false},
		{"ForAnyValue missing negated", `{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"team"}}`, nil, time.Time{}, false},
		{"ForAllValues IfExists", `{"ForAllValues:StringEqualsIfExists":{"aws:TagKeys":"team"}}`, tags("x"), time.Time{}, false},
		{"no qualifier, multi-valued", `{"StringEquals":{"aws:TagKeys":"team"}}`, tags("x", "team"), time.Time{}, true},
		{"no qualifier negated, multi-valued", `{"StringNotEquals":{"aws:TagKeys":"team"}}`, tags("x", "team"), time.Time{}, false},

		// Combination: keys ANDed, operators ANDed.
		{"keys ANDed", `{"StringEquals":{"aws:username":"alice","aws:PrincipalAccount":"111122223333"}}`, nil, time.Time{}, true},
		{"keys ANDed, one fails", `{"StringEquals":{"aws:username":"alice","aws:PrincipalAccount":"444455556666"}}`, nil, time.Time{}, false},
		{"operators ANDed", `{"StringEquals":{"aws:username":"alice"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ip4, time.Time{}, true},
		{"operators ANDed, one fails", `{"StringEquals":{"aws:username":"alice"},"IpAddress":{"aws:SourceIp":"11.0.0.0/8"}}`, ip4, time.Time{}, false},
		{"empty Condition", `{}`, nil, time.Time{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := condHolds(t, tc.cond, tc.ctx, tc.now); got != tc.want {
				t.Errorf("%s with context %v = %v, want %v", tc.cond, tc.ctx, got, tc.want)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	want := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"2024-06-01", "2024-06-01T00:00:00Z", "2024-06-01T00:00:00.000Z", "2024-06-01T02:00:00+02:00",
		"2024-06-01T00:00:00", "2024-06-01T00:00Z", "2024-06-01T00:00", "20240601T000000Z", "1717200000",
	} {
		got, ok := parseDate(s)
		if !ok || !got.Equal(want) {
			t.Errorf("parseDate(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "-", "tomorrow", "2024-13-01", "2024-06-01T25:00:00Z", "99999999999999999999"} {
		if _, ok := parseDate(s); ok {
			t.Errorf("parseDate(%q) succeeded", s)
		}
	}
}

func TestContext(t *testing.T) {
	var c Context
	if _, ok := c.Get("aws:SourceIp"); ok {
		t.Error("nil Context has a key")
	}
	c.Set("aws:SourceIp", "10.0.0.1")
	if v, ok := c.Get("AWS:SOURCEIP"); !ok || len(v) != 1 || v[0] != "10.0.0.1" {
		t.Errorf("Get after Set = %v, %v", v, ok)
	}
	c.Set("aws:sourceip", "10.0.0.2", "10.0.0.3")
	if len(c) != 1 {
		t.Errorf("Set left %d entries, want 1 (case variants replaced): %v", len(c), c)
	}
	if v, _ := c.Get("aws:SourceIp"); len(v) != 2 || v[1] != "10.0.0.3" {
		t.Errorf("Get = %v", v)
	}
	c.Set("aws:TagKeys")
	if _, ok := c.Get("aws:TagKeys"); ok {
		t.Error("a key with no values counts as present")
	}
}
