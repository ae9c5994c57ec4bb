package server

// OpenID Connect login for the web UI: GET /auth/oidc/login sends the
// browser to the provider with a state, a nonce and a PKCE challenge kept
// in a short-lived signed cookie; GET /auth/oidc/callback checks the state,
// exchanges the code (with the PKCE verifier), verifies the ID token
// (issuer, audience, expiry, signature) and its nonce, maps the role claim
// to a role, and opens a session as for a password login.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// OIDC routes, beside the API.
const (
	OIDCLoginPath    = "/auth/oidc/login"
	OIDCCallbackPath = "/auth/oidc/callback"
	oidcCookie       = "tasuki_oidc"
	oidcFlowTTL      = 10 * time.Minute
	// OIDCUserPrefix starts the name of a user who signed in through
	// OpenID Connect, so one can never be taken for a local user.
	OIDCUserPrefix = "oidc:"
)

// OIDCConfig is the single sign-on part of Config.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; empty turns single sign-on off.
	Issuer string `yaml:"oidc_issuer"`
	// ClientID and the client secret are tasuki's registration at the
	// provider. The secret is read from ClientSecretFile or
	// $TASUKI_OIDC_CLIENT_SECRET, never from the configuration file itself.
	ClientID         string `yaml:"oidc_client_id"`
	ClientSecretFile string `yaml:"oidc_client_secret_file"`
	ClientSecret     string `yaml:"-"`
	// RedirectURL is this server's callback as the provider knows it
	// (https://tasuki.example.com/auth/oidc/callback).
	RedirectURL string `yaml:"oidc_redirect_url"`
	// RoleClaim is the ID token claim holding the user's groups (default
	// "groups"), a string or a list of strings.
	RoleClaim string `yaml:"oidc_role_claim"`
	// Roles maps a group to a role (viewer, operator or admin); a user in
	// several mapped groups gets the highest role, one in none is refused.
	Roles map[string]string `yaml:"oidc_roles"`
}

// oidcLogin serves the two routes over the users' sessions.
type oidcLogin struct {
	cfg   OIDCConfig
	users *users
	key   []byte // signs the flow cookie
	// client talks to the provider; without keep-alives, since logins
	// are rare and an idle connection would outlive a stopped server.
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use
}

// withOIDC returns h with the OIDC routes in front when single sign-on is
// configured, else h.
func (s *Server) withOIDC(h http.Handler, u *users) (http.Handler, error) {
	cfg := s.cfg.OIDC
	if cfg.Issuer == "" {
		return h, nil
	}
	if cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc_issuer is set: oidc_client_id and oidc_redirect_url are needed too")
	}
	for group, role := range cfg.Roles {
		if !api.Role(role).Valid() {
			return nil, fmt.Errorf("oidc_roles.%s: role %q: expected viewer, operator or admin", group, role)
		}
	}
	if cfg.ClientSecret == "" && cfg.ClientSecretFile != "" {
		b, err := os.ReadFile(cfg.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oidc_client_secret_file: %w", err)
		}
		cfg.ClientSecret = strings.TrimSpace(string(b))
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "groups"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	o := &oidcLogin{cfg: cfg, users: u, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	if cfg.ClientSecret != "" {
		sum := sha256.Sum256([]byte("tasuki-oidc-flow\x00" + cfg.ClientSecret)) // the same on every server of a deployment
		o.key = sum[:]
	} else {
		o.key = make([]byte, 32)
		if _, err := rand.Read(o.key); err != nil {
			return nil, fmt.Errorf("oidc: make a key: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+OIDCLoginPath, o.login)
	mux.HandleFunc("GET "+OIDCCallbackPath, o.callback)
	mux.Handle("/", h)
	return mux, nil
}

// setup returns the provider and the OAuth2 configuration, discovering the
// provider on first use (and again after a failure), so a provider that is
// down does not stop the server from starting.
func (o *oidcLogin) setup(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	ctx = oidc.ClientContext(ctx, o.client)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("discover the OpenID provider %s: %w", o.cfg.Issuer, err)
		}
		o.provider = p
	}
	return o.provider, &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: o.provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}, nil
}

// flow is what the flow cookie carries between login and callback.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Expires  int64  `json:"e"`
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (o *oidcLogin) sign(payload []byte) string {
	m := hmac.New(sha256.New, o.key)
	m.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (o *oidcLogin) open(value string, now time.Time) (flow, error) {
	p64, s64, ok := strings.Cut(value, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(s64)
	if !ok || err1 != nil || err2 != nil {
		return flow{}, errors.New("malformed")
	}
	m := hmac.New(sha256.New, o.key)
	m.Write(payload)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return flow{}, errors.New("bad signature")
	}
	var f flow
	if err := json.Unmarshal(payload, &f); err != nil {
		return flow{}, errors.New("malformed")
	}
	if now.Unix() > f.Expires {
		return flow{}, errors.New("expired")
	}
	return f, nil
}

func (o *oidcLogin) flowCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	// Lax, not Strict: the provider's redirect back is a cross-site
	// navigation, on which a Strict cookie would not be sent.
	return &http.Cookie{Name: oidcCookie, Value: value, Path: "/auth/oidc/", MaxAge: maxAge, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}
}

func oidcFail(w http.ResponseWriter, status int, format string, args ...any) {
	code := api.CodeForbidden
	if status >= 500 {
		code = api.CodeUnavailable
	}
	e := api.Errorf(status, code, format, args...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: e.Code, Message: e.Message}})
}

func (o *oidcLogin) login(w http.ResponseWriter, r *http.Request) {
	_, oc, err := o.setup(r.Context())
	if err != nil {
		o.users.s.log.Error("oidc login", "err", err)
		oidcFail(w, http.StatusBadGateway, "the OpenID provider cannot be reached; try again later")
		return
	}
	f := flow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Expires: o.users.s.now().Add(oidcFlowTTL).Unix()}
	payload, _ := json.Marshal(f)
	http.SetCookie(w, o.flowCookie(r, o.sign(payload), int(oidcFlowTTL.Seconds())))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, oc.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), http.StatusFound)
}

func (o *oidcLogin) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	log := o.users.s.log
	http.SetCookie(w, o.flowCookie(r, "", -1)) // one use
	c, err := r.Cookie(oidcCookie)
	if err != nil {
		oidcFail(w, http.StatusForbidden, "single sign-on: no login in progress in this browser (or it took over %s); start again at %s", oidcFlowTTL, OIDCLoginPath)
		return
	}
	f, err := o.open(c.Value, o.users.s.now())
	if err != nil {
		log.Warn("oidc callback refused: flow cookie", "err", err, "remote", r.RemoteAddr)
		oidcFail(w, http.StatusForbidden, "single sign-on: the login in progress is %v; start again at %s", err, OIDCLoginPath)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		log.Warn("oidc callback refused: state does not match", "remote", r.RemoteAddr)
		oidcFail(w, http.StatusForbidden, "single sign-on: the state does not match the login in progress")
		return
	}
	if e := q.Get("error"); e != "" {
		oidcFail(w, http.StatusForbidden, "single sign-on: the provider refused: %s", e)
		return
	}
	p, oc, err := o.setup(ctx)
	if err != nil {
		log.Error("oidc callback", "err", err)
		oidcFail(w, http.StatusBadGateway, "the OpenID provider cannot be reached; try again later")
		return
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, o.client)
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		log.Warn("oidc callback refused: code exchange", "err", err, "remote", r.RemoteAddr)
		oidcFail(w, http.StatusForbidden, "single sign-on: the provider did not accept the login's code")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.VerifierContext(ctx, &oidc.Config{ClientID: o.cfg.ClientID, Now: o.users.s.now}).Verify(ctx, raw)
	if err != nil {
		log.Warn("oidc callback refused: ID token", "err", err, "remote", r.RemoteAddr)
		oidcFail(w, http.StatusForbidden, "single sign-on: the ID token is not valid")
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		log.Warn("oidc callback refused: nonce does not match", "remote", r.RemoteAddr)
		oidcFail(w, http.StatusForbidden, "single sign-on: the ID token's nonce does not match the login in progress")
		return
	}
	name, role, err := o.identify(idt)
	if err != nil {
		log.Warn("oidc login refused", "subject", idt.Subject, "err", err)
		oidcFail(w, http.StatusForbidden, "single sign-on: %v", err)
		return
	}
	usr, err := o.users.ssoUser(ctx, name, role)
	if err == nil {
		var s api.OpenedSession
		if s, err = o.users.open(ctx, usr, o.users.s.now()); err == nil {
			api.SetSessionCookie(w, r, s)
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
	}
	log.Error("oidc login", "user", name, "err", err)
	oidcFail(w, http.StatusInternalServerError, "single sign-on: internal error")
}

// identify returns the user name and role of an ID token (identifyClaims).
func (o *oidcLogin) identify(idt *oidc.IDToken) (name string, role api.Role, err error) {
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", "", fmt.Errorf("read the ID token's claims: %w", err)
	}
	return o.identifyClaims(idt.Subject, claims)
}

// identifyClaims names the user after the token's subject, which the
// provider assigns and never reuses, not after preferred_username or email,
// which at many providers a person may set to anything (another's name
// would be another's account here); the role is the highest that
// oidc_roles maps one of its groups to.
func (o *oidcLogin) identifyClaims(subject string, claims map[string]any) (name string, role api.Role, err error) {
	name = subject
	if name == "" {
		return "", "", errors.New("the ID token has no subject")
	}
	display, _ := claims["preferred_username"].(string)
	if display == "" {
		display, _ = claims["email"].(string)
	}
	var groups []string
	switch v := claims[o.cfg.RoleClaim].(type) {
	case string:
		groups = []string{v}
	case []any:
		for _, g := range v {
			if s, ok := g.(string); ok {
				groups = append(groups, s)
			}
		}
	}
	for _, g := range groups {
		if r := api.Role(o.cfg.Roles[g]); r.Rank() > role.Rank() {
			role = r
		}
	}
	if role == "" {
		return "", "", fmt.Errorf("%s (%s) has no role here: none of their %q groups %q is in oidc_roles", name, display, o.cfg.RoleClaim, groups)
	}
	name = OIDCUserPrefix + name
	if err := api.CheckUserName(name); err != nil {
		return "", "", err
	}
	return name, role, nil
}

// ssoUser returns the user a single sign-on acts as, created on first
// login, and made again (closing their sessions) when the provider's
// groups now map to another role.
func (u *users) ssoUser(ctx context.Context, name string, role api.Role) (store.User, error) {
	usr, err := u.s.store.User(ctx, name)
	switch {
	case err == nil && usr.PasswordHash != "":
		return store.User{}, fmt.Errorf("a local user is called %q", name)
	case err == nil && usr.Role == string(role) && usr.Namespace == "":
		return usr, nil
	case err == nil:
		if err := u.s.store.DeleteUser(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.User{}, err
		}
		u.s.log.Info("single sign-on: role changed; the user's sessions are closed", "user", name, "from", usr.Role, "to", role)
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, err
	}
	return u.s.store.CreateUser(ctx, store.NewUser{Name: name, Role: string(role)}, u.s.now())
}
