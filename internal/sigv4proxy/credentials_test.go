package sigv4proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/stratametrics/strata/internal/auth/sigv4"
)

// fakeSTS answers AssumeRole, after verifying that the caller signed the
// call (service "sts") with the base credentials, with fresh temporary
// credentials: the nth expires ttls[n-1] after it is issued (the last ttl
// for those beyond), so a negative ttl issues credentials already expired.
type fakeSTS struct {
	*httptest.Server
	verifier *sigv4.Verifier
	ttls     []time.Duration

	mu     sync.Mutex
	calls  []url.Values
	issued map[string]sigv4.Credential
	errs   []error
}

func newFakeSTS(t *testing.T, base sigv4.CredentialStore, ttls ...time.Duration) *fakeSTS {
	v, err := sigv4.New(sigv4.Config{Region: "us-east-1", Service: "sts"}, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSTS{verifier: v, ttls: ttls, issued: map[string]sigv4.Credential{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *fakeSTS) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if err == nil {
		_, err = s.verifier.Verify(r, body)
	}
	if err == nil && form.Get("Action") != "AssumeRole" {
		err = fmt.Errorf("action %q", form.Get("Action"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs = append(s.errs, err)
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>%s</Message></Error></ErrorResponse>`, err)
		return
	}
	s.calls = append(s.calls, form)
	n := len(s.calls)
	keyID := fmt.Sprintf("ASIAROLE%04d", n)
	cred := sigv4.Credential{
		SecretAccessKey: fmt.Sprintf("role/secret/%04d", n),
		SessionToken:    fmt.Sprintf("role-session-token-%04d", n),
	}
	s.issued[keyID] = cred
	exp := time.Now().Add(s.ttls[min(n, len(s.ttls))-1]).UTC().Format(time.RFC3339)
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <AssumedRoleId>AROASTRATATEST:%[5]s</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/strata-writer/%[5]s</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>%[1]s</AccessKeyId>
      <SecretAccessKey>%[2]s</SecretAccessKey>
      <SessionToken>%[3]s</SessionToken>
      <Expiration>%[4]s</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>req-%[1]s</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, keyID, cred.SecretAccessKey, cred.SessionToken, exp, form.Get("RoleSessionName"))
}

func (s *fakeSTS) lookup(id string) (sigv4.Credential, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.issued[id]
	return c, ok
}

func (s *fakeSTS) state() (calls []url.Values, errs []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.calls...), append([]error(nil), s.errs...)
}

// TestAssumeRoleAndRefresh: with --role-arn the proxy assumes the role with
// the base credentials, signs with the role's temporary credentials and
// session token, reuses them while they are valid, and fetches new ones
// when they expire. The first credentials the fake STS issues have expired
// an hour before (New takes them, and the first request needs new ones), the
// next are good for an hour.
func TestAssumeRoleAndRefresh(t *testing.T) {
	const roleARN = "arn:aws:iam::123456789012:role/strata-writer"
	sts := newFakeSTS(t, staticStore(testKeyID, testSecret, ""), -time.Hour, time.Hour)
	isolateAWSEnv(t, "AWS_ACCESS_KEY_ID", testKeyID, "AWS_SECRET_ACCESS_KEY", testSecret,
		"AWS_ENDPOINT_URL_STS", sts.URL)
	up := newUpstream(t, storeFunc(sts.lookup))
	_, base := startProxy(t, Config{Upstream: up.URL, RoleARN: roleARN})
	client := newClient(t)

	get := func() received {
		t.Helper()
		resp, err := client.Get(base + "/workspaces/ws-1/api/v1/query?query=up")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return up.last(t)
	}
	check := func(got received, n int) {
		t.Helper()
		wantKey, wantToken := fmt.Sprintf("ASIAROLE%04d", n), fmt.Sprintf("role-session-token-%04d", n)
		if got.Identity.AccessKeyID != wantKey || got.Header.Get("X-Amz-Security-Token") != wantToken || !got.Identity.Temporary {
			t.Errorf("signed with %s token %q, want %s token %q", got.Identity.AccessKeyID,
				got.Header.Get("X-Amz-Security-Token"), wantKey, wantToken)
		}
	}

	calls, errs := sts.state()
	if len(errs) > 0 || len(calls) != 1 { // New fetched the first credentials
		t.Fatalf("STS: %d calls, errors %v; want 1 call", len(calls), errs)
	}
	check(get(), 2) // the first had expired
	check(get(), 2) // cached
	check(get(), 2)
	calls, errs = sts.state()
	if len(errs) > 0 || len(calls) != 2 {
		t.Fatalf("STS: %d calls, errors %v; want 2 calls", len(calls), errs)
	}
	for _, c := range calls {
		if c.Get("RoleArn") != roleARN || c.Get("RoleSessionName") != roleSessionName {
			t.Errorf("AssumeRole %v", c)
		}
	}
}

// TestCredentialsFailure: when credentials cannot be refreshed the request
// fails with 500 and says why, without reaching the upstream.
func TestCredentialsFailure(t *testing.T) {
	isolateAWSEnv(t)
	up := newUpstream(t, staticStore(testKeyID, testSecret, ""))
	var mu sync.Mutex
	calls := 0
	provider := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls > 1 {
			return aws.Credentials{}, errors.New("credential source unavailable")
		}
		// Expired as soon as New has checked it.
		return aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, CanExpire: true, Expires: time.Now()}, nil
	})
	_, base := startProxy(t, Config{Upstream: up.URL, Credentials: provider})
	resp, err := newClient(t).Get(base + "/workspaces/ws-1/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "credential source unavailable") {
		t.Fatalf("got %d %q, want 500 naming the credentials error", resp.StatusCode, body)
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
}
