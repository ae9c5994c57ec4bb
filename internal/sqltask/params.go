package sqltask

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/spec"
)

// paramEnvPrefix starts the variables of a run's parameters
// (spec.Param.EnvName).
const paramEnvPrefix = "TASUKI_PARAM_"

// builtinParams are the names bound to the run's own variables when no
// parameter has the name, in the order errors list them.
func builtinParams() []string { return []string{"interval_end", "interval_start", "run_id"} }

// builtinEnv is the variable a builtin parameter name binds.
func builtinEnv(name string) string { return "TASUKI_" + spec.EnvSafe(name) }

// bind returns the values of the statements' parameters, by statement, from
// the attempt's variables env: :name is the run's parameter name
// (TASUKI_PARAM_<NAME>), else one of builtinParams (TASUKI_INTERVAL_START, TASUKI_INTERVAL_END, TASUKI_RUN_ID). Values are strings, as
// the run has them; the database converts them to the type the statement
// needs, as it does for a literal. A name the run does not have is an
// error naming what it has.
func bind(stmts []statement, env map[string]string) ([][]any, error) {
	out := make([][]any, len(stmts))
	for i, st := range stmts {
		args := make([]any, len(st.params))
		for j, name := range st.params {
			v, ok := lookupParam(name, env)
			if !ok {
				return nil, fmt.Errorf("statement %d (line %d): unknown parameter :%s; %s", i+1, st.line, name, available(env))
			}
			args[j] = v
		}
		out[i] = args
	}
	return out, nil
}

func lookupParam(name string, env map[string]string) (string, bool) {
	if v, ok := env[paramEnvPrefix+spec.EnvSafe(name)]; ok {
		return v, true
	}
	if slices.Contains(builtinParams(), strings.ToLower(name)) {
		v, ok := env[builtinEnv(name)]
		return v, ok
	}
	return "", false
}

// available says which names a statement may bind, for the error about
// one it may not. Parameter names are shown as their variables have them,
// in lower case (EnvSafe forgets the original spelling).
func available(env map[string]string) string {
	var names []string
	for k := range env {
		if name, ok := strings.CutPrefix(k, paramEnvPrefix); ok && name != "" {
			names = append(names, ":"+strings.ToLower(name))
		}
	}
	for _, name := range builtinParams() {
		if _, ok := env[builtinEnv(name)]; ok && !slices.Contains(names, ":"+name) {
			names = append(names, ":"+name)
		}
	}
	if len(names) == 0 {
		return "the run has no parameters (declare them under params; :interval_start and :interval_end need a scheduled run)"
	}
	slices.Sort(names)
	return "available: " + strings.Join(names, ", ")
}
