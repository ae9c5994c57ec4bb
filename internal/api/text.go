package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf16"
	"unicode/utf8"
)

// encoding/json turns bytes that are not UTF-8, and \u escapes of lone
// surrogates, into U+FFFD without a word. A parameter value or a name that
// arrives that way would be recorded, shown and handed to tasks as something
// else than what the caller sent, so the operator's requests refuse them.

// invalidText returns the offset of the first byte of a JSON text that is
// not UTF-8 or starts a \u escape of a lone surrogate, or -1 when there is
// none. It does not check the JSON itself: the decoder does that.
func invalidText(data []byte) int {
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '\\' && i+1 < len(data) && data[i+1] == 'u':
			r, ok := hex4(data, i+2)
			switch {
			case !ok:
				i += 2 // not an escape the decoder accepts; it will say so
			case utf16.IsSurrogate(r):
				if r >= 0xdc00 {
					return i // a low surrogate without its high one
				}
				if i+12 > len(data) || data[i+6] != '\\' || data[i+7] != 'u' {
					return i
				}
				if lo, ok := hex4(data, i+8); !ok || utf16.DecodeRune(r, lo) == utf8.RuneError {
					return i
				}
				i += 12
			default:
				i += 6
			}
		case c == '\\':
			i += 2 // \" \\ \n ...: the escaped byte is not a backslash to look at
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				return i
			}
			i += size
		}
	}
	return -1
}

// hex4 reads four hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// checkText answers raw JSON that is not UTF-8 text with a 400 that says
// where; what names the value (`param "day"`, "request body").
func checkText(what string, raw []byte) error {
	if i := invalidText(raw); i >= 0 {
		return invalid("%s: invalid UTF-8 at byte %d (strings must be UTF-8 text; a \\u escape must not be a lone surrogate)", what, i+1)
	}
	return nil
}

// decodeText is decodeBody for a request whose strings end up in runs and
// timelines (a backfill's parameters): it also refuses text that is not
// UTF-8.
func decodeText(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body over %d bytes", tooBig.Limit)
	case err != nil:
		return invalid("reading the request body: %v", err)
	}
	if err := checkText("request body", data); err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	return decodeBody(w, r, v, emptyOK)
}

// paramTextChecked is paramText for a value that must also be UTF-8 text.
func paramTextChecked(name string, raw []byte) (string, error) {
	if err := checkText(fmt.Sprintf("param %q", name), raw); err != nil {
		return "", ParamError(name, "%s", err.Error())
	}
	return paramText(name, raw)
}
