package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
)

// goodRules has 2 groups and 3 rules, and uses every field Prometheus validates.
const goodRules = `groups:
  - name: api
    interval: 1m
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - alert: HighErrorRate
        expr: job:http_requests:rate5m > 100
        for: 10m
        keep_firing_for: 5m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.job }} at {{ $value | humanize }}"
  - name: collectors
    query_offset: 1m
    limit: 10
    rules:
      - alert: CollectorDown
        expr: absent(up{job="collector"})
`

// rulesWith returns a rule file of groups groups with rules recording rules each.
func rulesWith(groups, rules int) string {
	var b strings.Builder
	b.WriteString("groups:\n")
	for g := range groups {
		fmt.Fprintf(&b, "  - name: g%d\n    rules:\n", g)
		for r := range rules {
			fmt.Fprintf(&b, "      - record: r%d_%d\n        expr: vector(%d)\n", g, r, r)
		}
	}
	return b.String()
}

// swapLimits is a Limits a test changes while the server runs.
type swapLimits struct{ p atomic.Pointer[limits.Limits] }

func newSwapLimits(mod func(*limits.Limits)) *swapLimits {
	l := limits.Default()
	if mod != nil {
		mod(&l)
	}
	s := &swapLimits{}
	s.p.Store(&l)
	return s
}

func (s *swapLimits) For(string) *limits.Limits { return s.p.Load() }

func (s *swapLimits) set(mod func(*limits.Limits)) {
	l := *s.p.Load()
	mod(&l)
	s.p.Store(&l)
}

func manual(f *fixture) { f.manual = true }

// activeWorkspace creates a workspace and waits until it is ACTIVE.
func (f *fixture) activeWorkspace(t *testing.T) string {
	t.Helper()
	out, err := f.client.CreateWorkspace(context.Background(), &amp.CreateWorkspaceInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.WorkspaceId)
	if f.manual {
		f.recon.ReconcileOnce(context.Background())
	}
	waitActive(t, f.client, id)
	return id
}

func (f *fixture) describeNamespace(t *testing.T, ws, name string) (*types.RuleGroupsNamespaceDescription, error) {
	t.Helper()
	out, err := f.client.DescribeRuleGroupsNamespace(context.Background(), &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String(name)})
	if err != nil {
		return nil, err
	}
	return out.RuleGroupsNamespace, nil
}

// waitNamespace takes a reconciliation step, as the reconciler takes on every change,
// and returns namespace name of ws, which must then have status ("" means gone).
func (f *fixture) waitNamespace(t *testing.T, ws, name string, status types.RuleGroupsNamespaceStatusCode) *types.RuleGroupsNamespaceDescription {
	t.Helper()
	f.recon.ReconcileOnce(context.Background())
	d, err := f.describeNamespace(t, ws, name)
	switch {
	case status == "" && err != nil:
		apiError(t, err, awsapi.ResourceNotFoundException)
		return nil
	case err != nil:
		t.Fatal(err)
	case d.Status.StatusCode != status:
		t.Fatalf("namespace %s: status %s, want %q", name, d.Status.StatusCode, status)
	}
	return d
}

func (f *fixture) createNamespace(t *testing.T, ws, name, data string) *amp.CreateRuleGroupsNamespaceOutput {
	t.Helper()
	out, err := f.client.CreateRuleGroupsNamespace(context.Background(), &amp.CreateRuleGroupsNamespaceInput{
		WorkspaceId: aws.String(ws), Name: aws.String(name), Data: []byte(data),
	})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return out
}

// stepClock is a clock the test moves.
type stepClock struct{ ns atomic.Int64 }

func (c *stepClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *stepClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestRuleGroupsNamespaceLifecycle(t *testing.T) {
	clock := &stepClock{}
	clock.ns.Store(time.Now().UnixNano())
	f := newFixture(t, t.TempDir(), defaultConfig(), func(f *fixture) { f.api.now = clock.now })
	ctx := context.Background()
	c := f.client
	ws := f.activeWorkspace(t)

	created, err := c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{
		WorkspaceId: aws.String(ws), Name: aws.String("team-a.rules"), Data: []byte(goodRules),
		Tags: map[string]string{"team": "a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := fmt.Sprintf("arn:aws:aps:%s:%s:rulegroupsnamespace/%s/team-a.rules", testRegion, testAccount, ws)
	if aws.ToString(created.Arn) != arn || aws.ToString(created.Name) != "team-a.rules" ||
		created.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeCreating || created.Tags["team"] != "a" {
		t.Fatalf("create: arn %s name %s status %s tags %v", aws.ToString(created.Arn), aws.ToString(created.Name), created.Status.StatusCode, created.Tags)
	}
	d := f.waitNamespace(t, ws, "team-a.rules", types.RuleGroupsNamespaceStatusCodeActive)
	if string(d.Data) != goodRules || aws.ToString(d.Arn) != arn || d.Tags["team"] != "a" || d.Status.StatusReason != nil {
		t.Fatalf("describe: %+v data %q", d, d.Data)
	}
	if d.CreatedAt == nil || time.Since(*d.CreatedAt) > time.Minute || !d.ModifiedAt.Equal(*d.CreatedAt) {
		t.Fatalf("createdAt %v modifiedAt %v", d.CreatedAt, d.ModifiedAt)
	}

	// A second namespace of the same name is a conflict; another name is not.
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("team-a.rules"), Data: []byte(goodRules)})
	apiError(t, err, awsapi.ConflictException)
	f.createNamespace(t, ws, "team-b", rulesWith(1, 2))

	// Put replaces the rules.
	clock.advance(time.Second)
	replaced := rulesWith(2, 3)
	put, err := c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("team-a.rules"), Data: []byte(replaced)})
	if err != nil {
		t.Fatal(err)
	}
	if put.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeUpdating || aws.ToString(put.Arn) != arn || put.Tags["team"] != "a" {
		t.Fatalf("put: %+v", put)
	}
	d = f.waitNamespace(t, ws, "team-a.rules", types.RuleGroupsNamespaceStatusCodeActive)
	if string(d.Data) != replaced || !d.ModifiedAt.After(*d.CreatedAt) {
		t.Fatalf("after put: data %q createdAt %v modifiedAt %v", d.Data, d.CreatedAt, d.ModifiedAt)
	}
	stored, _ := f.store.GetWorkspace(ctx, ws)
	if ns := stored.RuleGroupsNamespaces["team-a.rules"]; ns.RuleGroups != 2 || ns.Rules != 6 {
		t.Fatalf("stored counts: %d groups, %d rules", ns.RuleGroups, ns.Rules)
	}

	// Tags through the namespace's ARN, apart from the workspace's.
	if _, err := c.TagResource(ctx, &amp.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"team"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	if err != nil || fmt.Sprint(tags.Tags) != "map[env:prod]" {
		t.Fatalf("namespace tags: %v %v", tags, err)
	}
	wsTags, _ := c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(stored.ARN)})
	if len(wsTags.Tags) != 0 {
		t.Fatalf("tagging the namespace tagged the workspace: %v", wsTags.Tags)
	}
	for _, other := range []string{
		strings.Replace(arn, "team-a.rules", "missing", 1),
		strings.Replace(arn, testAccount, "999999999999", 1),
		strings.Replace(arn, testRegion, "eu-west-1", 1),
		arn + "/extra",
	} {
		_, err = c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(other)})
		apiError(t, err, awsapi.ResourceNotFoundException)
	}

	// Delete: DELETING, then gone; the other namespace stays.
	if _, err := c.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("team-a.rules")}); err != nil {
		t.Fatal(err)
	}
	f.waitNamespace(t, ws, "team-a.rules", "")
	list, err := c.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(ws)})
	if err != nil || len(list.RuleGroupsNamespaces) != 1 || aws.ToString(list.RuleGroupsNamespaces[0].Name) != "team-b" {
		t.Fatalf("list after delete: %+v %v", list, err)
	}
	_, err = c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("team-a.rules"), Data: []byte(goodRules)})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("team-a.rules")})
	apiError(t, err, awsapi.ResourceNotFoundException)
	// The name is free again.
	f.createNamespace(t, ws, "team-a.rules", goodRules)

	// A workspace that does not exist.
	missing := aws.String("ws-00000000-0000-0000-0000-000000000000")
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: missing, Name: aws.String("x"), Data: []byte(goodRules)})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: missing})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: missing, Name: aws.String("x")})
	apiError(t, err, awsapi.ResourceNotFoundException)
}

func TestListRuleGroupsNamespacesPagination(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig(), func(f *fixture) {
		f.api.Limits = newSwapLimits(func(l *limits.Limits) { l.RulerMaxRuleGroupsNamespaces = 0 })
	})
	ctx := context.Background()
	ws := f.activeWorkspace(t)
	var names []string
	for i := range 12 {
		name := fmt.Sprintf("team-%02d", i)
		if i%4 == 0 {
			name = fmt.Sprintf("infra-%02d", i)
		}
		names = append(names, name)
		f.createNamespace(t, ws, name, rulesWith(1, 1))
	}
	slices.Sort(names)
	list := func(prefix *string, size int32) (got []string, pages int) {
		t.Helper()
		p := amp.NewListRuleGroupsNamespacesPaginator(f.client, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(ws), Name: prefix, MaxResults: aws.Int32(size)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.RuleGroupsNamespaces) > int(size) {
				t.Fatalf("page of %d with maxResults %d", len(out.RuleGroupsNamespaces), size)
			}
			pages++
			for _, ns := range out.RuleGroupsNamespaces {
				if ns.CreatedAt == nil || ns.ModifiedAt == nil || ns.Arn == nil || ns.Status == nil {
					t.Fatalf("summary misses members: %+v", ns)
				}
				got = append(got, aws.ToString(ns.Name))
			}
		}
		return got, pages
	}
	for _, size := range []int32{1, 2, 5, 1000} {
		got, pages := list(nil, size)
		if !slices.Equal(got, names) {
			t.Fatalf("maxResults %d: listed %v, want %v", size, got, names)
		}
		if want := (len(names) + int(size) - 1) / int(size); pages != want {
			t.Fatalf("maxResults %d: %d pages, want %d", size, pages, want)
		}
	}
	for _, size := range []int32{1, 2} {
		got, _ := list(aws.String("infra-"), size)
		if !slices.Equal(got, []string{"infra-00", "infra-04", "infra-08"}) {
			t.Fatalf("prefix infra- with maxResults %d: %v", size, got)
		}
	}
	out, err := f.client.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(ws), Name: aws.String("nothing")})
	if err != nil || len(out.RuleGroupsNamespaces) != 0 || out.NextToken != nil {
		t.Fatalf("no match: %+v %v", out, err)
	}
	// Default page size is 100: all 12 in one page.
	out, err = f.client.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(ws)})
	if err != nil || len(out.RuleGroupsNamespaces) != 12 || out.NextToken != nil {
		t.Fatalf("default page: %d %v", len(out.RuleGroupsNamespaces), err)
	}
	_, err = f.client.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(ws), NextToken: aws.String("not a token!")})
	apiError(t, err, awsapi.ValidationException)
}

func TestRuleGroupsNamespaceIdempotency(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig(), manual)
	ctx := context.Background()
	c := f.client
	ws := f.activeWorkspace(t)
	in := &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns"), Data: []byte(goodRules),
		ClientToken: aws.String("create-1"), Tags: map[string]string{"k": "v"}}
	first, err := c.CreateRuleGroupsNamespace(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	f.recon.ReconcileOnce(ctx)
	// A retry answers the namespace as it is now, and changes nothing.
	second, err := c.CreateRuleGroupsNamespace(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(first.Arn) != aws.ToString(second.Arn) || second.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeActive {
		t.Fatalf("retry: %+v", second)
	}
	// The same token with other parameters is a conflict, also for another name.
	for _, other := range []*amp.CreateRuleGroupsNamespaceInput{
		{WorkspaceId: aws.String(ws), Name: aws.String("ns"), Data: []byte(rulesWith(1, 1)), ClientToken: aws.String("create-1"), Tags: map[string]string{"k": "v"}},
		{WorkspaceId: aws.String(ws), Name: aws.String("ns"), Data: []byte(goodRules), ClientToken: aws.String("create-1")},
		{WorkspaceId: aws.String(ws), Name: aws.String("other"), Data: []byte(goodRules), ClientToken: aws.String("create-1"), Tags: map[string]string{"k": "v"}},
	} {
		_, err = c.CreateRuleGroupsNamespace(ctx, other)
		apiError(t, err, awsapi.ConflictException)
	}

	// Put: a retry with the same token is answered, not applied again.
	putIn := &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns"), Data: []byte(rulesWith(1, 2)), ClientToken: aws.String("put-1")}
	if _, err := c.PutRuleGroupsNamespace(ctx, putIn); err != nil {
		t.Fatal(err)
	}
	retry, err := c.PutRuleGroupsNamespace(ctx, putIn)
	if err != nil || retry.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeUpdating {
		t.Fatalf("put retry while UPDATING: %+v %v", retry, err)
	}
	// Another Put while UPDATING is a conflict.
	_, err = c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns"), Data: []byte(goodRules)})
	apiError(t, err, awsapi.ConflictException)
	putIn.Data = []byte(goodRules)
	_, err = c.PutRuleGroupsNamespace(ctx, putIn)
	apiError(t, err, awsapi.ConflictException)
	f.recon.ReconcileOnce(ctx)
	d, _ := f.describeNamespace(t, ws, "ns")
	if d.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeActive || string(d.Data) != rulesWith(1, 2) {
		t.Fatalf("after put: %s %q", d.Status.StatusCode, d.Data)
	}

	// Delete: a retry with the same token is answered 202; another delete is a conflict.
	delIn := &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns"), ClientToken: aws.String("delete-1")}
	for range 2 {
		if _, err := c.DeleteRuleGroupsNamespace(ctx, delIn); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns")})
	apiError(t, err, awsapi.ConflictException)
	_, err = c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns"), Data: []byte(goodRules)})
	apiError(t, err, awsapi.ConflictException)
	d, _ = f.describeNamespace(t, ws, "ns")
	if d.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeDeleting {
		t.Fatalf("status after delete: %s", d.Status.StatusCode)
	}
	f.recon.ReconcileOnce(ctx)
	_, err = f.describeNamespace(t, ws, "ns")
	apiError(t, err, awsapi.ResourceNotFoundException)

	// The SDK fills a fresh token (into the input) when none is given: two creates, one
	// namespace, one conflict.
	noToken := func() *amp.CreateRuleGroupsNamespaceInput {
		return &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("fresh"), Data: []byte(goodRules)}
	}
	if _, err := c.CreateRuleGroupsNamespace(ctx, noToken()); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateRuleGroupsNamespace(ctx, noToken())
	apiError(t, err, awsapi.ConflictException)
}

func TestRuleFileValidation(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig())
	ctx := context.Background()
	ws := f.activeWorkspace(t)
	long := strings.Repeat("n", 128)
	cases := []struct {
		name, namespace, data string
		want                  []string // the message must hold each
	}{
		{"bad PromQL", "ns", "groups:\n- name: g1\n  rules:\n  - record: r1\n    expr: sum(rate(x[5m])\n",
			[]string{`group "g1"`, `rule 1`, `"r1"`, "could not parse expression"}},
		{"duplicate group", "ns", "groups:\n- name: g1\n  rules: [{record: r1, expr: up}]\n- name: g1\n  rules: [{record: r2, expr: up}]\n",
			[]string{`"g1" is repeated`}},
		{"bad template", "ns", "groups:\n- name: g1\n  rules:\n  - alert: A1\n    expr: up == 0\n    annotations: {summary: '{{ .Labels.job '}\n",
			[]string{`group "g1"`, `"A1"`, `annotation "summary"`}},
		{"interval below the minimum", "ns", "groups:\n- name: fast\n  interval: 10s\n  rules: [{record: r1, expr: up}]\n",
			[]string{`group "fast"`, "interval 10s", "minimum rule evaluation interval of 30s"}},
		{"record and alert", "ns", "groups:\n- name: g1\n  rules: [{record: r1, alert: A1, expr: up}]\n",
			[]string{`group "g1"`, "only one of 'record' and 'alert'"}},
		{"neither record nor alert", "ns", "groups:\n- name: g1\n  rules: [{expr: up}]\n",
			[]string{`group "g1"`, "one of 'record' or 'alert' must be set"}},
		{"for on a recording rule", "ns", "groups:\n- name: g1\n  rules: [{record: r1, expr: up, for: 5m}]\n",
			[]string{`"r1"`, "invalid field 'for' in recording rule"}},
		{"keep_firing_for on a recording rule", "ns", "groups:\n- name: g1\n  rules: [{record: r1, expr: up, keep_firing_for: 5m}]\n",
			[]string{`"r1"`, "keep_firing_for"}},
		{"bad for", "ns", "groups:\n- name: g1\n  rules: [{alert: A1, expr: up, for: soon}]\n",
			[]string{"soon"}},
		{"bad query_offset", "ns", "groups:\n- name: g1\n  query_offset: later\n  rules: [{record: r1, expr: up}]\n",
			[]string{"later"}},
		{"bad limit", "ns", "groups:\n- name: g1\n  limit: many\n  rules: [{record: r1, expr: up}]\n",
			[]string{"many"}},
		{"negative limit", "ns", "groups:\n- name: g1\n  limit: -1\n  rules: [{record: r1, expr: up}]\n",
			[]string{`group "g1"`, "limit -1"}},
		{"braces in a record name", "ns", "groups:\n- name: g1\n  rules: [{record: 'r{a=\"b\"}', expr: up}]\n",
			[]string{"braces"}},
		{"unknown field", "ns", "groups:\n- name: g1\n  rulez: []\n",
			[]string{"rulez"}},
		{"not YAML", "ns", "groups: [\n", []string{"yaml"}},
		{"empty group name", "ns", "groups:\n- name: ''\n  rules: [{record: r1, expr: up}]\n",
			[]string{"Groupname must not be empty"}},
		{"namespace and group names too long", long, "groups:\n- name: " + strings.Repeat("g", 600) + "\n  rules: [{record: r1, expr: up}]\n",
			[]string{"more than 721"}},
		{"namespace name with a slash", "a/b", goodRules, []string{"name"}},
		{"namespace name too long", long + "x", goodRules, []string{"name", "128"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String(tc.namespace), Data: []byte(tc.data)})
			ae := apiError(t, err, awsapi.ValidationException)
			for _, w := range tc.want {
				if !strings.Contains(ae.ErrorMessage(), w) {
					t.Fatalf("message %q does not hold %q", ae.ErrorMessage(), w)
				}
			}
			// Put validates the same way.
			if tc.namespace == "ns" {
				f.createNamespace(t, ws, "ns", goodRules)
				_, err := f.client.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns"), Data: []byte(tc.data)})
				apiError(t, err, awsapi.ValidationException)
				if _, err := f.client.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("ns")}); err != nil {
					t.Fatal(err)
				}
				f.waitNamespace(t, ws, "ns", "")
			}
		})
	}
	// Many errors are listed up to a bound.
	var b strings.Builder
	b.WriteString("groups:\n- name: g\n  rules:\n")
	for i := range 15 {
		fmt.Fprintf(&b, "  - record: r%d\n    expr: 'sum('\n", i)
	}
	_, err := f.client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("many"), Data: []byte(b.String())})
	ae := apiError(t, err, awsapi.ValidationException)
	if !strings.Contains(ae.ErrorMessage(), `"r9"`) || strings.Contains(ae.ErrorMessage(), `"r10"`) || !strings.Contains(ae.ErrorMessage(), "and 5 more") {
		t.Fatalf("many errors: %q", ae.ErrorMessage())
	}
	// Nothing was stored.
	out, _ := f.client.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(ws)})
	if len(out.RuleGroupsNamespaces) != 0 {
		t.Fatalf("refused files left %d namespaces", len(out.RuleGroupsNamespaces))
	}
	// A group that sets no interval, and one at the minimum, are fine.
	f.createNamespace(t, ws, "ok", "groups:\n- name: g1\n  rules: [{record: r1, expr: up}]\n- name: g2\n  interval: 30s\n  rules: [{record: r2, expr: up}]\n")
}

// quotaError asserts err is a ServiceQuotaExceededException with quotaCode and returns
// its message.
func quotaError(t *testing.T, err error, quotaCode string) string {
	t.Helper()
	var qe *types.ServiceQuotaExceededException
	if !errors.As(err, &qe) {
		t.Fatalf("want ServiceQuotaExceededException, got %v", err)
	}
	if aws.ToString(qe.QuotaCode) != quotaCode || aws.ToString(qe.ServiceCode) == "" {
		t.Fatalf("quotaCode %q serviceCode %q, want %q: %s", aws.ToString(qe.QuotaCode), aws.ToString(qe.ServiceCode), quotaCode, aws.ToString(qe.Message))
	}
	return aws.ToString(qe.Message)
}

// Quotas come from the limits, overridden per workspace by the operator's runtime file.
func TestRuleQuotasFromRuntimeOverrides(t *testing.T) {
	dir := t.TempDir()
	rt := filepath.Join(dir, "runtime.yaml")
	if err := os.WriteFile(rt, []byte(`overrides:
  ws-small:
    ruler_max_rule_groups_namespaces: 2
    ruler_max_rule_groups_per_workspace: 3
    ruler_max_rules_per_workspace: 5
    ruler_max_rules_per_rule_group: 3
    ruler_max_namespace_size_bytes: 400
    ruler_min_evaluation_interval: 2m
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := limits.Config{Limits: limits.Default(), RuntimeConfigFile: rt, RuntimeConfigReloadPeriod: time.Hour}
	overrides, err := limits.NewOverrides(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"ws-small", "ws-default"}
	f := newFixture(t, filepath.Join(dir, "bucket"), defaultConfig(), func(f *fixture) {
		f.api.Limits = overrides
		f.recon.Limits = overrides
		f.api.newID = func() string { id := ids[0]; ids = ids[1:]; return id }
	})
	ctx := context.Background()
	small, other := f.activeWorkspace(t), f.activeWorkspace(t)
	create := func(ws, name, data string) error {
		_, err := f.client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String(name), Data: []byte(data)})
		return err
	}

	msg := quotaError(t, create(small, "big", rulesWith(1, 4)), "")
	if !strings.Contains(msg, "rules per rule group") || !strings.Contains(msg, "ruler_max_rules_per_rule_group") {
		t.Fatalf("rules per group: %q", msg)
	}
	msg = quotaError(t, create(small, "big", rulesWith(20, 1)), quotaNamespaceFileSize)
	if !strings.Contains(msg, "the limit is 400") {
		t.Fatalf("file size: %q", msg)
	}
	ae := apiError(t, create(small, "fast", "groups:\n- name: g\n  interval: 1m\n  rules: [{record: r, expr: up}]\n"), awsapi.ValidationException)
	if !strings.Contains(ae.ErrorMessage(), "2m") {
		t.Fatalf("interval: %q", ae.ErrorMessage())
	}

	if err := create(small, "a", rulesWith(2, 2)); err != nil { // 2 groups, 4 rules
		t.Fatal(err)
	}
	msg = quotaError(t, create(small, "b", rulesWith(2, 1)), "")
	if !strings.Contains(msg, "rule groups per workspace") || !strings.Contains(msg, "would have 4") {
		t.Fatalf("groups per workspace: %q", msg)
	}
	msg = quotaError(t, create(small, "b", rulesWith(1, 2)), quotaRulesPerWorkspace)
	if !strings.Contains(msg, "rules per workspace") || !strings.Contains(msg, "would have 6, the limit is 5") {
		t.Fatalf("rules per workspace: %q", msg)
	}
	if err := create(small, "b", rulesWith(1, 1)); err != nil {
		t.Fatal(err)
	}
	msg = quotaError(t, create(small, "c", rulesWith(0, 0)), "")
	if !strings.Contains(msg, "rule groups namespaces per workspace") {
		t.Fatalf("namespaces: %q", msg)
	}
	// Put counts the namespace's new file instead of its old one.
	f.waitNamespace(t, small, "a", types.RuleGroupsNamespaceStatusCodeActive)
	if _, err := f.client.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(small), Name: aws.String("a"), Data: []byte(rulesWith(2, 2))}); err != nil {
		t.Fatalf("put of the same size: %v", err)
	}
	f.waitNamespace(t, small, "a", types.RuleGroupsNamespaceStatusCodeActive)
	_, err = f.client.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(small), Name: aws.String("a"), Data: []byte(rulesWith(2, 3))})
	quotaError(t, err, quotaRulesPerWorkspace)
	// A namespace being deleted does not count.
	if _, err := f.client.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(small), Name: aws.String("b")}); err != nil {
		t.Fatal(err)
	}
	if err := create(small, "c", rulesWith(1, 1)); err != nil {
		t.Fatal(err)
	}

	// The other workspace has the defaults (AMP's).
	if err := create(other, "big", rulesWith(1, 20)); err != nil {
		t.Fatal(err)
	}
	quotaError(t, create(other, "bigger", rulesWith(1, 21)), "")
	ae = apiError(t, create(other, "fast", "groups:\n- name: g\n  interval: 29s\n  rules: [{record: r, expr: up}]\n"), awsapi.ValidationException)
	if !strings.Contains(ae.ErrorMessage(), "30s") {
		t.Fatalf("default minimum interval: %q", ae.ErrorMessage())
	}
	for i := range 9 {
		if err := create(other, fmt.Sprintf("n%d", i), rulesWith(1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	quotaError(t, create(other, "eleventh", rulesWith(1, 1)), "")
}

// A quota lowered between a request and the reconciler's step fails the namespace or
// definition with the reason, and a later Put can fix it.
func TestRulesFailWhenQuotaLoweredMeanwhile(t *testing.T) {
	lim := newSwapLimits(nil)
	f := newFixture(t, t.TempDir(), defaultConfig(), manual, func(f *fixture) {
		f.api.Limits = lim
		f.recon.Limits = lim
	})
	ctx := context.Background()
	c := f.client
	ws := f.activeWorkspace(t)

	f.createNamespace(t, ws, "created", rulesWith(1, 3))
	if _, err := c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws), Data: []byte(definitionWithTemplates(2))}); err != nil {
		t.Fatal(err)
	}
	lim.set(func(l *limits.Limits) { l.RulerMaxRulesPerRuleGroup = 2; l.AlertmanagerMaxTemplatesCount = 1 })
	f.recon.ReconcileOnce(ctx)
	d, _ := f.describeNamespace(t, ws, "created")
	if d.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeCreationFailed || !strings.Contains(aws.ToString(d.Status.StatusReason), "rules per rule group") {
		t.Fatalf("created namespace: %s %q", d.Status.StatusCode, aws.ToString(d.Status.StatusReason))
	}
	am, _ := c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(ws)})
	if s := am.AlertManagerDefinition.Status; s.StatusCode != types.AlertManagerDefinitionStatusCodeCreationFailed || !strings.Contains(aws.ToString(s.StatusReason), "templates") {
		t.Fatalf("definition: %s %q", s.StatusCode, aws.ToString(s.StatusReason))
	}
	// A Put within the quota brings both back.
	if _, err := c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("created"), Data: []byte(rulesWith(1, 2))}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: aws.String(ws), Data: []byte(definitionWithTemplates(1))}); err != nil {
		t.Fatal(err)
	}
	f.recon.ReconcileOnce(ctx)
	d, _ = f.describeNamespace(t, ws, "created")
	am, _ = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(ws)})
	if d.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeActive || d.Status.StatusReason != nil ||
		am.AlertManagerDefinition.Status.StatusCode != types.AlertManagerDefinitionStatusCodeActive {
		t.Fatalf("after fixing puts: %s %v, %s", d.Status.StatusCode, d.Status.StatusReason, am.AlertManagerDefinition.Status.StatusCode)
	}

	// An update over a lowered quota fails as UPDATE_FAILED.
	if _, err := c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("created"), Data: []byte(rulesWith(2, 2))}); err != nil {
		t.Fatal(err)
	}
	lim.set(func(l *limits.Limits) { l.RulerMaxRulesPerWorkspace = 3 })
	f.recon.ReconcileOnce(ctx)
	d, _ = f.describeNamespace(t, ws, "created")
	if d.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeUpdateFailed || !strings.Contains(aws.ToString(d.Status.StatusReason), "rules per workspace") {
		t.Fatalf("updated namespace: %s %q", d.Status.StatusCode, aws.ToString(d.Status.StatusReason))
	}
	// A failed namespace can be deleted.
	if _, err := c.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("created")}); err != nil {
		t.Fatal(err)
	}
	f.recon.ReconcileOnce(ctx)
	_, err := f.describeNamespace(t, ws, "created")
	apiError(t, err, awsapi.ResourceNotFoundException)
	// Nothing is pending: another pass writes nothing.
	before, _ := f.store.GetWorkspace(ctx, ws)
	f.recon.ReconcileOnce(ctx)
	after, _ := f.store.GetWorkspace(ctx, ws)
	if !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatal("a reconcile pass with nothing pending rewrote the workspace")
	}
}

// Creating a namespace with tags is also a TagResource on it, as in AWS.
func TestCreateNamespaceWithTagsNeedsTagResource(t *testing.T) {
	type call struct{ action, resource string }
	var (
		mu    sync.Mutex
		calls []call
	)
	recorded := func() []call {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}
	f := newFixture(t, t.TempDir(), defaultConfig(), func(f *fixture) {
		f.api.Authorize = func(r *http.Request, action, resource string) error {
			mu.Lock()
			calls = append(calls, call{action, resource})
			mu.Unlock()
			if r.Header.Get("X-Test-Deny") != "" {
				return &awsapi.Error{Status: http.StatusForbidden, Type: awsapi.AccessDeniedException, Message: "not authorized to perform: " + action + " on resource: " + resource}
			}
			return nil
		}
	})
	ctx := context.Background()
	ws := f.activeWorkspace(t)
	deny := func(o *amp.Options) {
		o.APIOptions = append(o.APIOptions, addHeader("X-Test-Deny", "1"))
	}
	_, err := f.client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("tagged"), Data: []byte(goodRules), Tags: map[string]string{"team": "a"}}, deny)
	ae := apiError(t, err, awsapi.AccessDeniedException)
	want := fmt.Sprintf("arn:aws:aps:%s:%s:rulegroupsnamespace/%s/tagged", testRegion, testAccount, ws)
	if got := recorded(); !strings.Contains(ae.ErrorMessage(), "aps:TagResource") || len(got) != 1 || got[0] != (call{"aps:TagResource", want}) {
		t.Fatalf("denied tagged create: %q, calls %v", ae.ErrorMessage(), got)
	}
	_, err = f.describeNamespace(t, ws, "tagged")
	apiError(t, err, awsapi.ResourceNotFoundException)
	// Without tags, no TagResource is needed.
	if _, err := f.client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("untagged"), Data: []byte(goodRules)}, deny); err != nil {
		t.Fatal(err)
	}
	if got := recorded(); len(got) != 1 {
		t.Fatalf("untagged create authorized %v", got[1:])
	}
	if _, err := f.client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("tagged"), Data: []byte(goodRules), Tags: map[string]string{"team": "a"}}); err != nil {
		t.Fatal(err)
	}
}

// DeleteWorkspace takes the namespaces and the definition with it; meanwhile they are
// DELETING, so that nothing runs them.
func TestDeleteWorkspaceDeletesRules(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig())
	ctx := context.Background()
	c := f.client
	ws := f.activeWorkspace(t)
	created := f.createNamespace(t, ws, "ns", goodRules)
	if _, err := c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws), Data: []byte(minimalDefinition)}); err != nil {
		t.Fatal(err)
	}
	f.waitNamespace(t, ws, "ns", types.RuleGroupsNamespaceStatusCodeActive)
	f.hook.set(false, true)
	if _, err := c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(ws)}); err != nil {
		t.Fatal(err)
	}
	d, err := f.describeNamespace(t, ws, "ns")
	if err != nil || d.Status.StatusCode != types.RuleGroupsNamespaceStatusCodeDeleting {
		t.Fatalf("namespace while the workspace is deleted: %+v %v", d, err)
	}
	am, err := c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(ws)})
	if err != nil || am.AlertManagerDefinition.Status.StatusCode != types.AlertManagerDefinitionStatusCodeDeleting {
		t.Fatalf("definition while the workspace is deleted: %+v %v", am, err)
	}
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("late"), Data: []byte(goodRules)})
	apiError(t, err, awsapi.ConflictException)
	f.hook.set(false, false)
	w := amp.NewWorkspaceDeletedWaiter(c, func(o *amp.WorkspaceDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	})
	if err := w.Wait(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err = c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: created.Arn})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(ws)})
	apiError(t, err, awsapi.ResourceNotFoundException)
}

// The record of a workspace is bounded: rule files beyond it are a quota error, not a
// record that cannot be read back.
func TestRulesBeyondTheRecordSize(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig(), func(f *fixture) {
		f.store.SetMaxRecordBytes(64 << 10) // 16 MiB in production, slow to encode under -race
	})
	ctx := context.Background()
	ws := f.activeWorkspace(t)
	// 20 KB of rule file is 27 KB in the record (base64): the third does not fit.
	big := rulesWith(1, 1) + "# " + strings.Repeat("x", 20_000) + "\n"
	for i := range 2 {
		f.createNamespace(t, ws, fmt.Sprintf("big-%d", i), big)
	}
	_, err := f.client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("big-2"), Data: []byte(big)})
	msg := quotaError(t, err, "")
	if !strings.Contains(msg, "record") {
		t.Fatalf("message %q", msg)
	}
	if w, err := f.store.GetWorkspace(ctx, ws); err != nil || len(w.RuleGroupsNamespaces) != 2 {
		t.Fatalf("record after the refusal: %d namespaces, %v", len(w.RuleGroupsNamespaces), err)
	}
}

func TestRulesRawRequestErrors(t *testing.T) {
	f := newFixture(t, t.TempDir(), Config{MaxRequestBodyBytes: 1 << 20})
	ws := f.activeWorkspace(t)
	base := "/workspaces/" + ws
	cases := []struct {
		name, method, path, body string
		status                   int
		errType, inMessage       string
	}{
		{"data not base64", "POST", base + "/rulegroupsnamespaces", `{"name":"n","data":"!!!"}`, 400, awsapi.ValidationException, "data is not base64"},
		{"data missing", "POST", base + "/rulegroupsnamespaces", `{"name":"n"}`, 400, awsapi.ValidationException, "data is required"},
		{"name missing", "POST", base + "/rulegroupsnamespaces", `{"data":"Z3JvdXBzOiBbXQo="}`, 400, awsapi.ValidationException, "name is required"},
		{"data of the wrong type", "POST", base + "/rulegroupsnamespaces", `{"name":"n","data":5}`, 400, awsapi.ValidationException, "data"},
		{"put without data", "PUT", base + "/rulegroupsnamespaces/n", `{}`, 400, awsapi.ValidationException, "data is required"},
		{"bad name in the path", "GET", base + "/rulegroupsnamespaces/-x", ``, 400, awsapi.ValidationException, "name"},
		{"bad client token", "DELETE", base + "/rulegroupsnamespaces/n?clientToken=a%20b", ``, 400, awsapi.ValidationException, "clientToken"},
		{"maxResults zero", "GET", base + "/rulegroupsnamespaces?maxResults=0", ``, 400, awsapi.ValidationException, "maxResults"},
		{"maxResults too large", "GET", base + "/rulegroupsnamespaces?maxResults=1001", ``, 400, awsapi.ValidationException, "maxResults"},
		{"empty name filter", "GET", base + "/rulegroupsnamespaces?name=", ``, 400, awsapi.ValidationException, "name"},
		{"definition not base64", "POST", base + "/alertmanager/definition", `{"data":"%%%"}`, 400, awsapi.ValidationException, "data is not base64"},
		{"definition missing", "PUT", base + "/alertmanager/definition", `{}`, 400, awsapi.ValidationException, "data is required"},
		{"describe missing", "GET", base + "/rulegroupsnamespaces/none", ``, 404, awsapi.ResourceNotFoundException, "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, errType, body := rawCall(t, tc.method, f.url+tc.path, tc.body)
			if status != tc.status || errType != tc.errType {
				t.Fatalf("got %d %s %v, want %d %s", status, errType, body, tc.status, tc.errType)
			}
			if msg, _ := body["message"].(string); !strings.Contains(msg, tc.inMessage) {
				t.Fatalf("message %q does not mention %q", msg, tc.inMessage)
			}
		})
	}
	// A create answers 202 with the model's members.
	status, _, body := rawCall(t, "POST", f.url+base+"/rulegroupsnamespaces", `{"name":"raw","data":"Z3JvdXBzOiBbXQo="}`)
	if status != http.StatusAccepted || body["name"] != "raw" || body["arn"] == nil || body["status"] == nil {
		t.Fatalf("create: %d %v", status, body)
	}
	if _, ok := body["tags"]; ok {
		t.Fatalf("create without tags answered tags: %v", body)
	}
	w, _ := f.store.GetWorkspace(context.Background(), ws)
	if ns := w.RuleGroupsNamespaces["raw"]; ns == nil || string(ns.Data) != "groups: []\n" || ns.Status != meta.StatusCreating && ns.Status != meta.StatusActive {
		t.Fatalf("stored: %+v", ns)
	}
}

// addHeader sets a request header on the SDK's requests.
func addHeader(key, value string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Build.Add(middleware.BuildMiddlewareFunc("testHeader", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				req.Header.Set(key, value)
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
	}
}
