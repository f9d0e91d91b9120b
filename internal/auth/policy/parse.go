package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

type docKind uint8

const (
	kindAny docKind = iota
	kindIdentity
	kindResource
)

// Parse parses and compiles a policy document without checking which kind of
// policy it is: Principal elements may be present or not. Prefer
// ParseIdentityPolicy or ParseResourcePolicy when storing a policy.
//
// Element names are case-sensitive and unknown or duplicate elements are
// errors, so that a typo never silently widens or narrows a policy. Every
// error is a *ParseError wrapping ErrMalformed.
func Parse(data []byte) (*Policy, error) { return parse(data, kindAny) }

// ParseIdentityPolicy is Parse for policies attached to a principal: no
// statement may have a Principal or NotPrincipal element.
func ParseIdentityPolicy(data []byte) (*Policy, error) { return parse(data, kindIdentity) }

// ParseResourcePolicy is Parse for policies attached to a resource (a
// workspace): every statement must have a Principal or NotPrincipal element.
func ParseResourcePolicy(data []byte) (*Policy, error) { return parse(data, kindResource) }

func parse(data []byte, kind docKind) (*Policy, error) {
	docErr := func(field, format string, args ...any) error {
		return &ParseError{Statement: -1, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		if err == nil {
			err = errors.New("not a single JSON value")
		}
		return nil, docErr("", "invalid JSON: %v", err)
	}
	fields, err := objectFields(data)
	if err != nil {
		return nil, docErr("", "document %v", err)
	}
	p := &Policy{Version: Version2008}
	var stmts json.RawMessage
	for _, f := range fields {
		switch f.name {
		case "Version":
			v, ok := jsonString(f.value)
			if !ok || (v != Version2012 && v != Version2008) {
				return nil, docErr("Version", "must be %q or %q, got %s", Version2012, Version2008, f.value)
			}
			p.Version = v
		case "Id":
			v, ok := jsonString(f.value)
			if !ok {
				return nil, docErr("Id", "must be a string")
			}
			p.ID = v
		case "Statement":
			stmts = f.value
		default:
			return nil, docErr(f.name, "unknown top-level element (want Version, Id, Statement)")
		}
	}
	if stmts == nil {
		return nil, docErr("Statement", "is required")
	}
	var raws []json.RawMessage
	switch firstByte(stmts) {
	case '{':
		raws = []json.RawMessage{stmts}
	case '[':
		if err := json.Unmarshal(stmts, &raws); err != nil {
			return nil, docErr("Statement", "%v", err)
		}
		if len(raws) == 0 {
			return nil, docErr("Statement", "must not be empty")
		}
	default:
		return nil, docErr("Statement", "must be an object or an array of objects")
	}
	p.Statements = make([]Statement, len(raws))
	sids := make(map[string]int, len(raws))
	for i, raw := range raws {
		if err := parseStatement(&p.Statements[i], raw, i, p.Version, kind); err != nil {
			return nil, err
		}
		if sid := p.Statements[i].Sid; sid != "" {
			if j, dup := sids[sid]; dup {
				return nil, &ParseError{Statement: i, Sid: sid, Field: "Sid", Reason: fmt.Sprintf("duplicates the Sid of Statement[%d]", j)}
			}
			sids[sid] = i
		}
	}
	p.raw = bytes.Clone(data)
	return p, nil
}

var statementElements = map[string]bool{
	"Sid": true, "Effect": true,
	"Principal": true, "NotPrincipal": true,
	"Action": true, "NotAction": true,
	"Resource": true, "NotResource": true,
	"Condition": true,
}

func parseStatement(st *Statement, raw json.RawMessage, idx int, version string, kind docKind) error {
	fail := func(field, format string, args ...any) error {
		return &ParseError{Statement: idx, Sid: st.Sid, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	fields, err := objectFields(raw)
	if err != nil {
		return fail("", "statement %v", err)
	}
	el := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		if !statementElements[f.name] {
			return fail(f.name, "unknown statement element")
		}
		el[f.name] = f.value
	}
	// Sid first, so that later errors can name the statement by it.
	if v, ok := el["Sid"]; ok {
		if st.Sid, ok = jsonString(v); !ok {
			return fail("Sid", "must be a string")
		}
	}

	switch v, ok := el["Effect"]; {
	case !ok:
		return fail("Effect", "is required")
	default:
		s, _ := jsonString(v)
		switch s {
		case "Allow":
			st.Effect = EffectAllow
		case "Deny":
			st.Effect = EffectDeny
		default:
			return fail("Effect", "must be \"Allow\" or \"Deny\", got %s", v)
		}
	}

	// Principal / NotPrincipal.
	pr, hasP := el["Principal"]
	npr, hasNP := el["NotPrincipal"]
	switch {
	case hasP && hasNP:
		return fail("Principal", "Principal and NotPrincipal are mutually exclusive")
	case (hasP || hasNP) && kind == kindIdentity:
		name := "Principal"
		if hasNP {
			name = "NotPrincipal"
		}
		return fail(name, "not allowed in an identity policy; the principal is the identity the policy is attached to")
	case !hasP && !hasNP && kind == kindResource:
		return fail("Principal", "a resource policy statement needs Principal or NotPrincipal")
	case hasP || hasNP:
		name, v := "Principal", pr
		if hasNP {
			name, v = "NotPrincipal", npr
		}
		ps, err := parsePrincipalElement(v)
		if err != nil {
			return fail(name, "%v", err)
		}
		st.principals, st.notPrincipal = ps, hasNP
	}

	// Action / NotAction.
	act, hasA := el["Action"]
	nact, hasNA := el["NotAction"]
	switch {
	case hasA && hasNA:
		return fail("Action", "Action and NotAction are mutually exclusive")
	case !hasA && !hasNA:
		return fail("Action", "a statement needs Action or NotAction")
	}
	name, v := "Action", act
	if hasNA {
		name, v = "NotAction", nact
	}
	list, err := stringList(v)
	if err != nil {
		return fail(name, "%v", err)
	}
	for _, a := range list {
		if err := validateAction(a); err != nil {
			return fail(name, "%v", err)
		}
		p, err := compilePattern(a, patternOpts{fold: true, wildcards: true})
		if err != nil {
			return fail(name, "%v", err)
		}
		st.actions = append(st.actions, p)
	}
	st.notAction = hasNA

	// Resource / NotResource. AWS requires one in identity policies and in
	// most resource policies; requiring it always keeps "what does this
	// statement cover" answerable from the statement alone.
	res, hasR := el["Resource"]
	nres, hasNR := el["NotResource"]
	switch {
	case hasR && hasNR:
		return fail("Resource", "Resource and NotResource are mutually exclusive")
	case !hasR && !hasNR:
		return fail("Resource", "a statement needs Resource or NotResource")
	}
	name, v = "Resource", res
	if hasNR {
		name, v = "NotResource", nres
	}
	if list, err = stringList(v); err != nil {
		return fail(name, "%v", err)
	}
	for _, r := range list {
		a, err := compileARNPattern(r, version == Version2012, true)
		if err != nil {
			return fail(name, "%v", err)
		}
		st.resources = append(st.resources, a)
	}
	st.notResource = hasNR

	if v, ok := el["Condition"]; ok {
		conds, err := parseConditionElement(v, version == Version2012, fail)
		if err != nil {
			return err
		}
		st.conditions = conds
	}
	return nil
}

func parsePrincipalElement(raw json.RawMessage) (*principalSet, error) {
	if s, ok := jsonString(raw); ok {
		if s != "*" {
			return nil, fmt.Errorf("a string principal must be \"*\"; name others as {\"AWS\": %q}", s)
		}
		return &principalSet{any: true}, nil
	}
	fields, err := objectFields(raw)
	if err != nil {
		return nil, errors.New(`must be "*" or an object such as {"AWS": "123456789012"}`)
	}
	if len(fields) == 0 {
		return nil, errors.New("must name at least one principal")
	}
	ps := &principalSet{}
	for _, f := range fields {
		list, err := stringList(f.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f.name, err)
		}
		for _, v := range list {
			if v == "" {
				return nil, fmt.Errorf("%s: empty principal", f.name)
			}
			switch f.name {
			case "AWS":
				err = ps.addAWS(v)
			case "Service", "Federated", "CanonicalUser":
				if v != "*" && strings.ContainsAny(v, "*?") {
					err = errPrincipalWildcard
				}
				switch {
				case err != nil:
				case v == "*" && f.name == "Service":
					err = errors.New("a wildcard service principal is not allowed; use \"*\"")
				case f.name == "Service":
					ps.services = append(ps.services, v)
				case f.name == "Federated":
					ps.federated = append(ps.federated, v)
				default:
					ps.canonical = append(ps.canonical, v)
				}
			default:
				return nil, fmt.Errorf("unknown principal type %q (want AWS, Service, Federated or CanonicalUser)", f.name)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f.name, err)
			}
		}
	}
	return ps, nil
}

func parseConditionElement(raw json.RawMessage, vars bool, fail func(string, string, ...any) error) ([]condition, error) {
	ops, err := objectFields(raw)
	if err != nil {
		return nil, fail("Condition", "%v", err)
	}
	var conds []condition
	for _, op := range ops {
		field := "Condition." + op.name
		spec, set, ifExists, err := parseOperator(op.name)
		if err != nil {
			return nil, fail(field, "%v", err)
		}
		keys, err := objectFields(op.value)
		if err != nil {
			return nil, fail(field, "must map condition keys to values: %v", err)
		}
		if len(keys) == 0 {
			return nil, fail(field, "must name at least one condition key")
		}
		for _, k := range keys {
			field := field + "." + k.name
			if err := validateConditionKey(k.name); err != nil {
				return nil, fail(field, "%v", err)
			}
			vals, err := conditionValues(k.value)
			if err != nil {
				return nil, fail(field, "%v", err)
			}
			c := condition{op: op.name, opSpec: spec, ifExists: ifExists, set: set, key: newKeyRef(k.name)}
			if err := c.compileValues(vals, vars); err != nil {
				return nil, fail(field, "%v", err)
			}
			conds = append(conds, c)
		}
	}
	return conds, nil
}

// validateAction accepts "*" and "service:pattern".
func validateAction(a string) error {
	if a == "*" {
		return nil
	}
	svc, name, ok := strings.Cut(a, ":")
	if !ok || svc == "" || name == "" {
		return fmt.Errorf("%q is neither \"*\" nor \"service:action\"", a)
	}
	for _, c := range svc {
		if !isAlnum(c) && c != '-' {
			return fmt.Errorf("%q: invalid service prefix %q", a, svc)
		}
	}
	for _, c := range name {
		if !isAlnum(c) && !strings.ContainsRune("*?-_.", c) {
			return fmt.Errorf("%q: invalid character %q in action name", a, c)
		}
	}
	return nil
}

// validateConditionKey wants "prefix:name" so that a bare "SourceIp" (which
// would never be present) is caught when the policy is stored. The prefix is a
// service ("aws", "sts") or an identity provider's URL without its scheme
// ("oidc.eks.us-east-1.amazonaws.com/id/ABC:sub").
func validateConditionKey(k string) error {
	prefix, name, ok := strings.Cut(k, ":")
	if !ok || prefix == "" || name == "" {
		return fmt.Errorf("condition key %q must look like \"service:name\", e.g. \"aws:SourceIp\"", k)
	}
	for _, c := range prefix {
		if !isAlnum(c) && !strings.ContainsRune("-._/", c) {
			return fmt.Errorf("condition key %q: invalid prefix %q", k, prefix)
		}
	}
	if strings.ContainsAny(k, " \t\r\n") {
		return fmt.Errorf("condition key %q contains white space", k)
	}
	return nil
}

func isAlnum(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// jsonField is one member of a JSON object, in document order.
type jsonField struct {
	name  string
	value json.RawMessage
}

// objectFields decodes a JSON object into its members, rejecting duplicate
// names, which encoding/json would silently resolve to the last one.
func objectFields(raw []byte) ([]jsonField, error) {
	if firstByte(raw) != '{' {
		return nil, errors.New("must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, err
	}
	var fields []jsonField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v", tok)
		}
		for _, f := range fields {
			if f.name == name {
				return nil, fmt.Errorf("has duplicate element %q", name)
			}
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		fields = append(fields, jsonField{name: name, value: v})
	}
	return fields, nil
}

func firstByte(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func jsonString(raw json.RawMessage) (string, bool) {
	if firstByte(raw) != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

var errStringList = errors.New("must be a string or a non-empty array of strings")

func stringList(raw json.RawMessage) ([]string, error) {
	if s, ok := jsonString(raw); ok {
		return []string{s}, nil
	}
	if firstByte(raw) != '[' {
		return nil, errStringList
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
		return nil, errStringList
	}
	out := make([]string, len(items))
	for i, it := range items {
		s, ok := jsonString(it)
		if !ok {
			return nil, errStringList
		}
		out[i] = s
	}
	return out, nil
}

// conditionValues accepts a string, number or boolean, or a non-empty array
// of them; numbers keep their JSON spelling.
func conditionValues(raw json.RawMessage) ([]string, error) {
	scalar := func(r json.RawMessage) (string, bool) {
		switch c := firstByte(r); {
		case c == '"':
			return jsonString(r)
		case c == 't' || c == 'f':
			return string(bytes.TrimSpace(r)), true
		case c == '-' || '0' <= c && c <= '9':
			return string(bytes.TrimSpace(r)), true
		}
		return "", false
	}
	const msg = "must be a string, number or boolean, or a non-empty array of them"
	if s, ok := scalar(raw); ok {
		return []string{s}, nil
	}
	if firstByte(raw) != '[' {
		return nil, errors.New(msg)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
		return nil, errors.New(msg)
	}
	out := make([]string, len(items))
	for i, it := range items {
		s, ok := scalar(it)
		if !ok {
			return nil, errors.New(msg)
		}
		out[i] = s
	}
	return out, nil
}
