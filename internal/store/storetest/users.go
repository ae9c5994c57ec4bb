package storetest

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// testUsers checks users and sessions: a user round-trips, names are
// unique and validated, a session is found by its hash with its user's
// role and namespace, revoking one session, all of a user's, changing the
// password and deleting the user each close what they should and no more.
func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.ListUsers(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListUsers on an empty store = %v, %v", got, err)
	}
	alice, err := s.CreateUser(ctx, store.NewUser{Name: "アリス", PasswordHash: "$argon2id$h1", Role: "viewer", Namespace: "finance"}, t0.In(jst))
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	want := store.User{ID: alice.ID, Name: "アリス", PasswordHash: "$argon2id$h1", Role: "viewer", Namespace: "finance", CreatedAt: us(t0), PasswordAt: us(t0)}
	check(t, "created user", alice, want)
	got, err := s.User(ctx, "アリス")
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	check(t, "user", got, want)
	if _, err := s.CreateUser(ctx, store.NewUser{Name: "アリス", PasswordHash: "x", Role: "admin"}, t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser of a taken name = %v, want ErrConflict", err)
	}
	for _, bad := range []store.NewUser{
		{Name: "", Role: "viewer"},
		{Name: "bob", Role: "root"},
		{Name: "bob", Role: ""},
		{Name: "b\x00b", Role: "viewer"},
		{Name: "bob", Role: "viewer", PasswordHash: "\xff"},
	} {
		if _, err := s.CreateUser(ctx, bad, t0); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateUser(%+v) = %v, want a validation error", bad, err)
		}
	}
	if _, err := s.User(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User(bob) = %v, want ErrNotFound", err)
	}
	bob, err := s.CreateUser(ctx, store.NewUser{Name: "bob", PasswordHash: "$argon2id$h2", Role: "admin"}, t0)
	if err != nil {
		t.Fatalf("CreateUser(bob): %v", err)
	}
	if list, err := s.ListUsers(ctx); err != nil || len(list) != 2 || list[0].Name != "bob" || list[1].Name != "アリス" {
		t.Fatalf("ListUsers = %+v, %v; want bob, アリス", list, err)
	}

	hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	exp := t0.Add(12 * time.Hour)
	a1, err := s.CreateSession(ctx, "アリス", hash("a1"), t0.In(jst), exp.In(jst))
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	check(t, "created session", a1, store.Session{ID: a1.ID, User: "アリス", CreatedAt: us(t0), ExpiresAt: us(exp)})
	if _, err := s.CreateSession(ctx, "bob", hash("a1"), t0, exp); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateSession with a stored hash = %v, want ErrConflict", err)
	}
	if _, err := s.CreateSession(ctx, "carol", hash("c"), t0, exp); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateSession of an unknown user = %v, want ErrNotFound", err)
	}
	a2, _ := s.CreateSession(ctx, "アリス", hash("a2"), t0, exp)
	b1, _ := s.CreateSession(ctx, "bob", hash("b1"), t0, exp)
	old, _ := s.CreateSession(ctx, "bob", hash("old"), t0, t0.Add(time.Minute))

	gs, gu, err := s.SessionByHash(ctx, hash("a1"))
	if err != nil {
		t.Fatalf("SessionByHash: %v", err)
	}
	check(t, "session by hash", gs, a1)
	wantU := want
	wantU.PasswordHash = ""
	check(t, "session's user", gu, wantU)
	if _, _, err := s.SessionByHash(ctx, hash("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SessionByHash(unknown) = %v, want ErrNotFound", err)
	}
	if list, err := s.ListSessions(ctx, t0.Add(time.Hour)); err != nil || len(list) != 3 || list[0].ID != a1.ID || list[1].ID != a2.ID || list[2].ID != b1.ID {
		t.Errorf("ListSessions = %+v, %v; want a1, a2, b1 (old has expired)", list, err)
	}
	_ = old

	// One session.
	if err := s.RevokeSession(ctx, a1.ID, t0.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	if err := s.RevokeSession(ctx, a1.ID, t0.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeSession twice = %v, want ErrNotFound", err)
	}
	if _, _, err := s.SessionByHash(ctx, hash("a1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a revoked session is found: %v", err)
	}
	if _, _, err := s.SessionByHash(ctx, hash("a2")); err != nil {
		t.Errorf("revoking a1 closed a2: %v", err)
	}

	// A password change closes every session of its user, and only theirs.
	if err := s.SetPassword(ctx, "アリス", "$argon2id$h3", t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if _, _, err := s.SessionByHash(ctx, hash("a2")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a session outlived a password change: %v", err)
	}
	if _, _, err := s.SessionByHash(ctx, hash("b1")); err != nil {
		t.Errorf("alice's password change closed bob's session: %v", err)
	}
	got, _ = s.User(ctx, "アリス")
	if got.PasswordHash != "$argon2id$h3" || !got.PasswordAt.Equal(us(t0.Add(2*time.Hour))) || !got.CreatedAt.Equal(us(t0)) {
		t.Errorf("after SetPassword: %+v", got)
	}
	if err := s.SetPassword(ctx, "carol", "x", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPassword of an unknown user = %v, want ErrNotFound", err)
	}

	// All of a user's sessions.
	if n, err := s.RevokeUserSessions(ctx, "bob", t0.Add(3*time.Hour)); err != nil || n != 2 {
		t.Errorf("RevokeUserSessions(bob) = %d, %v; want 2 (b1 and the expired one)", n, err)
	}
	if n, err := s.RevokeUserSessions(ctx, "bob", t0.Add(3*time.Hour)); err != nil || n != 0 {
		t.Errorf("RevokeUserSessions(bob) again = %d, %v; want 0", n, err)
	}

	// Deleting a user deletes their sessions: a new user of that name does
	// not inherit them.
	b2, _ := s.CreateSession(ctx, "bob", hash("b2"), t0, exp)
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if err := s.DeleteUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser twice = %v, want ErrNotFound", err)
	}
	if _, err := s.CreateUser(ctx, store.NewUser{Name: "bob", PasswordHash: "x", Role: "viewer"}, t0); err != nil {
		t.Fatalf("CreateUser(bob) again: %v", err)
	}
	if _, _, err := s.SessionByHash(ctx, hash("b2")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted user's session %d is found: %v", b2.ID, err)
	}
	if _, err := s.User(ctx, bob.Name); err != nil {
		t.Errorf("User(bob): %v", err)
	}
}
