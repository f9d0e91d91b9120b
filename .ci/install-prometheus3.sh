#!/usr/bin/env bash
# Installs Prometheus 3.x (Apache-2.0) as $(go env GOPATH)/bin/prometheus3 for the tests
# that need a sender which signs `sigv4:` remote writes itself (with role_arn through
# Strata's STS): Debian's Prometheus 2.42 replaces the signer with a pass-through. It is
# built from the Go module proxy as a standalone binary, not a dependency of our go.mod,
# without service discovery plugins (the remove_all_sd tag) to keep the build short. Does
# nothing when that version is already there.
set -euo pipefail

module=github.com/prometheus/prometheus
version=v0.316.0 # Prometheus 3.16.0

bindir="$(go env GOPATH | cut -d: -f1)/bin"
bin="$bindir/prometheus3"

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
	echo "prometheus3 ($module $version) already installed at $bin"
	exit 0
fi

echo "installing Prometheus 3 ($module $version) into $bin"
mkdir -p "$bindir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# With an @version argument go install ignores our go.mod; GOFLAGS is cleared so that a
# flag meant for our module cannot break the build.
GOBIN="$tmp" GOFLAGS= go install -tags remove_all_sd "$module/cmd/prometheus@$version"
mv "$tmp/prometheus" "$bin"
"$bin" --version 2>&1 | head -1
