package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/tasuki-dev/tasuki/internal/pathglob"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// maxItemSize bounds one item's value (a line of a file, an element of a
// result): items travel in environment variables and attempt specs.
const maxItemSize = 64 << 10

// expand computes the items of map task i from its source: the list in
// the file, a range, the lines of a file, the files of a glob, or an
// upstream task's result. The run's variables (parameters, interval) are
// expanded in a file or glob.
func (c *coordinator) expand(i int) (itemValues, error) {
	t := &c.pipeline.Tasks[i]
	m := t.Map
	var v itemValues
	vars := func(name string) string {
		if val, ok := c.params[name]; ok {
			return val
		}
		return c.interval[name]
	}
	switch {
	case m.Items != nil:
		for _, it := range m.Items {
			v.add(it)
		}
	case m.Range != nil:
		step := m.Range.Step
		if step == 0 {
			step = 1
		}
		n := spec.RangeLen(m.Range.Start, m.Range.Stop, step)
		v.buf = make([]byte, 0, n*8)
		v.off = make([]uint32, 1, n+1)
		for k := range n {
			v.buf = strconv.AppendInt(v.buf, int64(m.Range.Start+k*step), 10)
			v.off = append(v.off, uint32(len(v.buf)))
		}
	case m.File != "":
		p := c.rel(os.Expand(m.File, vars))
		f, err := os.Open(p)
		if err != nil {
			return v, fmt.Errorf("map.file: %w", err)
		}
		defer f.Close()
		if err := readItems(f, &v); err != nil {
			return v, fmt.Errorf("map.file %s: %w", p, err)
		}
	case m.Glob != "":
		paths, err := globFiles(c.dir, os.Expand(m.Glob, vars))
		if err != nil {
			return v, fmt.Errorf("map.glob: %w", err)
		}
		for _, p := range paths {
			raw, _ := json.Marshal(p)
			v.add(raw)
		}
	case m.From != "":
		if err := c.itemsFrom(m.From, &v); err != nil {
			return v, fmt.Errorf("map.from %s: %w", m.From, err)
		}
	default:
		return v, errors.New("map: no source of items")
	}
	if v.len() > spec.MaxMapItems {
		return v, fmt.Errorf("map: %d items, more than the %d a map may have", v.len(), spec.MaxMapItems)
	}
	if len(v.buf) >= 1<<32-1 {
		return v, errors.New("map: the items take more than 4 GiB")
	}
	return v, nil
}

// rel makes a path relative to the pipeline file's directory absolute.
func (c *coordinator) rel(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// itemsFrom reads the items an upstream task produced: a map's items'
// results, a JSON array result, or a JSON-lines file named by a string
// result.
func (c *coordinator) itemsFrom(id string, v *itemValues) error {
	j, ok := c.eng.Graph.Index(id)
	if !ok {
		return errors.New("no such task")
	}
	if c.pipeline.Tasks[j].Map != nil {
		ms, err := c.mapStore()
		if err != nil {
			return err
		}
		dir := filepath.Join(c.workDir, "needs")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		p := filepath.Join(dir, id+".items.jsonl")
		if err := writeMapResults(ms, c.run.ID, j, p); err != nil {
			return err
		}
		defer os.Remove(p)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return readItems(f, v)
	}
	res := bytes.TrimSpace(c.mem.Task(j).Result)
	switch {
	case len(res) == 0:
		return errors.New("the task published no result; write a JSON array of the items, or the path of a JSON-lines file, to $TASUKI_RESULT")
	case res[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(res, &items); err != nil {
			return fmt.Errorf("its result is not a JSON array: %w", err)
		}
		for _, it := range items {
			var b bytes.Buffer
			if err := json.Compact(&b, it); err != nil {
				return err
			}
			v.add(b.Bytes())
		}
		return nil
	case res[0] == '"':
		var p string
		if err := json.Unmarshal(res, &p); err != nil {
			return err
		}
		if found, err := c.itemsFromOutput(j, p, v); found || err != nil {
			return err
		}
		if !filepath.IsAbs(p) {
			base := c.dir
			if wd := c.pipeline.Tasks[j].Workdir; wd != "" {
				base = c.rel(wd)
			}
			p = filepath.Join(base, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("its result names a file: %w", err)
		}
		defer f.Close()
		return readItems(f, v)
	}
	return fmt.Errorf("its result is neither a JSON array of items nor the path of a JSON-lines file (it starts %q)", clip(string(res), 20))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// readItems reads one item per line: a line that is a JSON object, array,
// number or quoted string is that value, any other line is a string.
// Blank lines are skipped.
func readItems(r io.Reader, v *itemValues) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxItemSize)
	line := 0
	var b bytes.Buffer
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if v.len() >= spec.MaxMapItems {
			return fmt.Errorf("more than the %d items a map may have", spec.MaxMapItems)
		}
		it, err := itemOfLine(text, &b)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		v.add(it)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", line+1, maxItemSize)
		}
		return err
	}
	return nil
}

// itemOfLine is the item a line of items (trimmed, not blank) stands for:
// the JSON value it holds, compacted (in b), or the line as a string. A
// zipped map's items are read by the same rule (zipItem).
func itemOfLine(text []byte, b *bytes.Buffer) (json.RawMessage, error) {
	if jsonItem(text) {
		b.Reset()
		if err := json.Compact(b, text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	raw, _ := json.Marshal(string(text))
	return raw, nil
}

// jsonItem reports whether a line is meant as a JSON value: an object, an
// array, a quoted string or a number (a bare word is a string item).
func jsonItem(text []byte) bool {
	switch text[0] {
	case '{', '[', '"':
		return true
	}
	if text[0] == '-' || (text[0] >= '0' && text[0] <= '9') {
		var n json.Number
		return json.Unmarshal(text, &n) == nil
	}
	return false
}

// globFiles returns the regular files under dir matching pattern (relative
// to dir unless absolute; see pathglob), sorted, as paths relative to dir
// (absolute for an absolute pattern).
func globFiles(dir, pattern string) ([]string, error) {
	abs := filepath.IsAbs(pattern)
	pat := filepath.ToSlash(pattern)
	if err := pathglob.Check(pat); err != nil {
		return nil, fmt.Errorf("%s: %w", pattern, err)
	}
	var out []string
	err := pathglob.WalkDir(dir, pat, func(p string, d fs.DirEntry) error {
		if !d.Type().IsRegular() {
			return nil
		}
		if abs {
			out = append(out, p)
		} else if r, err := filepath.Rel(dir, p); err == nil {
			out = append(out, filepath.ToSlash(r))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pattern, err)
	}
	slices.Sort(out)
	return out, nil
}

// itemsFromOutput reads the items from the output file path of task j
// when j kept one by that path (outputs:): the task may have run on a
// remote worker, whose disk the file is on, and the artifact store has
// it wherever the task ran. It reports whether j kept such a file.
func (c *coordinator) itemsFromOutput(j int, p string, v *itemValues) (bool, error) {
	as, ok := c.r.Store.(store.Artifacts)
	if !ok || filepath.IsAbs(p) || len(c.pipeline.Tasks[j].Outputs) == 0 {
		return false, nil
	}
	want := filepath.ToSlash(filepath.Clean(p))
	refs, err := as.ArtifactsOf(context.Background(), c.run.ID, j, -1)
	if err != nil {
		return false, fmt.Errorf("read its output files: %w", err)
	}
	for _, r := range refs {
		if r.Path != want {
			continue
		}
		f, err := c.r.ArtifactStore().Open(context.Background(), r.Digest)
		if err != nil {
			return true, fmt.Errorf("its result names its output %s: %w", want, err)
		}
		defer f.Close()
		return true, readItems(f, v)
	}
	return false, nil
}
