package api

// The artifact routes of the worker protocol: how a `tasuki worker` gets
// the output files of a task's needs before it runs an attempt, and hands
// in the files its attempt kept (artifact.Collect) before it reports the
// attempt's end with them (CompleteRequest.Outputs). Contents are named by
// digest ("sha256:<hex>"), so a file the server already has is never sent
// twice, and what crosses the network is checked on arrival.
//
//	GET  /api/v1/worker/artifacts/{digest}  the content (application/octet-stream)
//	HEAD /api/v1/worker/artifacts/{digest}  200 when the server has it, 404 when not
//	PUT  /api/v1/worker/artifacts/{digest}  body: the content, with its Content-Length
//
// Every request carries a worker token, and what it may do depends on the
// leases that token holds (WorkerArtifacts). The routes are in the route
// table (handler.go) with the other worker routes; WithWorkerArtifacts
// gives them what serves them, and without it they answer 503.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/artifact"
)

// WorkerArtifacts is the server side of the artifact routes. The calling
// worker's token is in ctx (TokenName).
type WorkerArtifacts interface {
	// OpenArtifact returns a content that a lease held by the calling
	// token names among its needs' files (attempt.Spec.Artifacts), and its
	// size. Any other digest, kept or not, is a 404 *Error: a worker
	// learns nothing of files its leases do not name.
	OpenArtifact(ctx context.Context, digest string) (io.ReadCloser, int64, error)
	// StatArtifact reports whether the server keeps digest, and its size,
	// to a token holding a lease whose task has outputs (it uploads only
	// what is missing); others get a 409 *Error (code lease_lost).
	StatArtifact(ctx context.Context, digest string) (size int64, ok bool, err error)
	// PutArtifact keeps body, size bytes whose digest must be digest (a
	// 400 *Error otherwise, with nothing kept). It needs a lease whose
	// task has outputs (409 lease_lost otherwise) and a size within the
	// server's bound (413).
	PutArtifact(ctx context.Context, digest string, size int64, body io.Reader) error
}

// ArtifactTransfer is the worker's side of the artifact routes; Client
// implements it.
type ArtifactTransfer interface {
	// HasArtifact reports whether the server keeps digest.
	HasArtifact(ctx context.Context, digest string) (bool, error)
	// DownloadArtifact returns the content of digest; the caller checks
	// it against the digest as it reads (artifact.Store.Put does).
	DownloadArtifact(ctx context.Context, digest string) (io.ReadCloser, error)
	// UploadArtifact sends size bytes of body as the content of digest.
	UploadArtifact(ctx context.Context, digest string, size int64, body io.Reader) error
}

var _ ArtifactTransfer = (*Client)(nil)

// WithWorkerArtifacts serves the artifact routes of the worker protocol
// over a. They are worker routes like the others, in the route table:
// without WithWorkers they answer 503 like the rest of the protocol, and
// without this option 503 too (a server that keeps no artifacts).
func WithWorkerArtifacts(a WorkerArtifacts) Option {
	return func(h *handler) { h.artifacts = a }
}

// artifactRoute is the prelude of every artifact route: what serves them
// (a handler given none answers 503) and the digest the path names,
// checked.
func (h *handler) artifactRoute(r *http.Request) (WorkerArtifacts, string, error) {
	if h.artifacts == nil {
		return nil, "", Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server keeps no artifacts")
	}
	d := r.PathValue("digest")
	if err := artifact.CheckDigest(d); err != nil {
		return nil, "", invalid("%v", err)
	}
	return h.artifacts, d, nil
}

func (h *handler) downloadArtifact(w http.ResponseWriter, r *http.Request) error {
	a, digest, err := h.artifactRoute(r)
	if err != nil {
		return err
	}
	rc, size, err := a.OpenArtifact(r.Context(), digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if n, err := io.Copy(w, rc); err != nil {
		// The answer is under way: break the connection, so the worker
		// sees a failed download rather than a short one (it checks the
		// digest as well).
		h.log.WarnContext(r.Context(), "api: artifact download cut short", "digest", digest, "sent", n, "size", size, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (h *handler) statArtifact(w http.ResponseWriter, r *http.Request) error {
	a, digest, err := h.artifactRoute(r)
	if err != nil {
		return err
	}
	size, ok, err := a.StatArtifact(r.Context(), digest)
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(http.StatusNotFound, CodeNotFound, "artifact %s: the server does not have it", digest)
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *handler) uploadArtifact(w http.ResponseWriter, r *http.Request) error {
	a, digest, err := h.artifactRoute(r)
	if err != nil {
		return err
	}
	if r.ContentLength < 0 {
		return Errorf(http.StatusLengthRequired, CodeInvalid, "artifact %s: give the content's Content-Length", digest)
	}
	if err := a.PutArtifact(r.Context(), digest, r.ContentLength, r.Body); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func artifactPath(digest string) string { return "/worker/artifacts/" + seg(digest) }

// HasArtifact implements ArtifactTransfer. A lease lost comes back as a
// 409 *Error, as from the other worker calls.
func (c *Client) HasArtifact(ctx context.Context, digest string) (bool, error) {
	err := c.do(ctx, request{method: http.MethodHead, path: artifactPath(digest)}, nil)
	if e, ok := errors.AsType[*Error](err); ok && e.Status == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// DownloadArtifact implements ArtifactTransfer.
func (c *Client) DownloadArtifact(ctx context.Context, digest string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: artifactPath(digest),
		header: http.Header{"Accept": {"application/octet-stream, application/json"}}})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// UploadArtifact implements ArtifactTransfer: body is streamed, never
// held in memory.
func (c *Client) UploadArtifact(ctx context.Context, digest string, size int64, body io.Reader) error {
	path := artifactPath(digest)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+path, body)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	hr.ContentLength = size
	if size == 0 {
		hr.Body = http.NoBody
	}
	hr.Header.Set("Content-Type", "application/octet-stream")
	hr.Header.Set("Accept", "application/json")
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

// isArtifactUpload reports whether r is a worker's artifact upload, whose
// body is the file's bytes (see Guard).
func isArtifactUpload(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, Prefix+"/worker/artifacts/")
}
