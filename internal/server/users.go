package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// DefaultSessionTTL is how long a web UI session lives without session_ttl.
const DefaultSessionTTL = 12 * time.Hour

// Failed logins allowed per client address and per user name within
// loginWindow before further attempts are answered 429 until the oldest
// failure leaves the window: slow enough that guessing a password online
// is hopeless, quick enough that a person who mistyped gets back in.
const (
	loginFailures = 10
	loginWindow   = 5 * time.Minute
)

// argon2id parameters for new password hashes (OWASP's first choice:
// 19 MiB, 2 passes, 1 lane). They are written into each hash, so changing
// them later keeps old hashes verifiable.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
)

// users implements api.Users over the store: passwords as argon2id hashes,
// sessions as the SHA-256 of their secret.
type users struct {
	s   *Server
	ttl time.Duration

	mu       sync.Mutex
	failures map[string][]time.Time // "addr:IP" and "user:NAME" -> recent failures
	dummy    string                 // a hash to verify against for unknown users
}

func newUsers(s *Server, ttl time.Duration) *users {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &users{s: s, ttl: ttl, failures: map[string][]time.Time{}}
}

// hashPassword returns the argon2id PHC string of password with a new
// random salt.
func hashPassword(password string) (string, error) {
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt[:], argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt[:]), b64.EncodeToString(key)), nil
}

// checkPassword reports whether password matches the PHC string hash,
// comparing in constant time. A hash it cannot read matches nothing.
func checkPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<22 || t == 0 || t > 16 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// errLogin is the one answer to a wrong password and to an unknown user,
// so the answer does not tell a prober which names exist.
func errLogin() error {
	return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "wrong user name or password")
}

// limited reports whether key has had loginFailures failures within the
// window ending at now, forgetting older ones.
func (u *users) limited(key string, now time.Time) bool {
	recent := u.failures[key][:0]
	for _, t := range u.failures[key] {
		if now.Sub(t) < loginWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) == 0 {
		delete(u.failures, key)
		return false
	}
	u.failures[key] = recent
	return len(recent) >= loginFailures
}

// failed records a failed login for each key. The map is bounded: past
// 10000 keys, those with no failure in the window are dropped.
func (u *users) failed(now time.Time, keys ...string) {
	if len(u.failures) > 10000 {
		for k := range u.failures {
			u.limited(k, now)
		}
	}
	for _, k := range keys {
		u.failures[k] = append(u.failures[k], now)
	}
}

func (u *users) Login(ctx context.Context, req api.LoginRequest, remote string) (api.OpenedSession, error) {
	now := u.s.now()
	addrKey, userKey := "addr:"+remote, "user:"+req.User
	u.mu.Lock()
	blocked := u.limited(addrKey, now) || u.limited(userKey, now)
	if u.dummy == "" {
		var err error
		if u.dummy, err = hashPassword("not a password anyone has"); err != nil {
			u.mu.Unlock()
			return api.OpenedSession{}, err
		}
	}
	dummy := u.dummy
	u.mu.Unlock()
	if blocked {
		u.s.log.Warn("login refused: too many failures", "user", req.User, "remote", remote)
		return api.OpenedSession{}, api.Errorf(http.StatusTooManyRequests, api.CodeTooManyRequests,
			"too many failed logins from this address or for this user: try again in a few minutes")
	}
	usr, err := u.s.store.User(ctx, req.User)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return api.OpenedSession{}, err
	}
	hash := usr.PasswordHash
	if err != nil || hash == "" {
		hash = dummy // spend the same time as for a real user, then refuse
	}
	if !checkPassword(hash, req.Password) || usr.PasswordHash == "" {
		u.mu.Lock()
		u.failed(now, addrKey, userKey)
		u.mu.Unlock()
		u.s.log.Warn("login failed", "user", req.User, "remote", remote)
		return api.OpenedSession{}, errLogin()
	}
	return u.open(ctx, usr, now)
}

// open starts a session of usr at now.
func (u *users) open(ctx context.Context, usr store.User, now time.Time) (api.OpenedSession, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return api.OpenedSession{}, fmt.Errorf("open a session: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	expires := now.Add(u.ttl)
	if _, err := u.s.store.CreateSession(ctx, usr.Name, hashSession(secret), now, expires); err != nil {
		return api.OpenedSession{}, err
	}
	u.s.log.Info("user logged in", "user", usr.Name, "role", usr.Role, "namespace", usr.Namespace)
	return api.OpenedSession{Secret: secret, User: usr.Name, Role: api.Role(usr.Role), Namespace: usr.Namespace, ExpiresAt: store.NormTime(expires)}, nil
}

func hashSession(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func (u *users) Logout(ctx context.Context, secret string) error {
	sess, _, err := u.s.store.SessionByHash(ctx, hashSession(secret))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := u.s.store.RevokeSession(ctx, sess.ID, u.s.now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	u.s.log.Info("user logged out", "user", sess.User, "session", sess.ID)
	return nil
}

func (u *users) AuthenticateSession(ctx context.Context, secret string) (api.Principal, error) {
	sess, usr, err := u.s.store.SessionByHash(ctx, hashSession(secret))
	if errors.Is(err, store.ErrNotFound) || err == nil && !u.s.now().Before(sess.ExpiresAt) {
		return api.Principal{}, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "no valid session")
	}
	if err != nil {
		return api.Principal{}, err
	}
	return api.Principal{Name: api.UserActorPrefix + usr.Name, Kind: api.KindUser, Role: api.Role(usr.Role), Namespace: usr.Namespace}, nil
}

func (u *users) CreateUser(ctx context.Context, req api.CreateUserRequest) (api.UserInfo, error) {
	hash, err := hashPassword(req.Password)
	if err != nil {
		return api.UserInfo{}, err
	}
	usr, err := u.s.store.CreateUser(ctx, store.NewUser{Name: req.Name, PasswordHash: hash, Role: string(req.Role), Namespace: req.Namespace}, u.s.now())
	if errors.Is(err, store.ErrConflict) {
		return api.UserInfo{}, api.Errorf(http.StatusConflict, api.CodeConflict, "a user named %q exists", req.Name)
	}
	if err != nil {
		return api.UserInfo{}, err
	}
	u.s.log.Info("user created", "user", usr.Name, "role", usr.Role, "namespace", usr.Namespace)
	return userInfo(usr), nil
}

func userInfo(u store.User) api.UserInfo {
	return api.UserInfo{Name: u.Name, Role: api.Role(u.Role), Namespace: u.Namespace, CreatedAt: u.CreatedAt}
}

func (u *users) ListUsers(ctx context.Context) ([]api.UserInfo, error) {
	list, err := u.s.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.UserInfo, len(list))
	for i, usr := range list {
		out[i] = userInfo(usr)
	}
	return out, nil
}

func (u *users) RemoveUser(ctx context.Context, name string) error {
	err := u.s.store.DeleteUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no user named %q", name)
	}
	if err == nil {
		u.s.log.Info("user removed; their sessions are closed", "user", name)
	}
	return err
}

func (u *users) SetPassword(ctx context.Context, name, password string) error {
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	err = u.s.store.SetPassword(ctx, name, hash, u.s.now())
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no user named %q", name)
	}
	if err == nil {
		u.s.log.Info("password changed; the user's sessions are closed", "user", name)
	}
	return err
}

func (u *users) ListSessions(ctx context.Context) ([]api.SessionInfo, error) {
	list, err := u.s.store.ListSessions(ctx, u.s.now())
	if err != nil {
		return nil, err
	}
	out := make([]api.SessionInfo, len(list))
	for i, s := range list {
		out[i] = api.SessionInfo{ID: s.ID, User: s.User, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt}
	}
	return out, nil
}

func (u *users) RevokeSession(ctx context.Context, id int64) error {
	err := u.s.store.RevokeSession(ctx, id, u.s.now())
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no open session %d", id)
	}
	return err
}
