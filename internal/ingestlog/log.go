// Package ingestlog is the ingest log of distributed mode: distributors append each
// validated batch to a partition of a NATS JetStream stream and answer the client once
// JetStream has stored it (with --jetstream.replicas copies); ingesters consume their
// partitions into the per-workspace TSDBs and acknowledge a batch once it is in the
// TSDB's WAL. After a crash an ingester is sent again what it had not acknowledged, and
// applying a batch twice stores nothing twice (a TSDB drops a sample it already holds).
//
// NATS is external (--jetstream.url) or embedded in the process (the default), so one
// binary needs no other process; embedded servers form a cluster with
// --jetstream.cluster-listen and --jetstream.routes.
package ingestlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxPayload is the largest message the embedded server takes. A batch larger than the
// server's limit is split by series.
const maxPayload = 8 << 20

// Log is a connection to the ingest log, and the embedded server when there is one.
type Log struct {
	cfg    Config
	logger *slog.Logger
	srv    *server.Server // nil with an external server
	nc     *nats.Conn
	js     jetstream.JetStream
	closed chan struct{} // closed once the connection is

	kvMu    sync.Mutex
	ha      jetstream.KeyValue // nil until the HA elections bucket could be made
	members jetstream.KeyValue // nil until the ingesters bucket could be made
	leases  jetstream.KeyValue // nil until the partition leases bucket could be made
	locks   jetstream.KeyValue // nil until the workspace locks bucket could be made
	shipped jetstream.KeyValue // nil until the shipped marks bucket could be made
	heads   jetstream.KeyValue // nil until the workspaces' heads bucket could be made
}

// Open starts the embedded server (unless an external one is configured), connects and
// makes sure the stream exists with the configured partitions and replicas. dataDir
// holds the embedded server's store unless --jetstream.store-dir says otherwise.
func Open(ctx context.Context, cfg Config, dataDir string, logger *slog.Logger) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{cfg: cfg, logger: logger, closed: make(chan struct{})}
	js := cfg.JetStream
	opts := []nats.Option{nats.Name("strata"), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond),
		nats.ClosedHandler(func(*nats.Conn) { close(l.closed) })}
	url := js.URL
	if url == "" {
		srv, err := startServer(cfg.JetStream, dataDir)
		if err != nil {
			return nil, err
		}
		l.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		if js.CredentialsFile != "" {
			opts = append(opts, nats.UserCredentials(js.CredentialsFile))
		}
		if js.CAFile != "" {
			opts = append(opts, nats.RootCAs(js.CAFile))
		}
	}
	if js.Token != "" {
		opts = append(opts, nats.Token(js.Token))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		l.shutdownServer()
		return nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	l.nc = nc
	if l.cfg.JetStream.Replicas == 0 {
		// The servers of the cluster: this one, its routes, or those the external server
		// told the client of.
		servers := 1 + len(nc.DiscoveredServers())
		if url != "" {
			servers = max(servers, len(strings.Split(url, ",")))
		} else {
			servers = max(servers, 1+len(js.Routes))
		}
		l.cfg.JetStream.Replicas = 1
		if servers >= 3 {
			l.cfg.JetStream.Replicas = 3
		}
		logger.Info("ingest log replicas", "replicas", l.cfg.JetStream.Replicas, "servers", servers)
	}
	if l.js, err = jetstream.New(nc); err != nil {
		l.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	// Alone, the stream is made now; in a cluster being formed it cannot be placed until
	// enough servers are up, so Run goes on trying (appends fail until then, and senders
	// retry).
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := l.createStream(sctx); errors.Is(err, ErrLayout) {
		l.Close()
		return nil, err
	} else if err != nil {
		l.logger.Info("ingest log stream not created yet; retrying", "err", err)
	}
	return l, nil
}

// Run makes sure the stream and the key-value buckets exist, retrying until they do
// or ctx is done, then returns. Made here rather than at first use: in a cluster,
// placing a replicated bucket can take longer than a write may wait.
func (l *Log) Run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := l.createStream(ctx)
		if err == nil {
			_, err = l.haBucket(ctx)
		}
		if err == nil {
			_, err = l.membersKV(ctx)
		}
		if err == nil {
			_, err = l.leasesKV(ctx)
		}
		if err == nil {
			_, err = l.locksKV(ctx)
		}
		if err == nil {
			_, err = l.shippedKV(ctx)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrLayout) {
			return err
		}
		if attempt%20 == 19 {
			l.logger.Warn("creating the ingest log's stream and HA bucket; retrying", "stream", l.cfg.JetStream.Stream, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func startServer(js JetStreamConfig, dataDir string) (*server.Server, error) {
	dir := js.StoreDir
	if dir == "" {
		dir = filepath.Join(dataDir, "jetstream")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("JetStream store directory: %w", err)
	}
	o := &server.Options{
		ServerName:             js.ServerName,
		JetStream:              true,
		StoreDir:               dir,
		MaxPayload:             maxPayload,
		NoSigs:                 true,
		NoLog:                  true,
		DontListen:             js.Listen == "",
		DisableJetStreamBanner: true,
		Authorization:          js.Token,
	}
	if js.Listen != "" {
		host, port, err := splitHostPort(js.Listen)
		if err != nil {
			return nil, fmt.Errorf("--jetstream.listen: %w", err)
		}
		o.Host, o.Port = host, port
	} else if js.ClusterListen != "" {
		// A clustered server without a client listener completes its start only once
		// the cluster has formed, and the first process would wait for the others: it
		// listens on a loopback port of its own instead (the token guards it).
		o.DontListen = false
		o.Host, o.Port = "127.0.0.1", server.RANDOM_PORT
	}
	if js.ClusterListen != "" {
		host, port, err := splitHostPort(js.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("--jetstream.cluster-listen: %w", err)
		}
		o.Cluster = server.ClusterOpts{Name: "strata", Host: host, Port: port, Username: "strata", Password: js.Token}
		for _, r := range js.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("--jetstream.routes: %w", err)
			}
			u.User = url.UserPassword("strata", js.Token)
			o.Routes = append(o.Routes, u)
		}
	}
	if o.ServerName == "" {
		h, _ := os.Hostname()
		o.ServerName = h + "-" + strconv.Itoa(o.Port) + "-" + filepath.Base(filepath.Dir(dir))
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded NATS server did not start within 30s")
	}
	return srv, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

// subject is the subject of a partition's batches.
func (l *Log) subject(partition int) string {
	return l.cfg.JetStream.Stream + ".p." + strconv.Itoa(partition)
}

// streams is how many streams the partitions are spread over.
func (l *Log) streams() int { return max(1, l.cfg.JetStream.Streams) }

// streamName is the name of stream i: --jetstream.stream alone, NAME-i with several.
func (l *Log) streamName(i int) string {
	if l.streams() == 1 {
		return l.cfg.JetStream.Stream
	}
	return l.cfg.JetStream.Stream + "-" + strconv.Itoa(i)
}

// streamOf is the name of the stream holding partition p's batches.
func (l *Log) streamOf(p int) string { return l.streamName(p % l.streams()) }

// The layout a stream was made for, in its metadata: batches are placed by it, so a
// process with another one would publish and read where the others do not.
const (
	layoutPartitions = "strata_partitions"
	layoutStreams    = "strata_streams"
)

// ErrLayout is returned when the log's streams were made with other partitions or
// another number of streams than this process is configured with.
var ErrLayout = errors.New("the ingest log's streams have another layout")

// createStream creates the log's streams, or updates their retention and replicas,
// after checking that the streams already there have this process' layout.
func (l *Log) createStream(ctx context.Context) error {
	js := l.cfg.JetStream
	n := l.streams()
	layout := map[string]string{layoutPartitions: strconv.Itoa(l.cfg.Partitions), layoutStreams: strconv.Itoa(n)}
	if err := l.checkLayout(ctx, layout); err != nil {
		return err
	}
	for i := range n {
		subjects := []string{js.Stream + ".p.*"}
		if n > 1 {
			subjects = subjects[:0]
			for p := i; p < l.cfg.Partitions; p += n {
				subjects = append(subjects, l.subject(p))
			}
		}
		name := l.streamName(i)
		_, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "Strata ingest log: validated remote-write batches by partition",
			Subjects:    subjects,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      js.MaxAge,
			Storage:     jetstream.FileStorage,
			Replicas:    js.Replicas,
			Discard:     jetstream.DiscardOld,
			MaxMsgSize:  -1,
			Metadata:    layout,
		})
		if err != nil {
			return fmt.Errorf("creating the ingest log's stream %s: %w", name, err)
		}
	}
	return nil
}

// checkLayout returns ErrLayout when a stream of the log (named --jetstream.stream or
// NAME-i) is not one this process would make, or was made for another layout. A stream
// without a layout (made before it was recorded) is taken as it is, alone.
func (l *Log) checkLayout(ctx context.Context, layout map[string]string) error {
	js := l.cfg.JetStream
	want := map[string]bool{}
	for i := range l.streams() {
		want[l.streamName(i)] = true
	}
	names := l.js.StreamNames(ctx)
	var found []string
	for name := range names.Name() {
		suffix, numbered := strings.CutPrefix(name, js.Stream+"-")
		if _, err := strconv.Atoi(suffix); name == js.Stream || numbered && err == nil {
			found = append(found, name)
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("listing the ingest log's streams: %w", err)
	}
	for _, name := range found {
		if !want[name] {
			return fmt.Errorf("%w: stream %s exists, which --jetstream.streams=%d does not make; run with the layout the streams were made with, or name new ones with --jetstream.stream", ErrLayout, name, l.streams())
		}
		st, err := l.js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("reading the ingest log's stream %s: %w", name, err)
		}
		md := st.CachedInfo().Config.Metadata
		for k, v := range layout {
			if got, ok := md[k]; ok && got != v {
				return fmt.Errorf("%w: stream %s was made with %s=%s, this process has %s; run with the layout the streams were made with, or name new ones with --jetstream.stream", ErrLayout, name, k, got, v)
			}
		}
	}
	return nil
}

// keyValue returns the key-value bucket *slot, making it with cfg the first time. The
// buckets are made by Run, before first use, so that placing a replicated bucket in a
// cluster being formed does not hold up a request.
func (l *Log) keyValue(ctx context.Context, slot *jetstream.KeyValue, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	l.kvMu.Lock()
	defer l.kvMu.Unlock()
	if *slot != nil {
		return *slot, nil
	}
	cfg.Replicas = l.cfg.JetStream.Replicas
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", cfg.Bucket, err)
	}
	*slot = kv
	return kv, nil
}

// ClientURL is the embedded server's client URL; empty without one or without a
// listener.
func (l *Log) ClientURL() string {
	if l.srv == nil || l.cfg.JetStream.Listen == "" {
		return ""
	}
	return l.srv.ClientURL()
}

// Close closes the connection, then stops the embedded server.
func (l *Log) Close() error {
	if l.nc != nil {
		if err := l.nc.Drain(); err != nil {
			l.nc.Close()
		}
		// Drain is asynchronous: wait until the connection is closed.
		select {
		case <-l.closed:
		case <-time.After(10 * time.Second):
			l.nc.Close()
		}
	}
	l.shutdownServer()
	return nil
}

func (l *Log) shutdownServer() {
	if l.srv != nil {
		l.waitAPIIdle(5 * time.Second)
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
}

// waitAPIIdle waits, at most d, until the embedded server serves no JetStream API
// request. A stream or bucket still being made for a caller that gave up (a process
// stopping) would otherwise be made after the server's JetStream stopped, and its
// store would never be closed.
func (l *Log) waitAPIIdle(d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		jsz, err := l.srv.Jsz(nil)
		if err != nil || jsz.API.Inflight == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
