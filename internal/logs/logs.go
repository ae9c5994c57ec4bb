package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Key names the log of one attempt of one task of one run.
type Key struct {
	RunID   int64
	TaskID  string
	Attempt int
}

// String describes the key for error messages.
func (k Key) String() string {
	return fmt.Sprintf("run %d task %q attempt %d", k.RunID, k.TaskID, k.Attempt)
}

// validate rejects keys that cannot name a log: task ids end up in file
// paths and URLs, so they must not be able to escape their directory.
func (k Key) validate() error {
	switch {
	case k.RunID < 0 || k.Attempt < 0:
		return fmt.Errorf("log key %s: negative number", k)
	case k.TaskID == "" || k.TaskID == "." || k.TaskID == "..":
		return fmt.Errorf("log key %s: invalid task id", k)
	case strings.ContainsAny(k.TaskID, "/\\\x00"):
		return fmt.Errorf("log key %s: task id contains a path separator or NUL", k)
	}
	return nil
}

// Store keeps attempt logs: Files on one server's disk, Cluster in the
// database several servers share. Everything that writes or reads a log
// (the runner, the lease broker for remote workers, the API) goes through
// it.
//
// Offsets are byte offsets into the formatted log. Offsets returned by
// Follow, and Size once the writer is closed, always fall at the start of a
// line, so a client can resume from them (an SSE Last-Event-ID).
type Store interface {
	// Create starts the log of an attempt; it fails (with an error matching
	// fs.ErrExist) if that log exists, so two workers cannot interleave one
	// attempt's output. secrets are masked in everything written.
	Create(ctx context.Context, k Key, secrets []string) (*Writer, error)
	// Sink returns a raw appender for the log of k, for bytes already
	// formatted by a Writer elsewhere (a remote worker's), with Create's
	// checks. A sink that is also a Syncer must be synced before the
	// bytes are acknowledged to whoever sent them.
	Sink(ctx context.Context, k Key) (io.WriteCloser, error)
	// Resume continues the log of k where the store has it, for a server
	// that took an attempt over from another (a lease adopted after a
	// failover or a restart): it returns a sink as Sink does, which
	// appends, and offset, how many of the writer's bytes the store keeps,
	// from which the writer must send the rest. That is the log's size,
	// but for a log that outgrew its bound: its head, without the line
	// that says so (what follows goes to a new tail). A log never written
	// resumes at 0; a complete one cannot be resumed (ErrComplete).
	Resume(ctx context.Context, k Key) (sink io.WriteCloser, offset int64, err error)
	// WriteWhole stores the complete logs of ended attempts, each written
	// once and never through Create or Sink (see Files.WriteWhole).
	WriteWhole(ctx context.Context, logs []Whole) error
	// Open reads a log from offset to its current end. A missing log is an
	// error matching fs.ErrNotExist.
	Open(ctx context.Context, k Key, offset int64) (io.ReadCloser, error)
	// Size returns the current length of a log in bytes.
	Size(ctx context.Context, k Key) (int64, error)
	// Follow copies a log to w from offset, then keeps copying what is
	// appended until the writer is closed (or its process has died) and
	// everything has been copied, returning the offset reached and nil; or
	// until ctx is done, returning the offset reached and ctx's error. A log
	// that does not exist yet is waited for. w receives whole lines only,
	// one or more per Write, so each call can become one event.
	Follow(ctx context.Context, k Key, offset int64, w io.Writer) (int64, error)
}

// ErrComplete is Resume's error for a log that has ended: nothing may be
// appended to it.
var ErrComplete = errors.New("the log is complete")

// errNegativeOffset is returned for offsets before the start of a log.
var errNegativeOffset = errors.New("negative offset")
