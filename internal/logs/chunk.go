package logs

import (
	"context"
	"fmt"
)

// Chunk is one piece of the log of an attempt (RunID, TaskID, Attempt: a
// map item's log has the TaskID "task.ITEM") as the database keeps it
// (store.Logs; see Cluster).
type Chunk struct {
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

// Chunk codecs.
const (
	CodecRaw  = 0 // the bytes as they are
	CodecZstd = 1 // a zstd frame
)

// MaxChunk bounds the bytes of log one chunk holds (Length), and so what
// one read decompresses into memory.
const MaxChunk = 4 << 20

// End is the offset just past the chunk.
func (c Chunk) End() int64 { return c.Offset + c.Length }

// Check rejects a chunk no log is made of.
func (c Chunk) Check() error {
	switch {
	case c.RunID <= 0 || c.Attempt < 0 || c.TaskID == "":
		return fmt.Errorf("log chunk of run %d task %q attempt %d: not an attempt's log", c.RunID, c.TaskID, c.Attempt)
	case c.Offset < 0 || c.Length < 0 || c.Length > MaxChunk:
		return fmt.Errorf("log chunk of run %d task %q attempt %d at %d: length %d out of range (0 to %d)", c.RunID, c.TaskID, c.Attempt, c.Offset, c.Length, MaxChunk)
	case c.Length == 0 && !c.Final:
		return fmt.Errorf("log chunk of run %d task %q attempt %d at %d: empty and not final", c.RunID, c.TaskID, c.Attempt, c.Offset)
	case c.Codec != CodecRaw && c.Codec != CodecZstd:
		return fmt.Errorf("log chunk of run %d task %q attempt %d at %d: unknown codec %d", c.RunID, c.TaskID, c.Attempt, c.Offset, c.Codec)
	case c.Codec == CodecRaw && int64(len(c.Data)) != c.Length:
		return fmt.Errorf("log chunk of run %d task %q attempt %d at %d: %d bytes for a length of %d", c.RunID, c.TaskID, c.Attempt, c.Offset, len(c.Data), c.Length)
	}
	return nil
}

// Chunks is where a Cluster keeps its logs: store.Logs, which every store
// implements.
type Chunks interface {
	PutLogChunks(ctx context.Context, chunks ...Chunk) error
	LogChunks(ctx context.Context, runID int64, taskID string, attempt int, offset int64, limit int) ([]Chunk, error)
	LogEnd(ctx context.Context, runID int64, taskID string, attempt int) (Chunk, bool, error)
}
