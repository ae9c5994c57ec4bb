package apitest

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// Secrets is a fake api.Secrets in memory. It keeps values so a test can
// check what was set; the API never answers them.
type Secrets struct {
	mu     sync.Mutex
	values map[string]string
	infos  map[string]api.SecretInfo
	// Rotations counts RotateSecretKey calls.
	Rotations int
}

// NewSecrets returns a fake secret store holding a secret of each of
// names.
func NewSecrets(names ...string) *Secrets {
	s := &Secrets{values: map[string]string{}, infos: map[string]api.SecretInfo{}}
	for _, n := range names {
		s.SetSecret(context.Background(), n, "value of "+n)
	}
	return s
}

// Value returns what was set for name.
func (s *Secrets) Value(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[name]
	return v, ok
}

// SetSecret implements api.Secrets.
func (s *Secrets) SetSecret(ctx context.Context, name, value string) (api.SecretInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Date(2026, 3, 3, 20, 6, 7, 0, time.UTC)
	info, ok := s.infos[name]
	if !ok {
		info = api.SecretInfo{Name: name, CreatedAt: now}
	}
	info.UpdatedAt = now
	s.infos[name], s.values[name] = info, value
	return info, nil
}

// ListSecrets implements api.Secrets.
func (s *Secrets) ListSecrets(ctx context.Context) ([]api.SecretInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.SecretInfo
	for _, n := range slices.Sorted(maps.Keys(s.infos)) {
		out = append(out, s.infos[n])
	}
	return out, nil
}

// DeleteSecret implements api.Secrets.
func (s *Secrets) DeleteSecret(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.infos[name]; !ok {
		return api.NotFound("no secret %q in the secret store", name)
	}
	delete(s.infos, name)
	delete(s.values, name)
	return nil
}

// RotateSecretKey implements api.Secrets.
func (s *Secrets) RotateSecretKey(ctx context.Context) (api.KeyRotation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Rotations++
	return api.KeyRotation{KeyID: "0123456789abcdef", NewKey: true, Resealed: len(s.infos)}, nil
}
