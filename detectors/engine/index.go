package engine

import (
	"fmt"
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
	pc, ok := t.cond.(PinnedCondition)
	if !ok {
		idx.unpinned = append(idx.unpinned, t)
		return
	}
	field, values, ok := pc.Pins()
	if !ok || field == "" || len(values) == 0 {
		idx.unpinned = append(idx.unpinned, t)
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
		n := 0
		for _, m := range idx.pinned {
			for _, ts := range m {
				n += len(ts)
			}
		}
		fmt.Fprintf(&b, "%s: %d pinned on %v, %d unpinned; ", src, n, idx.fields, len(idx.unpinned))
	}
	return strings.TrimSuffix(b.String(), "; ")
}
