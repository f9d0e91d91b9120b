package session

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, keySize) }

func TestSealOpen(t *testing.T) {
	r, err := NewRing(key(1))
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{Kind: KindRole, Secret: "secret", Issued: 1, Expires: 2, Principal: "arn:aws:iam::111122223333:role/r",
		Name: "s", Tags: map[string]string{"team": "blue"}, Policy: `{"Version":"2012-10-17"}`}
	tok, err := r.Seal("ASIAAAAAAAAAAAAAAAAA", s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Open("ASIAAAAAAAAAAAAAAAAA", tok)
	if err != nil || got.Principal != s.Principal || got.Tags["team"] != "blue" || got.Secret != "secret" || got.Policy != s.Policy {
		t.Fatalf("open: %+v %v", got, err)
	}
	if strings.Contains(tok, "secret") || strings.Contains(tok, "blue") {
		t.Fatal("the token shows its content")
	}
	// Bound to its access key ID: replaying the token with another key fails.
	if _, err := r.Open("ASIABBBBBBBBBBBBBBBB", tok); err != ErrInvalid {
		t.Fatalf("other access key: %v", err)
	}
	// Any altered character fails.
	for i := len(tokenPrefix); i < len(tok); i += 7 {
		b := []byte(tok)
		b[i] ^= 1
		if _, err := r.Open("ASIAAAAAAAAAAAAAAAAA", string(b)); err != ErrInvalid {
			t.Fatalf("token altered at %d opened: %v", i, err)
		}
	}
	// Another server's key cannot open it.
	other, _ := NewRing(key(2))
	if _, err := other.Open("ASIAAAAAAAAAAAAAAAAA", tok); err != ErrInvalid {
		t.Fatalf("other ring: %v", err)
	}
	for _, junk := range []string{"", "STRATA1", "STRATA1!!!", "FQoGZXIvYXdzE", tokenPrefix + strings.Repeat("A", 20000)} {
		if _, err := r.Open("ASIAAAAAAAAAAAAAAAAA", junk); err != ErrInvalid {
			t.Fatalf("%.20q: %v", junk, err)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	old, _ := NewRing(key(1))
	tok, err := old.Seal("ASIAAAAAAAAAAAAAAAAA", &Session{Kind: KindUser, Principal: "arn:aws:iam::111122223333:user/u"})
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := NewRing(key(2), key(1))
	if _, err := rotated.Open("ASIAAAAAAAAAAAAAAAAA", tok); err != nil {
		t.Fatalf("a token of the old key after rotation: %v", err)
	}
	tok2, _ := rotated.Seal("ASIAAAAAAAAAAAAAAAAA", &Session{Kind: KindUser})
	if _, err := old.Open("ASIAAAAAAAAAAAAAAAAA", tok2); err != ErrInvalid {
		t.Fatal("the new key seals, not the old one")
	}
	retired, _ := NewRing(key(2))
	if _, err := retired.Open("ASIAAAAAAAAAAAAAAAAA", tok); err != ErrInvalid {
		t.Fatal("a retired key still opens its tokens")
	}
}

func TestLoadOrCreateRing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", KeyFileName)
	if _, _, err := LoadOrCreateRing(path, false); err == nil {
		t.Fatal("a missing key file loaded without create")
	}
	r1, created, err := LoadOrCreateRing(path, true)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	r2, created, err := LoadOrCreateRing(path, true)
	if err != nil || created {
		t.Fatalf("reload: %v %v", created, err)
	}
	tok, _ := r1.Seal("ASIAAAAAAAAAAAAAAAAA", &Session{Kind: KindUser})
	if _, err := r2.Open("ASIAAAAAAAAAAAAAAAAA", tok); err != nil {
		t.Fatalf("a second load has other keys: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateRing(path, true); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("# only a comment\nnot-base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateRing(bad, true); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad key file: %v", err)
	}
}

func TestIDs(t *testing.T) {
	a, err := NewAccessKeyID()
	if err != nil || len(a) != 20 || !strings.HasPrefix(a, "ASIA") {
		t.Fatalf("access key id %q %v", a, err)
	}
	s, err := NewSecret()
	if err != nil || len(s) != 40 {
		t.Fatalf("secret %q %v", s, err)
	}
	u := UniqueID("AROA", "arn:aws:iam::111122223333:role/r")
	if len(u) != 21 || u != UniqueID("AROA", "arn:aws:iam::111122223333:role/r") || u == UniqueID("AROA", "arn:aws:iam::111122223333:role/q") {
		t.Fatalf("unique id %q", u)
	}
}

func FuzzOpen(f *testing.F) {
	r, _ := NewRing(key(1))
	tok, _ := r.Seal("ASIAAAAAAAAAAAAAAAAA", &Session{Kind: KindRole, Name: "n"})
	f.Add("ASIAAAAAAAAAAAAAAAAA", tok)
	f.Add("ASIAAAAAAAAAAAAAAAAA", "STRATA1AAAA")
	f.Fuzz(func(t *testing.T, id, token string) {
		// Only what was sealed opens: for its own access key, with its own content.
		s, err := r.Open(id, token)
		if err == nil && (s == nil || s.Name != "n" || id != "ASIAAAAAAAAAAAAAAAAA") {
			t.Fatalf("opened a token that was never sealed: %q for %q", token, id)
		}
	})
}
