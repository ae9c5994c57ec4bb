package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Environment variables and files of the key.
const (
	// KeyEnv holds the key (base64 of 32 bytes); when set, no key file is
	// read or created.
	KeyEnv = "TASUKI_SECRET_KEY"
	// OldKeyEnv holds the previous key during a rotation of keys given in
	// the environment: values it sealed are opened with it and re-sealed
	// with KeyEnv's.
	OldKeyEnv = "TASUKI_SECRET_OLD_KEY"
	// KeyFile is the key file's name in the data directory.
	KeyFile = "secret.key"
)

// ErrNoKey is returned when a sealed value must be opened and there is no
// key at all (no $TASUKI_SECRET_KEY and no key file): the store holds
// secrets sealed by a key that is not here.
var ErrNoKey = errors.New("no secret key: set $TASUKI_SECRET_KEY or restore the key file")

// Keys finds the key that seals new values (the current key) and every key
// that can open stored ones. It reads them on first need and keeps them.
type Keys struct {
	// File is the key file: read when Env gives no key, created on first
	// need (mode 0600). During a rotation File+".new" holds the next key
	// and File+".old" the previous one; both open values too.
	File string
	// Getenv reads KeyEnv and OldKeyEnv (nil: no environment).
	Getenv func(string) string

	mu      sync.Mutex
	current *Key
	fromEnv bool
	all     map[string]*Key // by id, the current one included
}

// NewKeys returns the keys of the data directory home, from the
// environment getenv reads first.
func NewKeys(home string, getenv func(string) string) *Keys {
	return &Keys{File: filepath.Join(home, KeyFile), Getenv: getenv}
}

func (k *Keys) getenv(name string) string {
	if k.Getenv == nil {
		return ""
	}
	return k.Getenv(name)
}

// load reads the keys once. create says whether a missing key file may be
// created (sealing a new value), or not (opening stored ones).
func (k *Keys) load(create bool) error {
	if k.current != nil {
		return nil
	}
	all := map[string]*Key{}
	add := func(text, from string) (*Key, error) {
		key, err := ParseKey(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		all[key.ID()] = key
		return key, nil
	}
	var current *Key
	fromEnv := false
	if text := k.getenv(KeyEnv); text != "" {
		key, err := add(text, "$"+KeyEnv)
		if err != nil {
			return err
		}
		current, fromEnv = key, true
	} else {
		data, err := os.ReadFile(k.File)
		switch {
		case err == nil:
			if current, err = add(string(data), k.File); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("read secret key: %w", err)
		}
	}
	if text := k.getenv(OldKeyEnv); text != "" {
		if _, err := add(text, "$"+OldKeyEnv); err != nil {
			return err
		}
	}
	for _, extra := range []string{k.File + ".new", k.File + ".old"} {
		data, err := os.ReadFile(extra)
		if err == nil {
			if _, err := add(string(data), extra); err != nil {
				return err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read secret key: %w", err)
		}
	}
	if current == nil {
		if !create {
			k.all = all // what there is can still open values
			return nil
		}
		key, text, err := GenerateKey()
		if err != nil {
			return err
		}
		switch err := writeKeyFile(k.File, text, false); {
		case errors.Is(err, fs.ErrExist):
			// Another process created it first: use its key.
			data, rerr := os.ReadFile(k.File)
			if rerr != nil {
				return fmt.Errorf("read secret key: %w", rerr)
			}
			if key, err = add(string(data), k.File); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			all[key.ID()] = key
		}
		current = key
	}
	k.current, k.fromEnv, k.all = current, fromEnv, all
	return nil
}

// Current returns the key that seals new values, creating the key file if
// there is no key yet.
func (k *Keys) Current() (*Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.load(true); err != nil {
		return nil, err
	}
	return k.current, nil
}

// ByID returns the key with this id, to open a value it sealed.
func (k *Keys) ByID(id string) (*Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.load(false); err != nil {
		return nil, err
	}
	if key := k.all[id]; key != nil {
		return key, nil
	}
	if len(k.all) == 0 {
		return nil, ErrNoKey
	}
	return nil, fmt.Errorf("the value was sealed with key %s, which is not here (give it in $%s to rotate)", id, OldKeyEnv)
}

// writeKeyFile writes a key file readable by its owner only, whole or not
// at all: to a temporary file, synced, then renamed (replace: over an
// existing file; otherwise a file that appeared meanwhile wins).
func writeKeyFile(path, text string, replace bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-key-*")
	if err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret key: %w", err)
	}
	if _, err := tmp.WriteString(text + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	if replace {
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("write secret key: %w", err)
		}
		return nil
	}
	// A link fails if path exists: two processes creating the key at once
	// end with one key, and the loser reads it.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write secret key %s: %w", path, err)
	}
	return nil
}
