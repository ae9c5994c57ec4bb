package migrate

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []string // names in order
		wantErr string
	}{
		{"in order", fstest.MapFS{"m/0002_b.sql": file("B"), "m/0001_a.sql": file("A"), "m/README": file("x")}, []string{"0001_a.sql", "0002_b.sql"}, ""},
		{"empty", fstest.MapFS{"m/README": file("x")}, nil, ""},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, nil, "expected version 2"},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": file("A"), "m/1_again.sql": file("A")}, nil, "expected version 2"},
		{"starts at 2", fstest.MapFS{"m/0002_b.sql": file("B")}, nil, "expected version 1"},
		{"bad name", fstest.MapFS{"m/init.sql": file("A")}, nil, "NNNN_description.sql"},
		{"zero", fstest.MapFS{"m/0000_a.sql": file("A")}, nil, "NNNN > 0"},
		{"missing dir", fstest.MapFS{}, nil, "load migrations from m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := Load(tt.files, "m")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, m := range ms {
				names = append(names, m.Name)
				if m.Version != i+1 || m.SQL == "" {
					t.Errorf("migration %d = %+v", i, m)
				}
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Errorf("loaded %v, want %v", names, tt.want)
			}
		})
	}
}

func TestPending(t *testing.T) {
	ms := []Migration{{Version: 1, Name: "0001_a.sql"}, {Version: 2, Name: "0002_b.sql"}, {Version: 3, Name: "0003_c.sql"}}
	tests := []struct {
		current int
		want    int // number pending, -1 for an error
		tooNew  bool
	}{
		{0, 3, false}, {1, 2, false}, {3, 0, false}, {4, -1, true}, {-1, -1, false},
	}
	for _, tt := range tests {
		got, err := Pending(ms, tt.current)
		if tt.want < 0 {
			if err == nil {
				t.Errorf("Pending(%d) succeeded", tt.current)
			}
			if errors.Is(err, ErrTooNew) != tt.tooNew {
				t.Errorf("Pending(%d): errors.Is(%v, ErrTooNew) = %v", tt.current, err, !tt.tooNew)
			}
			continue
		}
		if err != nil || len(got) != tt.want || (len(got) > 0 && got[0].Version != tt.current+1) {
			t.Errorf("Pending(%d) = %+v, %v; want %d starting at %d", tt.current, got, err, tt.want, tt.current+1)
		}
	}
	var tn *TooNewError
	if _, err := Pending(ms, 9); !errors.As(err, &tn) || tn.Database != 9 || tn.Known != 3 ||
		!strings.Contains(err.Error(), "version 9 is newer than this tasuki supports (3)") {
		t.Errorf("Pending(9) = %v", err)
	}
}
