package scraper

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/units"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/file"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"gopkg.in/yaml.v3"

	// The service discoveries a scraper configuration may use besides static_configs.
	_ "github.com/prometheus/prometheus/discovery/http"
)

// Config configures the managed scrapers.
type Config struct {
	Enabled bool `yaml:"enabled"`
	// ClustersFile maps EKS cluster ARNs to kubeconfig files, for scrapers whose source
	// is a cluster and whose configuration has kubernetes_sd_configs.
	ClustersFile string `yaml:"clusters_file"`
	// FileSDDir holds the files file_sd_configs may read; relative names are in it.
	FileSDDir          string        `yaml:"file_sd_dir"`
	DefaultSampleLimit uint          `yaml:"default_sample_limit"`
	DefaultBodyLimit   int64         `yaml:"default_body_size_limit"`
	SyncInterval       time.Duration `yaml:"sync_interval"`
	// DiscoveryUpdate is how often discovered targets reach the scrape loops.
	DiscoveryUpdate time.Duration `yaml:"discovery_update_interval"`
}

// RegisterFlags registers the flags under "scraper.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "scraper.enabled", true, "Run the managed scrapers (CreateScraper) in this process. False: their configurations are stored but nothing scrapes.")
	f.StringVar(&c.ClustersFile, "scraper.clusters-file", "", "YAML file mapping EKS cluster ARNs to kubeconfig files (clusters: [{arn: …, kubeconfig: …}]), for scrapers whose source.eksConfiguration names a cluster and whose configuration has kubernetes_sd_configs. Read when a scraper starts.")
	f.StringVar(&c.FileSDDir, "scraper.file-sd-dir", "", "Directory of the files scrapers' file_sd_configs may read (relative names are in it; others are refused). Empty: <data-dir>/scraper-file-sd.")
	f.UintVar(&c.DefaultSampleLimit, "scraper.default-sample-limit", 50000, "sample_limit of a scrape configuration that sets none: a target exposing more samples fails its scrape (up=0).")
	f.Int64Var(&c.DefaultBodyLimit, "scraper.default-body-size-limit", 50<<20, "body_size_limit of a scrape configuration that sets none, in bytes: a larger answer fails the scrape.")
	f.DurationVar(&c.SyncInterval, "scraper.sync-interval", time.Minute, "How often the scrapers are compared with the stored ones besides on every change.")
	f.DurationVar(&c.DiscoveryUpdate, "scraper.discovery-update-interval", 5*time.Second, "How often discovered target changes reach the scrape loops (Prometheus: 5s); a new scraper's first scrape comes up to about twice this late.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.SyncInterval <= 0 || c.DiscoveryUpdate <= 0 {
		return errors.New("sync and discovery update intervals must be positive")
	}
	if c.DefaultBodyLimit < 0 {
		return errors.New("default body size limit must not be negative")
	}
	return nil
}

// allowedTopLevel are the sections of a scraper configuration, as AMP accepts them.
var allowedTopLevel = []string{"global", "scrape_configs"}

// CheckBlob validates a scraper configuration as the control plane receives it: a
// Prometheus configuration (Prometheus' own loader, unknown fields refused) of global
// and scrape_configs only, with at least one scrape configuration, and no setting
// that reads a file of the server (*_file, *_files), whose contents would reach the
// scraper's owner.
func CheckBlob(blob []byte) (*promconfig.Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(blob, &doc); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("a scraper configuration is a YAML mapping with global and scrape_configs")
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if k := top.Content[i].Value; !slices.Contains(allowedTopLevel, k) {
			return nil, fmt.Errorf("line %d: %q is not allowed in a scraper configuration (only global and scrape_configs)", top.Content[i].Line, k)
		}
	}
	if k, line := fileSetting(top); k != "" {
		return nil, fmt.Errorf("line %d: %q reads a file of the server, which a scraper configuration may not", line, k)
	}
	cfg, err := promconfig.Load(string(blob), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if len(cfg.ScrapeConfigs) == 0 {
		return nil, errors.New("the configuration has no scrape_configs")
	}
	return cfg, nil
}

// fileSetting finds a key naming a file to read, anywhere below n.
func fileSetting(n *yaml.Node) (string, int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_files") {
				return k, n.Content[i].Line
			}
			if k, line := fileSetting(n.Content[i+1]); k != "" {
				return k, line
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if k, line := fileSetting(c); k != "" {
				return k, line
			}
		}
	}
	return "", 0
}

// Source is where a scraper runs: its EKS cluster, if any.
type Source struct {
	ClusterARN string
}

// Prepare makes a checked configuration runnable on this server: the default sample
// and body size limits where none is set, file_sd_configs' files inside the file SD
// directory, and the kubeconfig of the scraper's cluster for kubernetes_sd_configs
// that name no API server.
func (c *Config) Prepare(cfg *promconfig.Config, src Source, fileSDDir string) error {
	var clusters map[string]string
	for _, sc := range cfg.ScrapeConfigs {
		if sc.SampleLimit == 0 {
			sc.SampleLimit = c.DefaultSampleLimit
		}
		if sc.BodySizeLimit == 0 {
			sc.BodySizeLimit = units.Base2Bytes(c.DefaultBodyLimit)
		}
		for _, d := range sc.ServiceDiscoveryConfigs {
			switch d := d.(type) {
			case *file.SDConfig:
				for i, p := range d.Files {
					resolved, err := insideDir(fileSDDir, p)
					if err != nil {
						return fmt.Errorf("job %q: file_sd_configs: %w", sc.JobName, err)
					}
					d.Files[i] = resolved
				}
			case *kubernetes.SDConfig:
				if d.APIServer.URL != nil {
					continue
				}
				if clusters == nil {
					var err error
					if clusters, err = c.readClusters(); err != nil {
						return err
					}
				}
				kc, ok := clusters[src.ClusterARN]
				if !ok {
					return fmt.Errorf("job %q: kubernetes_sd_configs need the kubeconfig of cluster %q, which --scraper.clusters-file does not map", sc.JobName, src.ClusterARN)
				}
				d.KubeConfig = kc
			}
		}
	}
	return nil
}

// insideDir resolves a file_sd_configs pattern in dir and refuses one outside it.
func insideDir(dir, pattern string) (string, error) {
	p := pattern
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p = filepath.Clean(p)
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%q is outside the scrapers' file SD directory (--scraper.file-sd-dir)", pattern)
	}
	return p, nil
}

// clustersFile is the format of --scraper.clusters-file.
type clustersFile struct {
	Clusters []struct {
		ARN        string `yaml:"arn"`
		Kubeconfig string `yaml:"kubeconfig"`
	} `yaml:"clusters"`
}

func (c *Config) readClusters() (map[string]string, error) {
	if c.ClustersFile == "" {
		return map[string]string{}, nil
	}
	b, err := os.ReadFile(c.ClustersFile)
	if err != nil {
		return nil, fmt.Errorf("reading --scraper.clusters-file: %w", err)
	}
	var f clustersFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("--scraper.clusters-file: %w", err)
	}
	out := make(map[string]string, len(f.Clusters))
	for _, cl := range f.Clusters {
		kc := cl.Kubeconfig
		if !filepath.IsAbs(kc) {
			kc = filepath.Join(filepath.Dir(c.ClustersFile), kc)
		}
		out[cl.ARN] = kc
	}
	return out, nil
}

// DefaultConfiguration is GetDefaultScraperConfiguration's answer: a starting point for
// a scraper of a Kubernetes cluster (API servers, nodes, cAdvisor, annotated pods and
// services), written for Strata in the spirit of AMP's.
const DefaultConfiguration = `global:
  scrape_interval: 30s
scrape_configs:
  - job_name: kubernetes-apiservers
    kubernetes_sd_configs:
      - role: endpoints
    scheme: https
    relabel_configs:
      - source_labels: [__meta_kubernetes_namespace, __meta_kubernetes_service_name, __meta_kubernetes_endpoint_port_name]
        action: keep
        regex: default;kubernetes;https
  - job_name: kubernetes-nodes
    kubernetes_sd_configs:
      - role: node
    scheme: https
    relabel_configs:
      - action: labelmap
        regex: __meta_kubernetes_node_label_(.+)
  - job_name: kubernetes-cadvisor
    kubernetes_sd_configs:
      - role: node
    scheme: https
    metrics_path: /metrics/cadvisor
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        target_label: __metrics_path__
        regex: (.+)
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
  - job_name: kubernetes-services
    kubernetes_sd_configs:
      - role: service
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_service_name]
        target_label: service
`
