package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// The content cache (store.Cache): entries are replaced whole, read only
// while they have not expired, touched forward only, listed in key order,
// deleted by key, pipeline or task, and evicted expired first, then least
// recently used past a size bound, a batch at a time.

func cacheKey(i int) string { return fmt.Sprintf("%064x", i) }

// cacheEntry is entry i of a task, of size bytes, used at at.
func cacheEntry(i int, pipeline, task string, size int64, at time.Time) store.CacheEntry {
	return store.CacheEntry{Key: cacheKey(i), Pipeline: pipeline, TaskID: task, RunID: int64(i), Item: -1,
		Result: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Size: size, CreatedAt: at, UsedAt: at}
}

func mustPutCache(t *testing.T, s store.Store, entries ...store.CacheEntry) {
	t.Helper()
	if err := s.PutCache(t.Context(), entries...); err != nil {
		t.Fatalf("PutCache: %v", err)
	}
}

// cachedKeys returns the keys ListCache finds, in order, page by page.
func cachedKeys(t *testing.T, s store.Store, f store.CacheFilter) []string {
	t.Helper()
	f.Limit = store.MaxCacheLimit
	var keys []string
	for range 100 {
		page, err := s.ListCache(t.Context(), f)
		if err != nil {
			t.Fatalf("ListCache(%+v): %v", f, err)
		}
		for _, e := range page {
			keys = append(keys, e.Key)
		}
		if len(page) < f.Limit {
			return keys
		}
		f.AfterKey = page[len(page)-1].Key
	}
	t.Fatal("ListCache does not end")
	return nil
}

// norm is e as a store reads it back.
func norm(e store.CacheEntry) store.CacheEntry {
	e.CreatedAt, e.UsedAt, e.ExpiresAt = us(e.CreatedAt), us(e.UsedAt), us(e.ExpiresAt)
	return e
}

func testCacheRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	task := store.CacheEntry{Key: cacheKey(1), Pipeline: "train", TaskID: "fit", RunID: 42, Item: -1,
		Result: json.RawMessage(`{"accuracy": 0.93, "labels": ["a", "b"]}`),
		Outputs: []store.ArtifactFile{
			{Path: "model/weights.bin", Digest: "sha256:" + strings.Repeat("a", 64), Size: 1 << 20},
			{Path: "bin/run.sh", Digest: "sha256:" + strings.Repeat("b", 64), Size: 120, Mode: 0o755},
		},
		Size: 1<<20 + 200, CreatedAt: t0.In(jst), UsedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(30 * 24 * time.Hour)}
	item := store.CacheEntry{Key: cacheKey(2), Pipeline: "train", TaskID: "score", RunID: 43, Item: 12345, Size: 0,
		CreatedAt: t0, UsedAt: t0}
	mustPutCache(t, s, task, item)
	got, err := s.LookupCache(ctx, []string{cacheKey(1), cacheKey(2), cacheKey(3), "", cacheKey(1)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "looked up entries", got, map[string]store.CacheEntry{cacheKey(1): norm(task), cacheKey(2): norm(item)})
	if none, err := s.LookupCache(ctx, nil, t0); err != nil || none == nil || len(none) != 0 {
		t.Errorf("LookupCache of no keys = %#v, %v; want an empty map", none, err)
	}
	if none, err := s.LookupCache(ctx, []string{"not\xffa key"}, t0); err != nil || len(none) != 0 {
		t.Errorf("LookupCache of a key that is not text = %v, %v; want nothing", none, err)
	}

	// Written again, an entry is replaced whole; the last of a key given
	// twice wins; zero times are the time of the write.
	before := time.Now().Add(-time.Second)
	replaced := store.CacheEntry{Key: cacheKey(1), Pipeline: "train2", TaskID: "fit2", RunID: 50, Item: 3,
		Outputs: []store.ArtifactFile{{Path: "out.txt", Digest: "sha256:" + strings.Repeat("c", 64), Size: 3}}, Size: 3}
	mustPutCache(t, s, store.CacheEntry{Key: cacheKey(1), Pipeline: "lost", Size: 9}, replaced)
	got, err = s.LookupCache(ctx, []string{cacheKey(1)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	e := got[cacheKey(1)]
	if e.CreatedAt.Before(before) || e.UsedAt.Before(before) || e.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("zero times written as %v and %v, want now", e.CreatedAt, e.UsedAt)
	}
	replaced.CreatedAt, replaced.UsedAt = e.CreatedAt, e.UsedAt
	check(t, "replaced entry", e, replaced)
	if st, err := s.CacheStats(ctx); err != nil || st != (store.CacheStats{Entries: 2, Bytes: 3}) {
		t.Errorf("CacheStats = %+v, %v; want 2 entries of 3 bytes", st, err)
	}
	mustPutCache(t, s) // nothing: no error
}

func testCacheExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := t0
	var entries []store.CacheEntry
	for i, exp := range []time.Time{{}, now.Add(-time.Hour), now, now.Add(time.Microsecond), now.Add(time.Hour)} {
		e := cacheEntry(i, "p", "t", 10, now.Add(-2*time.Hour))
		e.ExpiresAt = exp
		entries = append(entries, e)
	}
	mustPutCache(t, s, entries...)
	keys := []string{cacheKey(0), cacheKey(1), cacheKey(2), cacheKey(3), cacheKey(4)}
	got, err := s.LookupCache(ctx, keys, now)
	if err != nil {
		t.Fatal(err)
	}
	if live := slices.Sorted(mapKeys(got)); !slices.Equal(live, []string{cacheKey(0), cacheKey(3), cacheKey(4)}) {
		t.Errorf("live entries at now: %v; want 0 (no expiry), 3 and 4", live)
	}
	// Expired entries are still listed (until evicted).
	if listed := cachedKeys(t, s, store.CacheFilter{}); len(listed) != 5 {
		t.Errorf("ListCache lists %d entries, want all 5", len(listed))
	}
}

func mapKeys(m map[string]store.CacheEntry) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func testTouchCache(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPutCache(t, s, cacheEntry(1, "p", "t", 1, t0), cacheEntry(2, "p", "t", 1, t0.Add(time.Hour)))
	later := t0.Add(30 * time.Minute)
	if err := s.TouchCache(ctx, []string{cacheKey(1), cacheKey(2), cacheKey(9), cacheKey(1)}, later.In(jst)); err != nil {
		t.Fatal(err)
	}
	got, _ := s.LookupCache(ctx, []string{cacheKey(1), cacheKey(2)}, t0)
	check(t, "touched", got[cacheKey(1)].UsedAt, us(later))
	check(t, "touched to the past", got[cacheKey(2)].UsedAt, us(t0.Add(time.Hour)))
	check(t, "created at", got[cacheKey(1)].CreatedAt, us(t0))
	if err := s.TouchCache(ctx, nil, later); err != nil {
		t.Errorf("TouchCache of nothing: %v", err)
	}
}

func testListCache(t *testing.T, s store.Store) {
	ctx := t.Context()
	var entries []store.CacheEntry
	var all, pOnly, pt []string
	const n = store.MaxCacheLimit + 130
	for i := range n {
		pipeline, task := "p", "a"
		switch i % 5 {
		case 1:
			task = "b"
		case 2:
			pipeline = "q"
		case 3:
			pipeline, task = "p2", "a"
		}
		// Keys out of insertion order.
		e := cacheEntry((i*7919)%n+1, pipeline, task, 1, t0)
		entries = append(entries, e)
		all = append(all, e.Key)
		if pipeline == "p" {
			pOnly = append(pOnly, e.Key)
			if task == "a" {
				pt = append(pt, e.Key)
			}
		}
	}
	mustPutCache(t, s, entries...)
	for _, keys := range [][]string{all, pOnly, pt} {
		slices.Sort(keys)
	}
	check(t, "all keys", cachedKeys(t, s, store.CacheFilter{}), all)
	check(t, "keys of pipeline p", cachedKeys(t, s, store.CacheFilter{Pipeline: "p"}), pOnly)
	check(t, "keys of task p/a", cachedKeys(t, s, store.CacheFilter{Pipeline: "p", TaskID: "a"}), pt)
	if got := cachedKeys(t, s, store.CacheFilter{Pipeline: "none"}); len(got) != 0 {
		t.Errorf("keys of a pipeline without entries: %v", got)
	}
	for _, tt := range []struct {
		f    store.CacheFilter
		want int
	}{
		{store.CacheFilter{}, store.DefaultCacheLimit},
		{store.CacheFilter{Limit: -3}, store.DefaultCacheLimit},
		{store.CacheFilter{Limit: 5 * store.MaxCacheLimit}, store.MaxCacheLimit},
		{store.CacheFilter{Limit: 7, AfterKey: all[3]}, 7},
		{store.CacheFilter{AfterKey: all[n-2]}, 1},
		{store.CacheFilter{Pipeline: "p", TaskID: "a", AfterKey: pt[len(pt)-3]}, 2},
	} {
		page, err := s.ListCache(ctx, tt.f)
		if err != nil {
			t.Fatalf("ListCache(%+v): %v", tt.f, err)
		}
		if len(page) != tt.want {
			t.Errorf("ListCache(%+v) = %d entries, want %d", tt.f, len(page), tt.want)
		}
		for i, e := range page {
			if e.Key <= tt.f.AfterKey || (i > 0 && e.Key <= page[i-1].Key) {
				t.Errorf("ListCache(%+v): key %s out of order", tt.f, e.Key)
				break
			}
		}
	}
	if page, err := s.ListCache(ctx, store.CacheFilter{Limit: 1}); err != nil || len(page) != 1 {
		t.Fatal(page, err)
	} else {
		check(t, "listed entry", page[0], norm(entries[slices.IndexFunc(entries, func(e store.CacheEntry) bool { return e.Key == all[0] })]))
	}
	if _, err := s.ListCache(ctx, store.CacheFilter{TaskID: "a"}); err == nil {
		t.Error("ListCache of a task without its pipeline: no error")
	}
}

func testDeleteAndPurgeCache(t *testing.T, s store.Store) {
	ctx := t.Context()
	var entries []store.CacheEntry
	for i := range 12 {
		pipeline, task := "p", "a"
		if i%3 == 1 {
			task = "b"
		} else if i%3 == 2 {
			pipeline = "q"
		}
		entries = append(entries, cacheEntry(i+1, pipeline, task, 1, t0))
	}
	mustPutCache(t, s, entries...)
	// Keys 1, 4, 7, 10: p/a; 2, 5, 8, 11: p/b; 3, 6, 9, 12: q/a.
	if n, err := s.DeleteCache(ctx, []string{cacheKey(1), cacheKey(1), cacheKey(2), cacheKey(99)}); err != nil || n != 2 {
		t.Errorf("DeleteCache = %d, %v; want 2", n, err)
	}
	if n, err := s.DeleteCache(ctx, nil); err != nil || n != 0 {
		t.Errorf("DeleteCache of nothing = %d, %v", n, err)
	}
	if n, err := s.PurgeCache(ctx, "p", "a"); err != nil || n != 3 {
		t.Errorf("PurgeCache(p, a) = %d, %v; want 3", n, err)
	}
	if _, err := s.PurgeCache(ctx, "", "a"); err == nil {
		t.Error("PurgeCache of a task without its pipeline: no error")
	}
	if n, err := s.PurgeCache(ctx, "p", ""); err != nil || n != 3 {
		t.Errorf("PurgeCache(p) = %d, %v; want 3 (p/b)", n, err)
	}
	check(t, "left after purges", cachedKeys(t, s, store.CacheFilter{}), []string{cacheKey(3), cacheKey(6), cacheKey(9), cacheKey(12)})
	if n, err := s.PurgeCache(ctx, "", ""); err != nil || n != 4 {
		t.Errorf("PurgeCache of all = %d, %v; want 4", n, err)
	}
	if st, err := s.CacheStats(ctx); err != nil || st != (store.CacheStats{}) {
		t.Errorf("CacheStats after purging all = %+v, %v", st, err)
	}
}

// testEvictCache: expired entries go first, then the least recently used
// (ties by key) while the cache is past its bound, at most limit a call.
func testEvictCache(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := t0
	var entries []store.CacheEntry
	for i := range 1203 {
		e := cacheEntry(i+1, "p", "old", 1, now.Add(-48*time.Hour).Add(time.Duration(i)*time.Second))
		e.ExpiresAt = now.Add(-time.Hour)
		if i%2 == 0 {
			e.ExpiresAt = now // expired at now too
		}
		entries = append(entries, e)
	}
	var live []string
	for i := range 10 {
		// Used a minute apart, but 5000 and 5001 at the same time: the
		// smaller key goes first.
		at := now.Add(-time.Hour + time.Duration(max(i, 1))*time.Minute)
		e := cacheEntry(5000+i, "p", "live", 100, at)
		e.ExpiresAt = now.Add(time.Duration(i+1) * time.Microsecond)
		entries = append(entries, e)
		live = append(live, e.Key)
	}
	mustPutCache(t, s, entries...)
	if st, _ := s.CacheStats(ctx); st != (store.CacheStats{Entries: 1213, Bytes: 2203}) {
		t.Errorf("CacheStats = %+v", st)
	}
	var calls []int
	for range 10 {
		n, err := s.EvictCache(ctx, 550, now, 500)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, n)
		if n < 500 {
			break
		}
	}
	// 1203 expired, then 5 live ones to get from 1000 bytes to 500.
	check(t, "entries evicted by call", calls, []int{500, 500, 208})
	check(t, "left", cachedKeys(t, s, store.CacheFilter{}), live[5:])
	if n, err := s.EvictCache(ctx, 550, now, 500); n != 0 || err != nil {
		t.Errorf("EvictCache with nothing to do = %d, %v", n, err)
	}
	// No bound: only what expired (now the rest, one by one).
	if n, err := s.EvictCache(ctx, 0, now.Add(7*time.Microsecond), 2); n != 2 || err != nil {
		t.Errorf("EvictCache without a bound = %d, %v; want 2 expired", n, err)
	}
	check(t, "left after expiry", cachedKeys(t, s, store.CacheFilter{}), live[7:])
	// A bound of 1 byte: every entry goes.
	if n, err := s.EvictCache(ctx, 1, now, 100); n != 3 || err != nil {
		t.Errorf("EvictCache to 1 byte = %d, %v; want 3", n, err)
	}
	if st, _ := s.CacheStats(ctx); st != (store.CacheStats{}) {
		t.Errorf("CacheStats after evicting all = %+v", st)
	}
}

func testCacheRejects(t *testing.T, s store.Store) {
	ctx := t.Context()
	good := cacheEntry(1, "p", "t", 1, t0)
	for name, bad := range map[string]store.CacheEntry{
		"empty key":        {Pipeline: "p"},
		"key not text":     {Key: "k\x00"},
		"pipeline":         {Key: cacheKey(2), Pipeline: "p\xff"},
		"result":           {Key: cacheKey(2), Result: json.RawMessage(`{"a"`)},
		"result with NUL":  {Key: cacheKey(2), Result: json.RawMessage(`"\u0000"`)},
		"item":             {Key: cacheKey(2), Item: -2},
		"size":             {Key: cacheKey(2), Size: -1},
		"output path":      {Key: cacheKey(2), Outputs: []store.ArtifactFile{{Digest: "sha256:00"}}},
		"output digest":    {Key: cacheKey(2), Outputs: []store.ArtifactFile{{Path: "a"}}},
		"output size":      {Key: cacheKey(2), Outputs: []store.ArtifactFile{{Path: "a", Digest: "sha256:00", Size: -5}}},
		"output path text": {Key: cacheKey(2), Outputs: []store.ArtifactFile{{Path: "a\xff", Digest: "sha256:00"}}},
	} {
		if err := s.PutCache(ctx, good, bad); err == nil {
			t.Errorf("%s: PutCache accepted %+v", name, bad)
		}
	}
	if st, err := s.CacheStats(ctx); err != nil || st.Entries != 0 {
		t.Errorf("refused puts wrote %+v, %v", st, err)
	}
}

// testConcurrentPutCache: servers writing the same keys at once, in
// different orders, while others touch, look up and evict them: no error,
// and every entry read is one writer's whole.
func testConcurrentPutCache(t *testing.T, s store.Store) {
	ctx := t.Context()
	const keys, rounds = 20, 15
	write := func(w, round int) []store.CacheEntry {
		var es []store.CacheEntry
		for i := range keys {
			e := cacheEntry(i+1, "p", "t", 1, time.Time{})
			e.Result = json.RawMessage(fmt.Sprintf(`{"writer":%d,"round":%d}`, w, round))
			e.Outputs = []store.ArtifactFile{{Path: "out", Digest: fmt.Sprintf("sha256:%d-%d", w, i)}}
			es = append(es, e)
		}
		if w%2 == 1 {
			slices.Reverse(es)
		}
		return es
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			for round := range rounds {
				if err := s.PutCache(ctx, write(w, round)...); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
	}
	all := make([]string, keys)
	for i := range all {
		all[i] = cacheKey(i + 1)
	}
	wg.Go(func() {
		for range rounds {
			backward := slices.Clone(all)
			slices.Reverse(backward)
			if err := s.TouchCache(ctx, backward, time.Now()); err != nil {
				errs <- fmt.Errorf("touch: %w", err)
				return
			}
			got, err := s.LookupCache(ctx, all, time.Now())
			if err != nil {
				errs <- fmt.Errorf("lookup: %w", err)
				return
			}
			for k, e := range got {
				var r struct{ Writer int }
				if err := json.Unmarshal(e.Result, &r); err != nil || len(e.Outputs) != 1 ||
					!strings.HasPrefix(e.Outputs[0].Digest, fmt.Sprintf("sha256:%d-", r.Writer)) {
					errs <- fmt.Errorf("entry %.8s read half written: %s %+v", k, e.Result, e.Outputs)
					return
				}
			}
		}
	})
	wg.Go(func() {
		for range rounds {
			if _, err := s.EvictCache(ctx, 5, time.Now(), 3); err != nil {
				errs <- fmt.Errorf("evict: %w", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := s.PutCache(ctx, write(0, rounds)...); err != nil {
		t.Fatal(err)
	}
	got, err := s.LookupCache(ctx, all, time.Now())
	if err != nil || len(got) != keys {
		t.Fatalf("LookupCache after the writers = %d entries, %v", len(got), err)
	}
}
