package spec

import (
	"fmt"
	"strings"
	"testing"
)

func TestParamSizeLimits(t *testing.T) {
	p := &Pipeline{Name: "sized", Params: []Param{
		{Name: "note"},
		{Name: "other"},
		{Name: "third"},
		{Name: "fourth"},
		{Name: "fifth"},
		{Name: "items", Type: ParamList},
		{Name: "n", Type: ParamInt},
	}}
	atLimit := strings.Repeat("x", MaxParamValue)
	over := strings.Repeat("x", MaxParamValue+1)
	// 22,000 one-letter items: 43,999 bytes as given, 88,001 as JSON.
	manyItems := strings.TrimSuffix(strings.Repeat("a,", 22000), ",")
	tests := []struct {
		name  string
		given map[string]string
		want  string // "" for no error
	}{
		{"at the limit", map[string]string{"note": atLimit}, ""},
		{"one byte over", map[string]string{"note": over},
			fmt.Sprintf(`param "note": value is %d bytes, over the limit of 65536 bytes (64 KiB) per param; put large data in a file and pass its path`, MaxParamValue+1)},
		{"a megabyte", map[string]string{"note": strings.Repeat("m", 1<<20)}, `param "note": value is 1048576 bytes, over the limit of 65536 bytes (64 KiB) per param`},
		{"over for any type", map[string]string{"n": over}, `param "n": value is 65537 bytes`},
		{"a list that grows as JSON", map[string]string{"items": manyItems}, `param "items": value is 88001 bytes, over the limit`},
		{"four at the limit", map[string]string{"note": atLimit, "other": atLimit, "third": atLimit, "fourth": atLimit}, ""},
		{"five at the limit", map[string]string{"note": atLimit, "other": atLimit, "third": atLimit, "fourth": atLimit, "fifth": "y"},
			`params are 262145 bytes together, over the limit of 262144 bytes (256 KiB) for all params of a run`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.ResolveParams(tt.given)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ResolveParams: %v", err)
				}
				if _, err := p.ParamEnv(got); err != nil {
					t.Fatalf("ParamEnv: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParamDefaultSizeLimit(t *testing.T) {
	src := "name: big\nparams:\n  - name: blob\n    default: " + strings.Repeat("z", MaxParamValue+1) + "\ntasks:\n  - id: a\n    run: 'true'\n"
	_, err := Parse("big.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), `param "blob": default: value is 65537 bytes, over the limit of 65536 bytes (64 KiB) per param`) {
		t.Errorf("Parse: %v", err)
	}
}
