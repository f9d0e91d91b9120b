package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables that name the root (admin) access key.
const (
	EnvRootAccessKeyID     = "STRATA_ROOT_ACCESS_KEY_ID"
	EnvRootSecretAccessKey = "STRATA_ROOT_SECRET_ACCESS_KEY"
)

// The generated root key lives in the data directory, in the AWS shared
// credentials file format under this profile.
const (
	RootCredentialsFile    = "root-credentials"
	RootCredentialsProfile = "strata"
)

// Credential is an access key pair. String never reveals the secret.
type Credential struct {
	AccessKeyID     string
	SecretAccessKey string
}

func (c Credential) String() string { return "access key " + c.AccessKeyID }

// GoString hides the secret from %#v too.
func (c Credential) GoString() string { return c.String() }

// RootFromEnv reads the root access key from the environment. ok is false when neither
// variable is set; setting only one of them is an error.
func RootFromEnv(getenv func(string) string) (c Credential, ok bool, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	id, secret := getenv(EnvRootAccessKeyID), getenv(EnvRootSecretAccessKey)
	switch {
	case id == "" && secret == "":
		return Credential{}, false, nil
	case id == "" || secret == "":
		return Credential{}, false, fmt.Errorf("set both %s and %s, or neither", EnvRootAccessKeyID, EnvRootSecretAccessKey)
	case len(id) < 16 || len(id) > 128:
		return Credential{}, false, fmt.Errorf("%s must be 16 to 128 characters long", EnvRootAccessKeyID)
	case !accessKeyRe.MatchString(id):
		return Credential{}, false, fmt.Errorf("%s may contain only letters, digits and '_'", EnvRootAccessKeyID)
	case len(secret) < 16:
		return Credential{}, false, errors.New(EnvRootSecretAccessKey + " must be at least 16 characters long")
	case checkSecret(secret) != "":
		return Credential{}, false, errors.New(EnvRootSecretAccessKey + " must not contain whitespace or control characters")
	}
	return Credential{AccessKeyID: id, SecretAccessKey: secret}, true, nil
}

// GenerateAccessKey returns a new random access key pair shaped like AWS's:
// the id is "AKIA" and 16 upper-case letters and digits, the secret 40
// characters of [A-Za-z0-9+/]. Both come from crypto/rand.
func GenerateAccessKey() (Credential, error) {
	const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	id, err := randomString(16, idAlphabet)
	if err != nil {
		return Credential{}, err
	}
	secret, err := randomString(40, secretAlphabet)
	if err != nil {
		return Credential{}, err
	}
	return Credential{AccessKeyID: "AKIA" + id, SecretAccessKey: secret}, nil
}

// randomString draws n characters uniformly from alphabet (at most 256
// characters), rejecting the bytes that would bias the draw.
func randomString(n int, alphabet string) (string, error) {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("reading random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// RootKeyFile is the root key kept in the data directory.
type RootKeyFile struct {
	Credential
	// Path is the absolute path of the file.
	Path string
	// Created is true when this call generated the key and wrote the file.
	Created bool
	// LooseMode is true when the file is readable or writable by its group. (A
	// file other users can read is refused: see LoadOrCreateRootKey.)
	LooseMode bool
}

// LoadOrCreateRootKey reads the root key from <dataDir>/root-credentials or,
// when the file does not exist, generates one and writes the file (mode 0600,
// written to a temporary file, synced and then linked or renamed into place,
// so a crash leaves either no file or a whole one). A file that exists but
// does not hold a valid key is an error: it is never overwritten. So is a file that
// every user of the machine can read or write: a secret others may have read is no
// secret, and starting with it would hide that.
func LoadOrCreateRootKey(dataDir string) (RootKeyFile, error) {
	if dataDir == "" {
		return RootKeyFile{}, errors.New("no data directory to keep the root key in")
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return RootKeyFile{}, fmt.Errorf("resolving data directory: %w", err)
	}
	path := filepath.Join(dir, RootCredentialsFile)
	if k, err := readRootKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return RootKeyFile{}, fmt.Errorf("creating data directory: %w", err)
	}
	c, err := GenerateAccessKey()
	if err != nil {
		return RootKeyFile{}, err
	}
	created, err := writeNewFile(path, rootKeyFileContent(c), 0o600)
	if err != nil {
		return RootKeyFile{}, fmt.Errorf("writing root key file: %w", err)
	}
	if !created {
		// Another process wrote it first: use that key.
		return readRootKey(path)
	}
	return RootKeyFile{Credential: c, Path: path, Created: true}, nil
}

func rootKeyFileContent(c Credential) []byte {
	var b bytes.Buffer
	b.WriteString("# Strata root access key: the root user (admin) of the server's default account.\n")
	b.WriteString("# Keep this file secret. Use it with AWS_SHARED_CREDENTIALS_FILE=<this file> AWS_PROFILE=" + RootCredentialsProfile + ".\n")
	b.WriteString("[" + RootCredentialsProfile + "]\n")
	b.WriteString("aws_access_key_id = " + c.AccessKeyID + "\n")
	b.WriteString("aws_secret_access_key = " + c.SecretAccessKey + "\n")
	return b.Bytes()
}

// readRootKey reads the root key file at path.
func readRootKey(path string) (RootKeyFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return RootKeyFile{}, fmt.Errorf("reading root key file: %w", err)
	}
	k, err := parseRootKey(data, path)
	if err != nil {
		return RootKeyFile{}, err
	}
	if err := CheckSecretFileMode(path); err != nil {
		return RootKeyFile{}, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o070 != 0 {
		k.LooseMode = true
	}
	return k, nil
}

// CheckSecretFileMode refuses a file holding a secret that every user of the machine
// may read or write (mode o+r or o+w): chmod 600 it.
func CheckSecretFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o006 != 0 {
		return fmt.Errorf("%s holds a secret but every user can read or write it (mode %04o); chmod 600 it", path, perm)
	}
	return nil
}

// parseRootKey parses the [strata] profile of an AWS shared credentials
// file's content. Errors never quote the content.
func parseRootKey(data []byte, path string) (RootKeyFile, error) {
	k := RootKeyFile{Path: path}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[' && line[len(line)-1] == ']':
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		case section != RootCredentialsProfile:
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(name) {
		case "aws_access_key_id":
			k.AccessKeyID = strings.TrimSpace(value)
		case "aws_secret_access_key":
			k.SecretAccessKey = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return RootKeyFile{}, fmt.Errorf("reading root key file %s: %w", path, err)
	}
	switch {
	case k.AccessKeyID == "" || k.SecretAccessKey == "":
		return RootKeyFile{}, fmt.Errorf("root key file %s has no [%s] profile with aws_access_key_id and aws_secret_access_key; fix or remove it", path, RootCredentialsProfile)
	case checkAccessKeyID(k.AccessKeyID) != "":
		return RootKeyFile{}, fmt.Errorf("root key file %s: aws_access_key_id %s", path, checkAccessKeyID(k.AccessKeyID))
	case checkSecret(k.SecretAccessKey) != "":
		return RootKeyFile{}, fmt.Errorf("root key file %s: %s", path, checkSecret(k.SecretAccessKey))
	}
	return k, nil
}

// writeNewFile writes data to path unless path exists; created is false when
// it did. The content is written to a temporary file in the same directory
// and synced first, so path never holds a partial file.
func writeNewFile(path string, data []byte, perm os.FileMode) (created bool, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return false, err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a link it is a second name; after a rename, gone
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// A hard link fails if path exists, so two processes starting at once
	// cannot overwrite each other's key. Where links are unsupported, rename.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		if err := os.Rename(tmpName, path); err != nil {
			return false, err
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable
		_ = d.Close()
	}
	return true, nil
}

// RootKeyInstructions is the text to show an operator for a root key kept in
// a file: where it is and how to use it. The secret is not in it: the export
// line reads it from the file.
func RootKeyInstructions(k RootKeyFile, account string) string {
	var b strings.Builder
	if k.Created {
		fmt.Fprintf(&b, "Generated a root access key for account %s (%s) and saved it to %s (mode 0600).\n", account, rootARN(account), k.Path)
	} else {
		fmt.Fprintf(&b, "Using the root access key of account %s (%s) saved in %s.\n", account, rootARN(account), k.Path)
	}
	q := shellQuote(k.Path)
	b.WriteString("To use it with the AWS CLI and SDKs:\n")
	fmt.Fprintf(&b, "  export AWS_ACCESS_KEY_ID=%s\n", k.AccessKeyID)
	fmt.Fprintf(&b, "  export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key *= *//p' %s)\n", q)
	fmt.Fprintf(&b, "or:\n  export AWS_SHARED_CREDENTIALS_FILE=%s AWS_PROFILE=%s\n", q, RootCredentialsProfile)
	return b.String()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
