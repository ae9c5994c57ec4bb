package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// The content cache (see store.Cache): one cache_entries row per key, and
// the digests its outputs name in cache_outputs (deleted with it by the
// foreign key's cascade), so a sweep of the artifact store reads an index
// instead of the JSON of every entry.

// inChunk is how many keys one IN list holds.
const inChunk = 500

// inChunks calls fn with the keys inChunk at a time, each as an IN list's
// text ("(?,?,...)") and its arguments.
func inChunks(keys []string, fn func(in string, args []any) error) error {
	for start := 0; start < len(keys); start += inChunk {
		part := keys[start:min(start+inChunk, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		if err := fn("(?"+strings.Repeat(",?", len(part)-1)+")", args); err != nil {
			return err
		}
	}
	return nil
}

const cacheCols = `key, pipeline, task_id, run_id, item, result, outputs, size, created_at, used_at, expires_at`

func scanCacheEntry(row scanner) (store.CacheEntry, error) {
	var e store.CacheEntry
	var outputs json.RawMessage
	err := row.Scan(&e.Key, &e.Pipeline, &e.TaskID, &e.RunID, &e.Item, jsonCol{&e.Result}, jsonCol{&outputs}, &e.Size,
		timeCol{&e.CreatedAt}, timeCol{&e.UsedAt}, timeCol{&e.ExpiresAt})
	if err == nil && len(outputs) > 0 {
		if err = json.Unmarshal(outputs, &e.Outputs); err != nil {
			err = fmt.Errorf("outputs of cache entry %.16s: %w", e.Key, err)
		}
	}
	return e, err
}

// LookupCache reads the entries by key, inChunk keys a query.
func (db *DB) LookupCache(ctx context.Context, keys []string, now time.Time) (map[string]store.CacheEntry, error) {
	if now.IsZero() {
		now = time.Now()
	}
	out := map[string]store.CacheEntry{}
	err := inChunks(store.CacheKeys(keys), func(in string, args []any) error {
		rows, err := db.r.QueryContext(ctx, `SELECT `+cacheCols+` FROM cache_entries WHERE key IN `+in+`
			AND (expires_at IS NULL OR expires_at > ?)`, append(args, now.UnixMicro())...)
		if err != nil {
			return err
		}
		found, err := collect(rows, "read entries", scanCacheEntry)
		for _, e := range found {
			out[e.Key] = e
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("look up %d cache keys: %w", len(keys), err)
	}
	return out, nil
}

// PutCache replaces the entries and their digests in one transaction.
func (db *DB) PutCache(ctx context.Context, entries ...store.CacheEntry) error {
	es, err := store.PrepareCache(entries, time.Now())
	if err != nil {
		return fmt.Errorf("put cache entries: %w", err)
	}
	if len(es) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put %d cache entries: %w", len(es), err)
	}
	defer tx.Rollback()
	put, err := tx.PrepareContext(ctx, `INSERT INTO cache_entries (`+cacheCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (key) DO UPDATE SET pipeline = excluded.pipeline, task_id = excluded.task_id,
		run_id = excluded.run_id, item = excluded.item, result = excluded.result, outputs = excluded.outputs,
		size = excluded.size, created_at = excluded.created_at, used_at = excluded.used_at, expires_at = excluded.expires_at`)
	if err != nil {
		return fmt.Errorf("put %d cache entries: %w", len(es), err)
	}
	defer put.Close()
	forget, err := tx.PrepareContext(ctx, `DELETE FROM cache_outputs WHERE key = ?`)
	if err != nil {
		return fmt.Errorf("put %d cache entries: %w", len(es), err)
	}
	defer forget.Close()
	name, err := tx.PrepareContext(ctx, `INSERT INTO cache_outputs (key, digest) VALUES (?, ?)`)
	if err != nil {
		return fmt.Errorf("put %d cache entries: %w", len(es), err)
	}
	defer name.Close()
	for i := range es {
		e := &es[i]
		var outputs any
		if len(e.Outputs) > 0 {
			b, err := json.Marshal(e.Outputs)
			if err != nil {
				return fmt.Errorf("put cache entry %.16s: %w", e.Key, err)
			}
			outputs = string(b)
		}
		if _, err := put.ExecContext(ctx, e.Key, e.Pipeline, e.TaskID, e.RunID, e.Item, jsonArg(e.Result), outputs,
			e.Size, timeArg(e.CreatedAt), timeArg(e.UsedAt), timeArg(e.ExpiresAt)); err != nil {
			return fmt.Errorf("put cache entry %.16s: %w", e.Key, err)
		}
		if _, err := forget.ExecContext(ctx, e.Key); err != nil {
			return fmt.Errorf("put cache entry %.16s: forget its outputs: %w", e.Key, err)
		}
		for _, d := range store.Digests(e.Outputs) {
			if _, err := name.ExecContext(ctx, e.Key, d); err != nil {
				return fmt.Errorf("put cache entry %.16s: name output %s: %w", e.Key, d, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put %d cache entries: commit: %w", len(es), err)
	}
	return nil
}

// TouchCache moves UsedAt of the entries up to now, never back.
func (db *DB) TouchCache(ctx context.Context, keys []string, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	keys = store.CacheKeys(keys)
	if len(keys) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("touch %d cache entries: %w", len(keys), err)
	}
	defer tx.Rollback()
	at := now.UnixMicro()
	err = inChunks(keys, func(in string, args []any) error {
		_, err := tx.ExecContext(ctx, `UPDATE cache_entries SET used_at = ? WHERE key IN `+in+` AND used_at < ?`,
			append(append([]any{at}, args...), at)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("touch %d cache entries: %w", len(keys), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("touch %d cache entries: commit: %w", len(keys), err)
	}
	return nil
}

// ListCache reads a page in key order: from the (pipeline, task_id, key)
// or (pipeline, key) index with filters, the key's otherwise.
func (db *DB) ListCache(ctx context.Context, f store.CacheFilter) ([]store.CacheEntry, error) {
	q, args, err := listCacheQuery(f)
	if err != nil {
		return nil, fmt.Errorf("list cache entries: %w", err)
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list cache entries: %w", err)
	}
	out, err := collect(rows, "list cache entries", scanCacheEntry)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.CacheEntry{}
	}
	return out, nil
}

func listCacheQuery(f store.CacheFilter) (string, []any, error) {
	f, err := store.PrepareCacheFilter(f)
	if err != nil {
		return "", nil, err
	}
	limit := f.Limit
	switch {
	case f.TaskID != "":
		return `SELECT ` + cacheCols + ` FROM cache_entries INDEXED BY cache_entries_by_task
			WHERE pipeline = ? AND task_id = ? AND key > ? ORDER BY key LIMIT ?`,
			[]any{f.Pipeline, f.TaskID, f.AfterKey, limit}, nil
	case f.Pipeline != "":
		return `SELECT ` + cacheCols + ` FROM cache_entries INDEXED BY cache_entries_by_pipeline
			WHERE pipeline = ? AND key > ? ORDER BY key LIMIT ?`, []any{f.Pipeline, f.AfterKey, limit}, nil
	}
	return `SELECT ` + cacheCols + ` FROM cache_entries WHERE key > ? ORDER BY key LIMIT ?`, []any{f.AfterKey, limit}, nil
}

// DeleteCache deletes the entries (their digests go by the cascade).
func (db *DB) DeleteCache(ctx context.Context, keys []string) (int, error) {
	keys = store.CacheKeys(keys)
	if len(keys) == 0 {
		return 0, nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("delete %d cache entries: %w", len(keys), err)
	}
	defer tx.Rollback()
	n := 0
	err = inChunks(keys, func(in string, args []any) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM cache_entries WHERE key IN `+in, args...)
		if err != nil {
			return err
		}
		d, err := res.RowsAffected()
		n += int(d)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete %d cache entries: %w", len(keys), err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("delete %d cache entries: commit: %w", len(keys), err)
	}
	return n, nil
}

// PurgeCache deletes a pipeline's entries (of one task), or all.
func (db *DB) PurgeCache(ctx context.Context, pipeline, taskID string) (int, error) {
	if err := store.CheckCacheFilter(pipeline, taskID); err != nil {
		return 0, fmt.Errorf("purge the cache: %w", err)
	}
	q, args := `DELETE FROM cache_entries`, []any(nil)
	switch {
	case taskID != "":
		q, args = q+` WHERE pipeline = ? AND task_id = ?`, []any{pipeline, taskID}
	case pipeline != "":
		q, args = q+` WHERE pipeline = ?`, []any{pipeline}
	}
	res, err := db.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("purge the cache of %q %q: %w", pipeline, taskID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge the cache of %q %q: %w", pipeline, taskID, err)
	}
	return int(n), nil
}

// evictExpiredSQL picks expired entries from the partial index of entries
// with an expiry, oldest expiry first.
const evictExpiredSQL = `DELETE FROM cache_entries WHERE rowid IN (
	SELECT rowid FROM cache_entries INDEXED BY cache_entries_expiry
	WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?)`

// lruSQL reads the least recently used entries, ties by key, from the
// (used_at, size) index.
const lruSQL = `SELECT rowid, size FROM cache_entries INDEXED BY cache_entries_lru ORDER BY used_at, key LIMIT ?`

// EvictCache deletes, in one write transaction, up to limit entries:
// expired ones, then the least recently used while the total is past
// maxBytes. The total is summed from the (used_at, size) index.
func (db *DB) EvictCache(ctx context.Context, maxBytes int64, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = store.MaxCacheLimit
	}
	if now.IsZero() {
		now = time.Now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("evict cache entries: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, evictExpiredSQL, now.UnixMicro(), limit)
	if err != nil {
		return 0, fmt.Errorf("evict expired cache entries: %w", err)
	}
	expired, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("evict expired cache entries: %w", err)
	}
	n := int(expired)
	if maxBytes > 0 && n < limit {
		var total int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0) FROM cache_entries INDEXED BY cache_entries_lru`).Scan(&total); err != nil {
			return 0, fmt.Errorf("evict cache entries: size of the cache: %w", err)
		}
		if total > maxBytes {
			rows, err := tx.QueryContext(ctx, lruSQL, limit-n)
			if err != nil {
				return 0, fmt.Errorf("evict cache entries: %w", err)
			}
			var ids []any
			for total > maxBytes && rows.Next() {
				var id, size int64
				if err := rows.Scan(&id, &size); err != nil {
					rows.Close()
					return 0, fmt.Errorf("evict cache entries: %w", err)
				}
				ids = append(ids, id)
				total -= size
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return 0, fmt.Errorf("evict cache entries: %w", err)
			}
			if len(ids) > 0 {
				res, err := tx.ExecContext(ctx, `DELETE FROM cache_entries WHERE rowid IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, ids...)
				if err != nil {
					return 0, fmt.Errorf("evict %d cache entries: %w", len(ids), err)
				}
				d, err := res.RowsAffected()
				if err != nil {
					return 0, fmt.Errorf("evict %d cache entries: %w", len(ids), err)
				}
				n += int(d)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("evict %d cache entries: commit: %w", n, err)
	}
	return n, nil
}

// CacheStats counts the entries and sums their sizes from the (used_at,
// size) index.
func (db *DB) CacheStats(ctx context.Context) (store.CacheStats, error) {
	var s store.CacheStats
	err := db.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM cache_entries INDEXED BY cache_entries_lru`).
		Scan(&s.Entries, &s.Bytes)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return store.CacheStats{}, fmt.Errorf("cache stats: %w", err)
	}
	return s, nil
}
