package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tasuki-dev/tasuki/internal/artifact"
)

// Config says where the bucket is and how to reach it.
type Config struct {
	// Endpoint is the server's host[:port] (s3.amazonaws.com, or a MinIO
	// at minio.internal:9000).
	Endpoint string
	Bucket   string
	// Prefix starts every object name ("tasuki/artifacts/"), so a bucket
	// can hold other things.
	Prefix string
	Region string
	// AccessKey and SecretKey are the credentials; empty: anonymous.
	AccessKey, SecretKey string
	// Insecure talks plain HTTP (a server on loopback, tests).
	Insecure bool
	// TempDir is where Puts are spooled (default os.TempDir()).
	TempDir string
}

// ParseURL reads a store's address, s3://BUCKET/PREFIX?endpoint=HOST:PORT
// &region=R&insecure=true, with the credentials from env (the variables
// AWS tools read: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Without an
// endpoint it is AWS S3.
func ParseURL(raw string, env func(string) string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return Config{}, fmt.Errorf("artifact store %q: expected s3://BUCKET/PREFIX?endpoint=HOST:PORT", raw)
	}
	q := u.Query()
	cfg := Config{
		Endpoint: q.Get("endpoint"), Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/"), Region: q.Get("region"),
		AccessKey: env("AWS_ACCESS_KEY_ID"), SecretKey: env("AWS_SECRET_ACCESS_KEY"),
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "s3.amazonaws.com"
	}
	if v := q.Get("insecure"); v != "" {
		if cfg.Insecure, err = strconv.ParseBool(v); err != nil {
			return Config{}, fmt.Errorf("artifact store %q: insecure=%q: expected true or false", raw, v)
		}
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	return cfg, nil
}

// Store is an artifact.Store in a bucket.
type Store struct {
	c      *minio.Client
	bucket string
	prefix string
	tmp    string
}

var _ artifact.Store = (*Store)(nil)

// New returns the store of cfg. It reaches nothing yet: the first call
// says whether the bucket is there.
func New(cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("artifact store: an S3 store needs an endpoint and a bucket")
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       !cfg.Insecure,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupAuto,
	})
	if err != nil {
		return nil, fmt.Errorf("artifact store s3://%s: %w", cfg.Bucket, err)
	}
	return &Store{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix, tmp: cfg.TempDir}, nil
}

// String names the store, without credentials.
func (s *Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

func (s *Store) key(digest string) string {
	return s.prefix + "sha256/" + strings.TrimPrefix(digest, artifact.DigestPrefix)
}

// digestOf is the digest an object's key names, or "".
func (s *Store) digestOf(key string) string {
	h, ok := strings.CutPrefix(key, s.prefix+"sha256/")
	if !ok || artifact.CheckDigest(artifact.DigestPrefix+h) != nil {
		return ""
	}
	return artifact.DigestPrefix + h
}

// notFound turns the store's answer for a missing object into an error
// wrapping fs.ErrNotExist.
func notFound(err error) error {
	if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" || code == "NotFound" {
		return fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
	}
	return err
}

// Put implements artifact.Store.
func (s *Store) Put(ctx context.Context, r io.Reader, want string) (artifact.Info, error) {
	if want != "" {
		if err := artifact.CheckDigest(want); err != nil {
			return artifact.Info{}, fmt.Errorf("put artifact: %w", err)
		}
	}
	f, err := os.CreateTemp(s.tmp, "tasuki-put-*")
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put artifact: spool: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), artifact.ContextReader(ctx, r))
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put artifact: read: %w", err)
	}
	digest := artifact.DigestPrefix + hex.EncodeToString(h.Sum(nil))
	if want != "" && digest != want {
		return artifact.Info{}, fmt.Errorf("put artifact %s: %w (its %d bytes are %s)", want, artifact.ErrDigestMismatch, n, digest)
	}
	key := s.key(digest)
	if info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil && info.Size == n {
		// Kept already: a copy onto itself makes it new for Sweep.
		up, err := s.c.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: s.bucket, Object: key, ReplaceMetadata: true, UserMetadata: map[string]string{"Tasuki-Put": "again"}},
			minio.CopySrcOptions{Bucket: s.bucket, Object: key})
		if err == nil {
			return artifact.Info{Digest: digest, Size: n, ModTime: up.LastModified}, nil
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return artifact.Info{}, fmt.Errorf("put artifact: %w", err)
	}
	up, err := s.c.PutObject(ctx, s.bucket, key, f, n, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put artifact %s in %s: %w", digest, s, err)
	}
	return artifact.Info{Digest: digest, Size: n, ModTime: up.LastModified}, nil
}

// Open implements artifact.Store.
func (s *Store) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if err := artifact.CheckDigest(digest); err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	// Stat first: a missing object is then an error here rather than at
	// the first read.
	if _, err := s.Stat(ctx, digest); err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, s.key(digest), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("open artifact %s: %w", digest, notFound(err))
	}
	return artifact.Verify(obj, digest, s.String()+s.key(digest)[len(s.prefix):]), nil
}

// Stat implements artifact.Store.
func (s *Store) Stat(ctx context.Context, digest string) (artifact.Info, error) {
	if err := artifact.CheckDigest(digest); err != nil {
		return artifact.Info{}, fmt.Errorf("stat artifact: %w", err)
	}
	info, err := s.c.StatObject(ctx, s.bucket, s.key(digest), minio.StatObjectOptions{})
	if err != nil {
		return artifact.Info{}, fmt.Errorf("stat artifact %s in %s: %w", digest, s, notFound(err))
	}
	return artifact.Info{Digest: digest, Size: info.Size, ModTime: info.LastModified}, nil
}

// Delete implements artifact.Store.
func (s *Store) Delete(ctx context.Context, digest string) error {
	if err := artifact.CheckDigest(digest); err != nil {
		return fmt.Errorf("delete artifact: %w", err)
	}
	if err := s.c.RemoveObject(ctx, s.bucket, s.key(digest), minio.RemoveObjectOptions{}); err != nil && !errors.Is(notFound(err), fs.ErrNotExist) {
		return fmt.Errorf("delete artifact %s in %s: %w", digest, s, err)
	}
	return nil
}

// List implements artifact.Store: object stores list keys in ascending
// order, which is digest order here.
func (s *Store) List(ctx context.Context, after string, limit int) ([]artifact.Info, error) {
	if limit <= 0 {
		limit = artifact.DefaultListLimit
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing once the page is full
	opts := minio.ListObjectsOptions{Prefix: s.prefix + "sha256/", Recursive: true}
	if after != "" {
		opts.StartAfter = s.prefix + "sha256/" + strings.TrimPrefix(after, artifact.DigestPrefix)
	}
	var out []artifact.Info
	for obj := range s.c.ListObjects(ctx, s.bucket, opts) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list artifacts in %s: %w", s, obj.Err)
		}
		d := s.digestOf(obj.Key)
		if d == "" || d <= after {
			continue
		}
		out = append(out, artifact.Info{Digest: d, Size: obj.Size, ModTime: obj.LastModified})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}
