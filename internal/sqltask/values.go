package sqltask

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// resultSet is the rows a statement returned, as far as they are kept.
type resultSet struct {
	columns   []string
	rows      [][]any // JSON values
	count     int     // rows returned, kept or not
	truncated bool
}

// readRows reads every row of rows, keeping the first maxRows as JSON
// values. All rows are read: a driver must reach the end of a result before
// the connection can run the next statement.
func readRows(rows *sql.Rows, maxRows int) (*resultSet, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("read the columns: %w", err)
	}
	var types []string
	if cts, err := rows.ColumnTypes(); err == nil {
		for _, ct := range cts {
			types = append(types, strings.ToUpper(ct.DatabaseTypeName()))
		}
	}
	rs := &resultSet{columns: cols, rows: [][]any{}}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		rs.count++
		if len(rs.rows) >= maxRows {
			rs.truncated = true
			continue
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read row %d: %w", rs.count, err)
		}
		row := make([]any, len(cols))
		for i, v := range vals {
			typ := ""
			if i < len(types) {
				typ = types[i]
			}
			row[i] = jsonValue(v, typ)
		}
		rs.rows = append(rs.rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// jsonValue turns a value a driver returned into a JSON value: numbers,
// strings, booleans and null as themselves, times in RFC 3339, bytes as a
// string when they are UTF-8 text (MySQL returns text so) and in base64
// otherwise. A DECIMAL or NUMERIC column's value, which drivers return as
// text to keep its precision, is written as a JSON number with all its
// digits. typ is the column's database type name, in upper case.
func jsonValue(v any, typ string) any {
	switch x := v.(type) {
	case nil, bool, int64, int32, int, uint64, string:
		if s, ok := x.(string); ok {
			return textValue(s, typ)
		}
		return x
	case float64:
		return floatValue(x)
	case float32:
		return floatValue(float64(x))
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case []byte:
		if utf8.Valid(x) {
			return textValue(string(x), typ)
		}
		return base64.StdEncoding.EncodeToString(x)
	}
	return fmt.Sprint(v)
}

// textValue is a text value of a column of type typ.
func textValue(s, typ string) any {
	switch typ {
	case "DECIMAL", "NUMERIC":
		if _, err := strconv.ParseFloat(s, 64); err == nil && json.Valid([]byte(s)) {
			return json.Number(s)
		}
	}
	return s
}

// floatValue is f, or its name for the values JSON has no number for.
func floatValue(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// truthy reports whether a wait's first column holds: true, a non-zero
// number, or the text t, true or 1 (or any non-zero number in text).
func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0 && !math.IsNaN(x)
	case []byte:
		return truthyText(string(x))
	case string:
		return truthyText(x)
	case json.Number:
		return truthyText(x.String())
	}
	return false
}

func truthyText(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "t", "true", "1":
		return true
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f != 0 && !math.IsNaN(f)
}
