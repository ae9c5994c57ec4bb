package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/secret"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// setupSecrets gives the server its secret store (sealed in its store,
// with the key of $TASUKI_SECRET_KEY or <home>/secret.key) and the
// runner the resolver attempts look their secrets up with: the server's
// TASUKI_SECRET_<NAME> variables, then secrets_dir, then the store.
func (s *Server) setupSecrets() {
	s.secrets = &secret.Store{DB: s.store, Keys: secret.NewKeys(s.cfg.Home, os.Getenv)}
	dir := s.cfg.SecretsDir
	if abs, err := filepath.Abs(dir); err == nil && dir != "" {
		dir = abs // messages name the file to create wherever they are read
	}
	s.runner.Secrets = &secret.Resolver{Environ: os.Environ(), Dir: dir, Store: s.secrets}
}

// secretsAPI serves the /secrets routes over the server's secret store.
// It logs names, never values.
type secretsAPI struct{ s *Server }

func (a secretsAPI) SetSecret(ctx context.Context, name, value string) (api.SecretInfo, error) {
	if err := store.CheckSecretName(name); err != nil {
		return api.SecretInfo{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "%s", err.Error())
	}
	if err := secret.CheckValue(value); err != nil {
		return api.SecretInfo{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "secret %q: %s", name, err.Error())
	}
	info, err := a.s.secrets.Set(ctx, name, value)
	if err != nil {
		return api.SecretInfo{}, err
	}
	a.s.log.Info("secret set", "name", name)
	return api.SecretInfo(info), nil
}

func (a secretsAPI) ListSecrets(ctx context.Context) ([]api.SecretInfo, error) {
	list, err := a.s.secrets.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.SecretInfo, len(list))
	for i, in := range list {
		out[i] = api.SecretInfo(in)
	}
	return out, nil
}

func (a secretsAPI) DeleteSecret(ctx context.Context, name string) error {
	err := a.s.secrets.Delete(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no secret %q in the secret store", name)
	}
	if err == nil {
		a.s.log.Info("secret deleted", "name", name)
	}
	return err
}

func (a secretsAPI) RotateSecretKey(ctx context.Context) (api.KeyRotation, error) {
	rot, err := a.s.secrets.RotateKey(ctx)
	if err != nil {
		return api.KeyRotation{}, err
	}
	a.s.log.Info("secret key rotated", "key_id", rot.KeyID, "new_key", rot.NewKey, "resealed", rot.Resealed)
	return api.KeyRotation{KeyID: rot.KeyID, NewKey: rot.NewKey, Resealed: rot.Resealed}, nil
}

// apiRun converts a stored run for an API answer, the values of the
// parameters its pipeline declares secret shown as "***". A run whose
// pipeline version cannot be read shows no parameters rather than risk
// showing a secret one.
func (s *Server) apiRun(ctx context.Context, r store.Run) api.Run {
	out := api.NewRun(r)
	if len(r.Params) == 0 {
		return out
	}
	p, err := s.runner.Pipeline(ctx, r.VersionID)
	if err != nil {
		out.Params = nil
		return out
	}
	out.Params = runner.RedactParams(p, r.Params)
	return out
}
