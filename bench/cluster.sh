#!/usr/bin/env bash
# Ingestion on a three-node cluster on this machine: three `strata server` processes with
# the ingest log on embedded, clustered NATS (three replicas), one shared bucket
# directory; `strata loadgen` writes through node 0 (SigV4 on). Prints accepted samples/s
# and CPU-seconds per million samples of the three processes together, and each one's
# peak RSS. Usage: bench/cluster.sh [seconds] [active series]
# Ports 127.0.0.1:18291-18293 (HTTP), 18281-18283 (internal), 18222-18224 (NATS cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
series=${2:-100000}
source bench/lib.sh
bench_work
export STRATA_JETSTREAM_TOKEN=benchmark-cluster-key
echo "overrides: {}" > "$work/rt.yaml"
routes=nats://127.0.0.1:18222,nats://127.0.0.1:18223,nats://127.0.0.1:18224
pids=()
for i in 0 1 2; do
	target=all
	[ $i = 0 ] || target=write,ingester,read
	"$work/strata" server --target $target --listen 127.0.0.1:1829$((1 + i)) --internal.listen 127.0.0.1:1828$((1 + i)) \
		--data-dir "$work/node$i" --bucket.filesystem.dir "$work/bucket" --meta.poll-interval 500ms \
		--ingest.backend jetstream --jetstream.cluster-listen 127.0.0.1:1822$((2 + i)) --jetstream.routes $routes \
		--jetstream.server-name node$i --limits.runtime-config-file "$work/rt.yaml" --limits.runtime-config-reload-period 1s \
		--log.level warn 2> "$work/node$i.log" &
	pids+=($!)
done
for i in 0 1 2; do wait_ready 1829$((1 + i)); done
ws=$(create_workspace 18291 bench)
printf 'overrides:\n  %s:\n    max_sample_age: 4h\n    ingestion_rate: 0\n    ingestion_burst_size: 0\n' "$ws" > "$work/rt.yaml"
sleep 3
c0=0
for p in "${pids[@]}"; do c0=$((c0 + $(cpu "$p"))); done
"$work/strata" loadgen --url "http://127.0.0.1:18291/workspaces/$ws/api/v1/remote_write" --active-series "$series" \
	--scrape-interval 10s --backfill 3h --duration "${secs}s" --concurrency 8 --batch-size 2000 --progress 0 \
	--sigv4 --output json > "$work/lg.json"
c1=0
rss=""
for p in "${pids[@]}"; do
	c1=$((c1 + $(cpu "$p")))
	rss="$rss $(($(peak "$p") / 1024))MiB"
done
python3 - "$work/lg.json" "$((c1 - c0))" "$hz" "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ticks, hz, rss = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split()
acc, secs = r["accepted_samples"], r["elapsed_seconds"]
cpu = ticks / hz
print("| cluster | accepted samples/s | CPU-s per million samples (3 processes) | per replica | peak RSS per node | run |")
print("|---|---|---|---|---|---|")
print(f"| 3 nodes, R3 | {acc/secs:,.0f} | {cpu/(acc/1e6):.2f} | {cpu/(acc/1e6)/3:.2f} | {' / '.join(rss)} | {acc:,} samples in {secs:.0f}s, {cpu:.1f} CPU-s |")
PY
