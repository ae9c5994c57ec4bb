package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// tokens implements api.Tokens over the store, for worker and API tokens
// alike. Only the SHA-256 of a token is stored: a stolen database does not
// hold working tokens.
type tokens struct {
	s *Server

	mu      sync.Mutex
	touched map[int64]time.Time // last "last used" write per token, to write it at most once a minute
	valid   map[string]cached   // recently authenticated secrets' hashes
	gen     uint64              // bumped by every revocation
}

// cached is a token found valid, remembered briefly: every worker request
// authenticates, and a database lookup each time was a tenth of the
// server's CPU under load. A revoked token stops working within
// tokenCacheTTL.
type cached struct {
	who     api.Principal
	expires time.Time // of the cache entry
	ends    time.Time // of the token itself; zero: never
}

const tokenCacheTTL = 5 * time.Second

// tokenOutageGrace is how long after its cache entry expired a token found
// valid is still accepted while the store fails transiently (see
// Authenticate); it matches how long a run waits for the store
// (runner.Runner.StoreOutage's default).
const tokenOutageGrace = 10 * time.Minute

// tokenPrefix marks tasuki tokens, so secret scanners can find them.
const tokenPrefix = "tsk_"

func hashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// newSecret makes a token's secret: 256 random bits.
func newSecret() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("make a token: %w", err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

func (t *tokens) CreateToken(ctx context.Context, req api.CreateTokenRequest, actor string) (string, api.TokenInfo, error) {
	name := req.Name
	// No colon: "user:NAME" and "oidc:NAME" name people as actors, and a
	// token must never pass for one.
	if name == "" || len(name) > 100 || strings.ContainsAny(name, " \t\n/:") {
		return "", api.TokenInfo{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "token name %q: expected 1 to 100 characters without spaces, slashes or colons", name)
	}
	secret, err := newSecret()
	if err != nil {
		return "", api.TokenInfo{}, err
	}
	nt := store.NewToken{Name: name, Kind: store.TokenWorker}
	if req.Kind == api.KindAgent {
		nt.Kind = store.TokenAgent
	}
	if req.Role != "" {
		nt = store.NewToken{Name: name, Kind: store.TokenAPI, Role: string(req.Role), Namespace: req.Namespace}
		if req.ExpiresAt != nil {
			nt.ExpiresAt = *req.ExpiresAt
		}
	}
	tok, err := t.s.store.IssueToken(ctx, nt, hashToken(secret), t.s.now())
	if errors.Is(err, store.ErrConflict) {
		return "", api.TokenInfo{}, api.Errorf(http.StatusConflict, api.CodeConflict, "a token named %q exists; revoke it first or choose another name", name)
	}
	if err != nil {
		return "", api.TokenInfo{}, err
	}
	t.s.log.Info("token created", "name", name, "kind", tok.Kind, "role", tok.Role, "namespace", tok.Namespace, "actor", actor)
	return secret, tokenInfo(tok), nil
}

func (t *tokens) RevokeToken(ctx context.Context, name, actor string) error {
	err := t.s.store.RevokeToken(ctx, name, t.s.now())
	t.mu.Lock()
	clear(t.valid) // this server stops accepting it at once; others within tokenCacheTTL
	t.gen++
	t.mu.Unlock()
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no token named %q", name)
	}
	if err == nil {
		t.s.log.Info("token revoked", "name", name, "actor", actor)
	}
	return err
}

func (t *tokens) ListTokens(ctx context.Context) ([]api.TokenInfo, error) {
	toks, err := t.s.store.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.TokenInfo, len(toks))
	for i, tok := range toks {
		out[i] = tokenInfo(tok)
	}
	return out, nil
}

func (t *tokens) Authenticate(ctx context.Context, secret string) (api.Principal, error) {
	refused := api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "a valid token is required (Authorization: Bearer <token>)")
	if !strings.HasPrefix(secret, tokenPrefix) {
		return api.Principal{}, refused
	}
	hash := hashToken(secret)
	now := t.s.now()
	t.mu.Lock()
	c, known := t.valid[string(hash)]
	if known && time.Now().Before(c.expires) {
		t.mu.Unlock()
		if !c.ends.IsZero() && !now.Before(c.ends) {
			return api.Principal{}, refused
		}
		return c.who, nil
	}
	gen := t.gen
	t.mu.Unlock()
	tok, err := t.s.store.TokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return api.Principal{}, refused
	}
	if err != nil && known && store.Transient(err) && time.Since(c.expires) < tokenOutageGrace &&
		(c.ends.IsZero() || now.Before(c.ends)) {
		// The store cannot be asked (restarting, unreachable): a token
		// found valid shortly before goes on working, so workers' heartbeats
		// and reports keep their attempts alive through the outage. A
		// revocation meanwhile takes effect once the store answers.
		return c.who, nil
	}
	if err != nil {
		return api.Principal{}, err
	}
	if !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt) {
		return api.Principal{}, refused
	}
	who := api.Principal{Name: tok.Name, Kind: string(tok.Kind), Role: api.Role(tok.Role), Namespace: tok.Namespace}
	t.mu.Lock()
	if t.touched == nil {
		t.touched = map[int64]time.Time{}
		t.valid = map[string]cached{}
	}
	if len(t.valid) > 1000 {
		clear(t.valid)
	}
	if gen == t.gen { // no revocation raced the lookup
		t.valid[string(hash)] = cached{who: who, expires: time.Now().Add(tokenCacheTTL), ends: tok.ExpiresAt}
	}
	stale := now.Sub(t.touched[tok.ID]) > time.Minute
	if stale {
		t.touched[tok.ID] = now
	}
	t.mu.Unlock()
	if stale {
		if err := t.s.store.TouchToken(ctx, tok.ID, now); err != nil {
			t.s.log.Warn("record token use", "name", tok.Name, "err", err)
		}
	}
	return who, nil
}

func tokenInfo(t store.Token) api.TokenInfo {
	return api.TokenInfo{Name: t.Name, Kind: string(t.Kind), Role: api.Role(t.Role), Namespace: t.Namespace, CreatedAt: t.CreatedAt,
		ExpiresAt: api.TimePtr(t.ExpiresAt), RevokedAt: api.TimePtr(t.RevokedAt), LastUsedAt: api.TimePtr(t.LastUsedAt)}
}
