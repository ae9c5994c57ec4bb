package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// Workers is an in-memory api.Workers: a queue of leases to hand out, the
// logs and completions workers report, and switches to cancel or forget a
// lease. Tests of the worker and of the HTTP layer drive it and wait on what
// it records; waiting is on events (every change wakes the waiters), never
// on timers. Its zero value is not usable; use NewWorkers.
type Workers struct {
	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every change
	queue       []api.Lease
	held        map[string]api.Lease
	logs        map[string][]byte
	completions map[string]api.CompleteRequest
	cancel      map[string]bool
	preempt     map[string]bool
	forgotten   map[string]bool
	leaseReqs   []api.LeaseRequest
	polling     int // lease requests being served
	heartbeats  []api.HeartbeatRequest
	tokenNames  []string

	// CompleteErr, when set, is asked before each completion is recorded;
	// an error it returns is the answer (and nothing is recorded).
	CompleteErr func(lease string, req api.CompleteRequest) error
	// AppendErr, when set, is asked before each log append is applied.
	AppendErr func(lease string, offset int64, data []byte) error
	// LeaseErr, when set, is asked before each lease request is served.
	LeaseErr func(req api.LeaseRequest) error
}

var _ api.Workers = (*Workers)(nil)

// NewWorkers returns a Workers with nothing to hand out.
func NewWorkers() *Workers {
	return &Workers{
		changed: make(chan struct{}), held: map[string]api.Lease{}, logs: map[string][]byte{},
		completions: map[string]api.CompleteRequest{}, cancel: map[string]bool{}, preempt: map[string]bool{}, forgotten: map[string]bool{},
	}
}

// notify wakes every waiter. Called with w.mu held.
func (w *Workers) notify() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// Add queues leases to hand out, in order.
func (w *Workers) Add(leases ...api.Lease) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queue = append(w.queue, leases...)
	w.notify()
}

// Cancel makes the next heartbeats ask the worker to cancel lease.
func (w *Workers) Cancel(lease string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel[lease] = true
	w.notify()
}

// Preempt makes the next heartbeats hand lease back, as a server that is
// shutting down does: listed under preempt and, for workers that predate
// it, under cancel.
func (w *Workers) Preempt(lease string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.preempt[lease] = true
	w.notify()
}

// Forget drops lease as if it had expired: heartbeats call it unknown, and
// its log appends and completion are refused with 409 lease_lost.
func (w *Workers) Forget(lease string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forgotten[lease] = true
	delete(w.held, lease)
	w.notify()
}

// Lease implements api.Workers: it hands out up to req.Free queued leases
// (labels are the server's business; the fake matches none), waiting up to
// req.WaitSeconds for some.
func (w *Workers) Lease(ctx context.Context, req api.LeaseRequest) (api.LeaseResponse, error) {
	var timeout <-chan time.Time
	if req.WaitSeconds > 0 {
		t := time.NewTimer(time.Duration(req.WaitSeconds) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	w.mu.Lock()
	w.leaseReqs = append(w.leaseReqs, req)
	w.tokenNames = append(w.tokenNames, api.TokenName(ctx))
	w.polling++
	w.notify()
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.polling--
		w.notify()
		w.mu.Unlock()
	}()
	w.mu.Lock()
	if w.LeaseErr != nil {
		if err := w.LeaseErr(req); err != nil {
			w.mu.Unlock()
			return api.LeaseResponse{}, err
		}
	}
	w.mu.Unlock()
	for {
		w.mu.Lock()
		if ctx.Err() != nil {
			// The worker hung up: what it would get stays queued, as a
			// careful broker does.
			w.mu.Unlock()
			return api.LeaseResponse{}, ctx.Err()
		}
		n := min(req.Free, len(w.queue))
		out := slices.Clone(w.queue[:n])
		w.queue = slices.Delete(w.queue, 0, n)
		for _, l := range out {
			w.held[l.ID] = l
		}
		if n > 0 {
			w.notify()
		}
		changed := w.changed
		w.mu.Unlock()
		if len(out) > 0 || req.WaitSeconds == 0 {
			return api.LeaseResponse{Leases: out}, nil
		}
		select {
		case <-ctx.Done():
			return api.LeaseResponse{}, ctx.Err()
		case <-timeout:
			return api.LeaseResponse{}, nil
		case <-changed:
		}
	}
}

// Heartbeat implements api.Workers.
func (w *Workers) Heartbeat(ctx context.Context, req api.HeartbeatRequest) (api.HeartbeatResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.heartbeats = append(w.heartbeats, req)
	var resp api.HeartbeatResponse
	for _, id := range req.Leases {
		switch _, held := w.held[id]; {
		case !held:
			resp.Unknown = append(resp.Unknown, id)
		case w.preempt[id]:
			// As the server does: under cancel too, for older workers.
			resp.Preempt = append(resp.Preempt, id)
			resp.Cancel = append(resp.Cancel, id)
		case w.cancel[id]:
			resp.Cancel = append(resp.Cancel, id)
		}
	}
	w.notify()
	return resp, nil
}

// lost is the answer to a report of a lease the fake does not hold.
func lost(lease string) error {
	return api.Errorf(http.StatusConflict, api.CodeLeaseLost, "lease %s is not held (expired or given to another worker)", lease)
}

// AppendLog implements api.Workers, skipping bytes it already has.
func (w *Workers) AppendLog(ctx context.Context, lease string, offset int64, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.AppendErr != nil {
		if err := w.AppendErr(lease, offset, data); err != nil {
			return err
		}
	}
	if _, held := w.held[lease]; !held {
		return lost(lease)
	}
	cur := w.logs[lease]
	if offset > int64(len(cur)) {
		return api.Errorf(http.StatusBadRequest, api.CodeInvalid, "offset %d is past the end of the log (%d bytes)", offset, len(cur))
	}
	if end := offset + int64(len(data)); end > int64(len(cur)) {
		w.logs[lease] = append(cur, data[int64(len(cur))-offset:]...)
	}
	w.notify()
	return nil
}

// Complete implements api.Workers.
func (w *Workers) Complete(ctx context.Context, lease string, req api.CompleteRequest) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.CompleteErr != nil {
		if err := w.CompleteErr(lease, req); err != nil {
			w.notify()
			return err
		}
	}
	if _, held := w.held[lease]; !held {
		return lost(lease)
	}
	delete(w.held, lease)
	w.completions[lease] = req
	w.notify()
	return nil
}

// Log returns the log bytes received for lease.
func (w *Workers) Log(lease string) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.logs[lease])
}

// Completion returns the completion of lease, if reported.
func (w *Workers) Completion(lease string) (api.CompleteRequest, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.completions[lease]
	return c, ok
}

// LeaseRequests returns the lease requests served so far.
func (w *Workers) LeaseRequests() []api.LeaseRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.leaseReqs)
}

// Heartbeats returns the heartbeats received so far.
func (w *Workers) Heartbeats() []api.HeartbeatRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.heartbeats)
}

// TokenNames returns the token name (api.TokenName) each lease request
// carried in its context.
func (w *Workers) TokenNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.tokenNames)
}

// Await waits until cond, called with the fake's state locked after every
// change, is true, or ctx is done.
func (w *Workers) Await(ctx context.Context, cond func(s State) bool) error {
	for {
		w.mu.Lock()
		ok := cond(State{w})
		changed := w.changed
		w.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// State is a view of a Workers for Await conditions.
type State struct{ w *Workers }

// Log is the log received for lease.
func (s State) Log(lease string) []byte { return s.w.logs[lease] }

// Completed reports whether lease was reported.
func (s State) Completed(lease string) bool { _, ok := s.w.completions[lease]; return ok }

// Held reports whether lease was handed out and not yet reported.
func (s State) Held(lease string) bool { _, ok := s.w.held[lease]; return ok }

// Queued is how many leases wait to be handed out.
func (s State) Queued() int { return len(s.w.queue) }

// LeaseRequests is how many lease requests were served.
func (s State) LeaseRequests() int { return len(s.w.leaseReqs) }

// Polling is how many lease requests are being served (long-polls in
// progress).
func (s State) Polling() int { return s.w.polling }

// Heartbeats is how many heartbeats were received.
func (s State) Heartbeats() int { return len(s.w.heartbeats) }

// WaitComplete waits for the completion of lease.
func (w *Workers) WaitComplete(ctx context.Context, lease string) (api.CompleteRequest, error) {
	err := w.Await(ctx, func(s State) bool { return s.Completed(lease) })
	c, _ := w.Completion(lease)
	return c, err
}

// WaitLog waits until the log of lease contains text.
func (w *Workers) WaitLog(ctx context.Context, lease, text string) error {
	return w.Await(ctx, func(s State) bool { return bytes.Contains(s.Log(lease), []byte(text)) })
}

// Tokens is an in-memory api.Tokens. Its zero value is not usable; use
// NewTokens.
type Tokens struct {
	mu     sync.Mutex
	tokens []fakeToken
	calls  []Call
	// Now is the clock of created and revoked tokens.
	Now func() time.Time
}

type fakeToken struct {
	secret string
	info   api.TokenInfo
}

var _ api.Tokens = (*Tokens)(nil)

// NewTokens returns a Tokens with no tokens.
func NewTokens() *Tokens {
	return &Tokens{Now: func() time.Time { return time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC) }}
}

// CreateToken implements api.Tokens.
func (t *Tokens) CreateToken(ctx context.Context, req api.CreateTokenRequest, actor string) (string, api.TokenInfo, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	name := req.Name
	t.calls = append(t.calls, Call{Method: "CreateToken", Args: []any{name, actor}})
	for _, tok := range t.tokens {
		if tok.info.Name == name && tok.info.RevokedAt == nil {
			return "", api.TokenInfo{}, api.Errorf(http.StatusConflict, api.CodeConflict, "a token named %q exists", name)
		}
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	info := api.TokenInfo{Name: name, Kind: api.KindWorker, CreatedAt: t.Now()}
	if req.Role != "" {
		info.Kind, info.Role, info.Namespace, info.ExpiresAt = api.KindAPI, req.Role, req.Namespace, req.ExpiresAt
	}
	if req.Kind == api.KindAgent {
		info.Kind = api.KindAgent
	}
	tok := fakeToken{secret: "tsk_" + hex.EncodeToString(raw[:]), info: info}
	t.tokens = append(t.tokens, tok)
	return tok.secret, tok.info, nil
}

// RevokeToken implements api.Tokens.
func (t *Tokens) RevokeToken(ctx context.Context, name, actor string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls = append(t.calls, Call{Method: "RevokeToken", Args: []any{name, actor}})
	for i, tok := range t.tokens {
		if tok.info.Name == name && tok.info.RevokedAt == nil {
			now := t.Now()
			t.tokens[i].info.RevokedAt = &now
			return nil
		}
	}
	return api.NotFound("no token named %q", name)
}

// ListTokens implements api.Tokens.
func (t *Tokens) ListTokens(ctx context.Context) ([]api.TokenInfo, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]api.TokenInfo, len(t.tokens))
	for i, tok := range t.tokens {
		out[i] = tok.info
	}
	return out, nil
}

// Authenticate implements api.Tokens. Its refusal quotes the secret, as a
// careless implementation might, so tests can check that the API never
// passes it on or logs it.
func (t *Tokens) Authenticate(ctx context.Context, secret string) (api.Principal, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tok := range t.tokens {
		expired := tok.info.ExpiresAt != nil && !time.Now().Before(*tok.info.ExpiresAt)
		if tok.info.RevokedAt == nil && !expired && subtle.ConstantTimeCompare([]byte(tok.secret), []byte(secret)) == 1 {
			return api.Principal{Name: tok.info.Name, Kind: tok.info.Kind, Role: tok.info.Role, Namespace: tok.info.Namespace}, nil
		}
	}
	return api.Principal{}, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid token %s", secret)
}

// Calls returns the recorded CreateToken and RevokeToken calls.
func (t *Tokens) Calls() []Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.calls)
}

// Add creates a worker token named name and returns its secret (a test
// helper).
func (t *Tokens) Add(name string) string {
	return t.AddAPI(name, "", "")
}

// AddAgent creates an agent token named name and returns its secret (a
// test helper).
func (t *Tokens) AddAgent(name string) string {
	secret, _, err := t.CreateToken(context.Background(), api.CreateTokenRequest{Name: name, Kind: api.KindAgent}, "test")
	if err != nil {
		panic(err)
	}
	return secret
}

// AddAPI creates an API token named name of role in namespace ns and
// returns its secret (a test helper); an empty role makes a worker token.
func (t *Tokens) AddAPI(name string, role api.Role, ns string) string {
	secret, _, err := t.CreateToken(context.Background(), api.CreateTokenRequest{Name: name, Role: role, Namespace: ns}, "test")
	if err != nil {
		panic(err)
	}
	return secret
}

// AuditLog is an in-memory api.AuditLog.
type AuditLog struct {
	mu      sync.Mutex
	entries []api.AuditEntry
}

var _ api.AuditLog = (*AuditLog)(nil)

// RecordAudit implements api.AuditLog.
func (a *AuditLog) RecordAudit(ctx context.Context, e api.AuditEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	e.ID = int64(len(a.entries) + 1)
	a.entries = append(a.entries, e)
	return nil
}

// ListAudit implements api.AuditLog: newest first, the cursor is the ID
// below which the page starts.
func (a *AuditLog) ListAudit(ctx context.Context, cursor string, limit int) (api.Page[api.AuditEntry], error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if limit <= 0 {
		limit = 50
	}
	before := int64(len(a.entries)) + 1
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 1 {
			return api.Page[api.AuditEntry]{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: expected one from an earlier page", cursor)
		}
		before = min(n, before)
	}
	var p api.Page[api.AuditEntry]
	for id := before - 1; id >= 1 && len(p.Items) < limit; id-- {
		p.Items = append(p.Items, a.entries[id-1])
	}
	if n := len(p.Items); n == limit && p.Items[n-1].ID > 1 {
		p.Next = strconv.FormatInt(p.Items[n-1].ID, 10)
	}
	return p, nil
}

// Entries returns what was recorded, oldest first.
func (a *AuditLog) Entries() []api.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.entries)
}
