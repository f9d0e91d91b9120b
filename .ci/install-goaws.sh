#!/usr/bin/env bash
# Installs goaws (MIT), the SNS/SQS-compatible server that the Alertmanager's SNS receiver
# test starts (internal/testutil/goaws), into $(go env GOPATH)/bin.
set -euo pipefail
source "$(dirname "$0")/go-install.sh"
go_install_tool goaws github.com/Admiral-Piett/goaws v0.4.5 github.com/Admiral-Piett/goaws/app/cmd
