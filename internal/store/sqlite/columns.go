package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Conversions between Go values and columns. Times are INTEGER microseconds
// since the Unix epoch in UTC and NULL for the zero time; JSON is TEXT and NULL
// when absent; optional integers are NULL when nil.

// timeArg is the column value of t.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// jsonArg is the column value of raw JSON (TEXT: a []byte would be a BLOB,
// which json_valid and STRICT tables reject).
func jsonArg(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

func intPtrArg(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func boolArg(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// timeCol scans a time column.
type timeCol struct{ p *time.Time }

func (c timeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.p = time.Time{}
	case int64:
		*c.p = time.UnixMicro(x).UTC()
	default:
		return fmt.Errorf("time column holds %T, want INTEGER microseconds", v)
	}
	return nil
}

// jsonCol scans a JSON column.
type jsonCol struct{ p *json.RawMessage }

func (c jsonCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.p = nil
	case string:
		*c.p = json.RawMessage(x)
	case []byte:
		*c.p = append(json.RawMessage(nil), x...)
	default:
		return fmt.Errorf("JSON column holds %T, want TEXT", v)
	}
	return nil
}

// intPtrCol scans a nullable integer column.
type intPtrCol struct{ p **int }

func (c intPtrCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.p = nil
	case int64:
		n := int(x)
		*c.p = &n
	default:
		return fmt.Errorf("integer column holds %T", v)
	}
	return nil
}

// boolCol scans a 0/1 column.
type boolCol struct{ p *bool }

func (c boolCol) Scan(v any) error {
	x, ok := v.(int64)
	if !ok {
		return fmt.Errorf("boolean column holds %T, want INTEGER", v)
	}
	*c.p = x != 0
	return nil
}

// scanner is a row to scan: *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// collect scans every row of rows with scan and closes rows: the SQLite
// counterpart of pgx.CollectRows, so each list query is its SQL and its
// scan function. what says what was being listed in errors.
func collect[T any](rows *sql.Rows, what string, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
