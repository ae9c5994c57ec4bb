package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// TestPasswordHash checks the argon2id hashes: a password matches its own
// hash only, salts differ, and a hash that cannot be read matches nothing.
func TestPasswordHash(t *testing.T) {
	h1, err := hashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := hashPassword("correct horse")
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") || h1 == h2 {
		t.Errorf("hashes %q and %q: want argon2id PHC strings with different salts", h1, h2)
	}
	if !checkPassword(h1, "correct horse") || !checkPassword(h2, "correct horse") {
		t.Error("a password does not match its hash")
	}
	for _, c := range []struct{ hash, pw string }{
		{h1, "correct horse "}, {h1, ""}, {h1, "Correct horse"},
		{"", "correct horse"}, {"$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "x"},
		{strings.Replace(h1, "m=19456", "m=99999999", 1), "correct horse"}, // a hash that would exhaust memory
		{strings.Replace(h1, "t=2", "t=0", 1), "correct horse"},
		{h1[:len(h1)-3] + "!!!", "correct horse"},
	} {
		if checkPassword(c.hash, c.pw) {
			t.Errorf("checkPassword(%q, %q) = true", c.hash, c.pw)
		}
	}
}

// newUsersServer is a test server with users olga (operator) and fin
// (viewer confined to finance), and the clock at noon.
func newUsersServer(t *testing.T, ttl time.Duration) (*testServer, *users) {
	t.Helper()
	ts := newTestServer(t, t.TempDir(), t.TempDir(), time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	u := newUsers(ts.Server, ttl)
	ctx := context.Background()
	for _, req := range []api.CreateUserRequest{
		{Name: "olga", Password: "operator-password", Role: api.RoleOperator},
		{Name: "fin", Password: "finance-password", Role: api.RoleViewer, Namespace: "finance"},
	} {
		if _, err := u.CreateUser(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	return ts, u
}

func status(err error) int {
	if e, ok := errors.AsType[*api.Error](err); ok {
		return e.Status
	}
	return 0
}

// TestSessionLifetime checks that a session acts as its user until it
// expires (session_ttl), and not after; and that logging out ends it.
func TestSessionLifetime(t *testing.T) {
	ts, u := newUsersServer(t, time.Hour)
	ctx := context.Background()
	s, err := u.Login(ctx, api.LoginRequest{User: "fin", Password: "finance-password"}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if !s.ExpiresAt.Equal(ts.clock.Now().Add(time.Hour)) || s.Role != api.RoleViewer || s.Namespace != "finance" || len(s.Secret) < 43 {
		t.Errorf("session %+v", s)
	}
	p, err := u.AuthenticateSession(ctx, s.Secret)
	if want := (api.Principal{Name: "user:fin", Kind: api.KindUser, Role: api.RoleViewer, Namespace: "finance"}); err != nil || p != want {
		t.Errorf("AuthenticateSession = %+v, %v; want %+v", p, err, want)
	}
	ts.clock.Set(ts.clock.Now().Add(time.Hour - time.Second))
	if _, err := u.AuthenticateSession(ctx, s.Secret); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
	ts.clock.Set(ts.clock.Now().Add(time.Second))
	if _, err := u.AuthenticateSession(ctx, s.Secret); status(err) != http.StatusUnauthorized {
		t.Errorf("at expiry: %v, want 401", err)
	}

	s, _ = u.Login(ctx, api.LoginRequest{User: "fin", Password: "finance-password"}, "127.0.0.1")
	if err := u.Logout(ctx, s.Secret); err != nil {
		t.Fatal(err)
	}
	if _, err := u.AuthenticateSession(ctx, s.Secret); status(err) != http.StatusUnauthorized {
		t.Errorf("after logout: %v, want 401", err)
	}
	if err := u.Logout(ctx, s.Secret); err != nil {
		t.Errorf("logging out twice: %v", err)
	}
	if _, err := u.AuthenticateSession(ctx, "made-up"); status(err) != http.StatusUnauthorized {
		t.Errorf("a made-up secret: %v, want 401", err)
	}
}

// TestLoginFailures checks that a wrong password and an unknown user get
// the same answer, and that after 10 failures within 5 minutes for a user
// (from anywhere) or from an address (for anyone) logins are refused with
// 429, the right password included, until the failures age out.
func TestLoginFailures(t *testing.T) {
	ts, u := newUsersServer(t, time.Hour)
	ctx := context.Background()
	_, wrong := u.Login(ctx, api.LoginRequest{User: "olga", Password: "guess"}, "10.0.0.1")
	_, unknown := u.Login(ctx, api.LoginRequest{User: "nobody", Password: "guess"}, "10.0.0.1")
	if wrong == nil || unknown == nil || wrong.Error() != unknown.Error() || status(wrong) != 401 {
		t.Errorf("wrong password: %v; unknown user: %v; want the same 401", wrong, unknown)
	}

	// Per user: failures from many addresses.
	for i := range 9 { // 1 already
		if _, err := u.Login(ctx, api.LoginRequest{User: "olga", Password: "guess"}, "10.1.0."+string(rune('a'+i))); status(err) != 401 {
			t.Fatalf("failure %d: %v", i+2, err)
		}
	}
	if _, err := u.Login(ctx, api.LoginRequest{User: "olga", Password: "operator-password"}, "10.2.0.1"); status(err) != http.StatusTooManyRequests {
		t.Errorf("the right password after 10 failures for the user: %v, want 429", err)
	}
	if _, err := u.Login(ctx, api.LoginRequest{User: "fin", Password: "finance-password"}, "10.2.0.1"); err != nil {
		t.Errorf("another user is not limited: %v", err)
	}
	ts.clock.Set(ts.clock.Now().Add(5 * time.Minute))
	if _, err := u.Login(ctx, api.LoginRequest{User: "olga", Password: "operator-password"}, "10.2.0.1"); err != nil {
		t.Errorf("after the window: %v", err)
	}

	// Per address: failures for many users.
	for i := range 10 {
		if _, err := u.Login(ctx, api.LoginRequest{User: "user" + string(rune('a'+i)), Password: "guess"}, "10.3.0.1"); status(err) != 401 {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, err := u.Login(ctx, api.LoginRequest{User: "fin", Password: "finance-password"}, "10.3.0.1"); status(err) != http.StatusTooManyRequests {
		t.Errorf("the right password from an address with 10 failures: %v, want 429", err)
	}
	if _, err := u.Login(ctx, api.LoginRequest{User: "fin", Password: "finance-password"}, "10.3.0.2"); err != nil {
		t.Errorf("another address is not limited: %v", err)
	}
}
