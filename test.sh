#!/usr/bin/env bash
# The whole test suite: vet, every test with the race detector, then a short fuzz.
# The README's test command is exactly this script; CI (.ci/run) calls it.
set -euo pipefail
cd "$(dirname "$0")"
go vet ./...
go test -race -count=1 -timeout 20m ./...
# A short fuzz of what strangers send: API request bodies and pipeline files
# (the seed corpora in testdata already ran above, as plain tests).
go test -run '^$' -fuzz '^FuzzRequestBodies$' -fuzztime 15s ./internal/api/
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 15s ./internal/spec/
