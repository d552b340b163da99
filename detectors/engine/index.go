package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// target is one condition the engine evaluates: a rule's, or one step of a sequence.
type target struct {
	rule *Rule
	step int // index in Sequence.Steps; -1 for other kinds
	cond Condition
	id   int // position in the rule set's targets, for a stable evaluation order
}

// sourceIndex holds the targets of one source kind: those pinned to field values, looked up
// by the event's value of that field, and the rest, evaluated for every event.
type sourceIndex struct {
	fields   []string               // pinned fields, sorted
	paths    [][]string             // fields split
	pinned   []map[string][]*target // per field: value -> targets
	keys     []IndexKey             // keys of keyed conditions, in the order first seen
	keyed    []map[string][]*target // per key: value -> targets
	unpinned []*target
}

// ruleSet is an immutable, indexed set of rules.
type ruleSet struct {
	rules    []*Rule
	byID     map[string]*Rule
	bySource map[string]*sourceIndex
	targets  int
}

func newRuleSet(rules []*Rule) (*ruleSet, error) {
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
	for _, r := range rules {
		s.byID[r.ID] = r
		if r.Kind == KindSequence {
			for i, st := range r.Sequence.Steps {
				s.add(st.Source, &target{rule: r, step: i, cond: st.Cond})
			}
			continue
		}
		s.add(r.Source, &target{rule: r, step: -1, cond: r.Cond})
	}
	return s, nil
}

func (s *ruleSet) add(source string, t *target) {
	if t.cond == nil {
		return
	}
	t.id = s.targets
	s.targets++
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
	if field == "" || len(values) == 0 {
		if !idx.addKeyed(t) {
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

// candidates returns the targets an event of a source may match, in rule-set order.
func (s *ruleSet) candidates(source string, act map[string]any, buf []*target) []*target {
	idx := s.bySource[source]
	if idx == nil {
		return buf[:0]
	}
	out := append(buf[:0], idx.unpinned...)
	pinnedHit := false
	for i, p := range idx.paths {
		v, ok := lookup(act, p).(string)
		if !ok {
			continue
		}
		if ts := idx.pinned[i][v]; len(ts) > 0 {
			out = append(out, ts...)
			pinnedHit = true
		}
	}
	for i, k := range idx.keys {
		v, ok := k.Of(act)
		if !ok {
			continue
		}
		if ts := idx.keyed[i][v]; len(ts) > 0 {
			out = append(out, ts...)
			pinnedHit = true
		}
	}
	if pinnedHit {
		sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
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
		fmt.Fprintf(&b, "%s: %d pinned on %v, %d keyed on %v, %d unpinned; ", src, n, idx.fields, keyed, names, len(idx.unpinned))
	}
	return strings.TrimSuffix(b.String(), "; ")
}
