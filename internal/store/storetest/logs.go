package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// rawChunk is a chunk of log text at offset, stored as it is.
func rawChunk(run int64, task string, offset int64, text string) store.LogChunk {
	return store.LogChunk{RunID: run, TaskID: task, Attempt: 1, Offset: offset, Length: int64(len(text)), Codec: store.LogRaw, Data: []byte(text)}
}

// chunkText concatenates what chunks hold from offset on.
func chunkText(t *testing.T, chunks []store.LogChunk, offset int64) string {
	t.Helper()
	var b strings.Builder
	for _, c := range chunks {
		if c.Codec != store.LogRaw {
			t.Fatalf("chunk at %d: codec %d", c.Offset, c.Codec)
		}
		skip := max(offset-c.Offset, 0)
		b.Write(c.Data[min(skip, int64(len(c.Data))):])
	}
	return b.String()
}

func testLogChunks(t *testing.T, s store.Store) {
	ctx := t.Context()
	run := mustCreate(t, s, newRun("logs", 1)).ID
	if cs, err := s.LogChunks(ctx, run, "a", 1, 0, 0); err != nil || len(cs) != 0 {
		t.Fatalf("LogChunks of no log = %v, %v", cs, err)
	}
	if _, ok, err := s.LogEnd(ctx, run, "a", 1); ok || err != nil {
		t.Fatalf("LogEnd of no log = %v, %v", ok, err)
	}
	// Written in two calls, the second a retry of the first chunk plus
	// two more, the last of them final and empty.
	if err := s.PutLogChunks(ctx, rawChunk(run, "a", 0, "one\ntwo\n")); err != nil {
		t.Fatal(err)
	}
	if end, ok, err := s.LogEnd(ctx, run, "a", 1); !ok || err != nil || end.End() != 8 || end.Final || end.Data != nil {
		t.Fatalf("LogEnd of an open log = %+v, %v, %v", end, ok, err)
	}
	final := rawChunk(run, "a", 14, "")
	final.Final = true
	retried := rawChunk(run, "a", 0, "XXX\nXXX\n")
	if err := s.PutLogChunks(ctx, retried, rawChunk(run, "a", 8, "three\n"), final); err != nil {
		t.Fatal(err)
	}
	end, ok, err := s.LogEnd(ctx, run, "a", 1)
	if !ok || err != nil || end.End() != 14 || !end.Final {
		t.Fatalf("LogEnd of a complete log = %+v, %v, %v", end, ok, err)
	}
	for _, tc := range []struct {
		offset int64
		want   string
		chunks int
	}{{0, "one\ntwo\nthree\n", 3}, {4, "two\nthree\n", 3}, {8, "three\n", 2}, {9, "hree\n", 2}, {14, "", 1}, {100, "", 1}} {
		cs, err := s.LogChunks(ctx, run, "a", 1, tc.offset, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := chunkText(t, cs, tc.offset); got != tc.want || len(cs) != tc.chunks || !cs[len(cs)-1].Final {
			t.Errorf("from %d: %q in %d chunks, want %q in %d, the last final", tc.offset, got, len(cs), tc.want, tc.chunks)
		}
	}
	// Other attempts, tasks and runs are other logs.
	other := rawChunk(run, "a", 0, "second attempt\n")
	other.Attempt = 2
	if err := s.PutLogChunks(ctx, other, rawChunk(run, "a.7", 0, "an item\n"), rawChunk(run+1, "a", 0, "another run\n")); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.LogChunks(ctx, run, "a.7", 1, 0, 0); err != nil || chunkText(t, cs, 0) != "an item\n" {
		t.Errorf("item log: %v, %v", cs, err)
	}
	if cs, err := s.LogChunks(ctx, run, "a", 2, 0, 0); err != nil || chunkText(t, cs, 0) != "second attempt\n" {
		t.Errorf("attempt 2: %v, %v", cs, err)
	}
	if cs, err := s.LogChunks(ctx, run, "a", 1, 0, 0); err != nil || chunkText(t, cs, 0) != "one\ntwo\nthree\n" {
		t.Errorf("attempt 1 after the others: %q, %v", chunkText(t, cs, 0), err)
	}
	// Binary data and the zstd codec go through untouched (the store does
	// not decode).
	bin := store.LogChunk{RunID: run, TaskID: "b", Attempt: 0, Length: 1000, Codec: store.LogZstd, Data: []byte{0, 0xff, 0x28, 0xb5, 0x2f, 0xfd, 0}, Final: true}
	if err := s.PutLogChunks(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.LogChunks(ctx, run, "b", 0, 10, 0); err != nil || len(cs) != 1 || !bytes.Equal(cs[0].Data, bin.Data) || cs[0].Length != 1000 || cs[0].Codec != store.LogZstd {
		t.Errorf("binary chunk: %+v, %v", cs, err)
	}
}

func testLogChunksPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	run := mustCreate(t, s, newRun("logs", 1)).ID
	var chunks []store.LogChunk
	var want strings.Builder
	for i := range store.MaxLogChunksLimit + 10 {
		line := fmt.Sprintf("line %d\n", i)
		chunks = append(chunks, rawChunk(run, "a", int64(want.Len()), line))
		want.WriteString(line)
	}
	if err := s.PutLogChunks(ctx, chunks...); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.LogChunks(ctx, run, "a", 1, 0, 0); err != nil || len(cs) != store.DefaultLogChunksLimit {
		t.Errorf("default limit: %d chunks, %v", len(cs), err)
	}
	if cs, err := s.LogChunks(ctx, run, "a", 1, 0, 100000); err != nil || len(cs) != store.MaxLogChunksLimit {
		t.Errorf("capped limit: %d chunks, %v", len(cs), err)
	}
	// Reading on from where each page ended gives the whole log.
	var got strings.Builder
	for off := int64(0); ; {
		cs, err := s.LogChunks(ctx, run, "a", 1, off, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			break
		}
		got.WriteString(chunkText(t, cs, off))
		off = cs[len(cs)-1].End()
	}
	if got.String() != want.String() {
		t.Errorf("paged read: %d bytes, want %d", got.Len(), want.Len())
	}
}

func testLogChunksRejects(t *testing.T, s store.Store) {
	ctx := t.Context()
	good := rawChunk(1, "a", 0, "x\n")
	for name, mod := range map[string]func(c *store.LogChunk){
		"no run":           func(c *store.LogChunk) { c.RunID = 0 },
		"no task":          func(c *store.LogChunk) { c.TaskID = "" },
		"negative attempt": func(c *store.LogChunk) { c.Attempt = -1 },
		"negative offset":  func(c *store.LogChunk) { c.Offset = -1 },
		"empty, not final": func(c *store.LogChunk) { c.Length, c.Data = 0, nil },
		"too long":         func(c *store.LogChunk) { c.Length, c.Codec = store.MaxLogChunk+1, store.LogZstd },
		"length mismatch":  func(c *store.LogChunk) { c.Length = 3 },
		"unknown codec":    func(c *store.LogChunk) { c.Codec = 7 },
	} {
		c := good
		mod(&c)
		if err := s.PutLogChunks(ctx, good, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Nothing of a refused batch is written.
	if cs, err := s.LogChunks(ctx, 1, "a", 1, 0, 0); err != nil || len(cs) != 0 {
		t.Errorf("after refused batches: %v, %v", cs, err)
	}
}

// testLogChunksFenced: the leader's chunks are written under its fence;
// once another server leads, the deposed one's are refused whole, a final
// chunk included, and the new leader's go on.
func testLogChunksFenced(t *testing.T, s store.Store) {
	ctx := t.Context()
	run := mustCreate(t, s, newRun("logs", 1)).ID
	if err := s.PutLogChunksFenced(ctx, store.Fence{Holder: "a", Term: 0}, rawChunk(run, "a", 0, "x\n")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("before any leader: %v, want ErrFenced", err)
	}
	a := mustAcquire(t, s, "a", t0)
	if err := s.PutLogChunksFenced(ctx, a.Fence(), rawChunk(run, "a", 0, "one\n")); err != nil {
		t.Fatalf("the leader's chunk: %v", err)
	}
	b := mustAcquire(t, s, "b", t0.Add(ttl))
	final := rawChunk(run, "a", 4, "two\n")
	final.Final = true
	for _, f := range []store.Fence{a.Fence(), {Holder: "b", Term: a.Term}, {Term: b.Term}} {
		if err := s.PutLogChunksFenced(ctx, f, final, rawChunk(run, "a", 8, "three\n")); !errors.Is(err, store.ErrFenced) {
			t.Errorf("with the stale fence %+v: %v, want ErrFenced", f, err)
		}
	}
	if end, ok, err := s.LogEnd(ctx, run, "a", 1); err != nil || !ok || end.End() != 4 || end.Final {
		t.Errorf("after the deposed leader's chunks: end %+v, %v, %v", end, ok, err)
	}
	if err := s.PutLogChunksFenced(ctx, b.Fence(), rawChunk(run, "a", 4, "two, from b\n")); err != nil {
		t.Fatalf("the new leader's chunk: %v", err)
	}
	if cs, err := s.LogChunks(ctx, run, "a", 1, 0, 0); err != nil || chunkText(t, cs, 0) != "one\ntwo, from b\n" {
		t.Errorf("the log: %v, %v", cs, err)
	}
}

func testConcurrentLogChunks(t *testing.T, s store.Store) {
	ctx := t.Context()
	run := mustCreate(t, s, newRun("logs", 1)).ID
	// Several writers, each its own logs, and each chunk written twice
	// (a retry racing the first write).
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				c := rawChunk(run, fmt.Sprintf("t%d", w), int64(i*4), fmt.Sprintf("%03d\n", i))
				for range 2 {
					if err := s.PutLogChunks(ctx, c); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range 4 {
		end, ok, err := s.LogEnd(ctx, run, fmt.Sprintf("t%d", w), 1)
		if err != nil || !ok || end.End() != 80 {
			t.Errorf("writer %d: end %+v, %v, %v", w, end, ok, err)
		}
	}
}

func testPruneTakesLogs(t *testing.T, s store.Store) {
	ctx := t.Context()
	nr := newRun("logs", 1)
	nr.Run.State, nr.Run.CreatedAt = engine.RunSucceeded, t0.Add(-time.Hour)
	old := mustCreate(t, s, nr)
	kept := mustCreate(t, s, newRun("logs", 1))
	for _, id := range []int64{old.ID, kept.ID} {
		if err := s.PutLogChunks(ctx, rawChunk(id, "a", 0, "x\n"), rawChunk(id, "a.3", 0, "item\n")); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := s.PruneRuns(ctx, t0, 10); err != nil || len(ids) != 1 || ids[0] != old.ID {
		t.Fatalf("PruneRuns = %v, %v; want [%d]", ids, err, old.ID)
	}
	for _, task := range []string{"a", "a.3"} {
		if _, ok, err := s.LogEnd(ctx, old.ID, task, 1); ok || err != nil {
			t.Errorf("log %s of the pruned run: %v, %v", task, ok, err)
		}
		if _, ok, err := s.LogEnd(ctx, kept.ID, task, 1); !ok || err != nil {
			t.Errorf("log %s of the kept run: %v, %v", task, ok, err)
		}
	}
}
