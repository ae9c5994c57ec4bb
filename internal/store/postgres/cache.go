package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// The content cache (see store.Cache): one cache_entries row per key, and
// the digests its outputs name in cache_outputs (deleted with it by the
// foreign key's cascade), so a sweep of the artifact store reads an index
// instead of the JSON of every entry.
//
// Several servers write the cache at once. Every statement that waits for
// entries' row locks takes them in key order (PutCache's rows are sorted,
// the others lock with ORDER BY key FOR UPDATE), so no two of them
// deadlock; eviction never waits at all (SKIP LOCKED): an entry being
// written is left to the next pass. The rows a statement locks are then
// changed by their row (ctid = ANY(ARRAY(...)), which no one else can
// move while they are locked), not by joining the table with the locked
// keys, which PostgreSQL may plan as a hash join over a scan of the whole
// cache.

const cacheCols = `key, pipeline, task_id, run_id, item, result::text, outputs::text, size, created_at, used_at,
	expires_at`

func scanCacheEntry(row pgx.Row) (store.CacheEntry, error) {
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

func collectEntries(rows pgx.Rows) ([]store.CacheEntry, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.CacheEntry, error) { return scanCacheEntry(row) })
}

// LookupCache reads the entries by key with one statement.
func (db *DB) LookupCache(ctx context.Context, keys []string, now time.Time) (map[string]store.CacheEntry, error) {
	if now.IsZero() {
		now = time.Now()
	}
	out := map[string]store.CacheEntry{}
	keys = store.CacheKeys(keys)
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+cacheCols+` FROM cache_entries
		WHERE key = ANY($1::text[]) AND (expires_at IS NULL OR expires_at > $2)`, keys, now)
	if err != nil {
		return nil, fmt.Errorf("look up %d cache keys: %w", len(keys), err)
	}
	found, err := collectEntries(rows)
	if err != nil {
		return nil, fmt.Errorf("look up %d cache keys: %w", len(keys), err)
	}
	for _, e := range found {
		out[e.Key] = e
	}
	return out, nil
}

// putCacheSQL upserts entries given as arrays, in key order (so two
// writers take their row locks in the same order).
const putCacheSQL = `INSERT INTO cache_entries AS c (key, pipeline, task_id, run_id, item, result, outputs, size,
		created_at, used_at, expires_at)
	SELECT u.key, u.pipeline, u.task_id, u.run_id, u.item, u.result::jsonb, u.outputs::jsonb, u.size, u.created_at,
		u.used_at, u.expires_at
	FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int4[], $6::text[], $7::text[], $8::int8[],
		$9::timestamptz[], $10::timestamptz[], $11::timestamptz[]) WITH ORDINALITY
		AS u(key, pipeline, task_id, run_id, item, result, outputs, size, created_at, used_at, expires_at, ord)
	ORDER BY u.ord
	ON CONFLICT (key) DO UPDATE SET pipeline = excluded.pipeline, task_id = excluded.task_id,
		run_id = excluded.run_id, item = excluded.item, result = excluded.result, outputs = excluded.outputs,
		size = excluded.size, created_at = excluded.created_at, used_at = excluded.used_at, expires_at = excluded.expires_at`

// PutCache upserts the entries, forgets their old digests and names their
// new ones, in one pipelined batch in one transaction.
func (db *DB) PutCache(ctx context.Context, entries ...store.CacheEntry) error {
	es, err := store.PrepareCache(entries, time.Now())
	if err != nil {
		return fmt.Errorf("put cache entries: %w", err)
	}
	if len(es) == 0 {
		return nil
	}
	n := len(es)
	key, pipeline, task := make([]string, n), make([]string, n), make([]string, n)
	run, size := make([]int64, n), make([]int64, n)
	item := make([]int32, n)
	result, outputs := make([]pgtype.Text, n), make([]pgtype.Text, n)
	created, used, expires := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	var dKey, dDigest []string
	for i := range es {
		e := &es[i]
		key[i], pipeline[i], task[i] = e.Key, e.Pipeline, e.TaskID
		run[i], size[i], item[i] = e.RunID, e.Size, int32(e.Item)
		result[i] = jsonText(e.Result)
		if len(e.Outputs) > 0 {
			b, err := json.Marshal(e.Outputs)
			if err != nil {
				return fmt.Errorf("put cache entry %.16s: %w", e.Key, err)
			}
			outputs[i] = pgtype.Text{String: string(b), Valid: true}
		}
		created[i], used[i], expires[i] = tsArg(e.CreatedAt), tsArg(e.UsedAt), tsArg(e.ExpiresAt)
		for _, d := range store.Digests(e.Outputs) {
			dKey, dDigest = append(dKey, e.Key), append(dDigest, d)
		}
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("put %d cache entries: %w", n, err)
	}
	defer rollback(tx)
	b := &pgx.Batch{}
	b.Queue(putCacheSQL, key, pipeline, task, run, item, result, outputs, size, created, used, expires)
	b.Queue(`DELETE FROM cache_outputs WHERE key = ANY($1::text[])`, key)
	if len(dKey) > 0 {
		b.Queue(`INSERT INTO cache_outputs (key, digest) SELECT * FROM unnest($1::text[], $2::text[])`, dKey, dDigest)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("put %d cache entries: %w", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("put %d cache entries: commit: %w", n, err)
	}
	return nil
}

// TouchCache moves UsedAt of the entries up to now, never back, locking
// them in key order.
func (db *DB) TouchCache(ctx context.Context, keys []string, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	keys = store.CacheKeys(keys)
	if len(keys) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `UPDATE cache_entries SET used_at = $2 WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM cache_entries WHERE key = ANY($1::text[]) AND used_at < $2 ORDER BY key FOR UPDATE))`,
		keys, store.NormTime(now))
	if err != nil {
		return fmt.Errorf("touch %d cache entries: %w", len(keys), err)
	}
	return nil
}

// ListCache reads a page in key order: from the (pipeline, task_id, key)
// or (pipeline, key) index with filters, the key's otherwise.
func (db *DB) ListCache(ctx context.Context, f store.CacheFilter) ([]store.CacheEntry, error) {
	f, err := store.PrepareCacheFilter(f)
	if err != nil {
		return nil, fmt.Errorf("list cache entries: %w", err)
	}
	limit := f.Limit
	q, args := `SELECT `+cacheCols+` FROM cache_entries WHERE key > $1 ORDER BY key LIMIT $2`, []any{f.AfterKey, limit}
	switch {
	case f.TaskID != "":
		q = `SELECT ` + cacheCols + ` FROM cache_entries WHERE pipeline = $3 AND task_id = $4 AND key > $1 ORDER BY key LIMIT $2`
		args = append(args, f.Pipeline, f.TaskID)
	case f.Pipeline != "":
		q = `SELECT ` + cacheCols + ` FROM cache_entries WHERE pipeline = $3 AND key > $1 ORDER BY key LIMIT $2`
		args = append(args, f.Pipeline)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list cache entries: %w", err)
	}
	out, err := collectEntries(rows)
	if err != nil {
		return nil, fmt.Errorf("list cache entries: %w", err)
	}
	if out == nil {
		out = []store.CacheEntry{}
	}
	return out, nil
}

// DeleteCache deletes the entries, locked in key order (their digests go
// by the cascade).
func (db *DB) DeleteCache(ctx context.Context, keys []string) (int, error) {
	keys = store.CacheKeys(keys)
	if len(keys) == 0 {
		return 0, nil
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM cache_entries WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM cache_entries WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE))`, keys)
	if err != nil {
		return 0, fmt.Errorf("delete %d cache entries: %w", len(keys), err)
	}
	return int(tag.RowsAffected()), nil
}

// PurgeCache deletes a pipeline's entries (of one task), or all, locked in
// key order.
func (db *DB) PurgeCache(ctx context.Context, pipeline, taskID string) (int, error) {
	if err := store.CheckCacheFilter(pipeline, taskID); err != nil {
		return 0, fmt.Errorf("purge the cache: %w", err)
	}
	where, args := ``, []any(nil)
	switch {
	case taskID != "":
		where, args = `WHERE pipeline = $1 AND task_id = $2`, []any{pipeline, taskID}
	case pipeline != "":
		where, args = `WHERE pipeline = $1`, []any{pipeline}
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM cache_entries WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM cache_entries `+where+` ORDER BY key FOR UPDATE))`, args...)
	if err != nil {
		return 0, fmt.Errorf("purge the cache of %q %q: %w", pipeline, taskID, err)
	}
	return int(tag.RowsAffected()), nil
}

// evictExpiredSQL deletes expired entries from the partial index of
// entries with an expiry, oldest expiry first, passing over entries being
// written (SKIP LOCKED).
const evictExpiredSQL = `DELETE FROM cache_entries WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM cache_entries WHERE expires_at IS NOT NULL AND expires_at <= $1
	ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))`

// EvictCache deletes, in one transaction, up to limit entries: expired
// ones, then the least recently used (ties by key) while the total is past
// maxBytes. The total and the order come from the (used_at, key) index,
// which holds the sizes.
func (db *DB) EvictCache(ctx context.Context, maxBytes int64, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = store.MaxCacheLimit
	}
	if now.IsZero() {
		now = time.Now()
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("evict cache entries: %w", err)
	}
	defer rollback(tx)
	tag, err := tx.Exec(ctx, evictExpiredSQL, now, limit)
	if err != nil {
		return 0, fmt.Errorf("evict expired cache entries: %w", err)
	}
	n := int(tag.RowsAffected())
	if maxBytes > 0 && n < limit {
		var total int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(size), 0)::bigint FROM cache_entries`).Scan(&total); err != nil {
			return 0, fmt.Errorf("evict cache entries: size of the cache: %w", err)
		}
		if total > maxBytes {
			rows, err := tx.Query(ctx, `SELECT key, size FROM cache_entries ORDER BY used_at, key LIMIT $1`, limit-n)
			if err != nil {
				return 0, fmt.Errorf("evict cache entries: %w", err)
			}
			var keys []string
			for total > maxBytes && rows.Next() {
				var k string
				var size int64
				if err := rows.Scan(&k, &size); err != nil {
					rows.Close()
					return 0, fmt.Errorf("evict cache entries: %w", err)
				}
				keys = append(keys, k)
				total -= size
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return 0, fmt.Errorf("evict cache entries: %w", err)
			}
			if len(keys) > 0 {
				tag, err := tx.Exec(ctx, `DELETE FROM cache_entries WHERE ctid = ANY(ARRAY(
					SELECT ctid FROM cache_entries WHERE key = ANY($1::text[]) FOR UPDATE SKIP LOCKED))`, keys)
				if err != nil {
					return 0, fmt.Errorf("evict %d cache entries: %w", len(keys), err)
				}
				n += int(tag.RowsAffected())
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("evict %d cache entries: commit: %w", n, err)
	}
	return n, nil
}

// CacheStats counts the entries and sums their sizes (an index-only scan
// of the (used_at, key) index, which holds the sizes).
func (db *DB) CacheStats(ctx context.Context) (store.CacheStats, error) {
	var s store.CacheStats
	if err := db.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(size), 0)::bigint FROM cache_entries`).Scan(&s.Entries, &s.Bytes); err != nil {
		return store.CacheStats{}, fmt.Errorf("cache stats: %w", err)
	}
	return s, nil
}
