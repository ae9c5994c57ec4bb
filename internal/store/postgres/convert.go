package postgres

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Conversions between Go values and columns. Times are timestamptz and NULL
// for the zero time; JSON is jsonb, NULL when absent, read back as text;
// optional integers are NULL when nil.

// timeArg is the parameter value of t: NULL for the zero time.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// tsArg is t as an element of a timestamptz[] parameter.
func tsArg(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// jsonArg is the parameter value of raw JSON: NULL when empty.
func jsonArg(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return []byte(raw)
}

// jsonText is raw JSON as an element of a text[] parameter cast to jsonb.
func jsonText(raw json.RawMessage) pgtype.Text {
	return pgtype.Text{String: string(raw), Valid: len(raw) > 0}
}

func intPtrArg(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func int4Arg(p *int) pgtype.Int4 {
	if p == nil {
		return pgtype.Int4{}
	}
	return pgtype.Int4{Int32: int32(*p), Valid: true}
}

// timeCol scans a nullable timestamptz column into a time.Time in UTC (the
// zero time for NULL).
type timeCol struct{ p *time.Time }

// ScanTimestamptz implements pgtype.TimestamptzScanner.
func (c timeCol) ScanTimestamptz(v pgtype.Timestamptz) error {
	if !v.Valid {
		*c.p = time.Time{}
		return nil
	}
	if v.InfinityModifier != pgtype.Finite {
		return fmt.Errorf("timestamp is %v, want a finite time", v.InfinityModifier)
	}
	*c.p = v.Time.UTC()
	return nil
}

// jsonCol scans a jsonb column selected as text (col::text) into raw JSON, nil
// for NULL. Reading text keeps a stored JSON null as the JSON "null", where
// pgx's jsonb decoding would turn it into nil.
type jsonCol struct{ p *json.RawMessage }

// ScanText implements pgtype.TextScanner.
func (c jsonCol) ScanText(v pgtype.Text) error {
	if !v.Valid {
		*c.p = nil
		return nil
	}
	*c.p = json.RawMessage(v.String)
	return nil
}

// intPtrCol scans a nullable integer column.
type intPtrCol struct{ p **int }

// ScanInt64 implements pgtype.Int64Scanner.
func (c intPtrCol) ScanInt64(v pgtype.Int8) error {
	if !v.Valid {
		*c.p = nil
		return nil
	}
	n := int(v.Int64)
	*c.p = &n
	return nil
}
