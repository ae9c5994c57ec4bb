package cond

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEval(t *testing.T) {
	tests := []struct {
		cond, body string
		want       bool
		wantErr    string
	}{
		{`body.status == "ready"`, `{"status":"ready"}`, true, ""},
		{`body.status == "ready"`, `{"status":"pending"}`, false, ""},
		{`body.status == "ready"`, `{}`, false, ""},
		{`len(body.items) > 0`, `{"items":[1]}`, true, ""},
		{`len(body.items) > 0`, `{"items":[]}`, false, ""},
		{`body.count >= 3 && body.ok`, `{"count":3,"ok":true}`, true, ""},
		{`body[0].id == 7`, `[{"id":7}]`, true, ""},
		{`"eur" in body.currencies`, `{"currencies":["usd","eur"]}`, true, ""},
		{`body.a.b == 1`, `{"a":"text"}`, false, "condition"},
	}
	for _, tt := range tests {
		c, err := Compile(tt.cond)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.cond, err)
		}
		var body any
		if err := json.Unmarshal([]byte(tt.body), &body); err != nil {
			t.Fatal(err)
		}
		got, err := c.Eval(body)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s on %s: err = %v, want one containing %q", tt.cond, tt.body, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s on %s = %v, %v; want %v", tt.cond, tt.body, got, err, tt.want)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	for _, src := range []string{`body.status ==`, `1 + 1`, `"text"`, `status == "x"`, strings.Repeat("x", MaxLen+1)} {
		if _, err := Compile(src); err == nil {
			t.Errorf("Compile(%.40q) accepted it", src)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("Compile(%.40q): error spans lines: %q", src, err)
		}
	}
}
