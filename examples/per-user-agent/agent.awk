# agent.awk: what one user's agent does in per-user-agent.yaml, standing
# for a model call: read the user's file, score their events with the
# shared context that prepare computed, and print one JSON line.
# Input: the user's JSON file (one line); ENVIRON["TASUKI_NEED_PREPARE"] names
# prepare's result.
BEGIN {
	need = ENVIRON["TASUKI_NEED_PREPARE"]
	if ((getline ctx < need) <= 0) {
		print "agent.awk: cannot read prepare's result from " need > "/dev/stderr"
		exit 1
	}
	close(need)
	if (!match(ctx, /"context": *"[0-9]+"/)) {
		print "agent.awk: no context in prepare's result: " ctx > "/dev/stderr"
		exit 1
	}
	context = substr(ctx, RSTART, RLENGTH)
	gsub(/[^0-9]/, "", context)
}
{
	if (!match($0, /"id": *"[^"]*"/)) {
		print "agent.awk: no id in " FILENAME > "/dev/stderr"
		exit 1
	}
	id = substr($0, RSTART, RLENGTH)
	sub(/^"id": *"/, "", id)
	sub(/"$/, "", id)
	if (!match($0, /"events": *\[[^]]*\]/)) {
		print "agent.awk: no events in " FILENAME > "/dev/stderr"
		exit 1
	}
	list = substr($0, RSTART, RLENGTH)
	sub(/^"events": *\[/, "", list)
	sub(/\]$/, "", list)
	k = split(list, ev, /, */)
	sum = 0; top = 0
	for (j = 1; j <= k; j++) {
		sum += ev[j]
		if (ev[j] > top) top = ev[j]
	}
	score = k ? (sum / k + top + context % 97) % 1000 : 0
	printf "{\"user\": \"%s\", \"events\": %d, \"score\": %.1f}\n", id, k, score
	done = 1
}
END {
	if (!done) {
		print "agent.awk: empty input" > "/dev/stderr"
		exit 1
	}
}
