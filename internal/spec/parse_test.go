package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden .errors files under testdata/invalid")

// parseErrors parses src and returns its errors as "line:col: message".
func parseErrors(t *testing.T, src string) []string {
	t.Helper()
	p, err := Parse("test.yaml", []byte(src))
	if err == nil {
		if p == nil {
			t.Fatal("Parse returned neither a pipeline nor an error")
		}
		return nil
	}
	if p != nil {
		t.Errorf("Parse returned a pipeline together with an error")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, want ErrorList: %v", err, err)
	}
	out := make([]string, len(list))
	for i, e := range list {
		if e.File != "test.yaml" {
			t.Errorf("error %q has file %q", e.Msg, e.File)
		}
		out[i] = fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg)
	}
	return out
}

// TestParseErrors covers every kind of problem: each case lists the errors
// it must produce, as "line:col: fragment of the message", and no others.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"syntax error", "name: x\ntasks:\n  - id: a\n    run: [echo\n", []string{"4:10: YAML syntax error"}},
		{"tab indentation", "name: x\ntasks:\n\t- id: a\n", []string{"3:1: YAML syntax error"}},
		{"empty file", "", []string{"1:1: the file is empty"}},
		{"only comments", "# nothing\n", []string{"1:1: the file is empty"}},
		{"two documents", "name: x\ntasks: [{id: a, run: b}]\n---\nname: y\n", []string{"4:1: found 2 YAML documents"}},
		{"not a mapping", "- id: a\n", []string{"1:1: pipeline file: expected a mapping (pipeline), got a list"}},
		{"scalar document", "hello\n", []string{"1:1: pipeline file: expected a mapping (pipeline), got the string \"hello\""}},

		{"unknown key with suggestion", "name: x\ntasks:\n  - id: a\n    run: b\n    neds: [c]\n",
			[]string{`5:5: unknown key "neds" in task; did you mean "needs"?`}},
		{"unknown key transposed", "name: x\ntasks:\n  - id: a\n    run: b\n    tiemout: 1s\n",
			[]string{`5:5: unknown key "tiemout" in task; did you mean "timeout"?`}},
		{"unknown key from another tool", "name: x\ntasks:\n  - id: a\n    command: b\n",
			[]string{`3:5: missing required key "run" in task "a"`, `4:5: unknown key "command" in task; did you mean "run"?`}},
		{"unknown key without suggestion", "name: x\nzzz: 1\ntasks: [{id: a, run: b}]\n",
			[]string{`2:1: unknown key "zzz" in pipeline; expected one of name, version, description, params, env, secrets, schedule, max_active_runs, `}},
		{"key at the wrong level", "name: x\ntasks:\n  - id: a\n    run: b\n    params: []\n",
			[]string{`5:5: unknown key "params" in task; "params" is a key of the pipeline, not of a task`}},
		{"unknown key in retry", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2, bakoff: 1s}\n",
			[]string{`5:26: unknown key "bakoff" in retry; did you mean "backoff"?`}},
		{"unknown key in param", "name: x\nparams:\n  - name: p\n    typ: int\ntasks: [{id: a, run: b}]\n",
			[]string{`4:5: unknown key "typ" in param; did you mean "type"?`}},
		{"duplicate key", "name: x\nname: y\ntasks: [{id: a, run: b}]\n",
			[]string{`2:1: key "name" is given twice in pipeline (first at line 1)`}},

		{"reserved pipeline keys", "name: x\nsensors: []\ncatchup: true\nowner: me\ntasks: [{id: a, run: b}]\n",
			[]string{`2:1: "sensors" is not supported in format v1 yet`, `3:1: "catchup" is not supported in format v1 yet`, `4:1: "owner" is not supported in format v1 yet`}},
		{"schedule as a string", "name: x\nschedule: '0 20 * * *'\ntasks: [{id: a, run: b}]\n",
			[]string{`2:11: schedule: expected a mapping (schedule), got the string "0 20 * * *"`}},
		{"bad cron expression", "name: x\nschedule: {cron: '0 25 * * *'}\ntasks: [{id: a, run: b}]\n",
			[]string{`2:18: schedule.cron: cron expression "0 25 * * *": hour field "25"`}},
		{"bad time zone", "name: x\nschedule: {cron: '@daily', timezone: Mars/Base}\ntasks: [{id: a, run: b}]\n",
			[]string{`2:38: schedule.timezone: unknown time zone "Mars/Base"`}},
		{"bad catchup", "name: x\nschedule: {cron: '@daily', catchup: sometimes}\ntasks: [{id: a, run: b}]\n",
			[]string{`2:37: unknown schedule catchup "sometimes": expected one of all, latest, none`}},
		{"negative max_active_runs", "name: x\nmax_active_runs: -1\ntasks: [{id: a, run: b}]\n",
			[]string{`2:18: `}},
		{"reserved task keys", "name: x\ntasks:\n  - id: a\n    run: b\n    when: x\n    artifacts: [x]\n    kind: sql\n",
			[]string{`5:5: "when" is not supported in format v1 yet (in task)`, `6:5: "artifacts" is not supported in format v1 yet`, `7:5: "kind" is not supported in format v1 yet`}},

		{"map without a value", "name: x\ntasks:\n  - id: a\n    run: b\n    map:\n", []string{`5:5: map: expected a mapping (map), got no value`}},
		{"map with two sources", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {items: [1], range: {stop: 3}}\n", []string{`5:11: map: has items and range: give exactly one of items, file, glob, from and range`}},
		{"map without a source", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {concurrency: 2}\n", []string{`5:11: map: give the items with one of items, file, glob, from and range`}},
		{"map range step 0", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {range: {stop: 3, step: 0}}\n", []string{`5:19: map.range.step: must not be 0`}},
		{"map batch on http", "name: x\ntasks:\n  - id: a\n    http: {url: \"http://x\"}\n    map: {items: [1], batch: 2}\n", []string{`map.batch: only a run task can take its items in batches`}},
		{"map tolerate both", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {items: [1], tolerate: {count: 1, percent: 5}}\n", []string{`map.tolerate: give count or percent, not both`}},
		{"map from itself", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {from: a}\n", []string{`map.from: task "a" cannot take its items from itself`}},
		{"map from unknown", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {from: nope}\n", []string{`map.from: "nope" is not a task in this pipeline`}},
		{"map on a wait", "name: x\ntasks:\n  - id: a\n    wait: {file: x}\n    map: {items: [1]}\n", []string{`map: a wait has nothing to fan out`}},
		{"map zip without from", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {items: [1], zip: true}\n", []string{`5:28: map.zip: pairs item i with item i of a map upstream: name that map with from`}},
		{"map zip with a task", "name: x\ntasks:\n  - id: a\n    run: b\n  - id: c\n    run: d\n    map: {from: a, zip: true}\n", []string{`7:25: map.zip: task "a" is not a map, so it has no item i to pair with item i; drop zip to take its result as the items`}},
		{"map zip not a bool", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {items: [1]}\n  - id: c\n    run: d\n    map: {from: a, zip: yes please}\n", []string{`8:25: map.zip: expected true or false, got the string "yes please"`}},
		{"map zip cycle", "name: x\ntasks:\n  - id: a\n    run: b\n    map: {from: c, zip: true}\n  - id: c\n    run: d\n    map: {from: a, zip: true}\n", []string{`dependency cycle`}},
		{"missing name", "tasks: [{id: a, run: b}]\n", []string{`1:1: missing required key "name" in pipeline`}},
		{"missing tasks", "name: x\n", []string{`1:1: missing required key "tasks" in pipeline`}},
		{"missing task id", "name: x\ntasks:\n  - run: b\n", []string{`3:5: missing required key "id" in task`}},
		{"missing task run", "name: x\ntasks:\n  - id: a\n", []string{`3:5: missing required key "run" in task "a"`}},
		{"two kinds of work", "name: x\ntasks:\n  - id: a\n    run: b\n    http: {url: \"http://h/\"}\n", []string{`3:5: task "a" has run and http: a task does exactly one of run, wait, sql, http, noop and inventory`}},
		{"noop with a key", "name: x\ntasks:\n  - id: a\n    noop: {x: 1}\n", []string{`4:12: unknown key "x" in noop; noop takes no keys`}},
		{"noop and run", "name: x\ntasks:\n  - id: a\n    noop: {}\n    run: b\n", []string{`task "a" has run and noop`}},
		{"wait without condition", "name: x\ntasks:\n  - id: a\n    wait: {poke: 1s}\n", []string{`wait: expected one of file, http, sql, pipeline and dataset`}},
		{"wait with two conditions", "name: x\ntasks:\n  - id: a\n    wait: {file: x, dataset: d}\n", []string{`wait: has file and dataset: a wait checks exactly one condition`}},
		{"wait key of another condition", "name: x\ntasks:\n  - id: a\n    wait: {http: \"http://h/\", stable_for: 1s}\n", []string{`4:43: wait.stable_for: applies to file waits, not to an http wait`}},
		{"sql wait without dsn", "name: x\ntasks:\n  - id: a\n    wait: {sql: select 1}\n", []string{`missing required key "dsn" for a sql wait`}},
		{"bad json condition", "name: x\ntasks:\n  - id: a\n    wait: {http: \"http://h/\", json: \"body.x ==\"}\n", []string{`4:37: wait.json: condition "body.x ==": unexpected token EOF`}},
		{"sql task without statements", "name: x\ntasks:\n  - id: a\n    sql: {dsn: \"sqlite:x.db\"}\n", []string{`4:11: sql: expected query or file`}},
		{"dsn of unknown form", "name: x\ntasks:\n  - id: a\n    sql: {dsn: \"oracle://u:pw@h\", query: q}\n", []string{`4:16: sql.dsn: expected postgres://..., mysql://... or sqlite:..., got a connection string of another form`}},
		{"dataset name that is a path", "name: x\ntasks:\n  - id: a\n    run: b\n    produces: [\"../../etc/x\"]\n", []string{`5:16: produces: invalid dataset name "../../etc/x"`}},
		{"datasets sharing a variable", "name: x\ntasks:\n  - id: a\n    run: b\n    produces: [raw.orders, raw_orders]\n", []string{`5:28: produces: "raw.orders" and "raw_orders" are both the variable TASUKI_DATASET_RAW_ORDERS`}},
		{"notify with no events", "name: x\nnotify:\n  - webhook: \"https://h/x\"\n    on: []\ntasks: [{id: a, run: b}]\n", []string{`4:9: notify #1: on: expected at least one event`}},
		{"notify destination twice", "name: x\nnotify:\n  - {webhook: \"https://h/x\", on: [failed]}\n  - {webhook: \"https://h/x\", on: [missed]}\ntasks: [{id: a, run: b}]\n", []string{`4:6: notify #2: the same destination as notify #1`}},
		{"repair without on_data", "name: x\nrepair: {until: 1h}\ntasks: [{id: a, run: b}]\n", []string{`2:10: repair: missing on_data: true`}},
		{"schedule with nothing", "name: x\nschedule: {timezone: UTC}\ntasks: [{id: a, run: b}]\n", []string{`2:12: schedule: expected cron, datasets or both`}},
		{"missing param name", "name: x\nparams:\n  - type: int\ntasks: [{id: a, run: b}]\n", []string{`3:5: missing required key "name" in param`}},
		{"missing retry attempts", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {backoff: 1s}\n", []string{`5:13: missing required key "attempts" in retry`}},
		{"empty tasks", "name: x\ntasks: []\n", []string{`2:8: tasks: expected at least one task, got an empty list`}},
		{"empty name", "name: ''\ntasks: [{id: a, run: b}]\n", []string{`1:7: name: expected a string, got an empty value`}},
		{"null name", "name:\ntasks: [{id: a, run: b}]\n", []string{`1:6: name: expected a string, got nothing (null)`}},

		{"wrong type timeout", "name: x\ntasks:\n  - id: a\n    run: b\n    timeout: [1]\n",
			[]string{`5:14: timeout: expected a Go duration such as 90s, 5m or 1h30m, got a list`}},
		{"wrong type attempts", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: \"x\"}\n",
			[]string{`5:23: retry.attempts: expected an integer, got the string "x"`}},
		{"float attempts", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2.5}\n",
			[]string{`5:23: retry.attempts: expected an integer, got the number 2.5`}},
		{"number as name", "name: 42\ntasks: [{id: a, run: b}]\n",
			[]string{`1:7: name: expected a string, got the integer 42 (put it in quotes`}},
		{"quoted number as name", "name: '42'\ntasks: [{id: a, run: b}]\n", nil},
		{"tagged number as name", "name: !!str 42\ntasks: [{id: a, run: b}]\n", nil},
		{"tasks as mapping", "name: x\ntasks:\n  a: {run: b}\n",
			[]string{`3:3: tasks: expected a list of tasks, got a mapping`}},
		{"task as string", "name: x\ntasks:\n  - a\n", []string{`3:5: tasks: expected a mapping (task), got the string "a"`}},
		{"needs as string", "name: x\ntasks:\n  - id: a\n    run: b\n  - id: c\n    run: d\n    needs: a\n",
			[]string{`7:12: needs: expected a list of strings, got the string "a"`}},
		{"needs item as number", "name: x\ntasks:\n  - id: a\n    run: b\n    needs: [1]\n",
			[]string{`5:13: needs: expected a string, got the integer 1`}},
		{"env value number", "name: x\nenv:\n  PORT: 8080\ntasks: [{id: a, run: b}]\n",
			[]string{`3:9: env "PORT": expected a string, got the integer 8080 (put it in quotes: "8080")`}},
		{"env as list", "name: x\nenv: [a]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:6: env: expected a mapping of names to strings, got a list`}},
		{"bool as string field", "name: x\ndescription: yes\ntasks: [{id: a, run: b}]\n", nil},
		{"required not bool", "name: x\nparams: [{name: p, required: 'yes'}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:30: required: expected true or false, got the string "yes"`}},
		{"multiplier infinite", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2, multiplier: .inf}\n",
			[]string{`5:38: retry.multiplier: expected a finite number, got .inf`}},
		{"huge integer", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 99999999999999999999}\n",
			[]string{`5:23: retry.attempts: the integer 99999999999999999999 is too large`}},
		{"version", "name: x\nversion: 2\ntasks: [{id: a, run: b}]\n", []string{`2:10: version: expected 1, got 2`}},

		{"bad duration", "name: x\ntasks:\n  - id: a\n    run: b\n    timeout: 5 minutes\n",
			[]string{`5:14: timeout: expected a Go duration such as 90s, 5m or 1h30m (units ns, us, ms, s, m, h), got "5 minutes"`}},
		{"duration without unit", "name: x\ntasks:\n  - id: a\n    run: b\n    timeout: 300\n",
			[]string{`5:14: timeout: expected a Go duration such as 90s, 5m or 1h30m, got the integer 300 (a duration needs a unit, e.g. 300s)`}},
		{"negative duration", "name: x\ntasks:\n  - id: a\n    run: b\n    timeout: -5m\n",
			[]string{`5:14: timeout: expected a duration that is not negative, got -5m0s`}},
		{"negative backoff", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2, backoff: -1s}\n",
			[]string{`5:35: retry.backoff: expected a duration that is not negative, got -1s`}},
		{"attempts zero", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 0}\n",
			[]string{`5:23: retry.attempts: expected at least 1, got 0`}},
		{"attempts negative", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: -3}\n",
			[]string{`5:23: retry.attempts: expected at least 1, got -3`}},
		{"jitter above 1", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2, jitter: 1.5}\n",
			[]string{`5:34: retry.jitter: expected a number from 0 to 1, got 1.5`}},
		{"jitter negative", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2, jitter: -0.1}\n",
			[]string{`5:34: retry.jitter: expected a number from 0 to 1, got -0.1`}},
		{"multiplier below 1", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2, multiplier: 0.5}\n",
			[]string{`5:38: retry.multiplier: expected at least 1, got 0.5`}},
		{"multiplier zero", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2, multiplier: 0}\n",
			[]string{`5:38: retry.multiplier: expected at least 1, got 0`}},
		{"max backoff below backoff", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 2, backoff: 1m, max_backoff: 10s}\n",
			[]string{`5:52: retry.max_backoff (10s) is less than retry.backoff (1m0s)`}},

		{"duplicate task id", "name: x\ntasks:\n  - id: a\n    run: b\n  - id: a\n    run: c\n",
			[]string{`5:9: duplicate task id "a" (first defined at line 3)`}},
		{"unknown need with suggestion", "name: x\ntasks:\n  - id: fetch\n    run: b\n  - id: load\n    run: c\n    needs: [fecth]\n",
			[]string{`7:13: task "load" needs "fecth", which is not a task in this pipeline; did you mean "fetch"?`}},
		{"unknown need", "name: x\ntasks:\n  - id: fetch\n    run: b\n  - id: load\n    run: c\n    needs: [zzz]\n",
			[]string{`7:13: task "load" needs "zzz", which is not a task in this pipeline`}},
		{"self dependency", "name: x\ntasks:\n  - id: a\n    run: b\n    needs: [a]\n",
			[]string{`5:13: task "a" needs itself`}},
		{"need listed twice", "name: x\ntasks:\n  - id: a\n    run: b\n  - id: c\n    run: d\n    needs: [a, a]\n",
			[]string{`7:16: needs: "a" is listed twice`}},
		{"empty need", "name: x\ntasks:\n  - id: a\n    run: b\n    needs: ['']\n",
			[]string{`5:13: needs: expected a task id, got an empty string`}},
		{"cycle", "name: x\ntasks:\n  - id: c\n    run: x\n    needs: [a]\n  - id: a\n    run: x\n    needs: [b]\n  - id: b\n    run: x\n    needs: [c]\n",
			[]string{`5:13: dependency cycle: c -> a -> b -> c`}},
		{"two cycles", "name: x\ntasks:\n  - {id: a, run: x, needs: [b]}\n  - {id: b, run: x, needs: [a]}\n  - {id: c, run: x, needs: [d]}\n  - {id: d, run: x, needs: [c]}\n  - {id: e, run: x, needs: [a, c]}\n",
			[]string{`3:29: dependency cycle: a -> b -> a`, `5:29: dependency cycle: c -> d -> c`}},
		{"needs clash as env names", "name: x\ntasks:\n  - {id: fetch-a, run: x}\n  - {id: fetch_a, run: x}\n  - {id: c, run: x, needs: [fetch-a, fetch_a]}\n",
			[]string{`5:38: needs: "fetch-a" and "fetch_a" both become TASUKI_NEED_FETCH_A`}},
		{"ids clash but not needed together", "name: x\ntasks:\n  - {id: fetch-a, run: x}\n  - {id: fetch_a, run: x}\n", nil},

		{"invalid pipeline name", "name: my pipeline\ntasks: [{id: a, run: b}]\n",
			[]string{`1:7: invalid pipeline name "my pipeline": expected letters, digits, '-', '_' and '.'`}},
		{"pipeline name with dots", "name: team.etl-v2_x\ntasks: [{id: a, run: b}]\n", nil},
		{"pipeline name starting with dot", "name: ..\ntasks: [{id: a, run: b}]\n",
			[]string{`1:7: invalid pipeline name ".."`}},
		{"invalid task id", "name: x\ntasks:\n  - id: a.b\n    run: b\n",
			[]string{`3:9: invalid task id "a.b": expected letters, digits, '-' and '_'`}},
		{"invalid param name", "name: x\nparams: [{name: 'a b'}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:17: invalid param name "a b"`}},
		{"duplicate param", "name: x\nparams:\n  - name: p\n  - name: p\ntasks: [{id: a, run: b}]\n",
			[]string{`4:11: duplicate param name "p" (first defined at line 3)`}},
		{"params clash as env names", "name: x\nparams:\n  - name: a-b\n  - name: a_b\ntasks: [{id: a, run: b}]\n",
			[]string{`4:11: params "a-b" and "a_b" both become the environment variable TASUKI_PARAM_A_B`}},
		{"unknown param type", "name: x\nparams: [{name: p, type: integer}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:26: unknown param type "integer": expected one of string, int, float, bool, date, datetime, list; did you mean "int"?`}},
		{"default not int", "name: x\nparams: [{name: n, type: int, default: many}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:40: param "n": default: expected an integer like 42, got "many"`}},
		{"default float for int", "name: x\nparams: [{name: n, type: int, default: 1.5}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:40: param "n": default: expected an integer like 42, got the number 1.5`}},
		{"default not float", "name: x\nparams: [{name: n, type: float, default: true}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:42: param "n": default: expected a number like 3.14, got the boolean true`}},
		{"default not bool", "name: x\nparams: [{name: n, type: bool, default: 1}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:41: param "n": default: expected true or false, got the integer 1`}},
		{"default not date", "name: x\nparams: [{name: date, type: date, default: tomorrow}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:44: param "date": default: expected a date like 2026-01-31, got "tomorrow"`}},
		{"default not datetime", "name: x\nparams: [{name: at, type: datetime, default: '2026-01-31'}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:46: param "at": default: expected a date and time in RFC 3339 form like 2026-01-31T09:00:00Z, got "2026-01-31"`}},
		{"default list of numbers", "name: x\nparams: [{name: l, type: list, default: [a, 2]}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:41: param "l": default: expected a list of strings, got the integer 2 as item 2`}},
		{"default number for string", "name: x\nparams: [{name: s, default: 5}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:29: param "s": default: expected a string, got the integer 5 (put it in quotes)`}},
		{"default nested list", "name: x\nparams: [{name: l, type: list, default: [[a]]}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:42: default: expected a list of strings, got a nested list`}},
		{"default mapping", "name: x\nparams: [{name: l, default: {a: b}}]\ntasks: [{id: a, run: b}]\n",
			[]string{`2:30: default: expected a single value or a list of strings, got a mapping`}},
		{"good defaults", "name: x\nparams:\n  - {name: d, type: date, default: 2026-01-31}\n  - {name: t, type: datetime, default: 2026-01-31T09:00:00Z}\n  - {name: l, type: list, default: 'a,b'}\n  - {name: f, type: float, default: 2}\n  - {name: n, type: int, default: '7'}\ntasks: [{id: a, run: b}]\n", nil},

		{"run empty string", "name: x\ntasks:\n  - id: a\n    run: ''\n", []string{`4:10: run: expected a command`}},
		{"run blank", "name: x\ntasks:\n  - id: a\n    run: '  '\n", []string{`4:10: run: expected a command, got only white space`}},
		{"run empty list", "name: x\ntasks:\n  - id: a\n    run: []\n", []string{`4:10: run: expected a command`}},
		{"run empty program", "name: x\ntasks:\n  - id: a\n    run: ['', x]\n", []string{`4:10: run: the program (the first element of the list) must not be empty`}},
		{"run list with number", "name: x\ntasks:\n  - id: a\n    run: [sleep, 5]\n", []string{`4:18: run: argument 2: expected a string, got the integer 5 (put it in quotes)`}},
		{"run mapping", "name: x\ntasks:\n  - id: a\n    run: {sh: x}\n", []string{`4:11: run: expected a command: a string for /bin/sh -c, or a list of strings (argv), got a mapping`}},

		{"env invalid name", "name: x\nenv: {'A-B': x}\ntasks: [{id: a, run: b}]\n", []string{`2:7: env: invalid variable name "A-B"`}},
		{"env reserved name", "name: x\ntasks:\n  - id: a\n    run: b\n    env: {TASUKI_RESULT: x}\n", []string{`5:11: env: "TASUKI_RESULT" is reserved`}},
		{"env duplicate", "name: x\nenv:\n  A: x\n  A: y\ntasks: [{id: a, run: b}]\n", []string{`4:3: env: "A" is given twice (first at line 3)`}},

		{"unknown alias", "name: *nope\ntasks: [{id: a, run: b}]\n", []string{"1:7: alias *nope refers to no anchor &nope defined in this file"}},
		{"anchors and merges", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: &r {attempts: 3, backoff: 1s}\n  - id: c\n    run: d\n    retry:\n      <<: *r\n      attempts: 5\n", nil},
		{"mapping merging itself", "name: x\ntasks:\n  - id: a\n    run: b\n    retry: &r\n      <<: *r\n      attempts: 2\n", []string{`6:11: retry: merge keys (<<) nest more than 8 deep; does a mapping merge itself?`}},
		{"merge of a scalar", "name: x\ntasks:\n  - id: a\n    run: b\n    retry:\n      <<: 5\n      attempts: 2\n", []string{`6:11: retry: the merge key << expects a mapping or a list of mappings, got the integer 5`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrors(t, tt.src)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !matchError(got[i], w) {
					t.Errorf("error %d:\n got  %s\n want %s", i, got[i], w)
				}
			}
		})
	}
}

// matchError reports whether got ("line:col: message") matches want, which
// is either a message fragment or "line:col: fragment of the message".
func matchError(got, want string) bool {
	if wpos, wmsg, ok := strings.Cut(want, ": "); ok && strings.Count(wpos, ":") == 1 && !strings.ContainsAny(wpos, " \"") {
		gpos, gmsg, _ := strings.Cut(got, ": ")
		return gpos == wpos && strings.Contains(gmsg, wmsg)
	}
	return strings.Contains(got, want)
}

// TestParseGolden checks the exact output for the files in testdata/invalid
// against their .errors files (go test -run Golden -update rewrites them).
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(filepath.Base(file), data)
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Parse(%s) = %v, want an ErrorList", file, err)
			}
			got := list.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".errors"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestParseValidExamples(t *testing.T) {
	files := validExamples(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Errorf("a parsed pipeline fails Validate: %v", err)
			}
		})
	}
}

// TestParseMapZip: a map that zips with a map upstream needs it, like any
// map.from, and keeps zip for the runner.
func TestParseMapZip(t *testing.T) {
	src := "name: x\ntasks:\n  - id: a\n    run: b\n    map: {range: {stop: 3}}\n  - id: c\n    run: d\n    map: {from: a, zip: true, batch: 2}\n"
	p, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Tasks[1]
	if !c.Map.Zip || c.Map.From != "a" || len(c.Needs) != 1 || c.Needs[0] != "a" {
		t.Fatalf("map %+v, needs %v", c.Map, c.Needs)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func validExamples(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"testdata/valid/*.yaml", "testdata/valid/*.yml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no examples in testdata/valid")
	}
	return files
}

// TestParseFull checks the values Parse produces for a file using every key.
func TestParseFull(t *testing.T) {
	data, err := os.ReadFile("testdata/valid/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("full.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if p.Source.File != "full.yaml" || p.Source.Hash != hex.EncodeToString(sum[:]) || string(p.Source.Data) != string(data) {
		t.Errorf("Source = %q %q (%d bytes)", p.Source.File, p.Source.Hash, len(p.Source.Data))
	}
	if p.Name != "nightly-elt.v2" || p.Version != 1 || !strings.HasPrefix(p.Description, "Nightly load") {
		t.Errorf("name/version/description = %q %d %q", p.Name, p.Version, p.Description)
	}
	wantDefaults := map[string]any{
		"date":         nil,
		"full-refresh": false,
		"batch_size":   int64(5000),
		"sample":       0.25,
		"since":        time.Date(2026, 1, 31, 9, 0, 0, 0, time.FixedZone("", 9*3600)),
		"tables":       []string{"orders", "customers"},
		"comment":      "nightly",
	}
	for _, prm := range p.Params {
		want := wantDefaults[prm.Name]
		if wt, ok := want.(time.Time); ok {
			if gt, ok := prm.Default.(time.Time); !ok || !gt.Equal(wt) {
				t.Errorf("param %s default = %#v, want %v", prm.Name, prm.Default, wt)
			}
			continue
		}
		if !reflect.DeepEqual(prm.Default, want) {
			t.Errorf("param %s default = %#v, want %#v", prm.Name, prm.Default, want)
		}
	}
	if p.Params[0].Type != ParamDate || !p.Params[0].Required || p.Params[6].Type != ParamString {
		t.Errorf("param types = %q %q, required %v", p.Params[0].Type, p.Params[6].Type, p.Params[0].Required)
	}
	if p.Env["WAREHOUSE_URL"] != "postgres://warehouse/analytics" || len(p.Env) != 2 {
		t.Errorf("env = %v", p.Env)
	}
	extract, transform, load := p.Tasks[0], p.Tasks[1], p.Tasks[2]
	if extract.Run.Shell != `./extract.sh "$TASUKI_PARAM_DATE"` || extract.Run.Argv != nil {
		t.Errorf("extract run = %#v", extract.Run)
	}
	if want := (Retry{Attempts: 4, Backoff: Duration(30 * time.Second), MaxBackoff: Duration(5 * time.Minute), Multiplier: 3, Jitter: 0.2}); !reflect.DeepEqual(*extract.Retry, want) {
		t.Errorf("extract retry = %+v, want %+v", *extract.Retry, want)
	}
	if extract.Timeout.D() != 30*time.Minute || extract.Workdir != "jobs/extract" || extract.Env["PAGE_SIZE"] != "500" {
		t.Errorf("extract = %+v", extract)
	}
	if !reflect.DeepEqual(transform.Run.Argv, []string{"python3", "-m", "transform", "--strict"}) || transform.Run.Shell != "" {
		t.Errorf("transform run = %#v", transform.Run)
	}
	if transform.Timeout.D() != 90*time.Minute || !reflect.DeepEqual(transform.Needs, []string{"extract"}) {
		t.Errorf("transform = %+v", transform)
	}
	if !strings.HasPrefix(load.Run.Shell, "set -eu\n./load.sh\n") {
		t.Errorf("load run = %q", load.Run.Shell)
	}
	// Left-out retry keys get the defaults.
	if want := (Retry{Attempts: 2, Backoff: Duration(DefaultBackoff), MaxBackoff: Duration(DefaultMaxBackoff), Multiplier: DefaultMultiplier, Jitter: DefaultJitter}); !reflect.DeepEqual(*load.Retry, want) {
		t.Errorf("load retry = %+v, want %+v", *load.Retry, want)
	}
	if p.Tasks[3].Retry != nil || p.Tasks[3].Attempts() != 1 || extract.Attempts() != 4 {
		t.Errorf("report retry = %+v", p.Tasks[3].Retry)
	}
}

func TestParseAnchorsAndMerge(t *testing.T) {
	p, err := ParseFile("testdata/valid/fx-rates.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tokyo, osaka, sg := p.Tasks[0], p.Tasks[1], p.Tasks[2]
	if osaka.Timeout.D() != 5*time.Minute || osaka.Retry.Attempts != 5 || osaka.Retry.Backoff.D() != 15*time.Second {
		t.Errorf("osaka = %+v %+v", osaka, osaka.Retry)
	}
	if tokyo.Retry == osaka.Retry {
		t.Error("aliased retry policies share one value; each task must own its copy")
	}
	if sg.Retry.Attempts != 8 || sg.Retry.Backoff.D() != 15*time.Second {
		t.Errorf("merged retry = %+v", sg.Retry)
	}
	if want := []string{"tokyo", "osaka", "singapore"}; !reflect.DeepEqual(p.Params[1].Default, want) {
		t.Errorf("relays default = %#v", p.Params[1].Default)
	}
	if d, ok := p.Params[0].Default.(time.Time); !ok || d.Format(DateLayout) != "2026-11-20" {
		t.Errorf("day default = %#v", p.Params[0].Default)
	}
}

func TestExplicitZeroRetryFieldsKept(t *testing.T) {
	p, err := Parse("z.yaml", []byte("name: z\ntasks:\n  - id: a\n    run: b\n    retry: {attempts: 3, backoff: 0s, jitter: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := *p.Tasks[0].Retry
	if r.Backoff != 0 || r.Jitter != 0 || r.MaxBackoff.D() != DefaultMaxBackoff || r.Multiplier != DefaultMultiplier {
		t.Errorf("retry = %+v: explicit zeros must stay, left-out keys get defaults", r)
	}
}

// TestAliasBomb checks that aliases cannot make Parse do unbounded work.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: x\ntasks:\n  - &t\n    id: a\n    run: b\n    needs: &n [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("a")
	}
	b.WriteString("]\n")
	for range 2000 {
		b.WriteString("  - *t\n")
	}
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("want an error")
	}
	// The error below is what bounds the work (the expansion is counted
	// and refused); the time is only a backstop against an unbounded
	// expansion, generous because CI shares 2 cores under the race
	// detector (about 3 s here, 10.6 s once under load).
	if d := time.Since(start); d > time.Minute {
		t.Errorf("Parse took %v", d)
	}
	if !strings.Contains(err.Error(), "aliases expand the document") {
		t.Errorf("error does not mention the alias expansion: %.300s", err)
	}
}

func TestErrorFormatting(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Col: 5, Msg: "boom"}, "a.yaml:3:5: boom"},
		{Error{File: "a.yaml", Msg: "boom"}, "a.yaml: boom"},
		{Error{Msg: "boom"}, "boom"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	list := ErrorList{{File: "b", Line: 1, Msg: "x"}, {File: "a", Line: 2, Msg: "y"}, {File: "a", Line: 1, Col: 4, Msg: "z"}, {File: "a", Line: 1, Col: 4, Msg: "z"}}
	if got := list.sorted().Error(); got != "a:1:4: z\na:2:0: y\nb:1:0: x" {
		t.Errorf("sorted = %q", got)
	}
}

func TestOptionalKeysWithoutValue(t *testing.T) {
	src := "name: x\ndescription:\nparams:\nenv:\n  # FOO: bar\ntasks:\n  - id: a\n    run: b\n    needs:\n    retry:\n    timeout: ~\n    env:\n    workdir:\n"
	p, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if tk := p.Tasks[0]; tk.Needs != nil || tk.Retry != nil || tk.Timeout != 0 || tk.Env != nil || p.Env != nil || p.Params != nil {
		t.Errorf("null values were not taken as absent: %+v", p)
	}
	sch := compileSchema(t)
	if err := sch.Validate(yamlInstance(t, []byte(src))); err != nil {
		t.Errorf("the schema refuses optional keys without value: %v", err)
	}
	for _, bad := range []string{"name: x\ntasks:\n  - id:\n    run: b\n", "name: x\ntasks:\n"} {
		if _, err := Parse("x.yaml", []byte(bad)); err == nil {
			t.Errorf("Parse accepts a required key without value:\n%s", bad)
		}
		if err := sch.Validate(yamlInstance(t, []byte(bad))); err == nil {
			t.Errorf("the schema accepts a required key without value:\n%s", bad)
		}
	}
}

// TestHTTPRetriesDefault: an http task that gives no retries gets the
// default; an explicit 0 stays 0 (send once).
func TestHTTPRetriesDefault(t *testing.T) {
	p, err := Parse("r.yaml", []byte("name: r\ntasks:\n  - id: a\n    http: {url: \"http://h/\"}\n  - id: b\n    http: {url: \"http://h/\", method: POST, retries: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := p.Tasks[0].HTTP.Retries, p.Tasks[1].HTTP.Retries; a != DefaultHTTPRetries || b != 0 {
		t.Fatalf("retries: absent gave %d, explicit 0 gave %d", a, b)
	}
}

// TestParseNoop: noop: {} is a task of kind noop that needs nothing else.
func TestParseNoop(t *testing.T) {
	p, err := Parse("n.yaml", []byte("name: n\ntasks:\n  - id: a\n    run: b\n  - id: join\n    needs: [a]\n    noop: {}\n    map: {range: {stop: 3}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if j := p.Tasks[1]; j.Noop == nil || j.Kind() != "noop" || j.Map == nil {
		t.Errorf("join = %+v, kind %q", j, j.Kind())
	}
	// "noop:" with no value is noop: {}.
	p, err = Parse("n.yaml", []byte("name: n\ntasks:\n  - id: a\n    noop:\n"))
	if err != nil || p.Tasks[0].Kind() != "noop" {
		t.Fatalf("noop with no value: %v", err)
	}
}
