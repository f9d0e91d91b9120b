// Package app composes Strata's components into one process. Start from Config (the root
// configuration: one block per component) and Run. The -target flag picks what a process
// runs; "all" runs everything with embedded defaults and needs no other process.
package app

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/auth"
	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/compactor"
	"github.com/stratametrics/strata/internal/controlplane"
	"github.com/stratametrics/strata/internal/distributor"
	"github.com/stratametrics/strata/internal/gctuner"
	"github.com/stratametrics/strata/internal/importer"
	"github.com/stratametrics/strata/internal/ingester"
	"github.com/stratametrics/strata/internal/ingestlog"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/querier"
	"github.com/stratametrics/strata/internal/query"
	"github.com/stratametrics/strata/internal/ruler"
	"github.com/stratametrics/strata/internal/server"
	"github.com/stratametrics/strata/internal/storegateway"
	"github.com/stratametrics/strata/internal/sts"
	"github.com/stratametrics/strata/internal/usage"

	"github.com/stratametrics/strata/internal/vendedlogs"

	"github.com/stratametrics/strata/internal/scraper"
)

// Config is the root configuration. Every field has a flag; YAML fields use the flag's
// name with dots as nesting and dashes as underscores.
type Config struct {
	// ConfigFile is only a flag: the YAML file to read before applying flags.
	ConfigFile string `yaml:"-"`

	Target    string    `yaml:"target"`
	DataDir   string    `yaml:"data_dir"`
	Region    string    `yaml:"region"`
	AccountID string    `yaml:"account_id"`
	Log       LogConfig `yaml:"log"`
	// Zone is the failure domain of this process (an availability zone): queriers ask
	// the ingesters of their own zone first.
	Zone string `yaml:"zone"`
	// AdvertiseURL is the URL other processes of a cluster reach this one at.
	AdvertiseURL string `yaml:"advertise_url"`

	Server       server.Config       `yaml:"server"`
	Auth         auth.Config         `yaml:"auth"`
	STS          sts.Config          `yaml:"sts"`
	Bucket       bucket.Config       `yaml:"bucket"`
	Meta         meta.Config         `yaml:"meta"`
	ControlPlane controlplane.Config `yaml:"controlplane"`
	Distributor  distributor.Config  `yaml:"distributor"`
	Import       importer.Config     `yaml:"import"`
	Ingest       ingestlog.Config    `yaml:"ingest"`
	Ingester     ingester.Config     `yaml:"ingester"`
	Query        query.Config        `yaml:"query"`
	Querier      querier.Config      `yaml:"querier"`
	StoreGateway storegateway.Config `yaml:"store_gateway"`
	Compactor    compactor.Config    `yaml:"compactor"`
	Limits       limits.Config       `yaml:"limits"`
	Usage        usage.ExportConfig  `yaml:"usage"`
	Ruler        ruler.Config        `yaml:"ruler"`
	Alertmanager alertmanager.Config `yaml:"alertmanager"`
	Logs         vendedlogs.Config   `yaml:"logs"`
	Scraper      scraper.Config      `yaml:"scraper"`
	// Runtime tunes the Go runtime of the process (cmd/strata starts it, not New).
	Runtime gctuner.Config `yaml:"runtime"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// RegisterFlags registers every flag of every block.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ConfigFile, "config.file", "", "YAML configuration file. Flags given on the command line override its values.")
	f.StringVar(&c.Target, "target", TargetAll, "Components to run, comma-separated: "+strings.Join(targets, ", ")+".")
	f.StringVar(&c.DataDir, "data-dir", "./data", "Directory for local state (WAL, blocks, the default filesystem bucket).")
	f.StringVar(&c.Region, "region", "us-east-1", "AWS region this server answers as: in ARNs and the SigV4 credential scope.")
	f.StringVar(&c.AccountID, "account-id", "000000000000", "12-digit AWS account id of the server's default account, used in ARNs.")
	f.StringVar(&c.Log.Level, "log.level", "info", "Log level: debug, info, warn or error.")
	f.StringVar(&c.Log.Format, "log.format", "logfmt", "Log format: logfmt or json.")
	f.StringVar(&c.Zone, "zone", "", "Failure domain of this process (e.g. an availability zone): queriers ask the ingesters of their own zone first (--ingest.backend=jetstream).")
	f.StringVar(&c.AdvertiseURL, "advertise-url", "", "URL the other processes of a cluster reach this one at, for queries to its ingester (--ingest.backend=jetstream). Empty: http(s)://<listen address>, with the host name when listening on all interfaces.")
	c.Server.RegisterFlags(f)
	c.Auth.RegisterFlags(f)
	c.STS.RegisterFlags(f)
	c.Bucket.RegisterFlags(f)
	c.Meta.RegisterFlags(f)
	c.ControlPlane.RegisterFlags(f)
	c.Distributor.RegisterFlags(f)
	c.Import.RegisterFlags(f)
	c.Ingest.RegisterFlags(f)
	c.Ingester.RegisterFlags(f)
	c.Query.RegisterFlags(f)
	c.Querier.RegisterFlags(f)
	c.StoreGateway.RegisterFlags(f)
	c.Compactor.RegisterFlags(f)
	c.Limits.RegisterFlags(f)
	c.Usage.RegisterFlags(f)
	c.Ruler.RegisterFlags(f)
	c.Alertmanager.RegisterFlags(f)
	c.Logs.RegisterFlags(f)
	c.Scraper.RegisterFlags(f)
	c.Runtime.RegisterFlags(f)
}

var (
	regionRe    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	accountIDRe = regexp.MustCompile(`^[0-9]{12}$`)
)

// Validate checks every block and names the block of a failure.
func (c *Config) Validate() error {
	if _, err := resolveTargets(c.Target, c.Ingest.Backend); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	if !regionRe.MatchString(c.Region) {
		return fmt.Errorf("region: %q is not a region name like us-east-1", c.Region)
	}
	if !accountIDRe.MatchString(c.AccountID) {
		return fmt.Errorf("account_id: %q is not a 12-digit account id", c.AccountID)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return fmt.Errorf("log.level: unknown level %q", c.Log.Level)
	}
	if !slices.Contains([]string{"logfmt", "json"}, c.Log.Format) {
		return fmt.Errorf("log.format: unknown format %q", c.Log.Format)
	}
	for name, v := range map[string]interface{ Validate() error }{
		"server": &c.Server, "auth": &c.Auth, "sts": &c.STS, "bucket": &c.Bucket, "meta": &c.Meta, "controlplane": &c.ControlPlane, "limits": &c.Limits,
		"distributor": &c.Distributor, "ingest": &c.Ingest, "ingester": &c.Ingester, "query": &c.Query, "querier": &c.Querier, "store_gateway": &c.StoreGateway, "compactor": &c.Compactor, "usage": &c.Usage,
		"ruler": &c.Ruler, "alertmanager": &c.Alertmanager, "logs": &c.Logs, "scraper": &c.Scraper, "runtime": &c.Runtime,
	} {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	// An ingester taking a partition over replays the log at least query-store-after
	// back (the window the store-gateways are not asked for): the log must still hold it.
	if after, keep := c.Querier.QueryStoreAfter, c.Ingest.JetStream.MaxAge-c.Ingest.ReplayMargin; c.Ingest.Backend == ingestlog.BackendJetStream && after > keep {
		return fmt.Errorf("querier: query_store_after (%s) is beyond what the ingest log keeps for a replay (--jetstream.max-age less --ingest.replay-margin: %s); an ingester taking a partition over could not read back that far, and queries would miss those samples", after, keep)
	}
	return nil
}

// Load builds the configuration from defaults, then the YAML file named by -config.file,
// then the flags given in args: flags win over the file, the file over defaults.
func Load(f *flag.FlagSet, args []string) (*Config, error) {
	cfg := &Config{}
	cfg.RegisterFlags(f)
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	if f.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(f.Args(), " "))
	}
	if cfg.ConfigFile != "" {
		body, err := os.ReadFile(cfg.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("reading config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(body))
		dec.KnownFields(true) // a misspelt key is an error, not a silently ignored setting
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parsing config file %s: %w", cfg.ConfigFile, err)
		}
		// Parse again so the flags given explicitly override the file.
		if err := f.Parse(args); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}
