package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/stratametrics/strata/internal/testutil"
)

// scraperIdentities: account 222222222222's user partner creates scrapers; its role
// scraper-source may assume roles of the server's account, and role scraper-target
// there trusts it and may write into workspaces. untrusting trusts only its own account;
// no-write is trusted but may not write.
const scraperIdentities = `
accounts:
  - id: "222222222222"
users:
  - name: partner
    account: "222222222222"
    access_keys: [{id: AKIDPARTNER000000001, secret: partner-secret-00000000000}]
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["aps:CreateScraper", "aps:DescribeScraper"], "Resource": "*"}]}
roles:
  - name: scraper-source
    account: "222222222222"
    trust_policy: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "scraper.aps.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::000000000000:role/*"}]}
  - name: scraper-target
    trust_policy: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:role/scraper-source"}, "Action": "sts:AssumeRole"}]}
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": "*"}]}
  - name: untrusting
    trust_policy: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "000000000000"}, "Action": "sts:AssumeRole"}]}
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": "*"}]}
  - name: no-write
    trust_policy: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:role/scraper-source"}, "Action": "sts:AssumeRole"}]}
    inline_policies:
      - {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aps:QueryMetrics", "Resource": "*"}]}
`

// A scraper of one account writes into another account's workspace only through roles
// that allow it: the target role trusts the source role and may write there.
func TestCrossAccountScraperRoles(t *testing.T) {
	dir := t.TempDir()
	ids := filepath.Join(dir, "identities.yaml")
	if err := os.WriteFile(ids, []byte(scraperIdentities), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "--data-dir", dir, "--auth.identities-file", ids)
	ws := newWorkspace(t, r)
	wsARN := "arn:aws:aps:us-east-1:000000000000:workspace/" + ws
	partner := ampAs(r, "AKIDPARTNER000000001", "partner-secret-00000000000")
	ctx := context.Background()
	create := func(roles *types.RoleConfiguration) (*amp.CreateScraperOutput, error) {
		return partner.CreateScraper(ctx, &amp.CreateScraperInput{
			ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['127.0.0.1:9']}]\n")},
			Source: &types.SourceMemberEksConfiguration{Value: types.EksConfiguration{
				ClusterArn: aws.String("arn:aws:eks:us-east-1:222222222222:cluster/partner"), SubnetIds: []string{"subnet-0a"}}},
			Destination:       &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: aws.String(wsARN)}},
			RoleConfiguration: roles,
		})
	}
	roles := func(target string) *types.RoleConfiguration {
		return &types.RoleConfiguration{
			SourceRoleArn: aws.String("arn:aws:iam::222222222222:role/scraper-source"),
			TargetRoleArn: aws.String("arn:aws:iam::000000000000:role/" + target),
		}
	}
	for name, tc := range map[string]struct {
		roles *types.RoleConfiguration
		want  string
	}{
		"no roles":        {nil, "roleConfiguration"},
		"untrusting role": {roles("untrusting"), "may not assume"},
		"no-write role":   {roles("no-write"), "aps:RemoteWrite"},
		"unknown role":    {roles("nobody"), "not a role this server knows"},
	} {
		_, err := create(tc.roles)
		if apiCode(err) != "ValidationException" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a ValidationException about %q", name, err, tc.want)
		}
	}
	out, err := create(roles("scraper-target"))
	if err != nil {
		t.Fatalf("roles that allow it: %v", err)
	}
	d, err := partner.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: out.ScraperId})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(aws.ToString(d.Scraper.Arn), "arn:aws:aps:us-east-1:222222222222:scraper/") ||
		aws.ToString(d.Scraper.RoleConfiguration.TargetRoleArn) != "arn:aws:iam::000000000000:role/scraper-target" {
		t.Fatalf("the partner's scraper: %+v", d.Scraper)
	}
	// The workspace's own account (its root, even) may not act on another account's
	// scraper: the scraper's ARN is in account 222222222222, and no policy there lets it.
	_, err = r.client().DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: out.ScraperId})
	if apiCode(err) != "AccessDeniedException" {
		t.Fatalf("describe from the workspace's account: %v", err)
	}
}

// A scraper's series are checked once, when first scraped, under the workspace's label
// limits; when the runtime limits change, the series no longer valid are refused from
// the next scrape on, and the others keep coming. (The new limit of 20 bytes still fits
// every other value: the instance, 127.0.0.1:port, is at most 15.) With the ingest log
// too: the scraper's requests, built in process, cross it in their wire form.
func TestScraperLabelChecksFollowLimits(t *testing.T) {
	for _, backend := range []string{"direct", "jetstream"} {
		t.Run(backend, func(t *testing.T) { testScraperLabelChecks(t, "--ingest.backend", backend) })
	}
}

func testScraperLabelChecks(t *testing.T, extra ...string) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "short_v{v=\"a\"} 1\nlong_v{v=\"0123456789abcdef01234567\"} 1\n")
	}))
	t.Cleanup(target.Close)
	dir := t.TempDir()
	rc := filepath.Join(dir, "runtime.yaml")
	writeOverrides(t, rc, "overrides: {}\n")
	r := start(t, append([]string{"--data-dir", dir, "--limits.runtime-config-file", rc, "--limits.runtime-config-reload-period", "50ms",
		"--scraper.discovery-update-interval", "100ms"}, extra...)...)
	ws := newWorkspace(t, r)
	blob := fmt.Sprintf("global: {scrape_interval: 100ms, scrape_timeout: 100ms}\nscrape_configs:\n  - job_name: t\n    static_configs: [{targets: [%q]}]\n",
		strings.TrimPrefix(target.URL, "http://"))
	if _, err := r.client().CreateScraper(context.Background(), &amp.CreateScraperInput{
		ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(blob)},
		Source: &types.SourceMemberEksConfiguration{Value: types.EksConfiguration{
			ClusterArn: aws.String("arn:aws:eks:us-east-1:000000000000:cluster/c"), SubnetIds: []string{"subnet-0a"}}},
		Destination: &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{
			WorkspaceArn: aws.String("arn:aws:aps:us-east-1:000000000000:workspace/" + ws)}},
	}); err != nil {
		t.Fatal(err)
	}
	count := func(name string) int {
		return len(stored(t, r, ws, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))[fmt.Sprintf(`{__name__=%q, instance=%q, job="t", v=%q}`,
			name, strings.TrimPrefix(target.URL, "http://"), map[string]string{"short_v": "a", "long_v": "0123456789abcdef01234567"}[name])])
	}
	testutil.Eventually(t, 20*time.Second, "both series scraped three times", func() bool {
		return count("short_v") >= 3 && count("long_v") >= 3
	})
	written := func(outcome string) float64 {
		return counterValue(t, r, "strata_scraper_samples_written_total", "outcome", outcome)
	}
	setOverrides(t, r, rc, ws, fmt.Sprintf("overrides:\n  %s:\n    max_label_value_length: 20\n", ws))
	long, short := count("long_v"), count("short_v")
	ok, refused := written("ok"), written("refused")
	testutil.Eventually(t, 20*time.Second, "five more scrapes of the short series", func() bool {
		return count("short_v") >= short+5
	})
	// A scrape whose write began before the limits changed may still store one sample.
	if n := count("long_v"); n > long+1 {
		t.Fatalf("the series over the new max_label_value_length got %d more samples", n-long)
	}
	// Each scrape since stored some series and refused others (long_v, and the scrape
	// loop's own series whose names are over 20 bytes: 4 refused, 3 stored), each counted
	// as it went, not the whole scrape as refused.
	if dok, drefused := written("ok")-ok, written("refused")-refused; drefused < 4 || 2*dok < drefused {
		t.Fatalf("samples written since: %v ok, %v refused; want 3 ok for 4 refused", dok, drefused)
	}
}
