package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Log chunks (see store.Logs): the logs every server of a cluster reads.
// A chunk is written once, by the leader that received it (a retried
// write of the same offset is skipped), and read by the primary key.

const logChunkCols = `run_id, task_id, attempt, off, length, codec, final`

// PutLogChunks inserts the chunks with one statement (arrays unnested), so
// the logs of a batch of map items cost one round trip.
func (db *DB) PutLogChunks(ctx context.Context, chunks ...store.LogChunk) error {
	return db.putLogChunks(ctx, nil, chunks)
}

// PutLogChunksFenced is PutLogChunks in one statement still: it reads the
// leadership row FOR SHARE (a takeover waits for it, or it for the
// takeover, as for ApplyFenced) and inserts only if the fence holds.
func (db *DB) PutLogChunksFenced(ctx context.Context, fence store.Fence, chunks ...store.LogChunk) error {
	if fence.Holder == "" {
		return fmt.Errorf("put %d log chunks: fence has no holder: %w", len(chunks), store.ErrFenced)
	}
	return db.putLogChunks(ctx, &fence, chunks)
}

func (db *DB) putLogChunks(ctx context.Context, fence *store.Fence, chunks []store.LogChunk) error {
	n := len(chunks)
	if n == 0 {
		return nil
	}
	run, off, length := make([]int64, n), make([]int64, n), make([]int64, n)
	task := make([]string, n)
	attempt, codec := make([]int32, n), make([]int16, n)
	final := make([]bool, n)
	data := make([][]byte, n)
	for i, c := range chunks {
		if err := c.Check(); err != nil {
			return err
		}
		run[i], task[i], attempt[i], off[i], length[i] = c.RunID, c.TaskID, int32(c.Attempt), c.Offset, c.Length
		codec[i], final[i], data[i] = int16(c.Codec), c.Final, c.Data
		if data[i] == nil {
			data[i] = []byte{} // NOT NULL
		}
	}
	const put = `INSERT INTO log_chunks (` + logChunkCols + `, data)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::smallint[], $7::boolean[], $8::bytea[])`
	var err error
	if fence == nil {
		_, err = db.pool.Exec(ctx, put+` ON CONFLICT DO NOTHING`, run, task, attempt, off, length, codec, final, data)
	} else {
		var l store.Leadership
		l, err = scanLeader(db.pool.QueryRow(ctx, `WITH fence AS (SELECT `+leaderCols+` FROM leadership WHERE id = 1 FOR SHARE),
			put AS (`+put+` WHERE EXISTS (SELECT 1 FROM fence WHERE holder = $9 AND term = $10) ON CONFLICT DO NOTHING)
			SELECT `+leaderCols+` FROM fence`, run, task, attempt, off, length, codec, final, data, fence.Holder, fence.Term))
		if err == nil && (l.Holder != fence.Holder || l.Term != fence.Term) {
			err = fenced(*fence, l)
		}
	}
	if err != nil {
		return fmt.Errorf("put %d log chunks (the first of run %d task %q attempt %d at %d): %w",
			n, chunks[0].RunID, chunks[0].TaskID, chunks[0].Attempt, chunks[0].Offset, err)
	}
	return nil
}

// LogChunks reads from the chunk holding offset (the last starting at or
// before it) on, by the primary key.
func (db *DB) LogChunks(ctx context.Context, runID int64, taskID string, attempt int, offset int64, limit int) ([]store.LogChunk, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+logChunkCols+`, data FROM log_chunks
		WHERE run_id = $1 AND task_id = $2 AND attempt = $3 AND off >= coalesce(
			(SELECT max(off) FROM log_chunks WHERE run_id = $1 AND task_id = $2 AND attempt = $3 AND off <= $4), 0)
		ORDER BY off LIMIT $5`, runID, taskID, attempt, offset, store.LogChunksLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read the log of run %d task %q attempt %d: %w", runID, taskID, attempt, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.LogChunk, error) {
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
	err := db.pool.QueryRow(ctx, `SELECT `+logChunkCols+` FROM log_chunks
		WHERE run_id = $1 AND task_id = $2 AND attempt = $3 ORDER BY off DESC LIMIT 1`, runID, taskID, attempt).
		Scan(&c.RunID, &c.TaskID, &c.Attempt, &c.Offset, &c.Length, &c.Codec, &c.Final)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.LogChunk{}, false, nil
	}
	if err != nil {
		return store.LogChunk{}, false, fmt.Errorf("read the end of the log of run %d task %q attempt %d: %w", runID, taskID, attempt, err)
	}
	return c, true, nil
}
