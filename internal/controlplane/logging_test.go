package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"

	"github.com/stratametrics/strata/internal/awsapi"
)

const (
	logGroup      = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vendedlogs/prometheus/team-a:*"
	otherLogGroup = "arn:aws:logs:us-east-1:123456789012:log-group:team-a-2:*"
)

// logGroupChecker refuses the log groups it is told to.
type logGroupChecker struct{ refuse string }

func (c *logGroupChecker) CheckLogGroup(_ context.Context, arn string) error {
	if arn == c.refuse {
		return errors.New("log group does not exist")
	}
	return nil
}

// The 4 operations of the logging configuration through the AWS SDK: states, errors,
// idempotency, and a log group the sink refuses.
func TestLoggingConfigurationLifecycle(t *testing.T) {
	checker := &logGroupChecker{refuse: otherLogGroup}
	f := newFixture(t, t.TempDir(), defaultConfig(), manual, func(f *fixture) { f.recon.LogGroups = checker })
	ctx := context.Background()
	c := f.client
	ws := aws.String(f.activeWorkspace(t))

	_, err := c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(logGroup)})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.DeleteLoggingConfiguration(ctx, &amp.DeleteLoggingConfigurationInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: aws.String("ws-nope"), LogGroupArn: aws.String(logGroup)})
	apiError(t, err, awsapi.ResourceNotFoundException)

	for _, bad := range []string{
		"arn:aws:logs:us-east-1:123456789012:log-group:team-a",   // no :*
		"arn:aws:logs:us-east-1:999999999999:log-group:team-a:*", // another account
		"arn:aws:logs:eu-west-1:123456789012:log-group:team-a:*", // another region
		"arn:aws:logs:us-east-1:123456789012:log-group:team a:*", // space
		"arn:aws:sns:us-east-1:123456789012:log-group:team-a:*",  // not logs
	} {
		_, err := c.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(bad)})
		apiError(t, err, awsapi.ValidationException)
	}

	in := &amp.CreateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(logGroup), ClientToken: aws.String("log-1")}
	created, err := c.CreateLoggingConfiguration(ctx, in)
	if err != nil || created.Status.StatusCode != types.LoggingConfigurationStatusCodeCreating {
		t.Fatalf("create: %+v %v", created, err)
	}
	if retry, err := c.CreateLoggingConfiguration(ctx, in); err != nil || retry.Status.StatusCode != types.LoggingConfigurationStatusCodeCreating {
		t.Fatalf("idempotent retry: %+v %v", retry, err)
	}
	_, err = c.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(otherLogGroup), ClientToken: aws.String("log-1")})
	apiError(t, err, awsapi.ConflictException)
	_, err = c.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(logGroup)})
	apiError(t, err, awsapi.ValidationException) // one per workspace
	_, err = c.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(logGroup)})
	apiError(t, err, awsapi.ConflictException) // still CREATING

	f.recon.ReconcileOnce(ctx)
	d, err := c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	if err != nil {
		t.Fatal(err)
	}
	lc := d.LoggingConfiguration
	if lc.Status.StatusCode != types.LoggingConfigurationStatusCodeActive || aws.ToString(lc.LogGroupArn) != logGroup ||
		aws.ToString(lc.Workspace) != *ws || lc.CreatedAt == nil || !lc.ModifiedAt.Equal(*lc.CreatedAt) {
		t.Fatalf("describe: %+v", lc)
	}

	// A log group the sink refuses: UPDATE_FAILED with the reason, and the
	// configuration can be updated again.
	up, err := c.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(otherLogGroup)})
	if err != nil || up.Status.StatusCode != types.LoggingConfigurationStatusCodeUpdating {
		t.Fatalf("update: %+v %v", up, err)
	}
	f.recon.ReconcileOnce(ctx)
	d, err = c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.LoggingConfiguration.Status; s.StatusCode != types.LoggingConfigurationStatusCodeUpdateFailed || !strings.Contains(aws.ToString(s.StatusReason), "does not exist") {
		t.Fatalf("after a refused log group: %+v", s)
	}
	if _, err := c.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(logGroup)}); err != nil {
		t.Fatal(err)
	}
	f.recon.ReconcileOnce(ctx)

	if _, err := c.DeleteLoggingConfiguration(ctx, &amp.DeleteLoggingConfigurationInput{WorkspaceId: ws, ClientToken: aws.String("del-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteLoggingConfiguration(ctx, &amp.DeleteLoggingConfigurationInput{WorkspaceId: ws, ClientToken: aws.String("del-1")}); err != nil {
		t.Fatalf("idempotent delete: %v", err)
	}
	_, err = c.DeleteLoggingConfiguration(ctx, &amp.DeleteLoggingConfigurationInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ConflictException)
	d, err = c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	if err != nil || d.LoggingConfiguration.Status.StatusCode != types.LoggingConfigurationStatusCodeDeleting {
		t.Fatalf("describe while deleting: %+v %v", d, err)
	}
	f.recon.ReconcileOnce(ctx)
	_, err = c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)
}

// The 4 operations of the query logging configuration through the AWS SDK.
func TestQueryLoggingConfigurationLifecycle(t *testing.T) {
	f := newFixture(t, t.TempDir(), defaultConfig(), manual, func(f *fixture) { f.recon.LogGroups = &logGroupChecker{} })
	ctx := context.Background()
	c := f.client
	ws := aws.String(f.activeWorkspace(t))
	dest := func(arn string, qsp int64) []types.LoggingDestination {
		return []types.LoggingDestination{{
			CloudWatchLogs: &types.CloudWatchLogDestination{LogGroupArn: aws.String(arn)},
			Filters:        &types.LoggingFilter{QspThreshold: aws.Int64(qsp)},
		}}
	}

	_, err := c.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)
	_, err = c.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: append(dest(logGroup, 1), dest(otherLogGroup, 1)...)})
	apiError(t, err, awsapi.ValidationException) // two destinations
	_, err = c.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: dest(logGroup, -1)})
	apiError(t, err, awsapi.ValidationException)

	created, err := c.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: dest(logGroup, 100000)})
	if err != nil || created.Status.StatusCode != types.QueryLoggingConfigurationStatusCodeCreating {
		t.Fatalf("create: %+v %v", created, err)
	}
	f.recon.ReconcileOnce(ctx)
	if _, err := c.UpdateQueryLoggingConfiguration(ctx, &amp.UpdateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: dest(otherLogGroup, 5)}); err != nil {
		t.Fatal(err)
	}
	f.recon.ReconcileOnce(ctx)
	d, err := c.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: ws})
	if err != nil {
		t.Fatal(err)
	}
	q := d.QueryLoggingConfiguration
	if q.Status.StatusCode != types.QueryLoggingConfigurationStatusCodeActive || len(q.Destinations) != 1 ||
		aws.ToString(q.Destinations[0].CloudWatchLogs.LogGroupArn) != otherLogGroup || aws.ToInt64(q.Destinations[0].Filters.QspThreshold) != 5 ||
		q.ModifiedAt == nil || !q.ModifiedAt.After(*q.CreatedAt) && !q.ModifiedAt.Equal(*q.CreatedAt) {
		t.Fatalf("describe: %+v", q)
	}
	// The workspace logging configuration is a separate resource.
	_, err = c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)

	if _, err := c.DeleteQueryLoggingConfiguration(ctx, &amp.DeleteQueryLoggingConfigurationInput{WorkspaceId: ws}); err != nil {
		t.Fatal(err)
	}
	f.recon.ReconcileOnce(ctx)
	_, err = c.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: ws})
	apiError(t, err, awsapi.ResourceNotFoundException)
}
