#!/usr/bin/env bash
# Query benchmark, side by side: the same `strata loadgen` data (SERIES series, HOURS hours
# at a 15 s interval, backfilled) is written to Strata and to Debian's Prometheus 2.42, then
# the same queries run against both, interleaved, REPEAT times each (101 for queries under
# 50 ms); the median latency is printed.
# Each server is queried over the window its own load ended at.
# Usage: bench/query.sh [series] [hours] [repeat]; LOAD_SECONDS (3600) bounds each load.
# Large loads take long (Prometheus takes ~235k samples/s): with BENCH_DIR=dir the data is
# kept there, PHASE=load only loads (servers stopped after), PHASE=query only queries the
# data of an earlier load with the current code (PHASE=all, the default, does both).
# Ports 127.0.0.1:18193-18194.
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-10000}
hours=${2:-24}
repeat=${3:-5}
phase=${PHASE:-all}
source bench/lib.sh
bench_work "${BENCH_DIR:-}"

[ "$phase" = query ] || echo "overrides: {}" > "$work/rt.yaml"
"$work/strata" server --listen 127.0.0.1:18193 --internal.listen 127.0.0.1:18183 --data-dir "$work/strata-data" \
	--limits.runtime-config-file "$work/rt.yaml" --limits.runtime-config-reload-period 1s \
	--query.max-samples 500000000 --log.level warn 2> "$work/strata.log" &
wait_ready 18193 3000 # WAL replay
if [ "$phase" != query ]; then
ws=$(create_workspace 18193 bench)
printf 'overrides:\n  %s:\n    max_sample_age: %dh\n    ingestion_rate: 0\n    ingestion_burst_size: 0\n    max_active_series: 0\n    max_active_series_per_metric: 0\n' "$ws" $((hours + 2)) > "$work/rt.yaml"
echo "$ws" > "$work/workspace"
sleep 2
fi
ws=$(cat "$work/workspace")

printf 'global:\n  scrape_interval: 1m\n' > "$work/prom.yml"
/usr/bin/prometheus --config.file="$work/prom.yml" --storage.tsdb.path="$work/prom-data" \
	--web.listen-address=127.0.0.1:18194 --web.enable-remote-write-receiver \
	--query.max-samples=500000000 2> "$work/prom.log" &
for _ in $(seq 3000); do curl -sf 127.0.0.1:18194/-/ready >/dev/null && break; sleep 0.1; done # WAL replay

load() { # url [flags]
	local url=$1; shift
	"$work/strata" loadgen --url "$url" --active-series "$series" --scrape-interval 15s \
		--backfill "${hours}h" --stop-after-backfill --duration "${LOAD_SECONDS:-3600}s" --concurrency 8 --batch-size 2000 --progress 0 --seed 42 \
		"$@" > "$work/load.txt" 2>&1 || { cat "$work/load.txt"; exit 1; }
	grep -E "accepted|run:" "$work/load.txt" | head -3 >&2
	if grep -q "NOT finished" "$work/load.txt"; then echo "backfill not finished: raise LOAD_SECONDS" >&2; exit 1; fi
}
if [ "$phase" != query ]; then
	echo "loading $series series x ${hours}h into Strata ..." >&2
	load "http://127.0.0.1:18193/workspaces/$ws/api/v1/remote_write" --sigv4
	date +%s > "$work/end-strata"
	echo "loading the same into Prometheus 2.42 ..." >&2
	load "http://127.0.0.1:18194/api/v1/write"
	date +%s > "$work/end-prometheus"
fi
[ "$phase" = load ] && exit 0

# Queries are POSTed with a form body, to both: curl's --aws-sigv4 (7.88) signs a body
# correctly but not a query string (it does not canonicalize it as SigV4 requires), so
# Strata is queried directly with signed requests, as Grafana's SigV4 client would.
# Requests to Prometheus are signed too (it ignores the header): curl's signing costs
# about 0.3 ms per request on the client, which would otherwise count against Strata.

end_s=$(cat "$work/end-strata") end_p=$(cat "$work/end-prometheus")
check() { # fails the benchmark when an endpoint does not answer 200; prints the time taken
	local out
	out=$(curl -s -o "$work/answer.json" -w '%{http_code} %{time_total}' "$@")
	if [ "${out% *}" != 200 ]; then echo "query failed (${out% *}): $* $(head -c 300 "$work/answer.json")" >&2; exit 1; fi
	echo "${out#* }"
}
at() { # end params...: params with @E@ (end), @H1@ (end - 1h) and @HN@ (end - hours) filled in
	local e=$1 a; shift
	for a in "$@"; do a=${a//@E@/$e}; a=${a//@H1@/$((e - 3600))}; echo "${a//@HN@/$((e - hours * 3600))}"; done
}
median() { sort -n | sed -n "$(( ($1 + 1) / 2 ))p"; }
q() { # name path params...: the median of $repeat requests to each, interleaved; 101 for
	# queries under 50 ms, whose differences are otherwise lost in noise
	local name=$1 path=$2 n=$repeat i first; shift 2
	local -a ps pp
	mapfile -t ps < <(at "$end_s" "$@")
	mapfile -t pp < <(at "$end_p" "$@")
	first=$(check "${sign[@]}" "http://127.0.0.1:18193/workspaces/$ws/api/v1/$path" "${ps[@]}")
	check "${sign[@]}" "http://127.0.0.1:18194/api/v1/$path" "${pp[@]}" > /dev/null
	if [ "$(echo "$first < 0.05" | bc -l)" = 1 ]; then n=$((repeat > 101 ? repeat : 101)); fi
	: > "$work/times-s"; : > "$work/times-p"
	for i in $(seq "$n"); do
		curl -s -o /dev/null -w '%{time_total}\n' "${sign[@]}" "http://127.0.0.1:18193/workspaces/$ws/api/v1/$path" "${ps[@]}" >> "$work/times-s"
		curl -s -o /dev/null -w '%{time_total}\n' "${sign[@]}" "http://127.0.0.1:18194/api/v1/$path" "${pp[@]}" >> "$work/times-p"
	done
	printf '| %s | %.2f ms | %.2f ms | %d |\n' "$name" "$(echo "$(median "$n" < "$work/times-s") * 1000" | bc -l)" \
		"$(echo "$(median "$n" < "$work/times-p") * 1000" | bc -l)" "$n"
}
rate='sum by (job) (rate(node_cpu_seconds_total[5m]))'
echo "| query ($series series x ${hours}h at 15s, median) | Strata (SigV4) | Prometheus 2.42 | requests each |"
echo "|---|---|---|---|"
q "instant selector node_load1" query --data-urlencode "query=node_load1" --data-urlencode "time=@E@"
q "$rate" query --data-urlencode "query=$rate" --data-urlencode "time=@E@"
q "topk(5, rate(node_network_receive_bytes_total[5m]))" query --data-urlencode "query=topk(5, rate(node_network_receive_bytes_total[5m]))" --data-urlencode "time=@E@"
q "1h range, 60s step, $rate" query_range --data-urlencode "query=$rate" --data-urlencode "start=@H1@" --data-urlencode "end=@E@" --data-urlencode "step=60"
q "${hours}h range, 60s step, $rate" query_range --data-urlencode "query=$rate" --data-urlencode "start=@HN@" --data-urlencode "end=@E@" --data-urlencode "step=60"
q "/series {__name__=\"node_load1\"}" series --data-urlencode 'match[]=node_load1' --data-urlencode "start=@H1@" --data-urlencode "end=@E@"
q "/labels" labels --data-urlencode "start=@H1@" --data-urlencode "end=@E@"
