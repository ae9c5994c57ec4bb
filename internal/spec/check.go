package spec

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/cond"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
	"github.com/tasuki-dev/tasuki/internal/schedule"
)

// Validate checks a pipeline built in code the way Parse checks a file: names,
// required fields, enums and bounds from the struct tags, parameter defaults,
// env names, unique task ids, known needs and an acyclic graph. Errors carry
// no positions. Pipelines returned by Parse are already valid; Validate is for
// tests and tools that construct pipelines directly.
func (p *Pipeline) Validate() error {
	if p == nil {
		return ErrorList{{Msg: "no pipeline"}}
	}
	if errs := check(p, nil, p.Source.File); len(errs) > 0 {
		return errs.sorted()
	}
	return nil
}

// checker applies the checks that need the whole decoded value. locs is nil
// for pipelines built in code; positions are then zero.
type checker struct {
	file string
	f    *format
	locs locations
	errs ErrorList
}

func check(p *Pipeline, locs locations, file string) ErrorList {
	f, err := theFormat()
	if err != nil {
		return ErrorList{{File: file, Msg: err.Error()}}
	}
	c := &checker{file: file, f: f, locs: locs}
	c.generic(f.root, reflect.ValueOf(p).Elem(), "", true)
	c.params(p)
	c.schedule(p)
	c.deadline(p)
	c.env(p.Env, "env")
	c.secrets(p.Env, p.SecretEnv, p.Secrets)
	c.tasks(p)
	c.repair(p)
	c.objectives(p)
	c.notify(p)
	return c.errs
}

func (c *checker) errorf(p pos, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)})
}

// at returns the position of a value and whether it is usable: false when
// its YAML node had the wrong type and was already reported.
func (c *checker) at(addr any) (pos, bool) {
	l, _ := c.locs.at(addr)
	return l.pos, !l.bad
}

// given reports whether a value was written in the file (for pipelines built
// in code: whether it is non-zero).
func (c *checker) given(addr any, v reflect.Value) bool {
	if c.locs == nil {
		return !v.IsZero()
	}
	_, ok := c.locs[addr]
	return ok
}

// line renders where a value was, for "first defined at ..." remarks.
func (c *checker) line(addr any, index int, what string) string {
	if l, ok := c.locs.at(addr); ok && l.line > 0 {
		return fmt.Sprintf("line %d", l.line)
	}
	return fmt.Sprintf("%s #%d", what, index+1)
}

// generic applies the constraints of the struct tags (required, pattern,
// enum, min, max) and the rules every value of a kind follows (durations are
// not negative) to v, walking the shape.
//
// The decoder only sets a value once its YAML node has the right type, so a
// non-zero value is known to be well-formed, and positions are looked up only
// for zero values and for errors: this keeps the pass cheap for 100,000 tasks.
func (c *checker) generic(sh *shape, v reflect.Value, label string, top bool) {
	var obj *pos // looked up on first need
	objPos := func() (pos, bool) {
		if obj == nil {
			p, ok := c.at(v.Addr().Interface())
			if !ok {
				return p, false
			}
			obj = &p
		}
		return *obj, true
	}
	for _, fl := range sh.fields {
		fv := v.Field(fl.index)
		childLabel := fl.key
		if !top {
			childLabel = label + "." + fl.key
		}
		if fl.ptr {
			if fv.IsNil() {
				if fl.required {
					at, ok := objPos()
					if !ok {
						return
					}
					c.missing(sh, v, fl, at)
				}
				continue
			}
			fv = fv.Elem()
		}
		numeric := fl.shape.kind == kindInt || fl.shape.kind == kindFloat
		if isEmpty(fl.shape, fv) {
			if !fl.required && !(numeric && (fl.min != nil || fl.max != nil || fl.enum != nil)) {
				continue // nothing to check about a zero value
			}
			at, ok := objPos()
			if !ok {
				return // the object itself had the wrong type
			}
			addr := fv.Addr().Interface()
			l, present := c.locs.at(addr)
			switch {
			case l.bad:
				continue
			case !present && fl.required:
				c.missing(sh, v, fl, at)
				continue
			case !present:
				continue
			case fl.shape.kind == kindList && fl.required:
				c.errorf(l.pos, "%s: expected at least one %s, got an empty list", childLabel, elemName(fl.shape))
				continue
			case !numeric && fl.required:
				c.errorf(l.pos, "%s: expected %s, got an empty value", childLabel, fl.shape.describe())
				continue
			}
		}
		at := func() pos { p, _ := c.at(fv.Addr().Interface()); return p }
		switch fl.shape.kind {
		case kindString:
			s := fv.String()
			if s == "" {
				break
			}
			if fl.pattern != nil && !fl.pattern.re.MatchString(s) {
				c.errorf(at(), "invalid %s %s %s: expected %s", sh.name, fl.key, quoteShort(s), fl.pattern.help)
			}
			if fl.enum != nil && !slices.Contains(fl.enum, s) {
				msg := fmt.Sprintf("unknown %s %s %s: expected one of %s", sh.name, fl.key, quoteShort(s), strings.Join(fl.enum, ", "))
				if hint := closest(s, fl.enum); hint != "" {
					msg += fmt.Sprintf("; did you mean %q?", hint)
				}
				c.errorf(at(), "%s", msg)
			}
		case kindInt, kindFloat:
			var x float64
			var text string
			if fl.shape.kind == kindInt {
				x, text = float64(fv.Int()), strconv.FormatInt(fv.Int(), 10)
			} else {
				x, text = fv.Float(), strconv.FormatFloat(fv.Float(), 'g', -1, 64)
			}
			if fl.enum != nil && !slices.Contains(fl.enum, text) {
				c.errorf(at(), "%s: expected %s, got %s", childLabel, orList(fl.enum), text)
			}
			switch {
			case fl.min != nil && fl.max != nil && (x < *fl.min || x > *fl.max):
				c.errorf(at(), "%s: expected a number from %s to %s, got %s", childLabel, fmtNum(*fl.min), fmtNum(*fl.max), text)
			case fl.min != nil && x < *fl.min:
				c.errorf(at(), "%s: expected at least %s, got %s", childLabel, fmtNum(*fl.min), text)
			case fl.max != nil && x > *fl.max:
				c.errorf(at(), "%s: expected at most %s, got %s", childLabel, fmtNum(*fl.max), text)
			}
		case kindDuration:
			if d := Duration(fv.Int()); d < 0 {
				c.errorf(at(), "%s: expected a duration that is not negative, got %s", childLabel, d)
			}
		case kindObject:
			c.generic(fl.shape, fv, childLabel, false)
		case kindList:
			if fl.shape.elem.kind == kindObject {
				for i := range fv.Len() {
					c.generic(fl.shape.elem, fv.Index(i), childLabel, true)
				}
			}
		}
	}
}

func (c *checker) missing(sh *shape, v reflect.Value, fl *field, at pos) {
	who := sh.name
	if sh.ident != nil && sh.ident != fl {
		if id := v.Field(sh.ident.index).String(); id != "" {
			who += " " + quoteShort(id)
		}
	}
	c.errorf(at, "missing required key %q in %s", fl.key, who)
}

func isEmpty(sh *shape, v reflect.Value) bool {
	switch sh.kind {
	case kindList, kindStringMap:
		return v.Len() == 0
	case kindCommand:
		return v.Interface().(Command).IsZero()
	case kindObject:
		return false // an object's presence is its pointer's; its fields are checked one by one
	}
	return v.IsZero()
}

func elemName(sh *shape) string {
	if sh.elem != nil && sh.elem.kind == kindObject {
		return sh.elem.name
	}
	return "item"
}

func orList(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return "one of " + strings.Join(items, ", ")
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// params checks parameter names are unique (also as environment variables)
// and defaults match their types.
func (c *checker) params(p *Pipeline) {
	byName := make(map[string]int, len(p.Params))
	byEnv := make(map[string]int, len(p.Params))
	for i := range p.Params {
		prm := &p.Params[i]
		if _, ok := c.at(prm); !ok {
			continue
		}
		at, ok := c.at(&prm.Name)
		if ok && prm.Name != "" {
			if j, dup := byName[prm.Name]; dup {
				c.errorf(at, "duplicate param name %q (first defined at %s)", prm.Name, c.line(&p.Params[j].Name, j, "param"))
			} else {
				byName[prm.Name] = i
				env := prm.EnvName()
				if j, clash := byEnv[env]; clash {
					c.errorf(at, "params %q and %q both become the environment variable %s; rename one", p.Params[j].Name, prm.Name, env)
				} else {
					byEnv[env] = i
				}
			}
		}
		if prm.Default == nil {
			continue
		}
		dat, ok := c.at(&prm.Default)
		if !ok {
			continue
		}
		if _, ok := c.at(&prm.Type); !ok || (prm.Type != "" && !slices.Contains(ParamTypes, prm.Type)) {
			continue // the type is already reported
		}
		if _, err := prm.defaultValue(); err != nil {
			c.errorf(dat, "%v", err)
		}
	}
}

// schedule checks that the cron expression parses and the time zone exists,
// so a bad schedule fails at validation, not at the first tick.
func (c *checker) schedule(p *Pipeline) {
	s := p.Schedule
	if s == nil {
		return
	}
	loc := time.UTC
	if s.Timezone != "" {
		if at, ok := c.at(&s.Timezone); ok {
			l, err := schedule.LoadLocation(s.Timezone, time.UTC)
			if err != nil {
				c.errorf(at, "schedule.timezone: unknown time zone %q: expected an IANA name such as Asia/Tokyo or Europe/Berlin", s.Timezone)
			} else {
				loc = l
			}
		}
	}
	if at, ok := c.at(&s.Cron); ok && s.Cron != "" {
		if _, err := schedule.Parse(s.Cron, loc); err != nil {
			c.errorf(at, "schedule.cron: %v", err)
		}
	}
	if s.Cron == "" && len(s.Datasets) == 0 {
		if at, ok := c.at(s); ok {
			c.errorf(at, "schedule: expected cron, datasets or both: when to start runs")
		}
	}
	if s.Any && len(s.Datasets) == 0 {
		at, _ := c.at(&s.Any)
		c.errorf(at, "schedule.any: applies to datasets, and none are given")
	}
	c.datasets(s.Datasets, "schedule.datasets")
}

// env checks the names of an env map: portable variable names, and none of
// the TASUKI_* names tasuki sets itself.
func (c *checker) env(m map[string]string, label string) {
	if len(m) == 0 {
		return
	}
	ptr := reflect.ValueOf(m).Pointer()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		at := c.locs[mapKeyAt{ptr, k}].pos
		switch {
		case !c.f.envKey.MatchString(k):
			c.errorf(at, "%s: invalid variable name %s: expected letters, digits and '_', not starting with a digit", label, quoteShort(k))
		case strings.HasPrefix(strings.ToUpper(k), "TASUKI_"):
			c.errorf(at, "%s: %s is reserved: tasuki sets the TASUKI_* variables itself", label, quoteShort(k))
		}
	}
}

// secrets checks the secrets of a pipeline or a task: the variables given
// a secret's value ({secret: NAME} in env) and the secrets list, whose
// names become variables in upper case. A variable is given one value: it
// cannot be both in env and named by the list, or named twice by the list.
func (c *checker) secrets(env, secretEnv map[string]string, list []string) {
	c.env(secretEnv, "env")
	sp := reflect.ValueOf(secretEnv).Pointer()
	for _, k := range slices.Sorted(maps.Keys(secretEnv)) {
		if _, dup := env[k]; dup {
			c.errorf(c.locs[mapKeyAt{sp, k}].pos, "env: %s is given both a value and a secret", quoteShort(k))
		}
		if name := secretEnv[k]; !c.f.secretName.re.MatchString(name) {
			c.errorf(c.locs[mapValueAt{sp, k}].pos, "env %q: secret: invalid secret name %s: expected %s", k, quoteShort(name), c.f.secretName.help)
		}
	}
	seen := make(map[string]string, len(list))
	for i, name := range list {
		at, ok := c.at(&list[i])
		if !ok {
			continue
		}
		if !c.f.secretName.re.MatchString(name) {
			c.errorf(at, "secrets: invalid secret name %s: expected %s", quoteShort(name), c.f.secretName.help)
			continue
		}
		v := EnvSafe(name)
		switch first, dup := seen[v]; {
		case dup:
			c.errorf(at, "secrets: %s and %s are both the variable %s", quoteShort(first), quoteShort(name), v)
		case strings.HasPrefix(v, "TASUKI_"):
			c.errorf(at, "secrets: %s would be the variable %s, and TASUKI_* is reserved: tasuki sets the TASUKI_* variables itself", quoteShort(name), v)
		case hasKey(env, v) || hasKey(secretEnv, v):
			c.errorf(at, "secrets: %s is the variable %s, which env also sets", quoteShort(name), v)
		}
		seen[v] = name
	}
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// tasks checks ids, commands, retry policies and the dependency graph.
func (c *checker) tasks(p *Pipeline) {
	n := len(p.Tasks)
	index := make(map[string]int, n)
	usable := make([]bool, n) // first definition of a well-formed task
	for i := range p.Tasks {
		t := &p.Tasks[i]
		// A task whose node had the wrong type is all zero: nothing to check.
		if t.ID != "" {
			if j, dup := index[t.ID]; dup {
				at, _ := c.at(&t.ID)
				c.errorf(at, "duplicate task id %q (first defined at %s)", t.ID, c.line(&p.Tasks[j].ID, j, "task"))
			} else {
				index[t.ID] = i
				usable[i] = true
			}
		}
		c.work(t)
		switch {
		case t.Run.Shell != "" && strings.TrimSpace(t.Run.Shell) == "":
			at, _ := c.at(&t.Run)
			c.errorf(at, "run: expected a command, got only white space")
		case t.Run.Shell == "" && len(t.Run.Argv) > 0 && t.Run.Argv[0] == "":
			at, _ := c.at(&t.Run)
			c.errorf(at, "run: the program (the first element of the list) must not be empty")
		}
		c.env(t.Env, "env")
		c.secrets(t.Env, t.SecretEnv, t.Secrets)
		if r := t.Retry; r != nil {
			for k, code := range r.DataMissingExitCodes {
				if code < 1 || code > 255 {
					at, _ := c.at(&r.DataMissingExitCodes[k])
					c.errorf(at, "retry.data_missing_exit_codes: expected an exit status from 1 to 255, got %d", code)
				}
			}
		}
		if r := t.Retry; r != nil && r.MaxBackoff < r.Backoff && r.MaxBackoff >= 0 &&
			c.given(&r.Backoff, reflect.ValueOf(r.Backoff)) && c.given(&r.MaxBackoff, reflect.ValueOf(r.MaxBackoff)) {
			at, _ := c.at(&r.MaxBackoff)
			c.errorf(at, "retry.max_backoff (%s) is less than retry.backoff (%s)", r.MaxBackoff, r.Backoff)
		}
	}
	c.fanout(p, index)
	c.graph(p, index, usable)
}

// work checks that a task does exactly one thing (run, wait, sql or http)
// and the keys of what it does.
func (c *checker) work(t *Task) {
	var given []string
	runAt, runGiven := c.locs.at(&t.Run)
	switch {
	case !t.Run.IsZero():
		given = append(given, "run")
	case runGiven && !runAt.bad:
		c.errorf(runAt.pos, "run: expected a command: a string for /bin/sh -c, or a list of strings (argv), got an empty value")
		return
	case runGiven:
		return // its type is already reported
	}
	if t.Wait != nil {
		given = append(given, "wait")
	}
	if t.SQL != nil {
		given = append(given, "sql")
	}
	if t.HTTP != nil {
		given = append(given, "http")
	}
	if t.Noop != nil {
		given = append(given, "noop")
	}
	if t.Inventory != nil {
		given = append(given, "inventory")
	}
	taskAt, ok := c.at(t)
	if !ok {
		return
	}
	who := "task"
	if t.ID != "" {
		who += " " + quoteShort(t.ID)
	}
	switch len(given) {
	case 0:
		c.errorf(taskAt, "missing required key \"run\" in %s: a task needs one of run, wait, sql, http, noop and inventory", who)
		return
	case 1:
	default:
		c.errorf(taskAt, "%s has %s: a task does exactly one of run, wait, sql, http, noop and inventory", who, strings.Join(given, " and "))
		return
	}
	switch {
	case t.Wait != nil:
		c.wait(t)
	case t.SQL != nil:
		c.sql(t.SQL)
	case t.HTTP != nil:
		c.http(t.HTTP)
	case t.Inventory != nil:
		c.inventory(t)
	}
	c.datasets(t.Produces, "produces")
	c.datasets(t.Consumes, "consumes")
	if t.Wait != nil {
		for _, k := range []struct {
			key   string
			given bool
		}{{"map", t.Map != nil}, {"cache", t.Cache != nil}, {"outputs", len(t.Outputs) > 0}} {
			if k.given {
				c.errorf(taskAt, "%s: a wait has nothing to %s; move the key to a task that runs something", k.key, map[string]string{"map": "fan out", "cache": "cache", "outputs": "output"}[k.key])
			}
		}
	}
}

// MaxMapItems is the most items one map may have.
const MaxMapItems = 10_000_000

// fanout checks the map keys of every task, and makes the task a map
// reads its items from a need of it (map.from implies needs).
func (c *checker) fanout(p *Pipeline, index map[string]int) {
	for i := range p.Tasks {
		t := &p.Tasks[i]
		m := t.Map
		if m == nil {
			continue
		}
		at, _ := c.at(m)
		var sources []string
		if m.Items != nil {
			sources = append(sources, "items")
		}
		for _, src := range []struct {
			key string
			set bool
		}{{"file", m.File != ""}, {"glob", m.Glob != ""}, {"from", m.From != ""}, {"range", m.Range != nil}} {
			if src.set {
				sources = append(sources, src.key)
			}
		}
		switch len(sources) {
		case 0:
			c.errorf(at, "map: give the items with one of items, file, glob, from and range")
		case 1:
		default:
			c.errorf(at, "map: has %s: give exactly one of items, file, glob, from and range", strings.Join(sources, " and "))
		}
		if len(m.Items) > MaxMapItems {
			c.errorf(at, "map.items: %d items, more than the %d a map may have", len(m.Items), MaxMapItems)
		}
		if r := m.Range; r != nil {
			rat, _ := c.at(r)
			step := r.Step
			if step == 0 {
				step = 1
			}
			if c.given(&r.Step, reflect.ValueOf(r.Step)) && r.Step == 0 {
				c.errorf(rat, "map.range.step: must not be 0")
			} else if n := RangeLen(r.Start, r.Stop, step); n > MaxMapItems {
				c.errorf(rat, "map.range: %d items, more than the %d a map may have", n, MaxMapItems)
			}
		}
		if m.Batch > 0 && t.Run.IsZero() {
			bat, _ := c.at(&m.Batch)
			c.errorf(bat, "map.batch: only a run task can take its items in batches (they reach its standard input)")
		}
		if tl := m.Tolerate; tl != nil && tl.Count > 0 && tl.Percent > 0 {
			tat, _ := c.at(tl)
			c.errorf(tat, "map.tolerate: give count or percent, not both")
		}
		if m.Zip && m.From == "" {
			zat, _ := c.at(&m.Zip)
			c.errorf(zat, "map.zip: pairs item i with item i of a map upstream: name that map with from")
		}
		if m.From == "" {
			continue
		}
		fat, ok := c.at(&m.From)
		if !ok {
			continue
		}
		j, known := index[m.From]
		switch {
		case m.From == t.ID:
			c.errorf(fat, "map.from: task %q cannot take its items from itself", t.ID)
			continue
		case !known:
			c.errorf(fat, "map.from: %s is not a task in this pipeline", quoteShort(m.From))
			continue
		case m.Zip && p.Tasks[j].Map == nil:
			zat, _ := c.at(&m.Zip)
			c.errorf(zat, "map.zip: task %q is not a map, so it has no item i to pair with item i; drop zip to take its result as the items", m.From)
		}
		if !slices.Contains(t.Needs, m.From) {
			// The upstream becomes a need, positioned at map.from for
			// messages. Appending may move the slice: its elements'
			// positions move with it.
			old := t.Needs
			t.Needs = append(slices.Clip(old), m.From)
			if c.locs != nil {
				for k := range old {
					if l, ok := c.locs[&old[k]]; ok {
						c.locs[&t.Needs[k]] = l
					}
				}
				c.locs[&t.Needs[len(t.Needs)-1]] = loc{pos: fat}
			}
		}
	}
}

// RangeLen is the number of items of a map over a range (step not 0).
func RangeLen(start, stop, step int) int {
	switch {
	case step > 0 && stop > start:
		return (stop - start + step - 1) / step
	case step < 0 && stop < start:
		return (start - stop - step - 1) / -step
	}
	return 0
}

// repair checks that a repair says whether it repairs: on_data is the one
// trigger today, and a repair without it would do nothing silently.
func (c *checker) repair(p *Pipeline) {
	r := p.Repair
	if r == nil {
		return
	}
	if !c.given(&r.OnData, reflect.ValueOf(r.OnData)) {
		at, _ := c.at(r)
		c.errorf(at, "repair: missing on_data: true (what repair watches for: the missing data of a failed run)")
	}
	if r.Poke != 0 && r.Poke.D() < MinPoke {
		at, _ := c.at(&r.Poke)
		c.errorf(at, "repair.poke: expected at least %s, got %s", MinPoke, r.Poke)
	}
}

// waitKeys are the keys of a wait that refine one condition, by condition.
var waitKeys = map[string][]string{
	"file":     {"min_size", "non_empty", "marker", "stable_for"},
	"http":     {"status", "json", "headers"},
	"sql":      {"dsn"},
	"pipeline": {"task"},
}

// wait checks a wait: one condition, only its own keys, a sane poke, and
// task keys that mean nothing for a wait.
func (c *checker) wait(t *Task) {
	w := t.Wait
	at, _ := c.at(w)
	var conds []string
	for _, k := range []struct {
		key string
		set bool
	}{{"file", w.File != ""}, {"http", w.HTTP != ""}, {"sql", w.SQL != ""}, {"pipeline", w.Pipeline != ""}, {"dataset", w.Dataset != ""}} {
		if k.set {
			conds = append(conds, k.key)
		}
	}
	switch len(conds) {
	case 0:
		c.errorf(at, "wait: expected one of file, http, sql, pipeline and dataset: what to wait for")
		return
	case 1:
	default:
		c.errorf(at, "wait: has %s: a wait checks exactly one condition (use two wait tasks for two)", strings.Join(conds, " and "))
		return
	}
	cond := conds[0]
	own := waitKeys[cond]
	sh := c.f.objectShape(reflect.TypeFor[Wait]())
	v := reflect.ValueOf(w).Elem()
	for cond2, keys := range waitKeys {
		if cond2 == cond {
			continue
		}
		for _, key := range keys {
			if slices.Contains(own, key) {
				continue
			}
			fl := sh.byKey[key]
			fv := v.Field(fl.index)
			if !c.given(fv.Addr().Interface(), fv) {
				continue
			}
			kat, _ := c.at(fv.Addr().Interface())
			an := "a"
			if cond == "http" {
				an = "an"
			}
			c.errorf(kat, "wait.%s: applies to %s waits, not to %s %s wait", key, cond2, an, cond)
		}
	}
	if w.Poke != 0 && w.Poke.D() < MinPoke {
		pat, _ := c.at(&w.Poke)
		c.errorf(pat, "wait.poke: expected at least %s, got %s", MinPoke, w.Poke)
	}
	for i, code := range w.Status {
		if code < 100 || code > 599 {
			sat, _ := c.at(&w.Status[i])
			c.errorf(sat, "wait.status: expected an HTTP status from 100 to 599, got %d", code)
		}
	}
	switch cond {
	case "file":
		if filepath.IsAbs(w.Marker) {
			mat, _ := c.at(&w.Marker)
			c.errorf(mat, "wait.marker: expected a file name relative to the matched files' directory (such as _SUCCESS), got an absolute path")
		}
	case "http":
		c.url(&w.HTTP, "wait.http")
		c.condition(&w.JSON, "wait.json")
	case "sql":
		if w.DSN == "" {
			c.errorf(at, "wait: missing required key \"dsn\" for a sql wait: the database to query")
		} else {
			c.dsn(&w.DSN, "wait.dsn")
		}
	}
	if t.Timeout != 0 {
		tat, _ := c.at(&t.Timeout)
		c.errorf(tat, "timeout: a wait task's limit is wait.timeout")
	}
	if t.Pool != "" {
		pat, _ := c.at(&t.Pool)
		c.errorf(pat, "pool: a wait holds no execution slot, so it draws from no pool")
	}
	if len(t.Labels) > 0 {
		lat, _ := c.at(&t.Labels)
		c.errorf(lat, "labels: waits are checked by the server (or 'tasuki run'), not on workers")
	}
}

// sql checks a sql task: query or file, and a DSN of a known database.
func (c *checker) sql(q *SQL) {
	at, _ := c.at(q)
	switch {
	case q.Query == "" && q.File == "":
		c.errorf(at, "sql: expected query or file: the statements to run")
	case q.Query != "" && q.File != "":
		c.errorf(at, "sql: has query and file: give one of them")
	case q.Query != "" && strings.TrimSpace(q.Query) == "":
		qat, _ := c.at(&q.Query)
		c.errorf(qat, "sql.query: expected statements, got only white space")
	}
	if q.DSN != "" {
		c.dsn(&q.DSN, "sql.dsn")
	}
}

// http checks an http task's URL and condition.
func (c *checker) http(h *HTTP) {
	if h.URL != "" {
		c.url(&h.URL, "http.url")
	}
	if e := h.Expect; e != nil {
		for i, code := range e.Status {
			if code < 100 || code > 599 {
				sat, _ := c.at(&e.Status[i])
				c.errorf(sat, "http.expect.status: expected an HTTP status from 100 to 599, got %d", code)
			}
		}
		c.condition(&e.JSON, "http.expect.json")
	}
	if h.Method == "HEAD" && h.Body != "" {
		at, _ := c.at(&h.Body)
		c.errorf(at, "http.body: a HEAD request has no body")
	}
}

// inventory checks an inventory task as 'tasuki hosts' checks its flags:
// one version bound, and only with a package or an advisory; active only
// with a service; a well-formed os; versions dpkg or rpm can read (unless
// a ${VAR} decides them). The task runs on the server, so labels, which
// choose workers, are refused.
func (c *checker) inventory(t *Task) {
	inv := t.Inventory
	var bound *string
	for _, b := range []struct {
		key string
		v   *string
	}{{"version_lt", &inv.VersionLT}, {"version_le", &inv.VersionLE}, {"version_eq", &inv.VersionEQ}} {
		if *b.v == "" {
			continue
		}
		bat, _ := c.at(b.v)
		if bound != nil {
			c.errorf(bat, "inventory.%s: give one version bound (version_lt, version_le or version_eq)", b.key)
			continue
		}
		bound = b.v
		if inv.Package == "" && inv.Advisory == "" {
			c.errorf(bat, "inventory.%s needs package (or advisory): the version of which package?", b.key)
		}
		if !strings.Contains(*b.v, "${") {
			if debErr := pkgver.Deb.Check(*b.v); debErr != nil && pkgver.RPM.Check(*b.v) != nil {
				c.errorf(bat, "inventory.%s: %s is not a version by dpkg's or rpm's rules: %v", b.key, quoteShort(*b.v), debErr)
			}
		}
	}
	if inv.Active && inv.Service == "" {
		aat, _ := c.at(&inv.Active)
		c.errorf(aat, "inventory.active needs service: which service should be active?")
	}
	if inv.OS != "" && !strings.Contains(inv.OS, "${") {
		distro, release, _ := strings.Cut(inv.OS, ":")
		if distro == "" || strings.ContainsAny(inv.OS, " \t") || strings.Contains(release, ":") {
			oat, _ := c.at(&inv.OS)
			c.errorf(oat, "inventory.os: expected a distribution as os-release names it, and a release after a colon (debian, debian:12, rocky:9), got %s", quoteShort(inv.OS))
		}
	}
	if len(t.Labels) > 0 {
		lat, _ := c.at(&t.Labels)
		c.errorf(lat, "labels: an inventory task runs on the server, which keeps the inventory, never on a worker")
	}
}

// url checks that a URL is http or https, unless a ${VAR} decides it.
func (c *checker) url(u *string, label string) {
	if strings.HasPrefix(*u, "${") {
		return
	}
	if !strings.HasPrefix(*u, "http://") && !strings.HasPrefix(*u, "https://") {
		at, _ := c.at(u)
		c.errorf(at, "%s: expected an http:// or https:// URL, got %s", label, quoteShort(*u))
	}
}

// dsnSchemes are the databases sql tasks and waits reach.
var dsnSchemes = []string{"postgres://", "postgresql://", "mysql://", "mariadb://", "sqlite:"}

// dsn checks that a connection string names a known database, unless a
// ${VAR} decides it.
func (c *checker) dsn(d *string, label string) {
	if strings.HasPrefix(*d, "${") {
		return
	}
	for _, s := range dsnSchemes {
		if strings.HasPrefix(*d, s) {
			return
		}
	}
	at, _ := c.at(d)
	// Never echo a DSN: it may hold a password.
	c.errorf(at, "%s: expected postgres://..., mysql://... or sqlite:..., got a connection string of another form", label)
}

// condition checks that a JSON condition compiles.
func (c *checker) condition(src *string, label string) {
	if *src == "" {
		return
	}
	if _, err := cond.Compile(*src); err != nil {
		at, _ := c.at(src)
		c.errorf(at, "%s: %v", label, err)
	}
}

// datasets checks a list of dataset names: each has the syntax of a name,
// none is listed twice, and no two are the same TASUKI_DATASET_<NAME>
// variable (raw.orders and raw_orders would share one metadata file).
func (c *checker) datasets(names []string, label string) {
	pat := c.f.namePattern("name")
	seen := make(map[string]bool, len(names))
	vars := make(map[string]string, len(names))
	for i, n := range names {
		at, _ := c.at(&names[i])
		switch v := EnvSafe(n); {
		case !pat.re.MatchString(n):
			c.errorf(at, "%s: invalid dataset name %s: expected %s", label, quoteShort(n), pat.help)
		case seen[n]:
			c.errorf(at, "%s: %s is listed twice", label, quoteShort(n))
		case vars[v] != "":
			c.errorf(at, "%s: %s and %s are both the variable TASUKI_DATASET_%s", label, quoteShort(vars[v]), quoteShort(n), v)
		default:
			vars[v] = n
		}
		seen[n] = true
	}
}

// graph checks every need names another task, once, and that the needs form
// no cycle. It runs in O(tasks + needs) without recursion, so a chain of
// 100,000 tasks is as cheap as a wide graph.
func (c *checker) graph(p *Pipeline, index map[string]int, usable []bool) {
	n := len(p.Tasks)
	// Tasks whose ids map to the same TASUKI_NEED_* variable; only these need
	// the per-task clash check below.
	envOf := map[string]int{}
	clashes := false
	for i := range p.Tasks {
		if usable[i] {
			e := EnvSafe(p.Tasks[i].ID)
			if _, dup := envOf[e]; dup {
				clashes = true
			} else {
				envOf[e] = i
			}
		}
	}
	needs := make([][]int32, n)
	stamp := make([]int32, n) // stamp[j] == i+1: task i already needs j
	budget := 64              // suggestions are O(tasks) each; keep them bounded
	for i := range p.Tasks {
		t := &p.Tasks[i]
		if !usable[i] {
			continue
		}
		var envSeen map[string]string
		for k, need := range t.Needs {
			at := func() pos { p, _ := c.at(&t.Needs[k]); return p }
			if need == "" {
				if _, ok := c.at(&t.Needs[k]); ok { // not a type error already reported
					c.errorf(at(), "needs: expected a task id, got an empty string")
				}
				continue
			}
			if need == t.ID {
				c.errorf(at(), "task %q needs itself", t.ID)
				continue
			}
			j, ok := index[need]
			if !ok {
				msg := fmt.Sprintf("task %q needs %s, which is not a task in this pipeline", t.ID, quoteShort(need))
				if budget > 0 {
					budget--
					if s := closest(need, taskIDs(p, usable)); s != "" {
						msg += fmt.Sprintf("; did you mean %q?", s)
					}
				}
				c.errorf(at(), "%s", msg)
				continue
			}
			if stamp[j] == int32(i+1) {
				c.errorf(at(), "needs: %q is listed twice", need)
				continue
			}
			stamp[j] = int32(i + 1)
			if clashes {
				if envSeen == nil {
					envSeen = map[string]string{}
				}
				e := EnvSafe(need)
				if other, dup := envSeen[e]; dup {
					c.errorf(at(), "needs: %q and %q both become TASUKI_NEED_%s; rename one of the tasks", other, need, e)
					continue
				}
				envSeen[e] = need
			}
			needs[i] = append(needs[i], int32(j))
		}
	}
	_, removed := topoSort(needs)
	c.cycles(p, needs, removed)
}

// taskIDs lists the ids of usable tasks, for suggestions.
func taskIDs(p *Pipeline, usable []bool) []string {
	ids := make([]string, 0, len(p.Tasks))
	for i := range p.Tasks {
		if usable[i] {
			ids = append(ids, p.Tasks[i].ID)
		}
	}
	return ids
}

// topoSort orders the tasks so that every task comes after its needs (Kahn's
// algorithm, O(V+E), iterative). removed[i] is false for the tasks that could
// not be ordered: those on a cycle or downstream of one.
func topoSort(needs [][]int32) (order []int, removed []bool) {
	n := len(needs)
	pending := make([]int32, n)
	// Dependents in compressed form: deps[off[j]:off[j+1]] need task j.
	off := make([]int32, n+1)
	for i, ns := range needs {
		pending[i] = int32(len(ns))
		for _, j := range ns {
			off[j+1]++
		}
	}
	for j := range n {
		off[j+1] += off[j]
	}
	deps := make([]int32, off[n])
	fill := slices.Clone(off[:n])
	for i, ns := range needs {
		for _, j := range ns {
			deps[fill[j]] = int32(i)
			fill[j]++
		}
	}
	order = make([]int, 0, n)
	removed = make([]bool, n)
	for i := range n {
		if pending[i] == 0 {
			order = append(order, i)
			removed[i] = true
		}
	}
	for k := 0; k < len(order); k++ {
		j := order[k]
		for _, i := range deps[off[j]:off[j+1]] {
			if pending[i]--; pending[i] == 0 {
				order = append(order, int(i))
				removed[i] = true
			}
		}
	}
	return order, removed
}

// cycles reports one cycle per group of tasks that topoSort could not order.
// Every such task has a need that is also unordered, so following those needs
// must come back to a task already on the path: that loop is a cycle.
func (c *checker) cycles(p *Pipeline, needs [][]int32, removed []bool) {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]uint8, len(needs))
	pathAt := map[int32]int{}
	var path []int32
	for start := range needs {
		if removed[start] || state[start] != unseen {
			continue
		}
		path = path[:0]
		clear(pathAt)
		u := int32(start)
		for state[u] == unseen {
			state[u] = onPath
			pathAt[u] = len(path)
			path = append(path, u)
			next := int32(-1)
			for _, j := range needs[u] {
				if !removed[j] {
					next = j
					break
				}
			}
			if next < 0 { // cannot happen for an unordered task; be safe
				break
			}
			u = next
		}
		if state[u] == onPath {
			c.reportCycle(p, path[pathAt[u]:])
		}
		for _, v := range path {
			state[v] = done
		}
	}
}

func (c *checker) reportCycle(p *Pipeline, cycle []int32) {
	// Start at the task that comes first in the file, so the message is stable.
	first := 0
	for k, v := range cycle {
		if v < cycle[first] {
			first = k
		}
	}
	ids := make([]string, 0, len(cycle)+1)
	for k := range cycle {
		ids = append(ids, p.Tasks[cycle[(first+k)%len(cycle)]].ID)
	}
	ids = append(ids, ids[0])
	t := &p.Tasks[cycle[first]]
	at, _ := c.at(&t.ID)
	for k, need := range t.Needs {
		if need == ids[1] {
			at, _ = c.at(&t.Needs[k])
			break
		}
	}
	const head, tail = 8, 4 // a long cycle is shown by its ends
	if len(ids) > head+tail+1 {
		more := fmt.Sprintf("… %d more …", len(ids)-head-tail)
		ids = append(append(ids[:head:head], more), ids[len(ids)-tail:]...)
	}
	c.errorf(at, "dependency cycle: %s (each task needs the next)", strings.Join(ids, " -> "))
}
