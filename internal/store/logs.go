package store

import (
	"context"

	"github.com/tasuki-dev/tasuki/internal/logs"
)

// Attempt logs in the database: where several servers share a store, the
// logs of attempts are kept as chunks in it (package logs, Cluster), so
// every server reads every log, across a change of leader and the loss of
// the disk that wrote it. A log is a sequence of chunks, each the bytes of
// the log from its Offset on, compressed by the writer (Codec says how),
// the last one marked Final once the log is complete. Chunks are deleted
// with their run (PruneRuns): logs follow the run history's retention.

// LogChunk is one piece of the log of an attempt (logs.Chunk: the logs
// package reads and writes them, and this one cannot be imported there).
type LogChunk = logs.Chunk

// Chunk codecs and bound (see logs.Chunk).
const (
	LogRaw      = logs.CodecRaw
	LogZstd     = logs.CodecZstd
	MaxLogChunk = logs.MaxChunk
)

// DefaultLogChunksLimit is how many chunks one LogChunks call returns when
// its limit is zero; MaxLogChunksLimit caps it.
const (
	DefaultLogChunksLimit = 16
	MaxLogChunksLimit     = 256
)

// Logs keeps attempt logs as chunks.
type Logs interface {
	// PutLogChunks writes chunks in one transaction. A chunk at the
	// offset of one its log already has is skipped: a retried write
	// carries the same bytes.
	PutLogChunks(ctx context.Context, chunks ...LogChunk) error
	// PutLogChunksFenced is PutLogChunks for a leader's logs that another
	// leader may go on with (logs.Cluster.Resume, for an attempt it
	// adopts): it checks fence in the same transaction, as ApplyFenced
	// does, and writes nothing (ErrFenced) once another server has led
	// since, so a deposed leader that wakes up (a frozen process) neither
	// adds to such a log nor ends it.
	PutLogChunksFenced(ctx context.Context, fence Fence, chunks ...LogChunk) error
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
