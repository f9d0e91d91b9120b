package policy

import (
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	acctA = "111122223333"
	acctB = "444455556666"
	wsA2  = "arn:aws:aps:us-east-1:111122223333:workspace/ws-a2"
)

func mustParse(t testing.TB, parse func([]byte) (*Policy, error), doc string) *Policy {
	t.Helper()
	p, err := parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse %s: %v", doc, err)
	}
	return p
}

func principal(t testing.TB, arn string) Principal {
	t.Helper()
	p, err := ParsePrincipal(arn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// identity builds an identity policy with one statement.
func identity(t testing.TB, effect, actionElem, actions, resourceElem, resources string) *Policy {
	return mustParse(t, ParseIdentityPolicy, `{"Version":"2012-10-17","Statement":{"Effect":"`+effect+`","`+
		actionElem+`":`+actions+`,"`+resourceElem+`":`+resources+`}}`)
}

func TestEvaluateIdentityPolicies(t *testing.T) {
	user := principal(t, "arn:aws:iam::111122223333:user/alice")
	allow := func(actions, resources string) *Policy {
		return identity(t, "Allow", "Action", actions, "Resource", resources)
	}
	tests := []struct {
		name     string
		policies []*Policy
		action   string
		resource string
		want     Decision
	}{
		{"service wildcard", []*Policy{allow(`"aps:*"`, `"*"`)}, "aps:RemoteWrite", wsA1, Allow},
		{"service wildcard, other service", []*Policy{allow(`"aps:*"`, `"*"`)}, "s3:GetObject", wsA1, ImplicitDeny},
		{"full wildcard", []*Policy{allow(`"*"`, `"*"`)}, "s3:GetObject", wsA1, Allow},
		{"prefix wildcard", []*Policy{allow(`"aps:Query*"`, `"*"`)}, "aps:QueryMetrics", wsA1, Allow},
		{"prefix wildcard miss", []*Policy{allow(`"aps:Query*"`, `"*"`)}, "aps:GetSeries", wsA1, ImplicitDeny},
		{"single-char wildcard", []*Policy{allow(`"aps:?etSeries"`, `"*"`)}, "aps:GetSeries", wsA1, Allow},
		{"single-char wildcard miss", []*Policy{allow(`"aps:?etSeries"`, `"*"`)}, "aps:GetLabels", wsA1, ImplicitDeny},
		{"action case-insensitive", []*Policy{allow(`"APS:getseries"`, `"*"`)}, "aps:GetSeries", wsA1, Allow},
		{"action list", []*Policy{allow(`["aps:GetLabels","aps:GetSeries"]`, `"*"`)}, "aps:GetSeries", wsA1, Allow},
		{"resource exact", []*Policy{allow(`"aps:*"`, `"`+wsA1+`"`)}, "aps:QueryMetrics", wsA1, Allow},
		{"resource exact, other", []*Policy{allow(`"aps:*"`, `"`+wsA1+`"`)}, "aps:QueryMetrics", wsA2, ImplicitDeny},
		{"resource wildcard", []*Policy{allow(`"aps:*"`, `"arn:aws:aps:*:111122223333:workspace/ws-a*"`)}, "aps:QueryMetrics", wsA2, Allow},
		{"resource single-char", []*Policy{allow(`"aps:*"`, `"arn:aws:aps:us-east-1:111122223333:workspace/ws-a?"`)}, "aps:QueryMetrics", wsA2, Allow},
		{"resource case-sensitive", []*Policy{allow(`"aps:*"`, `"arn:aws:aps:us-east-1:111122223333:workspace/WS-A1"`)}, "aps:QueryMetrics", wsA1, ImplicitDeny},
		{"resource list", []*Policy{allow(`"aps:*"`, `["`+wsA2+`","`+wsA1+`"]`)}, "aps:QueryMetrics", wsA1, Allow},
		{"deny beats allow", []*Policy{allow(`"aps:*"`, `"*"`), identity(t, "Deny", "Action", `"aps:RemoteWrite"`, "Resource", `"*"`)}, "aps:RemoteWrite", wsA1, ExplicitDeny},
		{"deny first, allow later", []*Policy{identity(t, "Deny", "Action", `"aps:RemoteWrite"`, "Resource", `"*"`), allow(`"aps:*"`, `"*"`)}, "aps:RemoteWrite", wsA1, ExplicitDeny},
		{"deny other action", []*Policy{allow(`"aps:*"`, `"*"`), identity(t, "Deny", "Action", `"aps:RemoteWrite"`, "Resource", `"*"`)}, "aps:QueryMetrics", wsA1, Allow},
		{"deny alone", []*Policy{identity(t, "Deny", "Action", `"aps:Delete*"`, "Resource", `"*"`)}, "aps:QueryMetrics", wsA1, ImplicitDeny},
		{"NotAction allow", []*Policy{identity(t, "Allow", "NotAction", `"aps:Delete*"`, "Resource", `"*"`)}, "aps:QueryMetrics", wsA1, Allow},
		{"NotAction allow, listed", []*Policy{identity(t, "Allow", "NotAction", `"aps:Delete*"`, "Resource", `"*"`)}, "aps:DeleteWorkspace", wsA1, ImplicitDeny},
		{"NotAction deny", []*Policy{allow(`"*"`, `"*"`), identity(t, "Deny", "NotAction", `["aps:Query*","aps:Get*"]`, "Resource", `"*"`)}, "aps:RemoteWrite", wsA1, ExplicitDeny},
		{"NotAction deny, listed", []*Policy{allow(`"*"`, `"*"`), identity(t, "Deny", "NotAction", `["aps:Query*","aps:Get*"]`, "Resource", `"*"`)}, "aps:GetLabels", wsA1, Allow},
		{"NotResource allow", []*Policy{identity(t, "Allow", "Action", `"aps:*"`, "NotResource", `"`+wsA1+`"`)}, "aps:QueryMetrics", wsA2, Allow},
		{"NotResource allow, listed", []*Policy{identity(t, "Allow", "Action", `"aps:*"`, "NotResource", `"`+wsA1+`"`)}, "aps:QueryMetrics", wsA1, ImplicitDeny},
		{"NotResource deny", []*Policy{allow(`"*"`, `"*"`), identity(t, "Deny", "Action", `"*"`, "NotResource", `"arn:aws:aps:*:*:workspace/ws-a1"`)}, "aps:QueryMetrics", wsA2, ExplicitDeny},
		{"NotResource deny, listed", []*Policy{allow(`"*"`, `"*"`), identity(t, "Deny", "Action", `"*"`, "NotResource", `"arn:aws:aps:*:*:workspace/ws-a1"`)}, "aps:QueryMetrics", wsA1, Allow},
		{"non-ARN resource vs ARN pattern", []*Policy{allow(`"*"`, `"arn:aws:aps:*:*:*"`)}, "aps:ListWorkspaces", "*", ImplicitDeny},
		{"non-ARN resource vs *", []*Policy{allow(`"*"`, `"*"`)}, "aps:ListWorkspaces", "*", Allow},
		{"nil policy skipped", []*Policy{nil, allow(`"*"`, `"*"`)}, "aps:ListWorkspaces", wsA1, Allow},
		{"no policies", nil, "aps:QueryMetrics", wsA1, ImplicitDeny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Principal: user, Action: tc.action, Resource: tc.resource}
			if got := Evaluate(tc.policies, nil, req); got != tc.want {
				t.Errorf("Evaluate = %v, want %v (%v)", got, tc.want, Explain(tc.policies, nil, req))
			}
		})
	}
}

func TestEvaluateResourcePolicies(t *testing.T) {
	// Account A owns ws-a1 and ws-a2; ws-a1's policy lets B's writer role
	// write, lets account B query, lets A's carol query, and denies alice.
	resPolicy := mustParse(t, ParseResourcePolicy, `{
		"Version": "2012-10-17",
		"Statement": [
			{"Sid": "BWrite", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:role/writer"},
			 "Action": "aps:RemoteWrite", "Resource": "arn:aws:aps:us-east-1:111122223333:workspace/ws-a1"},
			{"Sid": "BQuery", "Effect": "Allow", "Principal": {"AWS": "444455556666"},
			 "Action": "aps:QueryMetrics", "Resource": "arn:aws:aps:us-east-1:111122223333:workspace/ws-a1"},
			{"Sid": "Carol", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/carol"},
			 "Action": "aps:QueryMetrics", "Resource": "*"},
			{"Sid": "AAccount", "Effect": "Allow", "Principal": {"AWS": "111122223333"},
			 "Action": "aps:GetLabels", "Resource": "*"},
			{"Sid": "NoAlice", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
			 "Action": "aps:DeleteWorkspace", "Resource": "*"},
			{"Sid": "TLSOnly", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
			 "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
		]}`)
	writeAny := identity(t, "Allow", "Action", `["aps:RemoteWrite","aps:QueryMetrics","aps:GetLabels"]`, "Resource", `"*"`)
	adminA := identity(t, "Allow", "Action", `"*"`, "Resource", `"*"`)

	writerB := principal(t, "arn:aws:sts::444455556666:assumed-role/writer/s1")
	readerB := principal(t, "arn:aws:sts::444455556666:assumed-role/reader/s1")
	alice := principal(t, "arn:aws:iam::111122223333:user/alice")
	carol := principal(t, "arn:aws:iam::111122223333:user/carol")
	dave := principal(t, "arn:aws:iam::111122223333:user/dave")

	tests := []struct {
		name     string
		p        Principal
		ids      []*Policy
		res      *Policy
		action   string
		resource string
		ctx      Context
		want     Decision
		reason   Reason
	}{
		{"cross-account: both allow", writerB, []*Policy{writeAny}, resPolicy, "aps:RemoteWrite", wsA1, nil, Allow, ReasonCrossAccount},
		{"cross-account: no identity allow", writerB, nil, resPolicy, "aps:RemoteWrite", wsA1, nil, ImplicitDeny, ReasonNoIdentityGrant},
		{"cross-account: no resource policy", writerB, []*Policy{writeAny}, nil, "aps:RemoteWrite", wsA1, nil, ImplicitDeny, ReasonNoResourceGrant},
		{"cross-account: other workspace", writerB, []*Policy{writeAny}, resPolicy, "aps:RemoteWrite", wsA2, nil, ImplicitDeny, ReasonNoResourceGrant},
		{"cross-account: other role", readerB, []*Policy{writeAny}, resPolicy, "aps:RemoteWrite", wsA1, nil, ImplicitDeny, ReasonNoResourceGrant},
		{"cross-account: account grant", readerB, []*Policy{writeAny}, resPolicy, "aps:QueryMetrics", wsA1, nil, Allow, ReasonCrossAccount},
		{"cross-account: account grant, no identity", readerB, nil, resPolicy, "aps:QueryMetrics", wsA1, nil, ImplicitDeny, ReasonNoIdentityGrant},
		{"cross-account: grant to A's account is not for B", writerB, []*Policy{writeAny}, resPolicy, "aps:GetLabels", wsA1, nil, ImplicitDeny, ReasonNoResourceGrant},
		{"cross-account: resource Deny", writerB, []*Policy{writeAny}, resPolicy, "aps:RemoteWrite", wsA1, Context{KeySecureTransport: {"false"}}, ExplicitDeny, ReasonExplicitDeny},
		{"same account: identity only", dave, []*Policy{adminA}, nil, "aps:RemoteWrite", wsA1, nil, Allow, ReasonIdentityPolicy},
		{"same account: resource grant alone", carol, nil, resPolicy, "aps:QueryMetrics", wsA1, nil, Allow, ReasonResourcePolicy},
		{"same account: resource grant, other action", carol, nil, resPolicy, "aps:RemoteWrite", wsA1, nil, ImplicitDeny, ReasonNoAllow},
		{"same account: account grant needs identity", dave, nil, resPolicy, "aps:GetLabels", wsA1, nil, ImplicitDeny, ReasonNoIdentityGrant},
		{"same account: account grant plus identity", dave, []*Policy{writeAny}, resPolicy, "aps:GetLabels", wsA1, nil, Allow, ReasonIdentityPolicy},
		{"same account: resource Deny beats identity Allow", alice, []*Policy{adminA}, resPolicy, "aps:DeleteWorkspace", wsA1, nil, ExplicitDeny, ReasonExplicitDeny},
		{"same account: Deny names alice only", dave, []*Policy{adminA}, resPolicy, "aps:DeleteWorkspace", wsA1, nil, Allow, ReasonIdentityPolicy},
		{"same account: condition Deny with Principal *", dave, []*Policy{adminA}, resPolicy, "aps:QueryMetrics", wsA1, Context{KeySecureTransport: {"false"}}, ExplicitDeny, ReasonExplicitDeny},
		{"root of A", principal(t, "arn:aws:iam::111122223333:root"), nil, resPolicy, "aps:DeleteWorkspace", wsA1, nil, Allow, ReasonRoot},
		{"root of A, denied", principal(t, "arn:aws:iam::111122223333:root"), nil, resPolicy, "aps:DeleteWorkspace", wsA1, Context{KeySecureTransport: {"false"}}, ExplicitDeny, ReasonExplicitDeny},
		{"root of B, account grant", principal(t, "arn:aws:iam::444455556666:root"), nil, resPolicy, "aps:QueryMetrics", wsA1, nil, Allow, ReasonCrossAccount},
		{"root of B, no grant", principal(t, "arn:aws:iam::444455556666:root"), nil, resPolicy, "aps:DeleteWorkspace", wsA1, nil, ImplicitDeny, ReasonNoResourceGrant},
		{"Root flag", Principal{Account: acctA, Root: true}, nil, nil, "aps:CreateWorkspace", wsA1, nil, Allow, ReasonRoot},
		{"anonymous", Principal{}, []*Policy{adminA}, resPolicy, "aps:QueryMetrics", wsA1, nil, ImplicitDeny, ReasonNoAllow},
		{"service, not named", Principal{Service: "aps.amazonaws.com"}, nil, resPolicy, "aps:QueryMetrics", wsA1, nil, ImplicitDeny, ReasonNoAllow},
		{"resource without account", dave, []*Policy{adminA}, nil, "aps:ListWorkspaces", "*", nil, Allow, ReasonIdentityPolicy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Principal: tc.p, Action: tc.action, Resource: tc.resource, Context: tc.ctx}
			r := Explain(tc.ids, tc.res, req)
			if r.Decision != tc.want || r.Reason != tc.reason {
				t.Errorf("got %v, want %v: %v", r, tc.want, tc.reason)
			}
			if d := Evaluate(tc.ids, tc.res, req); d != r.Decision {
				t.Errorf("Evaluate = %v, Explain = %v", d, r.Decision)
			}
		})
	}
}

func TestExplainNamesStatements(t *testing.T) {
	id := mustParse(t, ParseIdentityPolicy, `{"Id":"mine","Statement":[
		{"Sid":"Read","Effect":"Allow","Action":"aps:Query*","Resource":"*"},
		{"Effect":"Deny","Action":"aps:QueryRange","Resource":"*"}]}`)
	res := mustParse(t, ParseResourcePolicy, `{"Statement":[
		{"Sid":"B","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"aps:*","Resource":"*"}]}`)
	bob := principal(t, "arn:aws:iam::444455556666:user/bob")

	r := Explain([]*Policy{id}, res, Request{Principal: bob, Action: "aps:QueryMetrics", Resource: wsA1})
	if r.Identity.Statement() != &id.Statements[0] || r.Resource.Statement() != &res.Statements[0] {
		t.Errorf("matches = %+v", r)
	}
	want := `Allow: cross-account: allowed by an identity policy and the resource policy (identity policy "mine" statement 0 (Sid "Read"); resource policy statement 0 (Sid "B"))`
	if r.String() != want {
		t.Errorf("String() =\n%s\nwant\n%s", r, want)
	}

	r = Explain([]*Policy{id}, res, Request{Principal: bob, Action: "aps:QueryRange", Resource: wsA1})
	want = `ExplicitDeny: explicitly denied (identity policy "mine" statement 1)`
	if r.String() != want || r.Resource.Statement() != nil {
		t.Errorf("String() =\n%s\nwant\n%s", r, want)
	}
}

func TestParsePrincipal(t *testing.T) {
	tests := []struct {
		arn                 string
		account, typ, uname string
		root                bool
	}{
		{"arn:aws:iam::111122223333:root", acctA, PrincipalTypeAccount, "", true},
		{"arn:aws:iam::111122223333:user/alice", acctA, PrincipalTypeUser, "alice", false},
		{"arn:aws:iam::111122223333:user/division/alice", acctA, PrincipalTypeUser, "alice", false},
		{"arn:aws:sts::111122223333:assumed-role/writer/s-1", acctA, PrincipalTypeAssumedRole, "", false},
		{"arn:aws:sts::111122223333:federated-user/fed", acctA, PrincipalTypeFederatedUser, "", false},
		{"arn:aws:iam::111122223333:role/writer", acctA, PrincipalTypeAssumedRole, "", false},
		{"arn:aws-cn:iam::111122223333:user/alice", acctA, PrincipalTypeUser, "alice", false},
	}
	for _, tc := range tests {
		p, err := ParsePrincipal(tc.arn)
		if err != nil {
			t.Errorf("ParsePrincipal(%q): %v", tc.arn, err)
			continue
		}
		if p.ARN != tc.arn || p.Account != tc.account || p.Type != tc.typ || p.Username != tc.uname || p.Root != tc.root {
			t.Errorf("ParsePrincipal(%q) = %+v", tc.arn, p)
		}
	}
	for _, bad := range []string{
		"", "alice", "arn:aws:iam::1111:user/alice", "arn:aws:iam::111122223333:group/g",
		"arn:aws:iam::111122223333:user/", "arn:aws:iam:us-east-1:111122223333:user/a",
		"arn:aws:sts::111122223333:assumed-role/writer", "arn:aws:sts::111122223333:assumed-role/writer/s/x",
		"arn:aws:s3:::bucket", "arn::iam::111122223333:root",
	} {
		if _, err := ParsePrincipal(bad); err == nil {
			t.Errorf("ParsePrincipal(%q) succeeded", bad)
		}
	}
}

func TestDerivedKeys(t *testing.T) {
	get := func(p Principal, key string, now time.Time) (string, bool) {
		req := Request{Principal: p, Time: now}
		e := newEnv(&req)
		k := newKeyRef(key)
		v, ok := e.lookup(&k)
		if !ok {
			return "", false
		}
		return v.str(0), true
	}
	session := principal(t, "arn:aws:sts::111122223333:assumed-role/writer/s-1")
	user := principal(t, "arn:aws:iam::111122223333:user/team/alice")
	bare := Principal{ARN: "arn:aws:iam::111122223333:user/bob"} // not from ParsePrincipal
	tests := []struct {
		p        Principal
		key, val string
		ok       bool
	}{
		{session, KeyPrincipalArn, "arn:aws:iam::111122223333:role/writer", true},
		{session, KeyPrincipalType, PrincipalTypeAssumedRole, true},
		{session, KeyUsername, "", false},
		{user, KeyPrincipalArn, "arn:aws:iam::111122223333:user/team/alice", true},
		{user, KeyUsername, "alice", true},
		{bare, "AWS:USERNAME", "bob", true},
		{bare, KeyPrincipalAccount, acctA, true},
		{bare, KeyPrincipalType, PrincipalTypeUser, true},
		{bare, KeyUserID, "", false},
		{Principal{UserID: "AIDA123"}, KeyUserID, "AIDA123", true},
		{Principal{}, KeyPrincipalType, PrincipalTypeAnonymous, true},
		{Principal{Service: "aps.amazonaws.com"}, KeyPrincipalType, "", false},
		{Principal{ARN: "arn:aws:iam::111122223333:role/r"}, KeyPrincipalType, PrincipalTypeAssumedRole, true},
	}
	for _, tc := range tests {
		v, ok := get(tc.p, tc.key, time.Time{})
		if v != tc.val || ok != tc.ok {
			t.Errorf("%+v %s = %q, %v; want %q, %v", tc.p, tc.key, v, ok, tc.val, tc.ok)
		}
	}
	if v, ok := get(bare, KeyCurrentTime, t2024); !ok || v != "2024-06-01T12:00:00Z" {
		t.Errorf("aws:CurrentTime = %q, %v", v, ok)
	}
	if v, ok := get(bare, KeyEpochTime, t2024); !ok || v != "1717243200" {
		t.Errorf("aws:EpochTime = %q, %v", v, ok)
	}
	if _, ok := get(bare, KeyCurrentTime, time.Time{}); ok {
		t.Error("aws:CurrentTime present without a time")
	}
}

// TestEvaluateDoesNotAllocate pins the "no allocation in the hot path"
// property for the common shapes: wildcards, ARN resources, a condition on
// a Context key, a derived principal key, and a cross-account grant.
func TestEvaluateDoesNotAllocate(t *testing.T) {
	ids, res := benchPolicies(t)
	for _, req := range benchRequests(t) {
		var d Decision
		allocs := testing.AllocsPerRun(100, func() { d = Evaluate(ids, res, req) })
		if allocs != 0 {
			t.Errorf("%s on %s: %v allocations per Evaluate, want 0", req.Action, req.Resource, allocs)
		}
		if d != Allow {
			t.Errorf("%s on %s = %v, want Allow", req.Action, req.Resource, d)
		}
	}
}

func TestEvaluateConcurrent(t *testing.T) {
	ids, res := benchPolicies(t)
	reqs := benchRequests(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				for _, req := range reqs {
					if d := Evaluate(ids, res, req); d != Allow {
						t.Errorf("%s = %v", req.Action, d)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestResultStringLists(t *testing.T) {
	// Only matches that exist are listed.
	r := Result{Decision: ImplicitDeny, Reason: ReasonNoAllow}
	if s := r.String(); strings.Contains(s, "(") {
		t.Errorf("String() = %q, want no statement list", s)
	}
}
