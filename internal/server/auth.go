package server

// The first admin token and the audit log.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// AdminTokenFile is the name, in the data directory, of the file a new
// server writes its first admin API token to (mode 0600), where the CLI on
// the same machine finds it.
const AdminTokenFile = "admin.token"

// ensureAdminToken makes the first admin API token when the store has
// never had an API token: a server is closed to everyone without one, so
// its first start must hand one to whoever started it. The token is
// written to AdminTokenFile in the data directory and printed once on out.
// A store that already has API tokens (another server of the same database
// made one, or an admin revoked this one on purpose) gets none.
func (s *Server) ensureAdminToken(ctx context.Context, out io.Writer) error {
	toks, err := s.store.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("first admin token: list tokens: %w", err)
	}
	for _, t := range toks {
		if t.Kind == store.TokenAPI {
			return nil
		}
	}
	secret, err := newSecret()
	if err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	// The file is written first, under a temporary name, so a token is
	// never stored that nobody can find; it is renamed into place once the
	// store has the token.
	path := filepath.Join(s.cfg.Home, AdminTokenFile)
	tmp, err := os.CreateTemp(s.cfg.Home, AdminTokenFile+".*")
	if err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("first admin token: %w", err)
	}
	if _, err := io.WriteString(tmp, secret+"\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("first admin token: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("first admin token: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("first admin token: write %s: %w", tmp.Name(), err)
	}
	_, err = s.store.IssueToken(ctx, store.NewToken{Name: "admin", Kind: store.TokenAPI, Role: string(api.RoleAdmin)}, hashToken(secret), s.now())
	if errors.Is(err, store.ErrConflict) {
		// Another server of the same database made it meanwhile, or a
		// worker token is called admin: either way this one makes none.
		s.log.Warn("no first admin token created: a token named admin exists; create API tokens with an admin token of that store")
		return nil
	}
	if err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	s.log.Info("created the first admin API token", "file", path)
	fmt.Fprintf(out, "tasuki: created the admin API token; it is shown only this once, and kept in %s (mode 0600):\n%s\n", path, secret)
	return nil
}

// auditLog implements api.AuditLog over the store.
type auditLog struct{ s *Server }

func (a auditLog) RecordAudit(ctx context.Context, e api.AuditEntry) error {
	_, err := a.s.store.AppendAudit(ctx, store.AuditEntry{At: e.At, Actor: store.Text(e.Actor), Remote: store.Text(e.Remote),
		Method: e.Method, Route: e.Route, Target: store.Text(e.Target), Status: e.Status})
	return err
}

func (a auditLog) ListAudit(ctx context.Context, cursor string, limit int) (api.Page[api.AuditEntry], error) {
	var before int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 1 {
			return api.Page[api.AuditEntry]{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: expected the next of an earlier page", cursor)
		}
		before = n
	}
	if limit <= 0 {
		limit = 50
	}
	es, err := a.s.store.ListAudit(ctx, before, limit)
	if err != nil {
		return api.Page[api.AuditEntry]{}, err
	}
	p := api.Page[api.AuditEntry]{Items: make([]api.AuditEntry, len(es))}
	for i, e := range es {
		p.Items[i] = api.AuditEntry{ID: e.ID, At: e.At, Actor: e.Actor, Remote: e.Remote, Method: e.Method, Route: e.Route, Target: e.Target, Status: e.Status}
	}
	if len(es) == limit && es[len(es)-1].ID > 1 {
		p.Next = strconv.FormatInt(es[len(es)-1].ID, 10)
	}
	return p, nil
}
