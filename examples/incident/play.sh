#!/bin/sh
# play.sh — plays the stalled-relay incident of trading-rates.yaml on this
# machine, in about twenty seconds:
#
#   0 s   a run starts with a 20 s deadline; relay-tokyo delivers, relay-london stalls
#  ~11 s  tasuki predicts merge (8 s) cannot finish in time: at_risk is sent
#   13 s  relay-london's wait times out; the run fails: failed is sent
#         ... the london file lands (this script drops it)
#  ~14 s  tasuki sees the data, reruns only relay-london and merge: repaired
#  ~15 s  the run succeeds before its deadline: recovered is sent
#
# Then it prints the alerts as a webhook receiver got them (python3, if this
# machine has it, plays the receiver) and the run's timeline as Markdown.
#
# Usage: sh examples/incident/play.sh   (with tasuki on PATH: go build -o tasuki ./cmd/tasuki)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
command -v tasuki >/dev/null || { echo "play.sh: put tasuki on PATH (go build -o tasuki ./cmd/tasuki)" >&2; exit 2; }
work=$(mktemp -d)
data="$work/data"
mkdir -p "$data"
server= receiver=
cleanup() {
	[ -z "$server" ] || kill "$server" 2>/dev/null || :
	[ -z "$receiver" ] || kill "$receiver" 2>/dev/null || :
	wait 2>/dev/null || :
	rm -rf "$work"
}
trap cleanup EXIT

# The alerts' receiver: a small HTTP server that prints what it gets. Without
# python3 the alerts go nowhere, and 'tasuki alerts' shows the failed tries.
hook=http://127.0.0.1:9/alerts
if command -v python3 >/dev/null; then
	python3 - "$work/receiver.port" > "$work/alerts.log" 2>&1 <<'PY' &
import http.server, json, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        ev = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        print("%-10s %s" % (ev["event"], ev.get("reason", "")), flush=True)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
open(sys.argv[1], "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
	receiver=$!
	while [ ! -s "$work/receiver.port" ]; do sleep 0.1; done
	hook="http://127.0.0.1:$(cat "$work/receiver.port")/alerts"
fi

# The server: its own data directory, a port the kernel picks, the
# pipeline directory of this example, the receiver's address as a secret.
TASUKI_SECRET_INCIDENT_WEBHOOK=$hook TASUKI_SECRET_INCIDENT_KEY=play-signing-key \
	tasuki server --home "$work/home" --pipelines "$here" --addr 127.0.0.1:0 2> "$work/server.log" &
server=$!
until grep -q "tasuki server listening on " "$work/server.log" 2>/dev/null; do sleep 0.1; done
TASUKI_SERVER=$(sed -n 's/^tasuki server listening on \([^ ]*\).*/\1/p' "$work/server.log" | head -n 1)
TASUKI_TOKEN=$(cat "$work/home/admin.token")
export TASUKI_SERVER TASUKI_TOKEN

run=$(tasuki trigger trading-rates -p data_dir="$data")
echo "run $run started: deadline in 20 s; relay-london is stalled"
until tasuki status "$run" | head -n 1 | grep -q ": failed"; do sleep 0.5; done
echo "run $run failed: relay-london's wait timed out. Now the london file lands."
echo "2026-12-07T19:00:05Z,london,USDJPY,150.114,150.121" > "$data/london.csv"
until tasuki status "$run" | head -n 1 | grep -q ": succeeded"; do sleep 0.5; done
echo "run $run succeeded by itself, before its deadline."
sleep 2 # let the last alert go out
echo
echo "== alerts, as the receiver got them"
cat "$work/alerts.log" 2>/dev/null || :
tasuki alerts "$run"
echo
echo "== the timeline, for the review"
tasuki timeline "$run"
