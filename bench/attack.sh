#!/usr/bin/env bash
# Slow-connection attack benchmark: the same signed `strata loadgen` load twice against a
# fresh Strata, once alone and once beside N slow unauthenticated connections (half
# trickling their headers, half an unsigned POST announcing 8 MiB and trickling its
# body; `--attack.slow-connections`). Prints Strata's RSS (before, peak during each run)
# and what the load got (accepted samples/s, statuses, p99 latency), so the RSS growth the
# attack causes and whether signed requests keep being served can be read off.
# Usage: bench/attack.sh [seconds] [active series] [slow connections]
# Ports 127.0.0.1:18195 (server) and 18185 (internal listener).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
series=${2:-10000}
conns=${3:-500}
source bench/lib.sh
bench_work

# run NAME [loadgen flags...]: a fresh server, the load, RSS sampled every 200 ms.
run() {
	local name=$1; shift
	rm -rf "$work/data"; mkdir -p "$work/data"
	"$work/strata" server --listen 127.0.0.1:18195 --internal.listen 127.0.0.1:18185 --data-dir "$work/data" \
		--log.level warn 2> "$work/$name.strata.log" &
	local pid=$!
	wait_ready 18195
	local ws
	ws=$(create_workspace 18195 attack)
	sleep 2
	local before
	before=$(rss "$pid")
	( peak=0; while kill -0 "$pid" 2>/dev/null; do r=$(rss "$pid" 2>/dev/null || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" > "$work/$name.peak"; sleep 0.2; done ) &
	local sampler=$!
	"$work/strata" loadgen --url "http://127.0.0.1:18195/workspaces/$ws/api/v1/remote_write" --sigv4 \
		--active-series "$series" --scrape-interval 1s --duration "${secs}s" --concurrency 4 --batch-size 2000 \
		--progress 0 --output json "$@" > "$work/$name.json" 2> "$work/$name.loadgen.log"
	local open
	open=$(curl -sf 127.0.0.1:18185/metrics | awk '/^strata_http_connections / {print $2}')
	kill "$sampler" 2>/dev/null || true
	python3 - "$work/$name.json" "$name" "$before" "$(cat "$work/$name.peak")" "${open:-?}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
name, before, peak, conns = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
st = ", ".join(f"{k}: {v}" for k, v in sorted(r["requests_by_status"].items()))
lat = r["latency"]
a = r.get("attack")
att = "none" if not a else f'{a["connections"]} held ({a["mode"]}), {a["opened"]} opened, answers {a["answers"]}'
print(f'| {name} | {before/1024:.0f} MiB | {peak/1024:.0f} MiB | {r["accepted_samples_per_second"]:,.0f} | {st} | {lat["p99_seconds"]*1e3:.1f} ms | {conns} | {att} |')
PY
	kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "| run | RSS before | peak RSS | accepted samples/s | statuses | p99 | open connections at the end | attack |"
echo "|---|---|---|---|---|---|---|---|"
run load-only
run "load+${conns}-slow" --attack.slow-connections "$conns" --attack.mode mixed --attack.interval 1s
