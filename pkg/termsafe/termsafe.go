// Package termsafe makes text that came from watched hosts (command lines, file names, user
// and host names, rule titles) safe to print on an analyst's terminal: control characters
// come out as visible escapes (\x1b, \r, \u202e) instead of being obeyed, so an attacker
// cannot move the cursor, rewrite earlier lines, retitle the window or reorder what is read
// with bidirectional overrides. Every terminal printer of crumbs passes its fields through it.
//
// What is escaped: C0 controls (U+0000–U+001F) and DEL, C1 controls (U+0080–U+009F), the
// bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069),
// the line and paragraph separators (U+2028, U+2029), and bytes that are not UTF-8. Everything
// else, backslashes included, is printed as it is.
package termsafe

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Field returns s for one field of a table or a one-line value: every control character
// escaped, tabs and line breaks included.
func Field(s string) string { return quote(s, false) }

// Text returns s for multi-line text (an error message): control characters escaped except
// line feeds and tabs, which keep their layout.
func Text(s string) string { return quote(s, true) }

// Fields applies Field to each of ss.
func Fields(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = Field(s)
	}
	return out
}

func quote(s string, keepLayout bool) string {
	i := firstUnsafe(s, keepLayout)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !unsafeRune(r, keepLayout):
			b.WriteString(s[i : i+size])
		default:
			writeEscape(&b, r)
		}
		i += size
	}
	return b.String()
}

func writeEscape(b *strings.Builder, r rune) {
	switch r {
	case '\a':
		b.WriteString(`\a`)
	case '\b':
		b.WriteString(`\b`)
	case '\f':
		b.WriteString(`\f`)
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	case '\v':
		b.WriteString(`\v`)
	default:
		if r < 0x80 {
			fmt.Fprintf(b, `\x%02x`, r)
		} else {
			fmt.Fprintf(b, `\u%04x`, r)
		}
	}
}

// firstUnsafe returns the index of the first byte of s that needs escaping, or -1.
func firstUnsafe(s string, keepLayout bool) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if unsafeRune(rune(c), keepLayout) {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unsafeRune(r, keepLayout) {
			return i
		}
		i += size
	}
	return -1
}

func unsafeRune(r rune, keepLayout bool) bool {
	switch {
	case r == '\n' || r == '\t':
		return !keepLayout
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true
	}
	return isBidiOrSeparator(r)
}

func isBidiOrSeparator(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200e, r == 0x200f, r == 0x2028, r == 0x2029:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// JSON escapes, in JSON text that encoding/json wrote, the characters it leaves as they are
// but a terminal would obey or reorder (C1 controls, bidirectional formatting characters) as
// \u escapes; the result is valid JSON that decodes to the same values. (encoding/json
// already escapes C0 controls, U+2028 and U+2029.)
func JSON(b []byte) []byte {
	if !bytes.ContainsFunc(b, func(r rune) bool { return r >= 0x80 && r <= 0x9f || isBidiOrSeparator(r) }) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x80 && r <= 0x9f || isBidiOrSeparator(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}
