package app

import (
	"context"
	"fmt"
	"time"

	"github.com/stratametrics/strata/internal/auth/policy"
)

// scraperRoles checks the roleConfiguration of a scraper writing into another account's
// workspace as AWS would make it work: both roles are in the identities file, the
// target role's trust policy lets the source role assume it (sts:AssumeRole), and the
// target role may write into the workspace (aps:RemoteWrite, with the workspace's
// resource policy).
func (a *App) scraperRoles(ctx context.Context, sourceRole, targetRole, workspaceARN string) error {
	ids := a.auth.Store().Identities()
	src, ok := ids.Role(sourceRole)
	if !ok {
		return fmt.Errorf("sourceRoleArn %s is not a role this server knows (identities file)", sourceRole)
	}
	dst, ok := ids.Role(targetRole)
	if !ok {
		return fmt.Errorf("targetRoleArn %s is not a role this server knows (identities file)", targetRole)
	}
	srcPrincipal, err := policy.ParsePrincipal(src.ARN)
	if err != nil {
		return err
	}
	now := time.Now()
	// Across accounts AWS needs both: the trust policy's grant and the source role's own
	// permission to assume the target.
	trust := policy.Explain(src.Policies, dst.TrustPolicy, policy.Request{
		Principal: srcPrincipal, Action: "sts:AssumeRole", Resource: dst.ARN, Time: now, RequireResourceGrant: true,
	})
	if trust.Decision != policy.Allow {
		return fmt.Errorf("%s may not assume targetRoleArn %s: its trust policy and the source role's policies must both allow sts:AssumeRole (%s)", src.ARN, dst.ARN, trust)
	}
	dstPrincipal, err := policy.ParsePrincipal(dst.ARN)
	if err != nil {
		return err
	}
	resPolicy, err := a.resources.ResourcePolicy(ctx, workspaceARN)
	if err != nil {
		return err
	}
	write := policy.Explain(dst.Policies, resPolicy, policy.Request{
		Principal: dstPrincipal, Action: "aps:RemoteWrite", Resource: workspaceARN, Time: now,
	})
	if write.Decision != policy.Allow {
		return fmt.Errorf("targetRoleArn %s may not aps:RemoteWrite into %s (%s)", dst.ARN, workspaceARN, write)
	}
	return nil
}
