package shell

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Executor runs commands like Run and keeps, from one command to the next,
// what Run would otherwise make again for each and throw away: the epoll
// instances that read ordered output (output.go), where programs were found
// in PATH, and /dev/null open for standard input. For a task as short as
// `true` those were some twenty of the 140 system calls tasuki made per
// attempt (seven for the epoll instance, a failed stat per directory of
// PATH before the program's, an open and a close of /dev/null).
//
// Its zero value is ready to use, and safe for concurrent use. What it keeps
// lives as long as it does: Close releases it, after the last Run has
// returned (a Run after Close still works, and keeps nothing). An Executor
// dropped without Close holds a few descriptors until the garbage collector
// closes them (os.File's cleanup): at most maxEpolls epoll instances and one
// /dev/null.
type Executor struct {
	ct     *container // nil: processContainer(), as Run; tests set their own
	epolls epollPool
	paths  pathCache

	mu     sync.Mutex
	null   *os.File // /dev/null for reading, opened by the first Run
	closed bool
}

// Close releases what e keeps. Every Run must have returned.
func (e *Executor) Close() error {
	e.mu.Lock()
	e.closed = true
	null := e.null
	e.null = nil
	e.mu.Unlock()
	err := e.epolls.close()
	if null != nil {
		err = errors.Join(err, null.Close())
	}
	return err
}

// devNull returns /dev/null open for reading, every process's standard input
// when Command.Stdin is nil: os/exec would open and close it for each
// process. A shared descriptor is safe: the child gets a copy, and reading
// /dev/null has no state to share. Nil after Close, or if it cannot be
// opened (os/exec then tries itself, and says why).
func (e *Executor) devNull() *os.File {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.null == nil && !e.closed {
		if f, err := os.Open(os.DevNull); err == nil {
			e.null = f
		}
	}
	return e.null
}

// pathTTL is how long a program found in PATH is taken from pathCache
// without searching PATH again, as long as it is still there: a program
// installed since in a directory earlier in PATH is used from at most a
// second later. (A shell's own table of where programs are, hash, trusts
// its entries until one is missing; a server runs for months.)
const pathTTL = time.Second

// maxFoundPaths bounds pathCache; past it, the cache starts over.
const maxFoundPaths = 1024

// pathCache remembers where lookPath found programs, by PATH and name: a
// task run 10,000 times would otherwise stat every directory of PATH before
// its own, 10,000 times. Its zero value is empty and ready.
type pathCache struct {
	mu sync.Mutex
	m  map[pathKey]foundPath
}

type pathKey struct{ pathEnv, name string }

type foundPath struct {
	path string
	at   time.Time // when PATH was searched
}

// lookPath finds name the way a shell would with the PATH from env rather
// than tasuki's own. A name with a slash is used as given (relative to the
// working directory). Where a name was found is kept for pathTTL after the
// search (now is the time of the call), and used while it is still an
// executable file; then PATH is searched again.
func (c *pathCache) lookPath(name string, env []string, now time.Time) (string, error) {
	if strings.Contains(name, "/") {
		if filepath.IsAbs(name) {
			if _, err := exec.LookPath(name); err != nil {
				return "", unwrapExecError(err)
			}
		}
		// A relative name is resolved against Dir by exec at start.
		return name, nil
	}
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v // the last one wins, as in exec.Cmd
		}
	}
	key := pathKey{pathEnv, name}
	if p, ok := c.get(key, now); ok {
		// Still there and executable (a stat and an access check, where
		// the search costs one failed stat per directory before it).
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if !filepath.IsAbs(dir) {
			continue
		}
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			c.put(key, foundPath{p, now})
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// get returns where key was found, if it was searched less than pathTTL
// before now.
func (c *pathCache) get(key pathKey, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.m[key]
	if !ok || now.Sub(f.at) >= pathTTL || now.Before(f.at) {
		return "", false
	}
	return f.path, true
}

func (c *pathCache) put(key pathKey, f foundPath) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxFoundPaths {
		c.m = make(map[pathKey]foundPath)
	}
	c.m[key] = f
}
