package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/coregx/ahocorasick"
)

// target is one condition the engine evaluates: a rule's, or one step of a sequence.
type target struct {
	rule *Rule
	step int // index in Sequence.Steps; -1 for other kinds
	cond Condition
	// fields is cond when it can be decided from an event's fields (see FieldsCondition)
	fields FieldsCondition
	id     int // position in the rule set's targets, for a stable evaluation order
}

// sourceIndex holds the targets of one source kind: those pinned to field values, looked up
// by the event's value of that field; those keyed, looked up by a key computed from the event;
// those with literals, found by searching texts computed from the event for them; and the
// rest, evaluated for every event.
type sourceIndex struct {
	fields   []string               // pinned fields, sorted
	paths    [][]string             // fields split
	pinned   []map[string][]*target // per field: value -> targets
	keys     []IndexKey             // keys of keyed conditions, in the order first seen
	keyed    []map[string][]*target // per key: value -> targets
	texts    []*textIndex           // per literal key, in the order first seen
	unpinned []*target
}

// textIndex finds the targets whose literals occur in one text of an event.
type textIndex struct {
	key      IndexKey
	literals map[string][]*target // while the set is built: literal -> targets
	ac       *ahocorasick.Automaton
	targets  [][]*target // per pattern of ac
}

// ruleSet is an immutable, indexed set of rules.
type ruleSet struct {
	rules    []*Rule
	byID     map[string]*Rule
	bySource map[string]*sourceIndex
	targets  int
}

func newRuleSet(rules []*Rule, maxCost uint64) (*ruleSet, error) {
	var ps Problems
	for i, r := range rules {
		if !r.prepared { // built in Go, not yet prepared
			ps = append(ps, Prepare(r)...)
		}
		r.order = i
	}
	ps = append(ps, duplicateIDs(rules)...)
	if len(ps) > 0 {
		return nil, ps
	}
	s := &ruleSet{rules: rules, byID: map[string]*Rule{}, bySource: map[string]*sourceIndex{}}
	type planned struct {
		source string
		t      *target
	}
	var targets []planned
	for _, r := range rules {
		s.byID[r.ID] = r
		if r.Kind == KindSequence {
			for i, st := range r.Sequence.Steps {
				cond, p := limitCost(r, fmt.Sprintf("sequence.steps.%d.condition", i), st.Cond, maxCost)
				ps = append(ps, p...)
				targets = append(targets, planned{st.Source, &target{rule: r, step: i, cond: cond}})
			}
			continue
		}
		cond, p := limitCost(r, "condition", r.Cond, maxCost)
		ps = append(ps, p...)
		targets = append(targets, planned{r.Source, &target{rule: r, step: -1, cond: cond}})
	}
	if len(ps) > 0 {
		return nil, ps
	}
	for _, t := range targets {
		s.add(t.source, t.t)
	}
	for _, idx := range s.bySource {
		if err := idx.buildTexts(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// limitCost refuses a CEL condition whose estimated cost is above maxCost, naming the rule's
// file and line, and returns it planned to stop at maxCost when it runs.
func limitCost(r *Rule, key string, c Condition, maxCost uint64) (Condition, Problems) {
	cc, ok := c.(*celCondition)
	if !ok {
		return c, nil
	}
	if cc.cost > maxCost {
		return nil, Problems{{File: r.File, Line: r.lines[key], Msg: fmt.Sprintf("%s: estimated cost %d is above the limit of %d (detector.max_condition_cost): "+
			"bound the lists it iterates, or nest fewer comprehensions", key, cc.cost, maxCost)}}
	}
	limited, err := cc.withCostLimit(maxCost)
	if err != nil {
		return nil, Problems{{File: r.File, Line: r.lines[key], Msg: fmt.Sprintf("%s: %v", key, err)}}
	}
	return limited, nil
}

// sharedField tells a field that most rules of a source and most of its events share a value
// of (the action, the kind): a poor pin, and no literal.
func sharedField(f string) bool { return f == "action" || f == "kind" }

func (s *ruleSet) add(source string, t *target) {
	if t.cond == nil {
		return
	}
	t.id = s.targets
	s.targets++
	if fc, ok := t.cond.(FieldsCondition); ok {
		t.fields = fc
	}
	idx := s.bySource[source]
	if idx == nil {
		idx = &sourceIndex{}
		s.bySource[source] = idx
	}
	var (
		field  string
		values []string
	)
	if pc, ok := t.cond.(PinnedCondition); ok {
		if f, vs, ok := pc.Pins(); ok {
			field, values = f, vs
		}
	}
	// Literals the event must hold, where the condition has them, let fewer events through
	// than a pin most events share.
	if sharedField(field) && idx.addLiterals(t) {
		return
	}
	if field == "" || len(values) == 0 {
		if !idx.addKeyed(t) && !idx.addLiterals(t) {
			idx.unpinned = append(idx.unpinned, t)
		}
		return
	}
	i := sort.SearchStrings(idx.fields, field)
	if i == len(idx.fields) || idx.fields[i] != field {
		idx.fields = append(idx.fields[:i], append([]string{field}, idx.fields[i:]...)...)
		idx.paths = append(idx.paths[:i], append([][]string{strings.Split(field, ".")}, idx.paths[i:]...)...)
		idx.pinned = append(idx.pinned[:i], append([]map[string][]*target{{}}, idx.pinned[i:]...)...)
	}
	for _, v := range values {
		idx.pinned[i][v] = append(idx.pinned[i][v], t)
	}
}

// addKeyed indexes t by its condition's key, if it has one, and reports whether it did.
func (idx *sourceIndex) addKeyed(t *target) bool {
	kc, ok := t.cond.(KeyedCondition)
	if !ok {
		return false
	}
	key, values, ok := kc.IndexKey()
	if !ok || key.Name == "" || key.Of == nil || len(values) == 0 {
		return false
	}
	i := slices.IndexFunc(idx.keys, func(k IndexKey) bool { return k.Name == key.Name })
	if i < 0 {
		i = len(idx.keys)
		idx.keys = append(idx.keys, key)
		idx.keyed = append(idx.keyed, map[string][]*target{})
	}
	for _, v := range values {
		idx.keyed[i][v] = append(idx.keyed[i][v], t)
	}
	return true
}

// addLiterals indexes t by its condition's literals, if it has usable ones, and reports
// whether it did.
func (idx *sourceIndex) addLiterals(t *target) bool {
	lc, ok := t.cond.(LiteralCondition)
	if !ok {
		return false
	}
	sets, ok := lc.Literals()
	if !ok || len(sets) == 0 {
		return false
	}
	for _, set := range sets {
		if set.Key.Name == "" || set.Key.Of == nil || len(set.Values) == 0 || slices.Contains(set.Values, "") {
			return false
		}
	}
	for _, set := range sets {
		i := slices.IndexFunc(idx.texts, func(ti *textIndex) bool { return ti.key.Name == set.Key.Name })
		if i < 0 {
			i = len(idx.texts)
			idx.texts = append(idx.texts, &textIndex{key: set.Key, literals: map[string][]*target{}})
		}
		ti := idx.texts[i]
		for _, v := range set.Values {
			if ts := ti.literals[v]; len(ts) == 0 || ts[len(ts)-1] != t {
				ti.literals[v] = append(ts, t)
			}
		}
	}
	return true
}

// buildTexts compiles the literals of each text into an automaton.
func (idx *sourceIndex) buildTexts() error {
	for _, ti := range idx.texts {
		lits := make([]string, 0, len(ti.literals))
		for l := range ti.literals {
			lits = append(lits, l)
		}
		sort.Strings(lits) // deterministic pattern ids
		ti.targets = make([][]*target, len(lits))
		for i, l := range lits {
			ti.targets[i] = ti.literals[l]
		}
		ac, err := ahocorasick.NewBuilder().AddStrings(lits).Build()
		if err != nil {
			return fmt.Errorf("index the literals of %s: %w", ti.key.Name, err)
		}
		ti.ac, ti.literals = ac, nil
	}
	return nil
}

// scratch is what candidates reuses from one event to the next: the generation at which
// each target was last taken, so a target whose literals occur several times is taken once.
type scratch struct {
	seen []uint32
	gen  uint32
}

// candidates returns the targets an event of a source may match, in rule-set order.
func (s *ruleSet) candidates(source string, ev Fields, buf []*target, sc *scratch) []*target {
	idx := s.bySource[source]
	if idx == nil {
		return buf[:0]
	}
	out := append(buf[:0], idx.unpinned...)
	hit := false
	for i, field := range idx.fields {
		fv, _ := ev.Value(field)
		v, ok := fv.(string)
		if !ok {
			continue
		}
		if ts := idx.pinned[i][v]; len(ts) > 0 {
			out = append(out, ts...)
			hit = true
		}
	}
	for i, k := range idx.keys {
		v, ok := k.Of(ev)
		if !ok {
			continue
		}
		if ts := idx.keyed[i][v]; len(ts) > 0 {
			out = append(out, ts...)
			hit = true
		}
	}
	if len(idx.texts) > 0 {
		if len(sc.seen) < s.targets {
			sc.seen, sc.gen = make([]uint32, s.targets), 0
		}
		if sc.gen++; sc.gen == 0 { // wrapped: forget every mark
			clear(sc.seen)
			sc.gen = 1
		}
		for _, ti := range idx.texts {
			text, ok := ti.key.Of(ev)
			if !ok || text == "" {
				continue
			}
			// The automaton only reads the text: view the string's bytes without a copy.
			for _, m := range ti.ac.FindAllOverlapping(unsafe.Slice(unsafe.StringData(text), len(text))) {
				for _, t := range ti.targets[m.PatternID] {
					if sc.seen[t.id] != sc.gen {
						sc.seen[t.id] = sc.gen
						out = append(out, t)
						hit = true
					}
				}
			}
		}
	}
	if hit {
		slices.SortFunc(out, func(a, b *target) int { return a.id - b.id })
	}
	return out
}

// describe says how the set is indexed, for logs.
func (s *ruleSet) describe() string {
	var b strings.Builder
	srcs := make([]string, 0, len(s.bySource))
	for src := range s.bySource {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	for _, src := range srcs {
		idx := s.bySource[src]
		n, keyed := 0, 0
		for _, m := range idx.pinned {
			for _, ts := range m {
				n += len(ts)
			}
		}
		names := make([]string, len(idx.keys))
		for i, m := range idx.keyed {
			names[i] = idx.keys[i].Name
			for _, ts := range m {
				keyed += len(ts)
			}
		}
		var texts []string
		for _, ti := range idx.texts {
			texts = append(texts, fmt.Sprintf("%s (%d literals)", ti.key.Name, ti.ac.PatternCount()))
		}
		fmt.Fprintf(&b, "%s: %d pinned on %v, %d keyed on %v, %d by literals in %v, %d unpinned; ",
			src, n, idx.fields, keyed, names, literalTargets(idx), texts, len(idx.unpinned))
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// literalTargets counts the targets indexed by literals (a target may have literals in
// several texts).
func literalTargets(idx *sourceIndex) int {
	seen := map[*target]bool{}
	for _, ti := range idx.texts {
		for _, ts := range ti.targets {
			for _, t := range ts {
				seen[t] = true
			}
		}
	}
	return len(seen)
}
