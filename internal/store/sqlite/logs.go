package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Log chunks (see store.Logs). A server on SQLite keeps its logs as files
// (logs.Files); the table is here so that both drivers pass one suite, and
// for a tool that wants a log in the database anyway.

const logChunkCols = `run_id, task_id, attempt, off, length, codec, final`

// PutLogChunks inserts the chunks in one write transaction.
func (db *DB) PutLogChunks(ctx context.Context, chunks ...store.LogChunk) error {
	return db.putLogChunks(ctx, nil, chunks)
}

// PutLogChunksFenced is PutLogChunks after a check of the fence in the
// same transaction.
func (db *DB) PutLogChunksFenced(ctx context.Context, fence store.Fence, chunks ...store.LogChunk) error {
	return db.putLogChunks(ctx, &fence, chunks)
}

func (db *DB) putLogChunks(ctx context.Context, fence *store.Fence, chunks []store.LogChunk) error {
	for _, c := range chunks {
		if err := c.Check(); err != nil {
			return err
		}
	}
	if len(chunks) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put %d log chunks: %w", len(chunks), err)
	}
	defer tx.Rollback()
	if fence != nil {
		if err := checkFence(ctx, tx, *fence); err != nil {
			return fmt.Errorf("put %d log chunks: %w", len(chunks), err)
		}
	}
	put, err := tx.PrepareContext(ctx, `INSERT INTO log_chunks (`+logChunkCols+`, data) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT DO NOTHING`)
	if err != nil {
		return fmt.Errorf("put %d log chunks: %w", len(chunks), err)
	}
	defer put.Close()
	for _, c := range chunks {
		data := c.Data
		if data == nil {
			data = []byte{} // NOT NULL
		}
		if _, err := put.ExecContext(ctx, c.RunID, c.TaskID, c.Attempt, c.Offset, c.Length, c.Codec, c.Final, data); err != nil {
			return fmt.Errorf("put log chunk of run %d task %q attempt %d at %d: %w", c.RunID, c.TaskID, c.Attempt, c.Offset, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put %d log chunks: %w", len(chunks), err)
	}
	return nil
}

// LogChunks reads from the chunk holding offset (the last starting at or
// before it) on, by the primary key.
func (db *DB) LogChunks(ctx context.Context, runID int64, taskID string, attempt int, offset int64, limit int) ([]store.LogChunk, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+logChunkCols+`, data FROM log_chunks
		WHERE run_id = ? AND task_id = ? AND attempt = ? AND off >= coalesce(
			(SELECT max(off) FROM log_chunks WHERE run_id = ? AND task_id = ? AND attempt = ? AND off <= ?), 0)
		ORDER BY off LIMIT ?`,
		runID, taskID, attempt, runID, taskID, attempt, offset, store.LogChunksLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read the log of run %d task %q attempt %d: %w", runID, taskID, attempt, err)
	}
	out, err := collect(rows, "read log chunks", func(row scanner) (store.LogChunk, error) {
		var c store.LogChunk
		err := row.Scan(&c.RunID, &c.TaskID, &c.Attempt, &c.Offset, &c.Length, &c.Codec, &c.Final, &c.Data)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the log of run %d task %q attempt %d: %w", runID, taskID, attempt, err)
	}
	return store.TrimLogChunks(out, offset), nil
}

// LogEnd reads the last chunk of a log.
func (db *DB) LogEnd(ctx context.Context, runID int64, taskID string, attempt int) (store.LogChunk, bool, error) {
	var c store.LogChunk
	err := db.r.QueryRowContext(ctx, `SELECT `+logChunkCols+` FROM log_chunks
		WHERE run_id = ? AND task_id = ? AND attempt = ? ORDER BY off DESC LIMIT 1`, runID, taskID, attempt).
		Scan(&c.RunID, &c.TaskID, &c.Attempt, &c.Offset, &c.Length, &c.Codec, &c.Final)
	if errors.Is(err, sql.ErrNoRows) {
		return store.LogChunk{}, false, nil
	}
	if err != nil {
		return store.LogChunk{}, false, fmt.Errorf("read the end of the log of run %d task %q attempt %d: %w", runID, taskID, attempt, err)
	}
	return c, true, nil
}
