#!/usr/bin/env bash
# Backfill benchmark (issue #15): `bench/blockgen` writes SERIES series (100,000) × DAYS days
# (1) at one sample a minute as 2 h blocks into a Prometheus data directory; `strata migrate
# backfill` moves it into a workspace of a Strata server on this machine. Reported: the
# samples moved per second of wall time, and the CPU (user+system) of the client and of the
# server per million samples. Compare with the remote-write path's CPU per million samples
# (bench/ingest.sh; the issue's target is ≥ 5× its samples per CPU-second).
# Usage: bench/backfill.sh [series] [days]; DATA=dir reuses (or keeps) the generated data
# directory. Ports 127.0.0.1:18191 (strata) and 18181 (its internal listener).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
series=${1:-100000}
days=${2:-1}
bench_work "${KEEP:-}"
data=${DATA:-$work/prom-data}
if [ ! -d "$data" ] || [ -z "$(ls -A "$data" 2>/dev/null)" ]; then
	go build -o "$work/blockgen" ./bench/blockgen
	"$work/blockgen" --dir "$data" --series "$series" --days "$days" | tail -1
fi

"$work/strata" server --listen 127.0.0.1:18191 --internal.listen 127.0.0.1:18181 --data-dir "$work/data" \
	--log.level warn 2> "$work/strata.log" &
spid=$!
wait_ready 18191
ws=$(create_workspace 18191 backfill)
c0=$(cpu "$spid")
start=$(date +%s.%N)
# The client's own CPU: `times` of a shell that runs it (its children's user and system).
client=$(bash -c '"$1" migrate backfill --from "$2" --workspace-endpoint "$3" --work-dir "$4" > "$5"; times' _ \
	"$work/strata" "$data" "http://127.0.0.1:18191/workspaces/$ws" "$work/backfill-work" "$work/backfill.log" | tail -1)
end=$(date +%s.%N)
c1=$(cpu "$spid")
tail -1 "$work/backfill.log"
samples=$(sed -n 's/.*(\([0-9]*\) samples, .*/\1/p' "$work/backfill.log" | tail -1)
# `times` prints "XmY.YYYs XmY.YYYs" for the children's user and system time.
ccpu=$(echo "$client" | awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); n += a[1] * 60 + a[2] } print n }')
awk -v s="$samples" -v w="$(echo "$end - $start" | bc)" -v sc=$((c1 - c0)) -v hz="$hz" -v cc="$ccpu" 'BEGIN {
	printf "%d samples in %.1f s: %.0f samples/s; CPU-s per million samples: server %.3f, client %.3f, both %.3f (%.0f samples per CPU-second)\n",
		s, w, s / w, sc / hz / (s / 1e6), cc / (s / 1e6), (sc / hz + cc) / (s / 1e6), s / (sc / hz + cc) }'
