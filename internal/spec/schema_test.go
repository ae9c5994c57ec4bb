package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// compileSchema compiles Schema() with santhosh-tekuri/jsonschema, which also
// checks it against the draft 2020-12 meta-schema.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("Schema() is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("compiling the schema: %v", err)
	}
	return sch
}

// yamlInstance turns YAML into the JSON value a schema validator sees.
func yamlInstance(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestSchemaHeader(t *testing.T) {
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Schema      string         `json:"$schema"`
		ID          string         `json:"$id"`
		Title       string         `json:"title"`
		Description string         `json:"description"`
		Defs        map[string]any `json:"$defs"`
		Required    []string       `json:"required"`
		AddlProps   *bool          `json:"additionalProperties"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		t.Fatal(err)
	}
	if head.Schema != "https://json-schema.org/draft/2020-12/schema" || head.ID != SchemaID || head.Title == "" || head.Description == "" {
		t.Errorf("header = %+v", head)
	}
	for _, def := range []string{"task", "param", "retry", "duration", "command", "env"} {
		if head.Defs[def] == nil {
			t.Errorf("$defs lacks %q", def)
		}
	}
	if strings.Join(head.Required, ",") != "name,tasks" || head.AddlProps == nil || *head.AddlProps {
		t.Errorf("required = %v, additionalProperties = %v", head.Required, head.AddlProps)
	}
	// Descriptions come from the doc tags.
	if !bytes.Contains(raw, []byte(`"description": "Ids of tasks that must succeed before this one starts."`)) {
		t.Error("the doc tag of needs is not in the schema")
	}
	again, _ := Schema()
	if !bytes.Equal(raw, again) {
		t.Error("Schema() is not deterministic")
	}
}

// TestSchemaAcceptsExamples validates every example against the generated
// schema, so the schema never rejects what the parser accepts.
func TestSchemaAcceptsExamples(t *testing.T) {
	sch := compileSchema(t)
	for _, file := range validExamples(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(yamlInstance(t, data)); err != nil {
			t.Errorf("%s: %v", filepath.Base(file), err)
		}
	}
}

// TestSchemaRejects checks that the schema refuses what the parser refuses
// for structural reasons: unknown and reserved keys, wrong types, missing
// required keys, and values outside the tags' bounds.
func TestSchemaRejects(t *testing.T) {
	sch := compileSchema(t)
	for name, src := range map[string]string{
		"unknown key":          "name: x\ntasks:\n  - id: a\n    run: b\n    neds: [c]\n",
		"unknown top key":      "name: x\nzzz: 1\ntasks: [{id: a, run: b}]\n",
		"reserved key":         "name: x\nschedule: daily\ntasks: [{id: a, run: b}]\n",
		"missing run":          "name: x\ntasks: [{id: a}]\n",
		"missing name":         "tasks: [{id: a, run: b}]\n",
		"empty tasks":          "name: x\ntasks: []\n",
		"timeout list":         "name: x\ntasks: [{id: a, run: b, timeout: [1]}]\n",
		"bad duration":         "name: x\ntasks: [{id: a, run: b, timeout: 5 minutes}]\n",
		"negative duration":    "name: x\ntasks: [{id: a, run: b, timeout: -5m}]\n",
		"attempts string":      "name: x\ntasks: [{id: a, run: b, retry: {attempts: x}}]\n",
		"attempts zero":        "name: x\ntasks: [{id: a, run: b, retry: {attempts: 0}}]\n",
		"jitter above 1":       "name: x\ntasks: [{id: a, run: b, retry: {attempts: 2, jitter: 2}}]\n",
		"multiplier below 1":   "name: x\ntasks: [{id: a, run: b, retry: {attempts: 2, multiplier: 0.5}}]\n",
		"run empty list":       "name: x\ntasks: [{id: a, run: []}]\n",
		"run mapping":          "name: x\ntasks: [{id: a, run: {x: y}}]\n",
		"env number":           "name: x\nenv: {PORT: 8080}\ntasks: [{id: a, run: b}]\n",
		"env reserved":         "name: x\nenv: {TASUKI_X: a}\ntasks: [{id: a, run: b}]\n",
		"env bad name":         "name: x\nenv: {'A-B': a}\ntasks: [{id: a, run: b}]\n",
		"bad task id":          "name: x\ntasks: [{id: 'a b', run: b}]\n",
		"bad pipeline name":    "name: 'a b'\ntasks: [{id: a, run: b}]\n",
		"unknown param type":   "name: x\nparams: [{name: p, type: integer}]\ntasks: [{id: a, run: b}]\n",
		"version 2":            "name: x\nversion: 2\ntasks: [{id: a, run: b}]\n",
		"unknown key in retry": "name: x\ntasks: [{id: a, run: b, retry: {attempts: 2, bakoff: 1s}}]\n",
		"env secret bad name":  "name: x\nenv: {A: {secret: 'a b'}}\ntasks: [{id: a, run: b}]\n",
		"env secret other key": "name: x\nenv: {A: {secrets: a}}\ntasks: [{id: a, run: b}]\n",
		"env secret list":      "name: x\nenv: {A: {secret: [a]}}\ntasks: [{id: a, run: b}]\n",
		"secrets bad name":     "name: x\nsecrets: ['9x']\ntasks: [{id: a, run: b}]\n",
		"task secrets string":  "name: x\ntasks: [{id: a, run: b, secrets: a}]\n",
		"param secret string":  "name: x\nparams: [{name: p, secret: yes please}]\ntasks: [{id: a, run: b}]\n",
	} {
		if err := sch.Validate(yamlInstance(t, []byte(src))); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, src)
		}
		if _, err := Parse("x.yaml", []byte(src)); err == nil {
			t.Errorf("%s: Parse accepts\n%s", name, src)
		}
	}
}

// TestDurationPattern keeps the schema's duration pattern in line with
// time.ParseDuration for non-negative values.
func TestDurationPattern(t *testing.T) {
	re := regexp.MustCompile(durationPattern)
	for _, s := range []string{"90s", "5m", "1h30m", "1.5h", ".5s", "0", "+5m", "300ms", "2us", "1µs", "10ns", "5", "5 m", "-5m", "1h-5m", "", "m", "1d", "1.h", "0s"} {
		d, err := time.ParseDuration(s)
		parses := err == nil && d >= 0
		if matches := re.MatchString(s); matches != parses {
			t.Errorf("%q: pattern matches %v, time.ParseDuration accepts (non-negative) %v", s, matches, parses)
		}
	}
}
