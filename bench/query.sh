#!/usr/bin/env bash
# Query benchmark, side by side (issue #13): the same blocks — `bench/blockgen --layout node`,
# SERIES series (hosts of 100 node-exporter-like series with a classic histogram) × HOURS
# hours at 15 s, ending about an hour after they are written — are given to three servers:
# Strata through `strata migrate backfill` into a workspace (the user's path into its
# bucket), Prometheus 2.42 (/usr/bin/prometheus) and Prometheus 3 (PROM3, default
# ~/go/bin/prometheus3) by copying them into their data directories. Each server then
# compacts them and is measured only once it is idle (its CPU below 2% for 70 s).
#
# The queries run against one server at a time: Strata with --query.parallelism=1 (the
# per-core figure) and with its default (one part per CPU; the wall-clock figure), range
# queries sent with Cache-Control: no-store so that they are evaluated cold (Prometheus
# ignores the header), then Prometheus 2.42 and 3. Each query is first run once (answer
# checked, blocks read into the page cache and Strata's store-gateway), then REPEAT times
# (more for fast ones, up to 101, so that each takes about 3 s); reported: the median wall
# time seen by curl and the server's CPU time (utime+stime from /proc/PID/stat, before and
# after the repetitions, divided by their number): the per-core cost, robust to other work
# on the machine. Plus the dashboard row: the 24 h range ending at now, as a dashboard
# refresh asks it (results cache on), against the same cold; only the steps of the last
# --query.cache-max-freshness (10 m) are evaluated again.
# With `--query.shards` in `strata server --help`, also the instant `sum by (job)` query
# with --query.shards=2.
#
# Usage: bench/query.sh [series (100000)] [hours (24)] [repeat (3)]
# BENCH_DIR=dir keeps the blocks and the servers' data there (else a temporary directory,
# removed at exit); PHASE=load writes the blocks (unless dir/blocks exists) and loads and
# settles the servers, PHASE=query measures the data of an earlier load with the current
# code, PHASE=all (default) does both. SERVERS picks the runs (default "strata-p1 strata
# prometheus-2.42 prometheus-3"). PROFILE=seconds writes a CPU profile of each server
# during its repetitions of each query over 1 s to dir/profiles (pprof).
# PAIR=1 (with PHASE=query) measures Strata at --query.parallelism=1 and Prometheus 3
# interleaved instead: both run, and each repetition of a query goes to one, then the
# other, so that whatever else the machine does weighs on both alike (on this 2-CPU VM a
# process' CPU time for the same work varies by ±10% with the load on the other CPU).
# STRATA_FLAGS="--flag value ..." adds flags to every Strata server started (split on
# spaces), e.g. STRATA_FLAGS="--runtime.min-heap-goal 0" for Go's own GC pacing.
# SHARDS_AB=N (with PHASE=query) measures sharding alone: two Strata servers on copies of
# the data (dir/strata-data-b, made once), unsharded and --query.shards=2, the instant
# `sum by (job)` query interleaved between them N times.
# Ports 127.0.0.1:18190 (Strata; 18191 its internal listener), 18192 (Prometheus 2.42),
# 18193 (Prometheus 3), 18290 and 18291 (the second Strata of SHARDS_AB).
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-100000}
hours=${2:-24}
repeat=${3:-3}
phase=${PHASE:-all}
prom3=${PROM3:-$HOME/go/bin/prometheus3}
servers=${SERVERS:-strata-p1 strata prometheus-2.42 prometheus-3}
source bench/lib.sh
bench_work "${BENCH_DIR:-}"

# settle PID [seconds]: waits at least seconds, then until the process used under 2% of a
# CPU in SETTLE (7) windows of 10 s in a row (a compaction running every minute shows in
# them).
settle() {
	local pid=$1 t0=$SECONDS quiet=0 c0 c1
	sleep "${2:-0}"
	while [ "$quiet" -lt "${SETTLE:-7}" ] && [ $((SECONDS - t0)) -lt 3600 ]; do
		c0=$(cpu "$pid"); sleep 10; c1=$(cpu "$pid")
		if [ $((c1 - c0)) -le $((hz / 5)) ]; then quiet=$((quiet + 1)); else quiet=0; fi
	done
	echo "settled after $((SECONDS - t0)) s" >&2
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# start_strata [flags]: starts Strata on 18190 (pid in $pid).
# sport and sdata, when set, replace the port (its internal listener one above) and the
# data directory.
start_strata() {
	local port=${sport:-18190}
	"$work/strata" server --listen "127.0.0.1:$port" --internal.listen "127.0.0.1:$((port + 1))" --data-dir "${sdata:-$work/strata-data}" \
		--server.enable-pprof --import.creation-grace-period 3h --query.max-samples 500000000 \
		--log.level warn ${STRATA_FLAGS:-} "$@" 2>> "$work/strata.log" &
	pid=$!
	wait_ready 18190 3000
}
# start_prom BINARY PORT DIR: starts a Prometheus (pid in $pid).
start_prom() {
	printf 'global:\n  scrape_interval: 1m\n' > "$work/prom.yml"
	"$1" --config.file="$work/prom.yml" --storage.tsdb.path="$3" --web.listen-address="127.0.0.1:$2" \
		--query.max-samples=500000000 --storage.tsdb.retention.time=30d 2>> "$3.log" &
	pid=$!
	wait_ready "$2" 3000
}

if [ "$phase" != query ]; then
	if [ ! -d "$work/blocks" ]; then
		# The data end about an hour after now, so that the dashboard row (a 24 h range
		# ending at now) finds samples in its newest steps during the run.
		end=$(date -u -d '+75 min' +%FT%H:%M:00Z)
		go build -o "$work/blockgen" ./bench/blockgen
		echo "writing $series series x ${hours}h at 15s, ending $end ..." >&2
		"$work/blockgen" --dir "$work/blocks.tmp" --series "$series" --hours "$hours" --interval 15s --layout node --end "$end" | tail -1 >&2
		mv "$work/blocks.tmp" "$work/blocks"
		date -u -d "$end" +%s > "$work/end"
	fi
	[ -s "$work/end" ] || { echo "$work/end missing: the end of the data, in seconds since the epoch" >&2; exit 1; }

	echo "Strata: migrate backfill ..." >&2
	rm -rf "$work/strata-data" "$work/backfill-work" "$work/strata.log"
	start_strata --compactor.interval 1m
	ws=$(create_workspace 18190 bench)
	echo "$ws" > "$work/workspace"
	"$work/strata" migrate backfill --from "$work/blocks" --workspace-endpoint "http://127.0.0.1:18190/workspaces/$ws" \
		--work-dir "$work/backfill-work" > "$work/backfill.log" 2>&1 || { tail "$work/backfill.log"; exit 1; }
	tail -1 "$work/backfill.log" >&2
	settle "$pid" 130
	stop "$pid"
	for p in "prometheus-2.42 /usr/bin/prometheus 18192" "prometheus-3 $prom3 18193"; do
		set -- $p
		echo "$1: copying the blocks ..." >&2
		rm -rf "$work/$1" "$work/$1.log"
		cp -r "$work/blocks" "$work/$1"
		start_prom "$2" "$3" "$work/$1"
		settle "$pid" 90
		stop "$pid"
	done
	du -sh "$work/blocks" "$work/strata-data" "$work/prometheus-2.42" "$work/prometheus-3" >&2
fi
[ "$phase" = load ] && exit 0

ws=$(cat "$work/workspace")
E=$(cat "$work/end")
check() { # fails the benchmark when an endpoint does not answer 200; prints the time taken
	local out
	out=$(curl -s -o "$work/answer.json" -w '%{http_code} %{time_total}' "$@")
	if [ "${out% *}" != 200 ]; then echo "query failed (${out% *}): $* $(head -c 300 "$work/answer.json")" >&2; exit 1; fi
	echo "${out#* }"
}
median() { sort -n | sed -n "$(( ($1 + 1) / 2 ))p"; }
# at params...: params with @E@ (the end of the data), @H1@ (1 h before), @D1@ (hours
# before), @D7@ (7 days before) filled in.
at() {
	local a
	for a in "$@"; do a=${a//@E@/$E}; a=${a//@H1@/$((E - 3600))}; a=${a//@D1@/$((E - hours * 3600))}; echo "${a//@D7@/$((E - 7 * 86400))}"; done
}
# q ID path params...: two requests checked (the second's time sets the repetitions), then
# the repetitions; writes
# "median-ms cpu-ms-per-request n" to $res/ID.
q() {
	local id=$1 path=$2 n=$repeat i first c0 c1; shift 2
	local -a p
	mapfile -t p < <(at "$@")
	check "${sign[@]}" "${hdr[@]}" "$base/$path" "${p[@]}" > /dev/null
	first=$(check "${sign[@]}" "${hdr[@]}" "$base/$path" "${p[@]}")
	n=$(echo "f = 3 / ($first + 0.001); if (f > 101) f = 101; if (f < $repeat) f = $repeat; scale=0; f / 1" | bc -l)
	: > "$work/times"
	[ -n "${PROFILE:-}" ] && [ "$(echo "$first > 1" | bc -l)" = 1 ] &&
		curl -s -o "$work/profiles/$run-$id.pprof" "$pprof?seconds=$PROFILE" &
	c0=$(cpu "$pid")
	for i in $(seq "$n"); do
		curl -s -o /dev/null -w '%{time_total}\n' "${sign[@]}" "${hdr[@]}" "$base/$path" "${p[@]}" >> "$work/times"
	done
	c1=$(cpu "$pid")
	wait_profile
	echo "$(median "$n" < "$work/times") $(( (c1 - c0) * 1000 / hz )) $n" |
		awk '{ printf "%.2f %.2f %d\n", $1 * 1000, $2 / $3, $3 }' > "$res/$id"
	echo "$run $id: $(cat "$res/$id")" >&2
}
wait_profile() { local j; for j in $(jobs -p); do [ "$j" = "$pid" ] || wait "$j" || true; done; }

rate='sum by (job) (rate(node_cpu_seconds_total[5m]))'
hq='histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))'
topk='topk(5, rate(node_network_receive_bytes_total[5m]))'
queries() {
	q instant query --data-urlencode "query=node_load1" --data-urlencode "time=@E@"
	q rate query --data-urlencode "query=$rate" --data-urlencode "time=@E@"
	q hq query --data-urlencode "query=$hq" --data-urlencode "time=@E@"
	q topk query --data-urlencode "query=$topk" --data-urlencode "time=@E@"
	q range1h query_range --data-urlencode "query=$rate" --data-urlencode "start=@H1@" --data-urlencode "end=@E@" --data-urlencode "step=60"
	q range24h query_range --data-urlencode "query=$rate" --data-urlencode "start=@D1@" --data-urlencode "end=@E@" --data-urlencode "step=60"
	q range7d query_range --data-urlencode "query=$rate" --data-urlencode "start=@D7@" --data-urlencode "end=@E@" --data-urlencode "step=60"
	q hq24h query_range --data-urlencode "query=$hq" --data-urlencode "start=@D1@" --data-urlencode "end=@E@" --data-urlencode "step=60"
	q series series --data-urlencode 'match[]=node_load1' --data-urlencode "start=@H1@" --data-urlencode "end=@E@"
	q labels labels --data-urlencode "start=@H1@" --data-urlencode "end=@E@"
}
# dashboard: the 24 h range ending at now (rounded to the step, as Grafana does), cold
# (no-store) and then warm (the cache filled by the first request).
dashboard() {
	local now c0 c1 i mode
	for mode in cold warm; do
		local -a h=()
		[ "$mode" = cold ] && h=(-H 'Cache-Control: no-store')
		: > "$work/times"
		now=$(( $(date +%s) / 60 * 60 ))
		check "${sign[@]}" "${h[@]}" "$base/query_range" --data-urlencode "query=$rate" --data-urlencode "start=$((now - 86400))" \
			--data-urlencode "end=$now" --data-urlencode "step=60" > /dev/null
		c0=$(cpu "$pid")
		for i in $(seq "$repeat"); do
			now=$(( $(date +%s) / 60 * 60 ))
			curl -s -o /dev/null -w '%{time_total}\n' "${sign[@]}" "${h[@]}" "$base/query_range" --data-urlencode "query=$rate" \
				--data-urlencode "start=$((now - 86400))" --data-urlencode "end=$now" --data-urlencode "step=60" >> "$work/times"
		done
		c1=$(cpu "$pid")
		echo "$(median "$repeat" < "$work/times") $(( (c1 - c0) * 1000 / hz )) $repeat" |
			awk '{ printf "%.2f %.2f %d\n", $1 * 1000, $2 / $3, $3 }' > "$res/dash-$mode"
		echo "$run dash-$mode: $(cat "$res/dash-$mode")" >&2
	done
}

mkdir -p "$work/results" "$work/profiles"
# pq ID path params...: the query to both servers of pids, bases, hdrs and names2,
# interleaved; writes "median-ms cpu-ms-per-request n" to $work/results/pair-NAME/ID.
pq() {
	local id=$1 path=$2 n i k first slow=0 c0 c1; shift 2
	local -a p
	mapfile -t p < <(at "$@")
	for k in 0 1; do
		check "${sign[@]}" ${hdrs[k]} "${bases[k]}/$path" "${p[@]}" > /dev/null
		first=$(check "${sign[@]}" ${hdrs[k]} "${bases[k]}/$path" "${p[@]}")
		slow=$(echo "if ($first > $slow) $first else $slow" | bc -l)
		: > "$work/times-$k"; echo 0 > "$work/cpu-$k"
	done
	n=$(echo "f = 3 / ($slow + 0.001); if (f > 101) f = 101; if (f < $repeat) f = $repeat; scale=0; f / 1" | bc -l)
	for i in $(seq "$n"); do
		for k in 0 1; do
			c0=$(cpu "${pids[k]}")
			curl -s -o /dev/null -w '%{time_total}\n' "${sign[@]}" ${hdrs[k]} "${bases[k]}/$path" "${p[@]}" >> "$work/times-$k"
			c1=$(cpu "${pids[k]}")
			echo $(( $(cat "$work/cpu-$k") + c1 - c0 )) > "$work/cpu-$k"
		done
	done
	for k in 0 1; do
		mkdir -p "$work/results/pair-${names2[k]}"
		echo "$(median "$n" < "$work/times-$k") $(( $(cat "$work/cpu-$k") * 1000 / hz )) $n" |
			awk '{ printf "%.2f %.2f %d\n", $1 * 1000, $2 / $3, $3 }' > "$work/results/pair-${names2[k]}/$id"
		echo "pair ${names2[k]} $id: $(cat "$work/results/pair-${names2[k]}/$id")" >&2
	done
}
if [ -n "${PAIR:-}" ]; then
	names2=(strata-p1 prometheus-3)
	start_strata --query.parallelism 1
	spid=$pid
	start_prom "$prom3" 18193 "$work/prometheus-3"
	pids=("$spid" "$pid")
	bases=("http://127.0.0.1:18190/workspaces/$ws/api/v1" "http://127.0.0.1:18193/api/v1")
	hdrs=("-H Cache-Control:no-store" "")
	settle "$spid" 5
	settle "$pid" 5
	q() { pq "$@"; }
	queries
	stop "$spid"
	stop "$pid"
	echo
	echo "| query, interleaved ($series series × ${hours} h at 15 s): CPU ms per request | Strata, parallelism 1 | Prometheus 3 | Strata / Prometheus 3 | requests each |"
	echo "|---|---|---|---|---|"
	for id in instant rate hq topk range1h range24h range7d hq24h series labels; do
		a=$(awk '{print $2}' "$work/results/pair-strata-p1/$id") b=$(awk '{print $2}' "$work/results/pair-prometheus-3/$id")
		echo "| $id | $a | $b | $(echo "scale=2; $a / $b" | bc -l) | $(awk '{print $3}' "$work/results/pair-strata-p1/$id") |"
	done
	exit 0
fi
if [ -n "${SHARDS_AB:-}" ]; then
	# Two Strata servers on copies of the data, default parallelism, one unsharded and
	# one with --query.shards=2, the instant `sum by (job)` query interleaved between
	# them SHARDS_AB times (at least).
	[ -d "$work/strata-data-b" ] || cp -r "$work/strata-data" "$work/strata-data-b"
	names2=(strata strata-shards2)
	start_strata
	apid=$pid
	sport=18290 sdata=$work/strata-data-b start_strata --query.shards 2
	pids=("$apid" "$pid")
	bases=("http://127.0.0.1:18190/workspaces/$ws/api/v1" "http://127.0.0.1:18290/workspaces/$ws/api/v1")
	hdrs=("-H Cache-Control:no-store" "-H Cache-Control:no-store")
	settle "$apid" 5
	settle "$pid" 5
	repeat=$SHARDS_AB
	pq rate query --data-urlencode "query=$rate" --data-urlencode "time=@E@"
	stop "$apid"
	stop "$pid"
	a=$(awk '{print $1}' "$work/results/pair-strata/rate") b=$(awk '{print $1}' "$work/results/pair-strata-shards2/rate")
	echo "instant \`$rate\`, interleaved, median wall: unsharded $a ms ($(awk '{print $2}' "$work/results/pair-strata/rate") CPU-ms), --query.shards=2 $b ms ($(awk '{print $2}' "$work/results/pair-strata-shards2/rate") CPU-ms): $(echo "scale=2; $a / $b" | bc -l)x"
	exit 0
fi
shards=$("$work/strata" server --help 2>&1 | grep -c -- '-query.shards' || true)
[ "$shards" -gt 0 ] && servers="$servers strata-shards2"
for run in $servers; do
	res=$work/results/$run
	rm -rf "$res"; mkdir -p "$res"
	hdr=()
	case $run in
	strata*)
		case $run in
		strata-p1) start_strata --query.parallelism 1 ;;
		strata-shards2) start_strata --query.shards 2 ;;
		*) start_strata ;;
		esac
		base=http://127.0.0.1:18190/workspaces/$ws/api/v1 pprof=http://127.0.0.1:18191/debug/pprof/profile
		hdr=(-H 'Cache-Control: no-store')
		;;
	prometheus-2.42) start_prom /usr/bin/prometheus 18192 "$work/$run"; base=http://127.0.0.1:18192/api/v1 pprof=http://127.0.0.1:18192/debug/pprof/profile ;;
	prometheus-3) start_prom "$prom3" 18193 "$work/$run"; base=http://127.0.0.1:18193/api/v1 pprof=http://127.0.0.1:18193/debug/pprof/profile ;;
	esac
	settle "$pid" 5
	if [ "$run" = strata-shards2 ]; then
		q rate query --data-urlencode "query=$rate" --data-urlencode "time=@E@"
	else
		queries
	fi
	[ "$run" = strata ] && dashboard
	stop "$pid"
done

# The tables: wall time and CPU time per request of each run.
cell() { [ -f "$work/results/$1/$2" ] && awk -v f="$3" '{ printf "%s", $f < 10 ? sprintf("%.2f", $f) : sprintf("%\047.0f", $f) }' "$work/results/$1/$2" || printf -- '-'; }
names=(instant "\`node_load1\`" rate "\`$rate\`" hq "\`${hq//\`/}\`" topk "\`$topk\`"
	range1h "1 h range, 60 s step, \`sum by (job) (rate(...))\`" range24h "${hours} h range, 60 s step, same"
	range7d "7 d range, 60 s step, same" hq24h "${hours} h range, 60 s step, \`histogram_quantile\`"
	series "\`/series\` \`node_load1\`, last hour" labels "\`/labels\`, last hour")
for col in "2 CPU time per request, ms (the per-core figure)" "1 median wall time, ms"; do
	f=${col%% *}
	echo
	echo "| ${col#* } ($series series × ${hours} h at 15 s) | Strata, parallelism 1 | Strata | Prometheus 2.42 | Prometheus 3 | requests each (Strata) |"
	echo "|---|---|---|---|---|---|"
	for ((i = 0; i < ${#names[@]}; i += 2)); do
		id=${names[i]}
		echo "| ${names[i + 1]} | $(cell strata-p1 "$id" "$f") | $(cell strata "$id" "$f") | $(cell prometheus-2.42 "$id" "$f") | $(cell prometheus-3 "$id" "$f") | $(cat "$work/results/strata/$id" 2>/dev/null | awk '{print $3}') |"
	done
done
if [ -f "$work/results/strata/dash-cold" ]; then
	echo
	echo "| dashboard: ${hours} h range ending at now, \`sum by (job) (rate(...))\`, Strata | median wall time | CPU time per request |"
	echo "|---|---|---|"
	for m in cold warm; do echo "| $m | $(cell strata dash-$m 1) ms | $(cell strata dash-$m 2) ms |"; done
fi
if [ -f "$work/results/strata-shards2/rate" ]; then
	echo
	echo "instant \`$rate\`, Strata (default parallelism): unsharded $(cell strata rate 1) ms, --query.shards=2 $(cell strata-shards2 rate 1) ms (median wall time)"
fi
