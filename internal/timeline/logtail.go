package timeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/logs"
)

// readTail returns the last n lines of a log, reading at most maxLogBytes
// from its end whatever its size, and whether earlier lines were left out.
// Each line is cut at maxLineBytes (a task may print a 64 KiB line). Logs
// are stored with secrets already masked, so the lines are shown as they
// are.
func readTail(ctx context.Context, ls logs.Store, k logs.Key, n int) ([]string, bool, error) {
	size, err := ls.Size(ctx, k)
	if err != nil {
		return nil, false, err
	}
	offset := max(size-maxLogBytes, 0)
	rc, err := ls.Open(ctx, k, offset)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxLogBytes))
	if err != nil {
		return nil, false, fmt.Errorf("read log of %s: %w", k, err)
	}
	cut := offset > 0
	if cut {
		// The read began inside a line: drop its rest.
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		} else {
			data = nil
		}
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	if len(data) == 0 {
		return nil, cut, nil
	}
	all := bytes.Split(data, []byte("\n"))
	if len(all) > n {
		all, cut = all[len(all)-n:], true
	}
	out := make([]string, len(all))
	for i, l := range all {
		out[i] = cutLine(l)
	}
	return out, cut, nil
}

// cutLine makes a log line text of at most about maxLineBytes, ending on a
// whole character, with invalid UTF-8 replaced.
func cutLine(l []byte) string {
	if len(l) <= maxLineBytes {
		return string(bytes.ToValidUTF8(l, []byte("\uFFFD")))
	}
	end := maxLineBytes
	for end > 0 && !utf8.RuneStart(l[end]) {
		end--
	}
	return string(bytes.ToValidUTF8(l[:end], []byte("\uFFFD"))) + " …"
}
