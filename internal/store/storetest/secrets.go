package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// testSecrets checks the secret store: a put round-trips the sealed bytes
// exactly, a second put replaces the value and keeps the creation time,
// names are validated, delete and reseal say when there is nothing to act
// on, and a reseal only replaces a value still sealed with the old key.
func testSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.ListSecrets(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListSecrets on an empty store = %v, %v", got, err)
	}
	sealed := []byte{0, 1, 2, 0xff, 0xfe, 'x'} // any bytes, NULs included
	put, err := s.PutSecret(ctx, store.SealedSecret{Name: "warehouse_password", KeyID: "k1", Sealed: sealed}, t0.In(jst))
	if err != nil {
		t.Fatalf("PutSecret: %v", err)
	}
	want := store.SealedSecret{Name: "warehouse_password", KeyID: "k1", Sealed: sealed, CreatedAt: us(t0), UpdatedAt: us(t0)}
	check(t, "put secret", put, want)
	got, err := s.Secret(ctx, "warehouse_password")
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	check(t, "secret", got, want)

	later := t0.Add(time.Hour)
	if _, err := s.PutSecret(ctx, store.SealedSecret{Name: "warehouse_password", KeyID: "k1", Sealed: []byte("v2")}, later); err != nil {
		t.Fatalf("PutSecret again: %v", err)
	}
	want = store.SealedSecret{Name: "warehouse_password", KeyID: "k1", Sealed: []byte("v2"), CreatedAt: us(t0), UpdatedAt: us(later)}
	got, _ = s.Secret(ctx, "warehouse_password")
	check(t, "replaced secret", got, want)

	if _, err := s.PutSecret(ctx, store.SealedSecret{Name: "A_token", KeyID: "k0", Sealed: []byte("a")}, t0); err != nil {
		t.Fatalf("PutSecret: %v", err)
	}
	list, err := s.ListSecrets(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "A_token" || list[1].Name != "warehouse_password" {
		t.Fatalf("ListSecrets = %+v, %v; want A_token, warehouse_password", list, err)
	}

	for _, bad := range []store.SealedSecret{
		{Name: "", KeyID: "k", Sealed: []byte("x")},
		{Name: "9lives", KeyID: "k", Sealed: []byte("x")},
		{Name: "a-b", KeyID: "k", Sealed: []byte("x")},
		{Name: "a\x00b", KeyID: "k", Sealed: []byte("x")},
		{Name: "ok", KeyID: "", Sealed: []byte("x")},
		{Name: "ok", KeyID: "k", Sealed: nil},
	} {
		if _, err := s.PutSecret(ctx, bad, t0); err == nil {
			t.Errorf("PutSecret(%q, key %q, %d bytes) succeeded", bad.Name, bad.KeyID, len(bad.Sealed))
		}
	}
	if _, err := s.Secret(ctx, "ok"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused secret was stored: %v", err)
	}

	// Reseal: only from the key it is sealed with.
	if err := s.ResealSecret(ctx, "warehouse_password", "k0", "k2", []byte("v2'")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ResealSecret from the wrong key = %v, want ErrConflict", err)
	}
	if err := s.ResealSecret(ctx, "warehouse_password", "k1", "k2", []byte("v2'")); err != nil {
		t.Fatalf("ResealSecret: %v", err)
	}
	got, _ = s.Secret(ctx, "warehouse_password")
	want = store.SealedSecret{Name: "warehouse_password", KeyID: "k2", Sealed: []byte("v2'"), CreatedAt: us(t0), UpdatedAt: us(later)}
	check(t, "resealed secret", got, want)
	if err := s.ResealSecret(ctx, "nope", "k1", "k2", []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResealSecret of a missing secret = %v, want ErrNotFound", err)
	}

	if err := s.DeleteSecret(ctx, "A_token"); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if err := s.DeleteSecret(ctx, "A_token"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSecret twice = %v, want ErrNotFound", err)
	}
	if _, err := s.Secret(ctx, "A_token"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Secret after delete = %v, want ErrNotFound", err)
	}
}

// testConcurrentSecrets: puts of one name from many goroutines leave one
// row holding one of the values written, and reseals racing a put never
// overwrite the put's value.
func testConcurrentSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.PutSecret(ctx, store.SealedSecret{Name: "s", KeyID: "old", Sealed: []byte("old")}, t0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				if _, err := s.PutSecret(ctx, store.SealedSecret{Name: "s", KeyID: "put", Sealed: []byte{byte(i)}}, t0); err != nil {
					t.Errorf("PutSecret: %v", err)
				}
				return
			}
			if err := s.ResealSecret(ctx, "s", "old", "new", []byte("resealed")); err != nil && !errors.Is(err, store.ErrConflict) {
				t.Errorf("ResealSecret: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := s.Secret(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case got.KeyID == "put" && len(got.Sealed) == 1 && got.Sealed[0]%2 == 0:
	case got.KeyID == "new" && bytes.Equal(got.Sealed, []byte("resealed")):
		t.Errorf("a reseal overwrote a later put: %+v", got)
	default:
		t.Errorf("secret after concurrent writes = %+v", got)
	}
}
