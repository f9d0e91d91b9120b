#!/usr/bin/env bash
# Managed scraper benchmark (issue #14): one scraper of TARGETS targets (1000) × SERIES
# series (500) at INTERVAL (15s), all served by bench/targets on one port, next to Debian's
# Prometheus 2.42 scraping the same targets into its own TSDB. Each runs alone: after
# WARMUP seconds, its CPU (user+system) and the samples it stored are measured over
# MEASURE seconds, and CPU-s per million scraped samples reported. Strata's samples go
# through the distributor into its ingester, as Prometheus' go into its head.
# Usage: bench/scrapers.sh [measure-seconds]; KEEP=dir keeps the work directory,
# PROFILE=file writes a CPU profile of Strata's measured window (PROM_PROFILE=file of
# Prometheus'); ONLY=strata or ONLY=prometheus runs one alone.
# TOGETHER=1 runs them at the same time instead, measured over the same window, so that
# whatever else the machine does weighs on both alike (one after the other, a process'
# CPU time for the same work moves by ±10% on this 2-CPU VM); STRATA_B=binary adds a
# second Strata, that binary, to the same window (to compare two builds), PROMETHEUS_B=binary
# a second Prometheus (PROMETHEUS_B_NAME names it; e.g. ~/go/bin/prometheus3).
# Ports 127.0.0.1:18199 (targets), 18196 (strata), 18186 (its internal listener), 18197
# (prometheus), 18296 and 18286 (STRATA_B), 18297 (PROMETHEUS_B).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
measure=${1:-120}
warmup=${WARMUP:-45}
targets=${TARGETS:-1000}
series=${SERIES:-500}
interval=${INTERVAL:-15s}
bench_work "${KEEP:-}"
go build -o "$work/targets" ./bench/targets
prometheus=${PROMETHEUS:-/usr/bin/prometheus}
pname=${PROMETHEUS_NAME:-prometheus 2.42} # PROMETHEUS=~/go/bin/prometheus3 PROMETHEUS_NAME="prometheus 3"

"$work/targets" --listen 127.0.0.1:18199 --targets "$targets" --series "$series" &
for _ in $(seq 100); do curl -sf 127.0.0.1:18199/t/0/metrics >/dev/null && break; sleep 0.1; done

# The same scrape configuration for both: one target group per target, told apart by its
# metrics path.
{
	printf 'global:\n  scrape_interval: %s\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: bench\n    sample_limit: 0\n    static_configs:\n' "$interval"
	for i in $(seq 0 $((targets - 1))); do
		printf "      - targets: ['127.0.0.1:18199']\n        labels: {__metrics_path__: /t/%d/metrics, target: '%d'}\n" "$i" "$i"
	done
} > "$work/scrape.yaml"

# counter URL NAME: the sum of a counter on a /metrics page.
counter() { curl -sf "$1" | awk -v n="$2" 'index($0, n) == 1 { s += $NF } END { printf "%.0f", s }'; }

# start_prometheus [BINARY PORT DIR]: starts Prometheus (on 18197); sets ppid.
start_prometheus() {
	local bin=${1:-$prometheus} port=${2:-18197} dir=${3:-$work/prom}
	cp "$work/scrape.yaml" "$work/prometheus.yml"
	"$bin" --config.file "$work/prometheus.yml" --storage.tsdb.path "$dir" \
		--web.listen-address "127.0.0.1:$port" --log.level warn 2> "$dir.log" &
	ppid=$!
	wait_ready "$port"
}

# start_strata BINARY PORT INTERNAL_PORT DIR: starts Strata with one scraper of the
# targets into one workspace; sets spid.
start_strata() {
	local bin=$1 port=$2 iport=$3 dir=$4 ws arn status
	"$bin" server --listen "127.0.0.1:$port" --internal.listen "127.0.0.1:$iport" --data-dir "$dir" \
		--log.level warn --server.enable-pprof ${EXTRA_FLAGS:-} 2> "$dir.log" &
	spid=$!
	wait_ready "$port"
	ws=$(create_workspace "$port" scraped)
	arn="arn:aws:aps:us-east-1:000000000000:workspace/$ws"
	for _ in $(seq 100); do
		status=$(curl -sf "127.0.0.1:$port/workspaces/$ws" "${sign[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace"]["status"]["statusCode"])')
		[ "$status" = ACTIVE ] && break; sleep 0.1
	done
	python3 - "$work/scrape.yaml" "$arn" > "$work/create-scraper.json" <<'PY'
import base64, json, sys
blob = open(sys.argv[1], 'rb').read()
print(json.dumps({
    "alias": "bench",
    "scrapeConfiguration": {"configurationBlob": base64.b64encode(blob).decode()},
    "source": {"eksConfiguration": {"clusterArn": "arn:aws:eks:us-east-1:000000000000:cluster/bench", "subnetIds": ["subnet-0bench"]}},
    "destination": {"ampConfiguration": {"workspaceArn": sys.argv[2]}},
}))
PY
	curl -sf -XPOST "127.0.0.1:$port/scrapers" "${sign[@]}" -H 'Content-Type: application/json' --data-binary @"$work/create-scraper.json" >/dev/null
}

# The counters of samples stored: Prometheus' head, and Strata's scraper.
prom_samples=(http://127.0.0.1:18197/metrics prometheus_tsdb_head_samples_appended_total)
strata_samples='strata_scraper_samples_written_total{outcome="ok"'

# measure_window NAME PID URL COUNTER ...: after the warm-up, measures each process' CPU
# and samples over the same window; writes "cpu_seconds samples" to $work/measured-NAME.
measure_window() {
	local -a names pids urls counters c0 s0
	local i
	while [ $# -gt 0 ]; do names+=("$1"); pids+=("$2"); urls+=("$3"); counters+=("$4"); shift 4; done
	sleep "$warmup"
	for i in "${!names[@]}"; do c0[i]=$(cpu "${pids[i]}"); s0[i]=$(counter "${urls[i]}" "${counters[i]}"); done
	sleep "$measure"
	for i in "${!names[@]}"; do
		awk -v c=$(($(cpu "${pids[i]}") - c0[i])) -v hz="$hz" -v s=$(($(counter "${urls[i]}" "${counters[i]}") - s0[i])) \
			'BEGIN { printf "%.2f %d\n", c / hz, s }' > "$work/measured-${names[i]}"
	done
}

report() { # name file: "cpu samples"
	awk -v n="$1" -v m="$measure" '{
		printf "%-16s %8.2f CPU-s  %10d samples (%.0f/s)  %.3f CPU-s per million samples\n", n, $1, $2, $2 / m, $1 / ($2 / 1e6) }' "$2"
}

header() { echo "one scraper, $targets targets x $series series every $interval; measured $measure s after $warmup s${1:-}"; }

if [ -n "${TOGETHER:-}" ]; then
	args=()
	if [ "${ONLY:-}" != strata ]; then
		start_prometheus
		args+=(prometheus "$ppid" "${prom_samples[@]}")
	fi
	if [ -n "${PROMETHEUS_B:-}" ]; then
		start_prometheus "$PROMETHEUS_B" 18297 "$work/prom-b"
		args+=(prometheus-b "$ppid" http://127.0.0.1:18297/metrics prometheus_tsdb_head_samples_appended_total)
	fi
	start_strata "$work/strata" 18196 18186 "$work/data"
	args+=(strata "$spid" http://127.0.0.1:18186/metrics "$strata_samples")
	if [ -n "${STRATA_B:-}" ]; then
		start_strata "$STRATA_B" 18296 18286 "$work/data-b"
		args+=(strata-b "$spid" http://127.0.0.1:18286/metrics "$strata_samples")
	fi
	[ -n "${PROFILE:-}" ] && (sleep "$warmup"; curl -sf "127.0.0.1:18186/debug/pprof/profile?seconds=$measure" -o "$PROFILE") &
	[ -n "${PROM_PROFILE:-}" ] && (sleep "$warmup"; curl -sf "127.0.0.1:18197/debug/pprof/profile?seconds=$measure" -o "$PROM_PROFILE") &
	measure_window "${args[@]}"
	header ", all at once"
	[ "${ONLY:-}" = strata ] || report "$pname" "$work/measured-prometheus"
	[ -z "${PROMETHEUS_B:-}" ] || report "${PROMETHEUS_B_NAME:-prometheus-b}" "$work/measured-prometheus-b"
	report strata "$work/measured-strata"
	[ -z "${STRATA_B:-}" ] || report "strata-b" "$work/measured-strata-b"
	exit 0
fi

# Prometheus 2.42 (ONLY=strata skips it, e.g. while profiling).
if [ "${ONLY:-}" != strata ]; then
	start_prometheus
	if [ -n "${PROM_PROFILE:-}" ]; then
		(sleep "$warmup"; curl -sf "127.0.0.1:18197/debug/pprof/profile?seconds=$measure" -o "$PROM_PROFILE") &
	fi
	measure_window prometheus "$ppid" "${prom_samples[@]}"
	kill $ppid; wait $ppid 2>/dev/null || true
fi

[ "${ONLY:-}" = prometheus ] && { report "$pname" "$work/measured-prometheus"; exit 0; }

# Strata, one scraper into one workspace.
start_strata "$work/strata" 18196 18186 "$work/data"
if [ -n "${PROFILE:-}" ]; then
	(sleep "$warmup"; curl -sf "127.0.0.1:18186/debug/pprof/profile?seconds=$measure" -o "$PROFILE") &
fi
measure_window strata "$spid" http://127.0.0.1:18186/metrics "$strata_samples"
kill $spid; wait $spid 2>/dev/null || true

header
[ "${ONLY:-}" = strata ] || report "$pname" "$work/measured-prometheus"
report strata "$work/measured-strata"
