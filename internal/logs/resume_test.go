package logs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFilesResume: a log never written resumes at 0; one whose writer is
// gone resumes at its size, and what is appended follows what it held, for
// readers and for a follower that came before; a log with a writer open
// cannot be resumed, nor a map item's log written whole into its pack.
func TestFilesResume(t *testing.T) {
	f := newFiles(t, noPoll)
	ctx := t.Context()
	k := Key{RunID: 1, TaskID: "a", Attempt: 1}
	sink, off, err := f.Resume(ctx, k)
	if err != nil || off != 0 {
		t.Fatalf("Resume of a log never written: %d, %v", off, err)
	}
	if _, _, err := f.Resume(ctx, k); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Resume while a writer is open: %v, want fs.ErrExist", err)
	}
	io.WriteString(sink, "2026-01-02T03:04:05Z out line 1\n")
	sink.Close() // the writer is gone (its server restarted)

	sink, off, err = f.Resume(ctx, k)
	if err != nil || off != 32 {
		t.Fatalf("Resume: %d, %v; want 32", off, err)
	}
	cw := newChanWriter(t)
	done := follow(ctx, f, k, 0, cw)
	if got := cw.next(t); !equal(got, []string{"out line 1"}) {
		t.Fatalf("follower got %q", got)
	}
	io.WriteString(sink, "2026-01-02T03:04:06Z out line 2\n")
	if got := cw.next(t); !equal(got, []string{"out line 2"}) {
		t.Fatalf("follower got %q", got)
	}
	if got := readAll(t, f, k, 10); got != "T03:04:05Z out line 1\n2026-01-02T03:04:06Z out line 2\n" {
		t.Errorf("read across the resumption: %q", got)
	}
	sink.Close()
	if r := await(t, done); r.err != nil || r.offset != 64 {
		t.Errorf("follow ended at %d, %v; want 64", r.offset, r.err)
	}

	item := Key{RunID: 1, TaskID: ItemTask("m", 3), Attempt: 1}
	if err := f.WriteWhole(ctx, []Whole{{Key: item, Data: []byte("2026-01-02T03:04:05Z out item\n")}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Resume(ctx, item); !errors.Is(err, ErrComplete) {
		t.Errorf("Resume of a packed item's log: %v, want ErrComplete", err)
	}
	if _, _, err := f.Resume(ctx, Key{RunID: 1, TaskID: "../x", Attempt: 1}); err == nil {
		t.Error("Resume of an invalid key succeeded")
	}
}

// TestResumeAfterWriterProcessDies: a writer in another process holds its
// log (Resume refuses it) until it is killed; the log then resumes at
// what that process wrote.
func TestResumeAfterWriterProcessDies(t *testing.T) {
	f := newFiles(t, 20*time.Millisecond)
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+f.dir)
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	cw := newChanWriter(t)
	done := follow(t.Context(), f, helperKey, 0, cw)
	if got := cw.next(t); !equal(got, []string{"out from another process"}) {
		t.Fatalf("got %q", got)
	}
	if _, _, err := f.Resume(t.Context(), helperKey); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Resume while another process writes: %v, want fs.ErrExist", err)
	}
	helper.Process.Kill()
	helper.Wait()
	if r := await(t, done); r.err != nil {
		t.Fatal(r.err)
	}
	before := readAll(t, f, helperKey, 0)
	sink, off, err := f.Resume(t.Context(), helperKey)
	if err != nil || off != int64(len(before)) {
		t.Fatalf("Resume: %d, %v; want %d", off, err, len(before))
	}
	io.WriteString(sink, "2026-01-02T03:04:05Z out from this one\n")
	sink.Close()
	if got := readAll(t, f, helperKey, 0); got != before+"2026-01-02T03:04:05Z out from this one\n" {
		t.Errorf("log: %q", got)
	}
}

// TestResumeHeadFull: a log whose writer died once its head was full
// resumes at the head's end, without the line that says so; what comes
// goes to the tail, added at the end as for any log past its bound.
func TestResumeHeadFull(t *testing.T) {
	f := newFiles(t, noPoll)
	f.Limit = minLimit
	ctx := t.Context()
	k := Key{RunID: 1, TaskID: "big", Attempt: 1}
	s, err := f.Sink(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	for i := 0; sent <= headSize(minLimit); i++ {
		n, _ := fmt.Fprintf(s, "2026-01-02T03:04:05Z out line %06d\n", i)
		sent += int64(n)
	}
	// The writer's process dies: its file is closed, its tail lost.
	dead := s.(*fileSink)
	dead.file.Close()
	dead.topic.finish()
	f.release(k)
	before := readAll(t, f, k, 0)
	if !strings.Contains(before, " log log limit of ") {
		t.Fatalf("the head does not end with its note: %q", before[max(len(before)-200, 0):])
	}
	head := int64(strings.LastIndex(strings.TrimSuffix(before, "\n"), "\n") + 1)

	sink, off, err := f.Resume(ctx, k)
	if err != nil || off != head {
		t.Fatalf("Resume: %d, %v; want the head's %d bytes", off, err, head)
	}
	io.WriteString(sink, "2026-01-02T03:04:07Z out the end\n")
	if n, _ := f.Size(ctx, k); n != int64(len(before)) {
		t.Errorf("the head grew to %d bytes before the end", n)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, f, k, 0)
	rest, ok := strings.CutPrefix(got, before)
	if !ok || !regexp.MustCompile(`^\S+ log log limit: 0 lines \(0 bytes of log, time stamps included\) dropped here\n2026-01-02T03:04:07Z out the end\n$`).MatchString(rest) {
		t.Errorf("after the head: %q", got[min(len(before), len(got)):])
	}
}
