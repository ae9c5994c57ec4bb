package secret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// EnvPrefix starts the server's environment variables that hold secrets:
// TASUKI_SECRET_<NAME>, NAME being the secret's name in upper case. They
// are never passed on to the tasks tasuki starts.
const EnvPrefix = "TASUKI_SECRET_"

// ErrNotSet is returned (wrapped, naming the secret) for a secret that no
// source has.
var ErrNotSet = errors.New("is not set")

// Resolver looks secrets up for attempts, in order: the environment
// (TASUKI_SECRET_<NAME>), the directory Dir (a file named like the secret,
// as Kubernetes and Docker mount secrets), then the secret store. The
// first source that has a secret gives its value, so a deployment can
// override a stored secret without touching the database.
type Resolver struct {
	// Environ is the environment of the server (KEY=VALUE), read for
	// TASUKI_SECRET_<NAME>.
	Environ []string
	// Dir is the secrets directory ("" for none).
	Dir string
	// Store is the secret store (nil for none).
	Store *Store
}

// Secret returns the value of the secret called name. A secret that no
// source has is an error matching ErrNotSet whose message names the secret
// and where it can be given; no error ever holds a value.
func (r *Resolver) Secret(ctx context.Context, name string) (string, error) {
	if err := store.CheckSecretName(name); err != nil {
		return "", err
	}
	if v, ok := r.fromEnv(name); ok {
		return v, nil
	}
	if r.Dir != "" {
		v, ok, err := r.fromDir(name)
		if err != nil || ok {
			return v, err
		}
	}
	if r.Store != nil {
		v, err := r.Store.Get(ctx, name)
		if !errors.Is(err, store.ErrNotFound) {
			return v, err
		}
	}
	where := fmt.Sprintf("'tasuki secret set %s', or %s%s in the server's environment", name, EnvPrefix, strings.ToUpper(name))
	if r.Dir != "" {
		where = fmt.Sprintf("'tasuki secret set %s', a file %s, or %s%s in the server's environment", name, filepath.Join(r.Dir, name), EnvPrefix, strings.ToUpper(name))
	}
	return "", fmt.Errorf("secret %q %w: give it with %s", name, ErrNotSet, where)
}

// fromEnv reads TASUKI_SECRET_<NAME>. The key variables are not secrets.
func (r *Resolver) fromEnv(name string) (string, bool) {
	key := EnvPrefix + strings.ToUpper(name)
	if key == KeyEnv || key == OldKeyEnv {
		return "", false
	}
	for i := len(r.Environ) - 1; i >= 0; i-- { // the last one wins, as in a process's environment
		if v, ok := strings.CutPrefix(r.Environ[i], key+"="); ok && v != "" {
			return v, true
		}
	}
	return "", false
}

// fromDir reads the file named like the secret in Dir, without one
// trailing newline (echo and editors add one).
func (r *Resolver) fromDir(name string) (string, bool, error) {
	f, err := os.Open(filepath.Join(r.Dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("secret %q: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxValue+3))
	if err != nil {
		return "", false, fmt.Errorf("secret %q: read %s: %w", name, f.Name(), err)
	}
	v := TrimNewline(string(data))
	if err := CheckValue(v); err != nil {
		return "", false, fmt.Errorf("secret %q in %s: %w", name, f.Name(), err)
	}
	return v, true, nil
}

// TrimNewline removes one trailing "\n" or "\r\n": the line end a file or
// a terminal adds to a value.
func TrimNewline(s string) string {
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		return strings.TrimSuffix(t, "\r")
	}
	return s
}
