// Package auth authenticates and authorizes requests. For now it holds the bootstrap
// (root) credential; SigV4 verification lives in auth/sigv4 and policy evaluation in
// auth/policy.
package auth

import (
	"errors"
	"fmt"
	"os"
)

// Environment variables that name the root (admin) access key.
const (
	EnvRootAccessKeyID     = "STRATA_ROOT_ACCESS_KEY_ID"
	EnvRootSecretAccessKey = "STRATA_ROOT_SECRET_ACCESS_KEY"
)

// Credential is an access key pair. String never reveals the secret.
type Credential struct {
	AccessKeyID     string
	SecretAccessKey string
}

func (c Credential) String() string { return "access key " + c.AccessKeyID }

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
	case len(secret) < 16:
		return Credential{}, false, errors.New(EnvRootSecretAccessKey + " must be at least 16 characters long")
	}
	return Credential{AccessKeyID: id, SecretAccessKey: secret}, true, nil
}
