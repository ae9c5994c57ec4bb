package api

import (
	"errors"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// CodeUnsupportedMediaType is the code of a 415 answer: a request that
// changes something sent a body that is not JSON.
const CodeUnsupportedMediaType = "unsupported_media_type"

// CSRFHeader is the header a request authenticated by a cookie carries its
// CSRF token in. A browser sends a header like this one only after a CORS
// preflight the server agreed to, so another site cannot add it.
const CSRFHeader = "X-Tasuki-Csrf"

// SecurityHeaders are set on every answer of a guarded handler, errors and
// 404s included. The API serves no HTML, and the web UI that comes with it
// loads its scripts from files, never inline: the policy forbids inline
// scripts, framing (clickjacking) and sniffing a JSON answer into HTML.
var SecurityHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// GuardOptions say whom a guarded handler answers.
type GuardOptions struct {
	// AllowedHosts are the host names (NAME, or NAME:PORT for that port
	// only) that requests may name in Host besides localhost and IP
	// addresses: the names people and workers reach the server by.
	AllowedHosts []string
	// CORSOrigins are the origins (scheme://host[:port]) of web pages
	// allowed to call the API from a browser; none by default, which is
	// CORS off.
	CORSOrigins []string
	// WorkerClientCert makes the worker routes require a TLS client
	// certificate that the server verified (mutual TLS for workers).
	WorkerClientCert bool
	// CSRF checks the CSRF token of a state-changing request that carries
	// cookies (a web UI session). Nil means no cookie authenticates
	// anything, so there is nothing to check. The session code sets it;
	// the rule it must keep is in docs/security.md: a session's token
	// arrives in CSRFHeader and is compared in constant time with the one
	// bound to the session cookie.
	CSRF func(r *http.Request) error
	// Logger records every request the guard refuses, at Warn: such a
	// request never reaches authentication, so the audit log cannot hold it,
	// and a CSRF or DNS-rebinding attempt must still leave a trace. Nil
	// logs nothing.
	Logger *slog.Logger
}

// Guard wraps an API handler so that a browser cannot be turned against the
// server, which usually listens on loopback where every web page the user
// opens can reach it:
//
//   - The Host of every request must be localhost, an IP address or one of
//     AllowedHosts (403 otherwise). DNS rebinding points a name the attacker
//     owns at 127.0.0.1, so its requests name that host; an IP address or
//     localhost cannot be rebound.
//   - A request that changes something (POST, PUT, PATCH, DELETE) from
//     another site is refused (403): its Origin must be the server's own
//     (the Host it was sent to) or one of CORSOrigins, and Sec-Fetch-Site,
//     when the browser sends it, must say same-origin (or none: typed by the
//     user). Clients that are not browsers send neither header.
//   - Its body must be JSON (the worker's log and artifact uploads:
//     octet-stream), 415
//     otherwise. Neither is a type a form or a "simple" cross-site fetch can
//     send without a preflight, which the server refuses. A request without
//     a body may omit Content-Type; a browser's body-less cross-site fetch
//     still sends Origin and Sec-Fetch-Site and is refused above.
//   - With cookies, the request must pass opts.CSRF.
//   - CORS answers only for CORSOrigins, preflights included.
//
// Every answer carries SecurityHeaders.
func Guard(next http.Handler, opts GuardOptions) http.Handler {
	g := &guard{next: next, opts: opts, hosts: map[string]bool{"localhost": true}, origins: map[string]bool{}}
	for _, h := range opts.AllowedHosts {
		if h = normalHost(h); h != "" {
			g.hosts[h] = true
		}
	}
	for _, o := range opts.CORSOrigins {
		if n, ok := normalOrigin(o); ok {
			g.origins[n] = true
		}
	}
	return g
}

type guard struct {
	next    http.Handler
	opts    GuardOptions
	hosts   map[string]bool // lower-case names, NAME or NAME:PORT
	origins map[string]bool // normalOrigin of the CORS origins
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &headerWriter{ResponseWriter: w}
	sw.set()
	if err := g.check(sw, r); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = Errorf(http.StatusForbidden, CodeForbidden, "%v", err)
		}
		if g.opts.Logger != nil {
			g.opts.Logger.Warn("request refused before authentication", "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "host", r.Host, "origin", r.Header.Get("Origin"),
				"sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "status", e.Status, "reason", e.Message)
		}
		writeError(sw, e)
		return
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		g.preflight(sw, r)
		return
	}
	g.next.ServeHTTP(sw, r)
}

// check applies the rules of Guard to r and sets the CORS headers of an
// allowed cross-origin request.
func (g *guard) check(w http.ResponseWriter, r *http.Request) error {
	if !g.hostAllowed(r.Host) {
		return Errorf(http.StatusForbidden, CodeForbidden,
			"host %q is not one this server answers to; add it to allowed_hosts (--allowed-hosts) if people or workers reach the server by that name", r.Host)
	}
	origin := r.Header.Get("Origin")
	corsOK := false
	if len(g.origins) > 0 {
		// The answer depends on the origin: caches must not hand one
		// origin's answer (with or without CORS headers) to another.
		w.Header().Add("Vary", "Origin")
	}
	if origin != "" {
		if n, ok := normalOrigin(origin); ok && g.origins[n] {
			corsOK = true
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
		}
	}
	if g.opts.WorkerClientCert && strings.HasPrefix(r.URL.Path, Prefix+"/worker/") {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			return Errorf(http.StatusForbidden, CodeForbidden,
				"the worker routes need a TLS client certificate issued by the server's client CA (tasuki worker --cert FILE --key FILE)")
		}
	}
	if !unsafeMethod(r.Method) {
		return nil
	}
	if origin != "" && !corsOK && !sameOrigin(origin, r) {
		return Errorf(http.StatusForbidden, CodeForbidden,
			"cross-site request refused: origin %q is not this server's; list it in cors_origins (--cors-origins) to allow a web page there to call the API", origin)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" && !corsOK {
		return Errorf(http.StatusForbidden, CodeForbidden,
			"cross-site request refused (Sec-Fetch-Site: %s); list the page's origin in cors_origins (--cors-origins) to allow it", site)
	}
	if err := checkContentType(r); err != nil {
		return err
	}
	if g.opts.CSRF != nil && len(r.Cookies()) > 0 {
		if err := g.opts.CSRF(r); err != nil {
			return Errorf(http.StatusForbidden, CodeForbidden, "CSRF check failed: %v (send the session's token in %s)", err, CSRFHeader)
		}
	}
	return nil
}

// unsafeMethod reports whether method may change something on the server.
func unsafeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// checkContentType accepts JSON bodies (octet-stream for log and artifact
// uploads) and body-less requests without a Content-Type.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if r.ContentLength == 0 {
			return nil
		}
		return Errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"a request body needs Content-Type: application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == "application/octet-stream" && (isLogUpload(r.URL.Path) || isArtifactUpload(r))) {
		return nil
	}
	return Errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
		"Content-Type %q is not accepted: send application/json", ct)
}

// isLogUpload reports whether path is the worker's log upload, whose body
// is the log's bytes.
func isLogUpload(path string) bool {
	return strings.HasPrefix(path, Prefix+"/worker/leases/") && strings.HasSuffix(path, "/log")
}

// preflight answers a CORS preflight: allowed for CORSOrigins (whose
// headers check already set), refused otherwise.
func (g *guard) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if h.Get("Access-Control-Allow-Origin") == "" {
		writeError(w, Errorf(http.StatusForbidden, CodeForbidden,
			"cross-origin requests from %q are not allowed; list the origin in cors_origins (--cors-origins)", r.Header.Get("Origin")))
		return
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, "+ActorHeader+", "+CSRFHeader)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// hostAllowed reports whether a Host header names this server.
func (g *guard) hostAllowed(host string) bool {
	name, port := splitHost(host)
	if name == "" {
		return false
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return true // an address cannot be rebound to another
	}
	return g.hosts[name] || port != "" && g.hosts[name+":"+port]
}

// splitHost splits a Host header into a lower-case name without brackets
// or final dot, and a port.
func splitHost(host string) (name, port string) {
	host = strings.ToLower(strings.TrimSpace(host))
	if h, p, err := net.SplitHostPort(host); err == nil {
		host, port = h, p
	}
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if strings.ContainsAny(host, "/@ ") {
		return "", ""
	}
	return host, port
}

// normalHost is an AllowedHosts entry as hostAllowed compares it.
func normalHost(h string) string {
	name, port := splitHost(h)
	if name == "" || port == "" {
		return name
	}
	return name + ":" + port
}

// normalOrigin writes an origin as scheme://host:port with the default
// port filled in, so equal origins compare equal.
func normalOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	name, port := splitHost(u.Host)
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + net.JoinHostPort(name, port), true
}

// sameOrigin reports whether origin is the server r was sent to. The
// scheme is not compared: behind a proxy that ends TLS the server sees
// plain HTTP, and the host and port alone already name this server.
func sameOrigin(origin string, r *http.Request) bool {
	o, ok := normalOrigin(origin)
	if !ok {
		return false // "null" (a sandboxed page, a file) is no one's own
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	oScheme, oHost, _ := strings.Cut(o, "://")
	self, ok := normalOrigin(scheme + "://" + r.Host)
	if !ok {
		return false
	}
	_, selfHost, _ := strings.Cut(self, "://")
	if oHost == selfHost {
		return true
	}
	// The page may name the default port of its own scheme while the
	// request came through a proxy to another scheme.
	name, port := splitHost(r.Host)
	if port == "" {
		defaults := map[string]string{"http": "80", "https": "443"}
		return oHost == net.JoinHostPort(name, defaults[oScheme])
	}
	return false
}

// headerWriter sets SecurityHeaders again just before the answer starts,
// so a handler or proxy that copied another server's headers in leaves
// them set once.
type headerWriter struct {
	http.ResponseWriter
	started bool
}

func (w *headerWriter) set() {
	h := w.ResponseWriter.Header()
	for k, v := range SecurityHeaders {
		h.Set(k, v)
	}
}

func (w *headerWriter) WriteHeader(status int) {
	if !w.started {
		w.set()
		if status >= 200 {
			w.started = true
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *headerWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.set()
		w.started = true
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the server's writer (log
// streams flush through it).
func (w *headerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
