package sqltask

import (
	"fmt"
	"slices"
	"strings"
)

// dialect is the SQL dialect of a database: how its placeholders look and
// which quoting and comment forms its scanner must step over.
type dialect int

const (
	postgres dialect = iota + 1
	mysql
	sqlite
)

func (d dialect) String() string {
	switch d {
	case postgres:
		return "postgres"
	case mysql:
		return "mysql"
	case sqlite:
		return "sqlite"
	}
	return fmt.Sprintf("dialect(%d)", int(d))
}

// statement is one statement of a task's SQL, ready to run: its text with
// each :name replaced by the dialect's placeholder, and the names to bind,
// one per placeholder, in order.
type statement struct {
	// text is what is sent to the database.
	text string
	// params are the parameter names of the placeholders, in order (a
	// name used twice appears twice: each occurrence is its own
	// placeholder, so PostgreSQL may infer a different type for each).
	params []string
	// source is the statement as written, trimmed.
	source string
	// line is the line of source where the statement's code starts.
	line int
	// summary is the statement's first line of code, for logs.
	summary string
	// verb is the statement's leading keyword in upper case; for WITH, the
	// keyword of the statement the common table expressions precede.
	verb string
	// returning is set when the statement has a RETURNING clause.
	returning bool
}

// returnsRows reports whether the statement yields a result set, so it is
// run as a query rather than executed.
func (s *statement) returnsRows() bool {
	switch s.verb {
	case "SELECT", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "PRAGMA":
		return true
	}
	return s.returning
}

// modifiesRows reports whether the statement's verb changes rows, so the
// count the driver reports for it is a count of changed rows. (SQLite
// reports the count of the last INSERT, UPDATE or DELETE for any other
// statement.)
func (s *statement) modifiesRows() bool {
	switch s.verb {
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "UPSERT":
		return true
	}
	return false
}

// controlsTransaction reports whether the statement begins or ends a
// transaction (a savepoint's ROLLBACK TO does not): the task runs its
// statements in a transaction of its own, which a COMMIT in the middle
// would end early.
func (s *statement) controlsTransaction() bool {
	words := strings.Fields(strings.ToUpper(s.summary))
	switch s.verb {
	case "BEGIN", "COMMIT", "END", "ABORT":
		return true
	case "START":
		return len(words) > 1 && words[1] == "TRANSACTION"
	case "ROLLBACK":
		return !slices.Contains(words, "TO")
	}
	return false
}

// summaryLen bounds the statement text a log line shows.
const summaryLen = 80

// split cuts sql into statements on ';' and replaces each :name by a
// placeholder of dialect d. Neither ';' nor ':' counts inside quoted
// strings and identifiers, comments, PostgreSQL dollar-quoted strings, a
// PostgreSQL cast (::type), an assignment (:=) or after an identifier
// character (an array slice a[lo:hi]). Statements holding only comments
// are dropped. An SQLite CREATE TRIGGER is one statement with the
// statements of its BEGIN ... END body. An unterminated quote or comment
// is an error: the rest of the text would otherwise silently become one
// string.
func split(d dialect, sql string) ([]statement, error) {
	sc := scanner{d: d, src: sql, line: 1}
	return sc.run()
}

// scanner is the state of one split.
type scanner struct {
	d    dialect
	src  string
	i    int // next byte of src
	line int // line of src[i]

	out []statement
	// The statement being built.
	text      strings.Builder
	params    []string
	start     int // where its source starts
	codeStart int // where its first code (not space, not comment) is, or -1
	codeLine  int
	verb      string
	withVerb  bool // verb is WITH: the next keyword at depth 0 names it
	depth     int  // parenthesis depth
	returning bool
	words     int    // words read so far
	prevWord  string // the last of them, in upper case
	// trigger is set in an SQLite CREATE TRIGGER, whose body holds
	// statements ending in ';' between BEGIN and END; block counts the
	// open BEGIN and CASE of that body.
	trigger bool
	block   int
}

func (sc *scanner) run() ([]statement, error) {
	sc.reset(0)
	for sc.i < len(sc.src) {
		c := sc.src[sc.i]
		switch {
		case c == '\'':
			if err := sc.quoted('\'', sc.backslashes()); err != nil {
				return nil, err
			}
		case c == '"':
			// MySQL reads "..." as a string, with backslash escapes; the
			// others as an identifier.
			if err := sc.quoted('"', sc.d == mysql); err != nil {
				return nil, err
			}
		case c == '`' && sc.d != postgres:
			if err := sc.quoted('`', false); err != nil {
				return nil, err
			}
		case c == '[' && sc.d == sqlite:
			if err := sc.bracketed(); err != nil {
				return nil, err
			}
		case c == '-' && sc.peek(1) == '-' && (sc.d != mysql || sc.i+2 < len(sc.src) && sc.peek(2) <= ' '):
			// MySQL needs a space or control character after "--" (1--1
			// is 1 - -1).
			sc.lineComment()
		case c == '#' && sc.d == mysql:
			sc.lineComment()
		case c == '/' && sc.peek(1) == '*':
			if err := sc.blockComment(); err != nil {
				return nil, err
			}
		case c == '$' && sc.d == postgres && !sc.afterIdent():
			if ok, err := sc.dollarQuoted(); err != nil {
				return nil, err
			} else if !ok {
				sc.code()
				sc.copy(1)
			}
		case c == ':':
			sc.code()
			sc.colon()
		case c == ';' && sc.block > 0:
			sc.copy(1)
		case c == ';':
			sc.end(sc.i)
			sc.i++
			sc.reset(sc.i)
		case isIdentStart(c) && !sc.afterIdent():
			sc.code()
			sc.word()
		case isSpace(c):
			sc.copy(1)
		default:
			sc.code()
			switch c {
			case '(':
				sc.depth++
			case ')':
				sc.depth--
			}
			sc.copy(1)
		}
	}
	sc.end(len(sc.src))
	return sc.out, nil
}

// reset starts a new statement at byte at.
func (sc *scanner) reset(at int) {
	sc.text.Reset()
	sc.params = nil
	sc.start = at
	sc.codeStart = -1
	sc.verb = ""
	sc.withVerb = false
	sc.depth = 0
	sc.returning = false
	sc.words = 0
	sc.prevWord = ""
	sc.trigger = false
	sc.block = 0
}

// end closes the statement that ends at byte at (its ';' or the end).
func (sc *scanner) end(at int) {
	if sc.codeStart < 0 {
		return
	}
	code := strings.TrimSpace(sc.src[sc.codeStart:at])
	first, _, more := strings.Cut(code, "\n")
	first = strings.TrimSpace(first)
	if r := []rune(first); len(r) > summaryLen {
		first, more = string(r[:summaryLen]), true
	}
	if more {
		first += " …"
	}
	sc.out = append(sc.out, statement{
		text:      strings.Trim(sc.text.String(), asciiSpace),
		params:    sc.params,
		source:    strings.Trim(sc.src[sc.start:at], asciiSpace),
		line:      sc.codeLine,
		summary:   first,
		verb:      sc.verb,
		returning: sc.returning,
	})
}

// code notes that the statement has code at the current byte.
func (sc *scanner) code() {
	if sc.codeStart < 0 {
		sc.codeStart = sc.i
		sc.codeLine = sc.line
	}
}

// peek returns the byte n after the current one, or 0 past the end.
func (sc *scanner) peek(n int) byte {
	if sc.i+n < len(sc.src) {
		return sc.src[sc.i+n]
	}
	return 0
}

// copy moves n bytes to the statement's text.
func (sc *scanner) copy(n int) {
	chunk := sc.src[sc.i : sc.i+n]
	sc.line += strings.Count(chunk, "\n")
	sc.text.WriteString(chunk)
	sc.i += n
}

// afterIdent reports whether the byte before the current one belongs to an
// identifier or a number.
func (sc *scanner) afterIdent() bool {
	return sc.i > 0 && sc.isIdent(sc.src[sc.i-1])
}

// isIdent reports whether c may continue an identifier: PostgreSQL and
// MySQL allow '$' in identifiers after the first character.
func (sc *scanner) isIdent(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9') || (c == '$' && sc.d != sqlite)
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

// asciiSpace are the bytes isSpace accepts: a statement is trimmed of
// them alone, as a byte >= 0x80 may belong to an identifier.
const asciiSpace = " \t\n\r\f\v"

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// backslashes reports whether a '...' string starting at the current byte
// takes backslash escapes: always in MySQL, and in PostgreSQL when written
// E'...'.
func (sc *scanner) backslashes() bool {
	switch sc.d {
	case mysql:
		return true
	case postgres:
		if sc.i == 0 || (sc.src[sc.i-1] != 'e' && sc.src[sc.i-1] != 'E') {
			return false
		}
		return sc.i == 1 || !sc.isIdent(sc.src[sc.i-2])
	}
	return false
}

// quoted steps over a string or identifier quoted with q, where a doubled
// q stands for itself and, with backslash, '\' escapes the next byte.
func (sc *scanner) quoted(q byte, backslash bool) error {
	sc.code()
	from, line := sc.i, sc.line
	j := sc.i + 1
	for {
		if j >= len(sc.src) {
			return fmt.Errorf("line %d: the %s starting here is not closed (%s)", line, quoteName(q), excerpt(sc.src[from:]))
		}
		c := sc.src[j]
		switch {
		case backslash && c == '\\':
			j += 2
			continue
		case c == q && j+1 < len(sc.src) && sc.src[j+1] == q:
			j += 2
			continue
		case c == q:
			sc.copy(j + 1 - sc.i)
			return nil
		}
		j++
	}
}

func quoteName(q byte) string {
	switch q {
	case '\'':
		return "quoted string '...'"
	case '"':
		return `quoted name "..."`
	case '`':
		return "quoted name `...`"
	}
	return "quote"
}

// bracketed steps over an SQLite identifier in brackets, [name].
func (sc *scanner) bracketed() error {
	sc.code()
	end := strings.IndexByte(sc.src[sc.i:], ']')
	if end < 0 {
		return fmt.Errorf("line %d: the quoted name [...] starting here is not closed (%s)", sc.line, excerpt(sc.src[sc.i:]))
	}
	sc.copy(end + 1)
	return nil
}

// lineComment steps over a comment running to the end of the line.
func (sc *scanner) lineComment() {
	end := strings.IndexByte(sc.src[sc.i:], '\n')
	if end < 0 {
		end = len(sc.src) - sc.i
	}
	sc.copy(end)
}

// blockComment steps over a /* comment */; PostgreSQL's nest.
func (sc *scanner) blockComment() error {
	line := sc.line
	depth := 0
	j := sc.i
	for j < len(sc.src) {
		switch {
		case sc.src[j] == '/' && j+1 < len(sc.src) && sc.src[j+1] == '*':
			if depth == 0 || sc.d == postgres {
				depth++
			}
			j += 2
		case sc.src[j] == '*' && j+1 < len(sc.src) && sc.src[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				sc.copy(j - sc.i)
				return nil
			}
		default:
			j++
		}
	}
	return fmt.Errorf("line %d: the comment /* starting here is not closed", line)
}

// dollarQuoted steps over a PostgreSQL dollar-quoted string, $$...$$ or
// $tag$...$tag$, if one starts at the current byte; ok is false when the
// '$' starts none ($1, say).
func (sc *scanner) dollarQuoted() (ok bool, err error) {
	j := sc.i + 1
	if j < len(sc.src) && isIdentStart(sc.src[j]) {
		j++
		for j < len(sc.src) && (isIdentStart(sc.src[j]) || (sc.src[j] >= '0' && sc.src[j] <= '9')) {
			j++
		}
	}
	if j >= len(sc.src) || sc.src[j] != '$' {
		return false, nil
	}
	tag := sc.src[sc.i : j+1]
	sc.code()
	end := strings.Index(sc.src[j+1:], tag)
	if end < 0 {
		return false, fmt.Errorf("line %d: the dollar-quoted string %s starting here is not closed with %s", sc.line, tag, tag)
	}
	sc.copy(j + 1 + end + len(tag) - sc.i)
	return true, nil
}

// colon handles a ':' of code: a :name becomes a placeholder; '::', ':='
// and a ':' right after an identifier or number are copied as they are.
func (sc *scanner) colon() {
	next := sc.peek(1)
	switch {
	case next == ':':
		// A cast (x::int); a run of colons is copied two at a time so
		// x:::y stays as written.
		sc.copy(2)
		return
	case next == '=' || sc.afterIdent() || !(next == '_' || (next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z')):
		sc.copy(1)
		return
	}
	j := sc.i + 1
	for j < len(sc.src) && sc.isParamChar(sc.src[j]) {
		j++
	}
	name := sc.src[sc.i+1 : j]
	sc.params = append(sc.params, name)
	if sc.d == postgres {
		fmt.Fprintf(&sc.text, "$%d", len(sc.params))
	} else {
		sc.text.WriteByte('?')
	}
	sc.i = j
}

// isParamChar reports whether c continues a parameter name: ASCII letters,
// digits and '_' (parameter names are identifiers; a following '-' or '.'
// is an operator).
func (sc *scanner) isParamChar(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// word copies an identifier or keyword and notes the statement's verb and
// a RETURNING clause.
func (sc *scanner) word() {
	j := sc.i + 1
	for j < len(sc.src) && sc.isIdent(sc.src[j]) {
		j++
	}
	w := strings.ToUpper(sc.src[sc.i:j])
	switch {
	case sc.verb == "":
		sc.verb = w
		sc.withVerb = w == "WITH"
	case sc.withVerb && sc.depth == 0:
		switch w {
		case "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE", "REPLACE":
			sc.verb, sc.withVerb = w, false
		}
	}
	if w == "RETURNING" {
		sc.returning = true
	}
	sc.words++
	if sc.d == sqlite && sc.verb == "CREATE" {
		switch {
		case w == "TRIGGER" && (sc.words == 2 || sc.words == 3 && (sc.prevWord == "TEMP" || sc.prevWord == "TEMPORARY")):
			sc.trigger = true
		case sc.trigger && (w == "BEGIN" || w == "CASE"):
			sc.block++
		case sc.trigger && w == "END" && sc.block > 0:
			sc.block--
		}
	}
	sc.prevWord = w
	sc.copy(j - sc.i)
}

// excerpt is the start of text, for an error message.
func excerpt(text string) string {
	first, _, more := strings.Cut(text, "\n")
	if r := []rune(first); len(r) > 30 {
		first, more = string(r[:30]), true
	}
	if more {
		first += "…"
	}
	return first
}
