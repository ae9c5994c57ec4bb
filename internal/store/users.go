package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// User is a person who logs in (to the web UI) with a password, as the
// store keeps them: the password only as a hash the caller computed (an
// argon2id PHC string), never in clear. Role and Namespace mean what they
// mean for an API token.
type User struct {
	ID           int64
	Name         string
	PasswordHash string // "" for a user who logs in only by single sign-on
	Role         string // "viewer", "operator" or "admin"
	Namespace    string // the namespace the user is confined to; "" for all
	CreatedAt    time.Time
	PasswordAt   time.Time // when the password was last set
}

// Session is a logged-in browser: the store keeps the SHA-256 of its
// random secret (the cookie's value), so a leaked database opens no
// session. A session acts as its user, with the user's role and namespace
// as they are when it is used.
type Session struct {
	ID        int64
	User      string // the user's name
	CreatedAt time.Time
	ExpiresAt time.Time // the caller refuses a session past it
	RevokedAt time.Time // zero while the session is valid
}

// NewUser is what CreateUser stores.
type NewUser struct {
	Name         string
	PasswordHash string
	Role         string
	Namespace    string
}

// Users is the part of a Store that keeps local users and the sessions of
// people logged in to the web UI.
type Users interface {
	// CreateUser stores a new user; ErrConflict when the name is taken.
	CreateUser(ctx context.Context, u NewUser, now time.Time) (User, error)
	// User returns the user called name, or ErrNotFound.
	User(ctx context.Context, name string) (User, error)
	// ListUsers returns every user, by name.
	ListUsers(ctx context.Context) ([]User, error)
	// DeleteUser removes the user called name and every session of theirs
	// in one transaction; ErrNotFound when there is none.
	DeleteUser(ctx context.Context, name string) error
	// SetPassword replaces the password hash of the user called name and,
	// in the same transaction, revokes every session of theirs at now: a
	// password changed because it leaked must close what it opened.
	// ErrNotFound when there is no such user.
	SetPassword(ctx context.Context, name, hash string, now time.Time) error

	// CreateSession stores a session of the user called user by the hash
	// of its secret, valid until expires; ErrNotFound when there is no such
	// user, ErrConflict when the hash is already stored.
	CreateSession(ctx context.Context, user string, hash []byte, now, expires time.Time) (Session, error)
	// SessionByHash returns the valid (not revoked) session with this hash
	// and its user (without the password hash, which a request carrying a
	// session has no use for), in one query, or ErrNotFound. Expiry is the caller's
	// to check, with its clock.
	SessionByHash(ctx context.Context, hash []byte) (Session, User, error)
	// ListSessions returns the sessions that are neither revoked nor
	// expired at now, by id.
	ListSessions(ctx context.Context, now time.Time) ([]Session, error)
	// RevokeSession revokes the valid session id at now; ErrNotFound when
	// there is none.
	RevokeSession(ctx context.Context, id int64, now time.Time) error
	// RevokeUserSessions revokes every valid session of the user called
	// name at now and returns how many it revoked.
	RevokeUserSessions(ctx context.Context, name string, now time.Time) (int, error)
}

// MaxUserName bounds a user's name.
const MaxUserName = 200

// CheckNewUser validates u for CreateUser, so both drivers refuse the same
// users with the same words.
func CheckNewUser(u NewUser) error {
	if u.Name == "" {
		return errors.New("empty user name")
	}
	if len(u.Name) > MaxUserName {
		return fmt.Errorf("user name %q: longer than %d bytes", u.Name, MaxUserName)
	}
	for _, f := range []struct{ what, v string }{{"user name", u.Name}, {"user namespace", u.Namespace}, {"password hash", u.PasswordHash}} {
		if err := CheckText(f.what, f.v); err != nil {
			return err
		}
	}
	for _, r := range Roles {
		if r == u.Role {
			return nil
		}
	}
	return fmt.Errorf("user %q: role %q: expected viewer, operator or admin", u.Name, u.Role)
}
