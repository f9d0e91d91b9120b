#!/usr/bin/env bash
# Installs versitygw (Apache-2.0), the S3-compatible server that the S3 tests start
# (internal/testutil/s3server), into $(go env GOPATH)/bin. Takes about two minutes on 2
# cores when nothing is cached. (MinIO's server is AGPL; we do not use it.)
set -euo pipefail
source "$(dirname "$0")/go-install.sh"
version=v1.8.0
go_install_tool versitygw github.com/versity/versitygw "$version" github.com/versity/versitygw/cmd/versitygw \
	-ldflags "-X main.Version=$version -X main.Build=go-install"
