package runner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/secret"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// secretMap is a SecretSource over a map, answering like secret.Resolver
// for a secret it does not have.
type secretMap map[string]string

func (m secretMap) Secret(_ context.Context, name string) (string, error) {
	if v, ok := m[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("secret %q %w", name, secret.ErrNotSet)
}

// leakForms are the forms of a secret value that must be in nothing
// tasuki stores.
func leakForms(v string) []string {
	return []string{v, base64.StdEncoding.EncodeToString([]byte(v)), url.QueryEscape(v)}
}

// TestSecretsReachTaskMasked: a task gets its secrets as variables; what
// it prints of them (whole, in two writes, base64, URL-encoded, in an error
// message on stderr, in its result) is masked in its stored log and
// result, and nothing of the value is in the database's files or the
// run's timeline. A secret parameter is masked the same way.
func TestSecretsReachTaskMasked(t *testing.T) {
	const pw = "p@ss w0rd/x+y-1234"
	const token = "tok_9f8e7d6c5b4a"
	const param = "param-secret-value"
	e := newEnv(t)
	e.r.Secrets = secretMap{"warehouse_password": pw, "api_token": token}
	seen := filepath.Join(t.TempDir(), "seen")
	run, tasks := e.run(context.Background(), `
name: secrets
params:
  - {name: pin, secret: true}
secrets: [api_token]
tasks:
  - id: use
    env:
      PGPASSWORD: {secret: warehouse_password}
    run: |
      printf '%s\n' "$PGPASSWORD" "$API_TOKEN" "$TASUKI_PARAM_PIN" > '`+seen+`'
      echo "whole: $PGPASSWORD and $API_TOKEN and $TASUKI_PARAM_PIN"
      printf 'pieces: '; printf '%s' "$PGPASSWORD" | cut -c1-7 | tr -d '\n'; printf '%s\n' "$PGPASSWORD" | cut -c8-
      printf '%s' "$PGPASSWORD" | base64
      printf '%s\n' "$PGPASSWORD" | sed 's/%/%25/g; s/@/%40/g; s|/|%2F|g; s/+/%2B/g; s/ /+/g'
      printf '{"dsn": "postgres://u:%s@db", "pin": "%s"}' "$PGPASSWORD" "$TASUKI_PARAM_PIN" > "$TASUKI_RESULT"
      echo "psql: password authentication failed for $PGPASSWORD" >&2
`, map[string]string{"pin": param})
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v\n%s", run.State, tasks, e.log(run.ID, "use", 1))
	}
	// The file the task wrote is not tasuki's: it shows what the task saw.
	if got, _ := os.ReadFile(seen); string(got) != pw+"\n"+token+"\n"+param+"\n" {
		t.Errorf("the task saw %q", got)
	}
	log := e.log(run.ID, "use", 1)
	for _, v := range []string{pw, token, param} {
		for _, form := range leakForms(v) {
			if strings.Contains(log, form) {
				t.Errorf("the stored log holds %q:\n%s", form, log)
			}
		}
	}
	for _, want := range []string{"whole: *** and *** and ***", "pieces: ***", "password authentication failed for ***"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	var result map[string]string
	if err := json.Unmarshal(tasks["use"].Result, &result); err != nil || result["dsn"] != "postgres://u:***@db" || result["pin"] != "***" {
		t.Errorf("stored result = %s, %v", tasks["use"].Result, err)
	}
	evs, err := e.st.Events(context.Background(), run.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	timeline, _ := json.Marshal(evs)
	if bytes.Contains(timeline, []byte(pw)) || bytes.Contains(timeline, []byte(token)) {
		t.Errorf("the timeline holds a secret: %s", timeline)
	}
	e.st.Close() // flush everything to the files
	files, _ := filepath.Glob(filepath.Join(e.home, "tasuki.db*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, v := range []string{pw, token} {
			for _, form := range leakForms(v) {
				if bytes.Contains(data, []byte(form)) {
					t.Errorf("%s holds %q", filepath.Base(f), form)
				}
			}
		}
	}
}

// TestUnknownSecretFailsAttempt: an attempt whose secret is found nowhere
// fails with a message naming the secret, and its command does not run.
func TestUnknownSecretFailsAttempt(t *testing.T) {
	e := newEnv(t)
	e.r.Secrets = secretMap{"other": "x"}
	marker := filepath.Join(e.home, "ran")
	run, tasks := e.run(context.Background(), `
name: unknown
tasks:
  - id: use
    secrets: [warehouse_password]
    run: touch `+marker+`
`, nil)
	if run.State != engine.RunFailed {
		t.Fatalf("run %s, want failed", run.State)
	}
	atts, err := e.st.Attempts(context.Background(), run.ID, tasks["use"].Index)
	if err != nil || len(atts) != 1 {
		t.Fatalf("attempts = %+v, %v", atts, err)
	}
	if msg := atts[0].Message; !strings.Contains(msg, `task use: secret "warehouse_password" is not set`) {
		t.Errorf("attempt message = %q, want it to name the secret", msg)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran without its secret")
	}

	// A runner without a secret source says so.
	e.r.Secrets = nil
	run, tasks = e.run(context.Background(), "name: none\ntasks: [{id: t, secrets: [s3_key], run: 'true'}]\n", nil)
	atts, _ = e.st.Attempts(context.Background(), run.ID, tasks["t"].Index)
	if run.State != engine.RunFailed || len(atts) != 1 || !strings.Contains(atts[0].Message, `"s3_key"`) {
		t.Errorf("without secrets: run %s, attempts %+v", run.State, atts)
	}
}

func TestRedactParams(t *testing.T) {
	p := &spec.Pipeline{Params: []spec.Param{{Name: "pin", Secret: true}, {Name: "day"}}}
	tests := []struct{ raw, want string }{
		{`{"day":"2026-01-01","pin":"1234"}`, `{"day":"2026-01-01","pin":"***"}`},
		{`{"day":"2026-01-01"}`, `{"day":"2026-01-01"}`},
		{``, ``},
		{`[1]`, `{}`},
	}
	for _, tt := range tests {
		if got := string(RedactParams(p, json.RawMessage(tt.raw))); got != tt.want {
			t.Errorf("RedactParams(%s) = %s, want %s", tt.raw, got, tt.want)
		}
	}
	if got := string(RedactParams(&spec.Pipeline{}, json.RawMessage(`{"pin":"1"}`))); got != `{"pin":"1"}` {
		t.Errorf("no secret params: %s", got)
	}
}
