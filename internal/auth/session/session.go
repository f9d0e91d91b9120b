// Package session encodes temporary credentials (the sessions STS issues) into their
// session tokens, so that any process holding the key ring can verify them without a
// table of issued sessions: the token is the session, sealed with AES-256-GCM and bound to
// its access key ID. Start from Ring (NewRing, LoadOrCreateRing) and its Seal and Open.
//
//	token = "STRATA1" base64url( keyID[4] | nonce[12] | AES-256-GCM(key, nonce, JSON(Session), aad = access key ID) )
//
// A token cannot be forged or altered without the key, nor replayed with another access
// key ID. Rotating keys: put a new key first in the key file and keep the old ones after
// it until the longest session they sealed has expired (12 hours at most).
package session

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kinds of session.
const (
	// KindRole: a role session (AssumeRole, AssumeRoleWithWebIdentity).
	KindRole = "role"
	// KindUser: a user's or root's own session (GetSessionToken).
	KindUser = "user"
)

// Session is what a session token carries. It names its principal by ARN; the
// principal's current policies are looked up when the token is used, so that a change to
// a role's policies applies to its sessions at once, as in IAM.
type Session struct {
	Kind string `json:"k"`
	// Secret is the secret access key of the session.
	Secret string `json:"s"`
	// Issued and Expires are Unix milliseconds.
	Issued  int64 `json:"i"`
	Expires int64 `json:"e"`
	// Principal is the role's ARN (KindRole) or the user's or root's (KindUser).
	Principal string `json:"p"`
	// Name is the role session name (KindRole).
	Name string `json:"n,omitempty"`
	// Policy is the inline session policy, PolicyNames the managed session policies
	// (names of the identities file's policies).
	Policy      string   `json:"sp,omitempty"`
	PolicyNames []string `json:"pa,omitempty"`
	// Tags are the session tags; Transitive the keys that pass on to a chained role.
	Tags       map[string]string `json:"t,omitempty"`
	Transitive []string          `json:"tt,omitempty"`
	// SourceIdentity is sts:SourceIdentity, kept along role chains.
	SourceIdentity string `json:"si,omitempty"`
	// Chained is true for a role session assumed with another session's credentials
	// (role chaining: at most an hour).
	Chained bool `json:"c,omitempty"`
	// Provider is the identity provider's ARN, for web identity sessions
	// (aws:FederatedProvider).
	Provider string `json:"fp,omitempty"`
}

// IssuedAt and ExpiresAt are Issued and Expires as times.
func (s *Session) IssuedAt() time.Time  { return time.UnixMilli(s.Issued).UTC() }
func (s *Session) ExpiresAt() time.Time { return time.UnixMilli(s.Expires).UTC() }

// tokenPrefix tells a Strata session token from anything else, and its version.
const tokenPrefix = "STRATA1"

const (
	keySize   = 32
	keyIDSize = 4
	nonceSize = 12
)

// ErrInvalid is what Open returns for a token it cannot open: not a token, sealed with a
// key not in the ring, altered, or bound to another access key ID.
var ErrInvalid = errors.New("session: invalid token")

// Ring holds the keys that seal and open session tokens: the first seals, all open. It
// is immutable and safe for concurrent use.
type Ring struct {
	keys []ringKey
}

type ringKey struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// NewRing builds a ring from 32-byte keys; the first seals.
func NewRing(keys ...[]byte) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: no key")
	}
	r := &Ring{}
	for i, k := range keys {
		if len(k) != keySize {
			return nil, fmt.Errorf("session: key %d is %d bytes, want %d", i+1, len(k), keySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k)
		var id [keyIDSize]byte
		copy(id[:], sum[:])
		r.keys = append(r.keys, ringKey{id: id, aead: aead})
	}
	return r, nil
}

// Seal returns the session token of s for accessKeyID.
func (r *Ring) Seal(accessKeyID string, s *Session) (string, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("session: encoding: %w", err)
	}
	k := &r.keys[0]
	buf := make([]byte, keyIDSize+nonceSize, keyIDSize+nonceSize+len(plain)+k.aead.Overhead())
	copy(buf, k.id[:])
	if _, err := rand.Read(buf[keyIDSize:]); err != nil {
		return "", fmt.Errorf("session: nonce: %w", err)
	}
	buf = k.aead.Seal(buf, buf[keyIDSize:keyIDSize+nonceSize], plain, []byte(accessKeyID))
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open returns the session sealed in token for accessKeyID, or ErrInvalid. It does not
// check expiry: the caller decides what an expired session means.
func (r *Ring) Open(accessKeyID, token string) (*Session, error) {
	enc, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(enc) > 16<<10 {
		return nil, ErrInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc) // one spelling per token
	if err != nil || len(raw) < keyIDSize+nonceSize {
		return nil, ErrInvalid
	}
	for i := range r.keys {
		k := &r.keys[i]
		if !bytes.Equal(k.id[:], raw[:keyIDSize]) {
			continue
		}
		plain, err := k.aead.Open(nil, raw[keyIDSize:keyIDSize+nonceSize], raw[keyIDSize+nonceSize:], []byte(accessKeyID))
		if err != nil {
			return nil, ErrInvalid
		}
		var s Session
		if err := json.Unmarshal(plain, &s); err != nil {
			return nil, ErrInvalid
		}
		return &s, nil
	}
	return nil, ErrInvalid
}

// KeyFileName is the key file LoadOrCreateRing keeps in the data directory.
const KeyFileName = "sts-keys"

// LoadOrCreateRing reads the key file at path: one base64 key (32 bytes) per line, the
// first sealing new tokens, '#' comments ignored. When the file does not exist and
// create is true it writes one with a new random key (mode 0600). A file that other
// users can read or write is refused. Every process that verifies the sessions of
// another must read the same keys.
func LoadOrCreateRing(path string, create bool) (*Ring, bool, error) {
	data, err := os.ReadFile(path)
	created := false
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		key := make([]byte, keySize)
		if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		content := "# Strata STS session token keys: the first seals new sessions, all verify. Keep secret.\n" +
			base64.StdEncoding.EncodeToString(key) + "\n"
		if err := writeNew(path, []byte(content)); err != nil {
			if !errors.Is(err, fs.ErrExist) {
				return nil, false, fmt.Errorf("writing STS key file: %w", err)
			}
		} else {
			created = true
		}
		if data, err = os.ReadFile(path); err != nil {
			return nil, false, fmt.Errorf("reading STS key file: %w", err)
		}
	case err != nil:
		return nil, false, fmt.Errorf("reading STS key file: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o006 != 0 {
		return nil, false, fmt.Errorf("STS key file %s is readable or writable by every user (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(k) != keySize {
			return nil, false, fmt.Errorf("STS key file %s, line %d: not a base64 key of %d bytes", path, n, keySize)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, false, fmt.Errorf("STS key file %s holds no key", path)
	}
	r, err := NewRing(keys...)
	return r, created, err
}

// writeNew writes data to path with mode 0600 unless path exists (fs.ErrExist): temp
// file, sync, then a hard link, so that two processes starting at once keep one key.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// NewAccessKeyID returns a random temporary access key ID shaped like AWS's: "ASIA" and
// 16 upper-case letters and digits.
func NewAccessKeyID() (string, error) {
	s, err := randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
	return "ASIA" + s, err
}

// NewSecret returns a random 40-character secret access key.
func NewSecret() (string, error) {
	return randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}

// randomString draws n characters uniformly from alphabet (a power-of-two size).
func randomString(n int, alphabet string) (string, error) {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	for i, b := range buf {
		buf[i] = alphabet[int(b)%len(alphabet)]
	}
	return string(buf), nil
}

// UniqueID returns a stable IAM-style unique ID for an ARN: prefix ("AIDA" users,
// "AROA" roles) and 17 base32 characters of its SHA-256.
func UniqueID(prefix, arn string) string {
	sum := sha256.Sum256([]byte(arn))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	v := binary.BigEndian.Uint64(sum[:8])
	w := binary.BigEndian.Uint64(sum[8:16])
	out := make([]byte, 17)
	for i := range out {
		if i < 12 {
			out[i] = alphabet[v&31]
			v >>= 5
		} else {
			out[i] = alphabet[w&31]
			w >>= 5
		}
	}
	return prefix + string(out)
}
