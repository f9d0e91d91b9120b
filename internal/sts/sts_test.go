package sts

import (
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stratametrics/strata/internal/auth/sigv4"
)

func TestViolationsWording(t *testing.T) {
	var v violations
	name := "a b"
	v.add(&name, "roleSessionName", `Member must satisfy regular expression pattern: [\w+=,.@-]*`)
	if e := v.err(); e.Code != CodeValidationError || e.Status != 400 ||
		e.Message != `1 validation error detected: Value 'a b' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*` {
		t.Fatalf("one: %+v", e)
	}
	v.add(nil, "roleArn", "Member must not be null")
	if e := v.err(); !strings.HasPrefix(e.Message, "2 validation errors detected: Value 'a b'") || !strings.Contains(e.Message, "; Value null at 'roleArn'") {
		t.Fatalf("two: %+v", e)
	}
	if (violations{}).err() != nil {
		t.Fatal("no violation is an error")
	}
}

func TestErrorXML(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set(requestIDHeader, "req-1")
	writeError(w, accessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity"))
	var out struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Error     struct{ Type, Code, Message string }
		RequestID string `xml:"RequestId"`
	}
	if err := xml.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if w.Code != 403 || out.Error.Type != "Sender" || out.Error.Code != "AccessDenied" || out.RequestID != "req-1" || w.Header().Get("Content-Type") != "text/xml" {
		t.Fatalf("%d %+v %s", w.Code, out, w.Header())
	}
}

func TestVerifyErrorCodes(t *testing.T) {
	h := New(Config{Path: "/"}, Deps{})
	for kind, want := range map[*sigv4.Kind]string{
		sigv4.ErrMissingAuthentication:  CodeMissingAuthenticationToken,
		sigv4.ErrMalformedAuthorization: CodeIncompleteSignature,
		sigv4.ErrUnknownAccessKey:       CodeInvalidClientTokenID,
		sigv4.ErrSecurityToken:          CodeInvalidClientTokenID,
		sigv4.ErrExpiredToken:           CodeExpiredToken,
		sigv4.ErrSignatureMismatch:      CodeSignatureDoesNotMatch,
		sigv4.ErrRequestTimeTooSkewed:   CodeSignatureDoesNotMatch,
	} {
		if got := h.verifyError(sigv4.NewError(kind, "x")); got.Code != want {
			t.Errorf("%v: %s, want %s", kind, got.Code, want)
		}
	}
	if got := h.verifyError(errors.New("store down")); got.Status != http.StatusInternalServerError {
		t.Errorf("store failure: %+v", got)
	}
}

func TestConfig(t *testing.T) {
	for _, bad := range []string{"", "sts", "/a b", "/x?y", "/{x}"} {
		c := Config{Path: bad}
		if c.Validate() == nil {
			t.Errorf("path %q validated", bad)
		}
	}
	if p := (&Config{Path: "/"}).Pattern(http.MethodPost); p != "POST /{$}" {
		t.Errorf("root pattern %q", p)
	}
	if p := (&Config{Path: "/sts"}).Pattern(http.MethodGet); p != "GET /sts" {
		t.Errorf("path pattern %q", p)
	}
}

func TestParseParams(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/?Action=GetCallerIdentity&X-Amz-Signature=abc", strings.NewReader(""))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	q, e := parseParams(r, []byte("Version=2011-06-15&Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr"))
	if e != nil || q.Get("Action") != "AssumeRole" || q.Get("Version") != apiVersion || q.Has("X-Amz-Signature") || q.Get("RoleArn") != "arn:aws:iam::1:role/r" {
		t.Fatalf("%v %v", q, e)
	}
	r.Header.Set("Content-Type", "application/json")
	if _, e := parseParams(r, []byte(`{"Action":"AssumeRole"}`)); e == nil || e.Code != CodeInvalidParameterValue {
		t.Fatalf("JSON body: %v", e)
	}
	if got := clipAction("Assume<script>"); got != "(invalid)" {
		t.Fatalf("clipAction: %q", got)
	}
}
