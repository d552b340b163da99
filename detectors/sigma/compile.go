package sigma

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// Compiled is a single-event Sigma rule ready for the engine: the crumbs event kinds it reads
// and its condition, with the metadata its alerts carry (the DRL requires the author's credit
// wherever matches are shown).
type Compiled struct {
	File        string
	ID          string
	Name        string // the rule's name, by which correlation rules may reference it
	Title       string
	Level       string // the Sigma level
	Severity    string // the engine severity: the level, medium when the rule has none
	Status      string
	Description string
	Author      string
	Tags        []string
	References  []string
	Sources     []string         // crumbs event kinds the rule reads (one, but auditd rules may read several)
	Cond        engine.Condition // matches an event activation (engine.Activation) of any of Sources
	// Dropped are the branches of an OR in the condition that crumbs cannot judge (a field,
	// record type or syscall its events do not carry), left out while the others load: the
	// rule matches less than it says, never more. Lint warns of each.
	Dropped []Dropped
	// WindowsPaths are values written as Windows paths ('\bash'): lint warns of each.
	WindowsPaths []WindowsPath

	targets []compiledTarget
}

type compiledTarget struct {
	t    target
	node node
}

// node is a compiled detection: true when the event activation satisfies it.
type node interface {
	eval(act engine.Fields) bool
}

type (
	constNode bool
	andNode   []node
	orNode    []node
	notNode   struct{ x node }
	// atLeast holds when n of its nodes hold.
	atLeast struct {
		n     int
		nodes []node
	}
	// leaf is one field compared with one value.
	leaf struct {
		field string // the Sigma field, for messages and the generator
		spec  fieldSpec
		m     matcher
	}
	// globs is a list of case-insensitive values on one field (OR): the field is read and
	// lower-cased once for all of them.
	globs struct {
		field string
		spec  fieldSpec
		gs    []*glob
	}
	// keyword is a value searched in the event's keyword fields.
	keyword struct {
		fields []fieldSpec
		m      matcher
	}
	// fieldRef is the fieldref modifier: two fields of the event are equal.
	fieldRef struct {
		a, b  fieldSpec
		cased bool
	}
)

func (c constNode) eval(engine.Fields) bool { return bool(c) }

func (a andNode) eval(act engine.Fields) bool {
	for _, n := range a {
		if !n.eval(act) {
			return false
		}
	}
	return true
}

func (o orNode) eval(act engine.Fields) bool {
	for _, n := range o {
		if n.eval(act) {
			return true
		}
	}
	return false
}

func (n notNode) eval(act engine.Fields) bool { return !n.x.eval(act) }

func (a atLeast) eval(act engine.Fields) bool {
	hits := 0
	for _, n := range a.nodes {
		if n.eval(act) {
			if hits++; hits >= a.n {
				return true
			}
		}
	}
	return false
}

func (l *leaf) eval(act engine.Fields) bool {
	if g, ok := l.m.(*glob); ok && !g.cased {
		s, ok := lowerField(act, &l.spec)
		return ok && g.matchNormalized(s)
	}
	v, ok := l.spec.get(act)
	return l.m.match(v, ok)
}

// An event's memo (engine.Fields) holds the fields already read and lower-cased for it: the
// rules of a set share them instead of each lower-casing the same command line.

// lowered is a field read as a lower-cased string; ok false when absent or not a scalar.
type lowered struct {
	s  string
	ok bool
}

// loweredTexts is an activation's cache of lower-cased texts, by field path (or keyword
// key). An event's rules read few fields: a short list, searched in order, made with one
// allocation; a map takes any beyond.
type loweredTexts struct {
	n    int
	keys [8]string
	vals [8]lowered
	more map[string]lowered
}

func (c *loweredTexts) get(key string) (lowered, bool) {
	for i := range c.n {
		if c.keys[i] == key {
			return c.vals[i], true
		}
	}
	l, ok := c.more[key]
	return l, ok
}

func (c *loweredTexts) put(key string, l lowered) {
	if c.n < len(c.keys) {
		c.keys[c.n], c.vals[c.n] = key, l
		c.n++
		return
	}
	if c.more == nil {
		c.more = map[string]lowered{}
	}
	c.more[key] = l
}

// loweredCache is the activation's cache of lower-cased texts, made on first use.
func loweredCache(act engine.Fields) *loweredTexts {
	cache, _ := act.Memo().(*loweredTexts)
	if cache == nil {
		cache = &loweredTexts{}
		act.SetMemo(cache)
	}
	return cache
}

// lowerField reads a field of the activation as a lower-cased string, once per activation.
func lowerField(act engine.Fields, spec *fieldSpec) (string, bool) {
	cache := loweredCache(act)
	if l, ok := cache.get(spec.Path); ok {
		return l.s, l.ok
	}
	var l lowered
	if v, ok := spec.get(act); ok {
		if l.s, l.ok = valueString(v); l.ok {
			l.s = strings.ToLower(l.s)
		}
	}
	cache.put(spec.Path, l)
	return l.s, l.ok
}

func (g *globs) eval(act engine.Fields) bool {
	s, ok := lowerField(act, &g.spec)
	if !ok {
		return false
	}
	for _, gl := range g.gs {
		if gl.matchNormalized(s) {
			return true
		}
	}
	return false
}

// leaves returns the globs as one leaf each, for the test generator.
func (g *globs) leaves() []node {
	out := make([]node, len(g.gs))
	for i, gl := range g.gs {
		out[i] = &leaf{field: g.field, spec: g.spec, m: gl}
	}
	return out
}

// foldGlobs merges the case-insensitive glob leaves of an OR over one field.
func foldGlobs(field string, spec fieldSpec, ns []node) []node {
	var gs []*glob
	var rest []node
	for _, n := range ns {
		l, ok := n.(*leaf)
		if !ok {
			rest = append(rest, n)
			continue
		}
		switch m := l.m.(type) {
		case *glob:
			if !m.cased {
				gs = append(gs, m)
				continue
			}
		case anyOf:
			all := true
			for _, mm := range m {
				g, ok := mm.(*glob)
				all = all && ok && !g.cased
			}
			if all {
				for _, mm := range m {
					gs = append(gs, mm.(*glob))
				}
				continue
			}
		}
		rest = append(rest, n)
	}
	if len(gs) > 1 {
		rest = append(rest, &globs{field: field, spec: spec, gs: gs})
	} else if len(gs) == 1 {
		rest = append(rest, &leaf{field: field, spec: spec, m: gs[0]})
	}
	return rest
}

func (k *keyword) eval(act engine.Fields) bool {
	for _, f := range k.fields {
		if v, ok := f.get(act); ok && k.m.match(v, true) {
			return true
		}
	}
	return false
}

func (f *fieldRef) eval(act engine.Fields) bool {
	va, oka := f.a.get(act)
	vb, okb := f.b.get(act)
	if !oka || !okb {
		return false
	}
	sa, ok1 := valueString(va)
	sb, ok2 := valueString(vb)
	if !ok1 || !ok2 {
		return false
	}
	if f.cased {
		return sa == sb
	}
	return strings.EqualFold(sa, sb)
}

// and, or and not fold constants away.
func and(ns ...node) node {
	var out andNode
	for _, n := range ns {
		switch c := n.(type) {
		case constNode:
			if !c {
				return constNode(false)
			}
		case andNode:
			out = append(out, c...)
		default:
			out = append(out, n)
		}
	}
	switch len(out) {
	case 0:
		return constNode(true)
	case 1:
		return out[0]
	}
	return out
}

func or(ns ...node) node {
	var out orNode
	for _, n := range ns {
		switch c := n.(type) {
		case constNode:
			if c {
				return constNode(true)
			}
		case orNode:
			out = append(out, c...)
		default:
			out = append(out, n)
		}
	}
	switch len(out) {
	case 0:
		return constNode(false)
	case 1:
		return out[0]
	}
	return out
}

func not(n node) node {
	switch c := n.(type) {
	case constNode:
		return !c
	case notNode:
		return c.x
	}
	return notNode{n}
}

// ruleCondition is a compiled rule's engine.Condition: the event's kind and action pick the
// targets, whose detections are then evaluated.
type ruleCondition struct {
	targets   []compiledTarget
	key       engine.IndexKey // see IndexKey; Name empty when the rule is not keyed
	keyValues []string
	literals  []engine.LiteralSet // see Literals; nil when the detection requires none
}

func (c *ruleCondition) Match(act map[string]any) (bool, error) {
	hit, _, err := c.MatchFields(engine.Map(act))
	return hit, err
}

// MatchFields evaluates the detection on the event's fields: it never needs the activation.
func (c *ruleCondition) MatchFields(act engine.Fields) (hit, handled bool, err error) {
	k, _ := act.Value("kind")
	a, _ := act.Value("action")
	kind, _ := k.(string)
	action, _ := a.(string)
	for i := range c.targets {
		t := &c.targets[i]
		if t.t.Source != kind || (len(t.t.Actions) > 0 && !slices.Contains(t.t.Actions, action)) {
			continue
		}
		if t.node.eval(act) {
			return true, true, nil
		}
	}
	return false, true, nil
}

// Compile turns a detection rule into what the engine evaluates. A rule using anything crumbs
// cannot evaluate is refused with a *RuleError naming the construct and why.
func (r *Rule) Compile() (*Compiled, error) {
	fail := func(err error) error { return &RuleError{File: r.File, Title: r.Title, Reason: err.Error()} }
	if r.Correlation != nil {
		return nil, fail(errors.New("a correlation rule is compiled with the rules it correlates (see Correlation)"))
	}
	if r.Detection == nil {
		return nil, fail(errors.New("detection: is required"))
	}
	targets, err := targetsFor(r.Logsource)
	if err != nil {
		return nil, fail(err)
	}
	conds := make([]condExpr, len(r.Detection.Conditions))
	for i, s := range r.Detection.Conditions {
		if conds[i], err = parseCondition(s); err != nil {
			return nil, fail(fmt.Errorf("condition %q: %w", s, err))
		}
	}
	var whole condExpr = conds[0]
	for _, ce := range conds[1:] {
		whole = condOr{whole, ce} // several conditions are their OR
	}
	c := &Compiled{File: r.File, ID: r.ID, Name: r.Name, Title: r.Title, Level: r.Level, Severity: r.Level, Status: r.Status,
		Description: r.Description, Author: r.Author, Tags: r.Tags, References: r.References,
		WindowsPaths: windowsPaths(r.Detection)}
	if c.Severity == "" {
		c.Severity = "medium"
	}
	auditd := len(targets) > 1
	for _, t := range targets {
		cp := &compiler{det: r.Detection, t: t, targets: targets, auditd: auditd, cache: map[string]node{}}
		n, err := cp.cond(whole)
		if err != nil {
			return nil, fail(err)
		}
		for _, d := range cp.dropped {
			if !slices.Contains(c.Dropped, d) {
				c.Dropped = append(c.Dropped, d)
			}
		}
		if n == constNode(false) {
			continue
		}
		if n == constNode(true) {
			return nil, fail(fmt.Errorf("condition holds on every %s event: crumbs refuses a rule that matches everything", t.Name))
		}
		c.targets = append(c.targets, compiledTarget{t: t, node: n})
		if !slices.Contains(c.Sources, t.Source) {
			c.Sources = append(c.Sources, t.Source)
		}
	}
	if len(c.targets) == 0 {
		return nil, fail(errors.New("condition can never hold on the crumbs events this logsource maps onto"))
	}
	sort.Strings(c.Sources)
	rc := &ruleCondition{targets: c.targets}
	rc.key, rc.keyValues = keyOf(c.targets)
	rc.literals = literalsOfTargets(c.targets)
	c.Cond = rc
	return c, nil
}

// checkConsts refuses a search of an auditd rule naming a record type or syscall crumbs has
// no equivalent for, so that such a branch is never dropped silently (it would compile to
// false on every record type): the error is unjudgeable, and an OR may drop the search.
func checkConsts(v any, targets []target) error {
	for _, m := range searchMaps(v) {
		for _, key := range sortedKeys(m) {
			field, mods, _ := strings.Cut(key, "|")
			var known bool
			for _, t := range targets {
				_, known = t.Consts[field]
				if known {
					break
				}
			}
			if !known {
				continue
			}
			chain, err := parseMods(splitMods(mods))
			if err != nil {
				return fmt.Errorf("field %s: %w", field, err)
			}
			for _, v := range values(m[key]) {
				mt, err := valueMatcher(v, chain)
				if err != nil {
					return fmt.Errorf("field %s: %w", field, err)
				}
				if !anyConstMatches(targets, field, mt) {
					return beyond(fmt.Errorf("%s %v: crumbs records no equivalent of this auditd %s%s", field, v, field, auditdWhy(field, v)))
				}
			}
		}
	}
	return nil
}

// Dropped is a branch of an OR left out of a rule: the branch as written in the condition,
// and why crumbs cannot judge it (the search and the field, record type or syscall).
type Dropped struct {
	Branch string
	Reason string
}

// beyondErr is a construct beyond crumbs' telemetry: a field, record type or syscall its
// events do not carry, or a text its events do not have. Other errors (a bad modifier, a
// value a field cannot take) are the rule's and always refuse it.
type beyondErr struct{ err error }

func (b *beyondErr) Error() string { return b.err.Error() }
func (b *beyondErr) Unwrap() error { return b.err }

func beyond(err error) error { return &beyondErr{err} }

// unjudgeable is an expression crumbs cannot judge because a search in it is beyond its
// telemetry. drops are the branches that made it so, first the one the error names.
type unjudgeable struct {
	drops []Dropped
}

func (u *unjudgeable) Error() string { return u.drops[0].Reason }

// auditdWhy says, for the auditd records and syscalls rules often name, what crumbs lacks.
func auditdWhy(field string, v any) string {
	s, _ := valueString(v)
	why := map[string]string{
		"TTY":           "terminal input is not recorded",
		"USER_TTY":      "terminal input is not recorded",
		"SERVICE_STOP":  "systemd service state changes are not recorded",
		"SERVICE_START": "systemd service state changes are not recorded",
		"ADD_USER":      "account management is not recorded",
		"DEL_USER":      "account management is not recorded",
		"ADD_GROUP":     "account management is not recorded",
		"USER_CMD":      "sudo commands are recorded as process exec, not as USER_CMD",
	}[strings.ToUpper(s)]
	if field == "SYSCALL" {
		why = "crumbs traces only exec, connect, accept and file changes"
	}
	if why == "" {
		return ""
	}
	return " (" + why + ")"
}

func anyConstMatches(targets []target, field string, m matcher) bool {
	for _, t := range targets {
		for _, c := range t.Consts[field] {
			if m.match(c, true) {
				return true
			}
		}
	}
	return false
}

func searchMaps(v any) []map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return []map[string]any{x}
	case []any:
		var out []map[string]any
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

func splitMods(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "|")
}

func values(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// compiler compiles one rule's detection for one target.
type compiler struct {
	det     *Detection
	t       target
	targets []target // every target of the rule, for its auditd constants
	auditd  bool
	cache   map[string]node
	neg     bool      // compiling under an odd number of nots
	dropped []Dropped // OR branches left out (see anyOf)
}

func (cp *compiler) cond(e condExpr) (node, error) {
	switch x := e.(type) {
	case condAnd:
		l, err := cp.cond(x.l)
		if err != nil {
			return nil, err
		}
		r, err := cp.cond(x.r)
		if err != nil {
			return nil, err
		}
		return and(l, r), nil
	case condOr:
		return cp.anyOf([]condExpr{x.l, x.r})
	case condNot:
		cp.neg = !cp.neg
		n, err := cp.cond(x.x)
		cp.neg = !cp.neg
		if err != nil {
			return nil, err
		}
		return not(n), nil
	case condIdent:
		return cp.search(x.name)
	case condOf:
		names := namesMatching(x.pattern, cp.det.searchNames())
		if len(names) == 0 {
			return nil, fmt.Errorf("condition: %q matches no search identifier", x.pattern)
		}
		if x.n == 1 {
			branches := make([]condExpr, len(names))
			for i, n := range names {
				branches[i] = condIdent{n}
			}
			return cp.anyOf(branches)
		}
		var ns []node
		for _, n := range names {
			sn, err := cp.search(n)
			if err != nil {
				return nil, err
			}
			ns = append(ns, sn)
		}
		switch {
		case x.n == 0:
			return and(ns...), nil
		case x.n > len(ns):
			return constNode(false), nil
		}
		return atLeast{n: x.n, nodes: ns}, nil
	}
	return nil, fmt.Errorf("condition: unexpected expression %T", e)
}

// anyOf compiles the OR of branches. A branch crumbs cannot judge (unjudgeable: a field,
// record type or syscall beyond its telemetry) is dropped and recorded when the OR is not
// under a negation and another branch compiles: the rule then matches less than it says,
// never more. Under a negation dropping would widen the rule, so there, and when every
// branch is beyond crumbs, the rule is refused (an enclosing OR may still drop this one).
func (cp *compiler) anyOf(branches []condExpr) (node, error) {
	var ns []node
	var drops []Dropped
	for _, b := range branches {
		n, err := cp.cond(b)
		var u *unjudgeable
		switch {
		case err == nil:
			ns = append(ns, n)
		case errors.As(err, &u) && !cp.neg:
			if len(u.drops) == 1 {
				// The branch itself, as written, rather than the search inside it.
				drops = append(drops, Dropped{Branch: condString(b), Reason: u.drops[0].Reason})
			} else {
				drops = append(drops, u.drops...)
			}
		default:
			return nil, err
		}
	}
	if len(ns) == 0 {
		return nil, &unjudgeable{drops: drops}
	}
	cp.dropped = append(cp.dropped, drops...)
	return or(ns...), nil
}

func (cp *compiler) search(name string) (node, error) {
	if n, ok := cp.cache[name]; ok {
		return n, nil
	}
	v, ok := cp.det.Searches[name]
	if !ok {
		return nil, fmt.Errorf("condition: %q is not a search identifier of the detection", name)
	}
	err := checkConsts(v, cp.targets)
	var n node
	if err == nil {
		n, err = cp.searchValue(v)
	}
	var b *beyondErr
	if errors.As(err, &b) {
		return nil, &unjudgeable{drops: []Dropped{{Branch: name, Reason: name + ": " + err.Error()}}}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cp.cache[name] = n
	return n, nil
}

func (cp *compiler) searchValue(v any) (node, error) {
	switch x := v.(type) {
	case map[string]any:
		return cp.fieldMap(x)
	case []any:
		if len(x) == 0 {
			return nil, errors.New("empty list")
		}
		_, maps := x[0].(map[string]any)
		var ns []node
		for _, e := range x {
			m, isMap := e.(map[string]any)
			if isMap != maps {
				return nil, errors.New("a list mixes field maps and keywords")
			}
			if isMap {
				n, err := cp.fieldMap(m)
				if err != nil {
					return nil, err
				}
				ns = append(ns, n)
				continue
			}
			n, err := cp.keywords([]any{e}, nil)
			if err != nil {
				return nil, err
			}
			ns = append(ns, n)
		}
		return or(ns...), nil
	case nil:
		return nil, errors.New("empty search")
	}
	return cp.keywords([]any{v}, nil)
}

// fieldMap is the AND of a map's fields; fixed auditd fields (type, SYSCALL, nametype) go
// first, so that a map about another record type is false without reading its other fields.
func (cp *compiler) fieldMap(m map[string]any) (node, error) {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool {
		return cp.isConst(keys[i]) && !cp.isConst(keys[j])
	})
	typed := false
	var ns []node
	for _, key := range keys {
		field, _, _ := strings.Cut(key, "|")
		n, err := cp.field(key, m[key], typed)
		if err != nil {
			return nil, err
		}
		if n == constNode(false) {
			return n, nil
		}
		typed = typed || field == "type"
		ns = append(ns, n)
	}
	if len(ns) == 0 {
		return nil, errors.New("empty field map")
	}
	return and(ns...), nil
}

func (cp *compiler) isConst(key string) bool {
	field, _, _ := strings.Cut(key, "|")
	_, ok := cp.t.Consts[field]
	return ok
}

// field compiles one "field|modifiers: value(s)" entry.
func (cp *compiler) field(key string, v any, typed bool) (node, error) {
	field, modStr, _ := strings.Cut(key, "|")
	chain, err := parseMods(splitMods(modStr))
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", field, err)
	}
	if field == "" {
		return cp.keywords(values(v), chain)
	}
	vals := values(v)
	if len(vals) == 0 {
		return nil, fmt.Errorf("field %s: empty value list", field)
	}
	if chain.has("all") && len(vals) < 2 {
		// The specification forbids all on one value; it means the same as without.
		chain = slices.DeleteFunc(slices.Clone(chain), func(m string) bool { return m == "all" })
	}
	if consts, ok := cp.t.Consts[field]; ok {
		return cp.constField(field, vals, chain, consts)
	}
	spec, err := cp.spec(field, typed)
	if err != nil {
		return nil, err
	}
	if chain.has("fieldref") {
		return cp.fieldRefs(field, spec, vals, chain)
	}
	var ns []node
	for _, val := range vals {
		if spec.ValueMap != nil && val != nil {
			s, _ := valueString(val)
			mapped, ok := spec.ValueMap[strings.ToLower(s)]
			if !ok {
				return nil, fmt.Errorf("field %s: value %q: must be one of %s", field, s, strings.Join(sortedKeys(spec.ValueMap), ", "))
			}
			val = mapped
		}
		m, err := valueMatcher(val, chain)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", field, err)
		}
		if spec.get == nil || spec.Path == absentPath {
			ns = append(ns, constNode(m.match(nil, false)))
			continue
		}
		ns = append(ns, &leaf{field: field, spec: spec, m: m})
	}
	if chain.has("all") {
		return and(ns...), nil
	}
	return or(foldGlobs(field, spec, ns)...), nil
}

// spec finds where a Sigma field is in the target's events. On auditd targets, a field
// another record type has (exe on an EXECVE record) is absent, as in auditd's own records;
// but a field of this record type that crumbs does not carry refuses the rule.
func (cp *compiler) spec(field string, typed bool) (fieldSpec, error) {
	if s, ok := cp.t.Fields[field]; ok {
		return s, nil
	}
	if cp.auditd {
		if !typed && mappedOnOtherTarget(field) {
			return fieldSpec{Path: absentPath, get: absent}, nil
		}
		return fieldSpec{}, beyond(fmt.Errorf("field %s of %s records: crumbs has no equivalent", field, strings.TrimPrefix(cp.t.Name, "auditd ")))
	}
	return fieldSpec{}, beyond(fmt.Errorf("field %s: crumbs has no equivalent in %s events (see the field mapping in docs/sigma.md)", field, cp.t.Name))
}

// absentPath marks a field the events of a target never have.
const absentPath = "(absent)"

func absent(engine.Fields) (any, bool) { return nil, false }

func mappedOnOtherTarget(field string) bool {
	for _, t := range auditdTargets {
		if _, ok := t.Fields[field]; ok {
			return true
		}
	}
	return false
}

func (cp *compiler) constField(field string, vals []any, chain modChain, consts []string) (node, error) {
	var hits []bool
	for _, val := range vals {
		m, err := valueMatcher(val, chain)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", field, err)
		}
		hit := false
		for _, c := range consts {
			hit = hit || m.match(c, true)
		}
		hits = append(hits, hit)
	}
	if chain.has("all") {
		return constNode(!slices.Contains(hits, false)), nil
	}
	return constNode(slices.Contains(hits, true)), nil
}

func (cp *compiler) fieldRefs(field string, spec fieldSpec, vals []any, chain modChain) (node, error) {
	if err := chain.only("fieldref", "cased"); err != nil {
		return nil, fmt.Errorf("field %s: %w", field, err)
	}
	var ns []node
	for _, val := range vals {
		other, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("field %s: fieldref value %v: must be a field name", field, val)
		}
		os, ok := cp.t.Fields[other]
		if !ok {
			return nil, beyond(fmt.Errorf("field %s: fieldref %s: crumbs has no equivalent in %s events", field, other, cp.t.Name))
		}
		ns = append(ns, &fieldRef{a: spec, b: os, cased: chain.has("cased")})
	}
	if chain.has("all") {
		return and(ns...), nil
	}
	return or(ns...), nil
}

// keywords compiles values searched without a field: each is a substring searched in the
// target's keyword fields (process.cmd_line for process events), as a full-text search
// of the log line would find it.
func (cp *compiler) keywords(vals []any, chain modChain) (node, error) {
	if len(cp.t.Keywords) == 0 {
		return nil, beyond(fmt.Errorf("keywords: %s events have no text to search", cp.t.Name))
	}
	if chain.has("fieldref") || chain.has("exists") {
		return nil, errors.New("keywords: fieldref and exists need a field")
	}
	wrapped := chain
	if !chain.has("re") && !chain.has("contains") && !chain.has("startswith") && !chain.has("endswith") &&
		!chain.has("cidr") && !chain.has("gt") && !chain.has("gte") && !chain.has("lt") && !chain.has("lte") {
		wrapped = append(slices.Clone(chain), "contains")
	}
	var ns []node
	for _, val := range vals {
		if val == nil {
			return nil, errors.New("keywords: a keyword cannot be null")
		}
		m, err := valueMatcher(val, wrapped)
		if err != nil {
			return nil, fmt.Errorf("keywords: %w", err)
		}
		ns = append(ns, &keyword{fields: cp.t.Keywords, m: m})
	}
	if chain.has("all") {
		return and(ns...), nil
	}
	return or(ns...), nil
}

// FieldPaths returns where a Sigma field (a correlation's group-by or value_count field) is
// in each crumbs event kind the rule reads, or false when one of them lacks it.
func (c *Compiled) FieldPaths(field string) (map[string]string, bool) {
	out := map[string]string{}
	for _, t := range c.targets {
		s, ok := t.t.Fields[field]
		if !ok || s.ValueMap != nil {
			return nil, false
		}
		out[t.t.Source] = s.Path
	}
	return out, len(out) > 0
}
