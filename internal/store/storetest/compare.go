package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// diff compares got with want field by field and describes every difference
// by its path. It is reflect.DeepEqual with the store's equivalences:
//
//   - times are equal when they are the same instant, and a non-zero time read
//     from a store must be in UTC (the store contract);
//   - JSON is equal when it decodes to the same value (PostgreSQL's jsonb
//     reformats it);
//   - a nil and an empty slice are equal (drivers differ in which they return
//     for "no rows" or an empty BLOB).
func diff(got, want any) []string {
	var out []string
	diffValue(&out, "", reflect.ValueOf(got), reflect.ValueOf(want))
	return out
}

func diffValue(out *[]string, path string, got, want reflect.Value) {
	report := func(format string, args ...any) {
		p := path
		if p == "" {
			p = "value"
		}
		*out = append(*out, p+": "+fmt.Sprintf(format, args...))
	}
	if !got.IsValid() || !want.IsValid() {
		if got.IsValid() != want.IsValid() {
			report("got %v, want %v", got, want)
		}
		return
	}
	if got.Type() != want.Type() {
		report("type %s, want %s", got.Type(), want.Type())
		return
	}
	switch {
	case got.Type() == timeType:
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		if !g.Equal(w) {
			report("got %s, want %s", fmtTime(g), fmtTime(w))
		} else if !g.IsZero() && g.Location() != time.UTC {
			report("got %s in location %q, want UTC", fmtTime(g), g.Location())
		}
		return
	case got.Type() == rawType:
		if !jsonEqual(got.Bytes(), want.Bytes()) {
			report("got JSON %s, want %s", orNil(got.Bytes()), orNil(want.Bytes()))
		}
		return
	}
	switch got.Kind() {
	case reflect.Struct:
		for i := range got.NumField() {
			f := got.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			p := f.Name
			if path != "" && !f.Anonymous {
				p = path + "." + f.Name
			} else if path != "" {
				p = path
			}
			diffValue(out, p, got.Field(i), want.Field(i))
		}
	case reflect.Pointer:
		switch {
		case got.IsNil() && want.IsNil():
		case got.IsNil() || want.IsNil():
			report("got %s, want %s", ptrString(got), ptrString(want))
		default:
			diffValue(out, path, got.Elem(), want.Elem())
		}
	case reflect.Slice:
		if got.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				report("got %q, want %q", got.Bytes(), want.Bytes())
			}
			return
		}
		if got.Len() != want.Len() {
			report("got %d elements, want %d", got.Len(), want.Len())
		}
		for i := range min(got.Len(), want.Len()) {
			diffValue(out, fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i))
		}
	case reflect.Map:
		keys := got.MapKeys()
		for _, k := range want.MapKeys() {
			if !got.MapIndex(k).IsValid() {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			g, w := got.MapIndex(k), want.MapIndex(k)
			p := fmt.Sprintf("%s[%v]", path, k)
			switch {
			case !g.IsValid():
				*out = append(*out, fmt.Sprintf("%s: missing, want %v", p, w))
			case !w.IsValid():
				*out = append(*out, fmt.Sprintf("%s: got %v, want no entry", p, g))
			default:
				diffValue(out, p, g, w)
			}
		}
	default:
		if !got.Equal(want) {
			report("got %#v, want %#v", got.Interface(), want.Interface())
		}
	}
}

func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func orNil(b []byte) string {
	if b == nil {
		return "nil"
	}
	return string(b)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero time"
	}
	return t.Format(time.RFC3339Nano)
}

func ptrString(v reflect.Value) string {
	if v.IsNil() {
		return "nil"
	}
	return fmt.Sprintf("&%v", v.Elem().Interface())
}
