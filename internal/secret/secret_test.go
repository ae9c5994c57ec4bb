package secret

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

const value = "s3cr3t-Value-that-must-never-show"

func testKey(t *testing.T) (*Key, string) {
	t.Helper()
	k, text, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, text
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// openDB opens a real SQLite store in dir.
func openDB(t *testing.T, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSealOpen(t *testing.T) {
	k, text := testKey(t)
	sealed, err := k.Seal("db_password", []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(value)) {
		t.Fatal("the sealed value holds the value")
	}
	again, _ := k.Seal("db_password", []byte(value))
	if bytes.Equal(sealed, again) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	got, err := k.Open("db_password", sealed)
	if err != nil || string(got) != value {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// The name is bound to the value: a sealed value moved to another
	// name, or altered, does not open, and the error holds nothing of it.
	if _, err := k.Open("other", sealed); err == nil {
		t.Error("a value sealed for one name opened under another")
	}
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	if _, err := k.Open("db_password", bad); err == nil || strings.Contains(err.Error(), value) {
		t.Errorf("altered value: Open error = %v", err)
	}
	if _, err := k.Open("db_password", sealed[:5]); err == nil {
		t.Error("a truncated value opened")
	}
	// The same key text gives the same id; another key another id.
	k2, err := ParseKey(" " + text + "\n")
	if err != nil || k2.ID() != k.ID() {
		t.Fatalf("ParseKey of the same text: %v, id %s want %s", err, k2.ID(), k.ID())
	}
	if strings.Contains(text, k.ID()) || len(k.ID()) != 16 {
		t.Errorf("key id %q", k.ID())
	}
	other, _ := testKey(t)
	if other.ID() == k.ID() {
		t.Error("two keys have one id")
	}
	if _, err := other.Open("db_password", sealed); err == nil {
		t.Error("a value opened with another key")
	}
}

func TestParseKeyErrors(t *testing.T) {
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(make([]byte, 16))} {
		if _, err := ParseKey(bad); err == nil || !strings.Contains(err.Error(), "head -c 32 /dev/urandom | base64") {
			t.Errorf("ParseKey(%q) = %v, want an error saying how to make a key", bad, err)
		}
	}
}

// TestKeyFileCreatedOnFirstNeed: no key file is made until a value is
// sealed; then it is made with mode 0600 and used again by the next
// process.
func TestKeyFileCreatedOnFirstNeed(t *testing.T) {
	home := t.TempDir()
	keys := NewKeys(home, env(nil))
	if _, err := keys.ByID("0123456789abcdef"); !errors.Is(err, ErrNoKey) {
		t.Errorf("ByID with no key = %v, want ErrNoKey", err)
	}
	if _, err := os.Stat(filepath.Join(home, KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file exists before it is needed: %v", err)
	}
	k, err := keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(home, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	k2, err := NewKeys(home, env(nil)).Current()
	if err != nil || k2.ID() != k.ID() {
		t.Fatalf("the next process has key %v (%v), want %s", k2, err, k.ID())
	}
}

// TestKeyFileCreatedOnce: processes making the key at once end with one.
func TestKeyFileCreatedOnce(t *testing.T) {
	home := t.TempDir()
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			k, err := NewKeys(home, env(nil)).Current()
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = k.ID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("keys made at once differ: %v", ids)
		}
	}
}

func TestKeyFromEnvironment(t *testing.T) {
	home := t.TempDir()
	k, text := testKey(t)
	got, err := NewKeys(home, env(map[string]string{KeyEnv: text})).Current()
	if err != nil || got.ID() != k.ID() {
		t.Fatalf("Current = %v, %v; want the key of $%s", got, err, KeyEnv)
	}
	if _, err := os.Stat(filepath.Join(home, KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key file was made although $%s is set", KeyEnv)
	}
	if _, err := NewKeys(home, env(map[string]string{KeyEnv: "short"})).Current(); err == nil || !strings.Contains(err.Error(), KeyEnv) {
		t.Errorf("a bad $%s: %v, want an error naming it", KeyEnv, err)
	}
}

// TestEncryptedAtRest: after a secret is set, neither the value nor its
// base64 is anywhere in the database's files (main file, WAL, shm).
func TestEncryptedAtRest(t *testing.T) {
	home := t.TempDir()
	db := openDB(t, home)
	s := &Store{DB: db, Keys: NewKeys(home, env(nil))}
	if _, err := s.Set(t.Context(), "warehouse_password", value); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(t.Context(), "warehouse_password"); err != nil || got != value {
		t.Fatalf("Get = %q, %v", got, err)
	}
	files, _ := filepath.Glob(filepath.Join(home, "tasuki.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	seen := false
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seen = seen || bytes.Contains(data, []byte("warehouse_password"))
		for _, form := range []string{value, base64.StdEncoding.EncodeToString([]byte(value))} {
			if bytes.Contains(data, []byte(form)) {
				t.Errorf("%s holds the value in clear (%q)", filepath.Base(f), form)
			}
		}
	}
	if !seen {
		t.Fatal("the secret's name is in no database file: the check read the wrong files")
	}
}

func TestStoreSetErrors(t *testing.T) {
	home := t.TempDir()
	s := &Store{DB: openDB(t, home), Keys: NewKeys(home, env(nil))}
	for _, tt := range []struct{ name, value, want string }{
		{"bad-name", "x", "invalid secret name"},
		{"ok", "", "empty"},
		{"ok", "a\x00b", "NUL"},
		{"ok", "\xff", "UTF-8"},
		{"ok", strings.Repeat("x", MaxValue+1), "more than"},
	} {
		if _, err := s.Set(t.Context(), tt.name, tt.value); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Set(%q, %.10q) = %v, want %q", tt.name, tt.value, err, tt.want)
		}
	}
}

// TestRotateKeyFile: a rotation with a key file makes a new key, re-seals
// every secret with it, and leaves no old key behind; the values are the
// same.
func TestRotateKeyFile(t *testing.T) {
	home := t.TempDir()
	db := openDB(t, home)
	s := &Store{DB: db, Keys: NewKeys(home, env(nil))}
	ctx := t.Context()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.Set(ctx, n, value+n); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := s.Keys.Current()
	oldFile, _ := os.ReadFile(filepath.Join(home, KeyFile))
	rot, err := s.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rot.NewKey || rot.Resealed != 3 || rot.KeyID == old.ID() {
		t.Errorf("rotation = %+v, want a new key and 3 re-sealed", rot)
	}
	rows, _ := db.ListSecrets(ctx)
	for _, r := range rows {
		if r.KeyID != rot.KeyID {
			t.Errorf("secret %s is sealed with %s after the rotation to %s", r.Name, r.KeyID, rot.KeyID)
		}
	}
	newFile, _ := os.ReadFile(filepath.Join(home, KeyFile))
	if bytes.Equal(oldFile, newFile) {
		t.Error("the key file did not change")
	}
	for _, leftover := range []string{".new", ".old"} {
		if _, err := os.Stat(filepath.Join(home, KeyFile+leftover)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s%s is left: %v", KeyFile, leftover, err)
		}
	}
	// A new process, with only the new key file, reads every value.
	fresh := &Store{DB: db, Keys: NewKeys(home, env(nil))}
	for _, n := range []string{"a", "b", "c"} {
		if got, err := fresh.Get(ctx, n); err != nil || got != value+n {
			t.Errorf("after rotation, %s = %q, %v", n, got, err)
		}
	}
}

// TestRotateKeyResumes: a rotation that stopped half way (the next key
// written beside the key file, some secrets re-sealed with it) leaves
// every value readable by a new process, and the next rotation finishes.
func TestRotateKeyResumes(t *testing.T) {
	home := t.TempDir()
	db := openDB(t, home)
	ctx := t.Context()
	s := &Store{DB: db, Keys: NewKeys(home, env(nil))}
	for _, n := range []string{"a", "b"} {
		if _, err := s.Set(ctx, n, value+n); err != nil {
			t.Fatal(err)
		}
	}
	// The state a crash leaves: secret.key.new written, "a" re-sealed.
	next, text := testKey(t)
	if err := writeKeyFile(filepath.Join(home, KeyFile+".new"), text, true); err != nil {
		t.Fatal(err)
	}
	row, _ := db.Secret(ctx, "a")
	cur, _ := s.Keys.Current()
	plain, _ := cur.Open("a", row.Sealed)
	sealed, _ := next.Seal("a", plain)
	if err := db.ResealSecret(ctx, "a", cur.ID(), next.ID(), sealed); err != nil {
		t.Fatal(err)
	}

	restarted := &Store{DB: db, Keys: NewKeys(home, env(nil))}
	for _, n := range []string{"a", "b"} {
		if got, err := restarted.Get(ctx, n); err != nil || got != value+n {
			t.Fatalf("after the crash, %s = %q, %v", n, got, err)
		}
	}
	rot, err := restarted.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	final := &Store{DB: db, Keys: NewKeys(home, env(nil))}
	for _, n := range []string{"a", "b"} {
		if got, err := final.Get(ctx, n); err != nil || got != value+n {
			t.Errorf("after the second rotation, %s = %q, %v", n, got, err)
		}
	}
	if rows, _ := db.ListSecrets(ctx); rows[0].KeyID != rot.KeyID || rows[1].KeyID != rot.KeyID {
		t.Errorf("not every secret is sealed with %s: %+v", rot.KeyID, rows)
	}
}

// TestRotateKeyEnvironment: with keys in the environment, the operator
// puts the new key in $TASUKI_SECRET_KEY and the old in
// $TASUKI_SECRET_OLD_KEY; RotateKey re-seals with the new key, after which
// the old one is no longer needed.
func TestRotateKeyEnvironment(t *testing.T) {
	home := t.TempDir()
	db := openDB(t, home)
	ctx := t.Context()
	_, oldText := testKey(t)
	newKey, newText := testKey(t)
	before := &Store{DB: db, Keys: NewKeys(home, env(map[string]string{KeyEnv: oldText}))}
	if _, err := before.Set(ctx, "token", value); err != nil {
		t.Fatal(err)
	}
	onlyNew := &Store{DB: db, Keys: NewKeys(home, env(map[string]string{KeyEnv: newText}))}
	if _, err := onlyNew.Get(ctx, "token"); err == nil || !strings.Contains(err.Error(), OldKeyEnv) {
		t.Fatalf("Get without the old key = %v, want an error pointing at $%s", err, OldKeyEnv)
	}
	during := &Store{DB: db, Keys: NewKeys(home, env(map[string]string{KeyEnv: newText, OldKeyEnv: oldText}))}
	rot, err := during.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rot.NewKey || rot.Resealed != 1 || rot.KeyID != newKey.ID() {
		t.Errorf("rotation = %+v, want 1 re-sealed with the key of $%s", rot, KeyEnv)
	}
	after := &Store{DB: db, Keys: NewKeys(home, env(map[string]string{KeyEnv: newText}))}
	if got, err := after.Get(ctx, "token"); err != nil || got != value {
		t.Errorf("after the rotation, Get = %q, %v", got, err)
	}
}

// TestResolverPrecedence: the environment wins over the secrets directory,
// which wins over the store; an unknown secret's error names it and where
// to give it, and holds no value.
func TestResolverPrecedence(t *testing.T) {
	home := t.TempDir()
	dir := t.TempDir()
	ctx := t.Context()
	st := &Store{DB: openDB(t, home), Keys: NewKeys(home, env(nil))}
	for _, n := range []string{"in_all", "in_dir_and_store", "in_store"} {
		if _, err := st.Set(ctx, n, "store:"+n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"in_all", "in_dir_and_store", "in_dir"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("dir:"+n+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := &Resolver{
		Environ: []string{"PATH=/bin", "TASUKI_SECRET_IN_ALL=env:in_all", KeyEnv + "=not-a-secret"},
		Dir:     dir,
		Store:   st,
	}
	for name, want := range map[string]string{
		"in_all":           "env:in_all",
		"in_dir_and_store": "dir:in_dir_and_store",
		"in_dir":           "dir:in_dir",
		"in_store":         "store:in_store",
	} {
		if got, err := r.Secret(ctx, name); err != nil || got != want {
			t.Errorf("Secret(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	_, err := r.Secret(ctx, "warehouse_password")
	if !errors.Is(err, ErrNotSet) || !strings.Contains(err.Error(), `secret "warehouse_password" is not set`) ||
		!strings.Contains(err.Error(), "TASUKI_SECRET_WAREHOUSE_PASSWORD") || !strings.Contains(err.Error(), filepath.Join(dir, "warehouse_password")) {
		t.Errorf("unknown secret: %v", err)
	}
	// The key variable is not a secret named "key".
	if _, err := r.Secret(ctx, "key"); !errors.Is(err, ErrNotSet) {
		t.Errorf("Secret(key) = %v, want not set: $%s is the key, not a secret", err, KeyEnv)
	}
	// Names that are not secret names (a path) are refused before any
	// file is opened.
	if _, err := r.Secret(ctx, "../etc/passwd"); err == nil || errors.Is(err, ErrNotSet) {
		t.Errorf("Secret(../etc/passwd) = %v, want an invalid name", err)
	}
}

func TestTrimNewline(t *testing.T) {
	for in, want := range map[string]string{"a\n": "a", "a\r\n": "a", "a\n\n": "a\n", "a": "a", "a\r": "a\r"} {
		if got := TrimNewline(in); got != want {
			t.Errorf("TrimNewline(%q) = %q, want %q", in, got, want)
		}
	}
}

var _ interface {
	Secret(context.Context, string) (string, error)
} = (*Resolver)(nil)

var _ store.Secrets = (*sqlite.DB)(nil)
