package artifact

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// InUse pages through the digests something still names (the server:
// store.Artifacts.ArtifactDigests, the artifact refs of kept runs and the
// content cache's entries): up to limit of them greater than after, in
// ascending order.
type InUse func(ctx context.Context, after string, limit int) ([]string, error)

// sweepPage is how many digests Sweep reads at a time, of each side.
const sweepPage = 1000

// Sweep deletes the contents of st that inUse does not name and that
// were last put before olderThan, and returns how many it deleted.
//
// The age matters: an attempt keeps its outputs before its success is
// recorded, so for a while a content that is about to be named is named
// by nothing. olderThan must leave more than that while (the server gives
// an hour). A content put again, by any attempt, counts as new.
//
// Both sides are read in digest order, a page at a time, and merged: a
// sweep costs one pass over each, whatever their size. The temporary
// files of puts that never ended (a process that died) go too.
func Sweep(ctx context.Context, st Store, inUse InUse, olderThan time.Time) (int, error) {
	used := &cursor{ctx: ctx, next: inUse}
	deleted := 0
	after := ""
	for {
		page, err := st.List(ctx, after, sweepPage)
		if err != nil {
			return deleted, fmt.Errorf("sweep artifacts: %w", err)
		}
		for _, info := range page {
			named, err := used.has(info.Digest)
			if err != nil {
				return deleted, fmt.Errorf("sweep artifacts: read the digests in use: %w", err)
			}
			if named || !info.ModTime.Before(olderThan) {
				continue
			}
			// Put again since it was listed: it may be about to be named.
			if now, err := st.Stat(ctx, info.Digest); err != nil || !now.ModTime.Before(olderThan) {
				continue
			}
			if err := st.Delete(ctx, info.Digest); err != nil {
				return deleted, fmt.Errorf("sweep artifacts: %w", err)
			}
			deleted++
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Digest
	}
	if t, ok := st.(interface {
		tidy(time.Time) (int, error)
	}); ok {
		if _, err := t.tidy(olderThan); err != nil {
			return deleted, fmt.Errorf("sweep artifacts: %w", err)
		}
	}
	return deleted, nil
}

// cursor walks the digests in use in ascending order, a page at a time.
type cursor struct {
	ctx  context.Context
	next InUse
	page []string
	done bool
	last string
}

// has reports whether d is in use. Successive calls must ask for
// ascending digests.
func (c *cursor) has(d string) (bool, error) {
	for {
		for len(c.page) > 0 && c.page[0] < d {
			c.page = c.page[1:]
		}
		if len(c.page) > 0 {
			return c.page[0] == d, nil
		}
		if c.done {
			return false, nil
		}
		page, err := c.next(c.ctx, c.last, sweepPage)
		if err != nil {
			return false, err
		}
		// Only an empty page ends it: a source may give fewer than asked
		// (a smaller bound of its own), and taking a short page for the
		// end would delete what it did not list yet.
		if len(page) == 0 {
			c.done = true
		} else {
			if page[0] <= c.last && c.last != "" {
				return false, fmt.Errorf("digests in use out of order after %s", c.last)
			}
			c.last = page[len(page)-1]
		}
		c.page = page
	}
}

// Union is an InUse of the digests a or b names.
func Union(a, b InUse) InUse {
	return func(ctx context.Context, after string, limit int) ([]string, error) {
		x, err := a(ctx, after, limit)
		if err != nil {
			return nil, err
		}
		y, err := b(ctx, after, limit)
		if err != nil {
			return nil, err
		}
		// A side may give fewer than asked while it has more (see
		// cursor.has): the union is only known up to the smaller last
		// digest of two pages; a side that gave none has no more.
		out := slices.Compact(slices.Sorted(slices.Values(slices.Concat(x, y))))
		if len(x) > 0 && len(y) > 0 {
			i, _ := slices.BinarySearch(out, min(x[len(x)-1], y[len(y)-1]))
			out = out[:i+1]
		}
		return out[:min(len(out), limit)], nil
	}
}
