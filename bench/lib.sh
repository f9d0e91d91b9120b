# Shared by the benchmark scripts (sourced, from the repository's root).

# bench_work [dir]: builds strata into $work, a new temporary directory removed at exit
# (or dir, kept), and stops the background jobs at exit. STRATA_BIN=path uses that binary
# instead (to compare two builds, e.g. with and without profile-guided optimization).
bench_work() {
	if [ -n "${1:-}" ]; then
		work=$1
		mkdir -p "$work"
		trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
	else
		work=$(mktemp -d)
		trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
	fi
	if [ -n "${STRATA_BIN:-}" ]; then
		ln -sf "$(realpath "$STRATA_BIN")" "$work/strata"
	else
		go build -o "$work/strata" ./cmd/strata
	fi
}

# The root key the servers run with, and the credentials curl and the loadgen sign with.
export STRATA_ROOT_ACCESS_KEY_ID=AKIDBENCHMARK0000001 STRATA_ROOT_SECRET_ACCESS_KEY=benchmark-secret-0000000000000000
export AWS_ACCESS_KEY_ID=$STRATA_ROOT_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$STRATA_ROOT_SECRET_ACCESS_KEY AWS_REGION=us-east-1
sign=(--aws-sigv4 "aws:amz:us-east-1:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")

hz=$(getconf CLK_TCK)
# cpu PID: user+system clock ticks of a process; peak PID, rss PID: its peak and current
# resident memory in KiB.
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
peak() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# wait_ready PORT [tenths of a second]: waits until the server on PORT is ready.
wait_ready() {
	for _ in $(seq "${2:-300}"); do curl -sf "127.0.0.1:$1/-/ready" >/dev/null && return 0; sleep 0.1; done
	echo "server on port $1 not ready" >&2
	return 1
}

# create_workspace PORT ALIAS: creates a workspace and prints its id.
create_workspace() {
	curl -sf -XPOST "127.0.0.1:$1/workspaces" -d "{\"alias\":\"$2\"}" "${sign[@]}" -H 'Content-Type: application/json' |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["workspaceId"])'
}
