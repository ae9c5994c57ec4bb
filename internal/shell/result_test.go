package shell

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadResult(t *testing.T) {
	big := `"` + strings.Repeat("x", MaxResultSize-2) + `"` // exactly the limit
	tests := []struct {
		name    string
		content *string // nil: no file
		want    string  // "" with wantErr "": nil result
		wantErr string  // substring
	}{
		{name: "missing"},
		{name: "empty", content: ptr("")},
		{name: "white space", content: ptr(" \n\t\n")},
		{name: "object", content: ptr(`{"rows": 42, "ok": true}` + "\n"), want: `{"rows": 42, "ok": true}`},
		{name: "number", content: ptr("3.5"), want: "3.5"},
		{name: "string", content: ptr(`"done"`), want: `"done"`},
		{name: "array", content: ptr(`[1, 2]`), want: `[1, 2]`},
		{name: "at limit", content: &big, want: big},
		{name: "over limit", content: ptr(big + " "), wantErr: "larger than the limit of 1048576 bytes"},
		{name: "invalid", content: ptr(`{"rows": }`), wantErr: "not valid JSON at byte 10: invalid character '}'"},
		{name: "two values", content: ptr(`{} {}`), wantErr: "not valid JSON"},
		{name: "plain text", content: ptr("hello\n"), wantErr: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "result.json")
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadResult(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("err %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if got != nil {
					t.Errorf("got %q, want nil", got)
				}
				return
			}
			if string(got) != tt.want {
				t.Errorf("got %.80q, want %.80q", got, tt.want)
			}
		})
	}
}

func TestReadResultRefusesNonFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "secret.json")
	if err := os.WriteFile(target, []byte(`{"secret": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		link: "is a symbolic link",
		fifo: "is not a regular file",
		dir:  "is not a regular file",
	} {
		if got, err := ReadResult(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadResult(%s) = %q, %v; want error containing %q", path, got, err, want)
		}
	}
}

func TestResultFromTask(t *testing.T) {
	path := filepath.Join(t.TempDir(), "result.json")
	res := Run(t.Context(), Command{
		Script: `printf '{"rows": %d}\n' 7 > "$` + ResultEnv + `"`,
		Env:    append(testEnv[:len(testEnv):len(testEnv)], ResultEnv+"="+path),
	})
	if !res.OK() {
		t.Fatal(res.Err())
	}
	got, err := ReadResult(path)
	if err != nil || string(got) != `{"rows": 7}` {
		t.Errorf("ReadResult = %s, %v", got, err)
	}
}

func ptr(s string) *string { return &s }
