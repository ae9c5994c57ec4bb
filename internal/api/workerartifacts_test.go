package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/artifact"
)

// artifactDir serves the artifact routes over a real artifact.Dir and
// grants every worker token everything: which lease may do what is the
// broker's to decide (internal/lease tests it); these tests are about
// the routes.
type artifactDir struct{ st *artifact.Dir }

func newArtifactDir(t testing.TB) *artifactDir {
	return &artifactDir{st: &artifact.Dir{Root: t.TempDir()}}
}

func (d *artifactDir) OpenArtifact(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	info, err := d.st.Stat(ctx, digest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, api.NotFound("artifact %s: not kept", digest)
	}
	if err != nil {
		return nil, 0, err
	}
	rc, err := d.st.Open(ctx, digest)
	return rc, info.Size, err
}

func (d *artifactDir) StatArtifact(ctx context.Context, digest string) (int64, bool, error) {
	info, err := d.st.Stat(ctx, digest)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	return info.Size, err == nil, err
}

func (d *artifactDir) PutArtifact(ctx context.Context, digest string, size int64, body io.Reader) error {
	_, err := d.st.Put(ctx, io.LimitReader(body, size), digest)
	if errors.Is(err, artifact.ErrDigestMismatch) {
		return api.Errorf(http.StatusBadRequest, api.CodeInvalid, "%v", err)
	}
	return err
}

// digestOf names content as the artifact store does.
func digestOf(content string) string {
	sum := sha256.Sum256([]byte(content))
	return artifact.DigestPrefix + hex.EncodeToString(sum[:])
}

// TestWorkerArtifactRoutes sends each artifact route what a worker sends
// and what it should not, through the guard as the server serves them,
// and checks the answer.
func TestWorkerArtifactRoutes(t *testing.T) {
	const content = "model weights\n"
	kept, missing := digestOf(content), digestOf("never put")
	type tc struct {
		name        string
		noArtifacts bool   // the handler is built without WithWorkerArtifacts
		apiToken    bool   // an API token instead of the worker token
		method      string // GET, HEAD or PUT
		digest      string
		body        *string // nil: none; PUT sends it with its length unless chunked
		chunked     bool    // PUT without a Content-Length
		contentType string  // default application/octet-stream on PUT
		status      int
		code        string // the error's code, for error answers but HEAD's
		want        string // the body of a GET that succeeds
	}
	body := func(s string) *string { return &s }
	cases := []tc{
		{name: "put", method: "PUT", digest: kept, body: body(content), status: 204},
		{name: "put again", method: "PUT", digest: kept, body: body(content), status: 204},
		{name: "head kept", method: "HEAD", digest: kept, status: 200},
		{name: "get kept", method: "GET", digest: kept, status: 200, want: content},
		{name: "head missing", method: "HEAD", digest: missing, status: 404},
		{name: "get missing", method: "GET", digest: missing, status: 404, code: api.CodeNotFound},
		{name: "put a content that is not the digest's", method: "PUT", digest: missing, body: body(content), status: 400, code: api.CodeInvalid},
		{name: "put without Content-Length", method: "PUT", digest: kept, body: body(content), chunked: true, status: 411, code: api.CodeInvalid},
		{name: "put as text", method: "PUT", digest: kept, body: body(content), contentType: "text/plain", status: 415, code: api.CodeUnsupportedMediaType},
		{name: "malformed digest", method: "GET", digest: "sha256:ABC", status: 400, code: api.CodeInvalid},
		{name: "another hash", method: "HEAD", digest: "md5:" + strings.Repeat("a", 32), status: 400},
		{name: "an API token", apiToken: true, method: "GET", digest: kept, status: 403, code: api.CodeForbidden},
		{name: "a server that keeps no artifacts: get", noArtifacts: true, method: "GET", digest: kept, status: 503, code: api.CodeUnavailable},
		{name: "a server that keeps no artifacts: put", noArtifacts: true, method: "PUT", digest: kept, body: body(content), status: 503, code: api.CodeUnavailable},
	}
	tokens := apitest.NewTokens()
	worker, admin := tokens.Add("w1"), tokens.AddAPI("admin", api.RoleAdmin, "")
	store := newArtifactDir(t)
	serverOf := func(withArtifacts bool) string {
		opts := []api.Option{api.WithLogger(slog.New(slog.DiscardHandler)), api.WithWorkers(apitest.NewWorkers(), tokens)}
		if withArtifacts {
			opts = append(opts, api.WithWorkerArtifacts(store))
		}
		srv := httptest.NewServer(api.Guard(api.NewHandler(apitest.NewSeeded(), nil, opts...), api.GuardOptions{}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	with, without := serverOf(true), serverOf(false)
	for _, c := range cases { // in order: the first puts what the others read
		t.Run(c.name, func(t *testing.T) {
			base := with
			if c.noArtifacts {
				base = without
			}
			var rd io.Reader
			if c.body != nil {
				rd = strings.NewReader(*c.body)
				if c.chunked {
					rd = io.MultiReader(rd) // hides the length: sent chunked
				}
			}
			req, err := http.NewRequest(c.method, base+api.Prefix+"/worker/artifacts/"+c.digest, rd)
			if err != nil {
				t.Fatal(err)
			}
			secret := worker
			if c.apiToken {
				secret = admin
			}
			req.Header.Set("Authorization", "Bearer "+secret)
			if c.method == "PUT" {
				ct := c.contentType
				if ct == "" {
					ct = "application/octet-stream"
				}
				req.Header.Set("Content-Type", ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			switch {
			case c.code != "":
				if got := errorCode(b); got != c.code {
					t.Errorf("code %q, want %q: %s", got, c.code, b)
				}
			case c.want != "":
				if string(b) != c.want || resp.Header.Get("Content-Type") != "application/octet-stream" {
					t.Errorf("body %q as %q, want %q as application/octet-stream", b, resp.Header.Get("Content-Type"), c.want)
				}
			case c.method == "HEAD" && c.status == 200:
				if resp.ContentLength != int64(len(content)) {
					t.Errorf("Content-Length %d, want the content's size %d", resp.ContentLength, len(content))
				}
			}
		})
	}
}

// TestArtifactClient moves a file up and down with the worker's client
// (api.ArtifactTransfer) against a real server on loopback.
func TestArtifactClient(t *testing.T) {
	tokens := apitest.NewTokens()
	secret := tokens.Add("w1")
	store := newArtifactDir(t)
	srv := httptest.NewServer(api.Guard(api.NewHandler(apitest.NewSeeded(), nil, api.WithLogger(slog.New(slog.DiscardHandler)),
		api.WithWorkers(apitest.NewWorkers(), tokens), api.WithWorkerArtifacts(store)), api.GuardOptions{}))
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tr api.ArtifactTransfer = c.WithToken(secret)
	ctx := context.Background()
	for _, content := range []string{"", "a line\n", strings.Repeat("0123456789", 100_000)} {
		d := digestOf(content)
		if has, err := tr.HasArtifact(ctx, d); err != nil || has {
			t.Fatalf("%d bytes: has before upload = %v, %v", len(content), has, err)
		}
		if err := tr.UploadArtifact(ctx, d, int64(len(content)), strings.NewReader(content)); err != nil {
			t.Fatalf("%d bytes: upload: %v", len(content), err)
		}
		if has, err := tr.HasArtifact(ctx, d); err != nil || !has {
			t.Fatalf("%d bytes: has after upload = %v, %v", len(content), has, err)
		}
		rc, err := tr.DownloadArtifact(ctx, d)
		if err != nil {
			t.Fatalf("%d bytes: download: %v", len(content), err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != content {
			t.Fatalf("%d bytes: downloaded %d bytes, %v", len(content), len(got), err)
		}
	}
	// A content that is not its digest's is refused, and not kept.
	d := digestOf("what the worker meant")
	err = tr.UploadArtifact(ctx, d, 5, strings.NewReader("other"))
	if e, ok := errors.AsType[*api.Error](err); !ok || e.Status != http.StatusBadRequest {
		t.Fatalf("upload of a content not its digest's: %v", err)
	}
	if has, err := tr.HasArtifact(ctx, d); err != nil || has {
		t.Errorf("after a refused upload: has = %v, %v", has, err)
	}
	if _, err := tr.DownloadArtifact(ctx, d); err == nil {
		t.Error("downloaded a content the server does not keep")
	}
}
