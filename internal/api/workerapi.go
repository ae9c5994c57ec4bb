package api

// The HTTP side of the worker protocol (see worker.go) and of token
// management: authentication by bearer token, and the translation of the
// four worker calls and the token calls.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// maxWorkerName bounds the worker name of lease and heartbeat requests, which
// ends up in the attempts the server records.
const maxWorkerName = 200

// maxLabel bounds one worker label.
const maxLabel = 100

// maxTokenName bounds a token name.
const maxTokenName = 100

// errNoToken is the answer to a worker request without a valid token. It
// is the same whatever was wrong (no header, a malformed one, an unknown or
// revoked token), so the answer tells a prober nothing, and it never quotes
// what the client sent.
func errNoToken() *Error {
	return Errorf(http.StatusUnauthorized, CodeUnauthorized,
		"a valid worker token is required (Authorization: Bearer <token>; create one with 'tasuki token create NAME' on the server's host)")
}

// authenticate checks the request's bearer token and returns whom it
// names. The token is a secret: it is never logged, and an error of the
// Tokens implementation that quotes it has it masked before it reaches the
// log.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request, a access) (Principal, error) {
	if p, ok, err := h.authenticateSession(w, r); ok { // a web UI session cookie (users.go)
		return p, err
	}
	secret, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tasuki"`)
		return Principal{}, errUnauthenticated(a)
	}
	p, err := h.tokens.Authenticate(r.Context(), secret)
	if err != nil {
		if e, ok := errors.AsType[*Error](err); ok && e.Status == http.StatusUnauthorized {
			h.log.WarnContext(r.Context(), "api: request refused: invalid, expired or revoked token",
				"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="tasuki", error="invalid_token"`)
			return Principal{}, errUnauthenticated(a)
		}
		if strings.Contains(err.Error(), secret) {
			// Keep the secret out of the log; the chain is lost, which
			// only matters for a cancelled request, already answered.
			masked := strings.ReplaceAll(err.Error(), secret, "***")
			if e, ok := errors.AsType[*Error](err); ok {
				return Principal{}, &Error{Status: e.Status, Code: e.Code, Message: strings.ReplaceAll(e.Message, secret, "***")}
			}
			return Principal{}, fmt.Errorf("authenticate token: %s", masked)
		}
		return Principal{}, fmt.Errorf("authenticate token: %w", err)
	}
	return p, nil
}

// bearerToken reads `Authorization: Bearer <token>`; ok is false when the
// header is missing, given twice, of another scheme, or empty.
func bearerToken(r *http.Request) (string, bool) {
	vs := r.Header.Values("Authorization")
	if len(vs) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vs[0]), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// checkName checks a printable name of at most maxLen bytes for field.
func checkName(field, value string, maxLen int) error {
	if value == "" || len(value) > maxLen || strings.IndexFunc(value, unicode.IsControl) >= 0 {
		return invalid("%s %q: expected 1 to %d printable characters", field, value, maxLen)
	}
	return nil
}

// pathLease reads and checks the lease id of a worker route.
func pathLease(r *http.Request) (string, error) {
	id := r.PathValue("lease")
	if _, _, _, err := ParseLeaseID(id); err != nil {
		return "", invalid("%v", err)
	}
	return id, nil
}

func (h *handler) workerLease(w http.ResponseWriter, r *http.Request) error {
	var req LeaseRequest
	if err := decodeWorkerBody(w, r, &req, MaxBodyBytes); err != nil {
		return err
	}
	if err := checkName(`field "worker"`, req.Worker, maxWorkerName); err != nil {
		return err
	}
	for _, l := range req.Labels {
		if err := checkName(`label`, l, maxLabel); err != nil {
			return err
		}
	}
	if req.Free < 1 || req.Free > MaxLeaseFree {
		return invalid("field \"free\": expected the number of free slots, 1 to %d, got %d", MaxLeaseFree, req.Free)
	}
	if req.WaitSeconds < 0 || req.WaitSeconds > MaxLeaseWait {
		return invalid("field \"wait_seconds\": expected 0 to %d, got %d", MaxLeaseWait, req.WaitSeconds)
	}
	if req.Bundle < 0 || req.Bundle > MaxBundle {
		return invalid("field \"bundle\": expected the most items of a bundle, 0 to %d, got %d", MaxBundle, req.Bundle)
	}
	resp, err := h.workers.Lease(r.Context(), req)
	if err != nil {
		return err
	}
	if len(resp.Leases)+len(resp.Bundles) > 0 && r.Context().Err() != nil {
		// The worker hung up while the server was handing it attempts.
		h.log.WarnContext(r.Context(), "api: leases handed to a worker that went away; they are lost at their lease timeout",
			"worker", req.Worker, "leases", len(resp.Leases), "bundles", len(resp.Bundles))
	}
	resp.Leases = nonNil(resp.Leases)
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (h *handler) workerHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var req HeartbeatRequest
	if err := decodeWorkerBody(w, r, &req, MaxBodyBytes); err != nil {
		return err
	}
	if err := checkName(`field "worker"`, req.Worker, maxWorkerName); err != nil {
		return err
	}
	for _, id := range req.Leases {
		if _, _, _, err := ParseLeaseID(id); err != nil {
			return invalid("field \"leases\": %v", err)
		}
	}
	for _, id := range req.Bundles {
		if _, _, _, err := ParseLeaseID(id); err != nil {
			return invalid("field \"bundles\": %v", err)
		}
	}
	resp, err := h.workers.Heartbeat(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (h *handler) workerLog(w http.ResponseWriter, r *http.Request) error {
	id, err := pathLease(r)
	if err != nil {
		return err
	}
	offset, err := queryInt(r, "offset", 0, maxInt64, -1)
	if err != nil {
		return err
	}
	if offset < 0 {
		return invalid("query parameter offset: required (the number of log bytes sent before this request)")
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxLogChunk))
	if err != nil {
		if tooBig, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "log chunk over %d bytes: send it in smaller pieces", tooBig.Limit)
		}
		return invalid("read log chunk: %v", err)
	}
	if err := h.workers.AppendLog(r.Context(), id, offset, data); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) workerComplete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathLease(r)
	if err != nil {
		return err
	}
	var req CompleteRequest
	if err := decodeWorkerBody(w, r, &req, MaxCompleteBytes); err != nil {
		return err
	}
	if err := checkReport(req); err != nil {
		return err
	}
	if err := h.workers.Complete(r.Context(), id, req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkReport checks what a report says about how its attempt ended.
func checkReport(req CompleteRequest) error {
	if !req.Outcome.Reportable() {
		var names []string
		for _, o := range attempt.Outcomes() {
			if o.Reportable() {
				names = append(names, string(o))
			}
		}
		return invalid("field \"outcome\": expected one of %s, got %q", strings.Join(names, ", "), req.Outcome)
	}
	if req.LogSize < 0 {
		return invalid("field \"log_size\": expected a number of bytes, got %d", req.LogSize)
	}
	if len(req.Log) > MaxInlineLog {
		return invalid("field \"log\": %d bytes is more than the %d a report may carry; send the log through the log route", len(req.Log), MaxInlineLog)
	}
	return nil
}

// workerCompleteBatch takes the reports of several leases: each is taken
// or refused on its own (a lease lost, a report that says nothing valid),
// as if each had come alone; the answer lists the refused ones.
func (h *handler) workerCompleteBatch(w http.ResponseWriter, r *http.Request) error {
	var batch CompleteBatch
	if err := decodeWorkerBody(w, r, &batch, MaxCompleteBatchBytes); err != nil {
		return err
	}
	if len(batch.Reports) == 0 || len(batch.Reports) > MaxCompleteBatch {
		return invalid("field \"reports\": expected 1 to %d reports, got %d", MaxCompleteBatch, len(batch.Reports))
	}
	resp := CompleteBatchResponse{Refused: []ReportRefusal{}}
	errs := make([]error, len(batch.Reports))
	var valid []LeaseReport
	var at []int // index in batch.Reports of each valid report
	for i, rep := range batch.Reports {
		if _, _, _, err := ParseLeaseID(rep.Lease); err != nil {
			errs[i] = invalid("field \"lease\": %v", err)
			continue
		}
		if err := checkReport(rep.CompleteRequest); err != nil {
			errs[i] = err
			continue
		}
		valid = append(valid, rep)
		at = append(at, i)
	}
	if bw, ok := h.workers.(BatchWorkers); ok && len(valid) > 0 {
		for j, err := range bw.CompleteMany(r.Context(), valid) {
			errs[at[j]] = err
		}
	} else {
		for j, rep := range valid {
			errs[at[j]] = h.workers.Complete(r.Context(), rep.Lease, rep.CompleteRequest)
		}
	}
	for i, rep := range batch.Reports {
		err := errs[i]
		if err == nil {
			continue
		}
		code, msg := CodeInternal, "internal error"
		if e, ok := errors.AsType[*Error](err); ok {
			code, msg = e.Code, e.Message
		} else {
			h.log.ErrorContext(r.Context(), "api: take a worker's report", "lease", rep.Lease, "err", err)
		}
		resp.Refused = append(resp.Refused, ReportRefusal{Lease: rep.Lease, Code: code, Message: msg})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (h *handler) createToken(w http.ResponseWriter, r *http.Request) error {
	var req CreateTokenRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if err := checkTokenName(req.Name); err != nil {
		return err
	}
	setAuditTarget(r, "token", req.Name)
	switch req.Kind {
	case "", KindWorker, KindAgent, KindAPI:
	default:
		return invalid("field \"kind\": expected worker, agent or api, got %q", clip(req.Kind, 40))
	}
	if req.Kind == KindAPI && req.Role == "" {
		return invalid("an API token has a role: give \"role\" (viewer, operator or admin)")
	}
	if (req.Kind == KindWorker || req.Kind == KindAgent) && req.Role != "" {
		return invalid("field \"role\" is for API tokens; a %s token has none", req.Kind)
	}
	if req.Role != "" && !req.Role.Valid() {
		return invalid("field \"role\": expected viewer, operator or admin (or none, for a worker or agent token), got %q", req.Role)
	}
	if req.Role == "" && (req.Namespace != "" || req.ExpiresAt != nil) {
		return invalid("fields \"namespace\" and \"expires_at\" are for API tokens: give a \"role\" too")
	}
	if req.Namespace != "" {
		if err := checkName("field \"namespace\"", req.Namespace, maxTokenName); err != nil {
			return err
		}
		if strings.ContainsAny(req.Namespace, "/\\") || req.Namespace == "." || req.Namespace == ".." {
			return invalid("field \"namespace\" %q: expected the name of a folder of the pipelines directory, without slashes", req.Namespace)
		}
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		return invalid("field \"expires_at\" (%s) is in the past", req.ExpiresAt.Format(time.RFC3339))
	}
	secret, info, err := h.tokens.CreateToken(r.Context(), req, who(r))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store") // the answer holds a secret
	writeJSON(w, http.StatusCreated, CreatedToken{Name: info.Name, Token: secret, Kind: info.Kind, Role: info.Role,
		Namespace: info.Namespace, CreatedAt: info.CreatedAt, ExpiresAt: info.ExpiresAt})
	return nil
}

// checkTokenName checks a token name, which travels in URL paths.
func checkTokenName(name string) error {
	if err := checkName("token name", name, maxTokenName); err != nil {
		return err
	}
	// No colon: "user:NAME" and "oidc:NAME" name people in the audit log
	// and the timeline, and a token must never pass for one.
	if strings.ContainsAny(name, "/ \t:") {
		return invalid("token name %q: expected no spaces, slashes or colons", name)
	}
	return nil
}

func (h *handler) listTokens(w http.ResponseWriter, r *http.Request) error {
	toks, err := h.tokens.ListTokens(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Page[TokenInfo]{Items: nonNil(toks)})
	return nil
}

func (h *handler) revokeToken(w http.ResponseWriter, r *http.Request) error {
	who := who(r)
	name := r.PathValue("name")
	if err := checkTokenName(name); err != nil {
		return err
	}
	if err := h.tokens.RevokeToken(r.Context(), name, who); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
