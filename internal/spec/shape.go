package spec

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// This file derives a description of the format (a tree of shapes) from the Go
// types in spec.go by reflection. The parser walks YAML with it (known keys,
// types, required keys, enums, patterns, bounds), the checker applies the tag
// constraints to Go values with it, and Schema renders it as JSON Schema: one
// description, so the three cannot drift apart.

// reservedKeys lists, per object of the format, the keys that later versions of
// the format will give a meaning. A file using one gets "not supported in format
// v1 yet" instead of "unknown key", which tells the author the idea is right and
// the tasuki is too old. When a version adds a field, its key is removed here
// (buildFormat refuses a key that is both a field and reserved).
func reservedKeys() map[reflect.Type][]string {
	return map[reflect.Type][]string{
		reflect.TypeFor[Pipeline](): {
			"timezone", "catchup",
			"sensors",
			"on_failure", "on_success", "labels", "tags", "owner", "defaults",
			"include", "pool", "priority", "queue",
		},
		reflect.TypeFor[Task](): {
			"kind",
			"pipeline", "when", "if",
			"artifacts", "deadline", "resources", "concurrency",
			"on_failure", "on_success", "trigger_rule",
		},
		reflect.TypeFor[Param](): {"choices", "min", "max", "pattern"},
		reflect.TypeFor[Retry](): {"when", "on_exit_codes"},
	}
}

// namePattern is a named syntax for identifiers, referenced by `pattern` tags.
type namePattern struct {
	re   *regexp.Regexp
	src  string // the regular expression, also used in the JSON Schema
	help string // what the syntax allows, in words, for error messages
}

// namePatterns are the identifier syntaxes of the format. Names stay ASCII and
// start with a letter, digit or '_' so they are safe in URLs, file names,
// command lines and (through EnvSafe) environment variable names.
func namePatterns() map[string]*namePattern {
	mk := func(src, help string) *namePattern {
		return &namePattern{re: regexp.MustCompile(src), src: src, help: help}
	}
	return map[string]*namePattern{
		"name": mk(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`, "letters, digits, '-', '_' and '.', starting with a letter, digit or '_'"),
		"id":   mk(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`, "letters, digits, '-' and '_', starting with a letter, digit or '_'"),
		// A secret's name in upper case is the variable it reaches a task in.
		"secret": mk(SecretNamePattern, "letters, digits and '_', not starting with a digit"),
	}
}

// SecretNamePattern is the syntax of a secret's name, wherever one is
// given (pipelines, the secret store, secrets_dir files,
// TASUKI_SECRET_<NAME> variables): its upper case is an environment
// variable name.
const SecretNamePattern = `^[A-Za-z_][A-Za-z0-9_]*$`

// envKeyPattern is the syntax of keys of env maps: a portable environment
// variable name.
const envKeyPattern = `^[A-Za-z_][A-Za-z0-9_]*$`

// durationPattern matches the non-negative Go durations time.ParseDuration
// accepts, for the JSON Schema; the parser uses time.ParseDuration itself.
const durationPattern = `^\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

type kind uint8

const (
	kindObject    kind = iota // a struct: a YAML mapping with known keys
	kindList                  // a slice: a YAML sequence
	kindStringMap             // map[string]string: a mapping of string values
	kindString
	kindInt
	kindFloat
	kindBool
	kindDuration // Duration: a Go duration string
	kindCommand  // Command: a string or a list of strings
	kindAny      // any: a scalar or a list of scalars, checked later (Param.Default)
	kindJSON     // JSON: any YAML value, kept as JSON (map items)
)

// shape describes one kind of value of the format.
type shape struct {
	kind   kind
	name   string       // objects: "pipeline", "task", ...; used in messages and as $defs key
	goType reflect.Type // the Go type values are decoded into
	elem   *shape       // lists: the element shape

	// objects only
	fields   []*field
	byKey    map[string]*field
	reserved map[string]bool
	keys     []string // known keys, for suggestions
	ident    *field   // the field naming an instance (id, name), for messages
}

// field is one key of an object shape.
type field struct {
	key      string
	index    int // Go field index
	ord      int // position among the object's fields
	doc      string
	required bool
	enum     []string
	pattern  *namePattern
	min, max *float64
	aka      []string
	ptr      bool // the Go field is a pointer to the struct
	// noNull refuses the key with no value (tag null:"refuse"), where
	// leaving it out would be a surprise: "map:" with its lines commented
	// out would run the task once instead of per item.
	noNull bool
	// nullEmpty takes the key with no value as an empty mapping (tag
	// null:"empty"), for a key whose mapping has no keys: "noop:" is
	// "noop: {}".
	nullEmpty bool
	// secretEnv is the index of the Go field that receives the {secret:
	// NAME} values of an env map (tag secretenv), or -1.
	secretEnv int
	shape     *shape
}

// format is the whole description, built once from the types.
type format struct {
	root     *shape
	objects  []*shape // every object shape, root first, in discovery order
	duration reflect.Type
	command  reflect.Type
	envKey   *regexp.Regexp // envKeyPattern, compiled
	// secretName is the syntax of secrets' names (the "secret" pattern).
	secretName *namePattern
	patterns   map[string]*namePattern
}

// theFormat is computed once; it is immutable afterwards, so sharing it is safe.
var theFormat = sync.OnceValues(func() (*format, error) {
	return buildFormat(reflect.TypeFor[Pipeline]())
})

func buildFormat(root reflect.Type) (*format, error) {
	b := &formatBuilder{
		f: &format{
			duration: reflect.TypeFor[Duration](),
			command:  reflect.TypeFor[Command](),
			envKey:   regexp.MustCompile(envKeyPattern),
		},
		reserved: reservedKeys(),
		patterns: namePatterns(),
		seen:     map[reflect.Type]*shape{},
	}
	sh, err := b.shapeOf(root)
	if err != nil {
		return nil, fmt.Errorf("describing the pipeline format: %w", err)
	}
	b.f.root = sh
	b.f.secretName = b.patterns["secret"]
	b.f.patterns = b.patterns
	return b.f, nil
}

type formatBuilder struct {
	f        *format
	reserved map[reflect.Type][]string
	patterns map[string]*namePattern
	seen     map[reflect.Type]*shape
}

func (b *formatBuilder) shapeOf(t reflect.Type) (*shape, error) {
	if sh, ok := b.seen[t]; ok {
		return sh, nil
	}
	switch t {
	case b.f.duration:
		return &shape{kind: kindDuration, goType: t}, nil
	case b.f.command:
		return &shape{kind: kindCommand, goType: t}, nil
	case reflect.TypeFor[JSON]():
		return &shape{kind: kindJSON, goType: t}, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return b.object(t)
	case reflect.Slice:
		elem, err := b.shapeOf(t.Elem())
		if err != nil {
			return nil, err
		}
		return &shape{kind: kindList, goType: t, elem: elem}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String || t.Elem().Kind() != reflect.String {
			return nil, fmt.Errorf("type %s: only map[string]string is supported", t)
		}
		return &shape{kind: kindStringMap, goType: t}, nil
	case reflect.String:
		return &shape{kind: kindString, goType: t}, nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		return &shape{kind: kindInt, goType: t}, nil
	case reflect.Float64:
		return &shape{kind: kindFloat, goType: t}, nil
	case reflect.Bool:
		return &shape{kind: kindBool, goType: t}, nil
	case reflect.Interface:
		return &shape{kind: kindAny, goType: t}, nil
	}
	return nil, fmt.Errorf("type %s is not supported by the format description", t)
}

func (b *formatBuilder) object(t reflect.Type) (*shape, error) {
	sh := &shape{kind: kindObject, name: strings.ToLower(t.Name()), goType: t, byKey: map[string]*field{}, reserved: map[string]bool{}}
	b.seen[t] = sh
	b.f.objects = append(b.f.objects, sh)
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("yaml")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		if !ok {
			return nil, fmt.Errorf("field %s.%s has no yaml tag", t.Name(), sf.Name)
		}
		key, _, _ := strings.Cut(tag, ",")
		fl := &field{key: key, index: i, ord: len(sh.fields), doc: sf.Tag.Get("doc"), required: sf.Tag.Get("required") == "true", secretEnv: -1,
			noNull: sf.Tag.Get("null") == "refuse", nullEmpty: sf.Tag.Get("null") == "empty"}
		if name := sf.Tag.Get("secretenv"); name != "" {
			target, ok := t.FieldByName(name)
			if !ok || target.Type != sf.Type || target.Type.Kind() != reflect.Map {
				return nil, fmt.Errorf("field %s.%s: secretenv names %q, which is not a field of its type", t.Name(), sf.Name, name)
			}
			fl.secretEnv = target.Index[0]
		}
		if e := sf.Tag.Get("enum"); e != "" {
			fl.enum = strings.Split(e, ",")
		}
		if a := sf.Tag.Get("aka"); a != "" {
			fl.aka = strings.Split(a, ",")
		}
		if p := sf.Tag.Get("pattern"); p != "" {
			if fl.pattern = b.patterns[p]; fl.pattern == nil {
				return nil, fmt.Errorf("field %s.%s: unknown pattern %q", t.Name(), sf.Name, p)
			}
		}
		for _, bound := range []struct {
			tag string
			dst **float64
		}{{"min", &fl.min}, {"max", &fl.max}} {
			if s := sf.Tag.Get(bound.tag); s != "" {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil || math.IsNaN(v) {
					return nil, fmt.Errorf("field %s.%s: bad %s tag %q", t.Name(), sf.Name, bound.tag, s)
				}
				*bound.dst = &v
			}
		}
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			if ft.Elem().Kind() != reflect.Struct {
				return nil, fmt.Errorf("field %s.%s: only pointers to structs are supported", t.Name(), sf.Name)
			}
			fl.ptr = true
			ft = ft.Elem()
		}
		var err error
		if fl.shape, err = b.shapeOf(ft); err != nil {
			return nil, fmt.Errorf("field %s.%s: %w", t.Name(), sf.Name, err)
		}
		if _, dup := sh.byKey[key]; dup {
			return nil, fmt.Errorf("type %s: key %q used twice", t.Name(), key)
		}
		sh.fields = append(sh.fields, fl)
		sh.byKey[key] = fl
		sh.keys = append(sh.keys, key)
		if fl.pattern != nil && sh.ident == nil {
			sh.ident = fl
		}
	}
	for _, k := range b.reserved[t] {
		if _, ok := sh.byKey[k]; ok {
			return nil, fmt.Errorf("type %s: key %q is both a field and reserved; remove it from reservedKeys", t.Name(), k)
		}
		sh.reserved[k] = true
	}
	return sh, nil
}

// describe says what a shape expects, for "expected ..." messages.
func (sh *shape) describe() string {
	switch sh.kind {
	case kindObject:
		return "a mapping (" + sh.name + ")"
	case kindList:
		switch sh.elem.kind {
		case kindObject:
			return "a list of " + sh.elem.name + "s"
		case kindString:
			return "a list of strings"
		}
		return "a list"
	case kindStringMap:
		return "a mapping of names to strings"
	case kindString:
		return "a string"
	case kindInt:
		return "an integer"
	case kindFloat:
		return "a number"
	case kindBool:
		return "true or false"
	case kindDuration:
		return "a Go duration such as 90s, 5m or 1h30m"
	case kindCommand:
		return "a command: a string for /bin/sh -c, or a list of strings (argv)"
	case kindJSON:
		return "any value"
	}
	return "a value"
}

// namePattern returns a named syntax of the format ("name", "id", "secret").
func (f *format) namePattern(name string) *namePattern {
	p, ok := f.patterns[name]
	if !ok {
		panic("spec: no name pattern " + name)
	}
	return p
}

// objectShape returns the shape of an object type of the format.
func (f *format) objectShape(t reflect.Type) *shape {
	for _, sh := range f.objects {
		if sh.goType == t {
			return sh
		}
	}
	panic("spec: " + t.String() + " is not an object of the format")
}
