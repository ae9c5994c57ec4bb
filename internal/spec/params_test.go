package spec

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCoerce(t *testing.T) {
	jst := time.FixedZone("", 9*3600)
	tests := []struct {
		typ     ParamType
		raw     string
		want    any
		wantErr string
	}{
		{"", "anything at all", "anything at all", ""},
		{ParamString, "", "", ""},
		{ParamInt, "42", int64(42), ""},
		{ParamInt, "-7", int64(-7), ""},
		{ParamInt, "4.2", nil, `param "p": expected an integer like 42, got "4.2"`},
		{ParamInt, "99999999999999999999", nil, `param "p": expected an integer like 42, got "99999999999999999999", which is out of range`},
		{ParamInt, " 1", nil, `expected an integer like 42`},
		{ParamFloat, "3.14", 3.14, ""},
		{ParamFloat, "2", 2.0, ""},
		{ParamFloat, "NaN", nil, `param "p": expected a number like 3.14, got "NaN"`},
		{ParamFloat, "Inf", nil, `expected a number like 3.14`},
		{ParamBool, "true", true, ""},
		{ParamBool, "false", false, ""},
		{ParamBool, "1", true, ""},
		{ParamBool, "yes", nil, `param "p": expected true or false, got "yes"`},
		{ParamDate, "2026-01-31", time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), ""},
		{ParamDate, "tomorrow", nil, `param "p": expected a date like 2026-01-31, got "tomorrow"`},
		{ParamDate, "2026-02-30", nil, `expected a date like 2026-01-31`},
		{ParamDatetime, "2026-01-31T09:00:00+09:00", time.Date(2026, 1, 31, 9, 0, 0, 0, jst), ""},
		{ParamDatetime, "2026-01-31T09:00:00.5Z", time.Date(2026, 1, 31, 9, 0, 0, 5e8, time.UTC), ""},
		{ParamDatetime, "2026-01-31", nil, `expected a date and time in RFC 3339 form like 2026-01-31T09:00:00Z, got "2026-01-31"`},
		{ParamList, "a,b , c", []string{"a", "b", "c"}, ""},
		{ParamList, "", []string{}, ""},
		{ParamList, `["a,b", "c"]`, []string{"a,b", "c"}, ""},
		{ParamList, `[]`, []string{}, ""},
		{ParamList, `[1, 2]`, nil, `expected a list of strings`},
		{"integer", "1", nil, `param "p": unknown param type "integer"`},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+"/"+tt.raw, func(t *testing.T) {
			got, err := Param{Name: "p", Type: tt.typ}.Coerce(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Coerce(%q) error = %v, want %q", tt.raw, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Coerce(%q): %v", tt.raw, err)
			}
			if gt, ok := got.(time.Time); ok {
				if !gt.Equal(tt.want.(time.Time)) {
					t.Errorf("Coerce(%q) = %v, want %v", tt.raw, gt, tt.want)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Coerce(%q) = %#v, want %#v", tt.raw, got, tt.want)
			}
		})
	}
}

// TestFormatRoundTrip checks that Format renders what Coerce reads back.
func TestFormatRoundTrip(t *testing.T) {
	tests := []struct {
		typ  ParamType
		raw  string
		want string
	}{
		{ParamString, "a b", "a b"},
		{ParamInt, "0042", "42"},
		{ParamFloat, "1e3", "1000"},
		{ParamFloat, "0.1", "0.1"},
		{ParamBool, "TRUE", "true"},
		{ParamDate, "2026-01-31", "2026-01-31"},
		{ParamDatetime, "2026-01-31T09:00:00+09:00", "2026-01-31T09:00:00+09:00"},
		{ParamDatetime, "2026-01-31T09:00:00.250Z", "2026-01-31T09:00:00.25Z"},
		{ParamList, "a, b", `["a","b"]`},
		{ParamList, `["x,y"]`, `["x,y"]`},
		{ParamList, "", `[]`},
	}
	for _, tt := range tests {
		p := Param{Name: "p", Type: tt.typ}
		v, err := p.Coerce(tt.raw)
		if err != nil {
			t.Fatalf("%s %q: %v", tt.typ, tt.raw, err)
		}
		s, err := p.Format(v)
		if err != nil || s != tt.want {
			t.Errorf("Format(Coerce(%s %q)) = %q, %v; want %q", tt.typ, tt.raw, s, err, tt.want)
		}
		back, err := p.Coerce(s)
		if err != nil {
			t.Errorf("Coerce(Format(...)) = %v", err)
		}
		if s2, _ := p.Format(back); s2 != s {
			t.Errorf("round trip %s %q: %q then %q", tt.typ, tt.raw, s, s2)
		}
	}
	if _, err := (Param{Name: "n", Type: ParamInt}).Format(true); err == nil || !strings.Contains(err.Error(), `param "n": expected an integer like 42, got the boolean true`) {
		t.Errorf("Format(bool) as int: %v", err)
	}
	if s, err := (Param{Name: "n", Type: ParamInt}).Format("17"); err != nil || s != "17" {
		t.Errorf("Format of a raw string = %q, %v", s, err)
	}
}

const paramsPipeline = `name: report
params:
  - name: date
    type: date
    required: true
  - name: limit
    type: int
    default: 100
  - name: tables
    type: list
    default: [orders, users]
  - name: dry-run
    type: bool
  - name: at
    type: datetime
tasks:
  - id: a
    run: echo "$TASUKI_PARAM_DATE"
`

func TestResolveParams(t *testing.T) {
	p, err := Parse("report.yaml", []byte(paramsPipeline))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.ResolveParams(map[string]string{"date": "2026-01-31", "dry-run": "true"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"date":    time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
		"limit":   int64(100),
		"tables":  []string{"orders", "users"},
		"dry-run": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveParams = %#v, want %#v", got, want)
	}
	// The default list is copied, so a caller cannot change the pipeline.
	got["tables"].([]string)[0] = "changed"
	if p.Params[2].Default.([]string)[0] != "orders" {
		t.Error("ResolveParams returned the default's backing array")
	}

	env, err := p.ParamEnv(want)
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{
		"TASUKI_PARAM_DATE=2026-01-31",
		"TASUKI_PARAM_LIMIT=100",
		`TASUKI_PARAM_TABLES=["orders","users"]`,
		"TASUKI_PARAM_DRY_RUN=true",
	}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("ParamEnv = %q, want %q", env, wantEnv)
	}
	if _, err := p.ParamEnv(map[string]any{"nope": 1}); err == nil || !strings.Contains(err.Error(), `unknown param "nope"`) {
		t.Errorf("ParamEnv with an unknown name: %v", err)
	}

	for _, tt := range []struct {
		name  string
		given map[string]string
		want  []string
	}{
		{"missing required", map[string]string{}, []string{`param "date" is required: give a date like 2026-01-31`}},
		{"bad value", map[string]string{"date": "tomorrow"}, []string{`param "date": expected a date like 2026-01-31, got "tomorrow"`}},
		{"unknown with suggestion", map[string]string{"date": "2026-01-31", "dat": "x"}, []string{`unknown param "dat"; did you mean "date"?`}},
		{"unknown", map[string]string{"date": "2026-01-31", "zzz": "x"}, []string{`unknown param "zzz"; pipeline "report" takes date, limit, tables, dry-run, at`}},
		{"several", map[string]string{"limit": "lots", "at": "now"}, []string{
			`param "date" is required`,
			`param "limit": expected an integer like 42, got "lots"`,
			`param "at": expected a date and time in RFC 3339 form`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.ResolveParams(tt.given)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	none := &Pipeline{Name: "plain"}
	if _, err := none.ResolveParams(map[string]string{"x": "1"}); err == nil || !strings.Contains(err.Error(), `pipeline "plain" takes no params`) {
		t.Errorf("unknown param on a pipeline without params: %v", err)
	}
	if got, err := none.ResolveParams(nil); err != nil || len(got) != 0 {
		t.Errorf("ResolveParams(nil) = %v, %v", got, err)
	}
}

func TestResolveParamsHandBuiltDefaults(t *testing.T) {
	p := &Pipeline{Name: "x", Params: []Param{
		{Name: "n", Type: ParamInt, Default: 3},
		{Name: "d", Type: ParamDate, Default: "2026-03-01"},
		{Name: "bad", Type: ParamBool, Default: "maybe"},
	}}
	_, err := p.ResolveParams(nil)
	if err == nil || !strings.Contains(err.Error(), `param "bad": default: expected true or false, got "maybe"`) {
		t.Errorf("err = %v", err)
	}
	p.Params = p.Params[:2]
	got, err := p.ResolveParams(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got["n"] != int64(3) || !got["d"].(time.Time).Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("got %#v", got)
	}
}

func TestEnvNames(t *testing.T) {
	if got := (Param{Name: "dry-run.x"}).EnvName(); got != "TASUKI_PARAM_DRY_RUN_X" {
		t.Errorf("EnvName = %q", got)
	}
}
