package logs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestWriteWholePacksItemLogs: the whole logs of map items go into one
// pack per map, not a file each, and read back through Open, Size and
// Follow exactly as files do, at any offset.
func TestWriteWholePacksItemLogs(t *testing.T) {
	f := newFiles(t, noPoll)
	ctx := t.Context()
	var batch []Whole
	for i := range 50 {
		batch = append(batch, Whole{Key: Key{RunID: 7, TaskID: ItemTask("each", i), Attempt: 1}, Data: fmt.Appendf(nil, "2026-12-07T00:00:00Z out item %d\n", i)})
	}
	batch = append(batch, Whole{Key: Key{RunID: 7, TaskID: ItemTask("each", 3), Attempt: 2}, Data: []byte("2026-12-07T00:00:00Z err retried\n")})
	batch = append(batch, Whole{Key: Key{RunID: 7, TaskID: ItemTask("each", 60), Attempt: 1}}) // empty: no log
	if err := f.WriteWhole(ctx, batch[:20]); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteWhole(ctx, batch[20:]); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(f.dir, "7"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[each.items.idx each.items.pack]" {
		t.Fatalf("files of the run: %v, want only the pack and its index", names)
	}
	for _, w := range batch {
		want := string(w.Data)
		if want == "" {
			if got := readAll(t, f, w.Key, 0); got != "" {
				t.Errorf("%s: an empty whole log read %q", w.Key, got)
			}
			continue
		}
		if got := readAll(t, f, w.Key, 0); got != want {
			t.Errorf("%s: Open read %q, want %q", w.Key, got, want)
		}
		if got := readAll(t, f, w.Key, 5); got != want[5:] {
			t.Errorf("%s at 5: Open read %q, want %q", w.Key, got, want[5:])
		}
		size, err := f.Size(ctx, w.Key)
		if err != nil || size != int64(len(want)) {
			t.Errorf("%s: Size %d %v, want %d", w.Key, size, err, len(want))
		}
		cw := newChanWriter(t)
		if r := await(t, follow(ctx, f, w.Key, 0, cw)); r.err != nil || r.offset != int64(len(want)) {
			t.Errorf("%s: Follow ended at %d %v, want %d", w.Key, r.offset, r.err, len(want))
		}
	}
	if _, err := f.Open(ctx, batch[0].Key, 1000); err == nil {
		t.Error("Open past the end of a packed log: no error")
	}
	// An item never written reads as empty, like a task that printed
	// nothing; a plain task's whole log is a file of its own.
	if got := readAll(t, f, Key{RunID: 7, TaskID: ItemTask("each", 99), Attempt: 1}, 0); got != "" {
		t.Errorf("an item without a log read %q", got)
	}
	plain := Whole{Key: Key{RunID: 7, TaskID: "report", Attempt: 1}, Data: []byte("x out done\n")}
	if err := f.WriteWhole(ctx, []Whole{plain}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.path(plain.Key)); err != nil {
		t.Errorf("a plain task's whole log has no file: %v", err)
	}
	if err := f.WriteWhole(ctx, []Whole{plain}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a plain task's log written twice: %v, want fs.ErrExist", err)
	}
}

// TestPackIndexCutShort: a crash that cut the index's last line leaves
// the logs before it readable and the cut one absent, not garbled.
func TestPackIndexCutShort(t *testing.T) {
	f := newFiles(t, noPoll)
	ctx := t.Context()
	a := Whole{Key: Key{RunID: 1, TaskID: ItemTask("m", 0), Attempt: 1}, Data: []byte("t out a\n")}
	b := Whole{Key: Key{RunID: 1, TaskID: ItemTask("m", 1), Attempt: 1}, Data: []byte("t out b\n")}
	if err := f.WriteWhole(ctx, []Whole{a, b}); err != nil {
		t.Fatal(err)
	}
	_, idx := f.packPaths(1, "m")
	data, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idx, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, a.Key, 0); got != string(a.Data) {
		t.Errorf("a: %q", got)
	}
	if got := readAll(t, f, b.Key, 0); got != "" {
		t.Errorf("b, whose index line was cut: %q, want nothing", got)
	}
	// The next batch after the cut starts on a line of its own: the cut
	// line is skipped, not joined to the new one (which would give item
	// 2's log to another item).
	c := Whole{Key: Key{RunID: 1, TaskID: ItemTask("m", 2), Attempt: 1}, Data: []byte("t out c\n")}
	if err := f.WriteWhole(ctx, []Whole{c}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, c.Key, 0); got != string(c.Data) {
		t.Errorf("c, written after the cut line: %q", got)
	}
	for _, item := range []int{12, 21} {
		if got := readAll(t, f, Key{RunID: 1, TaskID: ItemTask("m", item), Attempt: 1}, 0); got != "" {
			t.Errorf("item %d, never written, reads %q", item, got)
		}
	}
	// Garbage lines are skipped too.
	if err := os.WriteFile(idx, append(data[:len(data):len(data)], "x y\n1 2 3\n-1 1 0 4\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, b.Key, 0); got != string(b.Data) {
		t.Errorf("b after garbage lines: %q", got)
	}
}

// TestFollowWakesOnWholeLog: a follower waiting for an item's log that
// arrives whole gets it and finishes, woken by the write; and one that
// only learns the attempt ended (the store) after the pack was written
// still finds it there.
func TestFollowWakesOnWholeLog(t *testing.T) {
	f := newFiles(t, noPoll)
	k := Key{RunID: 3, TaskID: ItemTask("m", 5), Attempt: 1}
	cw := newChanWriter(t)
	done := follow(t.Context(), f, k, 0, cw)
	waitFor(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.topics[k] != nil
	})
	if err := f.WriteWhole(t.Context(), []Whole{{Key: k, Data: []byte(packStamp + " out one\n" + packStamp + " out two\n")}}); err != nil {
		t.Fatal(err)
	}
	if got := cw.next(t); !equal(got, []string{"out one", "out two"}) {
		t.Fatalf("got %q", got)
	}
	if r := await(t, done); r.err != nil || r.offset != int64(2*len(packStamp+" out one\n")) {
		t.Errorf("Follow: %d %v", r.offset, r.err)
	}

	// Another process's writer (no wake-up here) and a store that says
	// the attempt ended: the pack is read before giving up.
	other := NewFiles(f.dir)
	other.poll = noPoll
	var ended atomic.Bool
	other.Ended = func(context.Context, Key) bool { return ended.Load() }
	k2 := Key{RunID: 3, TaskID: ItemTask("m", 6), Attempt: 1}
	if err := f.WriteWhole(t.Context(), []Whole{{Key: k2, Data: []byte(packStamp + " out late\n")}}); err != nil {
		t.Fatal(err)
	}
	ended.Store(true)
	cw2 := newChanWriter(t)
	if r := await(t, follow(t.Context(), other, k2, 0, cw2)); r.err != nil || r.offset != int64(len(packStamp+" out late\n")) {
		t.Errorf("Follow of an ended item: %d %v", r.offset, r.err)
	}
	if got := cw2.next(t); !equal(got, []string{"out late"}) {
		t.Fatalf("got %q", got)
	}
}

const packStamp = "2026-12-07T00:00:00Z"

// BenchmarkWriteWhole is the server's cost of keeping the logs of map
// items that remote workers send with their reports, 32 per call.
func BenchmarkWriteWhole(b *testing.B) {
	f := NewFiles(b.TempDir())
	line := []byte("2026-12-07T00:00:00.000000000Z out GET http://127.0.0.1/noop: 204 No Content in 0s\n")
	batch := make([]Whole, 32)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range batch {
			batch[j] = Whole{Key: Key{RunID: 1, TaskID: ItemTask("each", i*32+j), Attempt: 1}, Data: line}
		}
		if err := f.WriteWhole(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32)/1000, "µs/log")
}
