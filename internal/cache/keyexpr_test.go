package cache

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestCacheExpand(t *testing.T) {
	env := map[string]string{"TASUKI_ITEM": "ana", "DATE": "2026-11-21", "EMPTY": ""}
	for _, c := range []struct{ pattern, want string }{
		{"users/${TASUKI_ITEM}.json", "users/ana.json"},
		{"data/${DATE}/*.csv", "data/2026-11-21/*.csv"},
		{"${DATE}${TASUKI_ITEM}", "2026-11-21ana"},
		{"x${EMPTY}y", "xy"},
		{"plain/path", "plain/path"},
		{"cost$$.csv", "cost$.csv"},
		{"a$b", "a$b"},
		{"end$", "end$"},
		{"${MISSING}/x", "${MISSING}/x"},
		{"${UNCLOSED", "${UNCLOSED"},
		{"${MISSING}${DATE}", "${MISSING}2026-11-21"},
	} {
		if got := Expand(c.pattern, env); got != c.want {
			t.Errorf("Expand(%q) = %q, want %q", c.pattern, got, c.want)
		}
	}
}

// decoded is a JSON document as encoding/json decodes it, as the runner
// passes results and items.
func decoded(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCacheEvalKey(t *testing.T) {
	vars := map[string]any{
		VarParams:   decoded(t, `{"date": "2026-11-21", "region": "eu", "n": 3}`),
		VarItem:     decoded(t, `{"user": "ana", "tags": ["b", "a"]}`),
		VarNeeds:    decoded(t, `{"extract": {"rows": 42, "path": "s3://x"}}`),
		VarInterval: decoded(t, `{"start": "2026-11-21T00:00:00Z", "end": "2026-11-22T00:00:00Z"}`),
	}
	for _, c := range []struct{ expr, want, err string }{
		{expr: `params.date`, want: `"2026-11-21"`},
		{expr: `params.n`, want: `3`},
		{expr: `params.n + 1`, want: `4`},
		{expr: `item.user + "/" + params.region`, want: `"ana/eu"`},
		{expr: `[params.date, item.user]`, want: `["2026-11-21","ana"]`},
		{expr: `{"u": item.user, "d": params.date}`, want: `{"d":"2026-11-21","u":"ana"}`},
		{expr: `needs.extract`, want: `{"path":"s3://x","rows":42}`},
		{expr: `needs.extract.rows > 10`, want: `true`},
		{expr: `interval.start`, want: `"2026-11-21T00:00:00Z"`},
		{expr: `"<&>"`, want: `"<&>"`},
		{expr: `params.dat`, err: `cache.key "params.dat" is null`},
		{expr: `params.dat ?? ""`, want: `""`},
		{expr: `param.date`, err: `unknown name param`},
		{expr: `params.date ==`, err: `cache.key "params.date =="`},
		{expr: `item.user.first`, err: `cache.key "item.user.first"`},
		{expr: ``, err: `cache.key is empty`},
		{expr: strings.Repeat("x", MaxKeyExprLen+1), err: `at most 4096`},
	} {
		got, err := EvalKey(c.expr, vars)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("EvalKey(%.40q) = %q, %v; want an error containing %q", c.expr, got, err, c.err)
			} else if strings.Contains(err.Error(), "\n") {
				t.Errorf("EvalKey(%.40q): error spans lines: %q", c.expr, err)
			}
		case err != nil || got != c.want:
			t.Errorf("EvalKey(%q) = %q, %v; want %q", c.expr, got, err, c.want)
		}
	}

	// The same value renders alike however its maps were built.
	a, _ := EvalKey(`item`, map[string]any{VarItem: map[string]any{"b": 1, "a": []any{"x", 2.5}}})
	b, _ := EvalKey(`item`, map[string]any{VarItem: decoded(t, `{"a": ["x", 2.5], "b": 1}`)})
	if a != b || a != `{"a":["x",2.5],"b":1}` {
		t.Errorf("renderings %s and %s", a, b)
	}

	if _, err := EvalKey(`params.date`, map[string]any{"param": nil}); err == nil || !strings.Contains(err.Error(), `unknown variable "param"`) {
		t.Errorf("an unknown variable: %v", err)
	}
	// A task that is not a map has no item: the expression may still
	// compile and say so.
	if _, err := EvalKey(`item.user`, map[string]any{VarParams: map[string]any{}}); err == nil {
		t.Error("item.user without an item gave a key")
	}
}

func TestCacheExpiresAt(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, c := range []struct {
		task, def time.Duration
		want      time.Time
	}{
		{0, 30 * day, now.Add(30 * day)},
		{12 * time.Hour, 30 * day, now.Add(12 * time.Hour)},
		{90 * day, 30 * day, now.Add(90 * day)},
		{0, 0, time.Time{}},
		{time.Hour, 0, now.Add(time.Hour)},
	} {
		if got := ExpiresAt(now, c.task, c.def); !got.Equal(c.want) {
			t.Errorf("ExpiresAt(ttl %s, default %s) = %s, want %s", c.task, c.def, got, c.want)
		}
	}
}
