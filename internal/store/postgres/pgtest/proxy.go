package pgtest

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of a PostgreSQL server that a test can cut
// (every connection closed, new ones refused) and restore, or arm to lose
// the answer of the next COMMIT: the server commits, the client never
// learns it. Point the code under test at Proxy.Addr instead of the server.
type Proxy struct {
	target string
	ln     net.Listener

	mu        sync.Mutex
	cut       bool
	conns     map[net.Conn]bool
	dropAfter bool // the next COMMIT's answer is lost
	dropped   chan struct{}
}

// NewProxy starts a proxy to target (host:port) on a free port of
// 127.0.0.1; it is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection through the proxy and refuses new ones
// (they are accepted and closed at once, as a dead network path looks to
// a pool that redials) until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// LoseNextCommitAnswer arms the proxy: the next COMMIT a client sends
// (pgx sends it as a simple query) reaches the server, and the connection
// is closed when the server answers, the answer dropped. The channel is
// closed once that happened.
func (p *Proxy) LoseNextCommitAnswer() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropAfter = true
	p.dropped = make(chan struct{})
	return p.dropped
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Cut()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		go p.pipe(c, s)
	}
}

// commitQuery is how a simple-protocol COMMIT ends on the wire.
var commitQuery = []byte("commit\x00")

// pipe copies both ways between client c and server s until either ends.
func (p *Proxy) pipe(c, s net.Conn) {
	var armed sync.Mutex // held by the server→client copy while it decides
	committing := false  // a COMMIT whose answer must be lost was sent
	end := func() {
		c.Close()
		s.Close()
		p.mu.Lock()
		delete(p.conns, c)
		delete(p.conns, s)
		p.mu.Unlock()
	}
	go func() {
		defer end()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if bytes.Contains(buf[:n], commitQuery) {
					p.mu.Lock()
					if p.dropAfter {
						p.dropAfter = false
						armed.Lock()
						committing = true
						armed.Unlock()
					}
					p.mu.Unlock()
				}
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer end()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			armed.Lock()
			lose := committing
			armed.Unlock()
			if lose {
				// The server answered the COMMIT: it committed (or
				// failed it); the client is left not knowing which.
				p.mu.Lock()
				close(p.dropped)
				p.mu.Unlock()
				return
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
