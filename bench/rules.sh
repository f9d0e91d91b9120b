#!/usr/bin/env bash
# Ruler benchmark: WORKSPACES workspaces (1000), each with one rule groups namespace of 20
# recording rules (node-exporter style: rates, ratios, aggregations) in one group at
# INTERVAL (30s), over node-exporter-like data sent in real time by `strata loadgen` (one
# instance of 103 series per workspace, 15 s scrape interval, 10 minutes backfilled).
# After WARMUP seconds, the server's CPU, rule evaluations, failures and missed iterations
# are measured over MEASURE seconds (from its /metrics).
# Usage: bench/rules.sh [workspaces] [measure-seconds]; KEEP=1 keeps the logs,
# PROFILE=file writes a CPU profile of the measured window, EXTRA_FLAGS are added to the
# server's flags. Ports 127.0.0.1:18195, 18185.
set -euo pipefail
cd "$(dirname "$0")/.."
workspaces=${1:-1000}
measure=${2:-180}
interval=${INTERVAL:-30s}
warmup=${WARMUP:-90}
work=$(mktemp -d)
if [ -n "${KEEP:-}" ]; then # keep the logs
	trap 'kill $(jobs -p) 2>/dev/null || true; echo "kept $work"' EXIT
else
	trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
fi
go build -o "$work/strata" ./cmd/strata

export STRATA_ROOT_ACCESS_KEY_ID=AKIDBENCHMARK0000001 STRATA_ROOT_SECRET_ACCESS_KEY=benchmark-secret-0000000000000000
export AWS_ACCESS_KEY_ID=$STRATA_ROOT_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$STRATA_ROOT_SECRET_ACCESS_KEY AWS_REGION=us-east-1
sign=(--aws-sigv4 "aws:amz:us-east-1:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
base=http://127.0.0.1:18195

"$work/strata" server --listen 127.0.0.1:18195 --internal.listen 127.0.0.1:18185 --data-dir "$work/data" \
	--controlplane.max-workspaces-per-account 0 --log.level warn --server.enable-pprof ${EXTRA_FLAGS:-} 2> "$work/strata.log" &
pid=$!
for _ in $(seq 300); do curl -sf $base/-/ready >/dev/null && break; sleep 0.1; done

cat > "$work/rules.yaml" <<EOF
groups:
  - name: node
    interval: $interval
    rules:
      - record: instance:node_cpu_utilisation:rate5m
        expr: 1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{mode="idle"}[5m]))
      - record: instance:node_load1_per_cpu:ratio
        expr: node_load1 / on (instance) group_left count by (instance) (node_cpu_seconds_total{mode="idle"})
      - record: instance:node_load5_per_cpu:ratio
        expr: node_load5 / on (instance) group_left count by (instance) (node_cpu_seconds_total{mode="idle"})
      - record: instance:node_memory_utilisation:ratio
        expr: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes
      - record: instance:node_memory_swap_used:ratio
        expr: 1 - node_memory_SwapFree_bytes / node_memory_SwapTotal_bytes
      - record: instance:node_network_receive_bytes:rate5m
        expr: sum without (device) (rate(node_network_receive_bytes_total[5m]))
      - record: instance:node_network_transmit_bytes:rate5m
        expr: sum without (device) (rate(node_network_transmit_bytes_total[5m]))
      - record: instance:node_network_receive_drop:rate5m
        expr: sum without (device) (rate(node_network_receive_drop_total[5m]))
      - record: instance:node_network_transmit_drop:rate5m
        expr: sum without (device) (rate(node_network_transmit_drop_total[5m]))
      - record: instance_device:node_disk_io_time_seconds:rate5m
        expr: rate(node_disk_io_time_seconds_total[5m])
      - record: instance:node_disk_reads_completed:rate5m
        expr: sum without (device) (rate(node_disk_reads_completed_total[5m]))
      - record: instance:node_disk_writes_completed:rate5m
        expr: sum without (device) (rate(node_disk_writes_completed_total[5m]))
      - record: instance:node_disk_written_bytes:rate5m
        expr: sum without (device) (rate(node_disk_written_bytes_total[5m]))
      - record: instance:node_filesystem_avail:ratio
        expr: node_filesystem_avail_bytes / node_filesystem_size_bytes
      - record: instance:node_context_switches:rate5m
        expr: rate(node_context_switches_total[5m])
      - record: instance:node_intr:rate5m
        expr: rate(node_intr_total[5m])
      - record: instance:node_forks:rate5m
        expr: rate(node_forks_total[5m])
      - record: job:node_cpu_utilisation:avg
        expr: avg by (job) (1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{mode="idle"}[5m])))
      - record: job:node_network_receive_bytes:sum_rate5m
        expr: sum by (job) (rate(node_network_receive_bytes_total[5m]))
      - record: job:node_cpus:count
        expr: count by (job) (node_cpu_seconds_total{mode="idle"})
EOF
data=$(base64 -w0 "$work/rules.yaml")

echo "creating $workspaces workspaces"
for i in $(seq "$workspaces"); do
	curl -sf -XPOST $base/workspaces -d "{\"alias\":\"bench-$i\"}" "${sign[@]}" -H 'Content-Type: application/json' |
		sed -E 's/.*"workspaceId":"([^"]+)".*/\1/'
	echo
done > "$work/workspaces"
sleep 2 # every workspace ACTIVE (the reconciler is quick; the data path accepts CREATING anyway)

echo "sending data: one node-exporter-like instance (103 series) per workspace, 15s interval"
"$work/strata" loadgen --url "$base/workspaces/{workspace}/api/v1/remote_write" --workspaces-file "$work/workspaces" \
	--concurrency "$workspaces" --active-series $((workspaces * 103)) --scrape-interval 15s --backfill 10m \
	--duration 2h --sigv4 --progress 0 > "$work/loadgen.out" 2> "$work/loadgen.log" &
sleep 20

echo "creating $workspaces rule groups namespaces (20 rules, interval $interval)"
while read -r ws; do
	curl -sf -o /dev/null -XPOST "$base/workspaces/$ws/rulegroupsnamespaces" -d "{\"name\":\"node\",\"data\":\"$data\"}" \
		"${sign[@]}" -H 'Content-Type: application/json'
done < "$work/workspaces"

metric() { # sum of a metric's samples on /metrics
	curl -sf http://127.0.0.1:18185/metrics | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.6f\n", s }'
}
echo "warming up ${warmup}s"
sleep "$warmup"
cpu0=$(metric process_cpu_seconds_total)
ev0=$(metric prometheus_rule_evaluations_total)
miss0=$(metric prometheus_rule_group_iterations_missed_total)
fail0=$(metric prometheus_rule_evaluation_failures_total)
sched0=$(metric prometheus_rule_group_iterations_total)
echo "measuring ${measure}s"
if [ -n "${PROFILE:-}" ]; then # a CPU profile of the measured window
	curl -sf -o "$PROFILE" "http://127.0.0.1:18185/debug/pprof/profile?seconds=$measure"
else
	sleep "$measure"
fi
cpu1=$(metric process_cpu_seconds_total)
ev1=$(metric prometheus_rule_evaluations_total)
miss1=$(metric prometheus_rule_group_iterations_missed_total)
fail1=$(metric prometheus_rule_evaluation_failures_total)
sched1=$(metric prometheus_rule_group_iterations_total)
maxdur=$(curl -sf http://127.0.0.1:18185/metrics | awk '$1 ~ /^prometheus_rule_group_last_duration_seconds\{/ { if ($2 > m) m = $2 } END { printf "%.4f\n", m }')
groups=$(curl -sf http://127.0.0.1:18185/metrics | grep -c '^prometheus_rule_group_rules{' || true)
rss=$(awk '/VmHWM/ { print $2 / 1024 }' /proc/$pid/status)

awk -v ws="$workspaces" -v groups="$groups" -v m="$measure" -v cpu0="$cpu0" -v cpu1="$cpu1" -v ev0="$ev0" -v ev1="$ev1" \
	-v miss="$(awk -v a="$miss0" -v b="$miss1" 'BEGIN{print b-a}')" -v fail="$(awk -v a="$fail0" -v b="$fail1" 'BEGIN{print b-a}')" \
	-v sched="$(awk -v a="$sched0" -v b="$sched1" 'BEGIN{print b-a}')" -v maxdur="$maxdur" -v rss="$rss" 'BEGIN {
	ev = ev1 - ev0; cpu = cpu1 - cpu0
	printf "workspaces %d, rule groups running %d, 20 rules each\n", ws, groups
	printf "rule evaluations: %d in %ds = %.1f/s (expected %.1f/s at the interval)\n", ev, m, ev / m, groups * 20 / '"${interval%s}"'
	printf "group iterations scheduled %d, missed %d, rule evaluation failures %d\n", sched, miss, fail
	printf "server CPU: %.1f s in %ds = %.2f cores (ingestion of the loadgen data included)\n", cpu, m, cpu / m
	printf "CPU per rule evaluation: %.1f us (all server CPU / evaluations)\n", cpu / ev * 1e6
	printf "slowest group last evaluation: %.1f ms\n", maxdur * 1000
	printf "peak RSS: %.0f MiB\n", rss
}'
grep -E "accepted|rejected" "$work/loadgen.log" | tail -2 || true
grep -ciE "level=(warn|error)" "$work/strata.log" | xargs echo "server warnings/errors logged:"
