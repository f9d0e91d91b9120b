#!/usr/bin/env bash
# Memory per active series: one Strata process takes [active series] series from
# `strata loadgen` (10 s scrape interval, 10 minutes of backfill, then 30 s) and reports
# its resident memory before and after, and the difference per series.
# Usage: bench/memory.sh [active series] [server flags...]. Ports 127.0.0.1:18391, 18381.
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-300000}
shift || true
source bench/lib.sh
bench_work
printf 'limits:\n  max_active_series: 0\n  max_active_series_per_metric: 0\n  ingestion_rate: 0\n  ingestion_burst_size: 0\n' > "$work/limits.yaml"
"$work/strata" server --config.file "$work/limits.yaml" --listen 127.0.0.1:18391 --internal.listen 127.0.0.1:18381 \
	--data-dir "$work/d" --log.level warn "$@" 2> "$work/s.log" &
pid=$!
wait_ready 18391
ws=$(create_workspace 18391 mem)
sleep 2
before=$(rss "$pid")
"$work/strata" loadgen --url "http://127.0.0.1:18391/workspaces/$ws/api/v1/remote_write" --active-series "$series" \
	--scrape-interval 10s --backfill 10m --duration 30s --concurrency 4 --batch-size 2000 --progress 0 --sigv4 \
	--output json > "$work/lg.json"
sleep 5
after=$(rss "$pid")
python3 - "$before" "$after" "$series" "$work/lg.json" <<'PY'
import json, sys
before, after, series = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(sys.argv[4]))
print(f"RSS {before/1024:,.0f} MiB idle, {after/1024:,.0f} MiB with {series:,} active series "
      f"({r['accepted_samples']:,} samples): {(after-before)*1024/series:,.0f} bytes per series")
PY
