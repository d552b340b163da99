package sigma

import (
	"slices"
	"strings"

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
		Of: func(act map[string]any) (string, bool) {
			s, ok := lowerField(act, &spec)
			if !ok {
				return "", false
			}
			return s[strings.LastIndexByte(s, '/')+1:], true
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
