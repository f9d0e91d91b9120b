#!/usr/bin/env bash
# Installs goaws (MIT), the SNS/SQS-compatible server that the Alertmanager's SNS receiver
# test starts (internal/testutil/goaws), into $(go env GOPATH)/bin. It is built from the Go
# module proxy as a standalone binary, not as a dependency of our go.mod. Does nothing when
# that version is already there.
set -euo pipefail

module=github.com/Admiral-Piett/goaws
version=v0.4.5

bindir="$(go env GOPATH | cut -d: -f1)/bin"
bin="$bindir/goaws"

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
	echo "goaws $version already installed at $bin"
	exit 0
fi

echo "installing goaws $version into $bindir"
mkdir -p "$bindir"
# The main package is app/cmd, so go install names the binary "cmd": build it in a
# directory of its own and move it into place under the name the tests look for.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# With an @version argument go install ignores our go.mod; GOFLAGS is cleared so that a
# flag meant for our module (-mod=vendor, say) cannot break the build.
GOBIN="$tmp" GOFLAGS= go install "$module/app/cmd@$version"
mv -f "$tmp/cmd" "$bin"
go version -m "$bin" | head -3
