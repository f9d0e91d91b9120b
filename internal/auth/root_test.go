package auth

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/amp"
)

func TestGenerateAccessKey(t *testing.T) {
	idRe := regexp.MustCompile(`^AKIA[A-Z0-9]{16}$`)
	secretRe := regexp.MustCompile(`^[A-Za-z0-9+/]{40}$`)
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		c, err := GenerateAccessKey()
		if err != nil {
			t.Fatal(err)
		}
		if !idRe.MatchString(c.AccessKeyID) || !secretRe.MatchString(c.SecretAccessKey) {
			t.Fatalf("key %s does not look like AWS's", c.AccessKeyID)
		}
		if checkAccessKeyID(c.AccessKeyID) != "" || checkSecret(c.SecretAccessKey) != "" {
			t.Fatal("generated key fails validation")
		}
		if seen[c.AccessKeyID] || seen[c.SecretAccessKey] {
			t.Fatal("repeated key material")
		}
		seen[c.AccessKeyID], seen[c.SecretAccessKey] = true, true
	}
	c, _ := GenerateAccessKey()
	for _, s := range []string{c.String(), c.GoString()} {
		if strings.Contains(s, c.SecretAccessKey) {
			t.Errorf("%q shows the secret", s)
		}
	}
}

func TestRootKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k, err := LoadOrCreateRootKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Created || k.Path != filepath.Join(dir, RootCredentialsFile) || k.LooseMode {
		t.Fatalf("first start: %+v", k)
	}
	fi, err := os.Stat(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(k.Path)
	if !strings.Contains(string(data), "[strata]\naws_access_key_id = "+k.AccessKeyID+"\naws_secret_access_key = "+k.SecretAccessKey+"\n") {
		t.Errorf("file content:\n%s", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the key file (no temporary files)", len(entries))
	}

	again, err := LoadOrCreateRootKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.Credential != k.Credential {
		t.Fatalf("restart generated a new key: %+v", again.AccessKeyID)
	}

	text := RootKeyInstructions(k, acctA)
	for _, want := range []string{k.Path, "export AWS_ACCESS_KEY_ID=" + k.AccessKeyID + "\n",
		"export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key *= *//p' " + k.Path + ")\n",
		"AWS_PROFILE=strata", "arn:aws:iam::111111111111:root", "Generated"} {
		if !strings.Contains(text, want) {
			t.Errorf("instructions lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, k.SecretAccessKey) {
		t.Fatalf("instructions contain the secret:\n%s", text)
	}
	if !strings.Contains(RootKeyInstructions(again, acctA), "Using the root access key") {
		t.Error("restart instructions")
	}

	// The export lines work in a POSIX shell.
	var exports string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "export AWS_ACCESS_KEY_ID=") || strings.HasPrefix(l, "export AWS_SECRET_ACCESS_KEY=") {
			exports += l + "\n"
		}
	}
	out, err := exec.Command("sh", "-c", exports+`printf '%s %s' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"`).Output()
	if err != nil {
		t.Fatalf("running the export lines: %v", err)
	}
	if string(out) != k.AccessKeyID+" "+k.SecretAccessKey {
		t.Error("the export lines do not yield the key")
	}
}

func TestRootKeyFileQuotedPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "it's data")
	k, err := LoadOrCreateRootKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	text := RootKeyInstructions(k, acctA)
	var line string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "AWS_SECRET_ACCESS_KEY=") {
			line = strings.TrimSpace(l)
		}
	}
	out, err := exec.Command("sh", "-c", line+`; printf '%s' "$AWS_SECRET_ACCESS_KEY"`).Output()
	if err != nil || string(out) != k.SecretAccessKey {
		t.Fatalf("export line %q does not work: %v", line, err)
	}
}

func TestRootKeyFileConcurrentStarts(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	keys := make([]RootKeyFile, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if keys[i], err = LoadOrCreateRootKey(dir); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	created := 0
	for _, k := range keys {
		if k.Credential != keys[0].Credential {
			t.Fatal("concurrent starts disagree on the root key")
		}
		if k.Created {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d starts claim to have created the key", created)
	}
}

func TestRootKeyFileInvalid(t *testing.T) {
	for name, content := range map[string]string{
		"empty":          "",
		"other profile":  "[default]\naws_access_key_id = AKIAAAAAAAAAAAAAAAAA\naws_secret_access_key = bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n",
		"short secret":   "[strata]\naws_access_key_id = AKIAAAAAAAAAAAAAAAAA\naws_secret_access_key = tooshort\n",
		"bad key id":     "[strata]\naws_access_key_id = AKIA/x\naws_secret_access_key = bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n",
		"missing secret": "[strata]\naws_access_key_id = AKIAAAAAAAAAAAAAAAAA\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, RootCredentialsFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateRootKey(dir)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "bbbbbbbb") || strings.Contains(err.Error(), "tooshort") {
				t.Errorf("error quotes the secret: %v", err)
			}
			if data, _ := os.ReadFile(path); string(data) != content {
				t.Error("an invalid key file was overwritten")
			}
		})
	}
}

func TestRootKeyFileLooseMode(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadOrCreateRootKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(k.Path, 0o640); err != nil {
		t.Fatal(err)
	}
	if k, err = LoadOrCreateRootKey(dir); err != nil || !k.LooseMode {
		t.Fatalf("group-readable mode not noticed: %+v %v", k.LooseMode, err)
	}
	// Readable by every user: refused, not merely warned about.
	if err := os.Chmod(k.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = LoadOrCreateRootKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable root key was used: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 && filepath.Clean(dir) != dir {
		t.Fatalf("data dir: %v %v", fi, err)
	}
}

// A data directory the root key creates is private.
func TestRootKeyDirectoryIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh")
	if _, err := LoadOrCreateRootKey(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Fatalf("data directory mode %04o, want 0700", perm)
	}
}

// Without an environment key or an identities file, the first start makes a
// root key; the AWS SDK reads the file it wrote and signs requests that pass,
// including a real AMP client call.
func TestGeneratedRootKeySignsRequests(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Env) { c.IdentitiesFile = "" })
	text := h.auth.RootKeyInstructions()
	path := filepath.Join(h.dir, "data", RootCredentialsFile)
	if !strings.Contains(text, path) {
		t.Fatalf("instructions %q do not name %s", text, path)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", path)
	t.Setenv("AWS_PROFILE", RootCredentialsProfile)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(h.dir, "no-config"))
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(testRegion))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "AKIA") || !strings.Contains(creds.Source, "SharedConfigCredentials") {
		t.Fatalf("credentials %s from %s", creds.AccessKeyID, creds.Source)
	}
	if strings.Contains(text, creds.SecretAccessKey) {
		t.Fatal("instructions contain the secret")
	}

	resp := h.do(h.sign(h.newRequest("GET", "/workspaces/ws-a", nil), creds, nil))
	if resp.status != 200 {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if p := h.last().principal; p.ARN != "arn:aws:iam::111111111111:root" || !p.IsRoot() {
		t.Fatalf("principal %v", p)
	}

	client := amp.NewFromConfig(cfg, func(o *amp.Options) { o.BaseEndpoint = aws.String(h.srv.URL) })
	out, err := client.ListWorkspaces(context.Background(), &amp.ListWorkspacesInput{})
	if err != nil {
		t.Fatalf("amp ListWorkspaces: %v", err)
	}
	if out.Workspaces == nil || h.last().principal.ARN != "arn:aws:iam::111111111111:root" {
		t.Fatalf("ListWorkspaces answered %+v", out)
	}
	cw, err := client.CreateWorkspace(context.Background(), &amp.CreateWorkspaceInput{Alias: aws.String("prod")})
	if err != nil {
		t.Fatalf("amp CreateWorkspace: %v", err)
	}
	if aws.ToString(cw.WorkspaceId) != "ws-new" || !strings.Contains(string(h.last().body), `"alias":"prod"`) {
		t.Fatalf("CreateWorkspace: %+v, handler read %s", cw, h.last().body)
	}
}

// The environment's root key wins, and no file is written.
func TestRootKeyFromEnv(t *testing.T) {
	env := map[string]string{EnvRootAccessKeyID: "AKIDENVROOT00000001", EnvRootSecretAccessKey: "envrootSECRET/+000000001"}
	h := newHarness(t, func(c *Config, e *Env) {
		c.IdentitiesFile = ""
		e.Getenv = func(k string) string { return env[k] }
	})
	if h.auth.RootKeyInstructions() != "" {
		t.Error("instructions for an environment key")
	}
	if _, err := os.Stat(filepath.Join(h.dir, "data", RootCredentialsFile)); !os.IsNotExist(err) {
		t.Errorf("root key file written: %v", err)
	}
	creds := aws.Credentials{AccessKeyID: env[EnvRootAccessKeyID], SecretAccessKey: env[EnvRootSecretAccessKey]}
	if resp := h.do(h.sign(h.newRequest("POST", "/workspaces/ws-a/api/v1/remote_write", []byte("x")), creds, []byte("x"))); resp.status != 200 {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if !strings.Contains(h.logs.String(), "AKIDENVROOT00000001") || strings.Contains(h.logs.String(), "envrootSECRET") {
		t.Errorf("logs:\n%s", h.logs.String())
	}
}

// With an identities file and no environment key there is no root key.
func TestNoRootKeyWithIdentitiesFile(t *testing.T) {
	h := newHarness(t)
	if h.auth.RootKeyInstructions() != "" {
		t.Error("instructions without a root key")
	}
	if _, err := os.Stat(filepath.Join(h.dir, "data")); !os.IsNotExist(err) {
		t.Errorf("data dir touched: %v", err)
	}
	if n := h.auth.Store().Identities().NumAccessKeys(); n != len(testKeys) {
		t.Errorf("%d keys, want %d", n, len(testKeys))
	}
}

func TestRootFromEnv(t *testing.T) {
	for _, tc := range []struct {
		id, secret string
		ok, err    bool
	}{
		{"", "", false, false},
		{"AKIDENVROOT00000001", "envrootSECRET/+000000001", true, false},
		{"AKIDENVROOT00000001", "", false, true},
		{"", "envrootSECRET/+000000001", false, true},
		{"AKIDSHORT", "envrootSECRET/+000000001", false, true},
		{"AKIDENVROOT/0000001", "envrootSECRET/+000000001", false, true},
		{"AKIDENVROOT00000001", "short", false, true},
		{"AKIDENVROOT00000001", "envroot SECRET/+000000001", false, true},
	} {
		env := map[string]string{EnvRootAccessKeyID: tc.id, EnvRootSecretAccessKey: tc.secret}
		c, ok, err := RootFromEnv(func(k string) string { return env[k] })
		if ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("%q/%q: ok=%v err=%v", tc.id, tc.secret, ok, err)
		}
		if err != nil && tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("error reveals the secret: %v", err)
		}
		if ok && (c.AccessKeyID != tc.id || c.SecretAccessKey != tc.secret) {
			t.Errorf("credential %v", c)
		}
	}
}
