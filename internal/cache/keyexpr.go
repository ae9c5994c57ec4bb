package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// MaxKeyExprLen bounds the text of cache.key: a key expression is a
// one-liner naming what matters (params.date, item.user).
const MaxKeyExprLen = 4096

// The variables a key expression sees.
const (
	VarParams   = "params"   // the run's parameters, by name
	VarItem     = "item"     // the map item (null for a task that is not a map)
	VarNeeds    = "needs"    // the needs' results, by task id
	VarInterval = "interval" // the run's interval (start and end)
)

// keyEnv is what a key expression sees. The variables are typed any, so
// an expression may reach into them (params.date, item.user) and the
// compiler still refuses a name that is none of them.
type keyEnv struct {
	Params   any `expr:"params"`
	Item     any `expr:"item"`
	Needs    any `expr:"needs"`
	Interval any `expr:"interval"`
}

// KeyExpr is a compiled cache.key, safe for concurrent use: compile it
// once per task and evaluate it for each attempt or item.
type KeyExpr struct {
	src  string
	prog *vm.Program
}

// CompileKey checks a cache.key expression (the expr language of package
// cond) and prepares it for Eval.
func CompileKey(src string) (*KeyExpr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("cache.key is empty: name what the result depends on, such as params.date")
	}
	if len(src) > MaxKeyExprLen {
		return nil, fmt.Errorf("cache.key is %d bytes long; at most %d", len(src), MaxKeyExprLen)
	}
	prog, err := expr.Compile(src, expr.Env(keyEnv{}))
	if err != nil {
		return nil, fmt.Errorf("cache.key %q: %w", src, firstLine(err))
	}
	return &KeyExpr{src: src, prog: prog}, nil
}

// String returns the expression's text.
func (k *KeyExpr) String() string { return k.src }

// Eval evaluates the expression over vars (VarParams, VarItem, VarNeeds,
// VarInterval: values as encoding/json decodes them, or strings) and
// renders its value canonically: as compact JSON with object keys sorted,
// so the same value always renders alike. A null value is an error: it is
// almost always a name that is not there (params.dat), which would make
// every run share one key.
func (k *KeyExpr) Eval(vars map[string]any) (s string, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = "", fmt.Errorf("cache.key %q: %v", k.src, r)
		}
	}()
	var env keyEnv
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		v := vars[name]
		switch name {
		case VarParams:
			env.Params = v
		case VarItem:
			env.Item = v
		case VarNeeds:
			env.Needs = v
		case VarInterval:
			env.Interval = v
		default:
			return "", fmt.Errorf("cache.key %q: unknown variable %q (expected params, item, needs or interval)", k.src, name)
		}
	}
	out, err := expr.Run(k.prog, env)
	if err != nil {
		return "", fmt.Errorf("cache.key %q: %w", k.src, firstLine(err))
	}
	if out == nil {
		return "", fmt.Errorf("cache.key %q is null: it names nothing that is there (a parameter or field spelled differently?); write x ?? \"\" if null is meant", k.src)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return "", fmt.Errorf("cache.key %q: its value (%T) cannot be rendered: %w", k.src, out, err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// EvalKey compiles and evaluates a cache.key expression over vars (see
// KeyExpr.Eval); use CompileKey to evaluate one expression many times.
func EvalKey(src string, vars map[string]any) (string, error) {
	k, err := CompileKey(src)
	if err != nil {
		return "", err
	}
	return k.Eval(vars)
}

// firstLine keeps the first line of an expr error: the rest is a drawing
// of the source with a caret.
func firstLine(err error) error {
	if msg, _, cut := strings.Cut(err.Error(), "\n"); cut {
		return errors.New(msg)
	}
	return err
}
