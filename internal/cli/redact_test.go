package cli

import (
	"strings"
	"testing"
)

// TestLocalSecretsAndParams: 'tasuki run' gives a task the secrets of its
// own environment (TASUKI_SECRET_<NAME>) and masks them and secret
// parameters in the log; 'tasuki status' and 'tasuki runs' show a secret
// parameter as ***, as a server does.
func TestLocalSecretsAndParams(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "p.yaml", `name: p
params:
  - {name: pin, secret: true}
  - {name: day, default: monday}
tasks:
  - id: t
    secrets: [db_password]
    run: echo "pw=$DB_PASSWORD pin=$TASUKI_PARAM_PIN"
`)
	run := tasuki(t, home, "run", "-q", file, "--param", "pin=4711-secret")
	run.Env = append(run.Env, "TASUKI_SECRET_DB_PASSWORD=local-pw-123")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"logs", "1", "t"}, {"status", "1"}, {"status", "1", "-o", "json"}, {"runs", "-o", "json"}} {
		r := call(append([]string{"--home", home}, args...)...)
		out := r.stdout + r.stderr
		if r.code != 0 || strings.Contains(out, "4711-secret") || strings.Contains(out, "local-pw-123") {
			t.Errorf("tasuki %s: exit %d, shows a secret:\n%s", strings.Join(args, " "), r.code, out)
		}
		if args[0] == "logs" && !strings.Contains(out, "pw=*** pin=***") {
			t.Errorf("log:\n%s", out)
		}
		if args[0] != "logs" && (!strings.Contains(out, `***`) || !strings.Contains(out, "monday")) {
			t.Errorf("tasuki %s shows no params or no mask:\n%s", strings.Join(args, " "), out)
		}
	}
}
