#!/usr/bin/env bash
# Installs versitygw (Apache-2.0), the S3-compatible server that the S3 tests start
# (internal/testutil/s3server), into $(go env GOPATH)/bin. It is built from the Go module
# proxy as a standalone binary, not as a dependency of our go.mod. Does nothing when that
# version is already there. Takes about two minutes on 2 cores when nothing is cached.
# (MinIO's server is AGPL; we do not use it.)
set -euo pipefail

module=github.com/versity/versitygw
version=v1.8.0

bindir="$(go env GOPATH | cut -d: -f1)/bin"
bin="$bindir/versitygw"

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
	echo "versitygw $version already installed at $bin"
	exit 0
fi

echo "installing versitygw $version into $bindir"
mkdir -p "$bindir"
# With an @version argument go install ignores our go.mod; GOFLAGS is cleared so that a
# flag meant for our module (-mod=vendor, say) cannot break the build.
GOBIN="$bindir" GOFLAGS= go install \
	-ldflags "-X main.Version=$version -X main.Build=go-install" \
	"$module/cmd/versitygw@$version"
"$bin" --version
