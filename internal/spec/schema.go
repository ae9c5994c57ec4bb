package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Identity of the JSON Schema of format v1.
const (
	SchemaDraft = "https://json-schema.org/draft/2020-12/schema"
	SchemaID    = "https://github.com/tasuki-dev/tasuki/schema/pipeline-v1.json"
)

// Schema returns the JSON Schema (draft 2020-12) of the pipeline format,
// generated from the Go types and their tags, the same description the parser
// checks files against. Editors use it for completion and inline errors:
//
//	tasuki schema > tasuki.schema.json
//	# yaml-language-server: $schema=./tasuki.schema.json
//
// Checks that need the whole file (unique ids, known needs, no cycles,
// defaults matching their parameter's type) are only done by Parse.
func Schema() ([]byte, error) {
	f, err := theFormat()
	if err != nil {
		return nil, err
	}
	g := schemaGen{f: f}
	doc := jsonObject{
		{"$schema", SchemaDraft},
		{"$id", SchemaID},
		{"title", "tasuki pipeline (format v1)"},
		{"description", "A tasuki pipeline file: named tasks that run commands, with the needs between them, retry policies, timeouts and typed parameters. See docs/pipeline-reference.md."},
	}
	doc = append(doc, g.object(f.root)...)
	var defs jsonObject
	for _, sh := range f.objects[1:] {
		defs = append(defs, jsonMember{sh.name, g.object(sh)})
	}
	defs = append(defs,
		jsonMember{"duration", jsonObject{
			{"type", "string"},
			{"description", "A Go duration: a sequence of numbers with units ns, us, ms, s, m, h, such as 90s, 5m or 1h30m. Not negative."},
			{"pattern", durationPattern},
			{"examples", []string{"90s", "5m", "1h30m"}},
		}},
		jsonMember{"command", jsonObject{
			{"description", "A string runs with /bin/sh -c; a list of strings is an argv run directly, without a shell."},
			{"oneOf", []jsonObject{
				{{"type", "string"}, {"minLength", 1}},
				{{"type", "array"}, {"items", jsonObject{{"type", "string"}}}, {"minItems", 1}},
			}},
		}},
		jsonMember{"env", jsonObject{
			{"type", "object"},
			{"description", "Environment variables: names are letters, digits and '_', not starting with a digit; TASUKI_* is reserved. A value is a string, or {secret: NAME} for the value of a secret."},
			{"propertyNames", jsonObject{{"pattern", envKeyPattern}, {"not", jsonObject{{"pattern", "^[Tt][Aa][Ss][Uu][Kk][Ii]_"}}}}},
			{"additionalProperties", jsonObject{{"oneOf", []jsonObject{
				{{"type", "string"}},
				{
					{"type", "object"},
					{"description", "The value of a secret, looked up when an attempt starts and masked in logs."},
					{"properties", jsonObject{{"secret", jsonObject{{"type", "string"}, {"pattern", SecretNamePattern}}}}},
					{"required", []string{"secret"}},
					{"additionalProperties", false},
				},
			}}}},
		}},
	)
	doc = append(doc, jsonMember{"$defs", defs})
	compact, err := marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("rendering the JSON Schema: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		return nil, fmt.Errorf("rendering the JSON Schema: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// marshal renders v as compact JSON without escaping <, > and &, which are
// common in descriptions (TASUKI_PARAM_<NAME>) and harmless outside HTML.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

type schemaGen struct{ f *format }

// object renders an object shape: its properties, required keys and no
// others.
func (g schemaGen) object(sh *shape) jsonObject {
	var props jsonObject
	var required []string
	for _, fl := range sh.fields {
		props = append(props, jsonMember{fl.key, g.field(fl)})
		if fl.required {
			required = append(required, fl.key)
		}
	}
	o := jsonObject{{"type", "object"}, {"properties", props}}
	if len(required) > 0 {
		o = append(o, jsonMember{"required", required})
	}
	if alt, ok := alternatives[sh.name]; ok {
		choices := make([]jsonObject, len(alt.keys))
		for i, k := range alt.keys {
			choices[i] = jsonObject{{"required", []string{k}}}
		}
		o = append(o, jsonMember{alt.rule, choices})
	}
	return append(o, jsonMember{"additionalProperties", false})
}

// alternatives are the objects that need one (oneOf) or at least one
// (anyOf) of a set of keys, which the checker enforces with its own
// messages (check.go: work, wait, schedule).
var alternatives = map[string]struct {
	rule string
	keys []string
}{
	"task":     {"oneOf", []string{"run", "wait", "sql", "http", "noop"}},
	"wait":     {"oneOf", []string{"file", "http", "sql", "pipeline", "dataset"}},
	"schedule": {"anyOf", []string{"cron", "datasets"}},
}

// ref is the schema of a value of a shape, by reference for named shapes.
func (g schemaGen) ref(sh *shape) jsonObject {
	switch sh.kind {
	case kindObject:
		return jsonObject{{"$ref", "#/$defs/" + sh.name}}
	case kindDuration:
		return jsonObject{{"$ref", "#/$defs/duration"}}
	case kindCommand:
		return jsonObject{{"$ref", "#/$defs/command"}}
	case kindStringMap:
		return jsonObject{{"$ref", "#/$defs/env"}}
	case kindList:
		return jsonObject{{"type", "array"}, {"items", g.ref(sh.elem)}}
	case kindString:
		return jsonObject{{"type", "string"}}
	case kindInt:
		return jsonObject{{"type", "integer"}}
	case kindFloat:
		return jsonObject{{"type", "number"}}
	case kindBool:
		return jsonObject{{"type", "boolean"}}
	case kindJSON:
		return jsonObject{}
	case kindAny:
		return jsonObject{
			{"type", []string{"string", "number", "boolean", "array", "null"}},
			{"items", jsonObject{{"type", "string"}}},
		}
	}
	return jsonObject{}
}

// field renders one property with the constraints of its tags.
func (g schemaGen) field(fl *field) jsonObject {
	o := g.ref(fl.shape)
	if fl.doc != "" {
		o = append(o, jsonMember{"description", fl.doc})
	}
	if fl.enum != nil {
		switch fl.shape.kind {
		case kindList:
			// A list of choices: each item is one of them.
			for i, m := range o {
				if m.key == "items" {
					o[i].value = jsonObject{{"type", "string"}, {"enum", fl.enum}}
				}
			}
		case kindInt:
			nums := make([]json.Number, len(fl.enum))
			for i, e := range fl.enum {
				nums[i] = json.Number(e)
			}
			o = append(o, jsonMember{"enum", nums})
		default:
			o = append(o, jsonMember{"enum", fl.enum})
		}
	}
	switch {
	case fl.pattern != nil && fl.shape.kind == kindList:
		// A list of names: each item has the syntax (pattern would apply
		// to a string, not to the array).
		for i, m := range o {
			if m.key == "items" {
				o[i].value = jsonObject{{"type", "string"}, {"pattern", fl.pattern.src}}
			}
		}
	case fl.pattern != nil:
		o = append(o, jsonMember{"pattern", fl.pattern.src})
	}
	if fl.min != nil {
		o = append(o, jsonMember{"minimum", json.Number(strconv.FormatFloat(*fl.min, 'g', -1, 64))})
	}
	if fl.max != nil {
		o = append(o, jsonMember{"maximum", json.Number(strconv.FormatFloat(*fl.max, 'g', -1, 64))})
	}
	if fl.required {
		switch fl.shape.kind {
		case kindString:
			o = append(o, jsonMember{"minLength", 1})
		case kindList:
			o = append(o, jsonMember{"minItems", 1})
		}
		return o
	}
	return allowNull(o)
}

// allowNull lets an optional key be written without a value (null), which the
// parser treats as leaving the key out.
func allowNull(o jsonObject) jsonObject {
	for i, m := range o {
		switch m.key {
		case "type":
			if t, ok := m.value.(string); ok {
				o[i].value = []string{t, "null"}
			}
		case "enum":
			var vals []any
			switch e := m.value.(type) {
			case []string:
				for _, v := range e {
					vals = append(vals, v)
				}
			case []json.Number:
				for _, v := range e {
					vals = append(vals, v)
				}
			}
			o[i].value = append(vals, nil)
		case "$ref":
			o[i] = jsonMember{"anyOf", []jsonObject{{m}, {{"type", "null"}}}}
		}
	}
	return o
}

// jsonObject is a JSON object that keeps its members in order, so the schema
// reads in the order of the Go types.
type jsonObject []jsonMember

type jsonMember struct {
	key   string
	value any
}

// MarshalJSON renders the members in order.
func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := marshal(m.value)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", m.key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
