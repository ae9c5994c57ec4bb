package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// CertFiles is a certificate and its key read from PEM files, and read again
// on the next TLS handshake after either file changes, so a renewed
// certificate (cert-manager, certbot, a rotation script) takes effect on the
// next connection without a restart. The server uses it for its own
// certificate, a worker for its client certificate.
type CertFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu     sync.Mutex
	cur    *tls.Certificate
	stamp  [2]fileStamp // of certFile and keyFile when cur was read
	failed [2]fileStamp // of the files when they last failed to load
}

// fileStamp tells whether a file changed: a rename puts another inode in
// place, a rewrite changes the time or the size.
type fileStamp struct {
	ino  uint64
	size int64
	mod  time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{size: fi.Size(), mod: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = uint64(st.Ino)
	}
	return s, nil
}

// LoadCertFiles reads the pair once, so a wrong file is an error at start
// rather than at the first connection. log (nil: slog.Default()) is told
// of reloads, and of a changed pair that does not load, in which case the
// previous certificate stays in use.
func LoadCertFiles(certFile, keyFile string, log *slog.Logger) (*CertFiles, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &CertFiles{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := c.Certificate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Certificate returns the pair, read again if a file changed since.
func (c *CertFiles) Certificate() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var now [2]fileStamp
	var err error
	if now[0], err = stampOf(c.certFile); err == nil {
		now[1], err = stampOf(c.keyFile)
	}
	if err == nil && c.cur != nil && (now == c.stamp || now == c.failed) {
		return c.cur, nil // unchanged, or the same broken files as before
	}
	if err == nil {
		var cert tls.Certificate
		if cert, err = tls.LoadX509KeyPair(c.certFile, c.keyFile); err == nil {
			if c.cur != nil {
				c.log.Info("TLS certificate reloaded", "cert", c.certFile, "subject", cert.Leaf.Subject.String(), "expires", cert.Leaf.NotAfter)
			}
			c.cur, c.stamp = &cert, now
			return c.cur, nil
		}
	}
	err = fmt.Errorf("load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	if c.cur == nil {
		return nil, err
	}
	// Halfway through a replacement the two files may not match yet: keep
	// serving the previous pair and try again once a file changes again.
	c.failed = now
	c.log.Warn("TLS certificate changed but does not load; still using the previous one", "err", err)
	return c.cur, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.Certificate()
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (c *CertFiles) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.Certificate()
}

// LoadCAFile reads a PEM file of CA certificates into a pool.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// ClientTLS is how a client of a tasuki server uses TLS.
type ClientTLS struct {
	// CAFile is a PEM file of the CAs to trust for the server's certificate
	// instead of the system's (a private CA).
	CAFile string
	// CertFile and KeyFile are the client certificate to present, for a
	// server that requires mutual TLS of its workers; both or neither.
	CertFile, KeyFile string
}

// HTTPClient returns an http.Client with the TLS configuration c describes
// (the system's CAs and no client certificate when c is zero). It has no
// overall timeout, as NewClient asks.
func (c ClientTLS) HTTPClient(log *slog.Logger) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A worker sends a log and a report for each of its running attempts
	// at once: keep a connection for each rather than the default two per
	// host, which made a worker open (and the server accept) a new TCP
	// connection for most requests.
	tr.MaxIdleConnsPerHost = MaxLeaseFree + 8
	if c == (ClientTLS{}) {
		return &http.Client{Transport: tr}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := LoadCAFile(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return nil, errors.New("a client certificate needs both a certificate file and a key file")
	case c.CertFile != "":
		files, err := LoadCertFiles(c.CertFile, c.KeyFile, log)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = files.GetClientCertificate
	}
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, nil
}
