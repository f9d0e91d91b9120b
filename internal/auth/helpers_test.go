package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/stratametrics/strata/internal/testutil"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/awsapi"
)

const (
	testRegion = "us-east-1"
	acctA      = "111111111111" // the server's default account
	acctB      = "222222222222"
)

// Access keys of testIdentities. Secrets are long and distinctive so tests can
// grep logs and audit records for them.
var testKeys = map[string]aws.Credentials{
	"admin":      {AccessKeyID: "AKIDADMIN0000000001", SecretAccessKey: "adminSECRETvalue/+0000000001"},
	"reader":     {AccessKeyID: "AKIDREADER000000001", SecretAccessKey: "readerSECRETvalue/+000000001"},
	"denied":     {AccessKeyID: "AKIDDENIED000000001", SecretAccessKey: "deniedSECRETvalue/+000000001"},
	"xacct":      {AccessKeyID: "AKIDXACCT0000000001", SecretAccessKey: "xacctSECRETvalue/+0000000001"},
	"xacctnoid":  {AccessKeyID: "AKIDXACCTNOID000001", SecretAccessKey: "xacctnoidSECRETvalue/+000001"},
	"ipuser":     {AccessKeyID: "AKIDIPUSER000000001", SecretAccessKey: "ipuserSECRETvalue/+000000001"},
	"ipother":    {AccessKeyID: "AKIDIPOTHER00000001", SecretAccessKey: "ipotherSECRETvalue/+00000001"},
	"taguser":    {AccessKeyID: "AKIDTAGUSER00000001", SecretAccessKey: "taguserSECRETvalue/+00000001"},
	"nopolicy":   {AccessKeyID: "AKIDNOPOLICY0000001", SecretAccessKey: "nopolicySECRETvalue/+0000001"},
	"rootB":      {AccessKeyID: "AKIDROOTB0000000001", SecretAccessKey: "rootBSECRETvalue/+0000000001"},
	"filesecret": {AccessKeyID: "AKIDFILESECRET00001", SecretAccessKey: "fileSECRETvalue/+00000000001"},
	"tlsonly":    {AccessKeyID: "AKIDTLSONLY00000001", SecretAccessKey: "tlsonlySECRETvalue/+00000001"},
}

func wsARN(account, id string) string {
	return "arn:aws:aps:" + testRegion + ":" + account + ":workspace/" + id
}

// testIdentities exercises every policy feature the middleware tests need.
// filesecret's secret lives in a file next to the identities file.
const testIdentities = `
accounts:
  - id: "222222222222"
    name: central
    root_access_keys:
      - {id: AKIDROOTB0000000001, secret: "rootBSECRETvalue/+0000000001"}

policies:
  - name: Admin
    document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'

users:
  - name: admin
    access_keys: [{id: AKIDADMIN0000000001, secret: "adminSECRETvalue/+0000000001"}]
    policies: [Admin]

  - name: reader
    access_keys: [{id: AKIDREADER000000001, secret: "readerSECRETvalue/+000000001"}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: aps:QueryMetrics
            Resource: arn:aws:aps:us-east-1:111111111111:workspace/ws-a

  - name: denied
    access_keys: [{id: AKIDDENIED000000001, secret: "deniedSECRETvalue/+000000001"}]
    policies: [Admin]
    inline_policies:
      - '{"Version": "2012-10-17", "Statement": [{"Sid": "NoWritesToA", "Effect": "Deny", "Action": "aps:RemoteWrite",
          "Resource": "arn:aws:aps:us-east-1:111111111111:workspace/ws-a"}]}'

  - name: xacct
    account: "222222222222"
    access_keys: [{id: AKIDXACCT0000000001, secret: "xacctSECRETvalue/+0000000001"}]
    inline_policies:
      - '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:RemoteWrite",
          "Resource": "arn:aws:aps:us-east-1:111111111111:workspace/*"}]}'

  - name: xacctnoid
    account: "222222222222"
    access_keys: [{id: AKIDXACCTNOID000001, secret: "xacctnoidSECRETvalue/+000001"}]

  - name: ipuser
    access_keys: [{id: AKIDIPUSER000000001, secret: "ipuserSECRETvalue/+000000001"}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: aps:QueryMetrics
            Resource: "*"
            Condition: {IpAddress: {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}

  - name: ipother
    access_keys: [{id: AKIDIPOTHER00000001, secret: "ipotherSECRETvalue/+00000001"}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: aps:QueryMetrics
            Resource: "*"
            Condition: {IpAddress: {"aws:SourceIp": 10.0.0.0/8}}

  - name: taguser
    access_keys: [{id: AKIDTAGUSER00000001, secret: "taguserSECRETvalue/+00000001"}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: "aps:*"
            Resource: "*"
            Condition: {StringEquals: {"aws:ResourceTag/team": blue}}

  - name: nopolicy
    access_keys: [{id: AKIDNOPOLICY0000001, secret: "nopolicySECRETvalue/+0000001"}]

  - name: filesecret
    access_keys: [{id: AKIDFILESECRET00001, secret_file: filesecret.key}]
    policies: [Admin]

  - name: tlsonly
    access_keys: [{id: AKIDTLSONLY00000001, secret: "tlsonlySECRETvalue/+00000001"}]
    inline_policies:
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: aps:ListWorkspaces
            Resource: "*"
            Condition: {Bool: {"aws:SecureTransport": "true"}}
`

// fakeResources is a ResourceInfo over maps. ws-a and ws-b belong to acctA;
// ws-a lets xacct and xacctnoid of acctB write to it.
type fakeResources struct {
	mu       sync.Mutex
	policies map[string]*policy.Policy
	tags     map[string]map[string]string
	err      error
	calls    int
}

func newFakeResources(t testing.TB) *fakeResources {
	pol, err := policy.ParseResourcePolicy([]byte(`{"Version": "2012-10-17", "Statement": [{
		"Sid": "CentralMonitoringWrites", "Effect": "Allow",
		"Principal": {"AWS": ["arn:aws:iam::222222222222:user/xacct", "arn:aws:iam::222222222222:user/xacctnoid"]},
		"Action": "aps:RemoteWrite", "Resource": "arn:aws:aps:us-east-1:111111111111:workspace/ws-a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeResources{
		policies: map[string]*policy.Policy{wsARN(acctA, "ws-a"): pol},
		tags: map[string]map[string]string{
			wsARN(acctA, "ws-a"): {"team": "blue"},
			wsARN(acctA, "ws-b"): {"team": "red"},
		},
	}
}

func (f *fakeResources) ResourcePolicy(_ context.Context, arn string) (*policy.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.policies[arn], f.err
}

func (f *fakeResources) ResourceTags(_ context.Context, arn string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tags[arn], f.err
}

type syncBuffer = testutil.SyncBuffer

// harness is an Auth in front of AMP-like routes on a real HTTP server.
type harness struct {
	t       testing.TB
	auth    *Auth
	srv     *httptest.Server
	client  *http.Client
	handler http.Handler // what srv serves: request ids, then the routes
	res     *fakeResources
	reg     *prometheus.Registry
	audit   *syncBuffer
	logs    *syncBuffer
	dir     string

	clock atomic.Pointer[time.Time] // nil: time.Now

	calls    atomic.Int64 // handler invocations
	mu       sync.Mutex
	lastSeen seen // guarded by mu
}

// seen is what the handler observed.
type seen struct {
	principal *Principal
	body      []byte
}

type harnessOpt func(*Config, *Env)

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{t: t, res: newFakeResources(t), reg: prometheus.NewRegistry(), audit: &syncBuffer{}, logs: &syncBuffer{}, dir: t.TempDir()}
	idFile := filepath.Join(h.dir, "identities.yaml")
	writeFile(t, filepath.Join(h.dir, "filesecret.key"), testKeys["filesecret"].SecretAccessKey+"\n")
	writeFile(t, idFile, testIdentities)
	cfg := Config{IdentitiesFile: idFile, AuditLog: AuditLogStdout, AuditDataPlane: true, MaxBodyBytes: 1 << 20}
	env := Env{
		Region:    testRegion,
		AccountID: acctA,
		DataDir:   filepath.Join(h.dir, "data"),
		Getenv:    func(string) string { return "" },
		Now:       h.now,
		Stdout:    h.audit,
	}
	for _, o := range opts {
		o(&cfg, &env)
	}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(cfg, env, h.res, logger, h.reg)
	if err != nil {
		t.Fatal(err)
	}
	h.auth = a
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})

	mux := http.NewServeMux()
	ws := func(r *http.Request) string { return wsARN(acctA, r.PathValue("workspaceId")) }
	route := func(pattern, action string, res func(*http.Request) string, dataPlane bool) {
		mux.Handle(pattern, a.Wrap(RouteInfo{Action: action, Resource: res, DataPlane: dataPlane}, http.HandlerFunc(h.handle)))
	}
	route("GET /workspaces", "aps:ListWorkspaces", nil, false)
	route("POST /workspaces", "aps:CreateWorkspace", nil, false)
	route("GET /workspaces/{workspaceId}", "aps:DescribeWorkspace", ws, false)
	route("POST /workspaces/{workspaceId}/api/v1/remote_write", "aps:RemoteWrite", ws, true)
	route("GET /workspaces/{workspaceId}/api/v1/query", "aps:QueryMetrics", ws, true)
	route("POST /workspaces/{workspaceId}/api/v1/query", "aps:QueryMetrics", ws, true)
	// Like the real server: a request id on every response, set before auth runs.
	h.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(awsapi.RequestIDHeader, uuid.NewString())
		mux.ServeHTTP(w, r)
	})
	h.srv = httptest.NewServer(h.handler)
	h.client = h.srv.Client()
	t.Cleanup(func() {
		h.srv.Close()
		h.client.CloseIdleConnections()
	})
	return h
}

func (h *harness) now() time.Time {
	if t := h.clock.Load(); t != nil {
		return *t
	}
	return time.Now()
}

func (h *harness) setClock(t time.Time) { h.clock.Store(&t) }

// handle is every route's handler: it records what it saw and answers like
// AMP would, including a 404 for the workspace "ws-missing".
func (h *harness) handle(w http.ResponseWriter, r *http.Request) {
	h.calls.Add(1)
	p, ok := PrincipalFromContext(r.Context())
	body, err := io.ReadAll(r.Body)
	if err != nil || !ok {
		http.Error(w, "handler: no principal or body", http.StatusInternalServerError)
		return
	}
	h.mu.Lock()
	h.lastSeen = seen{principal: p, body: body}
	h.mu.Unlock()
	switch {
	case r.PathValue("workspaceId") == "ws-missing":
		awsapi.WriteError(w, &awsapi.Error{Status: http.StatusNotFound, Type: awsapi.ResourceNotFoundException, Message: "Workspace not found"})
	case r.Method == http.MethodGet && r.URL.Path == "/workspaces":
		awsapi.WriteJSON(w, http.StatusOK, map[string]any{"workspaces": []any{}})
	case r.Method == http.MethodPost && r.URL.Path == "/workspaces":
		awsapi.WriteJSON(w, http.StatusAccepted, map[string]any{
			"arn": wsARN(p.AccountID, "ws-new"), "workspaceId": "ws-new", "status": map[string]string{"statusCode": "CREATING"},
		})
	default:
		awsapi.WriteJSON(w, http.StatusOK, map[string]any{"principal": p.ARN, "bodyBytes": len(body)})
	}
}

func (h *harness) last() seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastSeen
}

// response is what the client got.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorType() string { return r.header.Get("x-amzn-ErrorType") }

func (r response) message(t testing.TB) string {
	t.Helper()
	var m struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return m.Message
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// newRequest builds a request to the harness.
func (h *harness) newRequest(method, path string, body []byte) *http.Request {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// sign signs r with aws-sdk-go-v2's signer for aps in testRegion at the
// harness clock, over payload (the body unless the test alters it).
func (h *harness) sign(r *http.Request, creds aws.Credentials, payload []byte) *http.Request {
	h.t.Helper()
	signAt(h.t, r, creds, hexSHA256(payload), "aps", testRegion, h.now())
	return r
}

func signAt(t testing.TB, r *http.Request, creds aws.Credentials, payloadHash, service, region string, at time.Time) {
	t.Helper()
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, payloadHash, service, region, at); err != nil {
		t.Fatal(err)
	}
}

// presign returns a GET request for a presigned URL of path.
func (h *harness) presign(path string, creds aws.Credentials, expires time.Duration, at time.Time) *http.Request {
	h.t.Helper()
	r := h.newRequest(http.MethodGet, path, nil)
	q := r.URL.Query()
	q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
	r.URL.RawQuery = q.Encode()
	uri, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), creds, r, hexSHA256(nil), "aps", testRegion, at)
	if err != nil {
		h.t.Fatal(err)
	}
	pr := h.newRequest(http.MethodGet, strings.TrimPrefix(uri, h.srv.URL), nil)
	for k, vs := range hdr {
		if k != "Host" {
			pr.Header[k] = vs
		}
	}
	return pr
}

// do sends r and reads the whole response.
func (h *harness) do(r *http.Request) response {
	h.t.Helper()
	resp, err := h.client.Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// call signs and sends a request as user.
func (h *harness) call(user, method, path string, body []byte) response {
	h.t.Helper()
	creds, ok := testKeys[user]
	if !ok {
		h.t.Fatalf("no test user %q", user)
	}
	return h.do(h.sign(h.newRequest(method, path, body), creds, body))
}

// auditRecords parses the audit log so far.
func (h *harness) auditRecords() []map[string]any {
	h.t.Helper()
	return parseAudit(h.t, h.audit.String())
}

func parseAudit(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func (h *harness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	return metricValue(h.t, h.reg, name, labels...)
}

// metricValue returns the value of the series of name whose labels include
// the given name/value pairs.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// writeFile writes content and moves the modification time forward, so a
// rewrite within the same clock tick still looks changed.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	bumpMtime(t, path)
}

var mtimeSeq atomic.Int64

func bumpMtime(t testing.TB, path string) {
	t.Helper()
	ts := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(mtimeSeq.Add(1)) * time.Second)
	if err := os.Chtimes(path, ts, ts); err != nil {
		t.Fatal(err)
	}
}
