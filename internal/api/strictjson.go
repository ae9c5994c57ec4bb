package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// checkKeys refuses what encoding/json would quietly accept in a request
// body: an object key given twice (the last would win) and a key that names
// a field in another case ("ROLE" for "role"). Either lets a proxy or a
// policy check that reads the body see another value than the one tasuki
// acts on. v is the value the body is decoded into; its struct fields'
// JSON names are the exact keys allowed.
func checkKeys(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	err := walkKeys(dec, t, "")
	if errors.Is(err, io.EOF) {
		return nil // an empty or truncated body: Decode says what is wrong
	}
	return err
}

// rawMessage is the type of a JSON value kept as it came.
var rawMessage = reflect.TypeFor[json.RawMessage]()

// walkKeys reads one JSON value from dec, checking every object in it. t is
// the Go type it decodes into, nil where that is not known (an interface,
// a raw message): there only duplicates are refused.
func walkKeys(dec *json.Decoder, t reflect.Type, at string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessage || t != nil && t.Kind() == reflect.Interface {
		t = nil
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := walkKeys(dec, elem, at+"[]"); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t, map[string]reflect.Type{})
		} else if t != nil && t.Kind() == reflect.Map {
			elem = t.Elem()
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			folded := strings.ToLower(key)
			if seen[folded] {
				return invalid("malformed JSON body: key %q is given twice in %s", key, where(at))
			}
			seen[folded] = true
			next := elem
			if fields != nil {
				ft, ok := fields[key]
				if !ok {
					for name := range fields {
						if strings.EqualFold(name, key) {
							return invalid("malformed JSON body: unknown field %q in %s; did you mean %q?", key, where(at), name)
						}
					}
				}
				next = ft
			}
			if err := walkKeys(dec, next, at+"."+key); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// where names a position in a body for an error message.
func where(at string) string {
	if at == "" {
		return "the body"
	}
	return fmt.Sprintf("%q", strings.TrimPrefix(at, "."))
}

// jsonFields adds the JSON names of t's fields (those of embedded structs
// included, as encoding/json flattens them) and their types to m.
func jsonFields(t reflect.Type, m map[string]reflect.Type) map[string]reflect.Type {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, m)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = ft
	}
	return m
}
