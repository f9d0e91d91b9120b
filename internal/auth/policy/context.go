package policy

import (
	"strconv"
	"strings"
	"time"
)

// Well-known condition keys. Keys are case-insensitive; these spellings are
// the canonical ones and the cheapest to look up in a Context.
const (
	KeyPrincipalAccount = "aws:PrincipalAccount"
	KeyPrincipalArn     = "aws:PrincipalArn"
	KeyPrincipalType    = "aws:PrincipalType"
	KeyUsername         = "aws:username"
	KeyUserID           = "aws:userid"
	KeySourceIP         = "aws:SourceIp"
	KeySecureTransport  = "aws:SecureTransport"
	KeyCurrentTime      = "aws:CurrentTime"
	KeyEpochTime        = "aws:EpochTime"
	KeyTagKeys          = "aws:TagKeys"
	// KeyRequestTagPrefix and KeyResourceTagPrefix are followed by a tag key,
	// e.g. "aws:ResourceTag/team".
	KeyRequestTagPrefix  = "aws:RequestTag/"
	KeyResourceTagPrefix = "aws:ResourceTag/"
)

// Context holds the request's condition keys and their values. Lookups are
// case-insensitive, as AWS condition keys are; a key with no values counts as
// absent. A nil Context is empty.
//
// Keys describing the principal (aws:PrincipalAccount, aws:PrincipalArn,
// aws:PrincipalType, aws:username, aws:userid) and the time (aws:CurrentTime,
// aws:EpochTime) need not be set: Evaluate derives them from
// Request.Principal and Request.Time when the Context lacks them.
type Context map[string][]string

// Get returns the values of key, compared case-insensitively.
func (c Context) Get(key string) ([]string, bool) {
	return c.lookup(key, key)
}

// Set replaces the values of key, removing any entry that differs from key
// only in case. It allocates the map if needed.
func (c *Context) Set(key string, values ...string) {
	if *c == nil {
		*c = make(Context)
	}
	for k := range *c {
		if k != key && strings.EqualFold(k, key) {
			delete(*c, k)
		}
	}
	(*c)[key] = values
}

// lookup tries the spelling used in the policy, then its lower-case form, and
// only then scans; callers normally spell keys as the policy does, so the
// common case is one map access.
func (c Context) lookup(name, lower string) ([]string, bool) {
	if len(c) == 0 {
		return nil, false
	}
	if v, ok := c[name]; ok {
		return v, len(v) > 0
	}
	if lower != name {
		if v, ok := c[lower]; ok {
			return v, len(v) > 0
		}
	}
	for k, v := range c {
		if strings.EqualFold(k, name) {
			return v, len(v) > 0
		}
	}
	return nil, false
}

// keyRef is a condition key or policy variable name, prepared at parse time.
type keyRef struct {
	name    string // as written in the policy
	lower   string
	derived derivedKey
}

type derivedKey uint8

const (
	derivedNone derivedKey = iota
	derivedPrincipalAccount
	derivedPrincipalArn
	derivedPrincipalType
	derivedUsername
	derivedUserID
	derivedCurrentTime
	derivedEpochTime
)

var derivedKeys = map[string]derivedKey{
	strings.ToLower(KeyPrincipalAccount): derivedPrincipalAccount,
	strings.ToLower(KeyPrincipalArn):     derivedPrincipalArn,
	strings.ToLower(KeyPrincipalType):    derivedPrincipalType,
	strings.ToLower(KeyUsername):         derivedUsername,
	strings.ToLower(KeyUserID):           derivedUserID,
	strings.ToLower(KeyCurrentTime):      derivedCurrentTime,
	strings.ToLower(KeyEpochTime):        derivedEpochTime,
}

func newKeyRef(name string) keyRef {
	lower := strings.ToLower(name)
	return keyRef{name: name, lower: lower, derived: derivedKeys[lower]}
}

// values is the result of a key lookup: either the caller's slice, one derived
// string, or a derived time. It exists so derived keys cost no allocation.
type values struct {
	list   []string
	one    string
	t      time.Time
	isTime bool
	epoch  bool // with isTime: the key is aws:EpochTime
	n      int
}

func (v *values) str(i int) string {
	switch {
	case v.list != nil:
		return v.list[i]
	case v.isTime && v.epoch:
		return strconv.FormatInt(v.t.Unix(), 10)
	case v.isTime:
		return v.t.UTC().Format(time.RFC3339)
	}
	return v.one
}

func (v *values) num(i int) (float64, bool) {
	if v.isTime {
		return float64(v.t.Unix()), true
	}
	return parseNumber(v.str(i))
}

func (v *values) time(i int) (time.Time, bool) {
	if v.isTime {
		return v.t, true
	}
	return parseDate(v.str(i))
}

// env is the per-request evaluation state. It lives on Evaluate's stack.
type env struct {
	req      *Request
	res      [arnParts]string // the request's resource ARN, split once
	resIsARN bool
}

// newEnv returns the env by value: storing req through a pointer receiver
// would make escape analysis move every Request to the heap.
func newEnv(req *Request) env {
	e := env{req: req}
	e.res, e.resIsARN = splitARN(req.Resource, false)
	return e
}

// resourceAccount is the account in the resource ARN; "" when there is none.
func (e *env) resourceAccount() string {
	if !e.resIsARN {
		return ""
	}
	return e.res[4]
}

func (e *env) lookup(k *keyRef) (values, bool) {
	if v, ok := e.req.Context.lookup(k.name, k.lower); ok {
		return values{list: v, n: len(v)}, true
	}
	if k.derived == derivedNone {
		return values{}, false
	}
	p := &e.req.Principal
	var s string
	switch k.derived {
	case derivedPrincipalAccount:
		s = p.account()
	case derivedPrincipalArn:
		s = p.principalArn()
	case derivedPrincipalType:
		s = p.principalType()
	case derivedUsername:
		s = p.username()
	case derivedUserID:
		s = p.UserID
	case derivedCurrentTime, derivedEpochTime:
		if e.req.Time.IsZero() {
			return values{}, false
		}
		return values{t: e.req.Time, isTime: true, epoch: k.derived == derivedEpochTime, n: 1}, true
	}
	if s == "" {
		return values{}, false
	}
	return values{one: s, n: 1}, true
}

// variable resolves a policy variable. Only single-valued keys can be
// variables; otherwise the default applies, if there is one.
func (e *env) variable(t *token) (string, bool) {
	if e != nil {
		if v, ok := e.lookup(&t.key); ok && v.n == 1 {
			return v.str(0), true
		}
	}
	if t.hasDef {
		return t.def, true
	}
	return "", false
}
