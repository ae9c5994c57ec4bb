package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Map tasks (see store.Maps): one task_maps row per expanded map, its
// values in chunks of store.MapChunkItems JSON lines, and a map_items row
// per item worth keeping. Apply reduces a batch's map changes to their
// effect on each map (see mapPlan) and writes each map's item rows with one
// set-based upsert, whatever their number.

type mapKey struct {
	run int64
	idx int
}

// mapPlan is the effect of a batch's changes on one map: a set-based
// statement touches each row once, so the changes are reduced first. The
// last expansion wins and drops everything before it; the last info wins;
// each item ends as its last row or deleted.
type mapPlan struct {
	key mapKey
	// mustExist: a change before any expansion in the batch needs the map
	// to exist already.
	mustExist bool
	expanded  bool
	values    []json.RawMessage // of the last expansion
	info      *store.MapInfo    // the last info
	rows      []store.MapItem   // upserts, in first-seen order
	pos       map[int]int       // item → its row in rows; absent once deleted
	deleted   []int             // items deleted since the last expansion
	ended     bool              // its leases are deleted (MapChange.Ended)
}

// addMaps adds the map changes of the change of run runID to the plan.
func (p *applyPlan) addMaps(runID int64, changes []store.MapChange) {
	if p.mapPos == nil {
		p.mapPos = map[mapKey]int{}
	}
	for i := range changes {
		m := &changes[i]
		k := mapKey{runID, m.Index}
		j, ok := p.mapPos[k]
		if !ok {
			j = len(p.maps)
			p.mapPos[k] = j
			p.maps = append(p.maps, &mapPlan{key: k, pos: map[int]int{}})
		}
		mp := p.maps[j]
		if m.Values != nil {
			mp.expanded, mp.values = true, m.Values
			mp.rows, mp.deleted = mp.rows[:0], mp.deleted[:0]
			clear(mp.pos)
		} else if !mp.expanded {
			mp.mustExist = true
		}
		if m.Info != nil {
			mp.info = m.Info
		}
		for _, it := range m.Items {
			if r, ok := mp.pos[it.Item]; ok {
				mp.rows[r] = it
				continue
			}
			mp.pos[it.Item] = len(mp.rows)
			mp.rows = append(mp.rows, it)
		}
		for _, d := range m.Delete {
			delete(mp.pos, d)
			if !mp.expanded {
				mp.deleted = append(mp.deleted, d)
			}
		}
		mp.ended = mp.ended || m.Ended
	}
}

const (
	// mapsExistSQL returns the maps (run, index) of the arrays that
	// exist, each looked up on its own (see artifactTasksSQL).
	mapsExistSQL = `SELECT u.run_id, u.idx FROM unnest($1::bigint[], $2::int4[]) AS u(run_id, idx)
		WHERE EXISTS (SELECT 1 FROM task_maps m WHERE m.run_id = u.run_id AND m.idx = u.idx OFFSET 0)`
	putMapSQL = `INSERT INTO task_maps (run_id, idx, items, next, counts, slowest, updated_at)
		VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7)
		ON CONFLICT (run_id, idx) DO UPDATE SET items = excluded.items, next = excluded.next,
		counts = excluded.counts, slowest = excluded.slowest, updated_at = excluded.updated_at`
	updateMapSQL = `UPDATE task_maps SET items = $3, next = $4, counts = $5::text::jsonb, slowest = $6::text::jsonb,
		updated_at = $7 WHERE run_id = $1 AND idx = $2`
	deleteMapItemsSQL  = `DELETE FROM map_items WHERE run_id = $1 AND idx = $2`
	deleteMapChunksSQL = `DELETE FROM map_chunks WHERE run_id = $1 AND idx = $2`
	deleteMapLeasesSQL = `DELETE FROM map_leases WHERE run_id = $1 AND idx = $2`
	insertChunksSQL    = `INSERT INTO map_chunks (run_id, idx, chunk, data)
		SELECT $1, $2, u.ord - 1, u.data FROM unnest($3::text[]) WITH ORDINALITY AS u(data, ord)`
	// deleteItemsSQL finds each item by its key and deletes it by its row
	// (see forgetArtifactsSQL: item = ANY(array) may be left out of the
	// index condition, which would read every row of the map).
	deleteItemsSQL = `DELETE FROM map_items WHERE ctid = ANY(ARRAY(
		SELECT m.ctid FROM unnest($3::int4[]) AS u(item)
		CROSS JOIN LATERAL (SELECT ctid FROM map_items WHERE run_id = $1 AND idx = $2 AND item = u.item OFFSET 0) m))`
	upsertItemsSQL = `INSERT INTO map_items AS m (` + itemCols + `)
	SELECT $1::bigint, $2::int4, u.item, u.state, u.attempt, u.spent, u.worker, u.started_at, u.finished_at,
		u.ready_at, u.exit_code, u.message, u.result::jsonb, u.cached_from, u.log
	FROM unnest($3::int4[], $4::text[], $5::int4[], $6::int4[], $7::text[], $8::timestamptz[], $9::timestamptz[],
		$10::timestamptz[], $11::int4[], $12::text[], $13::text[], $14::int8[], $15::text[])
		AS u(item, state, attempt, spent, worker, started_at, finished_at, ready_at, exit_code, message, result,
			cached_from, log)
	ON CONFLICT (run_id, idx, item) DO UPDATE SET state = excluded.state, attempt = excluded.attempt,
		spent = excluded.spent, worker = excluded.worker, started_at = excluded.started_at,
		finished_at = excluded.finished_at, ready_at = excluded.ready_at, exit_code = excluded.exit_code,
		message = excluded.message, result = excluded.result, cached_from = excluded.cached_from, log = excluded.log`
)

const itemCols = `run_id, idx, item, state, attempt, spent, worker, started_at, finished_at, ready_at, exit_code,
	message, result, cached_from, log`

// infoArgs are the parameters $3.. of putMapSQL and updateMapSQL.
func infoArgs(info *store.MapInfo) ([]any, error) {
	var counts, slowest pgtype.Text
	if len(info.Counts) > 0 {
		b, err := json.Marshal(info.Counts)
		if err != nil {
			return nil, err
		}
		counts = pgtype.Text{String: string(b), Valid: true}
	}
	if len(info.Slowest) > 0 {
		b, err := json.Marshal(info.Slowest)
		if err != nil {
			return nil, err
		}
		slowest = pgtype.Text{String: string(b), Valid: true}
	}
	at := info.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	return []any{int32(info.Items), int32(info.Next), counts, slowest, store.NormTime(at)}, nil
}

// mapStatements are the statements that write the plan's maps: first the
// check that the maps changed without an expansion exist, then each map's
// expansion (its row first, whose foreign key finds a missing task), info,
// item rows and deletes.
func (p *applyPlan) mapStatements() ([]statement, error) {
	var sts []statement
	var runs []int64
	var idxs []int32
	for _, mp := range p.maps {
		// The update of an info checks the map too (it must update a row).
		if mp.mustExist && mp.info == nil {
			runs, idxs = append(runs, mp.key.run), append(idxs, int32(mp.key.idx))
		}
	}
	if len(runs) > 0 {
		sts = append(sts, statement{sql: mapsExistSQL, args: []any{runs, idxs}, kind: stmtMapsExist})
	}
	for _, mp := range p.maps {
		k := mp.key
		what := fmt.Sprintf("map %d of run %d", k.idx, k.run)
		if mp.info != nil {
			args, err := infoArgs(mp.info)
			if err != nil {
				return nil, fmt.Errorf("apply changes to run %d: map %d: %w", k.run, k.idx, err)
			}
			args = append([]any{k.run, int32(k.idx)}, args...)
			if mp.expanded {
				sts = append(sts, statement{sql: putMapSQL, args: args, kind: stmtMapPut, what: what})
			} else {
				sts = append(sts, statement{sql: updateMapSQL, args: args, kind: stmtMapInfo, what: what})
			}
		}
		if mp.expanded {
			sts = append(sts,
				statement{sql: deleteMapItemsSQL, args: []any{k.run, int32(k.idx)}, kind: stmtMapWrite, what: "delete the earlier items of " + what},
				statement{sql: deleteMapChunksSQL, args: []any{k.run, int32(k.idx)}, kind: stmtMapWrite, what: "delete the earlier values of " + what},
				statement{sql: deleteMapLeasesSQL, args: []any{k.run, int32(k.idx)}, kind: stmtMapWrite, what: "delete the earlier leases of " + what},
				statement{sql: insertChunksSQL, args: []any{k.run, int32(k.idx), store.MapChunks(mp.values)}, kind: stmtMapWrite, what: "write the values of " + what})
		}
		if st, ok := mp.itemStatement(what); ok {
			sts = append(sts, st)
		}
		if len(mp.deleted) > 0 {
			items := make([]int32, len(mp.deleted))
			for i, d := range mp.deleted {
				items[i] = int32(d)
			}
			sts = append(sts, statement{sql: deleteItemsSQL, args: []any{k.run, int32(k.idx), items}, kind: stmtMapWrite, what: "delete items of " + what})
		}
		if mp.ended && !mp.expanded {
			sts = append(sts, statement{sql: deleteMapLeasesSQL, args: []any{k.run, int32(k.idx)}, kind: stmtMapWrite, what: "delete the leases of " + what})
		}
	}
	return sts, nil
}

// itemStatement is the upsert of the map's item rows (not deleted since).
func (mp *mapPlan) itemStatement(what string) (statement, bool) {
	n := len(mp.pos)
	if n == 0 {
		return statement{}, false
	}
	item, attempt, spent, exit := make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]pgtype.Int4, 0, n)
	state, worker, message, log := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	started, finished, ready := make([]pgtype.Timestamptz, 0, n), make([]pgtype.Timestamptz, 0, n), make([]pgtype.Timestamptz, 0, n)
	result := make([]pgtype.Text, 0, n)
	cached := make([]pgtype.Int8, 0, n)
	for r := range mp.rows {
		it := &mp.rows[r]
		if at, ok := mp.pos[it.Item]; !ok || at != r {
			continue // deleted since
		}
		item, attempt, spent = append(item, int32(it.Item)), append(attempt, int32(it.Attempt)), append(spent, int32(it.Spent))
		exit = append(exit, int4Arg(it.ExitCode))
		state, worker = append(state, string(it.State)), append(worker, store.Text(it.Worker))
		message, log = append(message, store.Text(it.Message)), append(log, store.Text(it.Log))
		started, finished, ready = append(started, tsArg(it.StartedAt)), append(finished, tsArg(it.FinishedAt)), append(ready, tsArg(it.ReadyAt))
		result = append(result, jsonText(it.Result))
		cached = append(cached, pgtype.Int8{Int64: it.CachedFrom, Valid: it.CachedFrom != 0})
	}
	return statement{sql: upsertItemsSQL, kind: stmtMapWrite, what: fmt.Sprintf("write %d items of %s", n, what),
		args: []any{mp.key.run, int32(mp.key.idx), item, state, attempt, spent, worker, started, finished, ready, exit,
			message, result, cached, log}}, true
}

// checkMapsExist reads the result of mapsExistSQL: every map of the plan
// that must exist came back.
func (p *applyPlan) checkMapsExist(br pgx.BatchResults) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("apply changes: look up maps: %w", err)
	}
	found := map[mapKey]bool{}
	var k mapKey
	if _, err := pgx.ForEachRow(rows, []any{&k.run, &k.idx}, func() error {
		found[k] = true
		return nil
	}); err != nil {
		return fmt.Errorf("apply changes: look up maps: %w", err)
	}
	for _, mp := range p.maps {
		if mp.mustExist && mp.info == nil && !found[mp.key] {
			return fmt.Errorf("apply changes to run %d: map %d: never expanded: %w", mp.key.run, mp.key.idx, store.ErrNotFound)
		}
	}
	return nil
}

// MapInfos reads the run's task_maps rows by their key; when there are
// none, whether the run exists.
func (db *DB) MapInfos(ctx context.Context, runID int64) ([]store.MapInfo, error) {
	rows, err := db.pool.Query(ctx, `SELECT run_id, idx, items, next, counts::text, slowest::text, updated_at
		FROM task_maps WHERE run_id = $1 ORDER BY idx`, runID)
	if err != nil {
		return nil, fmt.Errorf("maps of run %d: %w", runID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.MapInfo, error) { return scanMapInfo(row) })
	if err != nil {
		return nil, fmt.Errorf("maps of run %d: %w", runID, err)
	}
	if len(out) == 0 {
		if err := db.runMissing(ctx, runID); err != nil {
			return nil, fmt.Errorf("maps of run %d: %w", runID, err)
		}
		return []store.MapInfo{}, nil
	}
	return out, nil
}

func scanMapInfo(row pgx.Row) (store.MapInfo, error) {
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
	LEFT JOIN map_chunks c ON c.run_id = m.run_id AND c.idx = m.idx AND c.chunk BETWEEN $1 AND $2
	WHERE m.run_id = $3 AND m.idx = $4 ORDER BY c.chunk`

// MapValues reads the chunks that hold items [from, from+n).
func (db *DB) MapValues(ctx context.Context, runID int64, index, from, n int) ([]json.RawMessage, error) {
	read, err := store.NewMapValuesRead(from, n)
	if err != nil {
		return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
	}
	rows, err := db.pool.Query(ctx, mapValuesSQL, read.First, read.Last, runID, index)
	if err != nil {
		return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var items int
		var chunk pgtype.Int4 // NULL: no chunk in the range
		var data []byte
		if err := rows.Scan(&items, &chunk, &data); err != nil {
			return nil, fmt.Errorf("values of map %d of run %d: %w", index, runID, err)
		}
		if err := read.Add(items, int(chunk.Int32), chunk.Valid, data); err != nil {
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
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("items of map %d of run %d: %w", f.Index, f.RunID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.MapItem, error) { return scanMapItem(row) })
	if err != nil {
		return nil, fmt.Errorf("items of map %d of run %d: %w", f.Index, f.RunID, err)
	}
	if len(out) == 0 {
		var one int
		err := db.pool.QueryRow(ctx, `SELECT 1 FROM task_maps WHERE run_id = $1 AND idx = $2`, f.RunID, f.Index).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("items of map %d of run %d: never expanded: %w", f.Index, f.RunID, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("items of map %d of run %d: %w", f.Index, f.RunID, err)
		}
		return []store.MapItem{}, nil
	}
	return out, nil
}

const itemSelect = `SELECT run_id, idx, item, state, attempt, spent, worker, started_at, finished_at, ready_at,
	exit_code, message, result::text, cached_from, log FROM map_items`

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
		return itemSelect + ` WHERE run_id = $1 AND idx = $2 AND item >= $3 ORDER BY item LIMIT $4`,
			[]any{f.RunID, f.Index, f.From, limit}, nil
	}
	parts := make([]string, len(states))
	args := []any{f.RunID, f.Index, f.From, limit}
	for i, s := range states {
		args = append(args, s)
		parts[i] = fmt.Sprintf(`(%s WHERE run_id = $1 AND idx = $2 AND state = $%d AND item >= $3 ORDER BY item LIMIT $4)`,
			itemSelect, len(args))
	}
	if len(parts) == 1 {
		return parts[0], args, nil
	}
	return strings.Join(parts, " UNION ALL ") + ` ORDER BY item LIMIT $4`, args, nil
}

func scanMapItem(row pgx.Row) (store.MapItem, error) {
	var it store.MapItem
	var state string
	var cached *int64
	err := row.Scan(&it.RunID, &it.Index, &it.Item, &state, &it.Attempt, &it.Spent, &it.Worker,
		timeCol{&it.StartedAt}, timeCol{&it.FinishedAt}, timeCol{&it.ReadyAt}, intPtrCol{&it.ExitCode},
		&it.Message, jsonCol{&it.Result}, &cached, &it.Log)
	it.State = engine.TaskState(state)
	if cached != nil {
		it.CachedFrom = *cached
	}
	return it, err
}
