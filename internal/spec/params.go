package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Layouts of the date and datetime parameter types.
const (
	DateLayout     = "2006-01-02"
	DatetimeLayout = time.RFC3339Nano // parsing accepts RFC 3339 with or without fractions
)

// Size limits of parameter values. A command sees each value in its
// environment (TASUKI_PARAM_<NAME>), where the kernel refuses a string over
// 128 KiB and all of the environment and arguments together over a quarter
// of the stack limit (2 MiB with the usual 8 MiB stack), which fails the
// task at start with "argument list too long". Values past these limits
// are refused when the run is created, with the limit in the message;
// bulk data belongs in a file whose path is the parameter.
const (
	// MaxParamValue bounds one value: what is given (the text from the
	// command line or the API) and what the command sees.
	MaxParamValue = 64 << 10
	// MaxParamsTotal bounds the values of all parameters of a run
	// together, as the command sees them, leaving room in the kernel's
	// total for the script and the rest of the environment.
	MaxParamsTotal = 256 << 10
)

// sizeProblem describes a value of n bytes over MaxParamValue, or is "".
func sizeProblem(n int) string {
	if n <= MaxParamValue {
		return ""
	}
	return fmt.Sprintf("value is %d bytes, over the limit of %d bytes (64 KiB) per param; put large data in a file and pass its path", n, MaxParamValue)
}

// checkSize refuses a coerced value whose text form (as Format renders it
// for the command's environment) is over MaxParamValue: a list, say, grows
// when rendered as JSON.
func (p Param) checkSize(v any) (int, string) {
	s, err := p.Format(v)
	if err != nil {
		return 0, err.Error()
	}
	return len(s), sizeProblem(len(s))
}

// typ is the parameter's type with the default applied.
func (p Param) typ() ParamType {
	if p.Type == "" {
		return ParamString
	}
	return p.Type
}

// expects says in words what a value of the parameter's type looks like.
func (p Param) expects() string {
	switch p.typ() {
	case ParamString:
		return "a string"
	case ParamInt:
		return "an integer like 42"
	case ParamFloat:
		return "a number like 3.14"
	case ParamBool:
		return "true or false"
	case ParamDate:
		return "a date like 2026-01-31"
	case ParamDatetime:
		return "a date and time in RFC 3339 form like 2026-01-31T09:00:00Z"
	case ParamList:
		return `a list of strings: a JSON array like ["a","b"] or comma-separated values like a,b`
	}
	return "a value of type " + string(p.Type)
}

// Coerce reads a value given as a string (from `--param name=value` or the
// API) as the parameter's type. It returns a string, int64, float64, bool,
// time.Time (date: midnight UTC; datetime: with its offset) or []string. A
// list is a JSON array of strings when it starts with '[', otherwise
// comma-separated values with surrounding spaces trimmed ("" is the empty
// list). A value over MaxParamValue bytes, as given or as rendered for the
// command, is refused. The error names the parameter and what was expected.
func (p Param) Coerce(raw string) (any, error) {
	problem := sizeProblem(len(raw))
	var v any
	if problem == "" {
		v, problem = p.coerce(raw)
	}
	if problem == "" {
		_, problem = p.checkSize(v)
	}
	if problem != "" {
		return nil, fmt.Errorf("param %q: %s", p.Name, problem)
	}
	return v, nil
}

// coerce does the work of Coerce, returning a problem description instead of
// an error so callers can frame it.
func (p Param) coerce(raw string) (any, string) {
	bad := func() (any, string) {
		return nil, fmt.Sprintf("expected %s, got %s", p.expects(), quoteShort(raw))
	}
	switch p.typ() {
	case ParamString:
		return raw, ""
	case ParamInt:
		i, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Sprintf("expected %s, got %s, which is out of range", p.expects(), quoteShort(raw))
			}
			return bad()
		}
		return i, ""
	case ParamFloat:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return bad()
		}
		return f, ""
	case ParamBool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return bad()
		}
		return b, ""
	case ParamDate:
		t, err := time.Parse(DateLayout, raw)
		if err != nil {
			return bad()
		}
		return t, ""
	case ParamDatetime:
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return bad()
		}
		return t, ""
	case ParamList:
		s := strings.TrimSpace(raw)
		if strings.HasPrefix(s, "[") {
			var items []string
			if err := json.Unmarshal([]byte(s), &items); err != nil {
				return bad()
			}
			if items == nil {
				items = []string{}
			}
			return items, ""
		}
		if s == "" {
			return []string{}, ""
		}
		items := strings.Split(raw, ",")
		for i := range items {
			items[i] = strings.TrimSpace(items[i])
		}
		return items, ""
	}
	return nil, fmt.Sprintf("unknown param type %q: expected one of %s", p.Type, typeNames())
}

func typeNames() string {
	names := make([]string, len(ParamTypes))
	for i, t := range ParamTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// defaultValue returns the default as the Go type Coerce returns. A string
// default is read like a value given on the command line; other values must
// already have the parameter's type (an integer for int, a list of strings
// for list, ...). The error names the parameter.
func (p Param) defaultValue() (any, error) {
	v, problem := p.defaultOf(p.Default)
	if problem == "" {
		_, problem = p.checkSize(v)
	}
	if problem != "" {
		return nil, fmt.Errorf("param %q: default: %s", p.Name, problem)
	}
	return v, nil
}

func (p Param) defaultOf(d any) (any, string) {
	if s, ok := d.(string); ok {
		return p.coerce(s)
	}
	wrong := func() (any, string) {
		hint := ""
		if p.typ() == ParamString {
			hint = " (put it in quotes)"
		}
		return nil, fmt.Sprintf("expected %s, got %s%s", p.expects(), describeValue(d), hint)
	}
	switch p.typ() {
	case ParamInt:
		switch x := d.(type) {
		case int64:
			return x, ""
		case int:
			return int64(x), ""
		case int32:
			return int64(x), ""
		}
	case ParamFloat:
		switch x := d.(type) {
		case float64:
			if math.IsInf(x, 0) || math.IsNaN(x) {
				return wrong()
			}
			return x, ""
		case float32:
			return float64(x), ""
		case int64:
			return float64(x), ""
		case int:
			return float64(x), ""
		}
	case ParamBool:
		if b, ok := d.(bool); ok {
			return b, ""
		}
	case ParamDate:
		if t, ok := d.(time.Time); ok {
			y, m, day := t.Date()
			return time.Date(y, m, day, 0, 0, 0, 0, time.UTC), ""
		}
	case ParamDatetime:
		if t, ok := d.(time.Time); ok {
			return t, ""
		}
	case ParamList:
		switch x := d.(type) {
		case []string:
			return slices.Clone(x), ""
		case []any:
			items := make([]string, len(x))
			for i, item := range x {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Sprintf("expected a list of strings, got %s as item %d (put it in quotes)", describeValue(item), i+1)
				}
				items[i] = s
			}
			return items, ""
		}
	}
	return wrong()
}

// describeValue says what a decoded Go value is, for "got ..." in messages.
func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing (null)"
	case string:
		return "the string " + quoteShort(x)
	case int64, int, int32:
		return fmt.Sprintf("the integer %d", x)
	case float64:
		return "the number " + strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return fmt.Sprintf("the boolean %t", x)
	case []any, []string:
		return "a list"
	case time.Time:
		return "the time " + x.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("a value of Go type %T", v)
}

// ParamValueError is a problem of one parameter of a run: a value that does
// not fit its declaration, an unknown name, a required one left out. Its
// text is Err's; Param lets a form show it beside the parameter's field.
type ParamValueError struct {
	Param string
	Err   error
}

func (e *ParamValueError) Error() string { return e.Err.Error() }
func (e *ParamValueError) Unwrap() error { return e.Err }

// ParamErrors returns the ParamValueErrors of err's tree, in order.
func ParamErrors(err error) []*ParamValueError {
	var out []*ParamValueError
	var walk func(error)
	walk = func(err error) {
		if pe, ok := err.(*ParamValueError); ok {
			out = append(out, pe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// ResolveParams turns the parameters given to a run, as strings, into typed
// values: each given value is coerced to its declared type, defaults fill the
// rest, and a run that gives an unknown parameter or leaves out a required
// one without default is refused (each problem of one parameter is a
// *ParamValueError). Parameters neither given nor defaulted are
// left out of the result (their TASUKI_PARAM_* variable is not set). Values
// over MaxParamValue, or together over MaxParamsTotal, are refused. Every
// problem is reported, joined in one error.
func (p *Pipeline) ResolveParams(given map[string]string) (map[string]any, error) {
	out := make(map[string]any, len(p.Params))
	var errs []error
	declared := make([]string, len(p.Params))
	for i, prm := range p.Params {
		declared[i] = prm.Name
	}
	names := make([]string, 0, len(given))
	for name := range given {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if slices.Contains(declared, name) {
			continue
		}
		msg := fmt.Sprintf("unknown param %q", name)
		switch s := closest(name, declared); {
		case s != "":
			msg += fmt.Sprintf("; did you mean %q?", s)
		case len(declared) == 0:
			msg += fmt.Sprintf("; pipeline %q takes no params", p.Name)
		default:
			msg += fmt.Sprintf("; pipeline %q takes %s", p.Name, strings.Join(declared, ", "))
		}
		errs = append(errs, &ParamValueError{Param: name, Err: errors.New(msg)})
	}
	for _, prm := range p.Params {
		if raw, ok := given[prm.Name]; ok {
			v, err := prm.Coerce(raw)
			if err != nil {
				errs = append(errs, &ParamValueError{Param: prm.Name, Err: err})
				continue
			}
			out[prm.Name] = v
			continue
		}
		if prm.Default != nil {
			v, err := prm.defaultValue()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out[prm.Name] = v
			continue
		}
		if prm.Required {
			errs = append(errs, &ParamValueError{Param: prm.Name, Err: fmt.Errorf("param %q is required: give %s", prm.Name, prm.expects())})
		}
	}
	if len(errs) == 0 {
		total := 0
		for _, prm := range p.Params {
			if v, ok := out[prm.Name]; ok {
				n, _ := prm.checkSize(v)
				total += n
			}
		}
		if total > MaxParamsTotal {
			errs = append(errs, fmt.Errorf("params are %d bytes together, over the limit of %d bytes (256 KiB) for all params of a run; put large data in files and pass their paths", total, MaxParamsTotal))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Format renders a value of the parameter as the canonical string that
// Coerce reads back and that commands see in TASUKI_PARAM_<NAME>: integers in
// decimal, floats in the shortest form that round-trips, bools as true or
// false, dates as YYYY-MM-DD, datetimes in RFC 3339 (with fractional seconds
// only when present), and lists as a JSON array of strings (["a","b,c"]),
// which keeps items containing commas intact. A string value is first
// coerced, so Format also canonicalises raw input.
func (p Param) Format(v any) (string, error) {
	if s, ok := v.(string); ok && p.typ() != ParamString {
		c, err := p.Coerce(s)
		if err != nil {
			return "", err
		}
		v = c
	}
	x, problem := p.defaultOf(v)
	if problem != "" {
		return "", fmt.Errorf("param %q: %s", p.Name, problem)
	}
	switch x := x.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case time.Time:
		if p.typ() == ParamDate {
			return x.Format(DateLayout), nil
		}
		return x.Format(DatetimeLayout), nil
	case []string:
		b, err := json.Marshal(x)
		if err != nil {
			return "", fmt.Errorf("param %q: rendering the list: %w", p.Name, err)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("param %q: cannot render %s", p.Name, describeValue(x))
}

// ParamEnv renders resolved parameter values (from ResolveParams) as
// NAME=value entries for a command's environment, in declaration order, with
// the names from Param.EnvName and the values from Param.Format. Values for
// undeclared names are an error, so a typo cannot silently drop a value.
func (p *Pipeline) ParamEnv(values map[string]any) ([]string, error) {
	env := make([]string, 0, len(values))
	var errs []error
	for _, prm := range p.Params {
		v, ok := values[prm.Name]
		if !ok {
			continue
		}
		s, err := prm.Format(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		env = append(env, prm.EnvName()+"="+s)
	}
	if len(env)+len(errs) < len(values) {
		for name := range values {
			if !slices.ContainsFunc(p.Params, func(prm Param) bool { return prm.Name == name }) {
				errs = append(errs, fmt.Errorf("unknown param %q", name))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return env, nil
}
