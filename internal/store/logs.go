package store

import (
	"context"
	"fmt"
)

// Attempt logs in the database: where several servers share a store, the
// logs of attempts are kept as chunks in it (package logs, Cluster), so
// every server reads every log, across a change of leader and the loss of
// the disk that wrote it. A log is a sequence of chunks, each the bytes of
// the log from its Offset on, compressed by the writer (Codec says how),
// the last one marked Final once the log is complete. Chunks are deleted
// with their run (PruneRuns): logs follow the run history's retention.

// Chunk codecs.
const (
	LogRaw  = 0 // the bytes as they are
	LogZstd = 1 // a zstd frame
)

// MaxLogChunk bounds the bytes of log one chunk holds (Length), and so
// what one read decompresses into memory.
const MaxLogChunk = 4 << 20

// DefaultLogChunksLimit is how many chunks one LogChunks call returns when
// its limit is zero; MaxLogChunksLimit caps it.
const (
	DefaultLogChunksLimit = 16
	MaxLogChunksLimit     = 256
)

// LogChunk is one piece of the log of an attempt (RunID, TaskID, Attempt:
// a map item's log has the TaskID "task.ITEM").
type LogChunk struct {
	RunID   int64
	TaskID  string
	Attempt int
	// Offset is where the chunk's bytes start in the log, Length how many
	// bytes of log it holds once decoded (0 only for a Final chunk that
	// adds nothing).
	Offset int64
	Length int64
	Codec  int
	Data   []byte
	// Final marks the end of the log: nothing follows it.
	Final bool
}

// End is the offset just past the chunk.
func (c LogChunk) End() int64 { return c.Offset + c.Length }

// Check rejects a chunk no log is made of.
func (c LogChunk) Check() error {
	switch {
	case c.RunID <= 0 || c.Attempt < 0 || c.TaskID == "":
		return fmt.Errorf("log chunk of run %d task %q attempt %d: not an attempt's log", c.RunID, c.TaskID, c.Attempt)
	case c.Offset < 0 || c.Length < 0 || c.Length > MaxLogChunk:
		return fmt.Errorf("log chunk of run %d task %q attempt %d at %d: length %d out of range (0 to %d)", c.RunID, c.TaskID, c.Attempt, c.Offset, c.Length, MaxLogChunk)
	case c.Length == 0 && !c.Final:
		return fmt.Errorf("log chunk of run %d task %q attempt %d at %d: empty and not final", c.RunID, c.TaskID, c.Attempt, c.Offset)
	case c.Codec != LogRaw && c.Codec != LogZstd:
		return fmt.Errorf("log chunk of run %d task %q attempt %d at %d: unknown codec %d", c.RunID, c.TaskID, c.Attempt, c.Offset, c.Codec)
	case c.Codec == LogRaw && int64(len(c.Data)) != c.Length:
		return fmt.Errorf("log chunk of run %d task %q attempt %d at %d: %d bytes for a length of %d", c.RunID, c.TaskID, c.Attempt, c.Offset, len(c.Data), c.Length)
	}
	return nil
}

// Logs keeps attempt logs as chunks.
type Logs interface {
	// PutLogChunks writes chunks in one transaction. A chunk at the
	// offset of one its log already has is skipped: a retried write
	// carries the same bytes.
	PutLogChunks(ctx context.Context, chunks ...LogChunk) error
	// LogChunks returns up to limit chunks (DefaultLogChunksLimit,
	// MaxLogChunksLimit) of one log in offset order, from the one holding
	// offset on (or the first past it); none for a log it does not have.
	LogChunks(ctx context.Context, runID int64, taskID string, attempt int, offset int64, limit int) ([]LogChunk, error)
	// LogEnd returns the last chunk of a log without its data (its End is
	// the log's size, its Final whether the log is complete), and false
	// for a log it does not have.
	LogEnd(ctx context.Context, runID int64, taskID string, attempt int) (LogChunk, bool, error)
}

// LogChunksLimit applies the default and the cap to a LogChunks limit.
func LogChunksLimit(limit int) int {
	if limit <= 0 {
		return DefaultLogChunksLimit
	}
	return min(limit, MaxLogChunksLimit)
}

// TrimLogChunks drops the first of chunks read from offset on when it ends
// at offset (it starts at or before it) and does not end the log: it holds
// nothing wanted.
func TrimLogChunks(chunks []LogChunk, offset int64) []LogChunk {
	if len(chunks) > 0 && chunks[0].End() <= offset && !chunks[0].Final {
		return chunks[1:]
	}
	return chunks
}
