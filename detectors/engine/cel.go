package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Conditions are type-checked against the Avro schema of their source: every Avro record
// becomes a CEL object type whose fields carry the Avro field types, so a misspelt field or a
// comparison of a string with a number is refused when the rule loads. At evaluation time the
// values are plain maps (see Activation); CEL selects map keys the same way it selects fields.

// avroTypes is a types.Provider that knows the records of one Avro schema.
type avroTypes struct {
	types.Provider
	records map[string]map[string]*types.Type // full record name -> field -> type
	top     map[string]*types.Type            // top-level fields of the event record
	order   map[string][]string               // record -> field names in schema order
	opt     map[string]map[string]bool        // record -> fields that are ["null", T] unions
	topName string                            // full name of the event record
}

func (p *avroTypes) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.records[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Provider.FindStructType(name)
}

func (p *avroTypes) FindStructFieldNames(name string) ([]string, bool) {
	if fs, ok := p.order[name]; ok {
		return fs, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p *avroTypes) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if fs, ok := p.records[name]; ok {
		t, ok := fs[field]
		if !ok {
			return nil, false
		}
		opt := p.opt[name][field]
		return &types.FieldType{Type: t,
			IsSet: func(target any) bool {
				if fv, ok := target.(fieldView); ok {
					_, ok := fv.get(field, t, opt)
					return ok
				}
				m, _ := target.(map[string]any)
				_, ok := m[field]
				return ok
			},
			GetFrom: func(target any) (any, error) {
				var (
					v  any
					ok bool
				)
				if fv, isView := target.(fieldView); isView {
					v, ok = fv.get(field, t, opt)
				} else {
					m, _ := target.(map[string]any)
					v, ok = m[field]
				}
				if !ok {
					return nil, fmt.Errorf("no such key: %s", field)
				}
				return v, nil
			}}, true
	}
	return p.Provider.FindStructFieldType(name, field)
}

// loadAvroTypes reads the schema of a source and derives its CEL types.
func loadAvroTypes(source string) (*avroTypes, error) {
	k, ok := schemas.Kinds.Lookup(source)
	if !ok {
		return nil, fmt.Errorf("no such source %q", source)
	}
	b, err := schemas.Avro.ReadFile(k.Codec.File)
	if err != nil {
		return nil, fmt.Errorf("read schema of %s: %w", source, err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parse schema of %s: %w", source, err)
	}
	p := &avroTypes{Provider: types.NewEmptyRegistry(), records: map[string]map[string]*types.Type{},
		order: map[string][]string{}, opt: map[string]map[string]bool{}}
	t, err := p.avroType(root, "")
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", source, err)
	}
	p.top, p.topName = p.records[t.TypeName()], t.TypeName()
	return p, nil
}

// avroType maps an Avro type to a CEL type, registering the records it defines.
func (p *avroTypes) avroType(t any, ns string) (*types.Type, error) {
	switch x := t.(type) {
	case string:
		return p.named(x, ns)
	case []any: // a union: ["null", T] is T, whose absence is tested with has()
		var branches []any
		for _, b := range x {
			if b != "null" {
				branches = append(branches, b)
			}
		}
		if len(branches) != 1 {
			return types.DynType, nil
		}
		return p.avroType(branches[0], ns)
	case map[string]any:
		switch x["type"] {
		case "record":
			return p.record(x, ns)
		case "array":
			et, err := p.avroType(x["items"], ns)
			return types.NewListType(et), err
		case "map":
			vt, err := p.avroType(x["values"], ns)
			return types.NewMapType(types.StringType, vt), err
		case "enum":
			return types.StringType, nil
		default:
			return p.avroType(x["type"], ns)
		}
	}
	return nil, fmt.Errorf("unsupported Avro type %v", t)
}

func (p *avroTypes) named(name, ns string) (*types.Type, error) {
	switch name {
	case "string", "bytes", "fixed":
		return types.StringType, nil
	case "int", "long":
		return types.IntType, nil
	case "float", "double":
		return types.DoubleType, nil
	case "boolean":
		return types.BoolType, nil
	case "null":
		return types.NullType, nil
	}
	full := name
	if !strings.Contains(name, ".") && ns != "" {
		full = ns + "." + name
	}
	if _, ok := p.records[full]; ok {
		return types.NewObjectType(full), nil
	}
	return nil, fmt.Errorf("unknown Avro type %q", name)
}

func (p *avroTypes) record(x map[string]any, ns string) (*types.Type, error) {
	name, _ := x["name"].(string)
	if n, ok := x["namespace"].(string); ok && !strings.Contains(name, ".") {
		ns = n
	}
	full := name
	if !strings.Contains(name, ".") && ns != "" {
		full = ns + "." + name
	}
	fields := map[string]*types.Type{}
	p.records[full] = fields // registered first, for recursive references
	fs, _ := x["fields"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		fname, _ := fm["name"].(string)
		ft, err := p.avroType(fm["type"], ns)
		if err != nil {
			return nil, fmt.Errorf("field %s.%s: %w", full, fname, err)
		}
		fields[fname] = ft
		if u, ok := fm["type"].([]any); ok && slices.Contains(u, any("null")) {
			if p.opt[full] == nil {
				p.opt[full] = map[string]bool{}
			}
			p.opt[full][fname] = true
		}
		p.order[full] = append(p.order[full], fname)
	}
	return types.NewObjectType(full), nil
}

// envs holds one CEL environment per source kind, built once.
var (
	envsOnce sync.Once
	envs     map[string]*cel.Env
	envTypes map[string]*avroTypes
	envsErr  error
)

func buildEnvs() {
	envs, envTypes = map[string]*cel.Env{}, map[string]*avroTypes{}
	for _, src := range Sources {
		p, err := loadAvroTypes(src)
		if err != nil {
			envsErr = err
			return
		}
		opts := []cel.EnvOption{cel.CustomTypeProvider(p), ext.Strings(), ipInFunction}
		names := make([]string, 0, len(p.top))
		for n := range p.top {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			opts = append(opts, cel.Variable(n, p.top[n]))
		}
		env, err := cel.NewEnv(opts...)
		if err != nil {
			envsErr = fmt.Errorf("CEL environment of %s: %w", src, err)
			return
		}
		envs[src], envTypes[src] = env, p
	}
}

func celEnv(source string) (*cel.Env, error) {
	envsOnce.Do(buildEnvs)
	if envsErr != nil {
		return nil, envsErr
	}
	env, ok := envs[source]
	if !ok {
		return nil, fmt.Errorf("no such source %q", source)
	}
	return env, nil
}

// FieldType returns the CEL type of a dotted field path of a source's events, or an error
// naming the first element that does not exist.
func FieldType(source, path string) (*types.Type, error) {
	envsOnce.Do(buildEnvs)
	if envsErr != nil {
		return nil, envsErr
	}
	p, ok := envTypes[source]
	if !ok {
		return nil, fmt.Errorf("no such source %q", source)
	}
	fields := p.top
	var t *types.Type
	for i, el := range strings.Split(path, ".") {
		if fields == nil {
			return nil, fmt.Errorf("%s: %s is not a record", path, strings.Join(strings.Split(path, ".")[:i], "."))
		}
		ft, ok := fields[el]
		if !ok {
			return nil, fmt.Errorf("%s: no field %q in %s events", path, el, source)
		}
		t = ft
		fields = p.records[t.TypeName()]
	}
	return t, nil
}

// CompileCEL parses and type-checks a condition over a source's events, which must be a
// boolean expression; it returns the condition and the fields it pins (see Pinned).
func CompileCEL(source, expr string) (Condition, error) {
	env, err := celEnv(source)
	if err != nil {
		return nil, err
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s", strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if checked.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("must be a boolean expression, is %s", checked.OutputType())
	}
	est, err := env.EstimateCost(checked, sizeHints{})
	if err != nil {
		return nil, fmt.Errorf("estimate the cost of the condition: %w", err)
	}
	c := &celCondition{env: env, types: envTypes[source], checked: checked, cost: est.Max, iterates: hasComprehension(checked.NativeRep().Expr())}
	if c.prg, err = c.plan(DefaultMaxConditionCost); err != nil {
		return nil, err
	}
	c.field, c.values = pins(checked.NativeRep().Expr())
	c.onlyPins = onlyPins(checked.NativeRep().Expr())
	typeMap := checked.NativeRep().TypeMap()
	c.literals, _ = celLiterals(checked.NativeRep().Expr(), func(e ast.Expr) *types.Type { return typeMap[e.ID()] })
	return c, nil
}

// DefaultMaxConditionCost is the default limit of a condition's cost (Options.MaxConditionCost,
// detector.max_condition_cost): about seven times the estimate of the costliest built-in
// rule (14469, sensitive-file-changed-outside-change). On this machine a condition of string
// concatenations stopped at a million took about 0.1 s, so the default bounds the worst
// evaluation of one condition on one event at about 10 ms; three nested all() over argv, which
// ran for seconds per event (issue 14), is estimated at 3.4e10.
const DefaultMaxConditionCost = 100_000

// ErrCostLimit is returned by a condition whose evaluation went past its cost limit.
var ErrCostLimit = errors.New("condition stopped at its cost limit")

// Size hints for the cost estimate: the most elements of a list or map, and characters of a
// string, an event is assumed to carry. An event that carries more is evaluated up to the
// cost limit all the same.
const (
	hintStringLen = 4096
	hintListLen   = 256
	hintMapLen    = 64
)

// sizeHints gives CEL's cost estimator the sizes of event fields (it assumes unbounded sizes
// otherwise, and every comprehension would cost infinitely much).
type sizeHints struct{}

func (sizeHints) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

func (sizeHints) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	switch n.Type().Kind() {
	case types.StringKind, types.BytesKind:
		return &cost.SizeEstimate{Min: 0, Max: hintStringLen}
	case types.ListKind:
		return &cost.SizeEstimate{Min: 0, Max: hintListLen}
	case types.MapKind:
		return &cost.SizeEstimate{Min: 0, Max: hintMapLen}
	}
	return nil
}

// celCondition is a compiled, type-checked CEL condition.
type celCondition struct {
	env     *cel.Env
	types   *avroTypes // the source's records, for evaluating over a decoded record
	checked *cel.Ast
	cost    uint64 // estimated worst cost
	// iterates says the condition has a comprehension (all, exists, map, filter ...), whose
	// cost grows with the sizes of lists and strings it visits: only those are tracked at run
	// time (tracking costs each evaluation about three times as much); the others cost at
	// most their estimate with every string at its longest.
	iterates bool
	prg      cel.Program
	field    string       // a field the condition pins, "" when none
	values   []string     // the values it may have
	onlyPins []pinned     // the whole condition when it is nothing but pins (see onlyPins)
	literals []LiteralSet // one of which an event it holds on has (see celLiterals); nil when none
}

// plan makes the program that evaluates the condition and stops past limit.
func (c *celCondition) plan(limit uint64) (cel.Program, error) {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if c.iterates {
		opts = append(opts, cel.CostLimit(limit))
	}
	prg, err := c.env.Program(c.checked, opts...)
	if err != nil {
		return nil, fmt.Errorf("plan condition: %w", err)
	}
	return prg, nil
}

// withCostLimit returns the condition planned to stop past limit.
func (c *celCondition) withCostLimit(limit uint64) (*celCondition, error) {
	if limit == DefaultMaxConditionCost || !c.iterates {
		return c, nil
	}
	prg, err := c.plan(limit)
	if err != nil {
		return nil, err
	}
	l := *c
	l.prg = prg
	return &l, nil
}

// MatchFields decides the condition from the event's fields: a condition made only of pins
// by comparing them, another by evaluating it over a view of the decoded record (see
// fieldView).
func (c *celCondition) MatchFields(f Fields) (hit, handled bool, err error) {
	if c.onlyPins != nil {
		return matchPins(c.onlyPins, f), true, nil
	}
	switch x := f.(type) {
	case *Event:
		if x.act != nil || x.rec == nil {
			hit, err := c.eval(x.act)
			return hit, true, err
		}
		hit, err := c.eval(&viewActivation{ev: x, types: c.types})
		return hit, true, err
	case Map:
		hit, err := c.eval(map[string]any(x))
		return hit, true, err
	}
	return false, false, nil
}

func (c *celCondition) Match(act map[string]any) (bool, error) {
	if c.onlyPins != nil {
		return matchPins(c.onlyPins, Map(act)), nil
	}
	return c.eval(act)
}

func (c *celCondition) eval(act any) (bool, error) {
	out, _, err := c.prg.Eval(act)
	if err != nil {
		var ce interpreter.EvalCancelledError
		if errors.As(err, &ce) && ce.Cause == interpreter.CostLimitExceeded {
			return false, ErrCostLimit
		}
		// A field absent from this event (an unset union, a missing map key) is no match.
		if strings.Contains(err.Error(), "no such key") || strings.Contains(err.Error(), "no such attribute") {
			return false, nil
		}
		return false, err
	}
	hit, _ := out.Value().(bool)
	return hit, nil
}

// hasComprehension tells whether an expression iterates (a macro such as all or exists).
func hasComprehension(e ast.Expr) bool {
	found := false
	ast.PreOrderVisit(e, ast.NewExprVisitor(func(x ast.Expr) {
		if x.Kind() == ast.ComprehensionKind {
			found = true
		}
	}))
	return found
}

// Pins returns the field the condition pins and its possible values.
func (c *celCondition) Pins() (string, []string, bool) {
	return c.field, c.values, c.field != ""
}

// pins finds, among the top-level conjuncts of e, those of the form `path == "lit"` or
// `path in ["a", "b"]` (an event whose path holds another value cannot match) and picks the
// most selective: not the action (shared by most rules of a source), then the fewest values.
func pins(e ast.Expr) (string, []string) {
	var best string
	var bestVals []string
	score := func(f string, vs []string) int {
		s := len(vs)
		if sharedField(f) {
			s += 1000
		}
		return s
	}
	for _, c := range conjuncts(e, nil) {
		f, vs := pin(c)
		if f != "" && (best == "" || score(f, vs) < score(best, bestVals)) {
			best, bestVals = f, vs
		}
	}
	return best, bestVals
}

func conjuncts(e ast.Expr, out []ast.Expr) []ast.Expr {
	if e.Kind() == ast.CallKind && e.AsCall().FunctionName() == "_&&_" {
		for _, a := range e.AsCall().Args() {
			out = conjuncts(a, out)
		}
		return out
	}
	return append(out, e)
}

// pin reads one conjunct as a pin.
func pin(e ast.Expr) (string, []string) {
	if e.Kind() != ast.CallKind {
		return "", nil
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case "_==_":
		if len(args) == 2 {
			for i := range 2 {
				if p := selectPath(args[i]); p != "" {
					if s, ok := stringLit(args[1-i]); ok {
						return p, []string{s}
					}
				}
			}
		}
	case "@in":
		if len(args) == 2 && args[1].Kind() == ast.ListKind {
			p := selectPath(args[0])
			var vs []string
			for _, el := range args[1].AsList().Elements() {
				s, ok := stringLit(el)
				if !ok {
					return "", nil
				}
				vs = append(vs, s)
			}
			if p != "" && len(vs) > 0 {
				return p, vs
			}
		}
	}
	return "", nil
}

func selectPath(e ast.Expr) string {
	switch e.Kind() {
	case ast.IdentKind:
		return e.AsIdent()
	case ast.SelectKind:
		s := e.AsSelect()
		if s.IsTestOnly() {
			return ""
		}
		if p := selectPath(s.Operand()); p != "" {
			return p + "." + s.FieldName()
		}
	}
	return ""
}

func stringLit(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	v := e.AsLiteral()
	if v.Type() != types.StringType {
		return "", false
	}
	s, ok := v.Value().(string)
	return s, ok
}

// ZeroEvent returns an event of a source with every field at its zero value (optional
// unions left out), in the form Process takes: a base for test events.
func ZeroEvent(source string) (map[string]any, error) {
	envsOnce.Do(buildEnvs)
	if envsErr != nil {
		return nil, envsErr
	}
	p, ok := envTypes[source]
	if !ok {
		return nil, fmt.Errorf("no such source %q", source)
	}
	return p.zero(p.topName), nil
}

// ZeroRecord returns the zero value of a record of a source's schema by full name (such as
// crumbs.Enrichment), or nil when there is none.
func ZeroRecord(source, name string) map[string]any {
	envsOnce.Do(buildEnvs)
	p, ok := envTypes[source]
	if !ok || p.records[name] == nil {
		return nil
	}
	return p.zero(name)
}

func (p *avroTypes) zero(record string) map[string]any {
	m := map[string]any{}
	for _, f := range p.order[record] {
		if p.opt[record][f] {
			continue
		}
		m[f] = p.zeroOf(p.records[record][f])
	}
	return m
}

func (p *avroTypes) zeroOf(t *types.Type) any {
	switch t.Kind() {
	case types.StringKind:
		return ""
	case types.IntKind:
		return int64(0)
	case types.DoubleKind:
		return 0.0
	case types.BoolKind:
		return false
	case types.ListKind:
		return []any{}
	case types.MapKind:
		return map[string]any{}
	case types.StructKind:
		return p.zero(t.TypeName())
	}
	return nil
}

// ipInFunction declares ip_in(ip, list): whether an address is one of the list's entries, an
// entry being a CIDR prefix (10.0.0.0/8) or an exact value (an address or a host name).
var ipInFunction = cel.Function("ip_in",
	cel.Overload("ip_in_string_list_string", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
		cel.BinaryBinding(func(ip, list ref.Val) ref.Val {
			s, _ := ip.Value().(string)
			addr, addrErr := netip.ParseAddr(s)
			l, ok := list.(traits.Lister)
			if !ok {
				return types.False
			}
			it := l.Iterator()
			for it.HasNext() == types.True {
				entry, _ := it.Next().Value().(string)
				if entry == s {
					return types.True
				}
				if pfx, err := netip.ParsePrefix(entry); err == nil && addrErr == nil && pfx.Contains(addr.Unmap()) {
					return types.True
				}
			}
			return types.False
		})))

// A condition is evaluated over a decoded record without its activation maps: the event's
// top-level fields resolve to fieldViews (records) or to values read with Event.Value
// (scalars, lists of scalars), and CEL selects the fields of a fieldView through the type
// provider's GetFrom. What Fields cannot read one by one (lists of records, Avro maps, unions
// of several types) comes from the activation, built then.

// fieldView is a record within an event (at path; "" for the event itself) whose fields CEL
// selects one by one.
type fieldView struct {
	ev   *Event
	path string
}

// get returns the field of the record: a fieldView for a record, the value for the rest;
// false when absent (as a map activation leaves it out).
func (v fieldView) get(field string, t *types.Type, optional bool) (any, bool) {
	path := field
	if v.path != "" {
		path = v.path + "." + field
	}
	switch {
	case t.Kind() == types.StructKind:
		if optional {
			p, ok := v.ev.Value(path)
			if _, isMap := p.(map[string]any); !ok || (p != true && !isMap) {
				if path != "enrichment" { // an event without enrichment reads an empty one (see Activation)
					return nil, false
				}
			}
		}
		return fieldView{ev: v.ev, path: path}, true
	case t.Kind() == types.MapKind || t.Kind() == types.DynKind ||
		(t.Kind() == types.ListKind && len(t.Parameters()) == 1 && t.Parameters()[0].Kind() != types.StringKind &&
			t.Parameters()[0].Kind() != types.IntKind && t.Parameters()[0].Kind() != types.DoubleKind && t.Parameters()[0].Kind() != types.BoolKind):
		x := Map(v.ev.Activation())
		return x.Value(path)
	}
	return v.ev.Value(path)
}

// viewActivation resolves the event's top-level fields over its decoded record.
type viewActivation struct {
	ev    *Event
	types *avroTypes
}

func (a *viewActivation) ResolveName(name string) (any, bool) {
	t, ok := a.types.top[name]
	if !ok {
		return nil, false
	}
	return fieldView{ev: a.ev}.get(name, t, a.types.opt[a.types.topName][name])
}

func (a *viewActivation) Parent() interpreter.Activation { return nil }
