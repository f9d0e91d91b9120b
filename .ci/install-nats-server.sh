#!/usr/bin/env bash
# Installs nats-server (Apache-2.0), for the test that runs Strata against an external
# three-server NATS cluster, into $(go env GOPATH)/bin. Built from the Go module proxy at
# the version go.mod embeds. Does nothing when that version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

module=github.com/nats-io/nats-server/v2
version=$(go list -m -f '{{.Version}}' "$module")

bindir="$(go env GOPATH | cut -d: -f1)/bin"
bin="$bindir/nats-server"

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
	echo "nats-server $version already installed at $bin"
	exit 0
fi

echo "installing nats-server $version into $bindir"
mkdir -p "$bindir"
# With an @version argument go install ignores our go.mod; GOFLAGS is cleared so that a
# flag meant for our module cannot break the build.
GOBIN="$bindir" GOFLAGS= go install "$module@$version"
go version -m "$bin" | head -3
