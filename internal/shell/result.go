package shell

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ResultEnv is the environment variable that tells a task where it may write
// its result: a small JSON value that downstream tasks and the UI can read,
// without parsing logs.
const ResultEnv = "TASUKI_RESULT"

// MaxResultSize bounds a result file. Results are stored with the task's
// row and shown in lists; bulk data belongs in artifacts or datasets.
const MaxResultSize = 1 << 20

// ReadResult reads the result a task wrote at path (the value of ResultEnv).
// No file, or a file holding only white space, means the task reported no
// result: nil, nil. Otherwise the content must be one valid JSON value of at
// most MaxResultSize bytes; it is returned without surrounding white space.
//
// The task controls the path's content, so ReadResult does not follow a
// symbolic link there and refuses anything but a regular file (a FIFO would
// block tasuki forever).
func ReadResult(path string) (json.RawMessage, error) {
	data, err := readResultFile(path)
	if err != nil || data == nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return nil, fmt.Errorf("read task result %s: not valid JSON at byte %d: %w", path, se.Offset, err)
		}
		return nil, fmt.Errorf("read task result %s: not valid JSON: %w", path, err)
	}
	return raw, nil
}

// readResultFile reads a result file: nil, nil when there is none. It does
// not follow a symbolic link, refuses anything but a regular file, and
// bounds the size by MaxResultSize.
func readResultFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("read task result: %s is a symbolic link, not a file", path)
		}
		return nil, fmt.Errorf("read task result: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read task result: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read task result: %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxResultSize+1))
	if err != nil {
		return nil, fmt.Errorf("read task result %s: %w", path, err)
	}
	if len(data) > MaxResultSize {
		return nil, fmt.Errorf("read task result %s: larger than the limit of %d bytes; write bulk data elsewhere and put its location in the result", path, MaxResultSize)
	}
	return data, nil
}

// ReadResultLines reads the results of a batch of n map items at path:
// exactly one line per item, in item order, each a JSON value or blank
// (an item without a result). No file means no results at all. Fewer or
// more lines than items (a process that stopped half way, or printed
// more), or a line that is not JSON, is an error saying which: a result
// silently missing would pass for an item without one.
func ReadResultLines(path string, n int) ([]json.RawMessage, error) {
	data, err := readResultFile(path)
	if err != nil || data == nil {
		return nil, err
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) != n {
		return nil, fmt.Errorf("%d result lines for a batch of %d items: write one line per item, in order (a blank line for an item without a result)", len(lines), n)
	}
	out := make([]json.RawMessage, 0, n)
	for i, line := range lines {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			out = append(out, nil)
			continue
		}
		if !json.Valid(line) {
			return nil, fmt.Errorf("result line %d (of the batch's item %d) is not valid JSON", i+1, i+1)
		}
		out = append(out, json.RawMessage(bytes.Clone(line)))
	}
	return out, nil
}
