package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Parse parses and validates one pipeline file. file names the file in error
// messages and in Pipeline.Source; data is its content.
//
// On failure the error is an ErrorList holding every problem found (not only
// the first), sorted by position, each with a 1-based line and column and a
// message that says what was expected. Parse does no I/O.
func Parse(file string, data []byte) (*Pipeline, error) {
	p, _, errs := parse(file, data, nil)
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// pos is a 1-based line and column; zero when unknown.
type pos struct{ line, col int }

// loc is where the YAML node of a Go value was. bad marks values whose node
// had the wrong type, so later checks do not pile more errors on them.
type loc struct {
	pos
	bad bool
}

// locations maps the address of a decoded Go value (a pointer such as
// &task.ID, &task.Needs[2] or &task) to where it came from. Keying by address
// keeps positions out of the public types and lets the same checks run on
// pipelines built in code, where the map is nil.
type locations map[any]loc

// mapKeyAt is the key of locations for a key of a map[string]string.
type mapKeyAt struct {
	m uintptr
	k string
}

// mapValueAt is the key of locations for the value of a key of a
// map[string]string, where a message is about the value (a secret's name).
type mapValueAt mapKeyAt

func (l locations) at(addr any) (loc, bool) {
	if l == nil {
		return loc{}, false
	}
	x, ok := l[addr]
	return x, ok
}

// parse does the work of Parse and also returns the locations, which LoadPaths
// needs to point at a duplicate pipeline name. checks run after the format's
// own checks pass. On errors the pipeline is what could be decoded (nil when
// the file is not YAML), so a loader can still read the name it declares.
func parse(file string, data []byte, checks []Check) (*Pipeline, locations, ErrorList) {
	f, err := theFormat()
	if err != nil {
		return nil, nil, ErrorList{{File: file, Msg: err.Error()}}
	}
	errAt := func(line, col int, msg string) ErrorList {
		return ErrorList{{File: file, Line: line, Col: col, Msg: msg}}
	}
	if errs := checkUTF8(file, data); errs != nil {
		return nil, nil, errs
	}
	astFile, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		return nil, nil, syntaxError(file, err)
	}
	var docs []ast.Node
	for _, doc := range astFile.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc.Body)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, nil, errAt(1, 1, "the file is empty; expected a mapping with at least the keys name and tasks")
	case len(docs) > 1:
		p := nodePos(docs[1])
		return nil, nil, errAt(p.line, p.col, fmt.Sprintf("found %d YAML documents; a pipeline file holds exactly one (remove the extra '---')", len(docs)))
	}
	d := &decoder{
		file:   file,
		f:      f,
		locs:   make(locations, len(data)/16+8),
		budget: 4*len(data) + 1<<20,
	}
	if bytes.IndexByte(data, '&') >= 0 {
		d.collectAnchors(docs[0])
	}
	p := new(Pipeline)
	d.value(docs[0], f.root, reflect.ValueOf(p).Elem(), "", true)
	if !d.fatal {
		d.errs = append(d.errs, check(p, d.locs, file)...)
	}
	if len(d.errs) == 0 {
		d.errs = append(d.errs, d.extra(p, checks)...)
	}
	if len(d.errs) > 0 {
		return p, d.locs, d.errs.sorted()
	}
	normalize(p, d.locs)
	sum := sha256.Sum256(data)
	p.Source = Source{File: file, Hash: hex.EncodeToString(sum[:]), Data: bytes.Clone(data)}
	return p, d.locs, nil
}

// extra runs the checks a caller added, with positions from the file.
func (d *decoder) extra(p *Pipeline, checks []Check) ErrorList {
	var errs ErrorList
	report := func(at any, msg string) {
		l, _ := d.locs.at(at)
		errs = append(errs, &Error{File: d.file, Line: l.line, Col: l.col, Msg: msg})
	}
	for _, c := range checks {
		c(p, report)
	}
	return errs
}

// syntaxError turns a go-yaml error into an ErrorList with its position.
func syntaxError(file string, err error) ErrorList {
	var yerr yaml.Error
	if errors.As(err, &yerr) {
		e := &Error{File: file, Msg: "YAML syntax error: " + yerr.GetMessage()}
		if tk := yerr.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Col = tk.Position.Line, max(tk.Position.Column, 1)
		}
		return ErrorList{e}
	}
	return ErrorList{{File: file, Msg: "YAML syntax error: " + err.Error()}}
}

type decoder struct {
	file    string
	f       *format
	errs    ErrorList
	fatal   bool // the document is too broken to check further
	locs    locations
	anchors map[string]ast.Node
	steps   int // nodes decoded so far, against budget
	budget  int // bounds the work aliases can multiply (billion laughs)
	// secretEnv, while an env map is decoded, is the map field its
	// {secret: NAME} values go to; invalid otherwise.
	secretEnv reflect.Value
}

func (d *decoder) errorf(p pos, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)})
}

// nodePos is where a node starts. A mapping's own token is the ':' of its
// first pair, so the first key is used instead.
func nodePos(n ast.Node) pos {
	switch x := n.(type) {
	case *ast.MappingNode:
		if len(x.Values) > 0 && x.Values[0].Key != nil {
			return nodePos(x.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if x.Key != nil {
			return nodePos(x.Key)
		}
	case *ast.DocumentNode:
		if x.Body != nil {
			return nodePos(x.Body)
		}
	}
	if n == nil {
		return pos{}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{tk.Position.Line, max(tk.Position.Column, 1)}
}

// collectAnchors records every anchor of the document, iteratively, so that
// aliases can be resolved wherever the decoder meets them.
func (d *decoder) collectAnchors(root ast.Node) {
	d.anchors = map[string]ast.Node{}
	stack := []ast.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch x := n.(type) {
		case *ast.AnchorNode:
			if x.Name != nil {
				d.anchors[x.Name.GetToken().Value] = x.Value
			}
			stack = append(stack, x.Value)
		case *ast.MappingNode:
			for _, v := range x.Values {
				stack = append(stack, v)
			}
		case *ast.MappingValueNode:
			stack = append(stack, x.Key, x.Value)
		case *ast.MappingKeyNode:
			stack = append(stack, x.Value)
		case *ast.SequenceNode:
			stack = append(stack, x.Values...)
		case *ast.TagNode:
			stack = append(stack, x.Value)
		}
	}
}

// resolve follows anchors, aliases and tags to the node holding the value. It
// returns nil (after reporting) for an alias to an unknown anchor.
func (d *decoder) resolve(n ast.Node) (ast.Node, string) {
	tag := ""
	for range 64 {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			tag = x.Start.Value
			n = x.Value
		case *ast.AliasNode:
			name := ""
			if x.Value != nil {
				name = x.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.errorf(nodePos(x), "alias *%s refers to no anchor &%s defined in this file", name, name)
				return nil, ""
			}
			n = target
		default:
			return n, tag
		}
		if n == nil {
			return nil, tag
		}
	}
	d.errorf(nodePos(n), "aliases nest too deeply")
	return nil, ""
}

// step counts one decoded node and reports false once the budget is spent.
func (d *decoder) step(n ast.Node) bool {
	d.steps++
	if d.steps <= d.budget {
		return true
	}
	if !d.fatal {
		d.fatal = true
		d.errorf(nodePos(n), "aliases expand the document to more than %d values; refusing to go on", d.budget)
	}
	return false
}

// value decodes node n into v (addressable) according to sh. label names the
// value in messages ("retry.attempts"); top says whether v is the root or a
// list element, whose fields are labelled by their key alone.
func (d *decoder) value(n ast.Node, sh *shape, v reflect.Value, label string, top bool) {
	if !d.step(n) {
		return
	}
	// An aliased value is reported where the alias is; anything else where
	// its resolved node is.
	var at pos
	if _, isAlias := n.(*ast.AliasNode); isAlias {
		at = nodePos(n)
	}
	n, tag := d.resolve(n)
	if n == nil {
		d.markBad(v, at)
		return
	}
	if at == (pos{}) {
		at = nodePos(n)
	}
	switch sh.kind {
	case kindObject:
		d.object(n, sh, v, at, label, top)
	case kindList:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			d.typeError(n, sh, v, at, label)
			return
		}
		d.locs[v.Addr().Interface()] = loc{pos: at}
		s := reflect.MakeSlice(sh.goType, len(seq.Values), len(seq.Values))
		v.Set(s)
		for i, item := range seq.Values {
			d.value(item, sh.elem, s.Index(i), label, true)
		}
	case kindStringMap:
		d.stringMap(n, sh, v, at, label)
	case kindString:
		s, ok := scalarString(n, tag)
		if !ok {
			d.typeError(n, sh, v, at, label)
			return
		}
		v.SetString(s)
		d.locs[v.Addr().Interface()] = loc{pos: at}
	case kindInt:
		x, ok := n.(*ast.IntegerNode)
		if !ok {
			d.typeError(n, sh, v, at, label)
			return
		}
		i, ok := intValue(x)
		if !ok || v.OverflowInt(i) {
			d.errorf(at, "%s: the integer %s is too large", label, x.GetToken().Value)
			d.markBad(v, at)
			return
		}
		v.SetInt(i)
		d.locs[v.Addr().Interface()] = loc{pos: at}
	case kindFloat:
		var f float64
		switch x := n.(type) {
		case *ast.IntegerNode:
			f = toFloat(x.Value)
		case *ast.FloatNode:
			f = x.Value
		case *ast.InfinityNode, *ast.NanNode:
			d.errorf(at, "%s: expected a finite number, got %s", label, x.GetToken().Value)
			d.markBad(v, at)
			return
		default:
			d.typeError(n, sh, v, at, label)
			return
		}
		v.SetFloat(f)
		d.locs[v.Addr().Interface()] = loc{pos: at}
	case kindBool:
		x, ok := n.(*ast.BoolNode)
		if !ok {
			d.typeError(n, sh, v, at, label)
			return
		}
		v.SetBool(x.Value)
		d.locs[v.Addr().Interface()] = loc{pos: at}
	case kindDuration:
		s, ok := scalarString(n, tag)
		if !ok {
			d.typeError(n, sh, v, at, label)
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.errorf(at, "%s: expected a Go duration such as 90s, 5m or 1h30m (units ns, us, ms, s, m, h), got %q", label, s)
			d.markBad(v, at)
			return
		}
		v.SetInt(int64(dur))
		d.locs[v.Addr().Interface()] = loc{pos: at}
	case kindCommand:
		d.command(n, tag, sh, v, at, label)
	case kindJSON:
		raw, err := jsonOf(n)
		if err != nil {
			d.errorf(at, "%s: %v", label, err)
			d.markBad(v, at)
			return
		}
		v.SetBytes(raw)
		d.locs[v.Addr().Interface()] = loc{pos: at}
	case kindAny:
		val, ok := d.anyValue(n, tag, label, at)
		if !ok {
			d.markBad(v, at)
			return
		}
		if val != nil {
			v.Set(reflect.ValueOf(val))
		}
		d.locs[v.Addr().Interface()] = loc{pos: at}
	}
}

// isNull reports whether a value node is an explicit or empty null, without
// following aliases (an alias to null is rare enough to be reported).
func isNull(n ast.Node) bool {
	for {
		switch x := n.(type) {
		case *ast.NullNode:
			return true
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		default:
			return n == nil
		}
	}
}

// intValue returns an integer scalar as an int64; go-yaml holds
// non-negative integers as uint64.
func intValue(n *ast.IntegerNode) (int64, bool) {
	switch x := n.Value.(type) {
	case int64:
		return x, true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return math.NaN()
}

func (d *decoder) markBad(v reflect.Value, at pos) {
	if v.CanAddr() {
		d.locs[v.Addr().Interface()] = loc{pos: at, bad: true}
	}
}

func (d *decoder) typeError(n ast.Node, sh *shape, v reflect.Value, at pos, label string) {
	d.markBad(v, at)
	what := label
	if what == "" {
		what = "pipeline file"
	}
	if x, ok := n.(*ast.StringNode); ok && sh.kind == kindInt && x.Token.Type == token.StringType && isDigits(x.Value) {
		// go-yaml reads integers beyond 64 bits as plain strings.
		d.errorf(at, "%s: the integer %s is too large", what, x.Value)
		return
	}
	hint := ""
	switch n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		switch sh.kind {
		case kindString, kindCommand:
			hint = " (put it in quotes to use it as a string)"
		case kindDuration:
			if _, isInt := n.(*ast.IntegerNode); isInt {
				hint = fmt.Sprintf(" (a duration needs a unit, e.g. %ss)", n.GetToken().Value)
			}
		}
	}
	d.errorf(at, "%s: expected %s, got %s%s", what, sh.describe(), describeNode(n), hint)
}

func isDigits(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// describeNode says what a node is, for "got ..." in messages.
func describeNode(n ast.Node) string {
	switch x := n.(type) {
	case *ast.StringNode:
		return "the string " + quoteShort(x.Value)
	case *ast.LiteralNode:
		return "a block of text"
	case *ast.IntegerNode:
		return "the integer " + x.GetToken().Value
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "the number " + x.GetToken().Value
	case *ast.BoolNode:
		return "the boolean " + x.GetToken().Value
	case *ast.NullNode:
		return "nothing (null)"
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// quoteShort quotes s for a message, shortening long values.
func quoteShort(s string) string {
	const limit = 60
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "…"
	}
	return strconv.Quote(s)
}

// scalarString returns the text of a string scalar; with the !!str tag any
// scalar counts as a string.
func scalarString(n ast.Node, tag string) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		if x.Value == nil {
			return "", true
		}
		return x.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tag == "!!str" {
			return x.GetToken().Value, true
		}
	}
	return "", false
}

// entry is one key: value pair of a mapping, after merge keys (<<) are applied.
type entry struct {
	key    string
	keyPos pos
	value  ast.Node
}

// entries lists the pairs of a mapping. Keys given explicitly win over keys
// brought in by a merge key; of several merged mappings, the first wins.
// Explicit keys given twice are kept, for the caller to report.
func (d *decoder) entries(m *ast.MappingNode, label string) []entry {
	return d.entriesDepth(m, label, 0)
}

// maxMergeDepth bounds merge keys within merged mappings; a mapping that
// merges itself (<<: *self inside &self) would otherwise never end.
const maxMergeDepth = 8

func (d *decoder) entriesDepth(m *ast.MappingNode, label string, depth int) []entry {
	out := make([]entry, 0, len(m.Values))
	var merges []ast.Node
	for _, mv := range m.Values {
		if mv == nil || mv.Key == nil {
			continue
		}
		var kn ast.Node = mv.Key
		if mk, ok := kn.(*ast.MappingKeyNode); ok {
			kn = mk.Value
		}
		if _, ok := kn.(*ast.MergeKeyNode); ok {
			merges = append(merges, mv.Value)
			continue
		}
		key, ok := keyString(kn)
		if !ok {
			d.errorf(nodePos(kn), "%s: keys must be plain strings, got %s", labelOr(label, "mapping"), describeNode(kn))
			continue
		}
		out = append(out, entry{key: key, keyPos: nodePos(kn), value: mv.Value})
	}
	if len(merges) == 0 {
		return out
	}
	have := make(map[string]bool, len(out))
	for _, e := range out {
		have[e.key] = true
	}
	if depth >= maxMergeDepth {
		d.errorf(nodePos(merges[0]), "%s: merge keys (<<) nest more than %d deep; does a mapping merge itself?", labelOr(label, "mapping"), maxMergeDepth)
		return out
	}
	var add func(n ast.Node, nested bool)
	add = func(n ast.Node, nested bool) {
		if !d.step(n) {
			return
		}
		r, _ := d.resolve(n)
		switch x := r.(type) {
		case *ast.MappingNode:
			for _, e := range d.entriesDepth(x, label, depth+1) {
				if !have[e.key] {
					have[e.key] = true
					out = append(out, e)
				}
			}
		case *ast.SequenceNode:
			if nested {
				d.errorf(nodePos(n), "%s: the merge key << expects a mapping or a list of mappings, got a nested list", labelOr(label, "mapping"))
				return
			}
			for _, item := range x.Values {
				add(item, true)
			}
		case nil:
		default:
			d.errorf(nodePos(n), "%s: the merge key << expects a mapping or a list of mappings, got %s", labelOr(label, "mapping"), describeNode(r))
		}
	}
	for _, n := range merges {
		add(n, false)
	}
	return out
}

func labelOr(label, fallback string) string {
	if label == "" {
		return fallback
	}
	return label
}

func keyString(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode:
		return x.GetToken().Value, true
	}
	return "", false
}

func (d *decoder) object(n ast.Node, sh *shape, v reflect.Value, at pos, label string, top bool) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if mv, isPair := n.(*ast.MappingValueNode); isPair {
			// A mapping with a single pair can come back as the bare pair.
			m = &ast.MappingNode{Values: []*ast.MappingValueNode{mv}}
		} else {
			d.typeError(n, sh, v, at, label)
			return
		}
	}
	d.locs[v.Addr().Interface()] = loc{pos: at}
	var seenBuf [16]pos
	seen := seenBuf[:0]
	if len(sh.fields) <= len(seenBuf) {
		seen = seenBuf[:len(sh.fields)]
	} else {
		seen = make([]pos, len(sh.fields))
	}
	for _, e := range d.entries(m, label) {
		fl := sh.byKey[e.key]
		if fl == nil {
			d.unknownKey(sh, e, label)
			continue
		}
		if first := seen[fl.ord]; first.line != 0 {
			d.errorf(e.keyPos, "key %q is given twice in %s (first at line %d)", e.key, sh.name, first.line)
			continue
		}
		seen[fl.ord] = e.keyPos
		if !fl.required && isNull(e.value) {
			if fl.noNull {
				d.errorf(e.keyPos, "%s: expected %s, got no value", e.key, fl.shape.describe())
				continue
			}
			if fl.nullEmpty && fl.ptr {
				v.Field(fl.index).Set(reflect.New(fl.shape.goType))
				continue
			}
			// An optional key with no value ("env:" with every line commented
			// out) is the same as leaving the key out.
			continue
		}
		fv := v.Field(fl.index)
		if fl.ptr {
			nv := reflect.New(fl.shape.goType)
			fv.Set(nv)
			fv = nv.Elem()
		}
		childLabel := e.key
		if !top {
			childLabel = label + "." + e.key
		}
		if fl.secretEnv >= 0 {
			d.secretEnv = v.Field(fl.secretEnv)
		}
		d.value(e.value, fl.shape, fv, childLabel, false)
		d.secretEnv = reflect.Value{}
	}
}

func (d *decoder) unknownKey(sh *shape, e entry, label string) {
	where := sh.name
	if sh.reserved[e.key] {
		d.errorf(e.keyPos, "%q is not supported in format v1 yet (in %s); it is reserved for a later version of tasuki", e.key, where)
		return
	}
	msg := fmt.Sprintf("unknown key %q in %s", e.key, where)
	if s := suggestKey(e.key, sh); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else if other := d.ownerOf(e.key, sh); other != nil {
		msg += fmt.Sprintf("; %q is a key of %s, not of %s", e.key, article(other.name), article(where))
	} else if len(sh.keys) == 0 {
		msg += fmt.Sprintf("; %s takes no keys", where)
	} else {
		msg += "; expected one of " + strings.Join(sh.keys, ", ")
	}
	d.errorf(e.keyPos, "%s", msg)
}

// ownerOf finds another object of the format that has (or reserves) key, for
// keys written at the wrong level.
func (d *decoder) ownerOf(key string, not *shape) *shape {
	for _, sh := range d.f.objects {
		if sh != not && (sh.byKey[key] != nil || sh.reserved[key]) {
			return sh
		}
	}
	return nil
}

func article(name string) string {
	if name == "pipeline" {
		return "the pipeline"
	}
	return "a " + name
}

func (d *decoder) stringMap(n ast.Node, sh *shape, v reflect.Value, at pos, label string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if mv, isPair := n.(*ast.MappingValueNode); isPair {
			m = &ast.MappingNode{Values: []*ast.MappingValueNode{mv}}
		} else {
			d.typeError(n, sh, v, at, label)
			return
		}
	}
	d.locs[v.Addr().Interface()] = loc{pos: at}
	mp := reflect.MakeMapWithSize(sh.goType, len(m.Values))
	v.Set(mp)
	ptr := mp.Pointer()
	secrets := d.secretEnv
	d.secretEnv = reflect.Value{} // not for maps nested in this one
	for _, e := range d.entries(m, label) {
		if !d.step(e.value) {
			return
		}
		kl := mapKeyAt{ptr, e.key}
		if first, dup := d.locs[kl]; dup {
			d.errorf(e.keyPos, "%s: %q is given twice (first at line %d)", label, e.key, first.line)
			continue
		}
		d.locs[kl] = loc{pos: e.keyPos}
		valNode, tag := d.resolve(e.value)
		if valNode == nil {
			continue
		}
		if secrets.IsValid() && d.secretRef(valNode, secrets, e, label) {
			continue
		}
		s, ok := scalarString(valNode, tag)
		if !ok {
			hint := ""
			switch valNode.(type) {
			case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
				hint = fmt.Sprintf(" (put it in quotes: %q)", valNode.GetToken().Value)
			}
			d.errorf(nodePos(valNode), "%s %q: expected a string, got %s%s", label, e.key, describeNode(valNode), hint)
			continue
		}
		mp.SetMapIndex(reflect.ValueOf(e.key).Convert(sh.goType.Key()), reflect.ValueOf(s).Convert(sh.goType.Elem()))
	}
}

// secretRef decodes the value of an env variable if it is a mapping,
// which must be {secret: NAME}, into secrets (the SecretEnv map beside the
// env map), and reports whether it was a mapping.
func (d *decoder) secretRef(n ast.Node, secrets reflect.Value, e entry, label string) bool {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		mv, isPair := n.(*ast.MappingValueNode)
		if !isPair {
			return false
		}
		m = &ast.MappingNode{Values: []*ast.MappingValueNode{mv}}
	}
	entries := d.entries(m, label+" "+quoteShort(e.key))
	if len(entries) != 1 || entries[0].key != "secret" {
		d.errorf(nodePos(n), "%s %q: expected a string, or {secret: NAME} for the value of a secret", label, e.key)
		return true
	}
	valNode, tag := d.resolve(entries[0].value)
	name, ok := scalarString(valNode, tag)
	if valNode == nil || !ok {
		d.errorf(nodePos(entries[0].value), "%s %q: secret: expected the name of a secret, got %s", label, e.key, describeNode(entries[0].value))
		return true
	}
	if secrets.IsNil() {
		secrets.Set(reflect.MakeMap(secrets.Type()))
	}
	sp := secrets.Pointer()
	d.locs[mapKeyAt{sp, e.key}] = loc{pos: e.keyPos}
	d.locs[mapValueAt{sp, e.key}] = loc{pos: nodePos(valNode)}
	secrets.SetMapIndex(reflect.ValueOf(e.key), reflect.ValueOf(name))
	return true
}

func (d *decoder) command(n ast.Node, tag string, sh *shape, v reflect.Value, at pos, label string) {
	if s, ok := scalarString(n, tag); ok {
		v.Set(reflect.ValueOf(Command{Shell: s}))
		d.locs[v.Addr().Interface()] = loc{pos: at}
		return
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.typeError(n, sh, v, at, label)
		return
	}
	argv := make([]string, 0, len(seq.Values))
	good := true
	for i, item := range seq.Values {
		r, itag := d.resolve(item)
		if r == nil {
			good = false
			continue
		}
		s, ok := scalarString(r, itag)
		if !ok {
			hint := ""
			switch r.(type) {
			case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
				hint = " (put it in quotes)"
			}
			d.errorf(nodePos(r), "%s: argument %d: expected a string, got %s%s", label, i+1, describeNode(r), hint)
			good = false
			continue
		}
		argv = append(argv, s)
	}
	if !good {
		d.markBad(v, at)
		return
	}
	v.Set(reflect.ValueOf(Command{Argv: argv}))
	d.locs[v.Addr().Interface()] = loc{pos: at}
}

// anyValue decodes a scalar or a list of scalars (a parameter default) into
// plain Go values: string, int64, float64, bool, []any or nil for null. The
// checker later matches it against the parameter's type.
func (d *decoder) anyValue(n ast.Node, tag, label string, at pos) (any, bool) {
	if s, ok := scalarString(n, tag); ok {
		return s, true
	}
	switch x := n.(type) {
	case *ast.NullNode:
		return nil, true
	case *ast.BoolNode:
		return x.Value, true
	case *ast.IntegerNode:
		if i, ok := intValue(x); ok {
			return i, true
		}
		d.errorf(at, "%s: the integer %s is too large", label, x.GetToken().Value)
		return nil, false
	case *ast.FloatNode:
		return x.Value, true
	case *ast.InfinityNode, *ast.NanNode:
		d.errorf(at, "%s: expected a finite number, got %s", label, x.GetToken().Value)
		return nil, false
	case *ast.SequenceNode:
		items := make([]any, 0, len(x.Values))
		for _, item := range x.Values {
			if !d.step(item) {
				return nil, false
			}
			r, itag := d.resolve(item)
			if r == nil {
				return nil, false
			}
			if _, isSeq := r.(*ast.SequenceNode); isSeq {
				d.errorf(nodePos(r), "%s: expected a list of strings, got a nested list", label)
				return nil, false
			}
			v, ok := d.anyValue(r, itag, label, nodePos(r))
			if !ok {
				return nil, false
			}
			items = append(items, v)
		}
		return items, true
	}
	d.errorf(at, "%s: expected a single value or a list of strings, got %s", label, describeNode(n))
	return nil, false
}

// normalize fills in what a parsed file leaves implicit, once it is known to
// be valid: the format version, the default parameter type, typed defaults
// and the retry defaults for keys the file leaves out.
func normalize(p *Pipeline, locs locations) {
	if p.Version == 0 {
		p.Version = 1
	}
	for i := range p.Params {
		prm := &p.Params[i]
		if prm.Type == "" {
			prm.Type = ParamString
		}
		if prm.Default != nil {
			if v, err := prm.defaultValue(); err == nil {
				prm.Default = v
			}
		}
	}
	for i := range p.Tasks {
		if h := p.Tasks[i].HTTP; h != nil {
			if _, ok := locs.at(&h.Retries); !ok {
				h.Retries = DefaultHTTPRetries
			}
		}
		r := p.Tasks[i].Retry
		if r == nil {
			continue
		}
		if _, ok := locs.at(&r.Backoff); !ok {
			r.Backoff = Duration(DefaultBackoff)
		}
		if _, ok := locs.at(&r.MaxBackoff); !ok {
			r.MaxBackoff = Duration(DefaultMaxBackoff)
		}
		if _, ok := locs.at(&r.Multiplier); !ok {
			r.Multiplier = DefaultMultiplier
		}
		if _, ok := locs.at(&r.Jitter); !ok {
			r.Jitter = DefaultJitter
		}
	}
}

// jsonOf converts any YAML value (a map item) to compact JSON. Mapping
// keys must be strings; numbers that are not finite are refused.
func jsonOf(n ast.Node) (JSON, error) {
	var v any
	if err := yaml.NodeToValue(n, &v); err != nil {
		return nil, fmt.Errorf("expected a value: %v", err)
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot be written as JSON: %v", err)
	}
	return raw, nil
}

// jsonable turns what the YAML decoder gives into values encoding/json
// writes: mappings with string keys only.
func jsonable(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[k] = j
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("mapping keys must be strings, got %v", k)
			}
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[ks] = j
		}
		return out, nil
	case []any:
		for i, e := range x {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[i] = j
		}
		return x, nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("expected a finite number, got %v", x)
		}
	}
	return v, nil
}
