package cond

import (
	"errors"
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// MaxLen bounds a condition's text: conditions are one-liners, and a long
// one is more likely a mistake (a body pasted into the wrong key).
const MaxLen = 4096

// Cond is a compiled condition, safe for concurrent use.
type Cond struct {
	src  string
	prog *vm.Program
}

// env is what a condition sees: the decoded body.
type env struct {
	Body any `expr:"body"`
}

// Compile checks a condition and prepares it for Eval.
func Compile(src string) (*Cond, error) {
	if len(src) > MaxLen {
		return nil, fmt.Errorf("condition is %d bytes long; at most %d", len(src), MaxLen)
	}
	prog, err := expr.Compile(src, expr.Env(env{}), expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("condition %q: %w", src, oneLine(err))
	}
	return &Cond{src: src, prog: prog}, nil
}

// String returns the condition's text.
func (c *Cond) String() string { return c.src }

// Eval reports whether the condition holds for body (a value decoded by
// encoding/json: map[string]any, []any, string, float64, bool or nil). A
// condition that cannot be evaluated on this body (a field of a string,
// say) is an error, not false, so the caller can say why.
func (c *Cond) Eval(body any) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("condition %q: %v", c.src, r)
		}
	}()
	out, err := expr.Run(c.prog, env{Body: body})
	if err != nil {
		return false, fmt.Errorf("condition %q: %w", c.src, oneLine(err))
	}
	b, isBool := out.(bool)
	if !isBool {
		return false, fmt.Errorf("condition %q: gave %T, not a boolean", c.src, out)
	}
	return b, nil
}

// oneLine keeps the first line of an expr error: the rest is a drawing of
// the source with a caret, which the pipeline checker's line:col replaces.
func oneLine(err error) error {
	msg := err.Error()
	for i := 0; i < len(msg); i++ {
		if msg[i] == '\n' {
			return errors.New(msg[:i])
		}
	}
	return err
}
