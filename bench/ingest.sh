#!/usr/bin/env bash
# Ingestion benchmark, side by side: Strata and Debian's Prometheus 2.42 (as a
# remote-write receiver) take the same `strata loadgen` workload on this machine.
# Prints accepted samples/s, CPU-seconds of the server process per million samples and
# the server's peak RSS. Usage: bench/ingest.sh [seconds] [active series]
# Needs /usr/bin/prometheus (apt-get install prometheus). Ports 127.0.0.1:18191-18192.
# STRATA_BACKENDS="direct jetstream" also measures Strata with the ingest log
# (--ingest.backend=jetstream, embedded NATS, one replica); STRATA_ARGS adds server flags
# to every Strata run; SKIP_PROMETHEUS=1 skips Prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
series=${2:-100000}
source bench/lib.sh
bench_work

# measure NAME PID URL [loadgen flags...]
measure() {
	local name=$1 pid=$2 url=$3; shift 3
	local c0 c1
	c0=$(cpu "$pid")
	"$work/strata" loadgen --url "$url" --active-series "$series" --scrape-interval 10s \
		--backfill 3h --duration "${secs}s" --concurrency 8 --batch-size 2000 --progress 0 \
		--output json "$@" > "$work/$name.json"
	c1=$(cpu "$pid")
	python3 - "$work/$name.json" "$name" "$((c1 - c0))" "$hz" "$(peak "$pid")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
name, ticks, hz, rss_kb = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
acc = r["accepted_samples"]
secs = r["elapsed_seconds"]
cpu = ticks / hz
print(f"| {name} | {acc/secs:,.0f} | {cpu/(acc/1e6):.2f} | {rss_kb/1024:,.0f} MiB | {acc:,} samples in {secs:.0f}s, {cpu:.1f} CPU-s |")
PY
}

echo "| server | accepted samples/s | CPU-s per million samples | peak RSS | run |"
echo "|---|---|---|---|---|"

# Strata: SigV4 on (loadgen signs with the root key from the environment), a workspace
# whose maximum sample age covers the backfill and without a rate limit.
# strata_run NAME [server flags...]
strata_run() {
	local name=$1; shift
	rm -rf "$work/strata-data"; mkdir -p "$work/strata-data"
	echo "overrides: {}" > "$work/rt.yaml"
	"$work/strata" server --listen 127.0.0.1:18191 --internal.listen 127.0.0.1:18181 --data-dir "$work/strata-data" \
		--limits.runtime-config-file "$work/rt.yaml" --limits.runtime-config-reload-period 1s \
		--log.level warn ${STRATA_ARGS:-} "$@" 2> "$work/$name.log" &
	local spid=$!
	wait_ready 18191
	local ws
	ws=$(create_workspace 18191 bench)
	printf 'overrides:\n  %s:\n    max_sample_age: 4h\n    ingestion_rate: 0\n    ingestion_burst_size: 0\n' "$ws" > "$work/rt.yaml"
	sleep 2
	measure "$name" "$spid" "http://127.0.0.1:18191/workspaces/$ws/api/v1/remote_write" --sigv4
	kill "$spid"; wait "$spid" 2>/dev/null || true
}
for backend in ${STRATA_BACKENDS:-direct}; do
	if [ "$backend" = direct ]; then
		strata_run strata
	else
		strata_run "strata-$backend" --ingest.backend "$backend"
	fi
done
[ -n "${SKIP_PROMETHEUS:-}" ] && exit 0

printf 'global:\n  scrape_interval: 1m\n' > "$work/prom.yml"
/usr/bin/prometheus --config.file="$work/prom.yml" --storage.tsdb.path="$work/prom-data" \
	--web.listen-address=127.0.0.1:18192 --web.enable-remote-write-receiver 2> "$work/prom.log" &
ppid=$!
for _ in $(seq 50); do curl -sf 127.0.0.1:18192/-/ready >/dev/null && break; sleep 0.1; done
measure prometheus-2.42 "$ppid" "http://127.0.0.1:18192/api/v1/write"
kill "$ppid"; wait "$ppid" 2>/dev/null || true
