#!/usr/bin/env bash
# The whole test suite: vet, then every test with the race detector.
# The README's test command is exactly this script; CI (.ci/run) calls it.
set -euo pipefail
cd "$(dirname "$0")"
go vet ./...
go test -race -count=1 -timeout 20m ./...
