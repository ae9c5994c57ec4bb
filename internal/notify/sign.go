package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the header that carries a webhook's signature:
//
//	X-Tasuki-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// t is the time of signing in Unix seconds and v1 the hex HMAC-SHA256,
// keyed with the destination's secret, of the text "<t>.<body>": the time
// stamp, a dot, and the exact bytes of the request body. A receiver
// recomputes it, compares in constant time, and refuses a time stamp too
// far from its clock, so a captured request cannot be replayed later.
const SignatureHeader = "X-Tasuki-Signature"

// DefaultTolerance is how far from the receiver's clock Verify accepts a
// signature's time stamp.
const DefaultTolerance = 5 * time.Minute

// Sign returns the value of SignatureHeader for body signed at t with
// secret.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("no valid signature header")
	ErrBadSignature = errors.New("signature does not match the body")
	ErrStale        = errors.New("signature time stamp is outside the tolerance")
)

// Verify checks the value of SignatureHeader against the body received,
// with the shared secret, at now: the signature must match and its time
// stamp be within tolerance of now (0: DefaultTolerance). Several v1
// values are allowed (any one may match), so a sender can sign with an old
// and a new secret while it is rotated. It is what a receiver written in
// Go calls; receivers in other languages do the same in a few lines (see
// docs/server.md).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(secret, ts, body)
	match := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			match = true
		}
	}
	if !match {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now", ErrStale, d.Round(time.Second))
	}
	return nil
}
