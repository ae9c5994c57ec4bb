package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNonUTF8IsRefused: a pipeline file or a parameter value that is not
// UTF-8 is refused with where it is, by validate and run alike, before any
// task runs; the YAML parser would otherwise run the command with U+FFFD in
// place of the byte.
func TestNonUTF8IsRefused(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	marker := filepath.Join(dir, "ran")
	latin1 := writeFile(t, dir, "latin1.yaml", "name: latin1\ntasks:\n  - id: a\n    run: touch "+marker+" # caf\xe9\n")
	good := writeFile(t, dir, "good.yaml", "name: good\nparams: [{name: who}]\ntasks: [{id: a, run: 'touch "+marker+"'}]\n")
	col := len("    run: touch "+marker+" # caf") + 1
	where := latin1 + ":4:" + strconv.Itoa(col) + ": invalid UTF-8 (byte 0xe9)"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"validate", []string{"validate", dir}, where},
		{"run", []string{"run", latin1}, where},
		{"run param", []string{"run", good, "-p", "who=caf\xe9"}, `--param "who": invalid UTF-8 at byte 4 (0xe9)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(append([]string{"--home", home}, c.args...)...)
			if r.code != 2 || !strings.Contains(r.stdout+r.stderr, c.want) {
				t.Fatalf("exit %d (want 2), output lacks %q:\n%s\n%s", r.code, c.want, r.stdout, r.stderr)
			}
		})
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("a task ran: %v", err)
	}
}
