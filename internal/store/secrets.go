package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SealedSecret is a secret as the store keeps it: encrypted by the caller
// (internal/secret), never in clear. The store sees only the name, the id
// of the key that sealed the value (so a key rotation can find what is
// still sealed with an old key) and the sealed bytes.
type SealedSecret struct {
	Name      string
	KeyID     string
	Sealed    []byte // nonce and ciphertext, as internal/secret writes them
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Secrets is the part of a Store that keeps sealed secrets: the secret
// store administrators manage with 'tasuki secret'.
type Secrets interface {
	// PutSecret stores s under its name, replacing a secret of that name
	// (whose CreatedAt it keeps); now (zero: the current time) becomes its
	// UpdatedAt, and CreatedAt too when it is new. The name must match
	// SecretNamePattern; key id and sealed bytes must not be empty.
	PutSecret(ctx context.Context, s SealedSecret, now time.Time) (SealedSecret, error)
	// Secret returns the secret called name, or ErrNotFound.
	Secret(ctx context.Context, name string) (SealedSecret, error)
	// ListSecrets returns every secret, by name.
	ListSecrets(ctx context.Context) ([]SealedSecret, error)
	// DeleteSecret removes the secret called name; ErrNotFound when there
	// is none.
	DeleteSecret(ctx context.Context, name string) error
	// ResealSecret replaces the sealed value of the secret called name
	// only while it is still sealed with the key oldKeyID, so a rotation
	// never overwrites a value set meanwhile; ErrConflict when it is not
	// (changed or sealed with another key), ErrNotFound when it is gone.
	// UpdatedAt does not change: the value is the same.
	ResealSecret(ctx context.Context, name, oldKeyID, newKeyID string, sealed []byte) error
}

// MaxSecretName bounds a secret's name.
const MaxSecretName = 200

// CheckSecretName validates the name of a secret, the same for both
// drivers.
func CheckSecretName(name string) error {
	if name == "" {
		return errors.New("empty secret name")
	}
	if len(name) > MaxSecretName || !validSecretName(name) {
		return fmt.Errorf("invalid secret name %q: expected letters, digits and '_', not starting with a digit, at most %d bytes", name, MaxSecretName)
	}
	return nil
}

// validSecretName reports whether name is a variable name (letters, digits
// and '_', not starting with a digit), the syntax of spec.SecretNamePattern.
func validSecretName(name string) bool {
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return name != ""
}

// CheckSealedSecret validates s for PutSecret.
func CheckSealedSecret(s SealedSecret) error {
	if err := CheckSecretName(s.Name); err != nil {
		return err
	}
	if s.KeyID == "" || len(s.Sealed) == 0 {
		return fmt.Errorf("secret %q: empty key id or sealed value", s.Name)
	}
	return CheckText("secret key id", s.KeyID)
}
