package sigv4proxy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stratametrics/strata/internal/tlsutil"
)

const usage = `Usage: strata sigv4-proxy --upstream URL [flags]

Signs requests with AWS Signature Version 4 and forwards them to --upstream,
for clients that cannot sign (Prometheus without sigv4 support, Grafana,
curl). Credentials come from the standard AWS chain: environment variables,
the shared config and credentials files (--profile or AWS_PROFILE), web
identity, ECS and EC2 roles; --role-arn assumes a role on top.

Whoever reaches the proxy acts with its credentials, so:
  - it listens on loopback (127.0.0.1:8005) unless --allow-non-loopback;
  - it forwards only the data plane of AMP workspaces:
      POST          /workspaces/<id>/api/v1/remote_write
      GET, POST     /workspaces/<id>/api/v1/{query, query_range, series, labels,
                    label/<name>/values, metadata, query_exemplars, format_query,
                    parse_query, status/buildinfo, status/tsdb}
      GET, POST, DELETE  /workspaces/<id>/alertmanager/api/v2/...
    and answers anything else 403 (--allow-control-plane adds creating,
    listing and deleting workspaces and the rest of AMP's control plane;
    --allow "METHOD /path/prefix" adds others). Paths are checked and
    forwarded after resolving "." and ".." segments and "//"; an encoded '/'
    or a '\' in a segment is refused;
  - every body is read into memory and its SHA-256 signed: larger than
    --max-body-bytes answers 413, slower than --body-timeout 408; beyond
    --max-concurrent requests or --max-in-flight-body-bytes in flight, 503
    with Retry-After.
GET /-/healthy answers on the proxy itself.

Exit status: 0 after SIGINT or SIGTERM and a graceful shutdown; 1 when the
proxy cannot start (no credentials, address in use) or fails; 2 on bad flags.

Example:
  strata sigv4-proxy --upstream https://aps-workspaces.us-east-1.amazonaws.com \
    --region us-east-1 --listen 127.0.0.1:8005
  # then point Prometheus' remote_write at
  #   http://127.0.0.1:8005/workspaces/ws-.../api/v1/remote_write

Flags:
`

// Limits of the proxy's HTTP server.
const (
	// readHeaderTimeout drops connections that do not send their headers.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes keep-alive connections idle for that long.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes is generous for Prometheus, Grafana and curl, whose headers
	// take a few KiB (net/http's default is 1 MiB).
	maxHeaderBytes = 64 << 10
)

// nonLoopbackHost tells whether a --listen address is certainly not a
// loopback one: no host (every interface) or an IP that is not loopback.
// Host names are judged once bound.
func nonLoopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false // net.Listen says what is wrong
	}
	if host == "" {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone
	ip := net.ParseIP(host)
	return ip != nil && !ip.IsLoopback()
}

// isLoopback tells whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// Main runs `strata sigv4-proxy` with args (without the subcommand) until
// SIGINT or SIGTERM, and returns the exit status. Nothing is written to
// stdout; logs go to stderr.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runMain(ctx, args, stdout, stderr)
}

func runMain(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("strata sigv4-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	cfg.RegisterFlags(fs)
	listen := fs.String("listen", "127.0.0.1:8005", "Address to listen on. A non-loopback address needs --allow-non-loopback.")
	allowNonLoopback := fs.Bool("allow-non-loopback", false, "Allow --listen on an address other than loopback (0.0.0.0, a LAN address): anyone who can reach it gets requests signed with the proxy's credentials, within the allow-list. Logged as a warning.")
	logLevel := fs.String("log.level", "info", "Log level: debug, info, warn or error. debug logs every request.")
	logFormat := fs.String("log.format", "logfmt", "Log format: logfmt or json.")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "How long to let requests in flight finish after SIGINT or SIGTERM.")
	var tlsCfg tlsutil.Config
	tlsCfg.RegisterFlags(fs, "tls.")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "strata sigv4-proxy: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "strata sigv4-proxy: --log.level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	switch *logFormat {
	case "logfmt":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		fmt.Fprintf(stderr, "strata sigv4-proxy: --log.format %q: want logfmt or json\n", *logFormat)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "strata sigv4-proxy:", err)
		return 2
	}
	if err := tlsCfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "strata sigv4-proxy: tls:", err)
		return 2
	}
	logger := cfg.Logger

	refuseListen := func(bound string) int {
		fmt.Fprintf(stderr, "strata sigv4-proxy: --listen %s binds %s, which is not a loopback address: anyone who can reach it "+
			"would get requests signed with these credentials. Pass --allow-non-loopback to listen there anyway.\n", *listen, bound)
		return 2
	}
	if !*allowNonLoopback && nonLoopbackHost(*listen) {
		return refuseListen(*listen) // before loading credentials: a flag error
	}

	p, err := New(ctx, cfg)
	if err != nil {
		logger.Error("starting sigv4-proxy", "err", err)
		return 1
	}
	defer p.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Error("starting sigv4-proxy", "err", err)
		return 1
	}
	// Judged again on the address actually bound: a host name may resolve
	// anywhere.
	if !isLoopback(ln.Addr()) {
		if !*allowNonLoopback {
			_ = ln.Close()
			return refuseListen(ln.Addr().String())
		}
		logger.Warn("listening on a non-loopback address: anyone who can reach it gets requests signed with the proxy's credentials, within the allow-list",
			"addr", ln.Addr().String())
	}

	d := cfg.withDefaults()
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: readHeaderTimeout,
		// No ReadTimeout: the proxy bounds the body (--body-timeout) with a deadline
		// it lifts once the body is in. A ReadTimeout would also fire in net/http's
		// background read after the body and cancel a long answer's context.
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		// No WriteTimeout: responses stream; --timeout bounds each request.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	if tlsCfg.Enabled() {
		reloader, err := tlsutil.NewReloader(tlsCfg, "sigv4-proxy", logger, nil)
		if err != nil {
			_ = ln.Close()
			logger.Error("starting sigv4-proxy", "err", err)
			return 1
		}
		srv.TLSConfig = reloader.ServerConfig()
		rctx, stopReloads := context.WithCancel(ctx)
		defer stopReloads()
		go func() { _ = reloader.Run(rctx) }()
		go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	logger.Info("listening", "addr", ln.Addr().String(), "tls", tlsCfg.Enabled(), "upstream", cfg.Upstream,
		"region", d.Region, "service", d.Service, "allow_control_plane", d.AllowControlPlane, "allow", strings.Join(d.Allow, ","))

	select {
	case err := <-serveErr:
		logger.Error("serving", "err", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", *shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	code := 0
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("requests still in flight at the shutdown timeout; closing them", "err", err)
		_ = srv.Close()
		code = 1
	}
	<-serveErr // http.ErrServerClosed
	logger.Info("stopped")
	return code
}
