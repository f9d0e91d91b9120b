package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testRegion  = "us-east-1"
	testAccount = "123456789012"
)

// blockingHook lets a test hold a workspace in DELETING or CREATING.
type blockingHook struct {
	mu          sync.Mutex
	failDelete  bool
	failCreate  bool
	provision   int // calls of Provision
	deprovision []string
}

func (h *blockingHook) Provision(context.Context, meta.Workspace) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.provision++
	if h.failCreate {
		return errors.New("held by test")
	}
	return nil
}

func (h *blockingHook) Reconfigure(context.Context, meta.Workspace) error { return nil }

func (h *blockingHook) Deprovision(_ context.Context, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failDelete {
		return errors.New("held by test")
	}
	h.deprovision = append(h.deprovision, id)
	return nil
}

func (h *blockingHook) provisions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.provision
}

func (h *blockingHook) set(create, del bool) {
	h.mu.Lock()
	h.failCreate, h.failDelete = create, del
	h.mu.Unlock()
}

type fixture struct {
	client *amp.Client
	url    string
	store  *meta.Store
	hook   *blockingHook
	recon  *Reconciler
	api    *API
	// manual, when an option sets it, keeps the reconciler from running: the test
	// calls recon.ReconcileOnce itself.
	manual bool
}

// newFixture serves the control plane on a real HTTP listener over a filesystem bucket
// in dir and returns the real AWS SDK client pointed at it. opts change the fixture
// before it serves.
func newFixture(t *testing.T, dir string, cfg Config, opts ...func(*fixture)) *fixture {
	t.Helper()
	bkt, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	store := meta.New(meta.Config{PollInterval: time.Hour}, bkt, nil, prometheus.NewRegistry())
	if err := store.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	api := New(cfg, Env{Region: testRegion, AccountID: testAccount, ExternalURL: srv.URL}, store, nil)
	for _, r := range api.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, r.Handler)
	}
	hook := &blockingHook{}
	recon := NewReconciler(store, []Lifecycle{hook}, 20*time.Millisecond, nil)
	client := amp.New(amp.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE0000001", "secret-secret-secret", ""),
	})
	f := &fixture{client: client, url: srv.URL, store: store, hook: hook, recon: recon, api: api}
	for _, o := range opts {
		o(f)
	}
	if !f.manual {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = recon.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return f
}

func defaultConfig() Config { return Config{MaxRequestBodyBytes: 4 << 20} }

func waitActive(t *testing.T, c *amp.Client, id string) {
	t.Helper()
	w := amp.NewWorkspaceActiveWaiter(c, func(o *amp.WorkspaceActiveWaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 50 * time.Millisecond
	})
	if err := w.Wait(context.Background(), &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)}, 5*time.Second); err != nil {
		t.Fatalf("waiting for %s to be ACTIVE: %v", id, err)
	}
}

// apiError asserts err is an AWS API error of the given code and returns it.
func apiError(t *testing.T, err error, code string) smithy.APIError {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s, got %v", code, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want %s, got %s: %s", code, ae.ErrorCode(), ae.ErrorMessage())
	}
	return ae
}

func TestWorkspaceLifecycle(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig())
	ctx := context.Background()
	c := f.client

	out, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{
		Alias:     aws.String("prod"),
		Tags:      map[string]string{"team": "obs"},
		KmsKeyArn: aws.String("arn:aws:kms:us-east-1:123456789012:key/0123abcd-0000-1111-2222-333344445555"),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.WorkspaceId)
	if !strings.HasPrefix(id, "ws-") || len(id) != len("ws-")+36 {
		t.Fatalf("workspace id %q is not ws-<uuid>", id)
	}
	if want := "arn:aws:aps:us-east-1:123456789012:workspace/" + id; aws.ToString(out.Arn) != want {
		t.Fatalf("arn %q, want %q", aws.ToString(out.Arn), want)
	}
	if out.Status.StatusCode != types.WorkspaceStatusCodeCreating {
		t.Fatalf("create status %s, want CREATING", out.Status.StatusCode)
	}
	if out.Tags["team"] != "obs" || aws.ToString(out.KmsKeyArn) == "" {
		t.Fatalf("create echoed tags %v kms %v", out.Tags, out.KmsKeyArn)
	}
	waitActive(t, c, id)

	d, err := c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	ws := d.Workspace
	if aws.ToString(ws.Alias) != "prod" || ws.Status.StatusCode != types.WorkspaceStatusCodeActive {
		t.Fatalf("describe: alias %v status %s", ws.Alias, ws.Status.StatusCode)
	}
	if want := f.url + "/workspaces/" + id + "/"; aws.ToString(ws.PrometheusEndpoint) != want {
		t.Fatalf("prometheusEndpoint %q, want %q", aws.ToString(ws.PrometheusEndpoint), want)
	}
	if ws.CreatedAt == nil || time.Since(*ws.CreatedAt) > time.Minute || time.Since(*ws.CreatedAt) < 0 {
		t.Fatalf("createdAt %v is not now", ws.CreatedAt)
	}
	if aws.ToString(ws.KmsKeyArn) != aws.ToString(out.KmsKeyArn) {
		t.Fatalf("kmsKeyArn not stored: %v", ws.KmsKeyArn)
	}

	if _, err := c.UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: aws.String(id), Alias: aws.String("production")}); err != nil {
		t.Fatal(err)
	}
	d, _ = c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)})
	if aws.ToString(d.Workspace.Alias) != "production" {
		t.Fatalf("alias after update: %v", d.Workspace.Alias)
	}

	// Tags through the workspace ARN.
	arn := aws.ToString(out.Arn)
	if _, err := c.TagResource(ctx, &amp.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"env": "prod", "team": "sre"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tags.Tags) != "map[env:prod team:sre]" {
		t.Fatalf("tags after TagResource: %v", tags.Tags)
	}
	if _, err := c.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"team", "absent"}}); err != nil {
		t.Fatal(err)
	}
	tags, _ = c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	if fmt.Sprint(tags.Tags) != "map[env:prod]" {
		t.Fatalf("tags after UntagResource: %v", tags.Tags)
	}

	// Configuration: defaults, update, describe.
	conf, err := c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(conf.WorkspaceConfiguration.RetentionPeriodInDays) != 150 || conf.WorkspaceConfiguration.Status.StatusCode != types.WorkspaceConfigurationStatusCodeActive {
		t.Fatalf("default configuration: %+v", conf.WorkspaceConfiguration)
	}
	up, err := c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{
		WorkspaceId:           aws.String(id),
		RetentionPeriodInDays: aws.Int32(30),
		LimitsPerLabelSet: []types.LimitsPerLabelSet{
			{LabelSet: map[string]string{"env": "prod", "team": "a"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(100000)}},
			{LabelSet: map[string]string{}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(0)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.Status.StatusCode != types.WorkspaceConfigurationStatusCodeUpdating {
		t.Fatalf("update configuration status %s, want UPDATING", up.Status.StatusCode)
	}
	testutil.Eventually(t, 5*time.Second, "the configuration to become ACTIVE", func() bool {
		conf, err = c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		return conf.WorkspaceConfiguration.Status.StatusCode == types.WorkspaceConfigurationStatusCodeActive
	})
	wc := conf.WorkspaceConfiguration
	if aws.ToInt32(wc.RetentionPeriodInDays) != 30 || len(wc.LimitsPerLabelSet) != 2 ||
		aws.ToInt64(wc.LimitsPerLabelSet[0].Limits.MaxSeries) != 100000 || wc.LimitsPerLabelSet[0].LabelSet["team"] != "a" ||
		len(wc.LimitsPerLabelSet[1].LabelSet) != 0 {
		t.Fatalf("configuration after update: %+v", wc)
	}
	// Retention alone keeps the label sets.
	if _, err := c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(id), RetentionPeriodInDays: aws.Int32(1095)}); err != nil {
		t.Fatal(err)
	}
	conf, _ = c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(id)})
	if aws.ToInt32(conf.WorkspaceConfiguration.RetentionPeriodInDays) != 1095 || len(conf.WorkspaceConfiguration.LimitsPerLabelSet) != 2 {
		t.Fatalf("configuration after retention-only update: %+v", conf.WorkspaceConfiguration)
	}

	// Delete: DELETING while held, then gone.
	f.hook.set(false, true)
	if _, err := c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	d, err = c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)})
	if err != nil || d.Workspace.Status.StatusCode != types.WorkspaceStatusCodeDeleting {
		t.Fatalf("describe while deleting: %v %v", d, err)
	}
	_, err = c.UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: aws.String(id), Alias: aws.String("x")})
	apiError(t, err, awsapi.ConflictException)
	_, err = c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(id)})
	apiError(t, err, awsapi.ConflictException)
	_, err = c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(id), RetentionPeriodInDays: aws.Int32(3)})
	apiError(t, err, awsapi.ConflictException)

	f.hook.set(false, false)
	w := amp.NewWorkspaceDeletedWaiter(c, func(o *amp.WorkspaceDeletedWaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 50 * time.Millisecond
	})
	if err := w.Wait(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)})
	apiError(t, err, awsapi.ResourceNotFoundException)
	f.hook.mu.Lock()
	if len(f.hook.deprovision) == 0 || f.hook.deprovision[0] != id {
		t.Fatalf("deprovision hook calls: %v", f.hook.deprovision)
	}
	f.hook.mu.Unlock()
	_, err = c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	apiError(t, err, awsapi.ResourceNotFoundException)
}

func TestCreateStaysCreatingUntilProvisioned(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig(), manual)
	ctx := context.Background()
	f.hook.set(true, false)
	out, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatal(err)
	}
	status := func() types.WorkspaceStatusCode {
		t.Helper()
		d, err := f.client.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: out.WorkspaceId})
		if err != nil {
			t.Fatal(err)
		}
		return d.Workspace.Status.StatusCode
	}
	// Passes whose Provision fails leave it CREATING, and each tries again.
	for range 3 {
		f.recon.ReconcileOnce(ctx)
	}
	if n := f.hook.provisions(); n != 3 {
		t.Fatalf("Provision called %d times in 3 passes, want 3", n)
	}
	if s := status(); s != types.WorkspaceStatusCodeCreating {
		t.Fatalf("status %s while provisioning fails, want CREATING", s)
	}
	_, err = f.client.UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: out.WorkspaceId, Alias: aws.String("x")})
	apiError(t, err, awsapi.ConflictException)
	f.hook.set(false, false)
	f.recon.ReconcileOnce(ctx)
	if s := status(); s != types.WorkspaceStatusCodeActive {
		t.Fatalf("status %s after Provision succeeded, want ACTIVE", s)
	}
}

func TestIdempotentCreate(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig())
	ctx := context.Background()
	in := &amp.CreateWorkspaceInput{Alias: aws.String("a"), ClientToken: aws.String("token-1"), Tags: map[string]string{"k": "v"}}
	first, err := f.client.CreateWorkspace(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.client.CreateWorkspace(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(first.WorkspaceId) != aws.ToString(second.WorkspaceId) {
		t.Fatalf("same clientToken created two workspaces: %s, %s", aws.ToString(first.WorkspaceId), aws.ToString(second.WorkspaceId))
	}
	if n := len(f.store.ListWorkspaces()); n != 1 {
		t.Fatalf("%d workspaces after idempotent retries, want 1", n)
	}
	_, err = f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("other"), ClientToken: aws.String("token-1")})
	apiError(t, err, awsapi.ConflictException)
	// The SDK fills a fresh token when none is given: two calls, two workspaces.
	a, _ := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("a")})
	b, _ := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("a")})
	if aws.ToString(a.WorkspaceId) == aws.ToString(b.WorkspaceId) {
		t.Fatal("two creates without a shared token returned one workspace")
	}
}

func TestListWorkspacesPagination(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig())
	ctx := context.Background()
	const n = 130
	created := map[string]bool{}
	for i := range n {
		alias := fmt.Sprintf("team-%03d", i)
		if i%10 == 0 {
			alias = fmt.Sprintf("special-%03d", i)
		}
		out, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String(alias)})
		if err != nil {
			t.Fatal(err)
		}
		created[aws.ToString(out.WorkspaceId)] = true
	}
	// Default page size is 100.
	page, err := f.client.ListWorkspaces(ctx, &amp.ListWorkspacesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Workspaces) != 100 || page.NextToken == nil {
		t.Fatalf("first page: %d workspaces, nextToken %v", len(page.Workspaces), page.NextToken)
	}
	// The SDK paginator walks every page exactly once.
	for _, size := range []int32{1000, 100, 7, 1} {
		seen := map[string]bool{}
		pages := 0
		p := amp.NewListWorkspacesPaginator(f.client, &amp.ListWorkspacesInput{MaxResults: aws.Int32(size)})
		var last time.Time
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(out.Workspaces) > int(size) {
				t.Fatalf("page of %d with maxResults %d", len(out.Workspaces), size)
			}
			for _, w := range out.Workspaces {
				id := aws.ToString(w.WorkspaceId)
				if seen[id] {
					t.Fatalf("maxResults %d: %s listed twice", size, id)
				}
				if w.CreatedAt.Before(last) {
					t.Fatalf("maxResults %d: not ordered by creation", size)
				}
				last = *w.CreatedAt
				seen[id] = true
			}
		}
		if len(seen) != n {
			t.Fatalf("maxResults %d: listed %d workspaces, want %d", size, len(seen), n)
		}
		if want := (n + int(size) - 1) / int(size); pages != want {
			t.Fatalf("maxResults %d: %d pages, want %d", size, pages, want)
		}
	}
	// Alias filter: prefix match, paginated too.
	p := amp.NewListWorkspacesPaginator(f.client, &amp.ListWorkspacesInput{Alias: aws.String("special-"), MaxResults: aws.Int32(5)})
	count := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range out.Workspaces {
			if !strings.HasPrefix(aws.ToString(w.Alias), "special-") {
				t.Fatalf("alias filter returned %q", aws.ToString(w.Alias))
			}
			count++
		}
	}
	if count != 13 {
		t.Fatalf("alias filter matched %d, want 13", count)
	}
	out, err := f.client.ListWorkspaces(ctx, &amp.ListWorkspacesInput{Alias: aws.String("nothing")})
	if err != nil || len(out.Workspaces) != 0 || out.NextToken != nil {
		t.Fatalf("no match: %v %v", out, err)
	}
}

func TestValidationErrors(t *testing.T) {
	f := newFixture(t, t.TempDir(), Config{MaxRequestBodyBytes: 4096, MaxWorkspaces: 3})
	ctx := context.Background()
	ws, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := ws.WorkspaceId
	waitActive(t, f.client, aws.ToString(id))
	arn := ws.Arn
	tooManyTags := map[string]string{}
	for i := range 51 {
		tooManyTags[fmt.Sprintf("k%d", i)] = "v"
	}
	long := strings.Repeat("x", 101)
	cases := []struct {
		name  string
		call  func() error
		field string // the field the message must name
	}{
		{"alias too long", func() error {
			_, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String(long)})
			return err
		}, "alias"},
		{"client token with space", func() error {
			_, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{ClientToken: aws.String("a b")})
			return err
		}, "clientToken"},
		{"too many tags", func() error {
			_, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Tags: tooManyTags})
			return err
		}, "tags"},
		{"reserved tag key", func() error {
			_, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Tags: map[string]string{"aws:x": "v"}})
			return err
		}, "tag"},
		{"bad tag character", func() error {
			_, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Tags: map[string]string{"k": "semi;colon"}})
			return err
		}, "tag"},
		{"bad kms arn", func() error {
			_, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{KmsKeyArn: aws.String("arn:aws:s3:::not-a-key-at-all")})
			return err
		}, "kmsKeyArn"},
		{"alias update too long", func() error {
			_, err := f.client.UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: id, Alias: aws.String(long)})
			return err
		}, "alias"},
		{"retention zero", func() error {
			_, err := f.client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: id, RetentionPeriodInDays: aws.Int32(0)})
			return err
		}, "retentionPeriodInDays"},
		{"retention too long", func() error {
			_, err := f.client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: id, RetentionPeriodInDays: aws.Int32(1096)})
			return err
		}, "retentionPeriodInDays"},
		{"configuration without fields", func() error {
			_, err := f.client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: id})
			return err
		}, "retentionPeriodInDays"},
		{"label name invalid", func() error {
			_, err := f.client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: id, LimitsPerLabelSet: []types.LimitsPerLabelSet{
				{LabelSet: map[string]string{"1bad": "x"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1)}}}})
			return err
		}, "limitsPerLabelSet"},
		{"label value empty", func() error {
			_, err := f.client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: id, LimitsPerLabelSet: []types.LimitsPerLabelSet{
				{LabelSet: map[string]string{"env": ""}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1)}}}})
			return err
		}, "limitsPerLabelSet"},
		{"duplicate label set", func() error {
			_, err := f.client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: id, LimitsPerLabelSet: []types.LimitsPerLabelSet{
				{LabelSet: map[string]string{"env": "a"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1)}},
				{LabelSet: map[string]string{"env": "a"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(2)}}}})
			return err
		}, "limitsPerLabelSet"},
		{"bad next token", func() error {
			_, err := f.client.ListWorkspaces(ctx, &amp.ListWorkspacesInput{NextToken: aws.String("garbage!")})
			return err
		}, "nextToken"},
		{"tag with bad arn", func() error {
			_, err := f.client.TagResource(ctx, &amp.TagResourceInput{ResourceArn: aws.String("not-an-arn"), Tags: map[string]string{"a": "b"}})
			return err
		}, "resourceArn"},
		{"untag reserved key", func() error {
			_, err := f.client.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"aws:k"}})
			return err
		}, "tag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ae := apiError(t, tc.call(), awsapi.ValidationException)
			if !strings.Contains(ae.ErrorMessage(), tc.field) {
				t.Fatalf("message %q does not name %s", ae.ErrorMessage(), tc.field)
			}
		})
	}

	// Tags beyond 50 in total through TagResource.
	many := map[string]string{}
	for i := range 50 {
		many[fmt.Sprintf("t%d", i)] = "v"
	}
	if _, err := f.client.TagResource(ctx, &amp.TagResourceInput{ResourceArn: arn, Tags: many}); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.TagResource(ctx, &amp.TagResourceInput{ResourceArn: arn, Tags: map[string]string{"one-more": "v"}})
	apiError(t, err, awsapi.ValidationException)
	tags, _ := f.client.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: arn})
	if len(tags.Tags) != 50 {
		t.Fatalf("a refused TagResource changed the tags: %d", len(tags.Tags))
	}

	// Nothing half-written: a refused configuration update left the workspace unchanged.
	conf, _ := f.client.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: id})
	if aws.ToInt32(conf.WorkspaceConfiguration.RetentionPeriodInDays) != 150 || len(conf.WorkspaceConfiguration.LimitsPerLabelSet) != 0 {
		t.Fatalf("refused updates changed the configuration: %+v", conf.WorkspaceConfiguration)
	}
	if n := len(f.store.ListWorkspaces()); n != 1 {
		t.Fatalf("refused creates left %d workspaces", n)
	}

	// Not found: unknown workspace, ARN of another account or region.
	_, err = f.client.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String("ws-00000000-0000-0000-0000-000000000000")})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = f.client.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String("ws-missing")})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = f.client.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String("ws-missing")})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = f.client.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(strings.Replace(aws.ToString(arn), testAccount, "999999999999", 1))})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = f.client.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(strings.Replace(aws.ToString(arn), testRegion, "eu-west-1", 1))})
	apiError(t, err, awsapi.ResourceNotFoundException)

	// Quota: MaxWorkspaces is 3.
	for range 2 {
		if _, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	ae := apiError(t, err, awsapi.ServiceQuotaExceededException)
	if !strings.Contains(ae.ErrorMessage(), "max-workspaces") {
		t.Fatalf("quota message %q does not say how to raise it", ae.ErrorMessage())
	}
}

// rawCall sends a request without the SDK, to reach what the SDK validates away.
func rawCall(t *testing.T, method, url, body string) (int, string, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("response body is not JSON: %q", b)
		}
	}
	return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), m
}

func TestRawRequestErrors(t *testing.T) {
	f := newFixture(t, t.TempDir(), Config{MaxRequestBodyBytes: 4096})
	cases := []struct {
		name, method, path, body string
		status                   int
		errType, inMessage       string
	}{
		{"malformed json", "POST", "/workspaces", `{"alias": `, 400, awsapi.ValidationException, "not valid JSON"},
		{"wrong type", "POST", "/workspaces", `{"alias": 5}`, 400, awsapi.ValidationException, "alias"},
		{"two values", "POST", "/workspaces", `{} {}`, 400, awsapi.ValidationException, "more than one"},
		{"oversized", "POST", "/workspaces", `{"alias":"` + strings.Repeat("a", 5000) + `"}`, 400, awsapi.ValidationException, "exceeds"},
		{"empty alias", "POST", "/workspaces", `{"alias": ""}`, 400, awsapi.ValidationException, "alias"},
		{"maxResults zero", "GET", "/workspaces?maxResults=0", ``, 400, awsapi.ValidationException, "maxResults"},
		{"maxResults text", "GET", "/workspaces?maxResults=ten", ``, 400, awsapi.ValidationException, "maxResults"},
		{"untag without keys", "DELETE", "/tags/arn:aws:aps:us-east-1:123456789012:workspace%2Fws-x", ``, 400, awsapi.ValidationException, "tagKeys"},
		{"tag without tags", "POST", "/tags/arn:aws:aps:us-east-1:123456789012:workspace%2Fws-x", `{}`, 400, awsapi.ValidationException, "tags"},
		{"negative max series", "PATCH", "/workspaces/ws-x/configuration", `{"limitsPerLabelSet":[{"labelSet":{},"limits":{"maxSeries":-1}}]}`, 400, awsapi.ValidationException, "maxSeries"},
		{"label set without limits", "PATCH", "/workspaces/ws-x/configuration", `{"limitsPerLabelSet":[{"labelSet":{"a":"b"}}]}`, 400, awsapi.ValidationException, "limits"},
		{"bad workspace id", "GET", "/workspaces/%21%21", ``, 400, awsapi.ValidationException, "workspaceId"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, errType, body := rawCall(t, tc.method, f.url+tc.path, tc.body)
			if status != tc.status || errType != tc.errType {
				t.Fatalf("got %d %s %v, want %d %s", status, errType, body, tc.status, tc.errType)
			}
			msg, _ := body["message"].(string)
			if !strings.Contains(msg, tc.inMessage) {
				t.Fatalf("message %q does not mention %q", msg, tc.inMessage)
			}
		})
	}
	if n := len(f.store.ListWorkspaces()); n != 0 {
		t.Fatalf("refused requests created %d workspaces", n)
	}
	// A create that succeeds answers 202 with the model's members.
	status, _, body := rawCall(t, "POST", f.url+"/workspaces", `{"alias":"raw"}`)
	if status != http.StatusAccepted || body["workspaceId"] == nil || body["arn"] == nil || body["status"] == nil {
		t.Fatalf("create: %d %v", status, body)
	}
}

func TestResourcePolicy(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig())
	ctx := context.Background()
	out, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := out.WorkspaceId
	waitActive(t, f.client, aws.ToString(id))
	_, err = f.client.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: id})
	apiError(t, err, awsapi.ResourceNotFoundException)

	doc := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"CentralWrite","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::210987654321:root"},"Action":"aps:RemoteWrite","Resource":%q}]}`, aws.ToString(out.Arn))
	put, err := f.client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: id, PolicyDocument: aws.String(doc)})
	if err != nil {
		t.Fatal(err)
	}
	if put.PolicyStatus != types.WorkspacePolicyStatusCodeActive || aws.ToString(put.RevisionId) == "" {
		t.Fatalf("put: %+v", put)
	}
	got, err := f.client.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: id})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(got.PolicyDocument) != doc || aws.ToString(got.RevisionId) != aws.ToString(put.RevisionId) {
		t.Fatalf("describe: %+v", got)
	}
	// Optimistic concurrency: a stale revision is refused, the current one accepted.
	_, err = f.client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: id, PolicyDocument: aws.String(doc), RevisionId: aws.String("stale")})
	apiError(t, err, awsapi.ConflictException)
	put2, err := f.client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: id, PolicyDocument: aws.String(doc), RevisionId: put.RevisionId})
	if err != nil || aws.ToString(put2.RevisionId) == aws.ToString(put.RevisionId) {
		t.Fatalf("update with the current revision: %+v %v", put2, err)
	}
	// Invalid documents name the problem.
	for _, bad := range []string{`not json`, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"aps:*","Resource":"*"}]}`} {
		_, err = f.client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: id, PolicyDocument: aws.String(bad)})
		ae := apiError(t, err, awsapi.ValidationException)
		if !strings.Contains(ae.ErrorMessage(), "policyDocument") {
			t.Fatalf("message %q", ae.ErrorMessage())
		}
	}
	_, err = f.client.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: id, RevisionId: put.RevisionId})
	apiError(t, err, awsapi.ConflictException)
	if _, err := f.client.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: id, RevisionId: put2.RevisionId}); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: id})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = f.client.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: id})
	apiError(t, err, awsapi.ResourceNotFoundException)
}

// Without a retention of its own, a workspace reports its limits' (a runtime override
// here): the one the compactor and queries apply.
func TestDescribeRetentionFollowsTheLimits(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig(), func(f *fixture) {
		f.api.Limits = newSwapLimits(func(l *limits.Limits) { l.RetentionPeriodDays = 45 })
	})
	ctx := context.Background()
	out, err := f.client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := f.client.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: out.WorkspaceId})
	if err != nil || aws.ToInt32(conf.WorkspaceConfiguration.RetentionPeriodInDays) != 45 {
		t.Fatalf("retention under a limit of 45 days: %+v %v", conf, err)
	}
}
