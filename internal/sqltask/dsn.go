package sqltask

import (
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/tasuki-dev/tasuki/internal/logs"
)

// dsnForms lists the DSNs a task or wait may name, for the error about one
// it may not.
const dsnForms = "postgres://user:pass@host:5432/db (or postgresql://), " +
	"mysql://user:pass@host:3306/db?param=value, " +
	"sqlite:///absolute/path.db or sqlite:relative/path.db (from the task's working directory)"

// encodeHint is the usual reason a DSN is not a URL: ${VAR} is replaced as
// it is, so a password holding a URL's delimiters breaks the URL.
const encodeHint = "a user name or password holding / ? # or % must be URL-encoded, such as %2F for /"

// connectTimeout bounds opening a connection, so an address that drops
// packets is reported rather than waited on.
const connectTimeout = 10 * time.Second

// target is a database a DSN names, ready to open.
type target struct {
	dialect dialect
	// key identifies the connection settings in a Pool. It holds the
	// password: it is never shown.
	key string
	// display is the DSN with its password masked and its query left
	// out, for messages and logs.
	display string
	// secrets are the DSN's password and password-like parameters, masked
	// in any message built from a driver's error.
	secrets []string
	// open opens a *sql.DB for the target; it does not connect.
	open func() (*sql.DB, error)
	// path is an SQLite database's file.
	path string
}

// mask hides the DSN's secrets in text (a driver's message).
func (t *target) mask(text string) string {
	if len(t.secrets) == 0 {
		return text
	}
	return logs.NewMasker(t.secrets).String(text)
}

// parseDSN reads dsn (already expanded) into a target. A relative SQLite
// path starts at workdir. readOnly asks for a connection that cannot
// write, where the driver can only say so when opening (SQLite); the
// others begin a read-only transaction instead. No error repeats a
// password.
func parseDSN(dsn, workdir string, readOnly bool) (*target, error) {
	scheme, _, ok := strings.Cut(dsn, ":")
	if !ok || !isScheme(scheme) {
		// Not shown: text that is no URL may be anything, a password too.
		return nil, fmt.Errorf("the DSN is not a URL; use %s", dsnForms)
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return parsePostgres(dsn)
	case "mysql", "mariadb":
		return parseMySQL(dsn)
	case "sqlite", "sqlite3":
		return parseSQLite(dsn, workdir, readOnly)
	}
	return nil, fmt.Errorf("unsupported DSN scheme %q; use %s", scheme, dsnForms)
}

// isScheme reports whether s has the shape of a URL scheme (RFC 3986), so
// it may be shown in an error: a letter, then letters, digits, '+', '-'
// or '.'.
func isScheme(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i, c := range []byte(s) {
		letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// urlSecrets are the password of u and the values of its parameters whose
// names look like they hold one.
func urlSecrets(u *url.URL) []string {
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p)
	}
	for k, vs := range u.Query() {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "pass") || strings.Contains(lk, "secret") || strings.Contains(lk, "key") || strings.Contains(lk, "token") {
			for _, v := range vs {
				if v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// displayURL is u with its password masked and without query or fragment.
func displayURL(u *url.URL) string {
	d := *u
	d.RawQuery, d.Fragment, d.RawFragment, d.ForceQuery = "", "", "", false
	if d.User == nil {
		return d.String()
	}
	if _, ok := d.User.Password(); !ok {
		return d.String()
	}
	// Built by hand: url would escape the mask's '*'.
	user := url.User(d.User.Username()).String()
	d.User = nil
	rest := strings.TrimPrefix(d.String(), d.Scheme+"://")
	return d.Scheme + "://" + user + ":" + logs.Mask + "@" + rest
}

func parsePostgres(dsn string) (*target, error) {
	u, uerr := url.Parse(dsn)
	if uerr != nil {
		// url's errors repeat the text: never show them.
		return nil, fmt.Errorf("the postgres DSN is not a valid URL (%s); use %s", encodeHint, dsnForms)
	}
	t := &target{dialect: postgres, key: "pgx\x00" + dsn, display: displayURL(u), secrets: urlSecrets(u)}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The message repeats the DSN (its password redacted, on a best
		// effort): keep only what is wrong with it.
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "cannot parse `"); ok {
			if _, why, ok := strings.Cut(rest, "`: "); ok {
				msg = why
			}
		}
		return nil, fmt.Errorf("read the DSN %s: %s", t.display, t.mask(msg))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	// A cancelled context asks the server to cancel the statement (which
	// it does at once, rolling back) rather than only closing the socket,
	// which would leave the statement running on the server.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	t.open = func() (*sql.DB, error) { return stdlib.OpenDB(*cfg), nil }
	return t, nil
}

func parseMySQL(dsn string) (*target, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Opaque != "" {
		return nil, fmt.Errorf("the mysql DSN is not a valid URL (%s); use %s", encodeHint, dsnForms)
	}
	t := &target{dialect: mysql, display: displayURL(u), secrets: urlSecrets(u)}
	if u.Host == "" {
		return nil, fmt.Errorf("the DSN %s names no host (unix sockets are not supported); use %s", t.display, dsnForms)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(strings.Trim(u.Hostname(), "[]"), "3306")
	}
	// The driver reads its own parameters (tls, charset, loc, timeout...)
	// from a DSN without credentials, which are set afterwards so that no
	// character of a password needs escaping in the driver's syntax.
	cfg, err := mysqldriver.ParseDSN("tcp(" + host + ")/?" + u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("read the DSN %s: %s", t.display, t.mask(err.Error()))
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if !u.Query().Has("parseTime") {
		cfg.ParseTime = true
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = connectTimeout
	}
	t.key = "mysql\x00" + cfg.FormatDSN()
	t.open = func() (*sql.DB, error) {
		c, err := mysqldriver.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		return sql.OpenDB(c), nil
	}
	return t, nil
}

// sqliteBusyTimeout is how long an SQLite connection waits for another
// writer's lock before failing with "database is locked".
const sqliteBusyTimeout = "busy_timeout(10000)"

func parseSQLite(dsn, workdir string, readOnly bool) (*target, error) {
	_, rest, _ := strings.Cut(dsn, ":")
	rest, query, _ := strings.Cut(rest, "?")
	path := rest
	if p, ok := strings.CutPrefix(rest, "//"); ok {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("sqlite DSN %q: a path after sqlite:// must be absolute (sqlite:///data/app.db); for a relative one write sqlite:%s", dsn, p)
		}
		path = p
	}
	if path == "" {
		return nil, fmt.Errorf("sqlite DSN %q names no file; use %s", dsn, dsnForms)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(workdir, path)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("sqlite DSN %q: read its parameters: %w", dsn, err)
	}
	if !q.Has("_busy_timeout") && !q.Has("_timeout") && !strings.Contains(strings.ToLower(query), "busy_timeout") {
		q.Add("_pragma", sqliteBusyTimeout)
	}
	if readOnly {
		// Opened read-only, a connection cannot write whatever the query
		// says, and a file that is not there yet is not created.
		q.Set("mode", "ro")
	}
	// The file: form is escaped as a URI, so any character may be in path.
	name := (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
	return &target{
		dialect: sqlite,
		key:     "sqlite\x00" + name,
		display: "sqlite://" + path,
		path:    path,
		open:    func() (*sql.DB, error) { return sql.Open("sqlite", name) },
	}, nil
}
