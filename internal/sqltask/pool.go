package sqltask

import (
	"database/sql"
	"errors"
	"sync"
	"time"
)

// Pool settings. A wait checks its query every few seconds and a task runs
// one transaction, so each database needs few connections; idle ones are
// closed soon so that a pool does not hold a server's connections for
// waits that ended.
const (
	poolMaxOpen     = 4
	poolMaxIdle     = 2
	poolConnIdle    = 2 * time.Minute
	poolConnLife    = 30 * time.Minute
	poolUnusedAfter = 10 * time.Minute // a *sql.DB no attempt used this long is closed
)

// Pool keeps one *sql.DB per database (driver and DSN) across attempts,
// so that a wait checked every few seconds reuses its connection instead
// of opening one per check. The zero value is not usable; NewPool makes
// one. It is safe for concurrent use. Close it when the executor stops.
type Pool struct {
	mu     sync.Mutex
	dbs    map[string]*poolEntry
	closed bool
	now    func() time.Time
}

type poolEntry struct {
	db       *sql.DB
	users    int
	lastUsed time.Time
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{dbs: map[string]*poolEntry{}, now: time.Now}
}

// errPoolClosed is returned by a Pool used after Close.
var errPoolClosed = errors.New("the connection pool is closed (the executor is stopping)")

// get returns the *sql.DB of t and a func to call when the attempt is done
// with it. A nil pool opens one for the attempt alone, closed by release.
func (p *Pool) get(t *target) (*sql.DB, func(), error) {
	if p == nil {
		db, err := t.open()
		if err != nil {
			return nil, nil, err
		}
		db.SetMaxOpenConns(2) // the attempt's, and one to stop it (MySQL's KILL)
		return db, func() { db.Close() }, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, errPoolClosed
	}
	p.sweep()
	e, ok := p.dbs[t.key]
	if !ok {
		db, err := t.open()
		if err != nil {
			return nil, nil, err
		}
		db.SetMaxOpenConns(poolMaxOpen)
		db.SetMaxIdleConns(poolMaxIdle)
		db.SetConnMaxIdleTime(poolConnIdle)
		db.SetConnMaxLifetime(poolConnLife)
		e = &poolEntry{db: db}
		p.dbs[t.key] = e
	}
	e.users++
	var once sync.Once
	return e.db, func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			e.users--
			e.lastUsed = p.now()
		})
	}, nil
}

// sweep closes the databases no attempt used for poolUnusedAfter: DSNs
// that vary by run (a parameter in the database name) would otherwise
// accumulate. Called with p.mu held.
func (p *Pool) sweep() {
	now := p.now()
	for k, e := range p.dbs {
		if e.users == 0 && now.Sub(e.lastUsed) > poolUnusedAfter {
			e.db.Close()
			delete(p.dbs, k)
		}
	}
}

// Close closes every database of the pool; attempts still using one see
// their connections fail. Later attempts with this pool fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for k, e := range p.dbs {
		errs = append(errs, e.db.Close())
		delete(p.dbs, k)
	}
	return errors.Join(errs...)
}
