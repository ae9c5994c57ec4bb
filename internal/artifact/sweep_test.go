package artifact

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// named is an InUse over a fixed list, giving at most max digests per
// call (a source with a smaller bound than asked).
func named(digests []string, max int) InUse {
	sorted := slices.Sorted(slices.Values(digests))
	return func(ctx context.Context, after string, limit int) ([]string, error) {
		var out []string
		for _, d := range sorted {
			if d > after && len(out) < min(limit, max) {
				out = append(out, d)
			}
		}
		return out, nil
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: t.TempDir()}
	var contents []string
	for i := range 30 {
		contents = append(contents, fmt.Sprintf("content %d", i))
	}
	infos := putAll(t, d, contents...)
	old := time.Now().Add(-2 * time.Hour)
	for _, info := range infos[:25] {
		os.Chtimes(d.path(info.Digest), old, old)
	}
	// A put that never ended, long ago, and one going on now.
	stale := filepath.Join(d.Root, tmpPrefix+"stale")
	os.WriteFile(stale, []byte("half"), 0o600)
	os.Chtimes(stale, old, old)
	running := filepath.Join(d.Root, tmpPrefix+"running")
	os.WriteFile(running, []byte("half"), 0o600)

	// Contents 0-9 are named, 25-29 are new: 10-24 go.
	var inUse []string
	for _, info := range infos[:10] {
		inUse = append(inUse, info.Digest)
	}
	inUse = append(inUse, digestOf("named but not kept"))
	n, err := Sweep(ctx, d, named(inUse, 3), time.Now().Add(-time.Hour))
	if err != nil || n != 15 {
		t.Fatalf("Sweep = %d, %v; want 15", n, err)
	}
	for i, info := range infos {
		ok, _ := Has(ctx, d, info.Digest)
		if want := i < 10 || i >= 25; ok != want {
			t.Errorf("content %d kept = %v, want %v", i, ok, want)
		}
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary file is still there")
	}
	if _, err := os.Stat(running); err != nil {
		t.Error("the temporary file of a put going on was removed")
	}
	// Nothing more to do.
	if n, err := Sweep(ctx, d, named(inUse, 1000), time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("second Sweep = %d, %v", n, err)
	}
}

func TestSweepStopsOnError(t *testing.T) {
	d := &Dir{Root: t.TempDir()}
	info := putAll(t, d, "x")[0]
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(d.path(info.Digest), old, old)
	failing := func(context.Context, string, int) ([]string, error) { return nil, errors.New("database gone") }
	if n, err := Sweep(context.Background(), d, failing, time.Now()); err == nil || n != 0 {
		t.Fatalf("Sweep with a failing InUse = %d, %v", n, err)
	}
	if ok, _ := Has(context.Background(), d, info.Digest); !ok {
		t.Error("a sweep that could not read what is in use deleted a content")
	}
}

// TestUnion pages through the union of two sources, one of which gives
// short pages, with every page size: each digest once, in order, none
// skipped.
func TestUnion(t *testing.T) {
	var a, b, want []string
	for i := range 40 {
		d := fmt.Sprintf("sha256:%02d", i)
		switch i % 3 {
		case 0:
			a = append(a, d)
		case 1:
			b = append(b, d)
		default:
			a, b = append(a, d), append(b, d)
		}
		want = append(want, d)
	}
	for _, limit := range []int{1, 2, 3, 7, 100} {
		u := Union(named(a, 2), named(b, 100))
		var got []string
		for after := ""; ; {
			page, err := u(context.Background(), after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: %v\nwant %v", limit, got, want)
		}
	}
}
