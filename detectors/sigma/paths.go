package sigma

import (
	"fmt"
	"regexp"
	"strings"
)

// WindowsPath is a value of a Linux rule written as a Windows path ('\bash', 'C:\...',
// 'dir\file'): Linux paths and command lines separate with '/', so it never matches what it
// means to. Lint warns of each.
type WindowsPath struct {
	Search string // the search identifier
	Field  string // the field with its modifiers, or "(keywords)"
	Value  string // the value as written
}

// A drive (C:\ at the start of the value or of a word), and a backslash before a path
// element. An element that is a character escape of a command line (\n, \x41, \u00e9, \101)
// is not a path: elements of one character and hex, unicode and octal escapes are left out.
var (
	driveRe   = regexp.MustCompile(`(^|[^A-Za-z0-9])[A-Za-z]:\\`)
	elementRe = regexp.MustCompile(`\\([A-Za-z0-9_$%{][A-Za-z0-9_.$%{}-]*)`)
	escapeRe  = regexp.MustCompile(`^(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{4}|[0-7]{1,3})$`)
)

// windowsPaths lists the values of a detection that look like Windows paths, by search and
// field in order. Regular expressions (re) are left out: their backslashes are escapes.
func windowsPaths(det *Detection) []WindowsPath {
	var out []WindowsPath
	check := func(search, field string, v any) {
		s, ok := v.(string)
		if ok && looksWindowsPath(s) {
			out = append(out, WindowsPath{Search: search, Field: field, Value: s})
		}
	}
	for _, name := range det.searchNames() {
		v := det.Searches[name]
		items := []any{v}
		if l, ok := v.([]any); ok {
			items = l
		}
		for _, item := range items {
			m, ok := item.(map[string]any)
			if !ok {
				check(name, "(keywords)", item)
				continue
			}
			for _, key := range sortedKeys(m) {
				_, mods, _ := strings.Cut(key, "|")
				if chain, err := parseMods(splitMods(mods)); err != nil || chain.has("re") {
					continue
				}
				field := key
				if field == "" || strings.HasPrefix(field, "|") {
					field = "(keywords)" + field
				}
				for _, val := range values(m[key]) {
					check(name, field, val)
				}
			}
		}
	}
	return out
}

// looksWindowsPath resolves Sigma's escapes (\\ is a backslash; \* and \? are the literal
// characters) and tells whether what is left holds a drive or a backslash separator.
func looksWindowsPath(s string) bool {
	if !strings.Contains(s, `\`) {
		return false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?') {
			i++ // a literal wildcard character, not a separator
			b.WriteByte('#')
			continue
		}
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == '\\' {
			i++
		}
		b.WriteByte(s[i])
	}
	v := b.String()
	if driveRe.MatchString(v) {
		return true
	}
	for _, m := range elementRe.FindAllStringSubmatch(v, -1) {
		if len(m[1]) > 1 && !escapeRe.MatchString(m[1]) {
			return true
		}
	}
	return false
}

// windowsPathWarning is the lint warning of one such value.
func windowsPathWarning(title string, p WindowsPath) string {
	return fmt.Sprintf("rule %q: %s: field %s: value '%s' looks like a Windows path; Linux paths and command lines use '/', so it never matches a Linux event as meant",
		title, p.Search, p.Field, p.Value)
}
