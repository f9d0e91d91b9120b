#!/usr/bin/env bash
# Memory per active series: one Strata process takes [active series] series from
# `strata loadgen` (10 s scrape interval, 10 minutes of backfill, then 30 s) and reports
# its resident memory before and after, and the difference per series.
# Usage: bench/memory.sh [active series] [server flags...]. Ports 127.0.0.1:18391, 18381.
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-300000}
shift || true
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/strata" ./cmd/strata
export STRATA_ROOT_ACCESS_KEY_ID=AKIDBENCHMARK0000001 STRATA_ROOT_SECRET_ACCESS_KEY=benchmark-secret-0000000000000000
export AWS_ACCESS_KEY_ID=$STRATA_ROOT_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$STRATA_ROOT_SECRET_ACCESS_KEY AWS_REGION=us-east-1
printf 'limits:\n  max_active_series: 0\n  max_active_series_per_metric: 0\n  ingestion_rate: 0\n  ingestion_burst_size: 0\n' > "$work/limits.yaml"
"$work/strata" server --config.file "$work/limits.yaml" --listen 127.0.0.1:18391 --internal.listen 127.0.0.1:18381 \
	--data-dir "$work/d" --log.level warn "$@" 2> "$work/s.log" &
pid=$!
for _ in $(seq 300); do curl -sf 127.0.0.1:18391/-/ready >/dev/null && break; sleep 0.1; done
ws=$(curl -sf -XPOST 127.0.0.1:18391/workspaces -d '{"alias":"mem"}' --aws-sigv4 "aws:amz:us-east-1:aps" \
	--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H 'Content-Type: application/json' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["workspaceId"])')
sleep 2
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
"$work/strata" loadgen --url "http://127.0.0.1:18391/workspaces/$ws/api/v1/remote_write" --active-series "$series" \
	--scrape-interval 10s --backfill 10m --duration 30s --concurrency 4 --batch-size 2000 --progress 0 --sigv4 \
	--output json > "$work/lg.json"
sleep 5
after=$(rss)
python3 - "$before" "$after" "$series" "$work/lg.json" <<'PY'
import json, sys
before, after, series = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(sys.argv[4]))
print(f"RSS {before/1024:,.0f} MiB idle, {after/1024:,.0f} MiB with {series:,} active series "
      f"({r['accepted_samples']:,} samples): {(after-before)*1024/series:,.0f} bytes per series")
PY
