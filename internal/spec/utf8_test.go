package spec

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestParseRefusesInvalidUTF8: a byte that is not UTF-8 is reported at its
// line and column (in characters) instead of reaching a command as U+FFFD.
func TestParseRefusesInvalidUTF8(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"raw byte in run", "name: x\ntasks:\n  - id: a\n    run: echo \xff\n", []string{"4:15: invalid UTF-8 (byte 0xff)"}},
		{"column counts characters", "name: x\ndescription: ééé\xe9\ntasks: [{id: a, run: b}]\n", []string{"2:17: invalid UTF-8 (byte 0xe9)"}},
		{"truncated sequence", "name: x\ntasks: [{id: a, run: \"\xe2\x82\"}]\n", []string{"2:23: invalid UTF-8 (byte 0xe2)"}},
		{"surrogate encoded", "name: x\n# \xed\xa0\x80\ntasks: [{id: a, run: b}]\n", []string{"2:3: invalid UTF-8 (byte 0xed)"}},
		{"first per line", "name: \xff\xfe\ntasks: [{id: a, run: \"\xc0\"}]\n", []string{"1:7: invalid UTF-8 (byte 0xff)", "2:23: invalid UTF-8 (byte 0xc0)"}},
		{"U+FFFD itself is text", "name: x\ntasks: [{id: a, run: \"echo \uFFFD\"}]\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrors(t, tt.src)
			if len(got) != len(tt.want) {
				t.Fatalf("errors = %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) || !strings.Contains(got[i], "must be UTF-8 text") {
					t.Errorf("error %d = %q, want prefix %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestInvalidUTF8ErrorsAreBounded(t *testing.T) {
	src := "name: x\ntasks: [{id: a, run: b}]\n" + strings.Repeat("# \xff\n", 3*maxUTF8Errors)
	if got := parseErrors(t, src); len(got) != maxUTF8Errors {
		t.Errorf("%d errors for a file with %d bad lines, want %d", len(got), 3*maxUTF8Errors, maxUTF8Errors)
	}
}

// TestLoadRefusesInvalidUTF8 covers the paths tasuki validate, tasuki run and
// the server's loader take.
func TestLoadRefusesInvalidUTF8(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"good.yaml": pipelineYAML("good"), "bad.yaml": "name: bad\ntasks: [{id: a, run: \"echo \xff\"}]\n"})
	bad := filepath.Join(dir, "bad.yaml")
	want := bad + ":2:28: invalid UTF-8 (byte 0xff)"
	ps, errs := LoadDir(dir)
	if names(ps) != "good" || len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), want) {
		t.Errorf("LoadDir = %v, %v; want only good and %q", names(ps), errs, want)
	}
	if _, err := LoadPaths(bad); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("LoadPaths = %v, want %q", err, want)
	}
	if _, err := ParseFile(bad); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("ParseFile = %v, want %q", err, want)
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"plain", ""},
		{"日本 \uFFFD", ""},
		{"ab\xffc", `param "p": invalid UTF-8 at byte 3 (0xff); values must be UTF-8 text`},
		{"\xe2\x82", `param "p": invalid UTF-8 at byte 1 (0xe2); values must be UTF-8 text`},
	}
	for _, tt := range tests {
		err := CheckText(`param "p"`, tt.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("CheckText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
