package secret

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// MaxValue bounds a secret's value: secrets are passwords, tokens and keys,
// and travel as environment variables (which the kernel bounds too).
const MaxValue = 64 << 10

// Info describes a stored secret without its value.
type Info struct {
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store is the secret store: values sealed with Keys before they reach the
// database, opened when an attempt needs them.
type Store struct {
	DB   store.Secrets
	Keys *Keys
}

// CheckValue validates a secret's value: not empty, valid UTF-8 without
// NUL bytes (it becomes an environment variable), at most MaxValue bytes.
func CheckValue(value string) error {
	switch {
	case value == "":
		return errors.New("the value is empty")
	case len(value) > MaxValue:
		return fmt.Errorf("the value is %d bytes, more than the %d a secret may hold", len(value), MaxValue)
	case !utf8.ValidString(value):
		return errors.New("the value is not valid UTF-8")
	}
	for i := range len(value) {
		if value[i] == 0 {
			return errors.New("the value holds a NUL byte, which an environment variable cannot")
		}
	}
	return nil
}

// Set seals value with the current key and stores it as the secret called
// name, replacing any value it had.
func (s *Store) Set(ctx context.Context, name, value string) (Info, error) {
	if err := store.CheckSecretName(name); err != nil {
		return Info{}, fmt.Errorf("set secret: %w", err)
	}
	if err := CheckValue(value); err != nil {
		return Info{}, fmt.Errorf("set secret %q: %w", name, err)
	}
	key, err := s.Keys.Current()
	if err != nil {
		return Info{}, fmt.Errorf("set secret %q: %w", name, err)
	}
	sealed, err := key.Seal(name, []byte(value))
	if err != nil {
		return Info{}, err
	}
	row, err := s.DB.PutSecret(ctx, store.SealedSecret{Name: name, KeyID: key.ID(), Sealed: sealed}, time.Time{})
	if err != nil {
		return Info{}, fmt.Errorf("set secret %q: %w", name, err)
	}
	return info(row), nil
}

func info(row store.SealedSecret) Info {
	return Info{Name: row.Name, CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt}
}

// Get returns the value of the secret called name; an error matching
// store.ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, name string) (string, error) {
	row, err := s.DB.Secret(ctx, name)
	if err != nil {
		return "", err
	}
	key, err := s.Keys.ByID(row.KeyID)
	if err != nil {
		return "", fmt.Errorf("open secret %q: %w", name, err)
	}
	value, err := key.Open(name, row.Sealed)
	if err != nil {
		return "", err
	}
	return string(value), nil
}

// List describes every stored secret, by name, without values.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	rows, err := s.DB.ListSecrets(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Info, len(rows))
	for i, r := range rows {
		out[i] = info(r)
	}
	return out, nil
}

// Delete removes the secret called name (store.ErrNotFound when there is
// none).
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.DB.DeleteSecret(ctx, name)
}

// Rotation says what RotateKey did.
type Rotation struct {
	// KeyID is the key every secret is sealed with now.
	KeyID string
	// NewKey says whether a new key was made (a key file); false when the
	// key comes from $TASUKI_SECRET_KEY, whose rotation the operator does.
	NewKey bool
	// Resealed counts the secrets sealed again.
	Resealed int
}

// RotateKey re-seals every secret with a new key. With a key file: a new
// key is written beside it (File+".new"), every secret is re-sealed with
// it, then it replaces the key file, the old key being kept as File+".old"
// until the end, so a crash at any point leaves every value openable and a
// second RotateKey finishes the work. With the key in $TASUKI_SECRET_KEY:
// the operator has put the new key there and the old one in
// $TASUKI_SECRET_OLD_KEY, and RotateKey re-seals with the new key what the
// old one sealed.
func (s *Store) RotateKey(ctx context.Context) (Rotation, error) {
	current, err := s.Keys.Current()
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate secret key: %w", err)
	}
	s.Keys.mu.Lock()
	fromEnv := s.Keys.fromEnv
	s.Keys.mu.Unlock()
	var rot Rotation
	// First finish what an interrupted rotation left sealed with another
	// key, so the key being replaced is the only one in use.
	n, err := s.reseal(ctx, current)
	rot.Resealed += n
	if err != nil {
		return rot, err
	}
	if fromEnv {
		rot.KeyID = current.ID()
		return rot, nil
	}
	next, text, err := GenerateKey()
	if err != nil {
		return rot, err
	}
	file := s.Keys.File
	if err := writeKeyFile(file+".new", text, true); err != nil {
		return rot, fmt.Errorf("rotate secret key: %w", err)
	}
	// From now on values are sealed with the next key, also those set
	// while this runs; after a crash the ".new" file still opens them.
	s.Keys.mu.Lock()
	s.Keys.all[next.ID()] = next
	s.Keys.current = next
	s.Keys.mu.Unlock()
	n, err = s.reseal(ctx, next)
	rot.Resealed += n
	if err != nil {
		return rot, err
	}
	old, err := os.ReadFile(file)
	if err != nil {
		return rot, fmt.Errorf("rotate secret key: %w", err)
	}
	if err := writeKeyFile(file+".old", string(old), true); err != nil {
		return rot, fmt.Errorf("rotate secret key: %w", err)
	}
	if err := os.Rename(file+".new", file); err != nil {
		return rot, fmt.Errorf("rotate secret key: %w", err)
	}
	// A value sealed with the old key by a process that had read it before
	// (a second tasuki on this data directory) is re-sealed too.
	n, err = s.reseal(ctx, next)
	rot.Resealed += n
	if err != nil {
		return rot, err
	}
	s.Keys.mu.Lock()
	delete(s.Keys.all, current.ID())
	s.Keys.mu.Unlock()
	if err := os.Remove(file + ".old"); err != nil {
		return rot, fmt.Errorf("rotate secret key: remove the old key: %w", err)
	}
	rot.KeyID, rot.NewKey = next.ID(), true
	return rot, nil
}

// reseal seals with key every secret sealed with another key. A secret set
// meanwhile (sealed with the current key) is left alone.
func (s *Store) reseal(ctx context.Context, key *Key) (int, error) {
	rows, err := s.DB.ListSecrets(ctx)
	if err != nil {
		return 0, fmt.Errorf("rotate secret key: %w", err)
	}
	n := 0
	for _, row := range rows {
		if row.KeyID == key.ID() {
			continue
		}
		old, err := s.Keys.ByID(row.KeyID)
		if err != nil {
			return n, fmt.Errorf("rotate secret key: secret %q: %w", row.Name, err)
		}
		value, err := old.Open(row.Name, row.Sealed)
		if err != nil {
			return n, fmt.Errorf("rotate secret key: %w", err)
		}
		sealed, err := key.Seal(row.Name, value)
		clear(value)
		if err != nil {
			return n, err
		}
		switch err := s.DB.ResealSecret(ctx, row.Name, row.KeyID, key.ID(), sealed); {
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			// Set or removed meanwhile: nothing of the old key is left in it.
		case err != nil:
			return n, fmt.Errorf("rotate secret key: %w", err)
		default:
			n++
		}
	}
	return n, nil
}
