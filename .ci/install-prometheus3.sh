#!/usr/bin/env bash
# Installs Prometheus 3.x (Apache-2.0) as $(go env GOPATH)/bin/prometheus3 for the tests
# that need a sender which signs `sigv4:` remote writes itself (with role_arn through
# Strata's STS): Debian's Prometheus 2.42 replaces the signer with a pass-through. Built
# without service discovery plugins (the remove_all_sd tag) to keep the build short.
set -euo pipefail
source "$(dirname "$0")/go-install.sh"
# v0.316.0 is Prometheus 3.16.0.
go_install_tool prometheus3 github.com/prometheus/prometheus v0.316.0 github.com/prometheus/prometheus/cmd/prometheus -tags remove_all_sd
