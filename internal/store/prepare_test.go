package store

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The drivers' behaviour is pinned by the conformance suite (storetest);
// these cases cover the edges of the shared rules that a database round trip
// makes awkward to reach.

func TestCheckJSON(t *testing.T) {
	tests := []struct {
		raw     string
		wantErr string // "" for accepted
	}{
		{``, ""},
		{`null`, ""},
		{`{"a": [1, "x"]}`, ""},
		{`{"a":`, "not valid JSON"},
		{`"\u0000"`, `\u0000`},
		{`{"k": "a\u0000b"}`, `\u0000`},
		{`"\\u0000"`, ""},           // an escaped backslash, then "u0000"
		{`"\\\u0000"`, `\u0000`},    // an escaped backslash, then the escape
		{`"\\\\u0000"`, ""},         // two escaped backslashes
		{`"\u00000"`, `\u0000`},     // the escape followed by a digit
		{`"\u0001 \u1000"`, ""},     // other escapes
		{`{"\u0000": 1}`, `\u0000`}, // in a key
	}
	for _, tt := range tests {
		err := CheckJSON("result", json.RawMessage(tt.raw))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("CheckJSON(%s) = %v, want nil", tt.raw, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "result ")):
			t.Errorf("CheckJSON(%s) = %v, want an error naming the field and %q", tt.raw, err, tt.wantErr)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		"plain ü 日本":   "plain ü 日本",
		"a\x00b":       "a\uFFFDb",
		"a\xffb":       "a\uFFFDb",
		"\xc3":         "\uFFFD", // a truncated sequence
		"\x00\x00\xfe": "\uFFFD\uFFFD\uFFFD",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
		if CheckText("name", Text(in)) != nil {
			t.Errorf("CheckText refuses Text(%q)", in)
		}
	}
	for _, bad := range []string{"a\x00", "a\xff", "\xc3"} {
		if err := CheckText("holder", bad); err == nil || !strings.HasPrefix(err.Error(), "holder ") {
			t.Errorf("CheckText(%q) = %v, want an error naming the field", bad, err)
		}
	}
}

// TestPrepareBackfillLeavesCallersRuns checks that PrepareBackfill normalises
// copies: the runs the caller passed are not changed.
func TestPrepareBackfillLeavesCallersRuns(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	runs := []NewRun{{Run: Run{Params: json.RawMessage(`{}`), CreatedAt: from.Add(time.Nanosecond)}}}
	b := Backfill{Pipeline: "p", From: from, To: from.Add(time.Hour)}
	rs, err := PrepareBackfill(&b, runs)
	if err != nil {
		t.Fatal(err)
	}
	if runs[0].Run.Pipeline != "" || runs[0].Run.Trigger != "" || runs[0].Run.State != "" || !runs[0].Run.CreatedAt.Equal(from.Add(time.Nanosecond)) {
		t.Errorf("caller's run changed: %+v", runs[0].Run)
	}
	if r := rs[0]; r.Pipeline != "p" || r.Trigger != TriggerBackfill || r.State == "" || !r.CreatedAt.Equal(from) {
		t.Errorf("prepared run = %+v", r)
	}
	if b.Runs != 1 || b.State != BackfillRunning {
		t.Errorf("prepared backfill = %+v", b)
	}
}
