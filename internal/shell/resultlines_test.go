package shell

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadResultLines(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		n          int
		want       string // the results joined by |, or the error's start
		err        bool
	}{
		{"one per item", "1\n{\"a\":2}\n\"x\"\n", 3, `1|{"a":2}|"x"`, false},
		{"no final newline", "1\n2", 2, "1|2", false},
		{"blank is no result", "1\n\n3\n", 3, "1||3", false},
		{"too few", "1\n", 3, "1 result lines for a batch of 3 items", true},
		{"too many", "1\n2\n3\n", 2, "3 result lines for a batch of 2 items", true},
		{"blank counts", "1\n\n2\n", 2, "3 result lines for a batch of 2 items", true},
		{"not JSON", "1\nnope\n", 2, "result line 2 (of the batch's item 2) is not valid JSON", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "r")
			os.WriteFile(p, []byte(tc.data), 0o600)
			got, err := ReadResultLines(p, tc.n)
			if tc.err {
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Errorf("err = %v, want %q", err, tc.want)
				}
				return
			}
			var parts []string
			for _, r := range got {
				parts = append(parts, string(r))
			}
			if err != nil || strings.Join(parts, "|") != tc.want {
				t.Errorf("got %q, %v; want %q", strings.Join(parts, "|"), err, tc.want)
			}
		})
	}
	if got, err := ReadResultLines(filepath.Join(t.TempDir(), "none"), 3); got != nil || err != nil {
		t.Errorf("no file: %v, %v", got, err)
	}
}
