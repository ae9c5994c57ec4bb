package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestInvalidText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"ascii", `{"a":"b"}`, -1},
		{"multibyte", `{"a":"日本 é"}`, -1},
		{"U+FFFD itself", "\"\uFFFD\\ufffd\"", -1},
		{"raw invalid byte", "\"ab\xff\"", 3},
		{"truncated sequence", "\"\xe2\x82\"", 1},
		{"encoded surrogate", "\"\xed\xa0\x80\"", 1},
		{"escaped BMP", `"\u00e9\u65e5"`, -1},
		{"surrogate pair", `"\ud83d\ude00"`, -1},
		{"lone high", `"x\ud83dy"`, 2},
		{"lone high at end", `"\ud83d`, 1},
		{"high then non-low", `"\ud83d\u0041"`, 1},
		{"high then high", `"\ud83d\ud83d"`, 1},
		{"lone low", `"\ude00"`, 1},
		{"escaped backslash before u", `"\\ud800"`, -1},
		{"escaped quote", `"\"\ud800"`, 3},
		{"bad hex is the decoder's", `"\uzzzz"`, -1},
	}
	for _, tt := range tests {
		if got := invalidText([]byte(tt.in)); got != tt.want {
			t.Errorf("%s: invalidText(%q) = %d, want %d", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestClientRefusesNonUTF8Params: json.Marshal would send the value with
// U+FFFD in place of its bad bytes, so the client refuses it before asking.
func TestClientRefusesNonUTF8Params(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the server was asked: %s %s", r.Method, r.URL)
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Trigger(context.Background(), "hello", map[string]string{"who": "b\xffb"}, "tester")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalidParams || !strings.Contains(e.Message, `param "who"`) {
		t.Errorf("Trigger = %v, want invalid_params naming the param", err)
	}
}
