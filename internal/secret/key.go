package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a key in bytes: AES-256.
const KeySize = 32

// Key seals and opens values. Its id, derived from the key by a one-way
// hash, names it in the store without revealing it.
type Key struct {
	id   string
	aead cipher.AEAD
}

// ParseKey reads a key written as base64 (standard or URL alphabet, padded
// or not; surrounding white space is ignored) of KeySize bytes.
func ParseKey(text string) (*Key, error) {
	text = strings.TrimSpace(text)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(text); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.New("secret key: expected base64 of 32 bytes (make one with: head -c 32 /dev/urandom | base64)")
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("secret key: expected 32 bytes, got %d (make one with: head -c 32 /dev/urandom | base64)", len(raw))
	}
	return newKey(raw)
}

// GenerateKey makes a random key and returns it with its base64 text.
func GenerateKey() (*Key, string, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", fmt.Errorf("generate secret key: %w", err)
	}
	k, err := newKey(raw)
	if err != nil {
		return nil, "", err
	}
	return k, base64.StdEncoding.EncodeToString(raw), nil
}

func newKey(raw []byte) (*Key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("tasuki secret key id\x00"), raw...))
	return &Key{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// ID names the key: 16 hex digits of a hash of it.
func (k *Key) ID() string { return k.id }

// Seal encrypts value for the secret called name: a random nonce followed
// by the ciphertext and its tag.
func (k *Key) Seal(name string, value []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(value)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal secret %q: %w", name, err)
	}
	return k.aead.Seal(nonce, nonce, value, []byte(name)), nil
}

// errOpen is what Open says whatever went wrong, so that nothing about the
// value leaks through the error.
var errOpen = errors.New("the sealed value does not open with its key (altered, or stored under another name)")

// Open decrypts what Seal returned for the secret called name.
func (k *Key) Open(name string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, fmt.Errorf("open secret %q: %w", name, errOpen)
	}
	value, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("open secret %q: %w", name, errOpen)
	}
	return value, nil
}
