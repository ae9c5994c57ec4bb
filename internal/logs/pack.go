package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Whole is the complete log of an attempt that has ended, handed over in
// one piece (a remote worker sends a short attempt's log with its report).
type Whole struct {
	Key  Key
	Data []byte
}

// WriteWhole stores the logs of ended attempts. The caller writes each
// key once and only for an attempt whose log was not started with Create
// or Sink (the lease broker knows both); a log of a task that is not a map
// item is refused with fs.ErrExist like Create if it exists.
//
// The logs of map items go into one pack per map rather than a file each:
// a map of 100,000 short items would otherwise create 100,000 files, and
// creating a file (a temporary file, a lock, a link, a removal) was half
// of a server's CPU per remotely run item. A pack is two append-only
// files in the run's directory, TASK.items.pack with the logs one after
// the other and TASK.items.idx with a line "ITEM ATTEMPT OFFSET LENGTH"
// for each, written after the bytes it points at; a line cut short by a
// crash is ignored. Open, Size and Follow find a log in its pack when it
// has no file. Other logs get their file as if written through Create.
func (f *Files) WriteWhole(ctx context.Context, logs []Whole) error {
	type group struct {
		run  int64
		task string
		logs []Whole
	}
	var groups []*group
	var errs []error // one log that cannot be kept does not cost the others
	byPack := map[string]*group{}
	for _, w := range logs {
		if err := w.Key.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(w.Data) == 0 {
			continue // an empty log is no log
		}
		task, _, ok := ParseItemTask(w.Key.TaskID)
		if !ok {
			if err := f.writeFile(ctx, w); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		id := strconv.FormatInt(w.Key.RunID, 10) + "/" + task
		g := byPack[id]
		if g == nil {
			g = &group{run: w.Key.RunID, task: task}
			byPack[id] = g
			groups = append(groups, g)
		}
		g.logs = append(g.logs, w)
	}
	for _, g := range groups {
		if err := f.appendPack(g.run, g.task, g.logs); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, w := range g.logs {
			f.wake(w.Key)
		}
	}
	return errors.Join(errs...)
}

// writeFile writes one whole log as its own file.
func (f *Files) writeFile(ctx context.Context, w Whole) error { return writeWhole(ctx, f, w) }

// wake tells the followers of k in this process that its log changed.
func (f *Files) wake(k Key) {
	f.mu.Lock()
	t := f.topics[k]
	f.mu.Unlock()
	if t != nil {
		t.notify()
	}
}

// packPaths are the pack and index files of a map's item logs.
func (f *Files) packPaths(run int64, task string) (pack, index string) {
	base := filepath.Join(f.dir, strconv.FormatInt(run, 10), task+".items")
	return base + ".pack", base + ".idx"
}

// appendPack appends logs to the pack of a map, holding an exclusive lock
// on the pack so that two processes never interleave their appends.
func (f *Files) appendPack(run int64, task string, logs []Whole) error {
	packPath, idxPath := f.packPaths(run, task)
	if err := f.ensureDir(filepath.Dir(packPath)); err != nil {
		return fmt.Errorf("write the item logs of run %d task %q: %w", run, task, err)
	}
	pack, err := os.OpenFile(packPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write the item logs of run %d task %q: %w", run, task, err)
	}
	defer pack.Close()
	if err := syscall.Flock(int(pack.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("write the item logs of run %d task %q: lock: %w", run, task, err)
	}
	// Closing the file releases the lock.
	fi, err := pack.Stat()
	if err != nil {
		return fmt.Errorf("write the item logs of run %d task %q: %w", run, task, err)
	}
	var data, index []byte
	offset := fi.Size()
	for _, w := range logs {
		_, item, _ := ParseItemTask(w.Key.TaskID)
		data = append(data, w.Data...)
		index = fmt.Appendf(index, "%d %d %d %d\n", item, w.Key.Attempt, offset, len(w.Data))
		offset += int64(len(w.Data))
	}
	if _, err := pack.Write(data); err != nil {
		return fmt.Errorf("write the item logs of run %d task %q: %w", run, task, err)
	}
	if f.Wrote != nil {
		f.Wrote(len(data))
	}
	idx, err := os.OpenFile(idxPath, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write the item logs of run %d task %q: %w", run, task, err)
	}
	// A line cut short by a crash (or a full disk) is ended first, so the
	// lines appended now stay lines of their own: the cut one then fails
	// to parse and is skipped, rather than run into the next.
	if st, serr := idx.Stat(); serr == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, rerr := idx.ReadAt(last, st.Size()-1); rerr == nil && last[0] != '\n' {
			index = append([]byte{'\n'}, index...)
		}
	}
	_, err = idx.Write(index)
	if cerr := idx.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the item logs of run %d task %q: index: %w", run, task, err)
	}
	return nil
}

// ensureDir makes a run's directory once.
func (f *Files) ensureDir(dir string) error {
	f.dirsMu.Lock()
	known := f.dirs[dir]
	f.dirsMu.Unlock()
	if known {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f.dirsMu.Lock()
	if f.dirs == nil || len(f.dirs) >= maxDirs {
		f.dirs = map[string]bool{}
	}
	f.dirs[dir] = true
	f.dirsMu.Unlock()
	return nil
}

type packKey struct{ item, attempt int }

type packEntry struct{ offset, length int64 }

// scanPackIndex calls fn for each entry of an index until it returns
// false. A missing index has no entries.
func scanPackIndex(idxPath string, fn func(packKey, packEntry) bool) error {
	file, err := os.Open(idxPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read item log index %s: %w", idxPath, err)
	}
	defer file.Close()
	r := bufio.NewReaderSize(file, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull { // not a line this package writes
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		if err == io.EOF {
			return nil // a last line without newline is a cut-short write
		}
		if err != nil {
			return fmt.Errorf("read item log index %s: %w", idxPath, err)
		}
		k, e, ok := parsePackLine(line[:len(line)-1])
		if ok && !fn(k, e) {
			return nil
		}
	}
}

// parsePackLine parses "ITEM ATTEMPT OFFSET LENGTH".
func parsePackLine(line []byte) (packKey, packEntry, bool) {
	var n [4]int64
	for i := range n {
		field := line
		if sp := bytes.IndexByte(line, ' '); sp >= 0 {
			field, line = line[:sp], line[sp+1:]
		} else {
			line = nil
		}
		v, err := strconv.ParseInt(string(field), 10, 64)
		if err != nil || v < 0 {
			return packKey{}, packEntry{}, false
		}
		n[i] = v
		if i < len(n)-1 && line == nil {
			return packKey{}, packEntry{}, false
		}
	}
	if line != nil {
		return packKey{}, packEntry{}, false
	}
	return packKey{int(n[0]), int(n[1])}, packEntry{n[2], n[3]}, true
}

// packed finds the log of k in its map's pack; ok is false when it is
// not there (k is not an item's, or its log is a file, or none was kept).
func (f *Files) packed(k Key) (packPath string, e packEntry, ok bool, err error) {
	task, item, isItem := ParseItemTask(k.TaskID)
	if !isItem {
		return "", packEntry{}, false, nil
	}
	packPath, idxPath := f.packPaths(k.RunID, task)
	want := packKey{item, k.Attempt}
	err = scanPackIndex(idxPath, func(pk packKey, pe packEntry) bool {
		if pk == want {
			e, ok = pe, true
			return false
		}
		return true
	})
	return packPath, e, ok, err
}

// openPacked opens the log of k in its pack at offset, as Open would.
func (f *Files) openPacked(k Key, offset int64) (io.ReadCloser, bool, error) {
	packPath, e, ok, err := f.packed(k)
	if err != nil || !ok {
		return nil, false, err
	}
	if offset > e.length {
		return nil, true, fmt.Errorf("open log of %s at %d: past its end (%d bytes)", k, offset, e.length)
	}
	file, err := os.Open(packPath)
	if err != nil {
		return nil, true, fmt.Errorf("open log of %s: %w", k, err)
	}
	if fi, err := file.Stat(); err != nil || e.offset+e.length > fi.Size() {
		file.Close()
		return nil, true, fmt.Errorf("open log of %s: its pack %s is shorter than its index says", k, packPath)
	}
	return packReader{io.NewSectionReader(file, e.offset+offset, e.length-offset), file}, true, nil
}

type packReader struct {
	*io.SectionReader
	file *os.File
}

func (r packReader) Close() error { return r.file.Close() }

// followPacked gives Follow a log found whole in its pack: complete, as
// WriteWhole only takes ended attempts' logs. It writes it to w at once
// (whole lines: a pack entry is a Writer's output) and returns the offset
// reached; ok is false when the log is not in a pack.
func (f *Files) followPacked(k Key, offset int64, w io.Writer) (int64, bool, error) {
	r, ok, err := f.openPacked(k, offset)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("follow log of %s: %w", k, err)
		}
		return offset, ok, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return offset, true, fmt.Errorf("follow log of %s: %w", k, err)
	}
	if len(data) > 0 {
		if _, err := w.Write(data); err != nil {
			return offset, true, fmt.Errorf("follow log of %s: write: %w", k, err)
		}
	}
	return offset + int64(len(data)), true, nil
}
