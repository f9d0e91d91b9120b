package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/scraper"
	"github.com/stratametrics/strata/internal/testutil"
)

const scrapeBlob = `global:
  scrape_interval: 15s
scrape_configs:
  - job_name: node
    static_configs: [{targets: ['localhost:9100']}]
`

// scraperChecker refuses scrapers whose configuration holds a word.
type scraperChecker struct{ refuse string }

func (c scraperChecker) Check(_ context.Context, s meta.Scraper) error {
	if c.refuse != "" && strings.Contains(string(s.Config), c.refuse) {
		return errors.New("cannot run: " + c.refuse)
	}
	return nil
}

func eksSource() types.Source {
	return &types.SourceMemberEksConfiguration{Value: types.EksConfiguration{
		ClusterArn: aws.String("arn:aws:eks:us-east-1:123456789012:cluster/local"),
		SubnetIds:  []string{"subnet-0a1b2c"},
	}}
}

func destination(arn string) types.Destination {
	return &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: aws.String(arn)}}
}

// The 9 scraper operations through the AWS SDK, with its waiters.
func TestScraperLifecycle(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxScrapersPerAccount = 2
	f := newFixture(t, t.TempDir(), cfg, func(f *fixture) {
		f.recon.Scrapers = scraperChecker{refuse: "job_name: broken"}
		f.recon.LogGroups = &logGroupChecker{}
	})
	ctx := context.Background()
	c := f.client
	ws := f.activeWorkspace(t)
	wsARN := "arn:aws:aps:us-east-1:123456789012:workspace/" + ws

	def, err := c.GetDefaultScraperConfiguration(ctx, &amp.GetDefaultScraperConfigurationInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scraper.CheckBlob(def.Configuration); err != nil || !strings.Contains(string(def.Configuration), "kubernetes_sd_configs") {
		t.Fatalf("default configuration (%v):\n%s", err, def.Configuration)
	}

	create := func(blob string, src types.Source, dest string) (*amp.CreateScraperOutput, error) {
		return c.CreateScraper(ctx, &amp.CreateScraperInput{
			Alias:               aws.String("node"),
			ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(blob)},
			Source:              src,
			Destination:         destination(dest),
			Tags:                map[string]string{"team": "a"},
		})
	}
	_, err = create("scrape_configs:\n  - job_name: a\n    scrape_intervall: 1s\n", eksSource(), wsARN)
	apiError(t, err, awsapi.ValidationException)
	_, err = create(scrapeBlob+"remote_write: [{url: 'http://x'}]\n", eksSource(), wsARN)
	apiError(t, err, awsapi.ValidationException)
	_, err = create(scrapeBlob, &types.SourceMemberVpcConfiguration{Value: types.VpcConfiguration{SubnetIds: []string{"subnet-1"}, SecurityGroupIds: []string{"sg-1"}}}, wsARN)
	if ae := apiError(t, err, awsapi.ValidationException); !strings.Contains(ae.ErrorMessage(), "vpcConfiguration") {
		t.Fatalf("vpcConfiguration: %s", ae.ErrorMessage())
	}
	_, err = create(scrapeBlob, eksSource(), "arn:aws:aps:us-east-1:123456789012:workspace/ws-nope")
	apiError(t, err, awsapi.ResourceNotFoundException)

	created, err := create(scrapeBlob, eksSource(), wsARN)
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(created.ScraperId)
	if !strings.HasPrefix(id, "s-") || aws.ToString(created.Arn) != "arn:aws:aps:us-east-1:123456789012:scraper/"+id ||
		created.Status.StatusCode != types.ScraperStatusCodeCreating || created.Tags["team"] != "a" {
		t.Fatalf("create: %+v", created)
	}
	active := amp.NewScraperActiveWaiter(c, func(o *amp.ScraperActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	})
	if err := active.Wait(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)}, 10*time.Second); err != nil {
		t.Fatalf("scraper-active waiter: %v", err)
	}
	d, err := c.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	s := d.Scraper
	blob, _ := s.ScrapeConfiguration.(*types.ScrapeConfigurationMemberConfigurationBlob)
	eks, _ := s.Source.(*types.SourceMemberEksConfiguration)
	dest, _ := s.Destination.(*types.DestinationMemberAmpConfiguration)
	if aws.ToString(s.Alias) != "node" || blob == nil || string(blob.Value) != scrapeBlob || eks == nil || aws.ToString(eks.Value.ClusterArn) != "arn:aws:eks:us-east-1:123456789012:cluster/local" ||
		dest == nil || aws.ToString(dest.Value.WorkspaceArn) != wsARN || !strings.HasPrefix(aws.ToString(s.RoleArn), "arn:aws:iam::123456789012:role/") || s.CreatedAt == nil {
		t.Fatalf("describe: %+v", s)
	}

	// A second scraper that cannot run: CREATION_FAILED with the reason; a third is over the quota.
	broken, err := create(strings.Replace(scrapeBlob, "job_name: node", "job_name: broken", 1), eksSource(), wsARN)
	if err != nil {
		t.Fatal(err)
	}
	err = active.Wait(ctx, &amp.DescribeScraperInput{ScraperId: broken.ScraperId}, 10*time.Second)
	if err == nil {
		t.Fatal("the waiter accepted a scraper that cannot run")
	}
	bd, _ := c.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: broken.ScraperId})
	if bd.Scraper.Status.StatusCode != types.ScraperStatusCodeCreationFailed || !strings.Contains(aws.ToString(bd.Scraper.StatusReason), "cannot run") {
		t.Fatalf("broken scraper: %+v", bd.Scraper)
	}
	_, err = create(scrapeBlob, eksSource(), wsARN)
	apiError(t, err, awsapi.ServiceQuotaExceededException)

	// List: filters and pages.
	all, err := c.ListScrapers(ctx, &amp.ListScrapersInput{})
	if err != nil || len(all.Scrapers) != 2 {
		t.Fatalf("list: %+v %v", all, err)
	}
	act, err := c.ListScrapers(ctx, &amp.ListScrapersInput{Filters: map[string][]string{"status": {"ACTIVE"}, "destinationArn": {wsARN}}})
	if err != nil || len(act.Scrapers) != 1 || aws.ToString(act.Scrapers[0].ScraperId) != id {
		t.Fatalf("list ACTIVE: %+v %v", act, err)
	}
	var paged []string
	p := amp.NewListScrapersPaginator(c, &amp.ListScrapersInput{MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Scrapers {
			paged = append(paged, aws.ToString(s.ScraperId))
		}
	}
	if len(paged) != 2 || paged[0] != id {
		t.Fatalf("pages: %v", paged)
	}
	_, err = c.ListScrapers(ctx, &amp.ListScrapersInput{Filters: map[string][]string{"colour": {"red"}}})
	apiError(t, err, awsapi.ValidationException)

	// Tags on the scraper's ARN.
	if _, err := c.TagResource(ctx, &amp.TagResourceInput{ResourceArn: created.Arn, Tags: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: created.Arn})
	if err != nil || tags.Tags["env"] != "prod" || tags.Tags["team"] != "a" {
		t.Fatalf("tags: %+v %v", tags, err)
	}

	// Update: UPDATING, then ACTIVE with the new configuration.
	newBlob := strings.Replace(scrapeBlob, "15s", "30s", 1)
	up, err := c.UpdateScraper(ctx, &amp.UpdateScraperInput{ScraperId: aws.String(id), Alias: aws.String("node-30s"),
		ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(newBlob)}})
	if err != nil || up.Status.StatusCode != types.ScraperStatusCodeUpdating {
		t.Fatalf("update: %+v %v", up, err)
	}
	if err := active.Wait(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	d, _ = c.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)})
	if b, _ := d.Scraper.ScrapeConfiguration.(*types.ScrapeConfigurationMemberConfigurationBlob); b == nil || string(b.Value) != newBlob || aws.ToString(d.Scraper.Alias) != "node-30s" {
		t.Fatalf("after update: %+v", d.Scraper)
	}

	// The scraper's logging configuration.
	_, err = c.DescribeScraperLoggingConfiguration(ctx, &amp.DescribeScraperLoggingConfigurationInput{ScraperId: aws.String(id)})
	apiError(t, err, awsapi.ResourceNotFoundException)
	lg, err := c.UpdateScraperLoggingConfiguration(ctx, &amp.UpdateScraperLoggingConfigurationInput{
		ScraperId:          aws.String(id),
		LoggingDestination: &types.ScraperLoggingDestinationMemberCloudWatchLogs{Value: types.CloudWatchLogDestination{LogGroupArn: aws.String(logGroup)}},
		ScraperComponents:  []types.ScraperComponent{{Type: types.ScraperComponentTypeServiceDiscovery}, {Type: types.ScraperComponentTypeCollector}},
	})
	if err != nil || lg.Status.StatusCode != types.ScraperLoggingConfigurationStatusCodeCreating {
		t.Fatalf("update-scraper-logging-configuration: %+v %v", lg, err)
	}
	testutilEventually(t, "the scraper's logging configuration ACTIVE", func() bool {
		o, err := c.DescribeScraperLoggingConfiguration(ctx, &amp.DescribeScraperLoggingConfigurationInput{ScraperId: aws.String(id)})
		return err == nil && o.Status.StatusCode == types.ScraperLoggingConfigurationStatusCodeActive && len(o.ScraperComponents) == 2
	})
	if _, err := c.DeleteScraperLoggingConfiguration(ctx, &amp.DeleteScraperLoggingConfigurationInput{ScraperId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	testutilEventually(t, "the scraper's logging configuration gone", func() bool {
		_, err := c.DescribeScraperLoggingConfiguration(ctx, &amp.DescribeScraperLoggingConfigurationInput{ScraperId: aws.String(id)})
		var nf *types.ResourceNotFoundException
		return errors.As(err, &nf)
	})

	// Delete: DELETING, then gone (the scraper-deleted waiter).
	del, err := c.DeleteScraper(ctx, &amp.DeleteScraperInput{ScraperId: aws.String(id)})
	if err != nil || del.Status.StatusCode != types.ScraperStatusCodeDeleting {
		t.Fatalf("delete: %+v %v", del, err)
	}
	deleted := amp.NewScraperDeletedWaiter(c, func(o *amp.ScraperDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	})
	if err := deleted.Wait(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)}, 10*time.Second); err != nil {
		t.Fatalf("scraper-deleted waiter: %v", err)
	}
	_, err = c.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String("s-nope")})
	apiError(t, err, awsapi.ResourceNotFoundException)
}

func testutilEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, cond)
}
