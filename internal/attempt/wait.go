package attempt

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/spec"
)

// Condition is a kind of wait: instead of running work, an attempt of a
// wait task is a series of checks (pokes) of a condition, made by the
// executor at the wait's poke times. Between pokes the wait holds no
// execution slot and no goroutine: the executor keeps it as an entry in a
// timer heap and calls Check from a small shared pool.
//
// Implement it once and register it (NewRegistry): the file, http, sql,
// pipeline and dataset waits are conditions.
type Condition interface {
	// Name is the key in a Registry and in Spec.Kind: "wait.<name>", what
	// spec.Task.Kind returns for the task.
	Name() string
	// Body is the Spec.Body of an attempt of task t, as for Kind.
	Body(t *spec.Task) (json.RawMessage, error)
	// Check looks at the condition once. memo is what the previous check
	// of this attempt returned in Observation.Memo (nil at the first), for
	// conditions that need history (a file's size stable for a while).
	// It must return promptly when ctx is done.
	Check(ctx context.Context, s *Spec, h *Host, memo json.RawMessage) Observation
}

// Observation is what one check of a condition saw.
type Observation struct {
	// Met is set when the condition holds: the wait succeeds with Result.
	Met bool
	// Seen says in a few words what the check found ("no file matches
	// /data/in/*.csv", "HTTP 503", "status is \"pending\""). The timeline
	// records it when it differs from the previous check's, and a wait
	// that times out ends with it, so it must not vary between checks
	// that saw the same thing (no times, no counters).
	Seen string
	// Result is the task's result when Met: what arrived (the matched
	// files, the decoded body, the row).
	Result json.RawMessage
	// Memo is kept in memory and given to the next check of the same
	// attempt; a restart loses it (the condition starts over).
	Memo json.RawMessage
	// Fail, when not empty, ends the wait as failed at once: the condition
	// can never hold as written (a query with a syntax error, a URL that
	// is not one). A condition that merely cannot be checked now (a server
	// that does not answer) is not met, with Seen saying so.
	Fail string
}

// Expand replaces each ${NAME} in text by the attempt's variable NAME: its
// Env (parameters, interval, pipeline and task env) or its Secrets. It is
// how in-process kinds put parameters and secrets into URLs, headers and
// connection strings without a shell. "$$" is a literal "$"; any other "$"
// is kept as it is. A name the attempt does not have is an error (a typo
// would otherwise send an empty password).
func (s *Spec) Expand(text string) (string, error) {
	if !strings.Contains(text, "$") {
		return text, nil
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '$' || i+1 >= len(text) {
			b.WriteByte(c)
			continue
		}
		switch text[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(text[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unclosed ${ at byte %d", i)
			}
			name := text[i+2 : i+2+end]
			v, ok := s.Secrets[name]
			if !ok {
				v, ok = s.Env[name]
			}
			if !ok {
				return "", fmt.Errorf("${%s}: the task has no variable %s (declare it in env, params or secrets)", name, name)
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
