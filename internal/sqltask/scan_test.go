package sqltask

import (
	"slices"
	"strings"
	"testing"
)

// want is one statement split should produce.
type want struct {
	text   string
	params []string
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		d    dialect
		sql  string
		want []want
	}{
		{"postgres placeholders", postgres, "SELECT :a, :b_2", []want{{"SELECT $1, $2", []string{"a", "b_2"}}}},
		{"mysql placeholders", mysql, "SELECT :a, :b", []want{{"SELECT ?, ?", []string{"a", "b"}}}},
		{"sqlite placeholders", sqlite, "SELECT :a, :b", []want{{"SELECT ?, ?", []string{"a", "b"}}}},
		{"a name used twice is bound twice", postgres, "SELECT :a + :a", []want{{"SELECT $1 + $2", []string{"a", "a"}}}},
		{"at the very start", postgres, ":a", []want{{"$1", []string{"a"}}}},
		{"single quotes", postgres, "SELECT ':a; x', :b", []want{{"SELECT ':a; x', $1", []string{"b"}}}},
		{"doubled single quote", postgres, "SELECT 'it''s :a;', :b", []want{{"SELECT 'it''s :a;', $1", []string{"b"}}}},
		{"double-quoted identifier", postgres, `SELECT "a:b;c""d" FROM t WHERE x = :v`, []want{{`SELECT "a:b;c""d" FROM t WHERE x = $1`, []string{"v"}}}},
		{"postgres cast", postgres, "SELECT :a::int, x::text, '12:30'::time", []want{{"SELECT $1::int, x::text, '12:30'::time", []string{"a"}}}},
		{"postgres backslash is text in a standard string", postgres, `SELECT 'a\', :b`, []want{{`SELECT 'a\', $1`, []string{"b"}}}},
		{"postgres E string escapes", postgres, `SELECT E'it\'s :a;', :b`, []want{{`SELECT E'it\'s :a;', $1`, []string{"b"}}}},
		{"postgres E only as a prefix", postgres, `SELECT xE'\', :b`, []want{{`SELECT xE'\', $1`, []string{"b"}}}},
		{"dollar quotes", postgres,
			"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT :x $$ LANGUAGE sql; SELECT :y",
			[]want{{"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT :x $$ LANGUAGE sql", nil}, {"SELECT $1", []string{"y"}}}},
		{"tagged dollar quotes", postgres, "DO $fn$ BEGIN PERFORM 1; RAISE NOTICE '$$ :a'; END $fn$; SELECT :b",
			[]want{{"DO $fn$ BEGIN PERFORM 1; RAISE NOTICE '$$ :a'; END $fn$", nil}, {"SELECT $1", []string{"b"}}}},
		{"positional and identifiers with $ are no dollar quotes", postgres, "SELECT a$b$c, $1 FROM t WHERE y = :v",
			[]want{{"SELECT a$b$c, $1 FROM t WHERE y = $1", []string{"v"}}}},
		{"line comment", postgres, "-- :a ;\nSELECT 1, :c -- :d; x\n", []want{{"-- :a ;\nSELECT 1, $1 -- :d; x", []string{"c"}}}},
		{"block comment", sqlite, "SELECT 1 /* :b ; */, :c", []want{{"SELECT 1 /* :b ; */, ?", []string{"c"}}}},
		{"postgres comments nest", postgres, "/* a /* b */ :x; */ SELECT :y", []want{{"/* a /* b */ :x; */ SELECT $1", []string{"y"}}}},
		{"mysql comments do not nest", mysql, "/* a /* b */ SELECT :x", []want{{"/* a /* b */ SELECT ?", []string{"x"}}}},
		{"mysql backslash escapes", mysql, `SELECT 'it\'s :a;', :b`, []want{{`SELECT 'it\'s :a;', ?`, []string{"b"}}}},
		{"mysql double quotes are strings", mysql, `SELECT "a\":b;", :c`, []want{{`SELECT "a\":b;", ?`, []string{"c"}}}},
		{"mysql backquotes", mysql, "SELECT `a:b;c``d` FROM t WHERE x = :v", []want{{"SELECT `a:b;c``d` FROM t WHERE x = ?", []string{"v"}}}},
		{"sqlite backquotes", sqlite, "SELECT `a:b;c` FROM t", []want{{"SELECT `a:b;c` FROM t", nil}}},
		{"sqlite brackets", sqlite, "SELECT [a:b;c] FROM t WHERE x=:v", []want{{"SELECT [a:b;c] FROM t WHERE x=?", []string{"v"}}}},
		{"mysql hash comment", mysql, "SELECT 1 # :a ;\n, :b", []want{{"SELECT 1 # :a ;\n, ?", []string{"b"}}}},
		{"mysql -- needs a space", mysql, "SELECT 1--:a\n;SELECT 2 -- :b", []want{{"SELECT 1--?", []string{"a"}}, {"SELECT 2 -- :b", nil}}},
		{"assignment", mysql, "SET @x := :v", []want{{"SET @x := ?", []string{"v"}}}},
		{"array slices", postgres, "SELECT arr[lo:hi], arr[1:2] FROM t", []want{{"SELECT arr[lo:hi], arr[1:2] FROM t", nil}}},
		{"colon before a non-name", postgres, "SELECT ': ', x : y, :1, :名", []want{{"SELECT ': ', x : y, :1, :名", nil}}},
		{"empty and comment-only statements dropped", postgres, "SELECT 1;; -- tail\n ; /* x */", []want{{"SELECT 1", nil}}},
		{"whitespace only", postgres, " \n\t", nil},
		{"sqlite trigger body", sqlite,
			"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = CASE WHEN n > 0 THEN n + 1 ELSE 1 END; DELETE FROM v; END; SELECT :x",
			[]want{{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = CASE WHEN n > 0 THEN n + 1 ELSE 1 END; DELETE FROM v; END", nil}, {"SELECT ?", []string{"x"}}}},
		{"sqlite temp trigger", sqlite, "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2",
			[]want{{"CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", nil}, {"SELECT 2", nil}}},
		{"a column named begin is no trigger", sqlite, "CREATE TABLE t (trigger TEXT, begin TEXT); SELECT 2",
			[]want{{"CREATE TABLE t (trigger TEXT, begin TEXT)", nil}, {"SELECT 2", nil}}},
		{"postgres BEGIN is a statement", postgres, "BEGIN; SELECT 1; END", []want{{"BEGIN", nil}, {"SELECT 1", nil}, {"END", nil}}},
		{"injection text stays in one string", postgres, "INSERT INTO t VALUES ('x''); DROP TABLE t; --')",
			[]want{{"INSERT INTO t VALUES ('x''); DROP TABLE t; --')", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := split(tt.d, tt.sql)
			if err != nil {
				t.Fatalf("split: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d statements %q, want %d", len(got), texts(got), len(tt.want))
			}
			for i, w := range tt.want {
				if got[i].text != w.text {
					t.Errorf("statement %d text\n got %q\nwant %q", i+1, got[i].text, w.text)
				}
				if !slices.Equal(got[i].params, w.params) {
					t.Errorf("statement %d params = %q, want %q", i+1, got[i].params, w.params)
				}
			}
		})
	}
}

func texts(stmts []statement) []string {
	var out []string
	for _, s := range stmts {
		out = append(out, s.text)
	}
	return out
}

func TestSplitErrors(t *testing.T) {
	tests := []struct {
		name string
		d    dialect
		sql  string
		want string
	}{
		{"open quote", postgres, "SELECT 1;\nSELECT 'abc", "line 2: the quoted string"},
		{"open identifier", postgres, `SELECT "abc`, `line 1: the quoted name "..."`},
		{"open backquote", mysql, "SELECT `abc", "quoted name `...`"},
		{"open bracket", sqlite, "SELECT [abc", "quoted name [...]"},
		{"trailing backslash in mysql", mysql, `SELECT 'abc\`, "not closed"},
		{"open comment", postgres, "SELECT 1 /* x", "line 1: the comment /* starting here is not closed"},
		{"open nested comment", postgres, "SELECT 1 /* x /* y */", "not closed"},
		{"open dollar quote", postgres, "SELECT $tag$ x $$", "$tag$ starting here is not closed with $tag$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := split(tt.d, tt.sql)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("split(%q) error = %v, want one containing %q", tt.sql, err, tt.want)
			}
		})
	}
}

func TestSplitDescribesStatements(t *testing.T) {
	long := "SELECT " + strings.Repeat("x, ", 40) + "1"
	stmts, err := split(postgres, "\n\n-- first\nINSERT INTO t VALUES (:a)\n  ON CONFLICT DO NOTHING;\n"+
		"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x;\n"+
		"WITH x AS (SELECT 1) SELECT * FROM x;\n"+
		"DELETE FROM t RETURNING id;\n"+long)
	if err != nil {
		t.Fatal(err)
	}
	type desc struct {
		line      int
		summary   string
		verb      string
		rows      bool
		modifying bool
	}
	want := []desc{
		{4, "INSERT INTO t VALUES (:a) …", "INSERT", false, true},
		{6, "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "INSERT", false, true},
		{7, "WITH x AS (SELECT 1) SELECT * FROM x", "SELECT", true, false},
		{8, "DELETE FROM t RETURNING id", "DELETE", true, true},
		{9, long[:summaryLen] + " …", "SELECT", true, false},
	}
	if len(stmts) != len(want) {
		t.Fatalf("got %d statements, want %d", len(stmts), len(want))
	}
	for i, w := range want {
		s := stmts[i]
		got := desc{s.line, s.summary, s.verb, s.returnsRows(), s.modifiesRows()}
		if got != w {
			t.Errorf("statement %d = %+v, want %+v", i+1, got, w)
		}
	}
	if stmts[0].source != "-- first\nINSERT INTO t VALUES (:a)\n  ON CONFLICT DO NOTHING" {
		t.Errorf("source = %q", stmts[0].source)
	}
}

func TestControlsTransaction(t *testing.T) {
	for sql, want := range map[string]bool{
		"BEGIN": true, "begin transaction": true, "START TRANSACTION READ ONLY": true, "COMMIT": true,
		"END": true, "ROLLBACK": true, "rollback work": true, "ABORT": true,
		"ROLLBACK TO SAVEPOINT a": false, "SAVEPOINT a": false, "RELEASE SAVEPOINT a": false,
		"START REPLICA": false, "SELECT 1": false, "DO $$ BEGIN COMMIT; END $$": false,
	} {
		stmts, err := split(postgres, sql)
		if err != nil || len(stmts) != 1 {
			t.Fatalf("split(%q) = %d statements, %v", sql, len(stmts), err)
		}
		if got := stmts[0].controlsTransaction(); got != want {
			t.Errorf("controlsTransaction(%q) = %v, want %v", sql, got, want)
		}
	}
}

func TestBind(t *testing.T) {
	env := map[string]string{
		"TASUKI_PARAM_DAY":        "2026-01-02",
		"TASUKI_PARAM_MY_PARAM":   "x'; DROP TABLE t; --",
		"TASUKI_PARAM_RUN_ID":     "from-a-param",
		"TASUKI_INTERVAL_START":   "2026-01-01T00:00:00Z",
		"TASUKI_INTERVAL_END":     "2026-01-02T00:00:00Z",
		"TASUKI_RUN_ID":           "42",
		"TASUKI_PARAM_":           "ignored",
		"SOMETHING_ELSE_ENTIRELY": "x",
	}
	stmts, err := split(postgres, "SELECT :day, :my_param, :My_Param; SELECT :interval_start, :interval_end, :run_id")
	if err != nil {
		t.Fatal(err)
	}
	args, err := bind(stmts, env)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]any{
		{"2026-01-02", "x'; DROP TABLE t; --", "x'; DROP TABLE t; --"},
		// A parameter named run_id wins over the run's id.
		{"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "from-a-param"},
	}
	for i := range want {
		if !slices.Equal(args[i], want[i]) {
			t.Errorf("statement %d args = %q, want %q", i+1, args[i], want[i])
		}
	}

	stmts, _ = split(postgres, "SELECT 1;\nSELECT :dya")
	_, err = bind(stmts, env)
	if err == nil {
		t.Fatal("an unknown parameter was bound")
	}
	const msg = "statement 2 (line 2): unknown parameter :dya; available: :day, :interval_end, :interval_start, :my_param, :run_id"
	if err.Error() != msg {
		t.Errorf("error\n got %q\nwant %q", err, msg)
	}
	_, err = bind(stmts, nil)
	if err == nil || !strings.Contains(err.Error(), "the run has no parameters") {
		t.Errorf("error without parameters = %v", err)
	}
}

// FuzzSplit checks that no input makes the scanner panic, and that a
// statement it returns splits again into itself: the boundaries it found
// do not depend on what came before.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"SELECT :a, ':b', \"c:d\", `e:f`, [g:h] -- :i\n/* :j */ ; SELECT :k::int",
		"DO $x$ ; $x$; SELECT $1, $$ :a $$",
		`SELECT E'\'', 'a\', "\"" # x`,
		"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT CASE WHEN 1 THEN 2 END; END; SELECT 1",
		"/* /* */ */ :a; :b:=:c; x[1:n]",
		"SELECT 1--:a\n;--",
		"'", "$", ":", "/*", "E'\\", "$a", "[", "\xff:a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		for _, d := range []dialect{postgres, mysql, sqlite} {
			stmts, err := split(d, src)
			if err != nil {
				continue
			}
			for _, st := range stmts {
				if st.text == "" || st.source == "" || st.line < 1 {
					t.Fatalf("%s: empty statement %+v from %q", d, st, src)
				}
				again, err := split(d, st.source)
				if err != nil || len(again) != 1 || !slices.Equal(again[0].params, st.params) || again[0].text != st.text {
					t.Fatalf("%s: statement %q of %q splits again into %q (%v)", d, st.source, src, texts(again), err)
				}
			}
		}
	})
}
