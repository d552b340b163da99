package engine

import (
	"slices"

	"cel.dev/cel-go/common/ast"
)

// Many conditions are nothing but pins: action == "auth" && identity.result == "failure"
// && identity.remote_host != "". Such a condition is decided by comparing strings of the
// activation, without running CEL (which converts every value it reads): the same answer,
// since CEL reads an absent field as no match, whatever the comparison (see
// celCondition.Match), and compares strings exactly.

// pinned is one conjunct `path == "lit"`, `path in ["a", "b"]` (see pin) or, not,
// `path != "lit"`.
type pinned struct {
	dotted string // path, as Fields reads it
	values []string
	not    bool
}

// onlyPins returns the conjuncts of e when every one is a pin or its negation, else nil.
func onlyPins(e ast.Expr) []pinned {
	var out []pinned
	for _, c := range conjuncts(e, nil) {
		not := false
		if c.Kind() == ast.CallKind && c.AsCall().FunctionName() == "_!=_" {
			not = true
			args := c.AsCall().Args()
			c = ast.NewExprFactory().NewCall(0, "_==_", args...)
		}
		f, vs := pin(c)
		if f == "" {
			return nil
		}
		out = append(out, pinned{dotted: f, values: vs, not: not})
	}
	return out
}

// matchPins tells whether the activation holds, at every pin's path, one of its values (none
// of them for a negated pin).
func matchPins(ps []pinned, f Fields) bool {
	for _, p := range ps {
		fv, _ := f.Value(p.dotted)
		v, ok := fv.(string)
		if !ok || slices.Contains(p.values, v) == p.not {
			return false
		}
	}
	return true
}
