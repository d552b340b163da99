package sigma

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// matcher decides whether one field value matches. present is false when the event has no
// such field.
type matcher interface {
	match(v any, present bool) bool
}

// valueString is the string form Sigma compares: strings as they are, numbers in decimal,
// booleans as true or false.
func valueString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int:
		return strconv.Itoa(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

func valueNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// Pattern runes: a Sigma string is a rune slice where these two negative values stand for the
// unescaped wildcards.
const (
	wildMany rune = -1 // *
	wildOne  rune = -2 // ?
)

// parsePattern reads a Sigma string: * and ? are wildcards, \*, \? and \\ their literal
// characters, any other backslash is itself.
func parsePattern(s string) []rune {
	out := make([]rune, 0, len(s))
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\\' && i+1 < len(rs) && (rs[i+1] == '*' || rs[i+1] == '?' || rs[i+1] == '\\'):
			out = append(out, rs[i+1])
			i++
		case r == '*':
			out = append(out, wildMany)
		case r == '?':
			out = append(out, wildOne)
		default:
			out = append(out, r)
		}
	}
	return out
}

func hasWildcard(p []rune) bool {
	for _, r := range p {
		if r < 0 {
			return true
		}
	}
	return false
}

// glob is a precompiled Sigma string match: exact, or segments between * wildcards matched
// with prefix, suffix and substring search; only patterns with ? fall back to a rune walk.
// Case-insensitive globs hold their pattern lower-cased and lower-case the value.
type glob struct {
	cased       bool
	exact       bool
	lit         string   // the exact value, lower-cased unless cased
	segs        []string // literal runs between *, lower-cased unless cased
	anchorStart bool
	anchorEnd   bool
	runes       []rune // the whole pattern, for patterns with ?
	example     string // a value that matches, for the test generator
}

func newGlob(p []rune, cased bool) *glob {
	g := &glob{cased: cased}
	norm := func(s string) string {
		if cased {
			return s
		}
		return strings.ToLower(s)
	}
	var ex strings.Builder
	for _, r := range p {
		switch r {
		case wildMany:
		case wildOne:
			ex.WriteByte('x')
		default:
			ex.WriteRune(r)
		}
	}
	g.example = ex.String()
	if !hasWildcard(p) {
		g.exact = true
		g.lit = norm(string(p))
		return g
	}
	for _, r := range p {
		if r == wildOne {
			rs := make([]rune, len(p))
			for i, r := range p {
				if r >= 0 && !cased {
					r = []rune(strings.ToLower(string(r)))[0]
				}
				rs[i] = r
			}
			g.runes = rs
			return g
		}
	}
	g.anchorStart = p[0] != wildMany
	g.anchorEnd = p[len(p)-1] != wildMany
	var cur []rune
	for _, r := range p {
		if r == wildMany {
			g.segs = append(g.segs, norm(string(cur)))
			cur = cur[:0]
			continue
		}
		cur = append(cur, r)
	}
	g.segs = append(g.segs, norm(string(cur)))
	return g
}

func (g *glob) match(v any, present bool) bool {
	if !present {
		return false
	}
	s, ok := valueString(v)
	if !ok {
		return false
	}
	return g.matchString(s)
}

func (g *glob) matchString(s string) bool {
	if !g.cased {
		s = strings.ToLower(s) // no copy when s has no upper-case letter
	}
	return g.matchNormalized(s)
}

// matchNormalized matches s, already lower-cased unless the glob is cased.
func (g *glob) matchNormalized(s string) bool {
	if g.runes != nil {
		return matchRunes(g.runes, []rune(s))
	}
	if g.exact {
		return s == g.lit
	}
	start, end := 0, len(s)
	segs := g.segs
	if g.anchorStart {
		first := segs[0]
		if !strings.HasPrefix(s, first) {
			return false
		}
		start = len(first)
	}
	if g.anchorEnd {
		last := segs[len(segs)-1]
		if len(s)-len(last) < start || !strings.HasSuffix(s, last) {
			return false
		}
		end = len(s) - len(last)
	}
	for _, seg := range segs[1 : len(segs)-1] {
		if seg == "" {
			continue
		}
		i := strings.Index(s[start:end], seg)
		if i < 0 {
			return false
		}
		start += i + len(seg)
	}
	return true
}

// matchRunes matches a pattern with * and ? against s, both already case-normalised.
func matchRunes(p, s []rune) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == wildOne || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == wildMany:
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == wildMany {
		pi++
	}
	return pi == len(p)
}

// anyOf matches when one of its matchers does (value variants of windash, base64offset).
type anyOf []matcher

func (a anyOf) match(v any, present bool) bool {
	for _, m := range a {
		if m.match(v, present) {
			return true
		}
	}
	return false
}

// regex is the re modifier: Go's RE2, case-sensitive unless the i sub-modifier is given.
type regex struct {
	re      *regexp.Regexp
	example string
}

func (r *regex) match(v any, present bool) bool {
	if !present {
		return false
	}
	s, ok := valueString(v)
	return ok && r.re.MatchString(s)
}

// cidr is the cidr modifier: the field is an IP address inside the prefix.
type cidr struct{ prefix netip.Prefix }

func (c cidr) match(v any, present bool) bool {
	s, ok := v.(string)
	if !present || !ok {
		return false
	}
	a, err := netip.ParseAddr(s)
	return err == nil && c.prefix.Contains(a.Unmap())
}

// compare is the gt, gte, lt and lte modifiers.
type compare struct {
	op string
	n  float64
}

func (c compare) match(v any, present bool) bool {
	if !present {
		return false
	}
	f, ok := valueNumber(v)
	if !ok {
		return false
	}
	switch c.op {
	case "gt":
		return f > c.n
	case "gte":
		return f >= c.n
	case "lt":
		return f < c.n
	}
	return f <= c.n
}

// exists is the exists modifier. crumbs records carry every field of their schema and write
// an unknown string as empty, so a field exists when it is present and not the empty string.
type exists struct{ want bool }

func (e exists) match(v any, present bool) bool {
	return isSet(v, present) == e.want
}

func isSet(v any, present bool) bool {
	if !present || v == nil {
		return false
	}
	if s, ok := v.(string); ok && s == "" {
		return false
	}
	return true
}

// null is a null value: the field is absent, null or empty.
type null struct{}

func (null) match(v any, present bool) bool { return !isSet(v, present) }
