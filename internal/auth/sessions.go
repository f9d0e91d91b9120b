package auth

import (
	"context"
	"sync"

	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/auth/session"
	"github.com/stratametrics/strata/internal/auth/sigv4"
)

// Temporary credentials (STS sessions) are verified without a table of issued
// sessions: the session token is the session, sealed by the Ring (see package
// session). Opening a token and building its principal costs tens of
// microseconds, so the result is cached per access key, for as long as the same
// token comes with it and the identities in use do not change (a role's policies
// apply to its sessions from the next request on, as in IAM).

// maxCachedSessions bounds the session cache; a full cache drops an arbitrary
// entry, which costs one more open when that session comes back.
const maxCachedSessions = 8192

type sessionCache struct {
	mu sync.RWMutex
	m  map[string]*sessionEntry // by access key ID; guarded by mu
}

type sessionEntry struct {
	token string
	ids   *Identities
	cred  sigv4.Credential
}

func (c *sessionCache) get(accessKeyID string) *sessionEntry {
	c.mu.RLock()
	e := c.m[accessKeyID]
	c.mu.RUnlock()
	return e
}

func (c *sessionCache) put(accessKeyID string, e *sessionEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*sessionEntry{}
	}
	if len(c.m) >= maxCachedSessions {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[accessKeyID] = e
}

// LookupSession implements sigv4.SessionCredentialStore: the credential of a
// session token sealed for accessKeyID, whose Principal is a *Principal with the
// session's current permissions. ok is false when the token is not valid for
// the key, or its principal (role, user) no longer exists.
func (s *Store) LookupSession(ctx context.Context, accessKeyID, token string) (sigv4.Credential, bool, error) {
	if s.ring == nil {
		return s.LookupCredential(ctx, accessKeyID) // no sessions: the verifier refuses the token
	}
	ids := s.cur.Load()
	if e := s.sessions.get(accessKeyID); e != nil && e.ids == ids && sigv4.ConstantTimeEqual(e.token, token) {
		return e.cred, true, nil
	}
	sess, err := s.ring.Open(accessKeyID, token)
	if err != nil {
		s.sessionsRefused.Inc()
		return sigv4.Credential{}, false, nil
	}
	p, ok := ids.SessionPrincipal(sess)
	if !ok {
		s.sessionsRefused.Inc()
		return sigv4.Credential{}, false, nil
	}
	// The token is cloned: it points into the request's headers.
	tok := string([]byte(token))
	cred := sigv4.Credential{SecretAccessKey: sess.Secret, SessionToken: tok, Expires: sess.ExpiresAt(), Principal: p}
	s.sessions.put(string([]byte(accessKeyID)), &sessionEntry{token: tok, ids: ids, cred: cred})
	return cred, true, nil
}

// SessionPrincipal builds the principal of a session from the identities: a
// role session gets the role's current policies, tags and revocation, plus its
// session policies and tags; a user's or root's session (GetSessionToken) gets
// that principal's permissions. ok is false when the principal no longer exists.
func (ids *Identities) SessionPrincipal(sess *session.Session) (*Principal, bool) {
	switch sess.Kind {
	case session.KindRole:
		role, ok := ids.roles[sess.Principal]
		if !ok {
			return nil, false
		}
		p := &Principal{
			ARN:         "arn:aws:sts::" + role.AccountID + ":assumed-role/" + role.Name + "/" + sess.Name,
			AccountID:   role.AccountID,
			Type:        policy.PrincipalTypeAssumedRole,
			Name:        sess.Name,
			Policies:    role.Policies,
			PolicyNames: role.PolicyNames,
			UserID:      role.UniqueID + ":" + sess.Name,
			Session:     sess,
			Role:        role,
		}
		if len(role.Tags) > 0 || len(sess.Tags) > 0 {
			p.Tags = make(map[string]string, len(role.Tags)+len(sess.Tags))
			for k, v := range role.Tags {
				p.Tags[k] = v
			}
			for k, v := range sess.Tags {
				p.Tags[k] = v
			}
		}
		if sess.Policy != "" || len(sess.PolicyNames) > 0 {
			// The session may then do only what these allow too; a named policy
			// that no longer exists allows nothing.
			p.SessionPolicies = []*policy.Policy{}
			if sess.Policy != "" {
				pol, err := policy.ParseIdentityPolicy([]byte(sess.Policy))
				if err != nil {
					return nil, false
				}
				p.SessionPolicies = append(p.SessionPolicies, pol)
			}
			for _, name := range sess.PolicyNames {
				if pol, ok := ids.policies[name]; ok {
					p.SessionPolicies = append(p.SessionPolicies, pol)
				} else {
					p.SessionPolicies = append(p.SessionPolicies, &policy.Policy{})
				}
			}
		}
		return p.finish(), true
	case session.KindUser:
		if u, ok := ids.users[sess.Principal]; ok {
			return u.withSession(sess), true
		}
		for acct := range ids.accounts {
			if rootARN(acct) == sess.Principal {
				return NewRootPrincipal(acct).withSession(sess), true
			}
		}
	}
	return nil, false
}
