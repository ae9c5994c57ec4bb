package notify_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/notify"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("whsec-test")
	body := []byte(`{"event":"failed"}`)
	at := time.Unix(1767225600, 0)
	sig := notify.Sign(secret, at, body)
	if !strings.HasPrefix(sig, "t=1767225600,v1=") || len(sig) != len("t=1767225600,v1=")+64 {
		t.Fatalf("Sign = %q", sig)
	}
	other := notify.Sign([]byte("old-secret"), at, body)
	_, oldV1, _ := strings.Cut(other, ",")
	for _, tt := range []struct {
		name   string
		header string
		body   []byte
		secret []byte
		now    time.Time
		want   error
	}{
		{"valid", sig, body, secret, at.Add(time.Minute), nil},
		{"rotating: two signatures", sig + "," + oldV1, body, []byte("old-secret"), at, nil},
		{"other body", sig, []byte(`{"event":"succeeded"}`), secret, at, notify.ErrBadSignature},
		{"other secret", sig, body, []byte("nope"), at, notify.ErrBadSignature},
		{"too old", sig, body, secret, at.Add(6 * time.Minute), notify.ErrStale},
		{"from the future", sig, body, secret, at.Add(-6 * time.Minute), notify.ErrStale},
		{"empty", "", body, secret, at, notify.ErrNoSignature},
		{"no time", strings.TrimPrefix(sig, "t=1767225600,"), body, secret, at, notify.ErrNoSignature},
		{"time changed", strings.Replace(sig, "t=1767225600", "t=1767225601", 1), body, secret, at, notify.ErrBadSignature},
		{"not hex", "t=1767225600,v1=zz", body, secret, at, notify.ErrNoSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := notify.Verify(tt.secret, tt.header, tt.body, tt.now, 0)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}
