package shell

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLookPathCache: where a program was found is used again while it is
// an executable file and was searched less than pathTTL ago; a program gone
// or no longer executable is searched for again at once, and one installed
// earlier in PATH is found once pathTTL has passed.
func TestLookPathCache(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	install := func(dir string) string {
		t.Helper()
		p := filepath.Join(dir, "prog")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := []string{"PATH=relative:" + d1 + ":" + d2}
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	var c pathCache
	in1, in2 := filepath.Join(d1, "prog"), install(d2)
	steps := []struct {
		name   string
		before func()
		after  time.Duration // since now
		env    []string
		want   string // "" for not found
	}{
		{"found late in PATH", nil, 0, env, in2},
		{"installed earlier in PATH: the remembered one, within pathTTL", func() { install(d1) }, pathTTL / 2, env, in2},
		{"installed earlier in PATH: found once pathTTL has passed", nil, pathTTL, env, in1},
		{"the remembered one removed: searched again at once", func() { os.Remove(in1) }, pathTTL + time.Millisecond, env, in2},
		{"the remembered one not executable: searched again", func() { os.Chmod(in2, 0o644) }, pathTTL + 2*time.Millisecond, env, ""},
		{"executable again", func() { os.Chmod(in2, 0o755) }, pathTTL + 3*time.Millisecond, env, in2},
		{"another PATH is another entry", func() { install(d1) }, pathTTL + 4*time.Millisecond, []string{"PATH=" + d1}, in1},
		{"the last PATH of env counts", nil, pathTTL + 5*time.Millisecond, []string{"PATH=" + d1, "PATH=" + d2}, in2},
		{"an absolute name is not looked up", nil, pathTTL + 6*time.Millisecond, env, in2},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		name := "prog"
		if strings.HasPrefix(st.name, "an absolute") {
			name = in2
		}
		got, err := c.lookPath(name, st.env, now.Add(st.after))
		switch {
		case st.want == "" && !errors.Is(err, exec.ErrNotFound):
			t.Errorf("%s: got %q, %v; want exec.ErrNotFound", st.name, got, err)
		case st.want != "" && (err != nil || got != st.want):
			t.Errorf("%s: got %q, %v; want %q", st.name, got, err, st.want)
		}
	}

	// Bounded: past maxFoundPaths names, it starts over.
	c = pathCache{}
	for i := range maxFoundPaths + 1 {
		c.put(pathKey{"p", fmt.Sprint(i)}, foundPath{"/x", now})
	}
	if n := len(c.m); n != 1 {
		t.Errorf("%d names remembered after %d, want 1", n, maxFoundPaths+1)
	}
}

// openFDs counts this process's open descriptors, and those of them that
// are epoll instances.
func openFDs(t *testing.T) (all, epolls int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "anon_inode:[eventpoll]" {
			epolls++
		}
	}
	return len(ents), epolls
}

// TestExecutorReusesWithoutLeaks runs many attempts with ordered output
// through one Executor, one after another and then concurrently: each
// attempt's output reaches its own sink whole and in order (a pipe left in
// a reused epoll instance would feed another attempt's reader), the
// attempts reuse the epoll instances kept, which stay as many as ran at
// once, and Close leaves the process with the descriptors it had before.
func TestExecutorReusesWithoutLeaks(t *testing.T) {
	// What the first Run of the process sets up for good (the containment)
	// is not the Executor's.
	if res := Run(t.Context(), Command{Argv: []string{"true"}, Env: testEnv}); !res.OK() {
		t.Fatalf("run: %+v", res)
	}
	fds, epolls := openFDs(t)
	var e Executor
	attempt := func(id string) error {
		sink := &orderedSink{}
		out, errw := sink.streams()
		// One switch of streams: ordered exactly (see OrderedStream).
		res := e.Run(t.Context(), Command{Script: "echo 1-" + id + "; echo 2-" + id + " >&2",
			Env: testEnv, Stdout: out, Stderr: errw})
		if !res.OK() {
			return fmt.Errorf("attempt %s: %+v", id, res)
		}
		want := []string{"out 1-" + id, "err 2-" + id}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if !slices.Equal(sink.lines, want) {
			return fmt.Errorf("attempt %s logged %q, want %q", id, sink.lines, want)
		}
		return nil
	}
	kept := func() []*os.File {
		e.epolls.mu.Lock()
		defer e.epolls.mu.Unlock()
		return slices.Clone(e.epolls.free)
	}

	if err := attempt("first"); err != nil {
		t.Fatal(err)
	}
	first := kept()
	for i := range 100 {
		if err := attempt(fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := kept(); len(first) != 1 || !slices.Equal(got, first) {
		t.Errorf("epoll instances kept: %v after the first attempt, %v after 100 more; want the same one", first, got)
	}
	// One epoll instance kept and /dev/null open.
	if n, ne := openFDs(t); n != fds+2 || ne != epolls+1 {
		t.Errorf("%d descriptors (%d epoll) after serial attempts, want %d (%d)", n, ne, fds+2, epolls+1)
	}

	const workers, each = 4, 25
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := attempt(fmt.Sprintf("%d.%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(kept()); n < 1 || n > workers {
		t.Errorf("%d epoll instances kept after %d attempts at once, want 1 to %d", n, workers, workers)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, ne := openFDs(t); n != fds || ne != epolls {
		t.Errorf("%d descriptors (%d epoll) after Close, want %d (%d) as before", n, ne, fds, epolls)
	}
	// A Run after Close still works, and keeps nothing.
	if err := attempt("after close"); err != nil {
		t.Error(err)
	}
	if n, ne := openFDs(t); n != fds || ne != epolls {
		t.Errorf("%d descriptors (%d epoll) after a Run after Close, want %d (%d)", n, ne, fds, epolls)
	}
}

// TestStdinIsDevNull: a command without Stdin reads /dev/null, the one the
// Executor keeps open, in every attempt, and os/exec's own after Close.
func TestStdinIsDevNull(t *testing.T) {
	var e Executor
	defer e.Close()
	for i := range 3 {
		if i == 2 {
			e.Close()
		}
		var out syncBuffer
		res := e.Run(t.Context(), Command{Script: "readlink /proc/self/fd/0; cat; echo end", Env: testEnv, Stdout: &out})
		if !res.OK() || out.String() != "/dev/null\nend\n" {
			t.Errorf("attempt %d: %+v, output %q; want /dev/null, nothing read, end", i, res, out.String())
		}
	}
}
