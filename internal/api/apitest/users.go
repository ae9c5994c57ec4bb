package apitest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// Users is a fake api.Users in memory: passwords in clear, sessions by
// secret. The server's implementation (internal/server) hashes both.
type Users struct {
	mu       sync.Mutex
	users    map[string]fakeUser
	sessions map[string]fakeSession // by secret
	nextID   int64
	// TTL is how long a session lives (default 12h).
	TTL time.Duration
}

type fakeUser struct {
	info     api.UserInfo
	password string
}

type fakeSession struct {
	info    api.SessionInfo
	revoked bool
}

var _ api.Users = (*Users)(nil)

// NewUsers returns a Users with no users.
func NewUsers() *Users {
	return &Users{users: map[string]fakeUser{}, sessions: map[string]fakeSession{}, TTL: 12 * time.Hour}
}

// Add creates a user (a test helper).
func (u *Users) Add(name, password string, role api.Role, ns string) {
	if _, err := u.CreateUser(context.Background(), api.CreateUserRequest{Name: name, Password: password, Role: role, Namespace: ns}); err != nil {
		panic(err)
	}
}

// Login implements api.Users.
func (u *Users) Login(ctx context.Context, req api.LoginRequest, remote string) (api.OpenedSession, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	usr, ok := u.users[req.User]
	if !ok || usr.password != req.Password {
		return api.OpenedSession{}, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "wrong user name or password")
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	secret := hex.EncodeToString(raw[:])
	u.nextID++
	now := time.Now()
	u.sessions[secret] = fakeSession{info: api.SessionInfo{ID: u.nextID, User: req.User, CreatedAt: now, ExpiresAt: now.Add(u.TTL)}}
	return api.OpenedSession{Secret: secret, User: req.User, Role: usr.info.Role, Namespace: usr.info.Namespace, ExpiresAt: now.Add(u.TTL)}, nil
}

// Logout implements api.Users.
func (u *Users) Logout(ctx context.Context, secret string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, ok := u.sessions[secret]; ok {
		s.revoked = true
		u.sessions[secret] = s
	}
	return nil
}

// AuthenticateSession implements api.Users.
func (u *Users) AuthenticateSession(ctx context.Context, secret string) (api.Principal, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.sessions[secret]
	usr, known := u.users[s.info.User]
	if !ok || s.revoked || !known || !time.Now().Before(s.info.ExpiresAt) {
		return api.Principal{}, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "no session")
	}
	return api.Principal{Name: api.UserActorPrefix + usr.info.Name, Kind: api.KindUser, Role: usr.info.Role, Namespace: usr.info.Namespace}, nil
}

// CreateUser implements api.Users.
func (u *Users) CreateUser(ctx context.Context, req api.CreateUserRequest) (api.UserInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.users[req.Name]; ok {
		return api.UserInfo{}, api.Errorf(http.StatusConflict, api.CodeConflict, "a user named %q exists", req.Name)
	}
	info := api.UserInfo{Name: req.Name, Role: req.Role, Namespace: req.Namespace, CreatedAt: time.Now()}
	u.users[req.Name] = fakeUser{info: info, password: req.Password}
	return info, nil
}

// ListUsers implements api.Users.
func (u *Users) ListUsers(ctx context.Context) ([]api.UserInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []api.UserInfo
	for _, usr := range u.users {
		out = append(out, usr.info)
	}
	slices.SortFunc(out, func(a, b api.UserInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveUser implements api.Users.
func (u *Users) RemoveUser(ctx context.Context, name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.users[name]; !ok {
		return api.NotFound("no user named %q", name)
	}
	delete(u.users, name)
	u.revokeAll(name)
	return nil
}

// SetPassword implements api.Users.
func (u *Users) SetPassword(ctx context.Context, name, password string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	usr, ok := u.users[name]
	if !ok {
		return api.NotFound("no user named %q", name)
	}
	usr.password = password
	u.users[name] = usr
	u.revokeAll(name)
	return nil
}

func (u *Users) revokeAll(name string) {
	for k, s := range u.sessions {
		if s.info.User == name {
			s.revoked = true
			u.sessions[k] = s
		}
	}
}

// ListSessions implements api.Users.
func (u *Users) ListSessions(ctx context.Context) ([]api.SessionInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []api.SessionInfo
	for _, s := range u.sessions {
		if !s.revoked {
			out = append(out, s.info)
		}
	}
	slices.SortFunc(out, func(a, b api.SessionInfo) int { return int(a.ID - b.ID) })
	return out, nil
}

// RevokeSession implements api.Users.
func (u *Users) RevokeSession(ctx context.Context, id int64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, s := range u.sessions {
		if s.info.ID == id && !s.revoked {
			s.revoked = true
			u.sessions[k] = s
			return nil
		}
	}
	return api.NotFound("no open session %d", id)
}
