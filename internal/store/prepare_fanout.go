package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// The checks and normalisations of map tasks, the content cache and
// artifact refs that every driver applies before it writes or queries
// (see prepare.go for why they live here): a change, an entry or a filter
// one driver accepts the other accepts too, with the same message, and
// pages are cut the same way. Indexes and items are int32 in PostgreSQL,
// so both drivers refuse (or, for reads, clip) what is past it.

// CheckMaps rejects what Apply would refuse about c's map changes, before
// the transaction starts (and before SQLite's write lock is taken), with
// messages that name the map and the item.
func CheckMaps(c *Change) error {
	for i := range c.Maps {
		m := &c.Maps[i]
		if m.Index < 0 || m.Index > math.MaxInt32 {
			return fmt.Errorf("map change of task %d: task index out of range", m.Index)
		}
		what := fmt.Sprintf("map %d", m.Index)
		if m.Values != nil {
			if m.Info == nil {
				return fmt.Errorf("%s: an expansion (%d values) needs its info", what, len(m.Values))
			}
			if m.Info.Items != len(m.Values) {
				return fmt.Errorf("%s: expanded to %d values, but its info says %d items", what, len(m.Values), m.Info.Items)
			}
			for j, v := range m.Values {
				if err := checkMapValue(v); err != nil {
					return fmt.Errorf("%s: value of item %d: %w", what, j, err)
				}
			}
		}
		if in := m.Info; in != nil {
			if in.Items < 0 || in.Next < 0 || in.Next > in.Items || in.Items > math.MaxInt32 {
				return fmt.Errorf("%s: info has %d items and cursor %d; want 0 <= cursor <= items", what, in.Items, in.Next)
			}
			for s, n := range in.Counts {
				if s == "" || CheckText("", string(s)) != nil || n < 0 {
					return fmt.Errorf("%s: info counts %d items in state %q", what, n, s)
				}
			}
			if len(in.Slowest) > MaxSlowItems {
				return fmt.Errorf("%s: info has %d slowest items; at most %d are kept", what, len(in.Slowest), MaxSlowItems)
			}
			for _, s := range in.Slowest {
				if s.Item < 0 || s.Attempt < 0 || s.Duration < 0 {
					return fmt.Errorf("%s: slow item %+v has a negative field", what, s)
				}
			}
		}
		for j := range m.Items {
			it := &m.Items[j]
			if it.RunID != 0 && it.RunID != c.RunID {
				return fmt.Errorf("%s: item %d names run %d", what, it.Item, it.RunID)
			}
			if it.Index != 0 && it.Index != m.Index {
				return fmt.Errorf("%s: item %d names task %d", what, it.Item, it.Index)
			}
			if it.Item < 0 || it.Item > math.MaxInt32 {
				return fmt.Errorf("%s: item %d out of range", what, it.Item)
			}
			if it.State == "" {
				return fmt.Errorf("%s: item %d has no state", what, it.Item)
			}
			if err := CheckText("state", string(it.State)); err != nil {
				return fmt.Errorf("%s: item %d: %w", what, it.Item, err)
			}
			if it.Attempt < 0 || it.Spent < 0 || it.CachedFrom < 0 || it.Attempt > math.MaxInt32 || it.Spent > math.MaxInt32 {
				return fmt.Errorf("%s: item %d has a negative attempt, spent or cached-from run", what, it.Item)
			}
			if err := CheckJSON(fmt.Sprintf("result of item %d of %s", it.Item, what), it.Result); err != nil {
				return err
			}
		}
		for _, d := range m.Delete {
			if d < 0 || d > math.MaxInt32 {
				return fmt.Errorf("%s: delete of item %d out of range", what, d)
			}
		}
	}
	return nil
}

// checkMapValue accepts one compact JSON value on one line, in UTF-8 (text
// every database keeps byte for byte): a chunk holds its values as lines.
func checkMapValue(v json.RawMessage) error {
	switch {
	case len(v) == 0:
		return errors.New("empty (want a JSON value)")
	case bytes.IndexByte(v, '\n') >= 0:
		return errors.New("contains a newline (want one JSON value on one line)")
	case !utf8.Valid(v):
		return errors.New("is not valid UTF-8")
	case !json.Valid(v):
		return fmt.Errorf("is not valid JSON: %.40q", v)
	}
	return nil
}

// MapChunks are the values of an expansion (checked by CheckMaps) as the
// rows of its chunks: MapChunkItems values each, one a line. Both drivers
// cut them alike, so MapValues of either finds an item in the same chunk.
func MapChunks(values []json.RawMessage) []string {
	out := make([]string, 0, (len(values)+MapChunkItems-1)/MapChunkItems)
	var b strings.Builder
	for start := 0; start < len(values); start += MapChunkItems {
		part := values[start:min(start+MapChunkItems, len(values))]
		size := len(part) - 1
		for _, v := range part {
			size += len(v)
		}
		b.Reset()
		b.Grow(size)
		for i, v := range part {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.Write(v)
		}
		out = append(out, b.String())
	}
	return out
}

// MapValuesRead assembles what MapValues returns from the rows of a
// driver's one statement: the map's item count and the chunks First to
// Last, in chunk order, with no chunk when the map has no items there. The
// rules of a range (a negative one refused, one past int32 clipped, one
// past the map's end cut short, a missing chunk an error rather than fewer
// values) are the same for every driver.
type MapValuesRead struct {
	// From is the first item asked for; First and Last are the chunks
	// that hold the range, what the driver reads.
	From, First, Last int

	n     int
	found bool
	out   []json.RawMessage
}

// NewMapValuesRead starts the read of items [from, from+n), or refuses
// the range.
func NewMapValuesRead(from, n int) (*MapValuesRead, error) {
	if from < 0 || n < 0 {
		return nil, fmt.Errorf("invalid range from %d, %d values", from, n)
	}
	// Items are int32: clip what is asked to what a map can hold.
	from, n = min(from, math.MaxInt32), min(n, math.MaxInt32)
	return &MapValuesRead{From: from, First: from / MapChunkItems, Last: (from + max(n, 1) - 1) / MapChunkItems, n: n}, nil
}

// Add takes one row: items, the map's item count, and chunk and data, the
// chunk's number and lines (hasChunk false when the row has no chunk).
func (r *MapValuesRead) Add(items int, chunk int, hasChunk bool, data []byte) error {
	if !r.found {
		r.found = true
		r.n = max(0, min(r.n, items-r.From))
		r.out = make([]json.RawMessage, 0, r.n)
	}
	if !hasChunk || len(r.out) == r.n {
		return nil
	}
	if want := r.From + len(r.out); want/MapChunkItems != chunk {
		return fmt.Errorf("chunk %d read where item %d was wanted (a chunk is missing)", chunk, want)
	}
	item := chunk * MapChunkItems
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		if item >= r.From && len(r.out) < r.n {
			r.out = append(r.out, json.RawMessage(line))
		}
		item++
	}
	return nil
}

// Values is the values read, once every row is added: ErrNotFound when
// there was no row (the map was never expanded).
func (r *MapValuesRead) Values() ([]json.RawMessage, error) {
	if !r.found {
		return nil, fmt.Errorf("never expanded: %w", ErrNotFound)
	}
	if len(r.out) != r.n {
		return nil, fmt.Errorf("%d of %d values from item %d found (a chunk is missing)", len(r.out), r.n, r.From)
	}
	return r.out, nil
}

// DecodeMapInfo sets m's Counts and Slowest from their stored JSON (empty
// for NULL), as every driver keeps them.
func DecodeMapInfo(m *MapInfo, counts, slowest []byte) error {
	if len(counts) > 0 {
		if err := json.Unmarshal(counts, &m.Counts); err != nil {
			return fmt.Errorf("counts of map %d: %w", m.Index, err)
		}
	}
	if len(slowest) > 0 {
		if err := json.Unmarshal(slowest, &m.Slowest); err != nil {
			return fmt.Errorf("slowest items of map %d: %w", m.Index, err)
		}
	}
	return nil
}

// PrepareMapItemFilter checks f and returns it as a driver queries it:
// From clipped to what an item can be (int32), Limit within
// DefaultMapItemsLimit and MaxMapItemsLimit, and States each once, in the
// order given, so that both drivers return the same page.
func PrepareMapItemFilter(f MapItemFilter) (MapItemFilter, error) {
	if f.From < 0 {
		return f, fmt.Errorf("negative cursor %d", f.From)
	}
	f.From = min(f.From, math.MaxInt32)
	if f.Limit <= 0 {
		f.Limit = DefaultMapItemsLimit
	}
	f.Limit = min(f.Limit, MaxMapItemsLimit)
	var states []engine.TaskState
	for _, s := range f.States {
		if !slices.Contains(states, s) {
			states = append(states, s)
		}
	}
	f.States = states
	return f, nil
}

// CheckArtifacts rejects what Apply would refuse about c's artifact refs,
// before the transaction starts, with messages that name the task and the
// file.
func CheckArtifacts(c *Change) error {
	for _, a := range c.Artifacts {
		if a.RunID != 0 && a.RunID != c.RunID {
			return fmt.Errorf("artifact %q of task %d names run %d", a.Path, a.Index, a.RunID)
		}
		if a.Index < 0 || a.Item < -1 || a.Index > math.MaxInt32 || a.Item > math.MaxInt32 {
			return fmt.Errorf("artifact %q of task %d item %d: want a task index and an item (-1 for a task)", a.Path, a.Index, a.Item)
		}
		if err := checkArtifactFile(a.ArtifactFile); err != nil {
			return fmt.Errorf("artifact of task %d: %w", a.Index, err)
		}
	}
	return nil
}

// checkArtifactFile rejects an output file no store could name or find
// again.
func checkArtifactFile(f ArtifactFile) error {
	switch {
	case f.Path == "":
		return errors.New("output file with an empty path")
	case f.Digest == "":
		return fmt.Errorf("output file %q without a digest", f.Path)
	case f.Size < 0:
		return fmt.Errorf("output file %q has a negative size", f.Path)
	}
	if err := CheckText("output path", f.Path); err != nil {
		return err
	}
	return CheckText("digest", f.Digest)
}

// ArtifactGroup is the refs of one task (or item) of a change: the files
// of one success, which replace any it had (a task run again by an
// operator lists what its new success produced, not the files of the old
// one too). A path given twice is its last ref.
type ArtifactGroup struct {
	Index, Item int
	Refs        []ArtifactRef
}

// ArtifactGroups groups refs by task and item, in the order first seen:
// what each driver replaces, group by group.
func ArtifactGroups(refs []ArtifactRef) []ArtifactGroup {
	type key struct{ index, item int }
	pos := map[key]int{}
	var out []ArtifactGroup
	for _, r := range refs {
		k := key{r.Index, r.Item}
		i, ok := pos[k]
		if !ok {
			i = len(out)
			pos[k] = i
			out = append(out, ArtifactGroup{Index: r.Index, Item: r.Item})
		}
		g := &out[i]
		replaced := false
		for j := range g.Refs {
			if g.Refs[j].Path == r.Path {
				g.Refs[j], replaced = r, true
				break
			}
		}
		if !replaced {
			g.Refs = append(g.Refs, r)
		}
	}
	return out
}

// Page sizes of ArtifactDigests. The contract leaves them to the driver
// (the sweep reads pages until an empty one); they are the same in every
// driver so that a sweep costs the same number of reads on either.
const (
	DefaultDigestsLimit = 1000
	MaxDigestsLimit     = 10000
)

// DigestsLimit checks the cursor of an ArtifactDigests page and returns
// the page size to read for limit (DefaultDigestsLimit when 0 or less, at
// most MaxDigestsLimit).
func DigestsLimit(after string, limit int) (int, error) {
	if limit <= 0 {
		limit = DefaultDigestsLimit
	}
	limit = min(limit, MaxDigestsLimit)
	if err := CheckText("cursor", after); err != nil {
		return 0, err
	}
	return limit, nil
}

// PrepareCache checks entries and returns what PutCache writes: copies,
// one per key (the last given), in key order (the order PostgreSQL takes
// their row locks in, so two writers never deadlock), with zero times now,
// times normalised and empty outputs nil, so the entries a driver writes
// equal what LookupCache reads back from either.
func PrepareCache(entries []CacheEntry, now time.Time) ([]CacheEntry, error) {
	byKey := make(map[string]int, len(entries))
	out := make([]CacheEntry, 0, len(entries))
	for _, e := range entries {
		if e.Key == "" {
			return nil, errors.New("cache entry with an empty key")
		}
		if err := CheckText("cache key", e.Key); err != nil {
			return nil, err
		}
		what := fmt.Sprintf("cache entry %.16s", e.Key)
		if err := CheckText("pipeline name", e.Pipeline); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if err := CheckText("task id", e.TaskID); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		switch {
		case e.Item < -1:
			return nil, fmt.Errorf("%s: item %d (want -1 for a task, or an item of a map)", what, e.Item)
		case e.Size < 0:
			return nil, fmt.Errorf("%s: negative size %d", what, e.Size)
		case e.RunID < 0:
			return nil, fmt.Errorf("%s: invalid run id %d", what, e.RunID)
		}
		if err := CheckJSON("result of "+what, e.Result); err != nil {
			return nil, err
		}
		for _, f := range e.Outputs {
			if err := checkArtifactFile(f); err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = now
		}
		if e.UsedAt.IsZero() {
			e.UsedAt = now
		}
		e.CreatedAt, e.UsedAt, e.ExpiresAt = NormTime(e.CreatedAt), NormTime(e.UsedAt), NormTime(e.ExpiresAt)
		e.Result = NormJSON(e.Result)
		if len(e.Outputs) == 0 {
			e.Outputs = nil
		}
		if i, ok := byKey[e.Key]; ok {
			out[i] = e
			continue
		}
		byKey[e.Key] = len(out)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b CacheEntry) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Digests are the distinct digests of files, in order: the cache_outputs
// rows of an entry, which a sweep of the artifact store reads instead of
// every entry's JSON.
func Digests(files []ArtifactFile) []string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, f.Digest)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CheckCacheFilter rejects a pipeline and task a listing or a purge names
// that no entry can have: a task without its pipeline (task ids are per
// pipeline), names that are not text (which PostgreSQL could not even
// compare).
func CheckCacheFilter(pipeline, taskID string) error {
	if taskID != "" && pipeline == "" {
		return fmt.Errorf("task %q needs its pipeline (task ids are per pipeline)", taskID)
	}
	return errors.Join(CheckText("pipeline name", pipeline), CheckText("task id", taskID))
}

// PrepareCacheFilter checks f and returns it as a driver queries it, Limit
// within DefaultCacheLimit and MaxCacheLimit.
func PrepareCacheFilter(f CacheFilter) (CacheFilter, error) {
	if err := CheckCacheFilter(f.Pipeline, f.TaskID); err != nil {
		return f, err
	}
	if err := CheckText("cursor", f.AfterKey); err != nil {
		return f, err
	}
	if f.Limit <= 0 {
		f.Limit = DefaultCacheLimit
	}
	f.Limit = min(f.Limit, MaxCacheLimit)
	return f, nil
}

// CacheKeys are keys without repeats and without those no entry can have
// (empty, or not text), which a driver could not even send as given.
func CacheKeys(keys []string) []string {
	out := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if k == "" || seen[k] || CheckText("", k) != nil {
			continue
		}
		seen[k] = true
		out = append(out, k)
	}
	return out
}
