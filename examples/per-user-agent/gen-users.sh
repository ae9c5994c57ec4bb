#!/bin/sh
# gen-users.sh DIR N [CHANGE]: the input files of per-user-agent.yaml.
#
# Without CHANGE, writes (over) everything under DIR:
#   DIR/shared/context.json   what every user's agent starts from (prepare reads it)
#   DIR/users.txt             the user ids, one a line (the map's items)
#   DIR/users/<id>.json       one file per user: a few fields and 48 recent events
# With CHANGE, rewrites only CHANGE of the N user files, spread evenly
# (every N/CHANGE-th user), with a new revision and new events: as if those
# users had been active since the last run. Nothing else is touched.
#
# The same N and CHANGE always give the same bytes, so runs are repeatable.
set -eu
usage="usage: gen-users.sh DIR N [CHANGE]"
dir=${1:?$usage}
n=${2:?$usage}
change=${3:-0}
case $n in '' | *[!0-9]*) echo "gen-users.sh: N must be a number, not '$n'" >&2; exit 2 ;; esac
case $change in '' | *[!0-9]*) echo "gen-users.sh: CHANGE must be a number, not '$change'" >&2; exit 2 ;; esac
if [ "$n" -lt 1 ] || [ "$change" -gt "$n" ]; then
	echo "gen-users.sh: want 1 <= N and CHANGE <= N (got N=$n, CHANGE=$change)" >&2
	exit 2
fi
mkdir -p "$dir/users" "$dir/shared"
if [ "$change" -eq 0 ]; then
	cat > "$dir/shared/context.json" <<'JSON'
{"model": "agent-small-2026-11", "greeting": "Here is what changed for you this week.", "rules": ["rule: be brief", "rule: cite the events", "rule: no advice"]}
JSON
fi
# One awk writes every file: a shell loop would start a process or two
# per user.
awk -v dir="$dir" -v n="$n" -v change="$change" 'BEGIN {
	step = change > 0 ? int(n / change) : 1
	regions[0] = "eu"; regions[1] = "us"; regions[2] = "apac"
	for (i = 0; i < n; i++) {
		id = sprintf("u%06d", i)
		if (change == 0) {
			print id > (dir "/users.txt")
			rev = 1
		} else if (i % step == 0 && i / step < change) {
			rev = 2
		} else {
			continue
		}
		file = dir "/users/" id ".json"
		events = ""
		for (e = 0; e < 48; e++) {
			v = (i * 7919 + e * 104729 + rev * 31337) % 1000
			events = events (e ? ", " : "") v
		}
		printf "{\"id\": \"%s\", \"region\": \"%s\", \"revision\": %d, \"events\": [%s]}\n", id, regions[i % 3], rev, events > file
		close(file)
	}
	close(dir "/users.txt")
}'
