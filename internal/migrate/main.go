package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

const usage = `Usage: strata migrate plan --prometheus URL [flags]
       strata migrate rules --from rules.yml --workspace ws-… --endpoint-url URL [flags]
       strata migrate alertmanager --from alertmanager.yml --workspace ws-… --endpoint-url URL [flags]
       strata migrate verify --prometheus URL --workspace-endpoint URL [flags]
       strata migrate backfill --from DIR --workspace-endpoint URL [flags]

Reads a running Prometheus (its HTTP API: TSDB status, configuration, runtime
information, rules, its own metrics) and reports what moving it to a workspace means:
active series by job and metric, the highest-cardinality labels, the ingestion rate,
the most labels on a series, against the workspace's quotas; an HA pair; rules a
workspace would refuse; and a remote_write block sized for the measured rate.
Exits 1 when the Prometheus would exceed a quota (request those overrides first).

Flags:
`

// Main runs `strata migrate` with args (after "migrate").
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains([]string{"plan", "rules", "alertmanager", "verify", "backfill"}, args[0]) {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "rules":
		return runRules(ctx, args[1:], stdout, stderr)
	case "alertmanager":
		return runAlertmanager(ctx, args[1:], stdout, stderr)
	case "verify":
		return runVerify(ctx, args[1:], stdout, stderr)
	case "backfill":
		return runBackfill(ctx, args[1:], stdout, stderr)
	}
	return runPlan(ctx, args[1:], stdout, stderr)
}

// commandFlags is the flag set of `strata migrate <name>`: errors and help go to stderr,
// after usage.
func commandFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("strata migrate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs; when it fails, ok is false and code is the exit code:
// 0 for --help, 2 for a wrong flag.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("plan", usage, stderr)
	q := DefaultQuotas()
	var cfg Config
	fs.StringVar(&cfg.Prometheus, "prometheus", "", "Base URL of the Prometheus to read (http://host:9090).")
	fs.StringVar(&cfg.WorkspaceEndpoint, "workspace-endpoint", "", "The workspace's endpoint, for the remote_write block (https://…/workspaces/ws-…).")
	fs.StringVar(&cfg.Region, "region", os.Getenv("AWS_REGION"), "Region for the remote_write block's sigv4.")
	fs.StringVar(&cfg.Alertmanager, "alertmanager", "", "Also plan this Alertmanager's configuration (its base URL, http://host:9093).")
	fs.IntVar(&q.ActiveSeries, "max-active-series", q.ActiveSeries, "The workspace's active series quota.")
	fs.IntVar(&q.ActiveSeriesPerMetric, "max-active-series-per-metric", q.ActiveSeriesPerMetric, "The workspace's active series quota per metric name.")
	fs.IntVar(&q.LabelsPerSeries, "max-label-names-per-series", q.LabelsPerSeries, "The workspace's labels per series quota.")
	fs.Float64Var(&q.IngestionRate, "ingestion-rate", q.IngestionRate, "The workspace's ingestion rate quota, samples per second.")
	fs.DurationVar(&q.MinRuleInterval, "min-rule-interval", q.MinRuleInterval, "The shortest rule group interval the workspace accepts.")
	format := fs.String("format", "text", "Report format: text, json or markdown.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if cfg.Prometheus == "" || fs.NArg() > 0 || !slices.Contains([]string{"text", "json", "markdown"}, *format) {
		fs.Usage()
		return 2
	}
	cfg.Quotas = q
	r, err := Plan(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "strata migrate plan:", err)
		return 2
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	case "markdown":
		r.Markdown(stdout)
	default:
		r.Text(stdout)
	}
	if len(r.Exceeded) > 0 {
		return 1
	}
	return 0
}
