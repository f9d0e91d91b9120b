#!/usr/bin/env bash
# Installs nats-server (Apache-2.0), for the test that runs Strata against an external
# three-server NATS cluster, into $(go env GOPATH)/bin, at the version go.mod embeds.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/go-install.sh
module=github.com/nats-io/nats-server/v2
go_install_tool nats-server "$module" "$(go list -m -f '{{.Version}}' "$module")" "$module"
