package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Map tasks (see store.Maps): one task_maps row per expanded map, its
// values in chunks of store.MapChunkItems JSON lines, and a map_items row
// per item worth keeping. A coordinator writes thousands of item rows per
// Apply, so they go in multi-row upserts prepared once (itemStmts), and the
// rows of all the changes of a batch share them.

// encodeCounts and encodeSlowest are a MapInfo's JSON columns: NULL when
// empty.
func encodeCounts(c map[engine.TaskState]int) (any, error) {
	if len(c) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(c)
	return string(b), err
}

func encodeSlowest(s []store.SlowItem) (any, error) {
	if len(s) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(s)
	return string(b), err
}

// itemCols are map_items' columns, in the order itemArgs gives them.
const itemCols = `run_id, idx, item, state, attempt, spent, worker, started_at, finished_at, ready_at, exit_code,
	message, result, cached_from, log`

const itemRow = `(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

const itemUpsertTail = ` ON CONFLICT (run_id, idx, item) DO UPDATE SET state = excluded.state,
	attempt = excluded.attempt, spent = excluded.spent, worker = excluded.worker, started_at = excluded.started_at,
	finished_at = excluded.finished_at, ready_at = excluded.ready_at, exit_code = excluded.exit_code,
	message = excluded.message, result = excluded.result, cached_from = excluded.cached_from, log = excluded.log`

// itemUpsertSQL upserts n item rows. SQLite inserts the rows of one
// statement in order, so an item given twice ends as its last row.
func itemUpsertSQL(n int) string {
	return multiRow(`INSERT INTO map_items (`+itemCols+`) VALUES `, itemRow, n) + itemUpsertTail
}

func itemArgs(args []any, runID int64, index int, it *store.MapItem) []any {
	var cached any
	if it.CachedFrom != 0 {
		cached = it.CachedFrom
	}
	return append(args, runID, int64(index), int64(it.Item), string(it.State), int64(it.Attempt), int64(it.Spent),
		store.Text(it.Worker), timeArg(it.StartedAt), timeArg(it.FinishedAt), timeArg(it.ReadyAt),
		intPtrArg(it.ExitCode), store.Text(it.Message), jsonArg(it.Result), cached, store.Text(it.Log))
}

// itemSizes are the row counts of the prepared item upserts, largest
// first: a queue of any length is written with full batches of the first
// and at most one statement of each other size, none of them parsed again.
var itemSizes = []int{256, 128, 64, 32, 16, 8, 4, 2, 1}

// fanoutStmts are the writer's prepared statements for the writes of map
// tasks and artifact refs.
type fanoutStmts struct {
	upsertItems     []*sql.Stmt // itemSizes[i] rows each
	deleteItem      *sql.Stmt
	deleteLeases    *sql.Stmt // mapleases.go
	insertChunk     *sql.Stmt
	putMap          *sql.Stmt
	updateMap       *sql.Stmt
	mapExists       *sql.Stmt
	taskExists      *sql.Stmt // artifacts.go
	forgetArtifacts *sql.Stmt
	insertArtifact  *sql.Stmt
}

const (
	putMapSQL = `INSERT INTO task_maps (run_id, idx, items, next, counts, slowest, updated_at) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT (run_id, idx) DO UPDATE SET items = excluded.items, next = excluded.next,
		counts = excluded.counts, slowest = excluded.slowest, updated_at = excluded.updated_at`
	updateMapSQL = `UPDATE task_maps SET items = ?, next = ?, counts = ?, slowest = ?, updated_at = ?
		WHERE run_id = ? AND idx = ?`
	mapExistsSQL    = `SELECT 1 FROM task_maps WHERE run_id = ? AND idx = ?`
	deleteItemSQL   = `DELETE FROM map_items WHERE run_id = ? AND idx = ? AND item = ?`
	deleteLeasesSQL = `DELETE FROM map_leases WHERE run_id = ? AND idx = ?`
	insertChunkSQL  = `INSERT INTO map_chunks (run_id, idx, chunk, data) VALUES (?,?,?,?)`
)

func (s *fanoutStmts) list() []struct {
	dst **sql.Stmt
	sql string
} {
	if s.upsertItems == nil {
		s.upsertItems = make([]*sql.Stmt, len(itemSizes))
	}
	l := []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.deleteItem, deleteItemSQL},
		{&s.deleteLeases, deleteLeasesSQL},
		{&s.insertChunk, insertChunkSQL},
		{&s.putMap, putMapSQL},
		{&s.updateMap, updateMapSQL},
		{&s.mapExists, mapExistsSQL},
		{&s.taskExists, taskExistsSQL},
		{&s.forgetArtifacts, forgetArtifactsSQL},
		{&s.insertArtifact, insertArtifactSQL},
	}
	for i, n := range itemSizes {
		l = append(l, struct {
			dst **sql.Stmt
			sql string
		}{&s.upsertItems[i], itemUpsertSQL(n)})
	}
	return l
}

func (s *fanoutStmts) all() []*sql.Stmt {
	return append([]*sql.Stmt{s.deleteItem, s.deleteLeases, s.insertChunk, s.putMap, s.updateMap, s.mapExists, s.taskExists,
		s.forgetArtifacts, s.insertArtifact}, s.upsertItems...)
}

type mapKey struct {
	run int64
	idx int
}

// mapWriter writes the map changes of one Apply transaction. Item rows
// of every change are queued and written together, in the order given;
// the queue is written before anything that deletes item rows (an
// expansion, Delete) and at the end of the batch.
type mapWriter struct {
	ctx   context.Context
	tx    *sql.Tx
	st    *fanoutStmts
	bound map[*sql.Stmt]*sql.Stmt // the prepared statements bound to tx
	known map[mapKey]bool         // maps that exist in tx
	args  []any                   // queued item rows
	n     int
}

func newMapWriter(ctx context.Context, tx *sql.Tx, st *fanoutStmts) *mapWriter {
	return &mapWriter{ctx: ctx, tx: tx, st: st, bound: map[*sql.Stmt]*sql.Stmt{}, known: map[mapKey]bool{}}
}

// stmt returns s bound to the transaction, binding it on first use.
func (w *mapWriter) stmt(s *sql.Stmt) *sql.Stmt {
	b, ok := w.bound[s]
	if !ok {
		b = w.tx.StmtContext(w.ctx, s)
		w.bound[s] = b
	}
	return b
}

// apply writes the map changes of the change of run runID, in order.
func (w *mapWriter) apply(runID int64, changes []store.MapChange) error {
	for i := range changes {
		m := &changes[i]
		k := mapKey{runID, m.Index}
		if m.Values != nil {
			if err := w.expand(k, m.Values, m.Info); err != nil {
				return fmt.Errorf("expand map %d: %w", m.Index, err)
			}
		} else if m.Info != nil {
			if err := w.updateInfo(k, m.Info); err != nil {
				return fmt.Errorf("map %d: write info: %w", m.Index, err)
			}
		} else if len(m.Items) > 0 || len(m.Delete) > 0 {
			if err := w.exists(k); err != nil {
				return fmt.Errorf("map %d: %w", m.Index, err)
			}
		}
		for j := range m.Items {
			w.args = itemArgs(w.args, runID, m.Index, &m.Items[j])
			if w.n++; w.n == itemSizes[0] {
				if err := w.flush(); err != nil {
					return err
				}
			}
		}
		if len(m.Delete) > 0 {
			if err := w.flush(); err != nil {
				return err
			}
			del := w.stmt(w.st.deleteItem)
			for _, item := range m.Delete {
				if _, err := del.ExecContext(w.ctx, runID, m.Index, item); err != nil {
					return fmt.Errorf("map %d: delete item %d: %w", m.Index, item, err)
				}
			}
		}
		if m.Ended {
			if _, err := w.stmt(w.st.deleteLeases).ExecContext(w.ctx, runID, m.Index); err != nil {
				return fmt.Errorf("map %d: delete its leases: %w", m.Index, err)
			}
		}
	}
	return nil
}

// exists fails with ErrNotFound unless the map has been expanded.
func (w *mapWriter) exists(k mapKey) error {
	if w.known[k] {
		return nil
	}
	var one int
	err := w.stmt(w.st.mapExists).QueryRowContext(w.ctx, k.run, k.idx).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("never expanded: %w", store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	w.known[k] = true
	return nil
}

// infoArgs are the columns items, next, counts, slowest and updated_at of
// info.
func infoArgs(info *store.MapInfo) ([]any, error) {
	counts, err := encodeCounts(info.Counts)
	if err != nil {
		return nil, err
	}
	slowest, err := encodeSlowest(info.Slowest)
	if err != nil {
		return nil, err
	}
	at := info.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	return []any{info.Items, info.Next, counts, slowest, timeArg(at)}, nil
}

func (w *mapWriter) updateInfo(k mapKey, info *store.MapInfo) error {
	args, err := infoArgs(info)
	if err != nil {
		return err
	}
	res, err := w.stmt(w.st.updateMap).ExecContext(w.ctx, append(args, k.run, k.idx)...)
	if err := affectedOne(res, err); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("never expanded: %w", err)
		}
		return err
	}
	w.known[k] = true
	return nil
}

// expand replaces the map's values, deletes its item rows and writes its
// info. A task that does not exist is ErrNotFound (task_maps' foreign key).
func (w *mapWriter) expand(k mapKey, values []json.RawMessage, info *store.MapInfo) error {
	if err := w.flush(); err != nil {
		return err
	}
	args, err := infoArgs(info)
	if err != nil {
		return err
	}
	if _, err := w.stmt(w.st.putMap).ExecContext(w.ctx, append([]any{k.run, k.idx}, args...)...); err != nil {
		if code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
			err = fmt.Errorf("task: %w", store.ErrNotFound)
		}
		return err
	}
	w.known[k] = true
	for _, table := range []string{"map_items", "map_chunks", "map_leases"} {
		if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM `+table+` WHERE run_id = ? AND idx = ?`, k.run, k.idx); err != nil {
			return fmt.Errorf("delete earlier %s: %w", table, err)
		}
	}
	ins := w.stmt(w.st.insertChunk)
	for i, data := range store.MapChunks(values) {
		if _, err := ins.ExecContext(w.ctx, k.run, k.idx, i, data); err != nil {
			return fmt.Errorf("write chunk %d: %w", i, err)
		}
	}
	return nil
}

// flush writes the queued item rows: full batches with the largest
// prepared statement, the rest with one statement of each smaller size it
// needs.
func (w *mapWriter) flush() error {
	const cols = 15
	done := 0
	for i, size := range itemSizes {
		for w.n-done >= size {
			_, err := w.stmt(w.st.upsertItems[i]).ExecContext(w.ctx, w.args[done*cols:(done+size)*cols]...)
			if err != nil {
				return fmt.Errorf("write %d map items: %w", size, err)
			}
			done += size
		}
	}
	clear(w.args)
	w.args, w.n = w.args[:0], 0
	return nil
}

// MapInfos reads the run's task_maps rows by their key.
func (db *DB) MapInfos(ctx context.Context, runID int64) ([]store.MapInfo, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT run_id, idx, items, next, counts, slowest, updated_at
		FROM task_maps WHERE run_id = ? ORDER BY idx`, runID)
	if err != nil {
		return nil, fmt.Errorf("maps of run %d: %w", runID, err)
	}
	out, err := collect(rows, fmt.Sprintf("maps of run %d", runID), scanMapInfo)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		if err := db.runMissing(ctx, runID); err != nil {
			return nil, fmt.Errorf("maps of run %d: %w", runID, err)
		}
		return []store.MapInfo{}, nil
	}
	return out, nil
}

func scanMapInfo(row scanner) (store.MapInfo, error) {
	var m store.MapInfo
	var counts, slowest json.RawMessage
	if err := row.Scan(&m.RunID, &m.Index, &m.Items, &m.Next, jsonCol{&counts}, jsonCol{&slowest}, timeCol{&m.UpdatedAt}); err != nil {
		return m, err
	}
	return m, store.DecodeMapInfo(&m, counts, slowest)
}

// mapValuesSQL reads the map's item count and the chunks of a range in one
// statement (one snapshot, however the map is expanded meanwhile): a map
// never expanded has no row at all.
const mapValuesSQL = `SELECT m.items, c.chunk, c.data FROM task_maps m
	LEFT JOIN map_chunks c ON c.run_id = m.run_id AND c.idx = m.idx AND c.chunk BETWEEN ? AND ?
	WHERE m.run_id = ? AND m.idx = ? ORDER BY c.chunk`

// MapValues reads the chunks that hold items [from, from+n).
func (db *DB) MapValues(ctx context.Context, runID int64, index, from, n int) ([]json.RawMessage, error) {
	read, err := store.NewMapValuesRead(from, n)
	if err != nil {
		return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
	}
	rows, err := db.r.QueryContext(ctx, mapValuesSQL, read.First, read.Last, runID, index)
	if err != nil {
		return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var items int
		var chunk sql.NullInt64
		var data []byte
		if err := rows.Scan(&items, &chunk, &data); err != nil {
			return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
		}
		if err := read.Add(items, int(chunk.Int64), chunk.Valid, data); err != nil {
			return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
	}
	out, err := read.Values()
	if err != nil {
		return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
	}
	return out, nil
}

// MapItems reads a page of item rows from the primary key, or with states
// from the (run, task, state, item) index, one range per state, each
// bounded by the page size.
func (db *DB) MapItems(ctx context.Context, f store.MapItemFilter) ([]store.MapItem, error) {
	q, args, err := mapItemsQuery(f)
	if err != nil {
		return nil, fmt.Errorf("items of map %d of run %d: %w", f.Index, f.RunID, err)
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("items of map %d of run %d: %w", f.Index, f.RunID, err)
	}
	out, err := collect(rows, fmt.Sprintf("items of map %d of run %d", f.Index, f.RunID), scanMapItem)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		var one int
		err := db.r.QueryRowContext(ctx, mapExistsSQL, f.RunID, f.Index).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("items of map %d of run %d: never expanded: %w", f.Index, f.RunID, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("items of map %d of run %d: %w", f.Index, f.RunID, err)
		}
		return []store.MapItem{}, nil
	}
	return out, nil
}

func mapItemsQuery(f store.MapItemFilter) (string, []any, error) {
	f, err := store.PrepareMapItemFilter(f)
	if err != nil {
		return "", nil, err
	}
	limit := f.Limit
	states := make([]string, len(f.States))
	for i, s := range f.States {
		states[i] = string(s)
	}
	if len(states) == 0 {
		return `SELECT ` + itemCols + ` FROM map_items WHERE run_id = ? AND idx = ? AND item >= ? ORDER BY item LIMIT ?`,
			[]any{f.RunID, f.Index, f.From, limit}, nil
	}
	one := `SELECT ` + itemCols + ` FROM map_items INDEXED BY map_items_by_state
		WHERE run_id = ? AND idx = ? AND state = ? AND item >= ? ORDER BY item LIMIT ?`
	if len(states) == 1 {
		return one, []any{f.RunID, f.Index, states[0], f.From, limit}, nil
	}
	parts := make([]string, len(states))
	var args []any
	for i, s := range states {
		parts[i] = `SELECT * FROM (` + one + `)`
		args = append(args, f.RunID, f.Index, s, f.From, limit)
	}
	return strings.Join(parts, " UNION ALL ") + ` ORDER BY item LIMIT ?`, append(args, limit), nil
}

func scanMapItem(row scanner) (store.MapItem, error) {
	var it store.MapItem
	var state string
	var cached sql.NullInt64
	err := row.Scan(&it.RunID, &it.Index, &it.Item, &state, &it.Attempt, &it.Spent, &it.Worker,
		timeCol{&it.StartedAt}, timeCol{&it.FinishedAt}, timeCol{&it.ReadyAt}, intPtrCol{&it.ExitCode},
		&it.Message, jsonCol{&it.Result}, &cached, &it.Log)
	it.State = engine.TaskState(state)
	it.CachedFrom = cached.Int64
	return it, err
}
