package spec

import (
	"os"
	"strings"
	"testing"
)

// TestDocsMentionEveryField keeps docs/pipeline-reference.md moving with the
// code: every key of the format, every parameter type and every reserved key
// must appear in it (as `key`).
func TestDocsMentionEveryField(t *testing.T) {
	raw, err := os.ReadFile("../../docs/pipeline-reference.md")
	if err != nil {
		t.Fatalf("reading the reference: %v", err)
	}
	doc := string(raw)
	f, err := theFormat()
	if err != nil {
		t.Fatal(err)
	}
	mention := func(what, word string) {
		if !strings.Contains(doc, "`"+word+"`") && !strings.Contains(doc, "`"+word+":") {
			t.Errorf("docs/pipeline-reference.md does not mention %s `%s`", what, word)
		}
	}
	for _, sh := range f.objects {
		for _, fl := range sh.fields {
			mention(sh.name+" key", fl.key)
		}
		for k := range sh.reserved {
			mention("reserved "+sh.name+" key", k)
		}
	}
	for _, typ := range ParamTypes {
		mention("param type", string(typ))
	}
	for _, v := range []string{"TASUKI_RESULT", "TASUKI_RUN_ID", "TASUKI_PIPELINE", "TASUKI_TASK_ID", "TASUKI_ATTEMPT", "TASUKI_NEED_<ID>", "TASUKI_PARAM_<NAME>"} {
		mention("variable", v)
	}
}

// TestReservedKeysAreNotFields guards the rule that a key leaves the reserved
// list when a version gives it a field.
func TestReservedKeysAreNotFields(t *testing.T) {
	if _, err := theFormat(); err != nil {
		t.Fatal(err)
	}
}
