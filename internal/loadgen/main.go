package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const usage = `Usage: strata loadgen --url URL [flags]

Sends a realistic Prometheus remote write load: node-exporter-like series of
many instances, scraped every --scrape-interval, optionally backfilled and
churned, over remote write 1.0 or 2.0, optionally signed with SigV4. Prints a
report (accepted samples/s, statuses, retries, latency) and with --verify
checks that every acknowledged sample reads back through the query API.

Exit status: 0 on success; 1 when no sample was accepted, verification found
an acknowledged sample missing or different, or the run failed; 2 on bad flags.

Example:
  strata loadgen --url http://127.0.0.1:8080/workspaces/ws-.../api/v1/remote_write \
    --sigv4 --active-series 100000 --backfill 3h --duration 10m --verify

Flags:
`

// Main runs `strata loadgen` with args (without the subcommand) and returns
// the exit status. SIGINT and SIGTERM end the run early; the report is
// still printed.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runMain(ctx, args, stdout, stderr)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("strata loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := DefaultConfig()
	cfg.ProgressInterval = 10 * time.Second
	cfg.RegisterFlags(fs)
	output := fs.String("output", "text", "Report format: text or json.")
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
		fmt.Fprintf(stderr, "strata loadgen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "strata loadgen: --output %q: want text or json\n", *output)
		return 2
	}
	if err := cfg.withDefaults().Validate(); err != nil {
		fmt.Fprintln(stderr, "strata loadgen:", err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))

	rep, err := Run(ctx, cfg)
	if rep.URL != "" { // sending happened
		var werr error
		if *output == "json" {
			b, merr := json.MarshalIndent(rep, "", "  ")
			if merr != nil {
				werr = merr
			} else {
				_, werr = fmt.Fprintf(stdout, "%s\n", b)
			}
		} else {
			werr = rep.WriteText(stdout)
		}
		if werr != nil {
			fmt.Fprintln(stderr, "strata loadgen: writing report:", werr)
			return 1
		}
	}
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "strata loadgen:", err)
		return 1
	case rep.Verify != nil && !rep.Verify.OK():
		fmt.Fprintf(stderr, "strata loadgen: verification failed: %d acknowledged samples missing, %d with another value\n",
			rep.Verify.MissingSamples, rep.Verify.WrongValues)
		return 1
	case rep.AcceptedSamples == 0:
		fmt.Fprintln(stderr, "strata loadgen: no sample was accepted")
		return 1
	}
	return 0
}
