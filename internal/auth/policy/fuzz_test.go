package policy

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParse checks that no input makes the parsers panic, that every error
// is a ParseError, and that any accepted policy echoes its input and can be
// evaluated. The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"aps:*","Resource":"*"}}`))
	reqs := []Request{
		{Principal: Principal{ARN: "arn:aws:iam::111122223333:user/alice"}, Action: "aps:RemoteWrite",
			Resource: "arn:aws:aps:us-east-1:111122223333:workspace/ws-1",
			Context:  Context{KeySourceIP: {"10.0.0.1"}, KeyTagKeys: {"a", "b"}, "aws:ResourceTag/team": {"x"}},
			Time:     time.Unix(1717243200, 0)},
		{Principal: Principal{ARN: "arn:aws:sts::444455556666:assumed-role/r/s"}, Action: "s3:GetObject", Resource: "*"},
		{Principal: Principal{Service: "aps.amazonaws.com"}, Action: "aps:QueryMetrics", Resource: "not-an-arn"},
		{Principal: Principal{Account: "111122223333", Root: true}, Action: "", Resource: ""},
	}
	parsers := []func([]byte) (*Policy, error){Parse, ParseIdentityPolicy, ParseResourcePolicy}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range parsers {
			p, err := parse(data)
			if err != nil {
				var pe *ParseError
				if p != nil || !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) || err.Error() == "" {
					t.Fatalf("bad failure: %v, %v", p, err)
				}
				continue
			}
			if !bytes.Equal(p.JSON(), data) {
				t.Fatalf("JSON() = %q, want the input", p.JSON())
			}
			for _, req := range reqs {
				r := Explain([]*Policy{p}, p, req)
				if r.Decision > ExplicitDeny || r.String() == "" {
					t.Fatalf("Explain = %#v", r)
				}
			}
		}
	})
}
