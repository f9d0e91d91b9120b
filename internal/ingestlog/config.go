package ingestlog

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Ingest backends.
const (
	BackendDirect    = "direct"
	BackendJetStream = "jetstream"
)

// Config configures how the distributor hands batches to the ingesters.
type Config struct {
	// Backend is direct (the ingester of the same process) or jetstream (the ingest log).
	Backend string `yaml:"backend"`
	// Partitions is the number of partitions of the log; a series always goes to the same
	// one. Fixed once the stream exists.
	Partitions int `yaml:"partitions"`
	// LeaseTTL is how long a partition's lease outlives its owner's last renewal: how
	// long a dead ingester's partitions wait for another ingester of its zone.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// ReplayMargin is how much earlier than a partition's shipped mark a new owner starts
	// reading it.
	ReplayMargin time.Duration   `yaml:"replay_margin"`
	JetStream    JetStreamConfig `yaml:"jetstream"`
}

// JetStreamConfig says where the ingest log is: an external NATS server (URL), or one
// embedded in this process.
type JetStreamConfig struct {
	// URL of an external NATS server; empty embeds one in this process.
	URL string `yaml:"url"`
	// CredentialsFile is a NATS credentials file for the external server (optional).
	CredentialsFile string `yaml:"credentials_file"`
	// CAFile verifies the external server's TLS certificate (optional; tls:// URLs).
	CAFile string `yaml:"ca_file"`
	// Listen is the client address of the embedded server; empty: no listener, only
	// this process connects (in process, no TCP).
	Listen string `yaml:"listen"`
	// ClusterListen and Routes join embedded servers into a cluster.
	ClusterListen string     `yaml:"cluster_listen"`
	Routes        StringList `yaml:"routes"`
	// ServerName names the embedded server in its cluster; empty: the hostname and listen port.
	ServerName string `yaml:"server_name"`
	// StoreDir is where the embedded server keeps its streams; empty: <data-dir>/jetstream.
	StoreDir string `yaml:"store_dir"`
	// Token authenticates clients of the embedded server and this process to an external
	// one (the cluster key; STRATA_JETSTREAM_TOKEN). Required when Listen is set.
	Token string `yaml:"-"`
	// Replicas of the stream: a batch is acknowledged once this many servers hold it.
	// 0 chooses: 3 when NATS is a cluster of three servers or more, 1 otherwise.
	Replicas int `yaml:"replicas"`
	// MaxAge is how long the log keeps a batch after it was written: long enough for its
	// samples to be in a block in the bucket, from which a new owner of the partition
	// recovers.
	MaxAge time.Duration `yaml:"max_age"`
	// Stream names the stream (and its subjects' prefix); with several streams, they are
	// named Stream-0, Stream-1 and so on.
	Stream string `yaml:"stream"`
	// Streams is how many streams hold the partitions (partition p in stream p mod
	// Streams). Each stream's leader takes every write to its partitions: in a cluster,
	// several streams spread that work over the servers. Fixed once the streams exist.
	Streams int `yaml:"streams"`
}

// RegisterFlags registers the flags under "ingest." and "jetstream.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Backend, "ingest.backend", BackendDirect, "How the distributor hands validated batches to the ingesters: direct (the ingester of the same process) or jetstream (the ingest log on NATS JetStream: acknowledged once stored, consumed by the ingesters).")
	f.IntVar(&c.Partitions, "ingest.partitions", 16, "Partitions of the ingest log; each series always goes to the same one. Fixed once the stream exists.")
	f.DurationVar(&c.LeaseTTL, "ingest.lease-ttl", 10*time.Second, "How long a partition's lease outlives its owner's last renewal (every 2 s): after it, the partitions of an ingester that died go to the other ingesters of its --zone.")
	f.DurationVar(&c.ReplayMargin, "ingest.replay-margin", 15*time.Minute, "An ingester that takes over a partition without having read it before replays it from the partition's shipped mark (before it, all is in the bucket) less this: more than samples may be ahead of the clock (--limits.creation-grace-period) plus the difference between the servers' clocks.")
	f.StringVar(&c.JetStream.URL, "jetstream.url", "", "URL of an external NATS server with JetStream (nats://host:4222, tls://…); empty embeds one in this process.")
	f.StringVar(&c.JetStream.CredentialsFile, "jetstream.credentials-file", "", "NATS credentials file for --jetstream.url.")
	f.StringVar(&c.JetStream.CAFile, "jetstream.ca-file", "", "CA certificate verifying the TLS certificate of --jetstream.url.")
	f.StringVar(&c.JetStream.Listen, "jetstream.listen", "", "Client address of the embedded NATS server (e.g. 127.0.0.1:4222), so other processes can use it; empty: only this process, in process. Needs STRATA_JETSTREAM_TOKEN.")
	f.StringVar(&c.JetStream.ClusterListen, "jetstream.cluster-listen", "", "Cluster address of the embedded NATS server, for --jetstream.routes of the others.")
	f.Var(&c.JetStream.Routes, "jetstream.routes", "Comma-separated cluster addresses (nats://host:port) of the other embedded servers of the cluster.")
	f.StringVar(&c.JetStream.ServerName, "jetstream.server-name", "", "Name of the embedded NATS server in its cluster; empty: derived from the host name and listen address.")
	f.StringVar(&c.JetStream.StoreDir, "jetstream.store-dir", "", "Directory of the embedded NATS server's streams; empty: <data-dir>/jetstream.")
	f.IntVar(&c.JetStream.Replicas, "jetstream.replicas", 0, "Servers that must hold a batch before the client gets its answer; 0: 3 when NATS is a cluster of three servers or more (--jetstream.routes, or the servers an external URL leads to), 1 otherwise.")
	f.DurationVar(&c.JetStream.MaxAge, "jetstream.max-age", 6*time.Hour, "How long the ingest log keeps a batch: longer than it takes its samples to reach a block in the bucket (--tsdb.block-range plus --tsdb.ship-interval).")
	f.StringVar(&c.JetStream.Stream, "jetstream.stream", "strata-ingest", "Name of the ingest log's stream (with --jetstream.streams above 1, the streams are NAME-0, NAME-1, ...), and its subjects' prefix.")
	f.IntVar(&c.JetStream.Streams, "jetstream.streams", 1, "Streams the ingest log's partitions are spread over (partition p in stream p mod N). Each stream's leader takes every write to its partitions; in a cluster, several streams spread that work over the servers. Fixed once the streams exist, like --ingest.partitions: a process started with another layout refuses to start.")
	c.JetStream.Token = os.Getenv("STRATA_JETSTREAM_TOKEN")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch c.Backend {
	case BackendDirect:
		return nil
	case BackendJetStream:
	default:
		return fmt.Errorf("backend: unknown ingest backend %q (direct or jetstream)", c.Backend)
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		return fmt.Errorf("partitions: %d, want 1 to 1024", c.Partitions)
	}
	if c.ReplayMargin < 0 {
		return errors.New("replay_margin must not be negative")
	}
	if c.LeaseTTL < 3*leaseEvery {
		return fmt.Errorf("lease_ttl: %s, want at least %s (three renewals)", c.LeaseTTL, 3*leaseEvery)
	}
	js := c.JetStream
	if js.Replicas < 0 || js.Replicas > 5 {
		return fmt.Errorf("jetstream.replicas: %d, want 0 (automatic) to 5", js.Replicas)
	}
	if js.MaxAge <= 0 {
		return errors.New("jetstream.max_age must be positive")
	}
	if js.Streams < 1 || js.Streams > c.Partitions {
		return fmt.Errorf("jetstream.streams: %d, want 1 to the number of partitions (%d)", js.Streams, c.Partitions)
	}
	if js.Stream == "" || strings.ContainsAny(js.Stream, ". *>") {
		return fmt.Errorf("jetstream.stream: %q is not a stream name", js.Stream)
	}
	if js.URL == "" && (js.Listen != "" || js.ClusterListen != "") && js.Token == "" {
		return errors.New("the embedded NATS server listens on the network (--jetstream.listen, --jetstream.cluster-listen): set STRATA_JETSTREAM_TOKEN, the key its clients and peers authenticate with")
	}
	return nil
}

// StringList is a comma-separated list flag.
type StringList []string

// String implements flag.Value.
func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value: it replaces the list.
func (l *StringList) Set(s string) error {
	*l = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}
