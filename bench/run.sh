#!/bin/sh
# Build the tasuki binary once, then run the benchmark harness against it.
#
# Usage: bench/run.sh [--rev REV] [-quick] [-rows REGEXP] [-reps N] [-profile] [-waits-window D]
#
# By default both tasuki and the harness are built from the working tree.
# With --rev REV they are built from a clean export of that git revision
# (git archive, into bench/out/src, removed after the build) with this working
# tree's bench/ laid over it: use it to measure a commit while the working
# tree is mid-edit.
# The table goes to stdout and bench/out/results.md; progress to stderr.
set -eu
cd "$(dirname "$0")/.."
mkdir -p bench/out
src=.
label=
if [ "${1:-}" = "--rev" ]; then
	rev=$(git rev-parse --verify "${2:?--rev needs a revision}^{commit}")
	shift 2
	src=bench/out/src
	rm -rf "$src"
	mkdir -p "$src"
	git archive "$rev" | tar -x -C "$src"
	rm -rf "$src/bench"
	mkdir -p "$src/bench"
	cp bench/*.go "$src/bench/"
	label="commit $(git rev-parse --short=12 "$rev") (clean export, built by bench/run.sh --rev)"
fi
echo "building bench/out/tasuki and the harness from $src" >&2
(cd "$src" && go build -o "$OLDPWD/bench/out/tasuki" ./cmd/tasuki && go build -o "$OLDPWD/bench/out/bench" ./bench)
if [ "$src" != . ]; then
	rm -rf "$src" # a second copy of the module under the tree confuses tools that walk it
fi
if [ -n "$label" ]; then
	exec bench/out/bench -bin bench/out/tasuki -source "$label" "$@"
fi
exec bench/out/bench -bin bench/out/tasuki "$@"
