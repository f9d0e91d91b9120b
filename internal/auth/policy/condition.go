package policy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

type opFamily uint8

const (
	famString     opFamily = iota // exact, optionally case-insensitive
	famStringLike                 // glob, case-sensitive
	famArn
	famNumeric
	famDate
	famBool
	famIP
	famBinary
	famNull
)

type cmpOp uint8

const (
	cmpEq cmpOp = iota
	cmpLt
	cmpLe
	cmpGt
	cmpGe
)

type opSpec struct {
	fam     opFamily
	cmp     cmpOp
	negated bool
	fold    bool
}

// operators lists the base condition operators. Names are case-sensitive, as
// in AWS. The ...IfExists suffix and the ForAnyValue:/ForAllValues:
// qualifiers are parsed around these.
var operators = map[string]opSpec{
	"StringEquals":              {fam: famString},
	"StringNotEquals":           {fam: famString, negated: true},
	"StringEqualsIgnoreCase":    {fam: famString, fold: true},
	"StringNotEqualsIgnoreCase": {fam: famString, fold: true, negated: true},
	"StringLike":                {fam: famStringLike},
	"StringNotLike":             {fam: famStringLike, negated: true},

	"ArnEquals":    {fam: famArn},
	"ArnLike":      {fam: famArn},
	"ArnNotEquals": {fam: famArn, negated: true},
	"ArnNotLike":   {fam: famArn, negated: true},

	"NumericEquals":            {fam: famNumeric, cmp: cmpEq},
	"NumericNotEquals":         {fam: famNumeric, cmp: cmpEq, negated: true},
	"NumericLessThan":          {fam: famNumeric, cmp: cmpLt},
	"NumericLessThanEquals":    {fam: famNumeric, cmp: cmpLe},
	"NumericGreaterThan":       {fam: famNumeric, cmp: cmpGt},
	"NumericGreaterThanEquals": {fam: famNumeric, cmp: cmpGe},

	"DateEquals":            {fam: famDate, cmp: cmpEq},
	"DateNotEquals":         {fam: famDate, cmp: cmpEq, negated: true},
	"DateLessThan":          {fam: famDate, cmp: cmpLt},
	"DateLessThanEquals":    {fam: famDate, cmp: cmpLe},
	"DateGreaterThan":       {fam: famDate, cmp: cmpGt},
	"DateGreaterThanEquals": {fam: famDate, cmp: cmpGe},

	"Bool":         {fam: famBool},
	"BinaryEquals": {fam: famBinary},
	"IpAddress":    {fam: famIP},
	"NotIpAddress": {fam: famIP, negated: true},
	"Null":         {fam: famNull},
}

type setQualifier uint8

const (
	setNone setQualifier = iota
	setAnyValue
	setAllValues
)

// condition is one (operator, key, values) triple of a Condition element.
// Values are parsed into the operator's type at parse time.
type condition struct {
	op string // as written, for messages
	opSpec
	ifExists bool
	set      setQualifier
	key      keyRef

	strs  []pattern // famString, famStringLike, famBinary
	arns  []arnPattern
	nums  []float64
	times []time.Time
	nets  []netip.Prefix
	bools []bool
	null  bool // famNull: true means "the key must be absent"
}

// parseOperator splits "ForAnyValue:StringLikeIfExists" into its parts.
func parseOperator(name string) (opSpec, setQualifier, bool, error) {
	base, set := name, setNone
	if rest, ok := strings.CutPrefix(base, "ForAnyValue:"); ok {
		base, set = rest, setAnyValue
	} else if rest, ok := strings.CutPrefix(base, "ForAllValues:"); ok {
		base, set = rest, setAllValues
	}
	spec, ok := operators[base]
	ifExists := false
	if !ok {
		if trimmed, cut := strings.CutSuffix(base, "IfExists"); cut {
			spec, ok = operators[trimmed]
			ifExists = true
		}
	}
	if !ok {
		return opSpec{}, 0, false, fmt.Errorf("unknown condition operator %q", name)
	}
	if spec.fam == famNull && (ifExists || set != setNone) {
		return opSpec{}, 0, false, errors.New("Null takes neither IfExists nor a set qualifier")
	}
	return spec, set, ifExists, nil
}

// compileValues parses the policy's values for the condition's operator.
func (c *condition) compileValues(vals []string, vars bool) error {
	for _, v := range vals {
		var err error
		switch c.fam {
		case famString:
			var p pattern
			p, err = compilePattern(v, patternOpts{fold: c.fold, vars: vars})
			c.strs = append(c.strs, p)
		case famStringLike:
			var p pattern
			p, err = compilePattern(v, patternOpts{wildcards: true, vars: vars})
			c.strs = append(c.strs, p)
		case famBinary:
			c.strs = append(c.strs, pattern{kind: patExact, lit: v})
		case famArn:
			var a arnPattern
			a, err = compileARNPattern(v, vars, false)
			c.arns = append(c.arns, a)
		case famNumeric:
			f, ok := parseNumber(v)
			if !ok {
				err = fmt.Errorf("%q is not a number", v)
			}
			c.nums = append(c.nums, f)
		case famDate:
			t, ok := parseDate(v)
			if !ok {
				err = fmt.Errorf("%q is not an ISO 8601 date or epoch seconds", v)
			}
			c.times = append(c.times, t)
		case famBool:
			b, ok := parseBool(v)
			if !ok {
				err = fmt.Errorf("%q is not \"true\" or \"false\"", v)
			}
			c.bools = append(c.bools, b)
		case famIP:
			var p netip.Prefix
			p, err = parseIPPrefix(v)
			c.nets = append(c.nets, p)
		case famNull:
			if len(vals) != 1 {
				return errors.New("Null takes exactly one value")
			}
			b, ok := parseBool(v)
			if !ok {
				err = fmt.Errorf("%q is not \"true\" or \"false\"", v)
			}
			c.null = b
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eval applies AWS's rules: values of one key are ORed (NOR for negated
// operators); a missing key makes a positive operator false and a negated one
// true, unless IfExists (true) or a set qualifier decides otherwise.
func (c *condition) eval(e *env) bool {
	vals, ok := e.lookup(&c.key)
	if c.fam == famNull {
		return c.null == !ok
	}
	if !ok {
		switch {
		case c.ifExists:
			return true
		case c.set == setAllValues:
			return true // vacuously: every one of no values matches
		case c.set == setAnyValue:
			return false
		}
		return c.negated
	}
	switch c.set {
	case setAllValues:
		// Every request value must satisfy the operator; for a negated
		// operator, none may match any policy value.
		for i := 0; i < vals.n; i++ {
			if c.matchOne(&vals, i, e) == c.negated {
				return false
			}
		}
		return true
	case setAnyValue:
		for i := 0; i < vals.n; i++ {
			if c.matchOne(&vals, i, e) != c.negated {
				return true
			}
		}
		return false
	}
	// No qualifier: positive operators hold if any value matches; negated
	// ones are the exact complement.
	for i := 0; i < vals.n; i++ {
		if c.matchOne(&vals, i, e) {
			return !c.negated
		}
	}
	return c.negated
}

// matchOne reports whether request value i matches any of the policy values,
// ignoring negation.
func (c *condition) matchOne(vals *values, i int, e *env) bool {
	switch c.fam {
	case famString, famStringLike, famBinary:
		s := vals.str(i)
		for j := range c.strs {
			if c.strs[j].match(s, e) {
				return true
			}
		}
	case famArn:
		s := vals.str(i)
		for j := range c.arns {
			if c.arns[j].match(s, e) {
				return true
			}
		}
	case famNumeric:
		f, ok := vals.num(i)
		if !ok {
			return false
		}
		for _, want := range c.nums {
			if compare(c.cmp, cmpFloat(f, want)) {
				return true
			}
		}
	case famDate:
		t, ok := vals.time(i)
		if !ok {
			return false
		}
		for _, want := range c.times {
			if compare(c.cmp, t.Compare(want)) {
				return true
			}
		}
	case famBool:
		b, ok := parseBool(vals.str(i))
		if !ok {
			return false
		}
		for _, want := range c.bools {
			if b == want {
				return true
			}
		}
	case famIP:
		a, err := netip.ParseAddr(vals.str(i))
		if err != nil {
			return false
		}
		a = a.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1 for a v4 CIDR
		for _, n := range c.nets {
			if n.Contains(a) {
				return true
			}
		}
	}
	return false
}

func compare(op cmpOp, c int) bool {
	switch op {
	case cmpEq:
		return c == 0
	case cmpLt:
		return c < 0
	case cmpLe:
		return c <= 0
	case cmpGt:
		return c > 0
	case cmpGe:
		return c >= 0
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func parseNumber(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func parseBool(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// parseIPPrefix accepts a CIDR or a plain address (a one-address prefix).
// Host bits are masked off, so "10.1.2.3/8" means 10.0.0.0/8.
func parseIPPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// dateLayouts are the ISO 8601 forms accepted besides RFC 3339, which is
// tried first because aws:CurrentTime uses it. Forms without a zone are UTC.
var dateLayouts = []string{
	"2006-01-02",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"20060102T150405Z07:00",
}

// parseDate accepts ISO 8601 dates and times and integer epoch seconds. An
// all-digit string is always epoch seconds, so the basic date form
// "20240601" is not accepted.
func parseDate(s string) (time.Time, bool) {
	if isInteger(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(n, 0).UTC(), true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func isInteger(s string) bool {
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
