package policy

import (
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		opts    patternOpts
		in      string
		want    bool
	}{
		{"*", patternOpts{wildcards: true}, "", true},
		{"*", patternOpts{wildcards: true}, "anything", true},
		{"**", patternOpts{wildcards: true}, "x", true},
		{"aps:*", patternOpts{wildcards: true, fold: true}, "aps:RemoteWrite", true},
		{"aps:*", patternOpts{wildcards: true, fold: true}, "APS:RemoteWrite", true},
		{"aps:*", patternOpts{wildcards: true, fold: true}, "ap:RemoteWrite", false},
		{"aps:Query*", patternOpts{wildcards: true, fold: true}, "aps:QueryMetrics", true},
		{"aps:Query*", patternOpts{wildcards: true, fold: true}, "aps:querymetrics", true},
		{"aps:Query*", patternOpts{wildcards: true, fold: true}, "aps:GetQuery", false},
		{"aps:?etSeries", patternOpts{wildcards: true, fold: true}, "aps:GetSeries", true},
		{"aps:?etSeries", patternOpts{wildcards: true, fold: true}, "aps:SetSeries", true},
		{"aps:?etSeries", patternOpts{wildcards: true, fold: true}, "aps:etSeries", false},
		{"aps:?etSeries", patternOpts{wildcards: true, fold: true}, "aps:GGetSeries", false},
		{"aps:*Series", patternOpts{wildcards: true, fold: true}, "aps:GetSeries", true},
		{"aps:*Series", patternOpts{wildcards: true, fold: true}, "aps:GetSeriesX", false},
		{"a*b*c", patternOpts{wildcards: true}, "abc", true},
		{"a*b*c", patternOpts{wildcards: true}, "aXbYbZc", true},
		{"a*b*c", patternOpts{wildcards: true}, "aXbYbZ", false},
		{"a*a*a*a*b", patternOpts{wildcards: true}, strings.Repeat("a", 40), false},
		{"*ab", patternOpts{wildcards: true}, "aab", true},
		{"?", patternOpts{wildcards: true}, "é", true}, // one character, two bytes
		{"??", patternOpts{wildcards: true}, "é", false},
		{"Exact", patternOpts{}, "Exact", true},
		{"Exact", patternOpts{}, "exact", false},
		{"Exact", patternOpts{fold: true}, "eXACT", true},
		{"a*", patternOpts{}, "a*", true}, // wildcards off: literal
		{"a*", patternOpts{}, "ab", false},
		{"straße*", patternOpts{fold: true, wildcards: true}, "STRASSE", false},
		{"K*", patternOpts{fold: true, wildcards: true}, "\u212Aelvin", true}, // Kelvin sign folds to k
		{"${$}{x}", patternOpts{vars: true}, "${x}", true},
		{"${*}", patternOpts{vars: true, wildcards: true}, "*", true},
		{"${*}", patternOpts{vars: true, wildcards: true}, "x", false},
		{"a${?}", patternOpts{vars: true, wildcards: true}, "a?", true},
		{"${x}", patternOpts{}, "${x}", true}, // variables off: literal
	}
	for _, tc := range tests {
		p, err := compilePattern(tc.pattern, tc.opts)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", tc.pattern, err)
		}
		if got := p.match(tc.in, nil); got != tc.want {
			t.Errorf("%q (%+v) match %q = %v, want %v", tc.pattern, tc.opts, tc.in, got, tc.want)
		}
	}
}

// TestPatternAgainstReference cross-checks the fast matcher against a
// simple recursive one on many generated inputs.
func TestPatternAgainstReference(t *testing.T) {
	alphabet := []string{"a", "b", "*", "?"}
	var patterns []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		patterns = append(patterns, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 5)
	var inputs []string
	var genIn func(prefix string, n int)
	genIn = func(prefix string, n int) {
		inputs = append(inputs, prefix)
		if n == 0 {
			return
		}
		for _, c := range []string{"a", "b"} {
			genIn(prefix+c, n-1)
		}
	}
	genIn("", 6)
	for _, pat := range patterns {
		p, err := compilePattern(pat, patternOpts{wildcards: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			if got, want := p.match(in, nil), refGlob(pat, in); got != want {
				t.Fatalf("%q match %q = %v, want %v", pat, in, got, want)
			}
		}
	}
}

func refGlob(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		return refGlob(p[1:], s) || (s != "" && refGlob(p, s[1:]))
	case '?':
		return s != "" && refGlob(p[1:], s[1:])
	}
	return s != "" && s[0] == p[0] && refGlob(p[1:], s[1:])
}

func TestPatternVariables(t *testing.T) {
	req := Request{
		Principal: Principal{ARN: "arn:aws:iam::111122223333:user/alice"},
		Context:   Context{"aws:PrincipalTag/team": {"metrics"}, "multi": {"a", "b"}},
	}
	e := newEnv(&req)
	tests := []struct {
		pattern, in string
		want        bool
	}{
		{"home/${aws:username}/*", "home/alice/x", true},
		{"home/${aws:username}/*", "home/bob/x", false},
		{"home/${AWS:USERNAME}/*", "home/alice/x", true}, // keys are case-insensitive
		{"${aws:PrincipalTag/team}-*", "metrics-1", true},
		{"${aws:principaltag/TEAM}-*", "metrics-1", true},
		{"${aws:userid}", "", false},                      // missing: no match, even against ""
		{"${aws:userid, 'none'}", "none", true},           // default
		{"${ aws:userid , 'it''s' }", "it's", true},       // spaces and '' escape
		{"${multi}", "a", false},                          // multi-valued keys are not variables
		{"${multi, 'd'}", "d", true},                      // ...so the default applies
		{"${aws:PrincipalAccount}", "111122223333", true}, // derived from the ARN
		{"x${aws:username}y${aws:username}z", "xaliceyalicez", true},
	}
	for _, tc := range tests {
		p, err := compilePattern(tc.pattern, patternOpts{wildcards: true, vars: true})
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", tc.pattern, err)
		}
		if got := p.match(tc.in, &e); got != tc.want {
			t.Errorf("%q match %q = %v, want %v", tc.pattern, tc.in, got, tc.want)
		}
	}
}

func TestPatternVariableErrors(t *testing.T) {
	for _, s := range []string{"${", "${aws:username", "${}", "${ }", "${a b}", "${a, x}", "${a, 'x}", "${a, 'x' y}"} {
		if _, err := compilePattern(s, patternOpts{vars: true}); err == nil {
			t.Errorf("compilePattern(%q) succeeded, want an error", s)
		}
	}
}

func TestARNPattern(t *testing.T) {
	tests := []struct {
		pattern, in string
		want        bool
	}{
		{"*", "not an arn", true},
		{"arn:aws:aps:us-east-1:111122223333:workspace/ws-1", "arn:aws:aps:us-east-1:111122223333:workspace/ws-1", true},
		{"arn:aws:aps:us-east-1:111122223333:workspace/ws-1", "arn:aws:aps:us-east-1:111122223333:workspace/WS-1", false},
		{"arn:aws:aps:*:111122223333:workspace/*", "arn:aws:aps:eu-west-1:111122223333:workspace/ws-1", true},
		// A wildcard stays inside its component: it cannot eat the colon.
		{"arn:aws:aps:*:111122223333:*", "arn:aws:aps:eu:west:111122223333:ws", false},
		{"arn:aws:aps:us-east-1:*:*", "arn:aws:aps:us-east-1:111122223333:workspace/ws-1", true},
		{"arn:aws:aps:us-east-1:*:*", "arn:aws:aps:us-east-1:111122223333:rulegroupsnamespace/ws-1/ns:x", true},
		{"arn:aws:aps:us-east-1:*:*", "arn:aws:aps:us-east-1", false},
		{"arn:aws:aps:us-east-?:*:*", "arn:aws:aps:us-east-2:1:x", true},
		{"arn:aws:iam::*:root", "arn:aws:iam::111122223333:root", true},
		{"arn:aws:iam::*:root", "arn:aws:iam::111122223333:user/root", false},
		{"arn:aws:aps:*:${aws:PrincipalAccount}:workspace/*", "arn:aws:aps:us-east-1:111122223333:workspace/x", true},
		{"arn:aws:aps:*:${aws:PrincipalAccount}:workspace/*", "arn:aws:aps:us-east-1:444455556666:workspace/x", false},
	}
	req := Request{Principal: Principal{ARN: "arn:aws:iam::111122223333:user/alice"}}
	e := newEnv(&req)
	for _, tc := range tests {
		a, err := compileARNPattern(tc.pattern, true, true)
		if err != nil {
			t.Fatalf("compileARNPattern(%q): %v", tc.pattern, err)
		}
		if got := a.match(tc.in, &e); got != tc.want {
			t.Errorf("%q match %q = %v, want %v", tc.pattern, tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "workspace/*", "arn:aws:aps", "aws:aps:us-east-1:1:2:3"} {
		if _, err := compileARNPattern(bad, true, true); err == nil {
			t.Errorf("compileARNPattern(%q, strict) succeeded, want an error", bad)
		}
	}
	// Outside Resource, a non-ARN value is a plain glob.
	a, err := compileARNPattern("arn:aws:*", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if !a.match("arn:aws:aps:us-east-1:1:x", nil) || a.match("arn:other", nil) {
		t.Error("lenient ARN pattern arn:aws:* matched wrongly")
	}
}

func TestSplitARN(t *testing.T) {
	parts, ok := splitARN("arn:aws:aps:us-east-1:111122223333:rulegroupsnamespace/ws/a:b", false)
	if !ok || parts[4] != "111122223333" || parts[5] != "rulegroupsnamespace/ws/a:b" {
		t.Errorf("splitARN = %q, %v", parts, ok)
	}
	parts, ok = splitARN("arn:aws:aps:us-east-1:${aws:PrincipalAccount}:x", true)
	if !ok || parts[3] != "us-east-1" || parts[4] != "${aws:PrincipalAccount}" || parts[5] != "x" {
		t.Errorf("splitARN with variables = %q, %v", parts, ok)
	}
	if _, ok := splitARN("arn:aws:aps:us-east-1", false); ok {
		t.Error("splitARN accepted four components")
	}
}
