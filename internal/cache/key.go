package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// KeyScheme names the encoding Key hashes. It is the first thing hashed,
// so keys of another scheme can never collide with these; a release that
// changes what a key covers or how it is encoded changes it (and every
// entry of the old scheme simply stops being found). TestCacheGoldenKey fails
// on any accidental change.
const KeyScheme = "tasuki cache key v1"

// Input is everything a cached attempt's result may depend on.
type Input struct {
	// Spec is the attempt's description: its kind, body, variables,
	// working directory, needs' results and secrets.
	Spec *attempt.Spec
	// Dir is where a relative Spec.Workdir starts. Relative input paths
	// start at the task's working directory, as the pipeline reference
	// says: Dir itself when the task names no workdir.
	Dir string
	// Inputs are the task's declared input files: paths or globs, with
	// their ${VAR} already replaced (Expand).
	Inputs []string
	// Outputs are the task's declared output paths (part of its
	// definition).
	Outputs []string
	// Version is cache.version.
	Version string
	// KeyExpr is the value of cache.key (EvalKey) when the task gives one,
	// "" when it does not. It replaces the variables, secrets and needs.
	KeyExpr string
	// Item is the map item (nil for a task that is not a map).
	Item json.RawMessage
}

// Key returns the cache key of in: the hex SHA-256 of its canonical
// encoding (see the package documentation). Reading input files is the
// only slow part; ctx stops it. A declared input path that does not exist
// and is not a glob is an error, as is a value that is not valid JSON.
//
// Key reads every input file each time; a Hasher (NewHasher) remembers
// their digests, for the many keys of a map's items.
func Key(ctx context.Context, in Input) (string, error) { return (*Hasher)(nil).key(ctx, in) }

func (h *Hasher) key(ctx context.Context, in Input) (string, error) {
	s := in.Spec
	if s == nil {
		return "", errors.New("cache key: no attempt spec")
	}
	files, err := h.inputFiles(ctx, inputBase(in.Dir, s.Workdir), in.Inputs)
	if err != nil {
		return "", err
	}

	e := newEncoder()
	e.str(KeyScheme)

	e.field("kind")
	e.str(s.Kind)
	e.field("body")
	if err := e.optJSON(s.Body); err != nil {
		return "", fmt.Errorf("cache key: the task's body: %w", err)
	}
	e.field("workdir")
	e.str(s.Workdir)
	e.field("outputs")
	e.strs(sortedSet(in.Outputs))
	e.field("version")
	e.str(in.Version)
	e.field("item")
	if in.Item == nil {
		e.tag(tagAbsent)
	} else if err := e.json(in.Item); err != nil {
		return "", fmt.Errorf("cache key: the map item: %w", err)
	}

	if in.KeyExpr != "" {
		// The user said what matters: the value replaces the variables,
		// secrets and needs (definition, files, version and item stay).
		e.field("key")
		e.str(in.KeyExpr)
	} else if err := e.context(s); err != nil {
		return "", err
	}

	e.field("inputs")
	e.strs(sortedSet(in.Inputs))
	e.field("files")
	e.uint(uint64(len(files)))
	for _, f := range files {
		e.str(f.rel)
		e.tag(f.kind)
		switch f.kind {
		case tagFile:
			e.bytes(f.digest)
		case tagLink, tagOther:
			e.str(f.target)
		}
	}
	return hex.EncodeToString(e.h.Sum(nil)), nil
}

// context writes what an attempt is given besides its definition: its
// variables (less those that differ per run or attempt, Volatile), its
// secrets (each by SecretDigest), the results of its needs and the
// digests of their output files.
func (e *encoder) context(s *attempt.Spec) error {
	e.field("env")
	env := make(map[string]string, len(s.Env))
	for k, v := range s.Env {
		if _, secret := s.Secrets[k]; !secret && !Volatile(k) {
			env[k] = v
		}
	}
	e.strMap(env)

	e.field("secrets")
	names := slices.Sorted(maps.Keys(s.Secrets))
	e.uint(uint64(len(names)))
	for _, name := range names {
		d := SecretDigest(name, s.Secrets[name])
		e.str(name)
		e.bytes(d[:])
	}

	e.field("needs")
	ids := slices.Sorted(maps.Keys(s.Needs))
	e.uint(uint64(len(ids)))
	for _, id := range ids {
		e.str(id)
		if err := e.optJSON(s.Needs[id]); err != nil {
			return fmt.Errorf("cache key: the result of need %s: %w", id, err)
		}
	}

	e.field("need files")
	arts := slices.Clone(s.Artifacts)
	slices.SortFunc(arts, func(a, b artifact.Need) int {
		if c := strings.Compare(a.Need, b.Need); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	e.uint(uint64(len(arts)))
	for _, a := range arts {
		e.str(a.Need)
		e.str(a.Path)
		e.str(a.Digest)
	}
	return nil
}

// Volatile reports whether the variable called name is left out of keys:
// those that differ per run or attempt and name nothing the task computes
// on (the run's id, the attempt's number, the data directory, what
// triggered the run, the pipeline's and task's names, the trace context),
// and those naming the executor's own files (the needs' results, which
// enter the key by content, the result file, the artifacts and dataset
// metadata files). The executor's secrets are never passed to an attempt.
func Volatile(name string) bool {
	switch name {
	case "TASUKI_HOME", "TASUKI_RUN_ID", "TASUKI_ATTEMPT", "TASUKI_TRIGGER", "TASUKI_PIPELINE",
		"TASUKI_TASK_ID", "TRACEPARENT", "TASUKI_RESULT", "TASUKI_ARTIFACTS",
		// A map item is in the key by its value; its position is not, so
		// an item inserted into the list does not make every item after
		// it miss the cache.
		"TASUKI_ITEM_INDEX":
		return true
	}
	for _, prefix := range []string{"TASUKI_NEED_", attempt.DatasetEnvPrefix, attempt.SecretEnvPrefix} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// SecretDigest is how a secret enters a key: the SHA-256 of a
// domain-separated, length-prefixed encoding of its variable's name and
// its value. The value is never written anywhere; the digest binds it to
// its name, so two variables with one value differ, and it shares no
// preimage with anything else tasuki hashes.
func SecretDigest(name, value string) [sha256.Size]byte {
	e := newEncoder()
	e.str("tasuki cache secret v1")
	e.str(name)
	e.str(value)
	var d [sha256.Size]byte
	e.h.Sum(d[:0])
	return d
}

// inputBase is where relative input paths start: the task's working
// directory on this machine.
func inputBase(dir, workdir string) string {
	switch {
	case workdir == "":
		return dir
	case filepath.IsAbs(workdir):
		return workdir
	}
	return filepath.Join(dir, workdir)
}

// sortedSet returns the distinct values of list in order: the order of
// declared paths changes nothing the task does.
func sortedSet(list []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(list)))
}

// Tags of the encoding: what kind of value follows.
const (
	tagAbsent byte = '-' // no value (no body, no item, a need without a result)
	tagNull   byte = 'n'
	tagFalse  byte = 'f'
	tagTrue   byte = 't'
	tagNumber byte = '#' // the number's text, as written
	tagString byte = 's'
	tagArray  byte = '['
	tagObject byte = '{'
	// Input entries.
	tagFile  byte = 'F' // a regular file, by content
	tagDir   byte = 'D' // a directory (its entries follow as their own)
	tagLink  byte = 'L' // a symbolic link not followed, by its target
	tagOther byte = 'O' // a device, pipe or socket: by its type, never read
)

// encoder writes the canonical encoding into a SHA-256. Every string is
// preceded by its length and every list by its count, so no two different
// sequences of fields encode alike.
type encoder struct {
	h   hash.Hash
	buf [8]byte
}

func newEncoder() *encoder { return &encoder{h: sha256.New()} }

func (e *encoder) uint(n uint64) {
	binary.BigEndian.PutUint64(e.buf[:], n)
	e.h.Write(e.buf[:])
}

func (e *encoder) tag(t byte) { e.h.Write([]byte{t}) }

func (e *encoder) bytes(b []byte) {
	e.uint(uint64(len(b)))
	e.h.Write(b)
}

func (e *encoder) str(s string) {
	e.uint(uint64(len(s)))
	io.WriteString(e.h, s)
}

// field names the field whose value follows.
func (e *encoder) field(name string) { e.str(name) }

func (e *encoder) strs(list []string) {
	e.uint(uint64(len(list)))
	for _, s := range list {
		e.str(s)
	}
}

func (e *encoder) strMap(m map[string]string) {
	keys := slices.Sorted(maps.Keys(m))
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(m[k])
	}
}

// optJSON writes a JSON value, or tagAbsent for none.
func (e *encoder) optJSON(raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		e.tag(tagAbsent)
		return nil
	}
	return e.json(raw)
}

// json writes a JSON document as the typed value it denotes: the same
// value in any spacing or object key order encodes alike.
func (e *encoder) json(raw json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("not valid JSON: more than one value")
	}
	return e.value(v)
}

// value writes a value decoded by encoding/json with UseNumber.
func (e *encoder) value(v any) error {
	switch x := v.(type) {
	case nil:
		e.tag(tagNull)
	case bool:
		if x {
			e.tag(tagTrue)
		} else {
			e.tag(tagFalse)
		}
	case json.Number:
		e.tag(tagNumber)
		e.str(x.String())
	case string:
		e.tag(tagString)
		e.str(x)
	case []any:
		e.tag(tagArray)
		e.uint(uint64(len(x)))
		for _, item := range x {
			if err := e.value(item); err != nil {
				return err
			}
		}
	case map[string]any:
		e.tag(tagObject)
		keys := slices.Sorted(maps.Keys(x))
		e.uint(uint64(len(keys)))
		for _, k := range keys {
			e.str(k)
			if err := e.value(x[k]); err != nil {
				return err
			}
		}
	default:
		// encoding/json decodes into nothing else.
		return fmt.Errorf("unexpected decoded JSON value %T", v)
	}
	return nil
}
