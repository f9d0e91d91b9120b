// Command strata is the one Strata binary: `strata server` runs the service, `strata
// version` prints the build. See docs/configuration.md for every option.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/stratametrics/strata/internal/app"
	"github.com/stratametrics/strata/internal/gctuner"
	"github.com/stratametrics/strata/internal/loadgen"
	"github.com/stratametrics/strata/internal/migrate"
	"github.com/stratametrics/strata/internal/sigv4proxy"
	"github.com/stratametrics/strata/internal/version"
)

const usage = `Strata: a self-hosted, multi-tenant, Prometheus-compatible metrics service
that speaks the API of Amazon Managed Service for Prometheus.

Usage:
  strata server [flags]       run the service (strata server --help lists every flag)
  strata sigv4-proxy [flags]  sign requests with AWS SigV4 and forward them (for curl, Grafana)
  strata loadgen [flags]      send realistic remote-write traffic and report (--help for flags)
  strata migrate plan [flags] read a running Prometheus and report what moving it takes
  strata migrate rules|alertmanager [flags]
                              move rule files / an Alertmanager configuration into a workspace
  strata migrate verify [flags]
                              compare a dual-writing Prometheus with its workspace
  strata migrate backfill [flags]
                              move a Prometheus data directory's history into a workspace
  strata version              print the version
  strata config-reference     print docs/configuration.md, generated from the code
  strata security-reference   print docs/security.md (routes, IAM actions, resources)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return runServer(args[1:], stderr)
	case "sigv4-proxy":
		return sigv4proxy.Main(args[1:], stdout, stderr)
	case "loadgen":
		return loadgen.Main(args[1:], stdout, stderr)
	case "migrate":
		return migrate.Main(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.Get())
		return 0
	case "config-reference":
		doc, err := app.ConfigReference()
		if err != nil {
			fmt.Fprintln(stderr, "strata:", err)
			return 1
		}
		fmt.Fprint(stdout, doc)
		return 0
	case "security-reference":
		doc, err := app.SecurityReference()
		if err != nil {
			fmt.Fprintln(stderr, "strata:", err)
			return 1
		}
		fmt.Fprint(stdout, doc)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "strata: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func runServer(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("strata server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: strata server [flags]\n\nRuns Strata. With no flags every component runs in this process with embedded\ndefaults: data under ./data, HTTP on 127.0.0.1:8080.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg, err := app.Load(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 2
	}
	logger := app.NewLogger(cfg.Log, os.Stderr)
	// The collector's settings are the process's, so they are tuned here, once.
	defer gctuner.Start(cfg.Runtime, logger.With("component", "gctuner")).Stop()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		logger.Error("starting strata", "err", err)
		return 1
	}
	if text := a.RootKeyInstructions(); text != "" {
		fmt.Fprintln(stderr, text)
	}
	logger.Info("strata started", "version", version.Get().Version, "addr", a.Addr(), "data_dir", cfg.DataDir)
	if err := a.Run(ctx); err != nil {
		logger.Error("strata stopped with an error", "err", err)
		return 1
	}
	logger.Info("strata stopped")
	return 0
}
