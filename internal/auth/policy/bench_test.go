package policy

import (
	"testing"
	"time"
)

// benchPolicies is a realistic setup: an identity policy of five statements,
// one with a condition, and a workspace resource policy granting another
// account.
func benchPolicies(t testing.TB) ([]*Policy, *Policy) {
	id := mustParse(t, ParseIdentityPolicy, `{
		"Version": "2012-10-17",
		"Id": "prometheus-writer",
		"Statement": [
			{"Sid": "Write", "Effect": "Allow", "Action": ["aps:RemoteWrite"],
			 "Resource": "arn:aws:aps:us-east-1:111122223333:workspace/ws-*",
			 "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}},
			{"Sid": "Query", "Effect": "Allow", "Action": ["aps:Query*", "aps:Get*"],
			 "Resource": "arn:aws:aps:*:111122223333:workspace/*"},
			{"Sid": "Describe", "Effect": "Allow", "Action": ["aps:Describe*", "aps:List*"], "Resource": "*"},
			{"Sid": "NoDelete", "Effect": "Deny", "Action": "aps:Delete*", "Resource": "*"},
			{"Sid": "CrossWrite", "Effect": "Allow", "Action": "aps:RemoteWrite",
			 "Resource": "arn:aws:aps:us-east-1:444455556666:workspace/shared"}
		]}`)
	res := mustParse(t, ParseResourcePolicy, `{
		"Version": "2012-10-17",
		"Statement": [
			{"Sid": "FromA", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/prometheus"},
			 "Action": "aps:RemoteWrite", "Resource": "arn:aws:aps:us-east-1:444455556666:workspace/shared"}
		]}`)
	return []*Policy{id}, res
}

func benchRequests(t testing.TB) []Request {
	p := principal(t, "arn:aws:sts::111122223333:assumed-role/prometheus/pod-1")
	ctx := Context{KeySourceIP: {"10.1.2.3"}, KeySecureTransport: {"true"}}
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	return []Request{
		{Principal: p, Action: "aps:RemoteWrite", Resource: "arn:aws:aps:us-east-1:111122223333:workspace/ws-1", Context: ctx, Time: now},
		{Principal: p, Action: "aps:QueryMetrics", Resource: "arn:aws:aps:us-east-1:111122223333:workspace/ws-1", Context: ctx, Time: now},
		{Principal: p, Action: "aps:ListWorkspaces", Resource: "*", Context: ctx, Time: now},
		{Principal: p, Action: "aps:RemoteWrite", Resource: "arn:aws:aps:us-east-1:444455556666:workspace/shared", Context: ctx, Time: now},
	}
}

func BenchmarkEvaluate(b *testing.B) {
	ids, res := benchPolicies(b)
	reqs := benchRequests(b)
	for _, bc := range []struct {
		name string
		req  Request
		res  *Policy
	}{
		{"write-with-condition", reqs[0], nil},
		{"query", reqs[1], nil},
		{"list", reqs[2], nil},
		{"cross-account", reqs[3], res},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if Evaluate(ids, bc.res, bc.req) != Allow {
					b.Fatal("not allowed")
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	doc := []byte(`{"Version":"2012-10-17","Statement":[
		{"Sid":"Write","Effect":"Allow","Action":"aps:RemoteWrite","Resource":"arn:aws:aps:us-east-1:111122223333:workspace/ws-*",
		 "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
		{"Sid":"Query","Effect":"Allow","Action":["aps:Query*","aps:Get*"],"Resource":"*"}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}
