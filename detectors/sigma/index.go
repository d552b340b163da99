package sigma

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// Most Sigma rules name the program they are about by the end of its path
// (Image|endswith: '/whoami'), and such a rule cannot match an event whose path ends in
// another name. A rule whose detection has such a conjunct is keyed (engine.KeyedCondition)
// by the last path element of that field, lower-cased as Sigma compares, so the engine only
// evaluates it for events that name one of its programs.

// IndexKey returns the rule's key, if it has one: see keyOf.
func (c *ruleCondition) IndexKey() (engine.IndexKey, []string, bool) {
	return c.key, c.keyValues, c.key.Name != ""
}

// keyOf finds, for a rule of one target, the conjunct of its detection that fixes the last
// path element of a field to the fewest values, and returns the key reading that element of
// the event's field and the values. Rules of several targets (auditd) are not keyed.
func keyOf(targets []compiledTarget) (engine.IndexKey, []string) {
	if len(targets) != 1 {
		return engine.IndexKey{}, nil
	}
	var (
		best     *fieldSpec
		bestVals []string
	)
	for _, n := range conjunctsOf(targets[0].node, nil) {
		spec, vals, ok := lastElements(n)
		if ok && (best == nil || len(vals) < len(bestVals)) {
			best, bestVals = &spec, vals
		}
	}
	if best == nil {
		return engine.IndexKey{}, nil
	}
	spec := *best
	return engine.IndexKey{
		Name: "sigma: last path element of " + spec.Path + ", lower-cased",
		// Only the last element is lower-cased ('/' is never part of another character's
		// encoding, so it is the last element of the lower-cased field).
		Of: func(act engine.Fields) (string, bool) {
			v, ok := spec.get(act)
			if !ok {
				return "", false
			}
			s, ok := valueString(v)
			if !ok {
				return "", false
			}
			return strings.ToLower(s[strings.LastIndexByte(s, '/')+1:]), true
		},
	}, bestVals
}

// conjunctsOf appends the nodes that must all hold for n to hold.
func conjunctsOf(n node, out []node) []node {
	if a, ok := n.(andNode); ok {
		for _, x := range a {
			out = conjunctsOf(x, out)
		}
		return out
	}
	return append(out, n)
}

// lastElements reports whether n is a field compared with case-insensitive values that each
// fix what the field holds after its last '/', and returns the field and those elements.
func lastElements(n node) (fieldSpec, []string, bool) {
	var (
		spec fieldSpec
		gs   []*glob
	)
	switch x := n.(type) {
	case *leaf:
		spec = x.spec
		switch m := x.m.(type) {
		case *glob:
			gs = []*glob{m}
		case anyOf:
			for _, mm := range m {
				g, ok := mm.(*glob)
				if !ok {
					return spec, nil, false
				}
				gs = append(gs, g)
			}
		}
	case *globs:
		spec, gs = x.spec, x.gs
	}
	if len(gs) == 0 {
		return spec, nil, false
	}
	var vals []string
	for _, g := range gs {
		e, ok := g.lastElement()
		if !ok {
			return spec, nil, false
		}
		if !slices.Contains(vals, e) {
			vals = append(vals, e)
		}
	}
	return spec, vals, true
}

// lastElement returns what every value g matches holds after its last '/', when g fixes it:
// g is case-insensitive and either exact or anchored at the end on a literal with a '/'.
func (g *glob) lastElement() (string, bool) {
	if g.cased || g.runes != nil {
		return "", false
	}
	if g.exact {
		return g.lit[strings.LastIndexByte(g.lit, '/')+1:], true
	}
	if !g.anchorEnd {
		return "", false
	}
	last := g.segs[len(g.segs)-1]
	i := strings.LastIndexByte(last, '/')
	if i < 0 {
		return "", false
	}
	return last[i+1:], true
}

// Rules that search free text (CommandLine|contains: 'base64 -d') cannot be keyed by a value,
// but each can only match an event whose text holds some literal: the longest run of plain
// characters of each value it requires. A rule offers (engine.LiteralCondition) the literals
// of one conjunct of its detection that must hold, searched in the lower-cased field, as
// Sigma compares by default; the engine finds every rule's literals in an event at once
// (Aho-Corasick) and evaluates only the rules whose literals occur. A cased value's literal is
// lower-cased too: a text that holds it holds its lower-cased form once lower-cased. A regular
// expression, a comparison, a negation and the like offer nothing, and a conjunct made of
// them cannot index its rule.

// Literals returns the literals one of which an event must hold for the rule to match, and
// false when the detection has no conjunct that requires any.
func (c *ruleCondition) Literals() ([]engine.LiteralSet, bool) {
	return c.literals, c.literals != nil
}

// Literals of an event_count's conditions: the union of theirs, when each has some.
func (a anyCondition) Literals() ([]engine.LiteralSet, bool) {
	var sets []engine.LiteralSet
	for _, c := range a {
		lc, ok := c.(engine.LiteralCondition)
		if !ok {
			return nil, false
		}
		s, ok := lc.Literals()
		if !ok {
			return nil, false
		}
		sets = engine.UnionLiterals(sets, s)
	}
	return sets, len(sets) > 0
}

// literalsOfTargets is the union of the literals of each target's detection, nil when one
// has none.
func literalsOfTargets(targets []compiledTarget) []engine.LiteralSet {
	var sets []engine.LiteralSet
	for _, t := range targets {
		s, ok := literalsOf(t.node)
		if !ok {
			return nil
		}
		sets = engine.UnionLiterals(sets, s)
	}
	return sets
}

// literalsOf returns literal sets such that n holds only on events in which a literal of
// one of them occurs, and false when there are none.
func literalsOf(n node) ([]engine.LiteralSet, bool) {
	switch x := n.(type) {
	case *leaf:
		vals, ok := matcherLiterals(x.m)
		if !ok {
			return nil, false
		}
		return []engine.LiteralSet{{Key: fieldText(x.spec), Values: vals}}, true
	case *globs:
		var vals []string
		for _, g := range x.gs {
			l, ok := g.literal()
			if !ok {
				return nil, false
			}
			vals = appendNew(vals, l)
		}
		return []engine.LiteralSet{{Key: fieldText(x.spec), Values: vals}}, true
	case *keyword:
		vals, ok := matcherLiterals(x.m)
		if !ok {
			return nil, false
		}
		return []engine.LiteralSet{{Key: keywordText(x.fields), Values: vals}}, true
	case andNode: // one conjunct is enough: the most selective
		var best []engine.LiteralSet
		for _, c := range x {
			if s, ok := literalsOf(c); ok && (best == nil || engine.LiteralScore(s) < engine.LiteralScore(best)) {
				best = s
			}
		}
		return best, best != nil
	case orNode:
		return unionOf(x)
	case atLeast: // n >= 1 of the nodes hold: one of them does
		if x.n < 1 {
			return nil, false
		}
		return unionOf(x.nodes)
	}
	return nil, false
}

func unionOf(ns []node) ([]engine.LiteralSet, bool) {
	var sets []engine.LiteralSet
	for _, c := range ns {
		s, ok := literalsOf(c)
		if !ok {
			return nil, false
		}
		sets = engine.UnionLiterals(sets, s)
	}
	return sets, len(sets) > 0
}

// matcherLiterals returns the literal of each value a matcher accepts (one of which a
// matching value holds), and false when one has none.
func matcherLiterals(m matcher) ([]string, bool) {
	switch x := m.(type) {
	case *glob:
		l, ok := x.literal()
		return []string{l}, ok
	case anyOf:
		var vals []string
		for _, mm := range x {
			g, ok := mm.(*glob)
			if !ok {
				return nil, false
			}
			l, ok := g.literal()
			if !ok {
				return nil, false
			}
			vals = appendNew(vals, l)
		}
		return vals, len(vals) > 0
	}
	return nil, false
}

// literal is the longest run of plain characters of the pattern, lower-cased: every value
// g matches holds it once lower-cased. False when the pattern has none (* alone, an empty value).
func (g *glob) literal() (string, bool) {
	var best string
	switch {
	case g.runes != nil:
		start := 0
		for i := 0; i <= len(g.runes); i++ {
			// A run ends at a wildcard, and at the replacement character: an invalid byte of
			// the value decodes to it as a rune but is not its encoding in the text.
			if i == len(g.runes) || g.runes[i] < 0 || g.runes[i] == utf8.RuneError {
				if run := string(g.runes[start:i]); len(run) > len(best) {
					best = run
				}
				start = i + 1
			}
		}
	case g.exact:
		best = g.lit
	default:
		for _, s := range g.segs {
			if len(s) > len(best) {
				best = s
			}
		}
	}
	if g.cased || g.runes != nil {
		best = strings.ToLower(best)
	}
	return best, best != ""
}

// fieldText is the key of a field's lower-cased text, shared with every rule reading it. An
// element of a list (process.args[2]) is searched for in the whole list's text, its elements
// lower-cased and joined by NUL: one search for every element any rule reads.
func fieldText(spec fieldSpec) engine.IndexKey {
	list, _, isElem := strings.Cut(spec.Path, "[")
	if !isElem {
		return engine.IndexKey{
			Name: "sigma: " + spec.Path + ", lower-cased",
			Of:   func(act engine.Fields) (string, bool) { return lowerField(act, &spec) },
		}
	}
	name := "sigma: " + list + "[*], lower-cased"
	get := getter(list)
	return engine.IndexKey{Name: name, Of: func(act engine.Fields) (string, bool) {
		cache := loweredCache(act)
		if l, ok := cache.get(name); ok {
			return l.s, l.ok
		}
		var l lowered
		v, _ := get(act)
		var b strings.Builder
		add := func(e any) {
			if s, ok := valueString(e); ok {
				if l.ok {
					b.WriteByte(0)
				}
				writeLower(&b, s)
				l.ok = true
			}
		}
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				add(e)
			}
		case []string:
			for _, e := range x {
				add(e)
			}
		}
		l.s = b.String()
		cache.put(name, l)
		return l.s, l.ok
	}}
}

// keywordText is the key of the lower-cased texts of keyword fields, joined by NUL: a
// keyword is searched in each of them, and a literal found across the join only makes a
// rule a candidate in vain.
func keywordText(fields []fieldSpec) engine.IndexKey {
	paths := make([]string, len(fields))
	for i, f := range fields {
		paths[i] = f.Path
	}
	name := "sigma: " + strings.Join(paths, " + ") + ", lower-cased"
	return engine.IndexKey{Name: name, Of: func(act engine.Fields) (string, bool) {
		cache := loweredCache(act)
		if l, ok := cache.get(name); ok {
			return l.s, l.ok
		}
		var b strings.Builder
		var l lowered
		for i := range fields {
			if s, ok := lowerField(act, &fields[i]); ok {
				if l.ok {
					b.WriteByte(0)
				}
				b.WriteString(s)
				l.ok = true
			}
		}
		l.s = b.String()
		cache.put(name, l)
		return l.s, l.ok
	}}
}

// writeLower writes s lower-cased as strings.ToLower does, without a copy for ASCII text.
func writeLower(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			b.WriteString(strings.ToLower(s))
			return
		}
	}
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
}

func appendNew(vals []string, v string) []string {
	if slices.Contains(vals, v) {
		return vals
	}
	return append(vals, v)
}
