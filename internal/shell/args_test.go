package shell

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// longScript returns a script of exactly size bytes that prints $0, $#, a
// count of the lines it ran (lines), and whether it could write to its own
// file.
func longScript(size int) (script string, lines int) {
	head := `echo "$0 $#"; n=0` + "\n"
	tail := `echo "$n"; if (printf x >> /dev/fd/3) 2>/dev/null; then echo writable; else echo sealed; fi; exit 3` + "\n"
	line := "n=$((n+1))\n"
	var b strings.Builder
	b.WriteString(head)
	lines = (size - len(head) - len(tail)) / len(line)
	for range lines {
		b.WriteString(line)
	}
	// Pad to the exact size with a comment.
	if pad := size - b.Len() - len(tail); pad > 0 {
		b.WriteString("#" + strings.Repeat("x", pad-2) + "\n")
	}
	b.WriteString(tail)
	return b.String(), lines
}

func TestScriptsOfAnySize(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		env  int // bytes of an extra environment variable
		file bool
	}{
		{"short", 1 << 10, 0, false},
		{"longest argument", MaxArgString - 1, 0, false},
		{"one byte over", MaxArgString, 0, true},
		{"300 KiB", 300 << 10, 0, true},
		{"300 KiB with a large environment", 300 << 10, 100 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script, lines := longScript(tc.size)
			if len(script) != tc.size {
				t.Fatalf("script is %d bytes, want %d", len(script), tc.size)
			}
			env := slices.Clip(testEnv)
			if tc.env > 0 {
				env = append(env, "BIG="+strings.Repeat("b", tc.env))
			}
			_, file, err := passScript("/bin/sh", script, env)
			if err != nil {
				t.Fatal(err)
			}
			if (file != nil) != tc.file {
				t.Errorf("passed in a file: %v, want %v", file != nil, tc.file)
			}
			if file != nil {
				file.Close()
			}
			var out syncBuffer
			res := Run(t.Context(), Command{Script: script, Env: env, Stdout: &out, Stderr: &out})
			if res.StartErr != nil || res.ExitCode != 3 {
				t.Fatalf("result %+v, output %q", res, out.String())
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(got) != 3 || got[0] != "/bin/sh 0" {
				t.Fatalf("output %q, want $0 /bin/sh and no arguments, as with sh -c", out.String())
			}
			var n int
			if _, err := fmt.Sscan(got[1], &n); err != nil || n != lines {
				t.Errorf("ran %q lines, want the whole script's %d", got[1], lines)
			}
			if tc.file && got[2] != "sealed" {
				t.Errorf("the script's file is %s, want sealed", got[2])
			}
		})
	}
}

func TestArgumentsTooLong(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		want string
	}{
		{"long environment variable", Command{Script: "true", Env: append(slices.Clip(testEnv), "HUGE="+strings.Repeat("h", MaxArgString))},
			fmt.Sprintf(`start "/bin/sh": environment variable HUGE is %d bytes; the kernel takes at most %d per variable`, MaxArgString+5, MaxArgString-1)},
		{"long argument", Command{Argv: []string{"echo", strings.Repeat("a", MaxArgString)}, Env: testEnv},
			fmt.Sprintf(`start "echo": argument 1 is %d bytes; the kernel takes at most %d per argument`, MaxArgString, MaxArgString-1)},
	}
	many := slices.Clip(testEnv)
	for i := range 100 {
		many = append(many, fmt.Sprintf("V%d=%s", i, strings.Repeat("v", 100<<10)))
	}
	tests = append(tests, struct {
		name string
		cmd  Command
		want string
	}{"environment over the total", Command{Script: "true", Env: many}, `start "/bin/sh": arguments and environment take `})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Run(t.Context(), tt.cmd)
			if res.StartErr == nil || !strings.HasPrefix(res.StartErr.Error(), tt.want) {
				t.Errorf("StartErr = %v\nwant %s", res.StartErr, tt.want)
			}
			if res.PID != 0 {
				t.Errorf("started pid %d", res.PID)
			}
		})
	}
}
