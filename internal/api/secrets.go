package api

import (
	"context"
	"net/http"
	"time"
)

// Secrets is the secret store the /secrets routes manage (admins only). No
// route ever answers a secret's value: values go in (PUT) and, sealed, to
// the attempts that need them, never out.
type Secrets interface {
	// SetSecret stores value as the secret called name, replacing any
	// value it had. A bad name or value is an *Error with CodeInvalid whose
	// message does not hold the value.
	SetSecret(ctx context.Context, name, value string) (SecretInfo, error)
	// ListSecrets describes every stored secret, by name, without values.
	ListSecrets(ctx context.Context) ([]SecretInfo, error)
	// DeleteSecret removes the secret called name (an *Error with
	// CodeNotFound when there is none).
	DeleteSecret(ctx context.Context, name string) error
	// RotateSecretKey re-seals every secret with a new key.
	RotateSecretKey(ctx context.Context) (KeyRotation, error)
}

// SecretInfo describes a stored secret, never its value.
type SecretInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SetSecretRequest is the body of PUT /secrets/{name}.
type SetSecretRequest struct {
	Value string `json:"value"`
}

// KeyRotation answers POST /secrets/rotate-key.
type KeyRotation struct {
	// KeyID names the key every secret is sealed with now.
	KeyID string `json:"key_id"`
	// NewKey says whether a key was made (the server's key file); false
	// when the key is in the server's $TASUKI_SECRET_KEY, in which case
	// what $TASUKI_SECRET_OLD_KEY sealed was re-sealed with it.
	NewKey bool `json:"new_key"`
	// Resealed counts the secrets sealed again.
	Resealed int `json:"resealed"`
}

// WithSecrets serves the /secrets routes over s. Without it they answer
// 503 unavailable.
func WithSecrets(s Secrets) Option {
	return func(h *handler) { h.secrets = s }
}

// maxSecretBody bounds the body of PUT /secrets/{name}: a value of 64 KiB,
// JSON-escaped at its most verbose.
const maxSecretBody = 6*(64<<10) + 1024

// maxSecretName bounds a secret's name in a path.
const maxSecretName = 200

func (h *handler) secretStore() (Secrets, error) {
	if h.secrets == nil {
		return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server has no secret store")
	}
	return h.secrets, nil
}

// checkSecretName validates a secret's name from a path: a variable name.
func checkSecretName(name string) error {
	ok := name != "" && len(name) <= maxSecretName
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			ok = false
		}
	}
	if !ok {
		return invalid("secret name %q: expected letters, digits and '_', not starting with a digit, at most %d bytes", clip(name, maxSecretName), maxSecretName)
	}
	return nil
}

// clip shortens s for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (h *handler) putSecret(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := checkSecretName(name); err != nil {
		return err
	}
	var req SetSecretRequest
	if err := decodeBodyLimit(w, r, &req, false, maxSecretBody); err != nil {
		return err
	}
	if req.Value == "" {
		return invalid("field \"value\": expected the secret's value, got an empty string")
	}
	info, err := s.SetSecret(r.Context(), name, req.Value)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (h *handler) listSecrets(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	list, err := s.ListSecrets(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Page[SecretInfo]{Items: nonNil(list)})
	return nil
}

func (h *handler) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := checkSecretName(name); err != nil {
		return err
	}
	if err := s.DeleteSecret(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) rotateSecretKey(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	var empty struct{}
	if err := decodeBody(w, r, &empty, true); err != nil {
		return err
	}
	rot, err := s.RotateSecretKey(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rot)
	return nil
}

// SetSecret stores value as the secret called name on the server.
func (c *Client) SetSecret(ctx context.Context, name, value string) (SecretInfo, error) {
	var info SecretInfo
	err := c.do(ctx, request{method: http.MethodPut, path: "/secrets/" + seg(name), body: SetSecretRequest{Value: value}}, &info)
	return info, err
}

// ListSecrets lists the server's stored secrets, without values.
func (c *Client) ListSecrets(ctx context.Context) ([]SecretInfo, error) {
	var p Page[SecretInfo]
	err := c.do(ctx, request{method: http.MethodGet, path: "/secrets"}, &p)
	return p.Items, err
}

// DeleteSecret removes the secret called name from the server's store.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/secrets/" + seg(name)}, nil)
}

// RotateSecretKey asks the server to re-seal every secret with a new key.
func (c *Client) RotateSecretKey(ctx context.Context) (KeyRotation, error) {
	var rot KeyRotation
	err := c.do(ctx, request{method: http.MethodPost, path: "/secrets/rotate-key"}, &rot)
	return rot, err
}
