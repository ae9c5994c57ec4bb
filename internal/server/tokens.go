package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// tokens implements api.Tokens over the store. Only the SHA-256 of a token
// is stored: a stolen database does not hold working tokens.
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
	name    string
	expires time.Time
}

const tokenCacheTTL = 5 * time.Second

// tokenPrefix marks tasuki worker tokens, so secret scanners can find them.
const tokenPrefix = "tsk_"

func hashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func (t *tokens) CreateToken(ctx context.Context, name, actor string) (string, api.TokenInfo, error) {
	if name == "" || len(name) > 100 || strings.ContainsAny(name, " \t\n/") {
		return "", api.TokenInfo{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "token name %q: expected 1 to 100 characters without spaces or slashes", name)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", api.TokenInfo{}, err
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	tok, err := t.s.store.CreateToken(ctx, name, hashToken(secret), t.s.now())
	if errors.Is(err, store.ErrConflict) {
		return "", api.TokenInfo{}, api.Errorf(http.StatusConflict, api.CodeConflict, "a token named %q exists; revoke it first or choose another name", name)
	}
	if err != nil {
		return "", api.TokenInfo{}, err
	}
	t.s.log.Info("worker token created", "name", name, "actor", actor)
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
		t.s.log.Info("worker token revoked", "name", name, "actor", actor)
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

func (t *tokens) Authenticate(ctx context.Context, secret string) (string, error) {
	refused := api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "a valid worker token is required (Authorization: Bearer <token>; create one with 'tasuki token create NAME')")
	if !strings.HasPrefix(secret, tokenPrefix) {
		return "", refused
	}
	hash := hashToken(secret)
	t.mu.Lock()
	if c, ok := t.valid[string(hash)]; ok && time.Now().Before(c.expires) {
		t.mu.Unlock()
		return c.name, nil
	}
	gen := t.gen
	t.mu.Unlock()
	tok, err := t.s.store.TokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return "", refused
	}
	if err != nil {
		return "", err
	}
	now := t.s.now()
	t.mu.Lock()
	if t.touched == nil {
		t.touched = map[int64]time.Time{}
		t.valid = map[string]cached{}
	}
	if len(t.valid) > 1000 {
		clear(t.valid)
	}
	if gen == t.gen { // no revocation raced the lookup
		t.valid[string(hash)] = cached{name: tok.Name, expires: time.Now().Add(tokenCacheTTL)}
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
	return tok.Name, nil
}

func tokenInfo(t store.Token) api.TokenInfo {
	return api.TokenInfo{Name: t.Name, CreatedAt: t.CreatedAt, RevokedAt: api.TimePtr(t.RevokedAt), LastUsedAt: api.TimePtr(t.LastUsedAt)}
}
