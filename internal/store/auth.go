package store

import (
	"errors"
	"fmt"
	"time"
)

// Roles an API token may have, from least to most powerful.
var Roles = []string{"viewer", "operator", "admin"}

// CheckNewToken validates nt for IssueToken, filling in the default kind,
// so both drivers refuse the same tokens with the same words.
func CheckNewToken(nt NewToken) (NewToken, error) {
	if nt.Kind == "" {
		nt.Kind = TokenWorker
	}
	if nt.Name == "" {
		return nt, errors.New("empty name")
	}
	if err := CheckText("token name", nt.Name); err != nil {
		return nt, err
	}
	if err := CheckText("token namespace", nt.Namespace); err != nil {
		return nt, err
	}
	switch nt.Kind {
	case TokenWorker, TokenAgent:
		if nt.Role != "" || nt.Namespace != "" {
			return nt, fmt.Errorf("token %q: a %s token has no role or namespace", nt.Name, nt.Kind)
		}
	case TokenAPI:
		known := false
		for _, r := range Roles {
			known = known || r == nt.Role
		}
		if !known {
			return nt, fmt.Errorf("token %q: role %q: expected viewer, operator or admin", nt.Name, nt.Role)
		}
	default:
		return nt, fmt.Errorf("token %q: kind %q: expected %q, %q or %q", nt.Name, nt.Kind, TokenWorker, TokenAPI, TokenAgent)
	}
	nt.ExpiresAt = NormTime(nt.ExpiresAt)
	return nt, nil
}

// CheckAuditEntry validates e for AppendAudit, filling in its time.
func CheckAuditEntry(e AuditEntry) (AuditEntry, error) {
	for _, f := range []struct{ what, v string }{
		{"actor", e.Actor}, {"remote", e.Remote}, {"method", e.Method}, {"route", e.Route}, {"target", e.Target},
	} {
		if err := CheckText("audit "+f.what, f.v); err != nil {
			return e, err
		}
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = NormTime(e.At)
	return e, nil
}

// AuditLimit is the page size ListAudit uses for limit: 50 when not positive.
func AuditLimit(limit int) int {
	if limit <= 0 {
		return 50
	}
	return limit
}
