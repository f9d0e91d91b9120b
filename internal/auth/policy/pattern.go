package policy

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pattern is a compiled string pattern: literals, the wildcards `*` and `?`,
// and policy variables. Patterns are compiled once at parse time so that a
// request never pays for regexp compilation or string building.
type pattern struct {
	toks []token
	fold bool // case-insensitive literal comparison (actions, IgnoreCase)
	kind patKind
	lit  string // the literal for patExact and patPrefix
}

type patKind uint8

const (
	patGeneral patKind = iota
	patAny             // only stars: matches everything
	patExact           // one literal
	patPrefix          // literal followed by one star
)

type tokKind uint8

const (
	tokLit  tokKind = iota
	tokStar         // `*`: any run of characters, possibly empty
	tokOne          // `?`: exactly one character
	tokVar          // `${key}` or `${key, 'default'}`
)

type token struct {
	kind   tokKind
	s      string // literal text
	key    keyRef // variable key
	def    string // variable default value
	hasDef bool
}

type patternOpts struct {
	fold      bool // compare literals case-insensitively
	wildcards bool // `*` and `?` are wildcards; otherwise literal characters
	vars      bool // `${...}` is a policy variable; otherwise literal
}

var errEmptyPattern = errors.New("must not be empty")

func compilePattern(s string, o patternOpts) (pattern, error) {
	p := pattern{fold: o.fold}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p.toks = append(p.toks, token{kind: tokLit, s: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case o.wildcards && c == '*':
			flush()
			// Consecutive stars are one star; keeps backtracking linear.
			if n := len(p.toks); n == 0 || p.toks[n-1].kind != tokStar {
				p.toks = append(p.toks, token{kind: tokStar})
			}
			i++
		case o.wildcards && c == '?':
			flush()
			p.toks = append(p.toks, token{kind: tokOne})
			i++
		case o.vars && c == '$' && i+1 < len(s) && s[i+1] == '{':
			t, n, err := parseVariable(s[i+2:])
			if err != nil {
				return pattern{}, err
			}
			if t.kind == tokLit {
				lit.WriteString(t.s) // ${*}, ${?}, ${$} escapes
			} else {
				flush()
				p.toks = append(p.toks, t)
			}
			i += 2 + n
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	p.classify()
	return p, nil
}

func (p *pattern) classify() {
	switch {
	case len(p.toks) == 1 && p.toks[0].kind == tokStar:
		p.kind = patAny
	case len(p.toks) == 1 && p.toks[0].kind == tokLit:
		p.kind, p.lit = patExact, p.toks[0].s
	case len(p.toks) == 0:
		p.kind, p.lit = patExact, ""
	case len(p.toks) == 2 && p.toks[0].kind == tokLit && p.toks[1].kind == tokStar:
		p.kind, p.lit = patPrefix, p.toks[0].s
	default:
		p.kind = patGeneral
	}
}

// parseVariable parses the inside of `${...}`; s starts after `${`. It returns
// the token and the number of bytes consumed including the closing brace.
func parseVariable(s string) (token, int, error) {
	for _, esc := range [...]string{"*}", "?}", "$}"} {
		if strings.HasPrefix(s, esc) {
			return token{kind: tokLit, s: esc[:1]}, 2, nil
		}
	}
	i := strings.IndexAny(s, ",}")
	if i < 0 {
		return token{}, 0, errors.New("unterminated policy variable \"${\"")
	}
	name := strings.TrimSpace(s[:i])
	if name == "" || strings.ContainsAny(name, " \t${'") {
		return token{}, 0, errors.New("invalid policy variable name \"" + s[:i] + "\"")
	}
	t := token{kind: tokVar, key: newKeyRef(name)}
	if s[i] == '}' {
		return t, i + 1, nil
	}
	// Default value: `${key, 'text'}` where '' inside the quotes is one quote.
	j := i + 1
	for j < len(s) && s[j] == ' ' {
		j++
	}
	if j >= len(s) || s[j] != '\'' {
		return token{}, 0, errors.New("policy variable default value must be quoted with ''")
	}
	j++
	var def strings.Builder
	for {
		if j >= len(s) {
			return token{}, 0, errors.New("unterminated policy variable default value")
		}
		if s[j] == '\'' {
			if j+1 < len(s) && s[j+1] == '\'' {
				def.WriteByte('\'')
				j += 2
				continue
			}
			j++
			break
		}
		def.WriteByte(s[j])
		j++
	}
	for j < len(s) && s[j] == ' ' {
		j++
	}
	if j >= len(s) || s[j] != '}' {
		return token{}, 0, errors.New("unterminated policy variable \"${\"")
	}
	t.def, t.hasDef = def.String(), true
	return t, j + 1, nil
}

// match reports whether s matches the pattern. e resolves policy variables; it
// may be nil for patterns without variables. A variable that cannot be
// resolved (missing or multi-valued key, no default) makes the pattern fail
// to match, as AWS treats such a value as "does not match".
func (p *pattern) match(s string, e *env) bool {
	switch p.kind {
	case patAny:
		return true
	case patExact:
		if p.fold {
			return strings.EqualFold(s, p.lit)
		}
		return s == p.lit
	case patPrefix:
		if p.fold {
			_, ok := hasPrefixFold(s, p.lit)
			return ok
		}
		return strings.HasPrefix(s, p.lit)
	}
	return p.matchGeneral(s, e)
}

// matchGeneral is the classic single-backtrack-point glob matcher: on a
// mismatch, retry from the most recent star with one more character consumed.
// That is enough because every non-star token matches a fixed string, so
// the running time is O(len(s) * len(toks)) with no allocation.
func (p *pattern) matchGeneral(s string, e *env) bool {
	ti, si := 0, 0
	starT, starS := -1, 0
	for {
		if ti < len(p.toks) {
			t := &p.toks[ti]
			switch t.kind {
			case tokStar:
				starT, starS = ti, si
				ti++
				continue
			case tokOne:
				if si < len(s) {
					_, n := utf8.DecodeRuneInString(s[si:])
					si += n
					ti++
					continue
				}
			case tokLit, tokVar:
				lit := t.s
				if t.kind == tokVar {
					v, ok := e.variable(t)
					if !ok {
						return false
					}
					lit = v
				}
				if n, ok := p.hasPrefix(s[si:], lit); ok {
					si += n
					ti++
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		if starT < 0 || starS >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starS:])
		starS += n
		si, ti = starS, starT+1
	}
}

func (p *pattern) hasPrefix(s, prefix string) (int, bool) {
	if p.fold {
		return hasPrefixFold(s, prefix)
	}
	if strings.HasPrefix(s, prefix) {
		return len(prefix), true
	}
	return 0, false
}

// hasPrefixFold reports whether s starts with prefix under Unicode simple case
// folding and returns the number of bytes of s that matched, which may differ
// from len(prefix) for non-ASCII letters.
func hasPrefixFold(s, prefix string) (int, bool) {
	i := 0
	for _, pr := range prefix {
		if i >= len(s) {
			return 0, false
		}
		sr, n := rune(s[i]), 1
		if sr >= utf8.RuneSelf {
			sr, n = utf8.DecodeRuneInString(s[i:])
		}
		if sr != pr && !equalFoldRune(sr, pr) {
			return 0, false
		}
		i += n
	}
	return i, true
}

func equalFoldRune(a, b rune) bool {
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		return lowerASCII(a) == lowerASCII(b)
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

func lowerASCII(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// hasVars reports whether the pattern refers to policy variables.
func (p *pattern) hasVars() bool {
	for i := range p.toks {
		if p.toks[i].kind == tokVar {
			return true
		}
	}
	return false
}

// arnPattern matches ARNs the way AWS does for Resource and the Arn*
// condition operators: each of the six colon-separated components is matched
// separately, so a wildcard in the region never swallows the account.
type arnPattern struct {
	any   bool     // "*"
	whole *pattern // non-nil when the value is not a six-part ARN (conditions only)
	parts [arnParts]pattern
}

const arnParts = 6

// splitARN splits an ARN into its six components: "arn", partition, service,
// region, account and the resource, which keeps any further colons. With
// skipVars, colons inside `${...}` do not split, so `${aws:username}` stays
// in one component.
func splitARN(s string, skipVars bool) (parts [arnParts]string, ok bool) {
	start, n := 0, 0
	for i := 0; i < len(s) && n < arnParts-1; i++ {
		switch s[i] {
		case '$':
			if skipVars && i+1 < len(s) && s[i+1] == '{' {
				if j := strings.IndexByte(s[i:], '}'); j > 0 {
					i += j
				}
			}
		case ':':
			parts[n] = s[start:i]
			n++
			start = i + 1
		}
	}
	if n < arnParts-1 {
		return parts, false
	}
	parts[arnParts-1] = s[start:]
	return parts, true
}

// compileARNPattern compiles an ARN pattern. With strict, anything but "*" or
// a six-part ARN starting with "arn:" is an error (the Resource element);
// otherwise such a value falls back to a whole-string glob.
func compileARNPattern(s string, vars, strict bool) (arnPattern, error) {
	if s == "*" {
		return arnPattern{any: true}, nil
	}
	if s == "" {
		return arnPattern{}, errEmptyPattern
	}
	o := patternOpts{wildcards: true, vars: vars}
	parts, ok := splitARN(s, vars)
	if !ok || !strings.HasPrefix(s, "arn:") {
		if strict {
			return arnPattern{}, errors.New("\"" + s + "\" is neither \"*\" nor an ARN (arn:partition:service:region:account:resource)")
		}
		p, err := compilePattern(s, o)
		if err != nil {
			return arnPattern{}, err
		}
		return arnPattern{whole: &p}, nil
	}
	var a arnPattern
	for i, part := range parts {
		p, err := compilePattern(part, o)
		if err != nil {
			return arnPattern{}, err
		}
		a.parts[i] = p
	}
	return a, nil
}

func (a *arnPattern) match(s string, e *env) bool {
	if a.any {
		return true
	}
	if a.whole != nil {
		return a.whole.match(s, e)
	}
	parts, ok := splitARN(s, false)
	if !ok {
		return false
	}
	return a.matchParts(&parts, e)
}

func (a *arnPattern) matchParts(parts *[arnParts]string, e *env) bool {
	if a.any {
		return true
	}
	if a.whole != nil {
		return false // not reached for Resource, which is strict
	}
	for i := range a.parts {
		if !a.parts[i].match(parts[i], e) {
			return false
		}
	}
	return true
}
