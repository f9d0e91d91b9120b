#!/usr/bin/env bash
# Query benchmark, side by side: the same `strata loadgen` data (SERIES series, HOURS hours
# at a 15 s interval, backfilled) is written to Strata and to Debian's Prometheus 2.42, then
# the same queries run against both, each REPEAT times; the median latency is printed.
# Usage: bench/query.sh [series] [hours] [repeat]; LOAD_SECONDS (90) bounds each load, which
# must finish its backfill within it. Ports 127.0.0.1:18193-18194.
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-10000}
hours=${2:-24}
repeat=${3:-5}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/strata" ./cmd/strata

export STRATA_ROOT_ACCESS_KEY_ID=AKIDBENCHMARK0000001 STRATA_ROOT_SECRET_ACCESS_KEY=benchmark-secret-0000000000000000
export AWS_ACCESS_KEY_ID=$STRATA_ROOT_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$STRATA_ROOT_SECRET_ACCESS_KEY AWS_REGION=us-east-1
sign=(--aws-sigv4 "aws:amz:us-east-1:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")

echo "overrides: {}" > "$work/rt.yaml"
"$work/strata" server --listen 127.0.0.1:18193 --data-dir "$work/strata-data" \
	--limits.runtime-config-file "$work/rt.yaml" --limits.runtime-config-reload-period 1s \
	--query.max-samples 500000000 --log.level warn 2> "$work/strata.log" &
for _ in $(seq 50); do curl -sf 127.0.0.1:18193/-/ready >/dev/null && break; sleep 0.1; done
ws=$(curl -sf -XPOST 127.0.0.1:18193/workspaces -d '{"alias":"bench"}' "${sign[@]}" \
	-H 'Content-Type: application/json' | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspaceId"])')
printf 'overrides:\n  %s:\n    max_sample_age: %dh\n    ingestion_rate: 0\n    ingestion_burst_size: 0\n    max_active_series: 0\n    max_active_series_per_metric: 0\n' "$ws" $((hours + 2)) > "$work/rt.yaml"
sleep 2

printf 'global:\n  scrape_interval: 1m\n' > "$work/prom.yml"
/usr/bin/prometheus --config.file="$work/prom.yml" --storage.tsdb.path="$work/prom-data" \
	--web.listen-address=127.0.0.1:18194 --web.enable-remote-write-receiver \
	--query.max-samples=500000000 2> "$work/prom.log" &
for _ in $(seq 50); do curl -sf 127.0.0.1:18194/-/ready >/dev/null && break; sleep 0.1; done

load() { # url [flags]
	local url=$1; shift
	"$work/strata" loadgen --url "$url" --active-series "$series" --scrape-interval 15s \
		--backfill "${hours}h" --duration "${LOAD_SECONDS:-90}s" --concurrency 8 --batch-size 2000 --progress 0 --seed 42 \
		"$@" > "$work/load.txt" 2>&1 || { cat "$work/load.txt"; exit 1; }
	grep -E "accepted|run:" "$work/load.txt" | head -3 >&2
	if grep -q "NOT finished" "$work/load.txt"; then echo "backfill not finished: raise LOAD_SECONDS" >&2; exit 1; fi
}
echo "loading $series series x ${hours}h into Strata ..." >&2
load "http://127.0.0.1:18193/workspaces/$ws/api/v1/remote_write" --sigv4
echo "loading the same into Prometheus 2.42 ..." >&2
load "http://127.0.0.1:18194/api/v1/write"

# Queries to Strata go through the signing proxy (as Grafana without SigV4 would): curl's own
# --aws-sigv4 (7.88) does not canonicalize query strings as SigV4 requires.
"$work/strata" sigv4-proxy --listen 127.0.0.1:18195 --upstream http://127.0.0.1:18193 --log.level warn 2> "$work/proxy.log" &
for _ in $(seq 50); do curl -sf 127.0.0.1:18195/-/healthy >/dev/null && break; sleep 0.1; done

end=$(date +%s)
check() { # fails the benchmark when an endpoint does not answer 200
	local code
	code=$(curl -s -o "$work/answer.json" -w '%{http_code}' -G "$@")
	if [ "$code" != 200 ]; then echo "query failed ($code): $* $(head -c 300 "$work/answer.json")" >&2; exit 1; fi
}
q() { # name path params...
	local name=$1 path=$2; shift 2
	local s p
	check "http://127.0.0.1:18195/workspaces/$ws/api/v1/$path" "$@"
	check "http://127.0.0.1:18194/api/v1/$path" "$@"
	s=$(for _ in $(seq "$repeat"); do curl -s -o /dev/null -w '%{time_total}\n' -G \
		"http://127.0.0.1:18195/workspaces/$ws/api/v1/$path" "$@"; done | sort -n | sed -n "$(( (repeat + 1) / 2 ))p")
	p=$(for _ in $(seq "$repeat"); do curl -s -o /dev/null -w '%{time_total}\n' -G \
		"http://127.0.0.1:18194/api/v1/$path" "$@"; done | sort -n | sed -n "$(( (repeat + 1) / 2 ))p")
	printf '| %s | %.1f ms | %.1f ms |\n' "$name" "$(echo "$s * 1000" | bc -l)" "$(echo "$p * 1000" | bc -l)"
}
echo "| query ($series series x ${hours}h at 15s, median of $repeat) | Strata (through sigv4-proxy) | Prometheus 2.42 |"
echo "|---|---|---|"
q "instant selector node_load1" query --data-urlencode "query=node_load1" --data-urlencode "time=$end"
q "sum by (job) (rate(node_cpu_seconds_total[5m]))" query --data-urlencode "query=sum by (job) (rate(node_cpu_seconds_total[5m]))" --data-urlencode "time=$end"
q "topk(5, rate(node_network_receive_bytes_total[5m]))" query --data-urlencode "query=topk(5, rate(node_network_receive_bytes_total[5m]))" --data-urlencode "time=$end"
q "1h range, 60s step, sum by (job) (rate(...[5m]))" query_range --data-urlencode "query=sum by (job) (rate(node_cpu_seconds_total[5m]))" --data-urlencode "start=$((end - 3600))" --data-urlencode "end=$end" --data-urlencode "step=60"
q "${hours}h range, 60s step, sum by (job) (rate(...[5m]))" query_range --data-urlencode "query=sum by (job) (rate(node_cpu_seconds_total[5m]))" --data-urlencode "start=$((end - hours * 3600))" --data-urlencode "end=$end" --data-urlencode "step=60"
q "/series {__name__=\"node_load1\"}" series --data-urlencode 'match[]=node_load1' --data-urlencode "start=$((end - 3600))" --data-urlencode "end=$end"
q "/labels" labels --data-urlencode "start=$((end - 3600))" --data-urlencode "end=$end"
