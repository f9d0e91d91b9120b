#!/usr/bin/env bash
# Managed scraper benchmark (issue #14): one scraper of TARGETS targets (1000) × SERIES
# series (500) at INTERVAL (15s), all served by bench/targets on one port, next to Debian's
# Prometheus 2.42 scraping the same targets into its own TSDB. Each runs alone: after
# WARMUP seconds, its CPU (user+system) and the samples it stored are measured over
# MEASURE seconds, and CPU-s per million scraped samples reported. Strata's samples go
# through the distributor into its ingester, as Prometheus' go into its head.
# Usage: bench/scrapers.sh [measure-seconds]; KEEP=dir keeps the work directory,
# PROFILE=file writes a CPU profile of Strata's measured window (PROM_PROFILE=file of
# Prometheus'); ONLY=strata or ONLY=prometheus runs one alone. Ports 127.0.0.1:18199
# (targets), 18196 (strata), 18186 (its internal listener), 18197 (prometheus).
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

# measure PID METRICS_URL COUNTER: prints "cpu_seconds samples".
measure_run() {
	local pid=$1 url=$2 name=$3
	sleep "$warmup"
	local c0 s0 c1 s1
	c0=$(cpu "$pid"); s0=$(counter "$url" "$name")
	sleep "$measure"
	c1=$(cpu "$pid"); s1=$(counter "$url" "$name")
	awk -v c=$((c1 - c0)) -v hz="$hz" -v s=$((s1 - s0)) 'BEGIN { printf "%.2f %d\n", c / hz, s }'
}

report() { # name cpu samples
	awk -v n="$1" -v c="$2" -v s="$3" -v m="$measure" 'BEGIN {
		printf "%-16s %8.2f CPU-s  %10d samples (%.0f/s)  %.3f CPU-s per million samples\n", n, c, s, s / m, c / (s / 1e6) }'
}

# Prometheus 2.42 (ONLY=strata skips it, e.g. while profiling).
if [ "${ONLY:-}" != strata ]; then
	cp "$work/scrape.yaml" "$work/prometheus.yml"
	"$prometheus" --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/prom" \
		--web.listen-address 127.0.0.1:18197 --log.level warn 2> "$work/prometheus.log" &
	ppid=$!
	wait_ready 18197
	if [ -n "${PROM_PROFILE:-}" ]; then
		(sleep "$warmup"; curl -sf "127.0.0.1:18197/debug/pprof/profile?seconds=$measure" -o "$PROM_PROFILE") &
	fi
	read -r pcpu psamples < <(measure_run $ppid http://127.0.0.1:18197/metrics prometheus_tsdb_head_samples_appended_total)
	kill $ppid; wait $ppid 2>/dev/null || true
fi

[ "${ONLY:-}" = prometheus ] && { report "$pname" "$pcpu" "$psamples"; exit 0; }

# Strata, one scraper into one workspace.
"$work/strata" server --listen 127.0.0.1:18196 --internal.listen 127.0.0.1:18186 --data-dir "$work/data" \
	--log.level warn --server.enable-pprof ${EXTRA_FLAGS:-} 2> "$work/strata.log" &
spid=$!
wait_ready 18196
ws=$(create_workspace 18196 scraped)
arn="arn:aws:aps:us-east-1:000000000000:workspace/$ws"
for _ in $(seq 100); do
	status=$(curl -sf "127.0.0.1:18196/workspaces/$ws" "${sign[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace"]["status"]["statusCode"])')
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
curl -sf -XPOST 127.0.0.1:18196/scrapers "${sign[@]}" -H 'Content-Type: application/json' --data-binary @"$work/create-scraper.json" >/dev/null
if [ -n "${PROFILE:-}" ]; then
	(sleep "$warmup"; curl -sf "127.0.0.1:18186/debug/pprof/profile?seconds=$measure" -o "$PROFILE") &
fi
read -r scpu ssamples < <(measure_run $spid http://127.0.0.1:18186/metrics 'strata_scraper_samples_written_total{outcome="ok"')
kill $spid; wait $spid 2>/dev/null || true

echo "one scraper, $targets targets x $series series every $interval; measured $measure s after $warmup s"
[ "${ONLY:-}" = strata ] || report "$pname" "$pcpu" "$psamples"
report "strata" "$scpu" "$ssamples"
