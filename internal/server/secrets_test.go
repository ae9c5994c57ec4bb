package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/cli"
)

// secretCLI runs the CLI in this process against s with stdin.
func secretCLI(t *testing.T, s *serverProc, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{"--server", s.url, "--home", filepath.Join(s.home, "cli-unused"), "--token", s.token}, args...)
	code := cli.Main(args, cli.IO{In: strings.NewReader(stdin), Out: &out, Err: &errb}, "test")
	return cliResult{code: code, out: out.String(), errOut: errb.String()}
}

// TestProcessSecrets drives secrets through a real server and a remote
// worker: one secret set with 'tasuki secret set' (stdin), one from the
// server's environment, one from its secrets_dir, and a secret parameter.
// The worker's task receives each as a variable; what it prints of them
// (whole, in two writes, base64, URL-encoded, in an error message) and
// what it publishes as its result never reach the stored log, any API
// answer, 'tasuki status', the timeline, the server's or the worker's own
// log, or the database file. An unknown secret fails its attempt with a
// message naming it.
func TestProcessSecrets(t *testing.T) {
	t.Parallel()
	const (
		stored  = "st0red p@ss/w+rd-4711"
		fromEnv = "env-t0ken-8a7b6c5d"
		fromDir = "dir-s3cret-1f2e3d"
		pin     = "pin-v4lue-9911"
	)
	home, pipelines, secretsDir := t.TempDir(), t.TempDir(), t.TempDir()
	seen := filepath.Join(t.TempDir(), "seen")
	if err := os.WriteFile(filepath.Join(secretsDir, "s3_key"), []byte(fromDir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, pipelines, "sec.yaml", `name: sec
params:
  - {name: pin, secret: true, required: true}
  - {name: otp, secret: true, default: default-otp-77}
secrets: [api_token]
tasks:
  - id: use
    labels: [remote]
    secrets: [s3_key]
    env:
      PGPASSWORD: {secret: warehouse_password}
    run: |
      printf '%s\n' "$PGPASSWORD" "$API_TOKEN" "$S3_KEY" "$TASUKI_PARAM_PIN" > `+seen+`
      echo "whole: $PGPASSWORD $API_TOKEN $S3_KEY $TASUKI_PARAM_PIN"
      printf 'pieces: '; printf '%s' "$PGPASSWORD" | cut -c1-6 | tr -d '\n'; printf '%s\n' "$PGPASSWORD" | cut -c7-
      printf '%s' "$PGPASSWORD" | base64
      printf '%s\n' "$PGPASSWORD" | sed 's/%/%25/g; s/@/%40/g; s|/|%2F|g; s/+/%2B/g; s/ /+/g'
      printf '{"dsn": "postgres://u:%s@db"}' "$PGPASSWORD" > "$TASUKI_RESULT"
  - id: fail
    labels: [remote]
    needs: [use]
    env:
      PGPASSWORD: {secret: warehouse_password}
    run: |
      echo "FATAL: password authentication failed: $PGPASSWORD" >&2
      exit 3
`)
	writeFile(t, pipelines, "missing.yaml", "name: missing\ntasks:\n  - id: t\n    secrets: [nowhere]\n    run: 'true'\n")
	s := startServer(t, home, pipelines, []string{"TASUKI_SECRET_API_TOKEN=" + fromEnv}, "--secrets-dir", secretsDir, "--workers", "0")
	serverTokens.Store(s.url, s.token)

	secretCLI(t, s, stored+"\n", "secret", "set", "warehouse_password").expect(t, 0, `secret "warehouse_password" set`)
	if _, err := os.Stat(filepath.Join(home, "secret.key")); err != nil {
		t.Fatalf("no key file after the first secret: %v", err)
	}
	list := secretCLI(t, s, "", "secret", "list", "-o", "json")
	list.expect(t, 0, `"name": "warehouse_password"`)

	_, tokenFile := createToken(t, s.url, "w1")
	w := startWorker(t, s.url, tokenFile, "w1", nil, "--labels", "remote")

	r := secretCLI(t, s, "", "trigger", "sec", "--param", "pin="+pin)
	r.expect(t, 0)
	run := waitRunEnd(t, s.c, r.runID(t))
	if run.State != "failed" {
		t.Fatalf("run %d: %s, want failed (its second task fails)", run.ID, run.State)
	}
	got, _ := os.ReadFile(seen)
	if want := stored + "\n" + fromEnv + "\n" + fromDir + "\n" + pin + "\n"; string(got) != want {
		t.Fatalf("the task on the remote worker saw %q, want %q", got, want)
	}

	// Everything tasuki shows or keeps.
	ctx := t.Context()
	var shown []string
	add := func(what string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		shown = append(shown, what+": "+string(b))
	}
	useLog, failLog := runLog(t, s.c, run.ID, "use"), runLog(t, s.c, run.ID, "fail")
	shown = append(shown, "log of use: "+useLog, "log of fail: "+failLog)
	apiRun, err := s.c.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	add("run", apiRun)
	for _, id := range []string{"use", "fail"} {
		task, err := s.c.Task(ctx, run.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		add("task "+id, task)
	}
	add("events", allEvents(t, s.c, run.ID))
	runs, err := s.c.Runs(ctx, api.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	add("runs", runs)
	pl, err := s.c.Pipeline(ctx, "sec")
	if err != nil {
		t.Fatal(err)
	}
	add("pipeline", pl)
	if len(pl.Params) != 2 || !pl.Params[1].Secret || pl.Params[1].Default != "***" {
		t.Errorf("pipeline params = %+v, want otp secret with its default as ***", pl.Params)
	}
	status := secretCLI(t, s, "", "status", strconv.FormatInt(run.ID, 10))
	shown = append(shown, "status: "+status.out+status.errOut)
	statusJSON := secretCLI(t, s, "", "status", strconv.FormatInt(run.ID, 10), "-o", "json")
	shown = append(shown, "status -o json: "+statusJSON.out)
	shown = append(shown, "secret list: "+list.out)
	shown = append(shown, "server log: "+s.logs(), "worker log: "+w.logs())
	for _, f := range dbFiles(t, home) {
		data, _ := os.ReadFile(f)
		shown = append(shown, filepath.Base(f)+": "+string(data))
	}
	for _, v := range []string{stored, fromEnv, fromDir} {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), url.QueryEscape(v)} {
			for _, text := range shown {
				if strings.Contains(text, form) {
					what, _, _ := strings.Cut(text, ": ")
					t.Errorf("%s holds %q", what, form)
				}
			}
		}
	}
	// The secret parameters are stored (retries need them) but never shown.
	for _, text := range shown {
		for _, v := range []string{pin, "default-otp-77"} {
			if what, _, _ := strings.Cut(text, ": "); strings.Contains(text, v) && !strings.HasPrefix(what, "tasuki.db") {
				t.Errorf("%s shows the secret parameter %q", what, v)
			}
		}
	}
	if !sameJSON(apiRun.Params, `{"pin": "***", "otp": "***"}`) {
		t.Errorf("run params in the API = %s, want pin as ***", apiRun.Params)
	}
	for _, want := range []string{"whole: *** *** *** ***", "pieces: ***"} {
		if !strings.Contains(useLog, want) {
			t.Errorf("log of use lacks %q:\n%s", want, useLog)
		}
	}
	if !strings.Contains(failLog, "password authentication failed: ***") {
		t.Errorf("log of fail:\n%s", failLog)
	}
	task, _ := s.c.Task(ctx, run.ID, "use")
	if !sameJSON(task.Result, `{"dsn": "postgres://u:***@db"}`) {
		t.Errorf("result of use = %s", task.Result)
	}

	// An unknown secret: the attempt fails, naming it.
	r = secretCLI(t, s, "", "trigger", "missing")
	r.expect(t, 0)
	missing := waitRunEnd(t, s.c, r.runID(t))
	mt, err := s.c.Task(ctx, missing.ID, "t")
	if err != nil {
		t.Fatal(err)
	}
	if missing.State != "failed" || len(mt.Attempts) != 1 || !strings.Contains(mt.Attempts[0].Message, `secret "nowhere" is not set`) {
		t.Errorf("run of missing: %s, attempts %+v", missing.State, mt.Attempts)
	}

	// A key rotation re-seals the stored secret with a new key file; the
	// next run's task still receives the value.
	keyBefore, _ := os.ReadFile(filepath.Join(home, "secret.key"))
	secretCLI(t, s, "", "secret", "rotate-key").expect(t, 0, "1 secrets re-sealed")
	if keyAfter, _ := os.ReadFile(filepath.Join(home, "secret.key")); bytes.Equal(keyBefore, keyAfter) || len(keyAfter) == 0 {
		t.Errorf("the key file did not change: %q", keyAfter)
	}
	if err := os.Remove(seen); err != nil {
		t.Fatal(err)
	}
	r = secretCLI(t, s, "", "trigger", "sec", "--param", "pin="+pin)
	r.expect(t, 0)
	waitRunEnd(t, s.c, r.runID(t))
	if got, _ := os.ReadFile(seen); !strings.HasPrefix(string(got), stored+"\n") {
		t.Errorf("after the rotation the task saw %q", got)
	}

	// rm, then the secret is gone for the next attempts.
	secretCLI(t, s, "", "secret", "rm", "warehouse_password").expect(t, 0, "removed")
	secretCLI(t, s, "", "secret", "rm", "warehouse_password").expect(t, 2, `no secret "warehouse_password"`)
}

// dbFiles are the SQLite files of a data directory.
func dbFiles(t *testing.T, home string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(home, "tasuki.db*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no database files in %s: %v", home, err)
	}
	return files
}
