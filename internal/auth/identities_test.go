package auth

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/testutil"
)

// exampleIdentities is the reference identities file (the text of
// docs/security-identities-example.yaml). TestExampleIdentities keeps it valid.
const exampleIdentities = `# Strata identities file: --auth.identities-file=/etc/strata/identities.yaml
# Reloaded when it (or a secret file it names) changes; a version that does not
# validate is logged and ignored, and the previous one stays in use.

# Accounts besides the server's default account (--account-id), which always
# exists. Quote ids so YAML keeps them as text.
accounts:
  - id: "111122223333"
    name: central-monitoring
  - id: "444455556666"
    name: team-payments
    # Optional access keys of the account's root user: allowed everything in
    # the account that no explicit Deny forbids.
    root_access_keys:
      - id: AKIAPAYMENTSROOT0001
        secret_file: secrets/payments-root   # relative to this file's directory

# Named identity policies, attached to users and roles by name. A document is
# JSON text or the same structure written as YAML.
policies:
  - name: AdministratorAccess
    document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'

  - name: PrometheusRemoteWrite
    document:
      Version: "2012-10-17"
      Statement:
        - Sid: RemoteWrite
          Effect: Allow
          Action: aps:RemoteWrite
          Resource: arn:aws:aps:*:*:workspace/*

  - name: PrometheusQuery
    document: |
      {
        "Version": "2012-10-17",
        "Statement": [{
          "Effect": "Allow",
          "Action": ["aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata"],
          "Resource": "*"
        }, {
          "Effect": "Allow",
          "Action": ["aps:ListWorkspaces", "aps:DescribeWorkspace"],
          "Resource": "*"
        }]
      }

users:
  # arn:aws:iam::000000000000:user/ops (the default account)
  - name: ops
    access_keys:
      - id: AKIAOPSADMIN00000001
        secret_file: /run/secrets/strata-ops   # keeps the secret out of this file
    policies: [AdministratorAccess]

  # A Prometheus server of team-payments writing to its own workspaces only.
  - name: prometheus
    account: "444455556666"
    access_keys:
      - id: AKIAPAYMENTSPROM0001
        secret: "kq3J+ZgA7x/2Vf8pN4mT9sRw1Yh5Lc0EdUb6XoQi"
      # Rotation: add the new key, move clients over, then remove the old one.
      - id: AKIAPAYMENTSPROM0002
        secret_file: secrets/payments-prometheus
    policies: [PrometheusRemoteWrite]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Sid: OnlyFromTheClusterNetwork
            Effect: Deny
            Action: "aps:*"
            Resource: "*"
            Condition:
              NotIpAddress: {"aws:SourceIp": ["10.0.0.0/8", "fd00::/8"]}

  # Grafana in the central account: reads any workspace tagged team=sre.
  - name: grafana
    account: "111122223333"
    access_keys:
      - id: AKIACENTRALGRAFANA01
        secret_file: secrets/central-grafana
    inline_policies:
      - '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
          "Action": ["aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata"],
          "Resource": "*", "Condition": {"StringEquals": {"aws:ResourceTag/team": "sre"}}}]}'

# Roles, assumed through Strata's STS (AWS_ENDPOINT_URL_STS=<strata url>): with
# AssumeRole by users of trusted accounts, or with AssumeRoleWithWebIdentity by
# workloads holding an OIDC token (IRSA-style).
roles:
  # team-payments' Prometheus servers write to the central account's workspaces
  # through this role; the external id guards against the confused deputy.
  - name: central-writer
    account: "111122223333"
    trust_policy: |
      {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "payments-to-central"}}}]}
    policies: [PrometheusRemoteWrite]
    max_session_duration: 4h     # DurationSeconds up to 4 hours (1h when absent, at most 12h)
    tags: {team: payments}       # aws:PrincipalTag/team of its sessions

  # Pods of the monitoring namespace's prometheus service account, with their
  # projected service account token (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE).
  - name: cluster-prometheus
    trust_policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Principal: {Federated: "arn:aws:iam::000000000000:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"}
          Action: sts:AssumeRoleWithWebIdentity
          Condition:
            StringEquals:
              "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE:sub": system:serviceaccount:monitoring:prometheus
              "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE:aud": sts.amazonaws.com
    policies: [PrometheusRemoteWrite]
    # Revokes the sessions issued before this time, as IAM's "Revoke active sessions".
    revoke_sessions_issued_before: 2026-12-01T00:00:00Z

# OIDC identity providers, as IAM's CreateOpenIDConnectProvider declares them.
oidc_providers:
  - url: https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE  # the tokens' iss
    client_ids: [sts.amazonaws.com]
    # Where the signing keys are: jwks_file, jwks_url, or (neither) the issuer's
    # /.well-known/openid-configuration. A private IdP's TLS certificate is trusted
    # through ca_file, or pinned by thumbprints (SHA-1 of a certificate of its chain).
    jwks_file: keys/cluster-jwks.json
`

func exampleReadFile(name string) ([]byte, error) {
	secrets := map[string]string{
		"/etc/strata/secrets/payments-root":       "paymentsRootSECRET/0000000001\n",
		"/run/secrets/strata-ops":                 "opsSECRET/00000000000000001\n",
		"/etc/strata/secrets/payments-prometheus": "paymentsPromSECRET/000000002",
		"/etc/strata/secrets/central-grafana":     "grafanaSECRET/0000000000001\r\n",
	}
	if s, ok := secrets[name]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func TestExampleIdentities(t *testing.T) {
	ids, err := ParseIdentities([]byte(exampleIdentities), ParseOptions{
		DefaultAccount: "000000000000",
		Dir:            "/etc/strata",
		ReadFile:       exampleReadFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids.NumAccessKeys() != 5 {
		t.Errorf("%d access keys, want 5", ids.NumAccessKeys())
	}
	for id, want := range map[string]struct{ arn, secret string }{
		"AKIAPAYMENTSROOT0001": {"arn:aws:iam::444455556666:root", "paymentsRootSECRET/0000000001"},
		"AKIAOPSADMIN00000001": {"arn:aws:iam::000000000000:user/ops", "opsSECRET/00000000000000001"},
		"AKIAPAYMENTSPROM0001": {"arn:aws:iam::444455556666:user/prometheus", "kq3J+ZgA7x/2Vf8pN4mT9sRw1Yh5Lc0EdUb6XoQi"},
		"AKIAPAYMENTSPROM0002": {"arn:aws:iam::444455556666:user/prometheus", "paymentsPromSECRET/000000002"},
		"AKIACENTRALGRAFANA01": {"arn:aws:iam::111122223333:user/grafana", "grafanaSECRET/0000000000001"},
	} {
		e, ok := ids.keys[id]
		if !ok {
			t.Errorf("no key %s", id)
			continue
		}
		if e.principal.ARN != want.arn || e.secret != want.secret {
			t.Errorf("%s: %s with secret of %d bytes", id, e.principal.ARN, len(e.secret))
		}
	}
	if a, ok := ids.Account("000000000000"); !ok || a.Name != "default" {
		t.Errorf("default account %+v", a)
	}
	if a, ok := ids.Account("444455556666"); !ok || a.Name != "team-payments" {
		t.Errorf("account %+v", a)
	}
	prom, ok := ids.User("arn:aws:iam::444455556666:user/prometheus")
	if !ok || len(prom.Policies) != 2 || prom.PolicyNames[0] != "PrometheusRemoteWrite" || prom.PolicyNames[1] != "prometheus/inline-0" {
		t.Fatalf("prometheus user %+v", prom)
	}
	if named, _ := ids.Policy("PrometheusRemoteWrite"); prom.Policies[0] != named {
		t.Error("a named policy is not shared")
	}
	role, ok := ids.Role("arn:aws:iam::111122223333:role/central-writer")
	if !ok || role.TrustPolicy == nil || len(role.Policies) != 1 || !strings.Contains(string(role.TrustPolicyJSON), "sts:AssumeRole") ||
		role.MaxSessionDuration != 4*time.Hour || role.Tags["team"] != "payments" {
		t.Fatalf("role %+v", role)
	}
	// The trust policy says who may assume the role (STS asks it), here with the
	// external id.
	assume := func(caller, externalID string) policy.Decision {
		p, err := policy.ParsePrincipal(caller)
		if err != nil {
			t.Fatal(err)
		}
		ctx := policy.Context{}
		if externalID != "" {
			ctx["sts:ExternalId"] = []string{externalID}
		}
		return policy.Evaluate(nil, role.TrustPolicy, policy.Request{Principal: p, Action: "sts:AssumeRole", Resource: role.ARN, Context: ctx, RequireResourceGrant: true})
	}
	if d := assume("arn:aws:iam::444455556666:root", "payments-to-central"); d != policy.Allow {
		t.Errorf("trusted account root: %v", d)
	}
	if d := assume("arn:aws:iam::444455556666:root", ""); d != policy.ImplicitDeny {
		t.Errorf("trusted account root without the external id: %v", d)
	}
	if d := assume("arn:aws:iam::000000000000:root", "payments-to-central"); d != policy.ImplicitDeny {
		t.Errorf("untrusted account root: %v", d)
	}
	if irsa, ok := ids.Role("arn:aws:iam::000000000000:role/cluster-prometheus"); !ok || irsa.RevokeBefore.IsZero() ||
		irsa.PolicyNames[len(irsa.PolicyNames)-1] != RevokePolicyName {
		t.Errorf("cluster-prometheus role %+v", irsa)
	}
	if provs := ids.OIDCProviders("000000000000"); len(provs) != 1 || provs["https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"].JWKSFile != "/etc/strata/keys/cluster-jwks.json" {
		t.Errorf("providers %+v", provs)
	}

	// The policies mean what the comments say.
	ws := "arn:aws:aps:us-east-1:444455556666:workspace/ws-1"
	decide := func(p *Principal, action, resource, ip string, tags map[string]string) policy.Decision {
		ctx := policy.Context{policy.KeySourceIP: {ip}}
		for k, v := range tags {
			ctx[policy.KeyResourceTagPrefix+k] = []string{v}
		}
		return policy.Evaluate(p.Policies, nil, policy.Request{Principal: p.pp, Action: action, Resource: resource, Context: ctx})
	}
	if d := decide(prom, "aps:RemoteWrite", ws, "10.1.2.3", nil); d != policy.Allow {
		t.Errorf("prometheus writes from the cluster: %v", d)
	}
	if d := decide(prom, "aps:RemoteWrite", ws, "192.0.2.1", nil); d != policy.ExplicitDeny {
		t.Errorf("prometheus writes from elsewhere: %v", d)
	}
	if d := decide(prom, "aps:QueryMetrics", ws, "10.1.2.3", nil); d != policy.ImplicitDeny {
		t.Errorf("prometheus queries: %v", d)
	}
	grafana, _ := ids.User("arn:aws:iam::111122223333:user/grafana")
	other := "arn:aws:aps:us-east-1:111122223333:workspace/ws-2"
	if d := decide(grafana, "aps:QueryMetrics", other, "10.1.2.3", map[string]string{"team": "sre"}); d != policy.Allow {
		t.Errorf("grafana on an sre workspace: %v", d)
	}
	if d := decide(grafana, "aps:QueryMetrics", other, "10.1.2.3", map[string]string{"team": "web"}); d != policy.ImplicitDeny {
		t.Errorf("grafana on another workspace: %v", d)
	}
}

// A YAML-structured document keeps its scalars' spelling: an unquoted
// 2012-10-17 stays a string, numbers and booleans stay JSON scalars.
func TestPolicyDocumentForms(t *testing.T) {
	const file = `
users:
  - name: u
    access_keys: [{id: AKIDDOCFORMS0000001, secret: "docformsSECRET/+00000001"}]
    inline_policies:
      - Version: 2012-10-17
        Statement:
          - Effect: Allow
            Action: [aps:QueryMetrics]
            Resource: "*"
            Condition:
              Bool: {aws:SecureTransport: true}
              NumericLessThan: {aws:EpochTime: 4102444800}
              Null: {aws:TokenIssueTime: "true"}
      - '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "aps:GetLabels", "Resource": "*"}}'
`
	ids, err := ParseIdentities([]byte(file), ParseOptions{DefaultAccount: acctA})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := ids.User("arn:aws:iam::111111111111:user/u")
	got := string(u.Policies[0].JSON())
	want := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["aps:QueryMetrics"],"Resource":"*",` +
		`"Condition":{"Bool":{"aws:SecureTransport":true},"NumericLessThan":{"aws:EpochTime":4102444800},"Null":{"aws:TokenIssueTime":"true"}}}]}`
	if got != want {
		t.Errorf("document\n %s\nwant\n %s", got, want)
	}
	req := policy.Request{Principal: u.pp, Action: "aps:QueryMetrics", Resource: "*",
		Context: policy.Context{policy.KeySecureTransport: {"true"}}, Time: time.Unix(1700000000, 0)}
	if d := policy.Evaluate(u.Policies, nil, req); d != policy.Allow {
		t.Errorf("decision %v", d)
	}
}

func TestIdentitiesValidation(t *testing.T) {
	const key = `{id: AKIDVALIDATION00001, secret: "validationSECRET/+000001"}`
	const user = "users:\n  - name: u\n    access_keys: [" + key + "]\n"
	root := &Credential{AccessKeyID: "AKIDENVROOT00000001", SecretAccessKey: "envrootSECRET/+000000001"}
	tests := []struct {
		name, file string
		wantErr    string
	}{
		{"not YAML", "users: [", "parsing identities file"},
		{"unknown field", "users:\n  - name: u\n    acces_keys: []\n", "field acces_keys not found"},
		{"two documents", user + "---\n" + user, "more than one YAML document"},
		{"account id not 12 digits", "accounts: [{id: \"12345\"}]\n", `id "12345" is not a 12-digit account id`},
		{"account id with letters", "accounts: [{id: \"12345678901a\"}]\n", "not a 12-digit account id"},
		{"account listed twice", "accounts: [{id: \"222222222222\"}, {id: \"222222222222\"}]\n", "already listed at accounts[0]"},
		{"account name too long", "accounts: [{id: \"222222222222\", name: " + strings.Repeat("x", 65) + "}]\n", "longer than 64"},
		{"user in an unlisted account", "users:\n  - name: u\n    account: \"333333333333\"\n    access_keys: [" + key + "]\n", "account 333333333333 is not listed"},
		{"user account malformed", "users:\n  - name: u\n    account: \"33\"\n    access_keys: [" + key + "]\n", `account "33" is not a 12-digit`},
		{"user name invalid", "users:\n  - name: \"a b\"\n    access_keys: [" + key + "]\n", `name "a b" must be 1-64`},
		{"user name empty", "users:\n  - access_keys: [" + key + "]\n", `name "" must be 1-64`},
		{"user twice", user + "  - name: u\n    access_keys: [{id: AKIDVALIDATION00002, secret: \"validationSECRET/+000002\"}]\n", "already defined at users[0]"},
		{"user without keys", "users: [{name: u}]\n", "has no access_keys"},
		{"key id too short", "users:\n  - name: u\n    access_keys: [{id: AKIDSHORT, secret: \"validationSECRET/+000001\"}]\n", "16 to 128 characters long, not 9"},
		{"key id too long", "users:\n  - name: u\n    access_keys: [{id: " + strings.Repeat("A", 129) + ", secret: \"validationSECRET/+000001\"}]\n", "not 129"},
		{"key id bad characters", "users:\n  - name: u\n    access_keys: [{id: AKID/VALIDATION001, secret: \"validationSECRET/+000001\"}]\n", "only letters, digits and '_'"},
		{"secret too short", "users:\n  - name: u\n    access_keys: [{id: AKIDVALIDATION00001, secret: short}]\n", "at least 16 characters"},
		{"secret with whitespace", "users:\n  - name: u\n    access_keys: [{id: AKIDVALIDATION00001, secret: \"validation SECRET/+000001\"}]\n", "whitespace"},
		{"secret and secret_file", "users:\n  - name: u\n    access_keys: [{id: AKIDVALIDATION00001, secret: \"validationSECRET/+000001\", secret_file: x}]\n", "not both"},
		{"no secret", "users:\n  - name: u\n    access_keys: [{id: AKIDVALIDATION00001}]\n", "set secret or secret_file"},
		{"secret_file missing", "users:\n  - name: u\n    access_keys: [{id: AKIDVALIDATION00001, secret_file: nope.key}]\n", "reading secret_file"},
		{"secret_file too short", "users:\n  - name: u\n    access_keys: [{id: AKIDVALIDATION00001, secret_file: short.key}]\n", "at least 16 characters"},
		{"duplicate key id in a user", "users:\n  - name: u\n    access_keys: [" + key + ", " + key + "]\n", "already used by users[0] (u): access_keys[0]"},
		{"duplicate key id across users", user + "  - name: v\n    access_keys: [" + key + "]\n", "already used by users[0] (u): access_keys[0]"},
		{"duplicate key id: root key and user", "accounts:\n  - id: \"222222222222\"\n    root_access_keys: [" + key + "]\n" + user, "already used by accounts[0] (222222222222): root_access_keys[0]"},
		{"duplicate key id: env root", "users:\n  - name: u\n    access_keys: [{id: AKIDENVROOT00000001, secret: \"validationSECRET/+000001\"}]\n", "already used by the root key from " + EnvRootAccessKeyID},
		{"unknown named policy", user + "    policies: [Nope]\n", `no policy named "Nope" is defined`},
		{"named policy attached twice", "policies:\n  - {name: P, document: '{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"*\", \"Resource\": \"*\"}}'}\n" + user + "    policies: [P, P]\n", "attached twice"},
		{"policy name invalid", "policies:\n  - {name: \"a b\", document: '{}'}\n", `name "a b" must be 1-128`},
		{"policy defined twice", "policies:\n  - {name: P, document: '{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"*\", \"Resource\": \"*\"}}'}\n  - {name: P, document: '{}'}\n", "already defined at policies[0]"},
		{"policy document empty", "policies:\n  - {name: P}\n", "document: is empty"},
		{"policy not JSON", "policies:\n  - {name: P, document: 'Allow everything'}\n", "invalid JSON"},
		{"policy bad effect", "policies:\n  - {name: P, document: '{\"Statement\": {\"Effect\": \"Permit\", \"Action\": \"*\", \"Resource\": \"*\"}}'}\n", "Effect"},
		{"identity policy with a Principal", user + "    inline_policies:\n      - '{\"Statement\": {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"*\", \"Resource\": \"*\"}}'\n", "inline_policies[0]"},
		{"policy document a list", user + "    inline_policies:\n      - [a, b]\n", "must be a JSON string or a YAML mapping"},
		{"role without trust policy", "roles: [{name: r}]\n", "trust_policy is required"},
		{"role trust policy without Principal", "roles:\n  - name: r\n    trust_policy: '{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"sts:AssumeRole\"}}'\n", "trust_policy"},
		{"role twice", "roles:\n  - {name: r, trust_policy: '{\"Statement\": {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"sts:AssumeRole\"}}'}\n" +
			"  - {name: r, trust_policy: '{\"Statement\": {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"sts:AssumeRole\"}}'}\n", "already defined at roles[0]"},
		{"role trust policy with a Resource", "roles:\n  - name: r\n    trust_policy: '{\"Statement\": {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"sts:AssumeRole\", \"Resource\": \"*\"}}'\n", "not allowed in a trust policy"},
		{"role trust policy not JSON", "roles:\n  - name: r\n    trust_policy: 'trust me'\n", "invalid JSON"},
		{"role in an unlisted account", "roles: [{name: r, account: \"333333333333\"}]\n", "not listed"},
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "short.key"), "short\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseIdentities([]byte(tc.file), ParseOptions{DefaultAccount: acctA, Root: root, Dir: dir})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q lacks %q", err, tc.wantErr)
			}
			for _, secret := range []string{"validationSECRET", "envrootSECRET"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error reveals a secret: %q", err)
				}
			}
		})
	}
	// Valid pieces of the cases above do parse, so the failures are the
	// problems named, not something else.
	if _, err := ParseIdentities([]byte(user), ParseOptions{DefaultAccount: acctA, Root: root}); err != nil {
		t.Errorf("valid user: %v", err)
	}
	// All problems are reported at once.
	_, err := ParseIdentities([]byte("accounts: [{id: \"1\"}]\nusers: [{name: u}]\nroles: [{name: r}]\n"), ParseOptions{DefaultAccount: acctA})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Errorf("want 3 problems, got %v", err)
	}
}

// An alias bomb in a YAML-written policy fails fast instead of expanding.
func TestPolicyDocumentAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("policies:\n  - name: P\n    document:\n      a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		prev := "*a" + strconv.Itoa(i-1)
		b.WriteString("      a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	start := time.Now()
	_, err := ParseIdentities([]byte(b.String()), ParseOptions{DefaultAccount: acctA})
	if err == nil || !strings.Contains(err.Error(), "too many aliases") {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// A value in the wrong place may be a secret: YAML errors do not quote it.
func TestYAMLErrorHidesValues(t *testing.T) {
	for _, file := range []string{
		"users:\n  - name: u\n    access_keys: \"hunter2hunter2hunter2\"\n",
		"users:\n  - name: u\n    access_keys: [{id: \"hunter2/hunter2/hunter2\", secret: \"validationSECRET/+000001\"}]\n",
	} {
		_, err := ParseIdentities([]byte(file), ParseOptions{DefaultAccount: acctA})
		if err == nil || strings.Contains(err.Error(), "hunter") {
			t.Fatalf("error %v", err)
		}
	}
}

func TestDefaultAccountOnly(t *testing.T) {
	ids, err := ParseIdentities(nil, ParseOptions{DefaultAccount: acctA, Root: &Credential{AccessKeyID: "AKIDENVROOT00000001", SecretAccessKey: "envrootSECRET/+000000001"}})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := ids.keys["AKIDENVROOT00000001"]
	if !ok || e.principal.ARN != "arn:aws:iam::111111111111:root" || !e.principal.IsRoot() {
		t.Fatalf("root %+v", e.principal)
	}
	if _, err := ParseIdentities(nil, ParseOptions{DefaultAccount: "x"}); err == nil {
		t.Error("bad default account accepted")
	}
}

// reloadFixture is an Auth over an identities file in a temporary directory,
// reloaded by hand.
type reloadFixture struct {
	t    *testing.T
	dir  string
	file string
	auth *Auth
	reg  *prometheus.Registry
	logs *syncBuffer
}

func newReloadFixture(t *testing.T, content string, period time.Duration) *reloadFixture {
	f := &reloadFixture{t: t, dir: t.TempDir(), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	f.file = filepath.Join(f.dir, "identities.yaml")
	writeFile(t, f.file, content)
	a, err := New(Config{IdentitiesFile: f.file, IdentitiesReloadPeriod: period}, Env{Region: testRegion, AccountID: acctA, Getenv: func(string) string { return "" }},
		nil, slog.New(slog.NewTextHandler(f.logs, nil)), f.reg)
	if err != nil {
		t.Fatal(err)
	}
	f.auth = a
	return f
}

func (f *reloadFixture) has(id string) bool {
	_, ok, _ := f.auth.Store().LookupCredential(context.Background(), id)
	return ok
}

func (f *reloadFixture) secret(id string) string {
	c, _, _ := f.auth.Store().LookupCredential(context.Background(), id)
	return c.SecretAccessKey
}

func userYAML(name, keyID, secret string) string {
	return "  - name: " + name + "\n    access_keys: [{id: " + keyID + ", secret: \"" + secret + "\"}]\n"
}

func TestIdentitiesReload(t *testing.T) {
	one := "users:\n" + userYAML("one", "AKIDRELOADONE000001", "reloadOneSECRET/+00000001")
	two := one + userYAML("two", "AKIDRELOADTWO000001", "reloadTwoSECRET/+00000001")
	f := newReloadFixture(t, one, 0)
	loads := func(outcome string) float64 {
		return metricValue(t, f.reg, "strata_auth_identities_loads_total", "outcome", outcome)
	}
	lastOK := func() float64 { return metricValue(t, f.reg, "strata_auth_identities_last_reload_successful") }
	if !f.has("AKIDRELOADONE000001") || f.has("AKIDRELOADTWO000001") || loads("success") != 1 || lastOK() != 1 {
		t.Fatal("initial load")
	}

	// Unchanged: nothing happens.
	if err := f.auth.Store().Reload(); err != nil || loads("success") != 1 {
		t.Fatalf("unchanged reload: %v, %v loads", err, loads("success"))
	}
	// Touched but unchanged: the hash says so.
	bumpMtime(t, f.file)
	if err := f.auth.Store().Reload(); err != nil || loads("success") != 1 {
		t.Fatalf("touched reload: %v, %v loads", err, loads("success"))
	}

	writeFile(t, f.file, two)
	if err := f.auth.Store().Reload(); err != nil {
		t.Fatal(err)
	}
	if !f.has("AKIDRELOADTWO000001") || loads("success") != 2 {
		t.Fatal("change not loaded")
	}

	// A file that does not parse keeps the last good one and says why.
	writeFile(t, f.file, two+"  - name: [broken\n")
	err := f.auth.Store().Reload()
	if err == nil {
		t.Fatal("broken file loaded")
	}
	if !f.has("AKIDRELOADTWO000001") || lastOK() != 0 || loads("failure") != 1 {
		t.Fatalf("after a bad file: has=%v lastOK=%v failures=%v", f.has("AKIDRELOADTWO000001"), lastOK(), loads("failure"))
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "keeping the last good version") || !strings.Contains(logs, "parsing identities file") {
		t.Errorf("log does not say why:\n%s", logs)
	}
	// The same bad file again: no new failure, no new log line.
	bumpMtime(t, f.file)
	if err := f.auth.Store().Reload(); err == nil || loads("failure") != 1 {
		t.Errorf("re-read of the same bad file: %v, %v failures", err, loads("failure"))
	}
	if n := strings.Count(f.logs.String(), "keeping the last good version"); n != 1 {
		t.Errorf("%d failure log lines, want 1", n)
	}

	// A file that parses but does not validate, likewise.
	writeFile(t, f.file, two+userYAML("three", "AKIDRELOADONE000001", "reloadThreeSECRET/+000001"))
	err = f.auth.Store().Reload()
	if err == nil || !strings.Contains(err.Error(), "already used by users[0] (one)") || loads("failure") != 2 {
		t.Fatalf("duplicate key: %v", err)
	}
	if f.secret("AKIDRELOADONE000001") != "reloadOneSECRET/+00000001" {
		t.Error("the invalid file's secret took effect")
	}
	if strings.Contains(f.logs.String(), "SECRET") {
		t.Errorf("a secret reached the log:\n%s", f.logs.String())
	}

	// A deleted file, likewise.
	if err := os.Remove(f.file); err != nil {
		t.Fatal(err)
	}
	if err := f.auth.Store().Reload(); err == nil || !f.has("AKIDRELOADONE000001") {
		t.Fatalf("deleted file: %v", err)
	}

	// Fixed: loaded, and the gauge says so.
	writeFile(t, f.file, one)
	if err := f.auth.Store().Reload(); err != nil {
		t.Fatal(err)
	}
	if f.has("AKIDRELOADTWO000001") || lastOK() != 1 || loads("success") != 3 {
		t.Fatal("fixed file not loaded")
	}
}

// A changed secret file is a changed identity.
func TestSecretFileReload(t *testing.T) {
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "k.secret")
	writeFile(t, secretPath, "firstSECRETvalue/+00000001\n")
	f := newReloadFixture(t, "users:\n  - name: u\n    access_keys: [{id: AKIDSECRETFILE00001, secret_file: "+secretPath+"}]\n", 0)
	if got := f.secret("AKIDSECRETFILE00001"); got != "firstSECRETvalue/+00000001" {
		t.Fatalf("secret %q", got)
	}
	writeFile(t, secretPath, "secondSECRETvalue/+0000001\n")
	if err := f.auth.Store().Reload(); err != nil {
		t.Fatal(err)
	}
	if got := f.secret("AKIDSECRETFILE00001"); got != "secondSECRETvalue/+0000001" {
		t.Fatalf("secret after rotation %q", got)
	}
	// A secret file that goes away keeps the last good version.
	if err := os.Remove(secretPath); err != nil {
		t.Fatal(err)
	}
	err := f.auth.Store().Reload()
	if err == nil || !strings.Contains(err.Error(), "reading secret_file") {
		t.Fatalf("missing secret file: %v", err)
	}
	if got := f.secret("AKIDSECRETFILE00001"); got != "secondSECRETvalue/+0000001" {
		t.Fatal("lost the last good secret")
	}
	// It comes back: loaded.
	writeFile(t, secretPath, "thirdSECRETvalue/+00000001")
	if err := f.auth.Store().Reload(); err != nil {
		t.Fatal(err)
	}
	if got := f.secret("AKIDSECRETFILE00001"); got != "thirdSECRETvalue/+00000001" {
		t.Fatalf("secret %q", got)
	}
}

// Run notices a change on its own.
func TestIdentitiesReloadLoop(t *testing.T) {
	f := newReloadFixture(t, "users:\n"+userYAML("one", "AKIDRELOADONE000001", "reloadOneSECRET/+00000001"), 10*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := f.auth.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	writeFile(t, f.file, "users:\n"+userYAML("two", "AKIDRELOADTWO000001", "reloadTwoSECRET/+00000001"))
	testutil.Eventually(t, 10*time.Second, "the reload loop to pick up the change", func() bool {
		return f.has("AKIDRELOADTWO000001") && !f.has("AKIDRELOADONE000001")
	})
}

// A file that does not load at start is an error: there is nothing to keep.
func TestIdentitiesBadAtStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "identities.yaml")
	writeFile(t, file, "users: [{name: u}]\n")
	_, err := New(Config{IdentitiesFile: file}, Env{Region: testRegion, AccountID: acctA, Getenv: func(string) string { return "" }}, nil, nil, prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "has no access_keys") {
		t.Fatalf("error %v", err)
	}
	_, err = New(Config{IdentitiesFile: filepath.Join(dir, "missing.yaml")}, Env{Region: testRegion, AccountID: acctA, Getenv: func(string) string { return "" }}, nil, nil, prometheus.NewRegistry())
	if err == nil {
		t.Fatal("missing file accepted")
	}
}
