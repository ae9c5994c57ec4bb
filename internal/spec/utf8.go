package spec

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// maxUTF8Errors bounds how many lines with invalid UTF-8 one file reports: a
// binary file dropped into the pipelines directory needs one clear message,
// not one per line.
const maxUTF8Errors = 10

// checkUTF8 refuses text that is not UTF-8. The YAML parser would quietly
// turn each invalid byte into U+FFFD, so a command written in another
// encoding would validate and then run with different bytes than its file
// holds. It reports the first invalid byte of each line (up to
// maxUTF8Errors), at its 1-based line and column; columns count characters,
// as the parser's do, an invalid byte counting as one.
func checkUTF8(file string, data []byte) ErrorList {
	if utf8.Valid(data) {
		return nil
	}
	var errs ErrorList
	line := 1
	for len(data) > 0 && len(errs) < maxUTF8Errors {
		text, rest, _ := bytes.Cut(data, []byte{'\n'})
		if i, bad := firstInvalid(text); bad != nil {
			errs = append(errs, &Error{File: file, Line: line, Col: utf8.RuneCount(text[:i]) + 1,
				Msg: fmt.Sprintf("invalid UTF-8 (byte 0x%02x); a pipeline file must be UTF-8 text (was it saved in another encoding?)", bad[0])})
		}
		data, line = rest, line+1
	}
	return errs
}

// firstInvalid returns the offset and bytes of the first invalid UTF-8
// sequence of b, or a nil slice when b is valid.
func firstInvalid(b []byte) (int, []byte) {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i, b[i : i+1]
		}
		i += size
	}
	return 0, nil
}

// CheckText reports whether s, a value that arrived from outside (a
// parameter on the command line or in an API request), is UTF-8 text. what
// names the value in the error (for example `param "day"`). Such values are
// stored as JSON and shown in timelines; encoding them would replace invalid
// bytes with U+FFFD, so the value a task saw and the value recorded would
// differ. They are refused instead.
func CheckText(what, s string) error {
	if utf8.ValidString(s) {
		return nil
	}
	i, bad := firstInvalid([]byte(s))
	return fmt.Errorf("%s: invalid UTF-8 at byte %d (0x%02x); values must be UTF-8 text", what, i+1, bad[0])
}
