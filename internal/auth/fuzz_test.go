package auth

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseIdentities: any input is either a valid Identities or an error,
// never a panic, and errors never quote a secret.
func FuzzParseIdentities(f *testing.F) {
	f.Add(testIdentities)
	f.Add(exampleIdentities)
	f.Add("users:\n  - name: u\n    access_keys: [{id: AKIDFUZZ00000000001, secret: \"fuzzSECRETfuzzSECRET\"}]\n")
	f.Add("roles:\n  - name: r\n    trust_policy: {Statement: {Effect: Allow, Principal: '*', Action: 'sts:AssumeRole'}}\n")
	f.Add("policies: [{name: P, document: {Statement: [&a {Effect: Allow, Action: '*', Resource: '*'}, *a]}}]\n")
	f.Fuzz(func(t *testing.T, file string) {
		ids, err := ParseIdentities([]byte(file), ParseOptions{
			DefaultAccount: acctA,
			ReadFile:       func(string) ([]byte, error) { return nil, errors.New("no files while fuzzing") },
		})
		if err != nil {
			if ids != nil {
				t.Fatal("identities and an error")
			}
			// Only a marker that stands as a secret, and nowhere else, must stay out of errors:
			// the same text as a user name may be quoted.
			const marker = "fuzzSECRETfuzzSECRET"
			if strings.Count(file, marker) == 1 && strings.Contains(file, `secret: "`+marker+`"`) && strings.Contains(err.Error(), marker) {
				t.Fatalf("error quotes a secret: %v", err)
			}
			return
		}
		for id, e := range ids.keys {
			if checkAccessKeyID(id) != "" || checkSecret(e.secret) != "" || e.principal == nil {
				t.Fatalf("invalid key %q accepted", id)
			}
		}
	})
}

// FuzzParseRootKey: the root key file parser never panics and accepts only
// valid keys.
func FuzzParseRootKey(f *testing.F) {
	c, _ := GenerateAccessKey()
	f.Add(string(rootKeyFileContent(c)))
	f.Add("[strata]\naws_access_key_id=AKIAAAAAAAAAAAAAAAAA\r\naws_secret_access_key =x\n")
	f.Add("[default]\n[strata ]\n; comment\naws_access_key_id = AKIAAAAAAAAAAAAAAAAA\n")
	f.Fuzz(func(t *testing.T, data string) {
		k, err := parseRootKey([]byte(data), "/data/root-credentials")
		if err != nil {
			return
		}
		if checkAccessKeyID(k.AccessKeyID) != "" || checkSecret(k.SecretAccessKey) != "" {
			t.Fatalf("invalid key accepted: %q", k.AccessKeyID)
		}
	})
}
