package logs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// forEachDB runs a test on a SQLite store and on a PostgreSQL one (skipped
// without PostgreSQL, except in CI).
func forEachDB(t *testing.T, fn func(t *testing.T, db store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tasuki.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		db, err := postgres.Open(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
}

// server is one server's log store: files of its own, the shared database.
func server(t *testing.T, db store.Store) *logs.Cluster { return serverAt(t, db, t.TempDir()) }

func readCluster(t *testing.T, c *logs.Cluster, k logs.Key, offset int64) string {
	t.Helper()
	r, err := c.Open(t.Context(), k, offset)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineWriter collects what Follow writes and says when a line arrives.
type lineWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	ch     chan struct{}
}

func newLineWriter() *lineWriter { return &lineWriter{ch: make(chan struct{}, 1000)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) == 0 || p[len(p)-1] != '\n' {
		return 0, fmt.Errorf("a write of %q: not whole lines", p)
	}
	w.writes++
	w.buf.Write(p)
	w.ch <- struct{}{}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until the follower received want.
func (w *lineWriter) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(w.String(), want) {
		select {
		case <-w.ch:
		case <-deadline:
			t.Fatalf("follower never got %q; got %q", want, w.String())
		}
	}
}

func newRun(t *testing.T, db store.Store) int64 {
	t.Helper()
	r, err := db.CreateRun(t.Context(), store.NewRun{
		Run:   store.Run{Pipeline: "p", Trigger: store.TriggerManual, Run: engine.Run{State: engine.RunRunning, Remaining: 1}, CreatedAt: time.Now()},
		Tasks: []store.TaskRow{{TaskID: "a", Task: engine.Task{State: engine.TaskRunning}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// TestClusterReadsAcrossServers: a log written on one server is read
// whole, by range and live from another, and is not on the writer's disk
// once it is complete.
func TestClusterReadsAcrossServers(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		a, b := server(t, db), server(t, db)
		k := logs.Key{RunID: newRun(t, db), TaskID: "a", Attempt: 1}

		w, err := a.Create(ctx, k, []string{"hunter2"})
		if err != nil {
			t.Fatal(err)
		}
		fw := newLineWriter()
		followed := make(chan error, 1)
		var end int64
		go func() {
			var err error
			end, err = b.Follow(ctx, k, 0, fw)
			followed <- err
		}()
		fmt.Fprintln(w.Stdout(), "first line, password hunter2")
		fw.waitFor(t, "first line, password ***\n")
		fmt.Fprintln(w.Stderr(), "second line")
		fw.waitFor(t, " err second line\n")
		select {
		case err := <-followed:
			t.Fatalf("follow ended while the log is open: %v", err)
		default:
		}
		// A whole chunk's worth, compressible.
		big := strings.Repeat("all work and no play makes jack a dull boy\n", 50000)
		io.WriteString(w.Stdout(), big)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-followed; err != nil {
			t.Fatal(err)
		}
		whole := readCluster(t, b, k, 0)
		if fw.String() != whole || end != int64(len(whole)) {
			t.Errorf("follow got %d bytes, ending at %d; the log has %d", len(fw.String()), end, len(whole))
		}
		if n := strings.Count(whole, "jack a dull boy"); n != 50000 {
			t.Errorf("the log has %d lines of the big write, want 50000", n)
		}
		if size, err := b.Size(ctx, k); err != nil || size != int64(len(whole)) {
			t.Errorf("Size = %d, %v; want %d", size, err, len(whole))
		}
		for _, off := range []int64{1, 10, int64(len(whole)) - 100, int64(len(whole))} {
			if got := readCluster(t, b, k, off); got != whole[off:] {
				t.Errorf("from %d: %d bytes, want %d", off, len(got), len(whole)-int(off))
			}
		}
		// Compressed in the database: the repeated lines take far less.
		var stored int64
		for off := int64(0); ; {
			cs, err := db.LogChunks(ctx, k.RunID, k.TaskID, k.Attempt, off, 0)
			if err != nil || len(cs) == 0 {
				break
			}
			for _, c := range cs {
				stored += int64(len(c.Data))
			}
			off = cs[len(cs)-1].End()
			if cs[len(cs)-1].Final {
				break
			}
		}
		if stored == 0 || stored > int64(len(whole))/5 {
			t.Errorf("%d bytes stored for a log of %d", stored, len(whole))
		}
		// The writer's file is gone; the log is in the database alone.
		if n, err := a.Local.Size(ctx, k); err != nil || n != 0 {
			t.Errorf("the writer's file: %d bytes, %v", n, err)
		}
		if got := readCluster(t, a, k, 0); got != whole {
			t.Errorf("the writer reads %d bytes, want %d", len(got), len(whole))
		}
		// One writer per log, across servers.
		if _, err := b.Create(ctx, k, nil); !errors.Is(err, fs.ErrExist) {
			t.Errorf("a second Create on another server: %v", err)
		}
		// A follower that starts late gets it all at once.
		late := newLineWriter()
		if _, err := b.Follow(ctx, k, 5, late); err != nil || late.String() != whole[5:] {
			t.Errorf("late follow: %d bytes, %v", len(late.String()), err)
		}
	})
}

// TestClusterSyncAndDeadWriter: a sink's Sync puts what it was given in
// the database at once (the broker acknowledges a worker's append only
// then); a writer that dies without closing leaves what it synced, and a
// follower ends once the attempt is recorded ended.
func TestClusterSyncAndDeadWriter(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		a, b := server(t, db), server(t, db)
		a.Ship = time.Hour // only Sync ships
		var ended atomic.Bool
		b.Ended = func(context.Context, logs.Key) bool { return ended.Load() }
		k := logs.Key{RunID: newRun(t, db), TaskID: "a", Attempt: 2}
		sink, err := a.Sink(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		line := "2026-01-02T03:04:05Z out synced\n"
		sink.Write([]byte(line))
		if err := sink.(logs.Syncer).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if got := readCluster(t, b, k, 0); got != line {
			t.Fatalf("after Sync another server reads %q", got)
		}
		sink.Write([]byte("2026-01-02T03:04:06Z out never synced\n"))
		// The writer's server dies here: the sink is never closed.
		fw := newLineWriter()
		done := make(chan error, 1)
		go func() { _, err := b.Follow(ctx, k, 0, fw); done <- err }()
		fw.waitFor(t, line)
		ended.Store(true)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if fw.String() != line {
			t.Errorf("follow of a dead writer's log: %q", fw.String())
		}
	})
}

// TestClusterLimit: the database holds what the bounded file holds, the
// first and last parts with the lines saying what was dropped.
func TestClusterLimit(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		a, b := server(t, db), server(t, db)
		a.Local.Limit = 64 << 10
		k := logs.Key{RunID: newRun(t, db), TaskID: "a", Attempt: 1}
		w, err := a.Create(ctx, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20000 {
			fmt.Fprintf(w.Stdout(), "line %d\n", i)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got := readCluster(t, b, k, 0)
		if len(got) > 64<<10 {
			t.Errorf("%d bytes kept, over the limit", len(got))
		}
		for _, want := range []string{" out line 0\n", " log log limit of 64 KiB reached", " lines (", "dropped here\n", " out line 19999\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("the log lacks %q", want)
			}
		}
	})
}

// TestClusterItemsAndLocal: the whole logs of map items are written in
// one statement and read anywhere; a log the database lacks but the local
// files have (written before) is read from them.
func TestClusterItemsAndLocal(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		a, b := server(t, db), server(t, db)
		run := newRun(t, db)
		var wholes []logs.Whole
		for i := range 100 {
			wholes = append(wholes, logs.Whole{Key: logs.Key{RunID: run, TaskID: logs.ItemTask("m", i), Attempt: 1},
				Data: fmt.Appendf(nil, "2026-01-02T03:04:05Z out item %d\n", i)})
		}
		wholes = append(wholes, logs.Whole{Key: logs.Key{RunID: run, TaskID: "a", Attempt: 1}, Data: []byte("2026-01-02T03:04:05Z out a task\n")})
		if err := a.WriteWhole(ctx, wholes); err != nil {
			t.Fatal(err)
		}
		// The writing server reads the items' logs at once, from its queue;
		// another follows one until it arrives.
		if got := readCluster(t, a, wholes[5].Key, 0); got != string(wholes[5].Data) {
			t.Errorf("item 5 on the writing server: %q", got)
		}
		if n, err := a.Size(ctx, wholes[5].Key); err != nil || n != int64(len(wholes[5].Data)) {
			t.Errorf("Size of item 5 on the writing server: %d, %v", n, err)
		}
		fw := newLineWriter()
		b.Ended = func(context.Context, logs.Key) bool { return true }
		if _, err := b.Follow(ctx, wholes[7].Key, 0, fw); err != nil || fw.String() != string(wholes[7].Data) {
			t.Errorf("follow of a queued item from another server: %q, %v", fw.String(), err)
		}
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for _, w := range []logs.Whole{wholes[0], wholes[99], wholes[100]} {
			if got := readCluster(t, b, w.Key, 0); got != string(w.Data) {
				t.Errorf("%s: %q", w.Key, got)
			}
			fw := newLineWriter()
			if _, err := b.Follow(ctx, w.Key, 0, fw); err != nil || fw.String() != string(w.Data) {
				t.Errorf("follow %s: %q, %v", w.Key, fw.String(), err)
			}
		}
		// Written by Files alone (before this server used the database).
		old := logs.Key{RunID: run, TaskID: "old", Attempt: 1}
		w, err := a.Local.Create(ctx, old, nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(w.Stdout(), "from before")
		w.Close()
		if got := readCluster(t, a, old, 0); !strings.HasSuffix(got, " out from before\n") {
			t.Errorf("a local log: %q", got)
		}
		fw = newLineWriter()
		if _, err := a.Follow(ctx, old, 0, fw); err != nil || !strings.HasSuffix(fw.String(), " out from before\n") {
			t.Errorf("follow a local log: %q, %v", fw.String(), err)
		}
	})
}

// benchLines is 64 KiB of log lines, about what a busy task writes between
// two of a worker's batches.
func benchLines() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 64<<10; i++ {
		fmt.Fprintf(&b, "2026-01-02T03:04:05.%09dZ out processed record %d of batch %d: ok (%d ms)\n", i*7919, i, i/100, i%37)
	}
	return b.Bytes()
}

// BenchmarkLogAppend measures a remote worker's append as the broker makes
// it: write a batch of lines to the log's sink, then make it durable where
// every server reads it (Cluster: compress, insert a chunk; Files: the
// write alone). stored/raw is the size in the database over the log's.
func BenchmarkLogAppend(b *testing.B) {
	data := benchLines()
	run := func(b *testing.B, ls logs.Store, db store.Store) {
		ctx := b.Context()
		b.SetBytes(int64(len(data)))
		var k logs.Key
		var sink io.WriteCloser
		written := 0
		for i := 0; b.Loop(); i++ {
			if i%100 == 0 { // a new log every 6.4 MiB
				if sink != nil {
					sink.Close()
				}
				k = logs.Key{RunID: 1, TaskID: "t", Attempt: i/100 + 1}
				var err error
				if sink, err = ls.Sink(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
			sink.Write(data)
			written += len(data)
			if s, ok := sink.(logs.Syncer); ok {
				if err := s.Sync(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		sink.Close()
		if db != nil {
			var stored int64
			for a := 1; a <= k.Attempt; a++ {
				for off := int64(0); ; {
					cs, err := db.LogChunks(ctx, 1, "t", a, off, 0)
					if err != nil || len(cs) == 0 {
						break
					}
					for _, c := range cs {
						stored += int64(len(c.Data))
					}
					off = cs[len(cs)-1].End()
					if cs[len(cs)-1].Final {
						break
					}
				}
			}
			b.ReportMetric(float64(stored)/float64(written), "stored/raw")
		}
	}
	b.Run("files", func(b *testing.B) { run(b, logs.NewFiles(b.TempDir()), nil) })
	// -fenced: as a server writes, each ship checking its leadership
	// (Cluster.Fenced).
	for _, name := range []string{"sqlite", "postgres", "postgres-fenced"} {
		b.Run("cluster-"+name, func(b *testing.B) {
			var db store.Store
			var err error
			if name == "sqlite" {
				db, err = sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "tasuki.db"))
			} else {
				db, err = postgres.Open(context.Background(), pgtest.DSN(b))
			}
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			c := logs.NewCluster(logs.NewFiles(b.TempDir()), db, nil)
			if name == "postgres-fenced" {
				l, err := db.AcquireLeadership(b.Context(), "bench", "http://bench", time.Hour, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				c.Fenced = func(ctx context.Context, chunks ...logs.Chunk) error {
					return db.PutLogChunksFenced(ctx, l.Fence(), chunks...)
				}
			}
			run(b, c, db)
		})
	}
}

// BenchmarkItemLogs measures the whole logs of map items that a batch of
// worker reports carries (100 items of one short line each) written in
// one call: packs on disk, or rows in the database (queued, and written
// 1,000 at a time).
func BenchmarkItemLogs(b *testing.B) {
	run := func(b *testing.B, ls logs.Store) {
		ctx := b.Context()
		item := 0
		for b.Loop() {
			wholes := make([]logs.Whole, 100)
			for i := range wholes {
				wholes[i] = logs.Whole{Key: logs.Key{RunID: 1, TaskID: logs.ItemTask("m", item), Attempt: 1},
					Data: fmt.Appendf(nil, "2026-01-02T03:04:05.000000001Z out item %d done\n", item)}
				item++
			}
			if err := ls.WriteWhole(ctx, wholes); err != nil {
				b.Fatal(err)
			}
			if c, ok := ls.(*logs.Cluster); ok && item%1000 == 0 {
				// What the flusher writes in one statement at 10,000
				// items a second.
				if err := c.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(item), "ns/item")
	}
	b.Run("files", func(b *testing.B) { run(b, logs.NewFiles(b.TempDir())) })
	b.Run("cluster-postgres", func(b *testing.B) {
		db, err := postgres.Open(context.Background(), pgtest.DSN(b))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		c := logs.NewCluster(logs.NewFiles(b.TempDir()), db, nil)
		defer c.Close(context.Background()) // before the database
		run(b, c)
	})
}

// TestClusterItemsConcurrent: item logs written by many calls at once (a
// map's slots reporting together) are read at once on the server that
// took them, and everywhere once flushed.
func TestClusterItemsConcurrent(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		a, b := server(t, db), server(t, db)
		run := newRun(t, db)
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := range 20 {
					item := g*100 + i
					k := logs.Key{RunID: run, TaskID: logs.ItemTask("m", item), Attempt: 1}
					data := fmt.Appendf(nil, "2026-01-02T03:04:05Z out item %d\n", item)
					if err := a.WriteWhole(ctx, []logs.Whole{{Key: k, Data: data}}); err != nil {
						t.Error(err)
						return
					}
					if got := readCluster(t, a, k, 0); got != string(data) {
						t.Errorf("item %d right after its write: %q", item, got)
					}
				}
			})
		}
		wg.Wait()
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for g := range 16 {
			item := g*100 + 19
			k := logs.Key{RunID: run, TaskID: logs.ItemTask("m", item), Attempt: 1}
			if got := readCluster(t, b, k, 0); got != fmt.Sprintf("2026-01-02T03:04:05Z out item %d\n", item) {
				t.Errorf("item %d from another server: %q", item, got)
			}
		}
	})
}

// TestClusterResume: a server takes over the log of an attempt whose
// server died without closing it. The log resumes at the end of what the
// dead server synced, a line cut short included, and without what it had
// not; every server reads the log whole and at any offset across the
// takeover, and follows it live across it, the new writer included while
// its file holds bytes not shipped; the final chunk is written at the end,
// after which the log cannot be resumed. A file the new writer's disk had
// of the log (from its own earlier life) is never read.
func TestClusterResume(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		bdir := t.TempDir()
		a, b, c := server(t, db), serverAt(t, db, bdir), server(t, db)
		a.Ship = time.Hour // only Sync ships
		k := logs.Key{RunID: newRun(t, db), TaskID: "a", Attempt: 1}

		sink, err := a.Sink(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		line1, cut := "2026-01-02T03:04:05Z out line 1\n", "2026-01-02T03:04:06Z out li"
		io.WriteString(sink, line1+cut)
		if err := sink.(logs.Syncer).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		io.WriteString(sink, "ne 2 never synced\n")
		// a dies here: its sink is never closed.
		fromC := newLineWriter()
		cDone := make(chan error, 1)
		go func() { _, err := c.Follow(ctx, k, 0, fromC); cDone <- err }()
		fromC.waitFor(t, line1)

		stale := filepath.Join(bdir, strconv.FormatInt(k.RunID, 10), "a.1.log")
		if err := os.MkdirAll(filepath.Dir(stale), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stale, []byte("stale\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		rs, off, err := b.Resume(ctx, k)
		if err != nil || off != int64(len(line1+cut)) {
			t.Fatalf("Resume: %d, %v; want %d", off, err, len(line1+cut))
		}
		if _, _, err := b.Resume(ctx, k); !errors.Is(err, fs.ErrExist) {
			t.Errorf("a second Resume: %v, want fs.ErrExist", err)
		}
		// The new writer follows from the offset it resumed at, where its
		// file starts.
		fromB := newLineWriter()
		bDone := make(chan error, 1)
		go func() { _, err := b.Follow(ctx, k, off, fromB); bDone <- err }()
		line2, line3 := "2026-01-02T03:04:06Z out line 2\n", "2026-01-02T03:04:07Z out line 3\n"
		io.WriteString(rs, "ne 2\n"+line3)
		whole := line1 + line2 + line3
		fromC.waitFor(t, line3)
		fromB.waitFor(t, line3)
		if err := rs.(logs.Syncer).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]*logs.Cluster{"the dead writer": a, "the new writer": b, "another server": c} {
			for _, at := range []int64{0, 3, off - 2, off, off + 2, int64(len(whole))} {
				if got := readCluster(t, s, k, at); got != whole[at:] {
					t.Errorf("%s reads from %d: %q, want %q", name, at, got, whole[at:])
				}
			}
			if n, err := s.Size(ctx, k); err != nil || n != int64(len(whole)) {
				t.Errorf("%s: Size %d, %v; want %d", name, n, err, len(whole))
			}
		}
		if err := rs.Close(); err != nil {
			t.Fatal(err)
		}
		for name, done := range map[string]chan error{"another server": cDone, "the new writer": bDone} {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("follow on %s: %v", name, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the follow on %s did not end with the log", name)
			}
		}
		if fromC.String() != whole || fromB.String() != whole[off:] {
			t.Errorf("followed on another server %q, on the new writer %q; want %q", fromC.String(), fromB.String(), whole)
		}
		if end, ok, err := db.LogEnd(ctx, k.RunID, k.TaskID, k.Attempt); err != nil || !ok || !end.Final || end.End() != int64(len(whole)) {
			t.Errorf("the log's last chunk: %+v, %v, %v; want final at %d", end, ok, err, len(whole))
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(stale), "*")); len(left) > 0 {
			t.Errorf("files left on the new writer's disk: %v", left)
		}
		if _, _, err := c.Resume(ctx, k); !errors.Is(err, logs.ErrComplete) {
			t.Errorf("Resume of a complete log: %v, want ErrComplete", err)
		}
	})
}

// TestClusterResumeNew: a log the database has nothing of resumes at 0,
// in the file where the store reads it until it is shipped; one whose
// resumed writer wrote nothing more ends with a final chunk all the same.
func TestClusterResumeNew(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		a, b := server(t, db), server(t, db)
		a.Ship = time.Hour
		run := newRun(t, db)
		k := logs.Key{RunID: run, TaskID: "a", Attempt: 1}
		sink, off, err := a.Resume(ctx, k)
		if err != nil || off != 0 {
			t.Fatalf("Resume of a log never written: %d, %v", off, err)
		}
		line := "2026-01-02T03:04:05Z out line 1\n"
		io.WriteString(sink, line)
		if got := readCluster(t, a, k, 0); got != line {
			t.Errorf("the writer reads %q before shipping", got)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		if got := readCluster(t, b, k, 0); got != line {
			t.Errorf("another server reads %q", got)
		}

		// Resumed, then ended with nothing more.
		k2 := logs.Key{RunID: run, TaskID: "a", Attempt: 2}
		sink, err = a.Sink(ctx, k2)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(sink, line)
		if err := sink.(logs.Syncer).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		rs, off, err := b.Resume(ctx, k2)
		if err != nil || off != int64(len(line)) {
			t.Fatalf("Resume: %d, %v", off, err)
		}
		if err := rs.Close(); err != nil {
			t.Fatal(err)
		}
		if end, ok, err := db.LogEnd(ctx, run, "a", 2); err != nil || !ok || !end.Final || end.End() != int64(len(line)) {
			t.Errorf("the last chunk: %+v, %v, %v", end, ok, err)
		}
		fw := newLineWriter()
		if _, err := a.Follow(ctx, k2, 0, fw); err != nil || fw.String() != line {
			t.Errorf("follow of the ended log: %q, %v", fw.String(), err)
		}
	})
}

// TestClusterResumeHeadFull: a log whose writer died past its head resumes
// at the head's end; what comes is its tail, added at the end.
func TestClusterResumeHeadFull(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		a, b := server(t, db), server(t, db)
		a.Ship = time.Hour
		a.Local.Limit, b.Local.Limit = 16<<10, 16<<10
		k := logs.Key{RunID: newRun(t, db), TaskID: "a", Attempt: 1}
		sink, err := a.Sink(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			fmt.Fprintf(sink, "2026-01-02T03:04:05Z out line %06d\n", i)
		}
		if err := sink.(logs.Syncer).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		head := readCluster(t, b, k, 0)
		noteAt := strings.LastIndex(strings.TrimSuffix(head, "\n"), "\n") + 1
		if !strings.Contains(head[noteAt:], " log log limit of 16 KiB reached") {
			t.Fatalf("the log does not end with the head's note: %q", head[noteAt:])
		}
		rs, off, err := b.Resume(ctx, k)
		if err != nil || off != int64(noteAt) {
			t.Fatalf("Resume: %d, %v; want %d", off, err, noteAt)
		}
		io.WriteString(rs, "2026-01-02T03:04:06Z out the end\n")
		if err := rs.Close(); err != nil {
			t.Fatal(err)
		}
		got := readCluster(t, a, k, 0)
		if !strings.HasPrefix(got, head) || !strings.HasSuffix(got, " dropped here\n2026-01-02T03:04:06Z out the end\n") {
			t.Errorf("after the head: %q", got[min(len(head), len(got)):])
		}
	})
}

// serverAt is a server with its files in dir.
func serverAt(t *testing.T, db store.Store, dir string) *logs.Cluster {
	c := logs.NewCluster(logs.NewFiles(dir), db, nil)
	c.Ship, c.Poll, c.ItemFlush = 20*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestClusterDeposedWriter: with its chunks fenced by its leadership, a
// writer whose server was deposed while frozen and woke up neither adds to
// the log its successor resumed nor ends it: its Sync fails (its worker
// is not told the part was taken), its Close gives up at once.
func TestClusterDeposedWriter(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		now := time.Now()
		lead := func(c *logs.Cluster, holder string, at time.Time) {
			l, err := db.AcquireLeadership(ctx, holder, "http://"+holder, time.Minute, at)
			if err != nil || l.Holder != holder {
				t.Fatalf("%s leads: %+v, %v", holder, l, err)
			}
			c.Fenced = func(ctx context.Context, chunks ...logs.Chunk) error {
				err := db.PutLogChunksFenced(ctx, l.Fence(), chunks...)
				if errors.Is(err, store.ErrFenced) {
					err = fmt.Errorf("%w: %w", logs.ErrDeposed, err)
				}
				return err
			}
		}
		a, b := server(t, db), server(t, db)
		a.Ship = time.Hour
		lead(a, "a", now)
		k := logs.Key{RunID: newRun(t, db), TaskID: "a", Attempt: 1}
		sink, err := a.Sink(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		line1, line2 := "2026-01-02T03:04:05Z out line 1\n", "2026-01-02T03:04:06Z out line 2\n"
		io.WriteString(sink, line1)
		if err := sink.(logs.Syncer).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		// a freezes; b takes over and goes on with the log.
		lead(b, "b", now.Add(2*time.Minute))
		rs, off, err := b.Resume(ctx, k)
		if err != nil || off != int64(len(line1)) {
			t.Fatalf("Resume: %d, %v", off, err)
		}
		// a wakes up: its worker's part, sent before, is written and synced.
		io.WriteString(sink, line2)
		if err := sink.(logs.Syncer).Sync(ctx); !errors.Is(err, logs.ErrDeposed) {
			t.Errorf("the deposed writer's Sync: %v, want ErrDeposed", err)
		}
		began := time.Now()
		if err := sink.Close(); !errors.Is(err, logs.ErrDeposed) {
			t.Errorf("the deposed writer's Close: %v, want ErrDeposed", err)
		}
		if took := time.Since(began); took > 10*time.Second {
			t.Errorf("the deposed writer's Close took %s: tried again", took)
		}
		if end, ok, err := db.LogEnd(ctx, k.RunID, k.TaskID, k.Attempt); err != nil || !ok || end.Final || end.End() != int64(len(line1)) {
			t.Errorf("after the deposed writer: end %+v, %v, %v", end, ok, err)
		}
		// The worker sends its part to b.
		io.WriteString(rs, line2)
		if err := rs.Close(); err != nil {
			t.Fatal(err)
		}
		if got := readCluster(t, a, k, 0); got != line1+line2 {
			t.Errorf("the log: %q", got)
		}
	})
}

// awayDB is a database that does not answer while away is set.
type awayDB struct {
	store.Store
	away atomic.Bool
}

var errAway = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func (d *awayDB) LogEnd(ctx context.Context, run int64, task string, attempt int) (logs.Chunk, bool, error) {
	if d.away.Load() {
		return logs.Chunk{}, false, errAway
	}
	return d.Store.LogEnd(ctx, run, task, attempt)
}

func (d *awayDB) PutLogChunks(ctx context.Context, chunks ...logs.Chunk) error {
	if d.away.Load() {
		return errAway
	}
	return d.Store.PutLogChunks(ctx, chunks...)
}

// TestClusterWholeLogWhileDatabaseAway: the whole log of a task that a
// worker's report brings while the database does not answer is queued, not
// dropped: the server reads it at once, a Flush fails while the database
// is away and writes it once it is back, and then every server reads it
// (the chaos soak found such a log lost across a PostgreSQL restart).
func TestClusterWholeLogWhileDatabaseAway(t *testing.T) {
	forEachDB(t, func(t *testing.T, db store.Store) {
		ctx := t.Context()
		away := &awayDB{Store: db}
		a := logs.NewCluster(logs.NewFiles(t.TempDir()), away, nil)
		a.ItemFlush = time.Hour // only the Flush calls below write
		t.Cleanup(func() { a.Close(context.Background()) })
		b := server(t, db)
		k := logs.Key{RunID: newRun(t, db), TaskID: "a", Attempt: 1}
		data := "2026-01-02T03:04:05Z out begin\n2026-01-02T03:04:06Z out done\n"
		away.away.Store(true)
		if err := a.WriteWhole(ctx, []logs.Whole{{Key: k, Data: []byte(data)}}); err != nil {
			t.Fatalf("WriteWhole while the database is away: %v", err)
		}
		if got := readCluster(t, a, k, 0); got != data {
			t.Errorf("the writing server reads %q", got)
		}
		if err := a.Flush(ctx); err == nil {
			t.Errorf("Flush while the database is away: no error")
		}
		away.away.Store(false)
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := readCluster(t, b, k, 0); got != data {
			t.Errorf("another server reads %q once the database is back", got)
		}
		if end, ok, err := db.LogEnd(ctx, k.RunID, k.TaskID, k.Attempt); err != nil || !ok || !end.Final {
			t.Errorf("the log's end in the database: %+v, %v, %v", end, ok, err)
		}
	})
}
