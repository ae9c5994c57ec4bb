package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBackfillOfAWeek runs the README's backfill against a real server on
// the bundled examples: --from 2026-11-01 --to 2026-11-08 makes the 7
// nightly runs of November 1 to 7 (each fires at 02:30 Tokyo time the next
// morning), as the README and docs/server.md say.
func TestBackfillOfAWeek(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tasuki and starts a server")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build tasuki with")
	}
	bin := tasukiBinary(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := copyDir(filepath.Join(root, "examples"), filepath.Join(work, "examples")); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	// --workers 0: the runs are created and queued, and none executes.
	srv := exec.Command(bin, "server", "--pipelines", "examples", "--addr", addr, "--workers", "0", "--drain-grace", "1s")
	srv.Dir = work
	srv.Env = append(os.Environ(), "TASUKI_HOME="+filepath.Join(work, ".tasuki"), "TASUKI_SERVER=")
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan bool, 1)
	var log strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		told := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !told && strings.Contains(sc.Text(), "tasuki server listening on") {
				told = true
				listening <- true
			}
		}
		if !told {
			listening <- false
		}
	}()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		<-done
		srv.Wait()
	})
	select {
	case ok := <-listening:
		if !ok {
			<-done
			t.Fatalf("the server did not start:\n%s", log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not listen within 30s")
	}
	tasuki := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--server", "http://"+addr)...)
		cmd.Dir = work
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("tasuki %v: %v\n%s", args, err, ee.Stderr)
			}
			t.Fatalf("tasuki %v: %v", args, err)
		}
		return out
	}
	var b struct {
		ID   int64 `json:"id"`
		Runs int   `json:"runs"`
	}
	out := tasuki("backfill", "nightly-elt", "--from", "2026-11-01", "--to", "2026-11-08", "-o", "json")
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatalf("backfill -o json: %v\n%s", err, out)
	}
	if b.Runs != 7 {
		t.Fatalf("the backfill of November 1 to 8 has %d runs, want 7", b.Runs)
	}
	var runs []struct {
		IntervalStart time.Time `json:"interval_start"`
	}
	out = tasuki("runs", "--backfill", strconv.FormatInt(b.ID, 10), "--limit", "100", "-o", "json")
	if err := json.Unmarshal(out, &runs); err != nil {
		t.Fatalf("runs -o json: %v\n%s", err, out)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	var days []string
	for _, r := range runs {
		days = append(days, r.IntervalStart.In(tokyo).Format("01-02 15:04"))
	}
	slices.Sort(days)
	want := []string{"11-01 02:30", "11-02 02:30", "11-03 02:30", "11-04 02:30", "11-05 02:30", "11-06 02:30", "11-07 02:30"}
	if !slices.Equal(days, want) {
		t.Errorf("the runs' intervals start at %v, want %v", days, want)
	}
}
