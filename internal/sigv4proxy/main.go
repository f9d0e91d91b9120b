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
	"syscall"
	"time"
)

const usage = `Usage: strata sigv4-proxy --upstream URL [flags]

Signs every request it receives with AWS Signature Version 4 and forwards it
to --upstream, for clients that cannot sign (Prometheus without sigv4
support, Grafana, curl). Credentials come from the standard AWS chain:
environment variables, the shared config and credentials files (--profile or
AWS_PROFILE), web identity, ECS and EC2 roles; --role-arn assumes a role on
top. Bodies up to --max-buffered-body-bytes are signed with their SHA-256,
larger ones are streamed with UNSIGNED-PAYLOAD. GET /-/healthy answers on the
proxy itself.

Exit status: 0 after SIGINT or SIGTERM and a graceful shutdown; 1 when the
proxy cannot start (no credentials, address in use) or fails; 2 on bad flags.

Example:
  strata sigv4-proxy --upstream https://aps-workspaces.us-east-1.amazonaws.com \
    --region us-east-1 --listen 127.0.0.1:8005
  # then point Prometheus' remote_write at
  #   http://127.0.0.1:8005/workspaces/ws-.../api/v1/remote_write

Flags:
`

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
	listen := fs.String("listen", "127.0.0.1:8005", "Address to listen on.")
	logLevel := fs.String("log.level", "info", "Log level: debug, info, warn or error. debug logs every request.")
	logFormat := fs.String("log.format", "logfmt", "Log format: logfmt or json.")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "How long to let requests in flight finish after SIGINT or SIGTERM.")
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
	logger := cfg.Logger

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
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "upstream", cfg.Upstream,
		"region", cfg.withDefaults().Region, "service", cfg.withDefaults().Service)

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
