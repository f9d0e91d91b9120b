package policy

import (
	"errors"
	"fmt"
	"strconv"
)

// Policy language versions. Policy variables are only expanded in
// Version2012 documents; in Version2008 "${...}" is literal text.
const (
	Version2012 = "2012-10-17"
	Version2008 = "2008-10-17"
)

// Effect is a statement's Effect element.
type Effect uint8

// Effects. The zero value is invalid so a forgotten Effect never allows.
const (
	EffectAllow Effect = iota + 1
	EffectDeny
)

func (e Effect) String() string {
	switch e {
	case EffectAllow:
		return "Allow"
	case EffectDeny:
		return "Deny"
	}
	return "Effect(" + strconv.Itoa(int(e)) + ")"
}

// Policy is a parsed and compiled policy document. It is immutable and safe
// for concurrent use by any number of Evaluate calls.
type Policy struct {
	// Version is the document's Version, Version2008 when it had none.
	Version string
	// ID is the document's Id element, possibly empty.
	ID string
	// Statements in document order; a single Statement object becomes one.
	Statements []Statement

	raw []byte
}

// JSON returns the document exactly as it was parsed, for echoing back to
// API callers. The slice is shared: do not modify it.
func (p *Policy) JSON() []byte { return p.raw }

// MarshalJSON returns the original document, so a Policy embedded in a
// response serializes as the text the user uploaded.
func (p *Policy) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	return p.raw, nil
}

func (p *Policy) String() string { return string(p.raw) }

// Statement is one compiled statement.
type Statement struct {
	Sid    string
	Effect Effect

	actions     []pattern
	notAction   bool
	resources   []arnPattern
	notResource bool
	// principals is nil when the statement has neither Principal nor
	// NotPrincipal.
	principals   *principalSet
	notPrincipal bool
	conditions   []condition
}

// HasPrincipal reports whether the statement has a Principal or
// NotPrincipal element.
func (s *Statement) HasPrincipal() bool { return s.principals != nil }

func (s *Statement) matchAction(action string) bool {
	for i := range s.actions {
		if s.actions[i].match(action, nil) {
			return !s.notAction
		}
	}
	return s.notAction
}

func (s *Statement) matchResource(e *env) bool {
	for i := range s.resources {
		r := &s.resources[i]
		var ok bool
		if e.resIsARN {
			ok = r.matchParts(&e.res, e)
		} else {
			ok = r.any // a non-ARN resource only matches "*"
		}
		if ok {
			return !s.notResource
		}
	}
	return s.notResource
}

// matchPrincipal applies the Principal or NotPrincipal element of a resource
// policy statement.
func (s *Statement) matchPrincipal(p *Principal) grant {
	if s.principals == nil {
		return grantNone // a resource policy statement must name someone
	}
	g := s.principals.match(p)
	if s.notPrincipal {
		if g == grantNone {
			return grantDirect
		}
		return grantNone
	}
	return g
}

func (s *Statement) matchConditions(e *env) bool {
	for i := range s.conditions {
		if !s.conditions[i].eval(e) {
			return false
		}
	}
	return true
}

// ErrMalformed is wrapped by every parse error, so the API edge can map all
// of them to one client error (AWS answers ValidationException).
var ErrMalformed = errors.New("malformed policy document")

// ParseError describes why a document was rejected.
type ParseError struct {
	// Statement is the index of the offending statement, -1 for the
	// document itself.
	Statement int
	// Sid is the statement's Sid, if it had one.
	Sid string
	// Field names the element, e.g. "Effect" or
	// "Condition.IpAddress.aws:SourceIp".
	Field string
	// Reason says what is wrong.
	Reason string
}

func (e *ParseError) Error() string {
	msg := "policy: "
	if e.Statement >= 0 {
		msg += "Statement[" + strconv.Itoa(e.Statement) + "]"
		if e.Sid != "" {
			msg += fmt.Sprintf(" (Sid %q)", e.Sid)
		}
		msg += ": "
	}
	if e.Field != "" {
		msg += e.Field + ": "
	}
	return msg + e.Reason
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *ParseError) Unwrap() error { return ErrMalformed }
