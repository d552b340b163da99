package sigma

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/schemas"
)

// The generator builds, from a compiled rule's own detection, an event that raises it (a
// positive) and the same event with one value changed that does not (a negative).

// lit is a detection leaf in a conjunction, negated or not.
type lit struct {
	n   node
	neg bool
}

// maxConjuncts bounds the conjunctions tried for one rule target.
const maxConjuncts = 4000

// conjuncts streams the conjunctions of the disjunctive normal form of n (negated when neg),
// until yield returns false. It returns false when stopped.
func conjuncts(n node, neg bool, acc []lit, budget *int, yield func([]lit) bool) bool {
	if *budget <= 0 {
		return false
	}
	switch x := n.(type) {
	case constNode:
		if bool(x) != neg {
			*budget--
			return yield(acc)
		}
		return true
	case notNode:
		return conjuncts(x.x, !neg, acc, budget, yield)
	case andNode:
		if neg {
			return each(x, true, acc, budget, yield)
		}
		return all(x, false, acc, budget, yield)
	case orNode:
		if neg {
			return all(x, true, acc, budget, yield)
		}
		return each(x, false, acc, budget, yield)
	case *globs:
		return conjuncts(orNode(x.leaves()), neg, acc, budget, yield)
	case atLeast:
		if neg {
			return all(x.nodes, true, acc, budget, yield)
		}
		for _, sub := range subsets(len(x.nodes), x.n) {
			ns := make([]node, len(sub))
			for i, j := range sub {
				ns[i] = x.nodes[j]
			}
			if !all(ns, false, acc, budget, yield) {
				return false
			}
		}
		return true
	}
	*budget--
	return yield(append(acc[:len(acc):len(acc)], lit{n, neg}))
}

// each streams the conjunctions of any one of ns.
func each(ns []node, neg bool, acc []lit, budget *int, yield func([]lit) bool) bool {
	for _, n := range ns {
		if !conjuncts(n, neg, acc, budget, yield) {
			return false
		}
	}
	return true
}

// all streams the conjunctions of every one of ns together.
func all(ns []node, neg bool, acc []lit, budget *int, yield func([]lit) bool) bool {
	if len(ns) == 0 {
		return yield(acc)
	}
	return conjuncts(ns[0], neg, acc, budget, func(c []lit) bool {
		return all(ns[1:], neg, c, budget, yield)
	})
}

func subsets(n, k int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(out) > 64 {
			return
		}
		if len(cur) == k {
			out = append(out, append([]int(nil), cur...))
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
	return out
}

// baseEvent is a crumbs event of the target's kind and first action, in goavro's native form.
func baseEvent(t target) map[string]any {
	env := schemas.Envelope{EventID: "generated", Time: 1_700_000_000_000_000_000, Kind: t.Source,
		Host: schemas.Host{ID: "host-1", Name: "host-1"}}
	var native map[string]any
	switch t.Source {
	case "process":
		native = (&schemas.ProcessEvent{Envelope: env}).Native()
	case "network":
		native = schemas.ToNative(&schemas.NetworkEvent{Envelope: env})
	case "file":
		native = schemas.ToNative(&schemas.FileEvent{Envelope: env})
	default:
		native = schemas.ToNative(&schemas.IdentityEvent{Envelope: env})
	}
	native["kind"] = t.Source
	if len(t.Actions) > 0 {
		native["action"] = t.Actions[0]
	}
	return native
}

// setPath writes v at a field path (with an optional [i] index) of a native event.
func setPath(ev map[string]any, path string, v any) bool {
	idx := -1
	if i := strings.IndexByte(path, '['); i > 0 {
		n, err := strconv.Atoi(path[i+1 : len(path)-1])
		if err != nil {
			return false
		}
		idx, path = n, path[:i]
	}
	parts := strings.Split(path, ".")
	cur := ev
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return false
		}
		cur = next
	}
	last := parts[len(parts)-1]
	if idx < 0 {
		cur[last] = v
		return true
	}
	l, _ := cur[last].([]any)
	for len(l) <= idx {
		l = append(l, "")
	}
	l = append([]any(nil), l...)
	l[idx] = v
	cur[last] = l
	return true
}

func cloneEvent(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[k] = cloneEvent(vv)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = cloneEvent(vv)
		}
		return out
	}
	return v
}

// examples returns values a matcher accepts, the likeliest first.
func examples(m matcher) []string {
	switch x := m.(type) {
	case *glob:
		return []string{x.example}
	case anyOf:
		var out []string
		for _, mm := range x {
			out = append(out, examples(mm)...)
		}
		return out
	case *regex:
		return []string{x.example}
	case cidr:
		return []string{x.prefix.Addr().String()}
	case compare:
		n := int64(x.n)
		switch x.op {
		case "gt":
			return []string{strconv.FormatInt(n+1, 10)}
		case "lt":
			return []string{strconv.FormatInt(n-1, 10)}
		}
		return []string{strconv.FormatInt(n, 10)}
	case exists:
		if x.want {
			return []string{"generated"}
		}
		return []string{""}
	case null:
		return []string{""}
	}
	return nil
}

// anchors tells how a value must sit in a combined string: 0 anywhere, 1 at the start,
// 2 at the end, 3 whole.
func anchors(m matcher) int {
	if r, ok := m.(*regex); ok {
		src := r.re.String()
		a := 0
		if strings.HasPrefix(src, "^") {
			a |= 1
		}
		if strings.HasSuffix(src, "$") {
			a |= 2
		}
		return a
	}
	g, ok := m.(*glob)
	if !ok {
		if a, ok := m.(anyOf); ok && len(a) > 0 {
			return anchors(a[0])
		}
		return 3
	}
	switch {
	case g.exact || (g.anchorStart && g.anchorEnd):
		return 3
	case g.anchorStart:
		return 1
	case g.anchorEnd:
		return 2
	}
	return 0
}

// slot is one field of the event the conjunction constrains.
type slot struct {
	path  string
	isInt bool
	pos   []matcher
	neg   []matcher
}

func (s *slot) accepts(v string) bool {
	for _, m := range s.pos {
		if !m.match(v, true) {
			return false
		}
	}
	for _, m := range s.neg {
		if m.match(v, true) {
			return false
		}
	}
	return true
}

// candidates are values combining one example of each positive matcher.
func (s *slot) candidates() []string {
	if len(s.pos) == 0 {
		return []string{"generated-value", ""}
	}
	var starts, mids, ends, whole []string
	for _, m := range s.pos {
		ex := examples(m)
		if len(ex) == 0 {
			continue
		}
		switch anchors(m) {
		case 1:
			starts = append(starts, ex[0])
		case 2:
			ends = append(ends, ex[0])
		case 3:
			whole = append(whole, ex...)
		default:
			mids = append(mids, ex[0])
		}
	}
	if len(whole) > 0 {
		return whole
	}
	var out []string
	for _, sep := range []string{"", " ", "/"} {
		start := longest(starts)
		end := longest(ends)
		parts := append(append([]string{start}, mids...), end)
		out = append(out, strings.Join(parts, sep))
		rev := append([]string{start}, reverse(mids)...)
		out = append(out, strings.Join(append(rev, end), sep))
	}
	return out
}

func longest(ss []string) string {
	best := ""
	for _, s := range ss {
		if len(s) > len(best) {
			best = s
		}
	}
	return best
}

func reverse(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[len(ss)-1-i] = s
	}
	return out
}

// generate returns a positive event for one target of c, and the negative made from it, or
// why none was found.
func generate(c *Compiled, ct compiledTarget) (pos, neg map[string]any, err error) {
	budget := maxConjuncts
	conjuncts(ct.node, false, nil, &budget, func(conj []lit) bool {
		ev, ok := buildEvent(c, ct.t, conj)
		if !ok {
			return true
		}
		n, ok := negative(c, ct.t, ev, conj)
		if !ok {
			return true
		}
		pos, neg = ev, n
		return false
	})
	if pos == nil {
		return nil, nil, fmt.Errorf("no positive and negative pair found for %s (%s)", c.File, ct.t.Name)
	}
	return pos, neg, nil
}

func matches(c *Compiled, ev map[string]any) bool {
	hit, err := c.Cond.Match(engine.Activation(ev))
	return err == nil && hit
}

func buildEvent(c *Compiled, t target, conj []lit) (map[string]any, bool) {
	slots := map[string]*slot{}
	var order []string
	get := func(spec fieldSpec) *slot {
		s, ok := slots[spec.Path]
		if !ok {
			s = &slot{path: spec.Path, isInt: spec.Int}
			slots[spec.Path] = s
			order = append(order, spec.Path)
		}
		return s
	}
	var refs []*fieldRef
	for _, l := range conj {
		switch x := l.n.(type) {
		case *leaf:
			s := get(x.spec)
			if l.neg {
				s.neg = append(s.neg, x.m)
			} else {
				s.pos = append(s.pos, x.m)
			}
		case *keyword:
			s := get(x.fields[0])
			if l.neg {
				for _, f := range x.fields {
					get(f).neg = append(get(f).neg, x.m)
				}
			} else {
				s.pos = append(s.pos, x.m)
			}
		case *fieldRef:
			if !l.neg {
				refs = append(refs, x)
			}
		}
	}
	ev := baseEvent(t)
	for _, p := range order {
		s := slots[p]
		if p == absentPath {
			continue
		}
		if cur, ok := getter(p)(engine.Map(engine.Activation(ev))); ok {
			if str, ok := valueString(cur); ok && s.accepts(str) && len(s.pos) == 0 {
				continue
			}
		}
		set := false
		for _, cand := range s.candidates() {
			if !s.accepts(cand) {
				continue
			}
			if s.isInt {
				n, err := strconv.ParseInt(cand, 10, 64)
				if err != nil {
					continue
				}
				setPath(ev, p, n)
			} else {
				setPath(ev, p, cand)
			}
			set = true
			break
		}
		if !set {
			return nil, false
		}
	}
	for _, r := range refs {
		v, _ := r.a.get(engine.Map(engine.Activation(ev)))
		setPath(ev, r.b.Path, v)
	}
	return ev, matches(c, ev)
}

// negative changes one value the conjunction requires so that the rule no longer holds.
func negative(c *Compiled, t target, ev map[string]any, conj []lit) (map[string]any, bool) {
	for _, l := range conj {
		if l.neg {
			continue
		}
		var paths []fieldSpec
		switch x := l.n.(type) {
		case *leaf:
			paths = []fieldSpec{x.spec}
		case *keyword:
			paths = x.fields[:1]
		case *fieldRef:
			paths = []fieldSpec{x.a}
		}
		for _, spec := range paths {
			if spec.Path == absentPath {
				continue
			}
			for _, v := range changedValues(spec) {
				n := cloneEvent(ev).(map[string]any)
				setPath(n, spec.Path, v)
				if !matches(c, n) {
					return n, true
				}
			}
		}
	}
	return nil, false
}

func changedValues(spec fieldSpec) []any {
	if spec.Int {
		return []any{int64(123456789), int64(-5), int64(0)}
	}
	return []any{"crumbs-negative-value", "", "0.0.0.1"}
}
