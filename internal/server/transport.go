package server

// Transport security: TLS with certificates reloaded on change, mutual TLS
// for workers, the refusal to serve a network in clear, and the options of
// api.Guard (allowed hosts, CORS).

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// Client authentication scopes of Config.ClientAuth.
const (
	clientAuthWorkers = "workers"
	clientAuthAll     = "all"
)

// transport is what the server does about the network, prepared once from
// the configuration.
type transport struct {
	cfg   Config
	log   *slog.Logger
	certs *api.CertFiles // nil: plain HTTP
	tls   *tls.Config    // nil: plain HTTP
}

// newTransport reads the certificate files, so a wrong path or a key that
// does not match is an error at start.
func newTransport(cfg Config, log *slog.Logger) (*transport, error) {
	t := &transport{cfg: cfg, log: log}
	if cfg.TLSCert == "" {
		// Said before the store is opened and the first admin token made,
		// so a start refused for this leaves nothing behind. A host name
		// other than localhost is checked on the listener (wrap).
		if !cfg.InsecureNetwork && !mayBeLoopback(cfg.Addr) {
			return nil, refuseCleartext(cfg.Addr)
		}
		return t, nil
	}
	certs, err := api.LoadCertFiles(cfg.TLSCert, cfg.TLSKey, log)
	if err != nil {
		return nil, err
	}
	t.certs = certs
	t.tls = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	if cfg.ClientCA != "" {
		pool, err := api.LoadCAFile(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client_ca: %w", err)
		}
		t.tls.ClientCAs = pool
		// The TLS handshake cannot know the route: with "workers" a
		// certificate is verified when given and api.Guard requires one on
		// the worker routes.
		t.tls.ClientAuth = tls.VerifyClientCertIfGiven
		if cfg.ClientAuth == clientAuthAll {
			t.tls.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return t, nil
}

// scheme is the URL scheme the server answers on.
func (t *transport) scheme() string {
	if t.tls != nil {
		return "https"
	}
	return "http"
}

// wrap checks where ln listens and puts TLS on it. Listening beyond this
// machine without TLS is refused unless insecure_network says so, and then
// warned about: tokens, parameters and logs would cross the network in
// clear.
func (t *transport) wrap(ln net.Listener) (net.Listener, error) {
	if t.tls == nil && !loopbackListener(ln) {
		if !t.cfg.InsecureNetwork {
			ln.Close()
			return nil, refuseCleartext(ln.Addr().String())
		}
		t.log.Warn("INSECURE: listening on a network address without TLS (--insecure-network); anyone on the network path can read tokens and logs and replay requests",
			"addr", ln.Addr().String())
	}
	if t.tls == nil {
		return ln, nil
	}
	return tls.NewListener(ln, t.tls), nil
}

// refuseCleartext is the error of a server asked to listen on addr, beyond
// this machine, without TLS.
func refuseCleartext(addr string) error {
	return fmt.Errorf("refusing to listen on %s without TLS: tokens and logs would cross the network in clear. "+
		"Give a certificate (--tls-cert FILE --tls-key FILE), listen on loopback behind a TLS proxy (--addr 127.0.0.1:8080), "+
		"or accept the risk with --insecure-network", addr)
}

// mayBeLoopback reports whether the listen address addr may be loopback
// only: false for an IP address that is not loopback and for an empty host
// (every interface); true for loopback addresses, localhost, and names
// only the listener can tell.
func mayBeLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true // not an address: listening says what is wrong
	}
	if host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().IsLoopback()
	}
	return true
}

// loopbackListener reports whether ln accepts connections from this
// machine only.
func loopbackListener(ln net.Listener) bool {
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// guardOptions are the options of api.Guard for this configuration: the
// allowed hosts include the host of the advertised URL, which followers
// forward requests with.
func (t *transport) guardOptions() api.GuardOptions {
	hosts := append([]string(nil), t.cfg.AllowedHosts...)
	if u, err := url.Parse(t.cfg.Advertise); err == nil && u.Host != "" {
		hosts = append(hosts, u.Hostname())
	}
	if host, _, err := net.SplitHostPort(t.cfg.Addr); err == nil && host != "" {
		hosts = append(hosts, host)
	}
	return api.GuardOptions{
		AllowedHosts:     hosts,
		CORSOrigins:      t.cfg.CORSOrigins,
		WorkerClientCert: t.tls != nil && t.cfg.ClientCA != "",
		CSRF:             api.CheckCSRF, // web UI sessions (users.go)
		Logger:           t.log,
	}
}

// forwardTransport is how a follower reaches the leader: trusting the CA of
// Config.CA, and presenting this server's certificate to a leader that
// requires client certificates. Nil means http.DefaultTransport.
func (t *transport) forwardTransport() (http.RoundTripper, error) {
	if t.cfg.CA == "" && t.certs == nil {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.cfg.CA != "" {
		pool, err := api.LoadCAFile(t.cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	if t.certs != nil {
		cfg.GetClientCertificate = t.certs.GetClientCertificate
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return tr, nil
}

// applyTransportEnv reads the TASUKI_* variables of the transport settings.
func applyTransportEnv(c *Config, lookup func(string) (string, bool), errs *[]error) {
	for key, dst := range map[string]*string{
		"TASUKI_TLS_CERT": &c.TLSCert, "TASUKI_TLS_KEY": &c.TLSKey, "TASUKI_CLIENT_CA": &c.ClientCA,
		"TASUKI_CLIENT_AUTH": &c.ClientAuth, "TASUKI_CA": &c.CA,
	} {
		if v, ok := lookup(key); ok && v != "" {
			*dst = v
		}
	}
	for key, dst := range map[string]*[]string{"TASUKI_ALLOWED_HOSTS": &c.AllowedHosts, "TASUKI_CORS_ORIGINS": &c.CORSOrigins} {
		if v, ok := lookup(key); ok && v != "" {
			*dst = splitList(v)
		}
	}
	if v, ok := lookup("TASUKI_INSECURE_NETWORK"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("TASUKI_INSECURE_NETWORK: expected true or false, got %q", v))
			return
		}
		c.InsecureNetwork = b
	}
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// validateTransport checks the transport settings together.
func (c *Config) validateTransport() []error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert and tls_key: give both (the certificate and its key) or neither"))
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("client_ca: client certificates need TLS; give tls_cert and tls_key too"))
	}
	switch c.ClientAuth {
	case "", clientAuthWorkers, clientAuthAll:
	default:
		errs = append(errs, fmt.Errorf("client_auth %q: expected %q or %q", c.ClientAuth, clientAuthWorkers, clientAuthAll))
	}
	if c.ClientAuth != "" && c.ClientCA == "" {
		errs = append(errs, errors.New("client_auth: needs client_ca, the CA of the client certificates"))
	}
	for _, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/@ *") {
			errs = append(errs, fmt.Errorf("allowed_hosts %q: expected a host name, or NAME:PORT", h))
		}
	}
	for _, o := range c.CORSOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("cors_origins %q: expected an origin like https://ui.example.com", o))
		}
	}
	return errs
}

// URL is the base URL of the API (after Listen): https:// with TLS.
func (s *Server) URL() string { return s.net.scheme() + "://" + s.Addr() }
