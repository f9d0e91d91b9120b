package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/auth/oidc"
	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/auth/session"
)

// ParseOptions is what ParseIdentities needs besides the file's bytes.
type ParseOptions struct {
	// DefaultAccount is the server's default account (--account-id). It
	// exists whether or not the file lists it.
	DefaultAccount string
	// Root is the root key from the environment, nil when there is none. Its
	// id may not appear in the file.
	Root *Credential
	// Dir is where relative secret_file paths start, normally the directory
	// of the identities file.
	Dir string
	// ReadFile reads secret files; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

// Identities is one validated version of the identities file, together with
// the root key. It is immutable and safe for concurrent use.
type Identities struct {
	accounts  map[string]*Account
	keys      map[string]keyEntry
	users     map[string]*Principal // by ARN
	roles     map[string]*Role      // by ARN
	policies  map[string]*policy.Policy
	providers map[string]map[string]*oidc.Provider // by account, then issuer URL
}

// sourceInfo says what a parse read, whether or not it succeeded, so a
// reload can tell a changed file from an unchanged one.
type sourceInfo struct {
	// secretFiles lists the secret files the file names.
	secretFiles []string
	// sum is the SHA-256 of everything read: the file and the secret files.
	sum [sha256.Size]byte
	// inlineSecrets is true when the file holds secrets itself (not in secret files).
	inlineSecrets bool
}

type keyEntry struct {
	secret    string
	principal *Principal
}

// Account returns the account with id.
func (ids *Identities) Account(id string) (*Account, bool) {
	a, ok := ids.accounts[id]
	return a, ok
}

// User returns the user with the given ARN.
func (ids *Identities) User(arn string) (*Principal, bool) {
	u, ok := ids.users[arn]
	return u, ok
}

// Role returns the role with the given ARN.
func (ids *Identities) Role(arn string) (*Role, bool) {
	r, ok := ids.roles[arn]
	return r, ok
}

// OIDCProviders returns the OIDC identity providers of account, by issuer URL.
// The map is only read.
func (ids *Identities) OIDCProviders(account string) map[string]*oidc.Provider {
	return ids.providers[account]
}

// Policy returns the named policy.
func (ids *Identities) Policy(name string) (*policy.Policy, bool) {
	p, ok := ids.policies[name]
	return p, ok
}

// NumAccessKeys is the number of access keys, the root key included.
func (ids *Identities) NumAccessKeys() int { return len(ids.keys) }

// ValidationError lists every problem found in an identities file.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid identities file: " + strings.Join(e.Problems, "; ")
}

// The YAML shape. Names follow the flag and config conventions: snake_case.
type fileDoc struct {
	Accounts      []fileAccount      `yaml:"accounts"`
	Policies      []filePolicy       `yaml:"policies"`
	Users         []fileUser         `yaml:"users"`
	Roles         []fileRole         `yaml:"roles"`
	OIDCProviders []fileOIDCProvider `yaml:"oidc_providers"`
}

type fileOIDCProvider struct {
	URL         string   `yaml:"url"`
	Account     string   `yaml:"account"`
	ClientIDs   []string `yaml:"client_ids"`
	Thumbprints []string `yaml:"thumbprints"`
	JWKSFile    string   `yaml:"jwks_file"`
	JWKSURL     string   `yaml:"jwks_url"`
	CAFile      string   `yaml:"ca_file"`
}

type fileAccount struct {
	ID             string    `yaml:"id"`
	Name           string    `yaml:"name"`
	RootAccessKeys []fileKey `yaml:"root_access_keys"`
}

type filePolicy struct {
	Name     string       `yaml:"name"`
	Document fileDocument `yaml:"document"`
}

type fileKey struct {
	ID         string `yaml:"id"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

type fileUser struct {
	Name           string            `yaml:"name"`
	Account        string            `yaml:"account"`
	AccessKeys     []fileKey         `yaml:"access_keys"`
	Policies       []string          `yaml:"policies"`
	InlinePolicies []fileDocument    `yaml:"inline_policies"`
	Tags           map[string]string `yaml:"tags"`
}

type fileRole struct {
	Name                       string            `yaml:"name"`
	Account                    string            `yaml:"account"`
	TrustPolicy                fileDocument      `yaml:"trust_policy"`
	Policies                   []string          `yaml:"policies"`
	InlinePolicies             []fileDocument    `yaml:"inline_policies"`
	Tags                       map[string]string `yaml:"tags"`
	MaxSessionDuration         time.Duration     `yaml:"max_session_duration"`
	RevokeSessionsIssuedBefore string            `yaml:"revoke_sessions_issued_before"`
}

// maxDocumentNodes bounds a YAML-written policy document. AWS caps managed
// policies at 6,144 characters; this is far above anything legitimate.
const maxDocumentNodes = 100_000

// fileDocument is a policy document written either as a string of JSON or as
// YAML with the same structure; either way it ends up as JSON.
type fileDocument struct {
	json []byte
	err  error
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *fileDocument) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		d.json = []byte(n.Value)
	case n.Kind == yaml.MappingNode:
		budget := maxDocumentNodes
		d.json, d.err = nodeJSON(nil, n, 0, &budget)
	default:
		// Reported with the document's location by the validation.
		d.err = fmt.Errorf("line %d: must be a JSON string or a YAML mapping", n.Line)
	}
	return nil
}

// nodeJSON converts a YAML node to JSON, keeping key order and the spelling
// of every scalar: a plain 2012-10-17 stays the string "2012-10-17" rather
// than becoming a timestamp. budget bounds the nodes visited, aliases
// included, so an alias bomb fails instead of exploding.
func nodeJSON(dst []byte, n *yaml.Node, depth int, budget *int) ([]byte, error) {
	if *budget--; *budget < 0 {
		return nil, errors.New("policy document too large (or too many aliases)")
	}
	if depth > 64 {
		return nil, fmt.Errorf("line %d: nested too deeply", n.Line)
	}
	var err error
	switch n.Kind {
	case yaml.AliasNode:
		return nodeJSON(dst, n.Alias, depth+1, budget)
	case yaml.MappingNode:
		dst = append(dst, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping keys must be scalars", k.Line)
			}
			dst = appendJSONString(dst, k.Value)
			dst = append(dst, ':')
			if dst, err = nodeJSON(dst, n.Content[i+1], depth+1, budget); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case yaml.SequenceNode:
		dst = append(dst, '[')
		for i, c := range n.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = nodeJSON(dst, c, depth+1, budget); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!bool":
			if v := strings.ToLower(n.Value); v == "true" || v == "false" {
				return append(dst, v...), nil
			}
		case "!!null":
			return append(dst, "null"...), nil
		case "!!int", "!!float":
			if json.Valid([]byte(n.Value)) {
				return append(dst, n.Value...), nil
			}
		}
		return appendJSONString(dst, n.Value), nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// yamlQuoted matches the scalar excerpts yaml.v3 puts in its errors, e.g.
// "cannot unmarshal !!str `abcdefg...` into []auth.fileKey".
var yamlQuoted = regexp.MustCompile("`[^`]*`")

// redactYAMLError drops value excerpts from a YAML error: a secret written in
// the wrong place must not reach the log.
func redactYAMLError(err error) string {
	return yamlQuoted.ReplaceAllString(err.Error(), "(value hidden)")
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

var (
	iamNameRe    = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	policyNameRe = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	accessKeyRe  = regexp.MustCompile(`^\w+$`)
)

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkAccessKeyID returns why id is not a valid access key id, "" if it is.
func checkAccessKeyID(id string) string {
	switch {
	case len(id) < 16 || len(id) > 128:
		return "must be 16 to 128 characters long, not " + strconv.Itoa(len(id))
	case !accessKeyRe.MatchString(id):
		return "may contain only letters, digits and '_'"
	}
	return ""
}

// checkSecret returns why secret is not acceptable, "" if it is. It never
// quotes the secret.
func checkSecret(secret string) string {
	if len(secret) < 16 {
		return "the secret must be at least 16 characters long"
	}
	for _, c := range secret {
		if c <= ' ' || c == 0x7f {
			return "the secret must not contain whitespace or control characters"
		}
	}
	return ""
}

// ParseIdentities parses and validates an identities file. The result holds
// the root key of opts too, if any.
//
// The identities file (--auth.identities-file) defines who may call Strata.
// It is YAML with four lists, all optional:
//
//	accounts:                  # accounts besides the server's default account (--account-id),
//	  - id: "111122223333"     # which always exists. id: 12 digits; quote it so YAML keeps
//	    name: monitoring       # leading zeros. name: free text for people, optional.
//	    root_access_keys:      # optional access keys of the account's root user
//	      - id: AKIAMONITORINGROOT01
//	        secret_file: monitoring-root.secret
//
//	policies:                  # named identity policies, attachable by name
//	  - name: PrometheusRemoteWrite
//	    document: |            # an IAM policy: JSON text, or the same structure as YAML
//	      {"Version": "2012-10-17",
//	       "Statement": [{"Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": "*"}]}
//
//	users:
//	  - name: prometheus       # IAM user name: letters, digits and +=,.@_- (1-64)
//	    account: "111122223333" # optional; the default account when absent
//	    access_keys:           # one or more; id: 16-128 of [A-Za-z0-9_], unique in the file
//	      - id: AKIAPROMETHEUS000001
//	        secret: "..."      # at least 16 characters, no whitespace; or:
//	      - id: AKIAPROMETHEUS000002
//	        secret_file: /run/secrets/prometheus # the secret is the file's content, trailing
//	                           # newline removed; relative paths start at this file's directory
//	    policies: [PrometheusRemoteWrite]   # names of named policies
//	    inline_policies:       # policy documents attached to this user only
//	      - Version: "2012-10-17"
//	        Statement:
//	          - Effect: Deny
//	            Action: "aps:*"
//	            Resource: "*"
//	            Condition: {NotIpAddress: {"aws:SourceIp": "10.0.0.0/8"}}
//
//	roles:                     # assumed through STS (AssumeRole, AssumeRoleWithWebIdentity)
//	  - name: central-monitoring
//	    account: "111122223333"
//	    trust_policy: |        # who may assume the role: a policy whose statements name Principals
//	      {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
//	        "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole",
//	        "Condition": {"StringEquals": {"sts:ExternalId": "..."}}}]}
//	    policies: [PrometheusRemoteWrite]
//	    inline_policies: []
//	    tags: {team: obs}      # aws:PrincipalTag/<key> of its sessions, aws:ResourceTag/<key> when assuming it
//	    max_session_duration: 1h # longest DurationSeconds: 1h (the default) to 12h
//	    revoke_sessions_issued_before: 2026-12-05T10:00:00Z # IAM's "revoke active sessions"
//
//	oidc_providers:            # identity providers for AssumeRoleWithWebIdentity (IRSA-style)
//	  - url: https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE # the tokens' iss; https, no port
//	    account: "111122223333" # optional; the default account when absent
//	    client_ids: [sts.amazonaws.com]   # accepted audiences (aud, or azp when present)
//	    jwks_url: https://...  # or jwks_file: a file; neither: OIDC discovery at the url
//	    thumbprints: []        # hex SHA-1 of a certificate of the JWKS server's chain, for
//	                           # one no trusted root signs (optional)
//	    ca_file: ""            # extra CA bundle for the JWKS server (optional)
//
// Users take tags too (aws:PrincipalTag/<key>). Tags: at most 50, keys 1-128 and
// values 0-256 letters, digits, spaces or _.:/=+-@, keys unique regardless of
// case and not starting with "aws:".
//
// Validation rejects the whole file (the server keeps the last good version)
// when: a field is unknown; an account id is not 12 digits, is listed twice,
// or a user or role names an account that is not listed; a name is invalid or
// used twice in one account (users, roles) or in the file (policies); an
// access key id is not 16-128 characters of [A-Za-z0-9_] or is used twice
// anywhere (including the root key from STRATA_ROOT_ACCESS_KEY_ID); a key has
// both or neither of secret and secret_file, its secret file cannot be read,
// or its secret is shorter than 16 characters or contains whitespace; a user
// has no access key; a policy name is attached that is not defined, or twice;
// a role has no trust policy; a policy document does not parse (identity
// policies: policy.ParseIdentityPolicy; trust policies: a Principal in every
// statement and, as in AWS, no Resource, since the resource is the role).
//
// Principals: a root key acts as "arn:aws:iam::<account>:root", a user's key
// as "arn:aws:iam::<account>:user/<name>", a role session as
// "arn:aws:sts::<account>:assumed-role/<role>/<session>". A secret file (or an
// identities file holding secrets inline) that every user of the machine may
// read is refused.
func ParseIdentities(data []byte, opts ParseOptions) (*Identities, error) {
	ids, _, err := parseIdentities(data, opts)
	return ids, err
}

func parseIdentities(data []byte, opts ParseOptions) (*Identities, sourceInfo, error) {
	var src sourceInfo
	if !isAccountID(opts.DefaultAccount) {
		return nil, src, fmt.Errorf("default account %q is not a 12-digit account id", opts.DefaultAccount)
	}
	readFile := opts.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	h := sha256.New()
	h.Write(data)
	sum := func() { h.Sum(src.sum[:0]) }

	var doc fileDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		sum()
		return nil, src, fmt.Errorf("parsing identities file: %s", redactYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		sum()
		return nil, src, errors.New("parsing identities file: more than one YAML document")
	}

	b := &builder{
		ids: &Identities{
			accounts:  map[string]*Account{},
			keys:      map[string]keyEntry{},
			users:     map[string]*Principal{},
			roles:     map[string]*Role{},
			policies:  map[string]*policy.Policy{},
			providers: map[string]map[string]*oidc.Provider{},
		},
		keyWhere: map[string]string{},
		names:    map[string]string{},
		dir:      opts.Dir,
		readFile: readFile,
		hash:     func(p []byte) { h.Write(p) },
		checkMode: func(path string) error {
			if opts.ReadFile != nil {
				return nil // not the file system: nothing to check
			}
			return CheckSecretFileMode(path)
		},
	}
	b.build(&doc, opts)
	src.secretFiles = b.secretFiles
	src.inlineSecrets = b.inlineSecrets
	sum()
	if len(b.problems) > 0 {
		return nil, src, &ValidationError{Problems: b.problems}
	}
	return b.ids, src, nil
}

type builder struct {
	// checkMode refuses a secret file others can read; nil checks nothing (parses of
	// bytes that did not come from files).
	checkMode func(path string) error
	ids       *Identities
	problems  []string
	keyWhere  map[string]string // access key id -> where it was defined
	names     map[string]string // "user:<acct>:<name>" etc. -> where
	dir       string
	readFile  func(string) ([]byte, error)
	hash      func([]byte)
	// secretFiles lists the secret files named, read or not.
	secretFiles []string
	// inlineSecrets is true when the file itself holds a secret.
	inlineSecrets bool
}

func (b *builder) problem(where, format string, args ...any) {
	const max = 50
	if len(b.problems) == max {
		b.problems = append(b.problems, "(more problems not shown)")
	}
	if len(b.problems) > max {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	b.problems = append(b.problems, msg)
}

func (b *builder) build(doc *fileDoc, opts ParseOptions) {
	ids := b.ids
	ids.accounts[opts.DefaultAccount] = &Account{ID: opts.DefaultAccount, Name: "default"}
	if opts.Root != nil {
		ids.keys[opts.Root.AccessKeyID] = keyEntry{secret: opts.Root.SecretAccessKey, principal: NewRootPrincipal(opts.DefaultAccount)}
		b.keyWhere[opts.Root.AccessKeyID] = "the root key from " + EnvRootAccessKeyID
	}

	listed := map[string]string{}
	for i, a := range doc.Accounts {
		where := fmt.Sprintf("accounts[%d]", i)
		switch {
		case !isAccountID(a.ID):
			b.problem(where, "id %q is not a 12-digit account id", clip(a.ID))
			continue
		case listed[a.ID] != "":
			b.problem(where, "account %s is already listed at %s", a.ID, listed[a.ID])
			continue
		case len(a.Name) > 64:
			b.problem(where, "name is longer than 64 characters")
		}
		listed[a.ID] = where
		acct := &Account{ID: a.ID, Name: a.Name}
		if acct.Name == "" && a.ID == opts.DefaultAccount {
			acct.Name = "default"
		}
		ids.accounts[a.ID] = acct
	}
	// Root keys after all accounts are known, so the order of lists does not matter.
	for i, a := range doc.Accounts {
		if !isAccountID(a.ID) || listed[a.ID] != fmt.Sprintf("accounts[%d]", i) {
			continue
		}
		root := NewRootPrincipal(a.ID)
		for j := range a.RootAccessKeys {
			b.addKey(fmt.Sprintf("accounts[%d] (%s): root_access_keys[%d]", i, a.ID, j), &a.RootAccessKeys[j], root)
		}
	}

	for i := range doc.Policies {
		p := &doc.Policies[i]
		where := fmt.Sprintf("policies[%d]", i)
		if !policyNameRe.MatchString(p.Name) {
			b.problem(where, "name %q must be 1-128 letters, digits or +=,.@_-", clip(p.Name))
			continue
		}
		where += " (" + p.Name + ")"
		if prev, dup := b.names["policy:"+p.Name]; dup {
			b.problem(where, "a policy of that name is already defined at %s", prev)
			continue
		}
		b.names["policy:"+p.Name] = where
		if pol := b.parseDoc(where+": document", &p.Document, policy.ParseIdentityPolicy); pol != nil {
			ids.policies[p.Name] = pol
		}
	}

	for i := range doc.Users {
		u := &doc.Users[i]
		where := fmt.Sprintf("users[%d]", i)
		acct, ok := b.nameAndAccount(&where, "user", u.Name, &u.Account, opts.DefaultAccount)
		if !ok {
			continue
		}
		pols, names := b.attached(where, u.Name, u.Policies, u.InlinePolicies)
		p := NewUserPrincipal(acct, u.Name, pols, names)
		if b.checkTags(where+": tags", u.Tags) {
			p.Tags = u.Tags
			p.finish()
		}
		ids.users[p.ARN] = p
		if len(u.AccessKeys) == 0 {
			b.problem(where, "has no access_keys")
		}
		for j := range u.AccessKeys {
			b.addKey(fmt.Sprintf("%s: access_keys[%d]", where, j), &u.AccessKeys[j], p)
		}
	}

	for i := range doc.Roles {
		r := &doc.Roles[i]
		where := fmt.Sprintf("roles[%d]", i)
		acct, ok := b.nameAndAccount(&where, "role", r.Name, &r.Account, opts.DefaultAccount)
		if !ok {
			continue
		}
		role := &Role{ARN: "arn:aws:iam::" + acct + ":role/" + r.Name, AccountID: acct, Name: r.Name}
		role.UniqueID = session.UniqueID("AROA", role.ARN)
		if r.TrustPolicy.json == nil && r.TrustPolicy.err == nil {
			b.problem(where, "trust_policy is required")
		} else {
			role.TrustPolicy = b.parseDoc(where+": trust_policy", &r.TrustPolicy, parseTrustPolicy)
			role.TrustPolicyJSON = r.TrustPolicy.json
		}
		role.Policies, role.PolicyNames = b.attached(where, r.Name, r.Policies, r.InlinePolicies)
		if b.checkTags(where+": tags", r.Tags) {
			role.Tags = r.Tags
		}
		switch d := r.MaxSessionDuration; {
		case d == 0:
			role.MaxSessionDuration = DefaultMaxSessionDuration
		case d < time.Hour || d > 12*time.Hour || d%time.Second != 0:
			b.problem(where, "max_session_duration %v must be whole seconds from 1h to 12h", d)
		default:
			role.MaxSessionDuration = d
		}
		if v := r.RevokeSessionsIssuedBefore; v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				b.problem(where, "revoke_sessions_issued_before %q is not an RFC 3339 time such as 2026-12-05T10:00:00Z", clip(v))
			} else {
				role.RevokeBefore = t.UTC()
				pol, err := policy.ParseIdentityPolicy(revokePolicy(role.RevokeBefore))
				if err != nil {
					b.problem(where, "revoke_sessions_issued_before: %v", err)
				} else {
					// Sessions get it beside the role's own policies: IAM's way to revoke.
					role.Policies = append(slices.Clip(role.Policies), pol)
					role.PolicyNames = append(slices.Clip(role.PolicyNames), RevokePolicyName)
				}
			}
		}
		ids.roles[role.ARN] = role
	}

	urls := map[string]string{}
	for i := range doc.OIDCProviders {
		fp := &doc.OIDCProviders[i]
		where := fmt.Sprintf("oidc_providers[%d]", i)
		acct := fp.Account
		if acct == "" {
			acct = opts.DefaultAccount
		}
		if _, ok := ids.accounts[acct]; !ok {
			b.problem(where, "account %q is not listed under accounts", clip(acct))
			continue
		}
		prov := &oidc.Provider{URL: fp.URL, Account: acct, ClientIDs: fp.ClientIDs, Thumbprints: fp.Thumbprints,
			JWKSFile: b.path(fp.JWKSFile), JWKSURL: fp.JWKSURL, CAFile: b.path(fp.CAFile)}
		if err := prov.Validate(); err != nil {
			b.problem(where, "%v", err)
			continue
		}
		where += " (" + fp.URL + ")"
		if prev, dup := urls[acct+" "+fp.URL]; dup {
			b.problem(where, "account %s already has this provider at %s", acct, prev)
			continue
		}
		urls[acct+" "+fp.URL] = where
		if ids.providers[acct] == nil {
			ids.providers[acct] = map[string]*oidc.Provider{}
		}
		ids.providers[acct][fp.URL] = prov
	}
}

// DefaultMaxSessionDuration is a role's maximum session duration when the
// identities file sets none, as IAM's.
const DefaultMaxSessionDuration = time.Hour

// RevokePolicyName names the policy that revokes a role's older sessions, as the
// inline policy IAM attaches.
const RevokePolicyName = "AWSRevokeOlderSessions"

// revokePolicy is IAM's revoke-sessions policy: deny everything to sessions
// issued before t.
func revokePolicy(t time.Time) []byte {
	return []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],` +
		`"Condition":{"DateLessThan":{"aws:TokenIssueTime":"` + t.Format(tokenTimeLayout) + `"}}}]}`)
}

// path resolves a file named in the identities file.
func (b *builder) path(p string) string {
	if p != "" && !filepath.IsAbs(p) && b.dir != "" {
		return filepath.Join(b.dir, p)
	}
	return p
}

// tagKeyRe is IAM's tag key and value alphabet.
var tagRe = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

// checkTags validates principal tags as IAM does: at most 50, keys 1-128 and
// values 0-256 characters of letters, digits, spaces and _.:/=+-@; keys unique
// regardless of case.
func (b *builder) checkTags(where string, tags map[string]string) bool {
	ok := true
	if len(tags) > 50 {
		b.problem(where, "at most 50 tags, not %d", len(tags))
		ok = false
	}
	seen := map[string]bool{}
	for k, v := range tags {
		switch {
		case k == "" || len([]rune(k)) > 128 || !tagRe.MatchString(k) || strings.HasPrefix(strings.ToLower(k), "aws:"):
			b.problem(where, "key %q must be 1-128 letters, digits, spaces or _.:/=+-@, not starting with aws:", clip(k))
			ok = false
		case len([]rune(v)) > 256 || !tagRe.MatchString(v):
			b.problem(where, "value of %q must be at most 256 letters, digits, spaces or _.:/=+-@", clip(k))
			ok = false
		case seen[strings.ToLower(k)]:
			b.problem(where, "key %q appears twice (keys are case-insensitive)", clip(k))
			ok = false
		}
		seen[strings.ToLower(k)] = true
	}
	return ok
}

// nameAndAccount checks a user's or role's name and account, appends the name
// to where and returns the account.
func (b *builder) nameAndAccount(where *string, kind, name string, account *string, def string) (string, bool) {
	if !iamNameRe.MatchString(name) {
		b.problem(*where, "name %q must be 1-64 letters, digits or +=,.@_-", clip(name))
		return "", false
	}
	*where += " (" + name + ")"
	acct := *account
	if acct == "" {
		acct = def
	}
	if _, ok := b.ids.accounts[acct]; !ok {
		if isAccountID(acct) {
			b.problem(*where, "account %s is not listed under accounts", acct)
		} else {
			b.problem(*where, "account %q is not a 12-digit account id", clip(acct))
		}
		return "", false
	}
	key := kind + ":" + acct + ":" + name
	if prev, dup := b.names[key]; dup {
		b.problem(*where, "a %s of that name in account %s is already defined at %s", kind, acct, prev)
		return "", false
	}
	b.names[key] = *where
	return acct, true
}

// attached resolves named policies and parses inline ones.
func (b *builder) attached(where, owner string, named []string, inline []fileDocument) ([]*policy.Policy, []string) {
	var pols []*policy.Policy
	var names []string
	seen := map[string]bool{}
	for j, name := range named {
		if seen[name] {
			b.problem(where, "policies[%d]: %q is attached twice", j, clip(name))
			continue
		}
		seen[name] = true
		pol, ok := b.ids.policies[name]
		if !ok {
			if _, defined := b.names["policy:"+name]; !defined {
				b.problem(where, "policies[%d]: no policy named %q is defined", j, clip(name))
			}
			continue
		}
		pols = append(pols, pol)
		names = append(names, name)
	}
	for j := range inline {
		if pol := b.parseDoc(fmt.Sprintf("%s: inline_policies[%d]", where, j), &inline[j], policy.ParseIdentityPolicy); pol != nil {
			pols = append(pols, pol)
			names = append(names, owner+"/inline-"+strconv.Itoa(j))
		}
	}
	return pols, names
}

func (b *builder) parseDoc(where string, d *fileDocument, parse func([]byte) (*policy.Policy, error)) *policy.Policy {
	if d.err != nil {
		b.problem(where, "%v", d.err)
		return nil
	}
	if len(bytes.TrimSpace(d.json)) == 0 {
		b.problem(where, "is empty")
		return nil
	}
	pol, err := parse(d.json)
	if err != nil {
		b.problem(where, "%v", err)
		return nil
	}
	return pol
}

func (b *builder) addKey(where string, k *fileKey, p *Principal) {
	if why := checkAccessKeyID(k.ID); why != "" {
		// Not quoted: a malformed id may be a secret pasted in the wrong field.
		b.problem(where, "id %s", why)
		return
	}
	where += " (" + k.ID + ")"
	if prev, dup := b.keyWhere[k.ID]; dup {
		b.problem(where, "access key id is already used by %s", prev)
		return
	}
	b.keyWhere[k.ID] = where
	var secret string
	switch {
	case k.Secret != "" && k.SecretFile != "":
		b.problem(where, "set secret or secret_file, not both")
		return
	case k.Secret != "":
		secret = k.Secret
		b.inlineSecrets = true
	case k.SecretFile != "":
		path := k.SecretFile
		if !filepath.IsAbs(path) && b.dir != "" {
			path = filepath.Join(b.dir, path)
		}
		b.secretFiles = append(b.secretFiles, path)
		data, err := b.readFile(path)
		b.hash([]byte("\x00" + path + "\x00"))
		if err != nil {
			b.hash([]byte("\x00error"))
			// The error names the path, never the content.
			b.problem(where, "reading secret_file: %v", err)
			return
		}
		b.hash(data)
		if err := b.checkMode(path); err != nil {
			b.problem(where, "secret_file: %v", err)
			return
		}
		secret = strings.TrimRight(string(data), "\r\n")
	default:
		b.problem(where, "set secret or secret_file")
		return
	}
	if why := checkSecret(secret); why != "" {
		b.problem(where, "%s", why)
		return
	}
	b.ids.keys[k.ID] = keyEntry{secret: secret, principal: p}
}

// parseTrustPolicy parses a role's trust policy. Like AWS, it wants a
// Principal in every statement and no Resource: the resource is the role.
// The policy package knows no such kind, so each statement gets "Resource":
// "*" before policy.ParseResourcePolicy compiles it; Role.TrustPolicyJSON
// keeps the document as written.
func parseTrustPolicy(doc []byte) (*policy.Policy, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return policy.ParseResourcePolicy(doc) // for its error message
	}
	var stmts []map[string]json.RawMessage
	single := false
	if raw, ok := top["Statement"]; ok {
		if err := json.Unmarshal(raw, &stmts); err != nil {
			var one map[string]json.RawMessage
			if json.Unmarshal(raw, &one) != nil {
				return policy.ParseResourcePolicy(doc)
			}
			stmts, single = []map[string]json.RawMessage{one}, true
		}
	}
	for i, st := range stmts {
		if _, ok := st["Resource"]; ok {
			return nil, fmt.Errorf("policy: Statement[%d]: Resource: not allowed in a trust policy; the resource is the role", i)
		}
		if _, ok := st["NotResource"]; ok {
			return nil, fmt.Errorf("policy: Statement[%d]: NotResource: not allowed in a trust policy; the resource is the role", i)
		}
		st["Resource"] = json.RawMessage(`"*"`)
	}
	if stmts != nil {
		var raw []byte
		if single {
			raw, _ = json.Marshal(stmts[0])
		} else {
			raw, _ = json.Marshal(stmts)
		}
		top["Statement"] = raw
	}
	normalized, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	return policy.ParseResourcePolicy(normalized)
}

func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
