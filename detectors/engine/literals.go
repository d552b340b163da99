package engine

import (
	"math"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
)

// A CEL condition offers the engine literals (LiteralCondition) when it can hold only on
// events whose text holds one of them: what `==`, `in [...]`, contains, startsWith, endsWith
// and matches compare a string field with. So a rule such as
//
//	action == "exec" && (process.file.name in ["shred"] || process.args[0].matches("(^|/)shred$"))
//
// is judged only on events whose file name or first argument holds "shred", not on every
// exec. The literals are a necessary condition, never a sufficient one: the whole condition
// is still evaluated on the events they let through.

// Literals returns the condition's literal sets (see celLiterals).
func (c *celCondition) Literals() ([]LiteralSet, bool) {
	return c.literals, c.literals != nil
}

// celLiterals returns literal sets such that e holds only on events in which a literal of one
// of them occurs in its key's text; false when there are none. typeOf gives the checked type
// of an expression: only fields of type string are searched.
func celLiterals(e ast.Expr, typeOf func(ast.Expr) *types.Type) ([]LiteralSet, bool) {
	if e.Kind() != ast.CallKind {
		return nil, false
	}
	call := e.AsCall()
	args := call.Args()
	switch fn := call.FunctionName(); fn {
	case operators.LogicalAnd: // one conjunct is enough: the most selective
		var best []LiteralSet
		for _, a := range args {
			if s, ok := celLiterals(a, typeOf); ok && (best == nil || LiteralScore(s) < LiteralScore(best)) {
				best = s
			}
		}
		return best, best != nil
	case operators.LogicalOr: // one of the disjuncts holds: the union of theirs
		var sets []LiteralSet
		for _, a := range args {
			s, ok := celLiterals(a, typeOf)
			if !ok {
				return nil, false
			}
			sets = UnionLiterals(sets, s)
		}
		return sets, len(sets) > 0
	case operators.Equals:
		if len(args) != 2 {
			return nil, false
		}
		for i := range 2 {
			if key, ok := textKey(args[i], false, typeOf); ok {
				if s, ok := stringLit(args[1-i]); ok {
					return literalSet(key, []string{s})
				}
			}
		}
	case operators.In:
		if len(args) != 2 || args[1].Kind() != ast.ListKind {
			return nil, false
		}
		key, ok := textKey(args[0], false, typeOf)
		if !ok {
			return nil, false
		}
		var vs []string
		for _, el := range args[1].AsList().Elements() {
			s, ok := stringLit(el)
			if !ok {
				return nil, false
			}
			vs = append(vs, s)
		}
		return literalSet(key, vs)
	case "contains", "startsWith", "endsWith", "matches":
		var target, arg ast.Expr
		switch {
		case call.IsMemberFunction() && len(args) == 1:
			target, arg = call.Target(), args[0]
		case !call.IsMemberFunction() && len(args) == 2 && fn == "matches":
			target, arg = args[0], args[1]
		default:
			return nil, false
		}
		s, ok := stringLit(arg)
		if !ok {
			return nil, false
		}
		if fn != "matches" {
			key, ok := textKey(target, false, typeOf)
			if !ok {
				return nil, false
			}
			return literalSet(key, []string{s})
		}
		vs, folded, ok := regexpLiterals(s)
		if !ok {
			return nil, false
		}
		key, ok := textKey(target, folded, typeOf)
		if !ok {
			return nil, false
		}
		return literalSet(key, vs)
	}
	return nil, false
}

// literalSet is one set, unless a value is empty or holds NUL (the separator of a list's
// elements in its text): such a value indexes nothing.
func literalSet(key IndexKey, vs []string) ([]LiteralSet, bool) {
	if len(vs) == 0 {
		return nil, false
	}
	for _, v := range vs {
		if v == "" || strings.IndexByte(v, 0) >= 0 {
			return nil, false
		}
	}
	return []LiteralSet{{Key: key, Values: slices.Compact(slices.Sorted(slices.Values(vs)))}}, true
}

// UnionLiterals adds b's sets to a, a set's new values appended to those of the set of the
// same key: the literals of "one of these holds" (an or), for Sigma and CEL conditions alike.
func UnionLiterals(a, b []LiteralSet) []LiteralSet {
	for _, s := range b {
		i := slices.IndexFunc(a, func(x LiteralSet) bool { return x.Key.Name == s.Key.Name })
		if i < 0 {
			a = append(a, LiteralSet{Key: s.Key, Values: slices.Clone(s.Values)})
			continue
		}
		for _, v := range s.Values {
			if !slices.Contains(a[i].Values, v) {
				a[i].Values = append(a[i].Values, v)
			}
		}
	}
	return a
}

// LiteralScore ranks literal sets by how often an unrelated text would hold one of them:
// about count times 4^-length for the shortest (a longer literal is rarer, up to a dozen
// characters, beyond which real text is not random), so that a conjunct of a thousand
// package names loses to one path suffix, which also keeps the automata small. Lower is
// better. Sigma rules and CEL conditions alike pick their most selective conjunct by it.
func LiteralScore(sets []LiteralSet) float64 {
	shortest, count := -1, 0
	for _, s := range sets {
		for _, v := range s.Values {
			if shortest < 0 || len(v) < shortest {
				shortest = len(v)
			}
			count++
		}
	}
	return math.Log(float64(count)) - math.Log(4)*float64(min(shortest, 12))
}

// textKey is the key of the text of a string field (process.cmd_line), or of a list's
// elements joined by NUL when e is an element of a list (process.args[0]); folded, the text
// case-folded (see foldString). Only a field (or an element, by a constant index) whose
// checked type is string has one.
func textKey(e ast.Expr, folded bool, typeOf func(ast.Expr) *types.Type) (IndexKey, bool) {
	if t := typeOf(e); t == nil || t.Kind() != types.StringKind {
		return IndexKey{}, false
	}
	path, elem := selectPath(e), false
	if path == "" && e.Kind() == ast.CallKind && e.AsCall().FunctionName() == operators.Index {
		if a := e.AsCall().Args(); len(a) == 2 && a[1].Kind() == ast.LiteralKind && a[1].AsLiteral().Type() == types.IntType {
			if lt := typeOf(a[0]); lt != nil && lt.Kind() == types.ListKind {
				path, elem = selectPath(a[0]), true
			}
		}
	}
	if path == "" || sharedField(path) { // pinned instead (see ruleSet.add)
		return IndexKey{}, false
	}
	name := "cel: " + path
	if elem {
		name += "[*]"
	}
	if folded {
		name += ", case-folded"
	}
	return IndexKey{Name: name, Of: func(ev Fields) (string, bool) {
		v, ok := ev.Value(path)
		if !ok {
			return "", false
		}
		var s string
		switch x := v.(type) {
		case string:
			if elem {
				return "", false
			}
			s = x
		case []string:
			if !elem {
				return "", false
			}
			s = strings.Join(x, "\x00")
		case []any:
			if !elem {
				return "", false
			}
			var b strings.Builder
			for i, el := range x {
				if i > 0 {
					b.WriteByte(0)
				}
				if es, ok := el.(string); ok {
					b.WriteString(es)
				}
			}
			s = b.String()
		default:
			return "", false
		}
		if folded {
			s = foldString(s)
		}
		return s, true
	}}, true
}

// regexpLiterals returns strings one of which every match of the regular expression holds
// (case-folded when folded), and false when it has none: a CEL matches() finds the
// expression anywhere in its text, so any literal its matches must hold will do.
func regexpLiterals(pattern string) (vals []string, folded, ok bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, false, false
	}
	lits, ok := requiredLiterals(re.Simplify())
	if !ok {
		return nil, false, false
	}
	for _, l := range lits {
		folded = folded || l.fold
	}
	for _, l := range lits {
		s := l.s
		if folded {
			s = foldString(s)
		}
		vals = append(vals, s)
	}
	return vals, folded, true
}

type reLiteral struct {
	s    string
	fold bool
}

// requiredLiterals returns literals one of which every match of re holds.
func requiredLiterals(re *syntax.Regexp) ([]reLiteral, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return nil, false
		}
		return []reLiteral{{string(re.Rune), re.Flags&syntax.FoldCase != 0}}, true
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min < 1 {
			return nil, false
		}
		return requiredLiterals(re.Sub[0])
	case syntax.OpConcat: // one part is enough: the most selective
		var best []reLiteral
		for _, sub := range re.Sub {
			if l, ok := requiredLiterals(sub); ok && (best == nil || reScore(l) < reScore(best)) {
				best = l
			}
		}
		return best, best != nil
	case syntax.OpAlternate: // one of the alternatives: the union of theirs
		var out []reLiteral
		for _, sub := range re.Sub {
			l, ok := requiredLiterals(sub)
			if !ok {
				return nil, false
			}
			out = append(out, l...)
		}
		return out, len(out) > 0
	}
	return nil, false
}

func reScore(ls []reLiteral) float64 {
	vs := make([]string, len(ls))
	for i, l := range ls {
		vs[i] = l.s
	}
	return LiteralScore([]LiteralSet{{Values: vs}})
}

// foldString maps each rune to the least rune of its case-folding orbit (the runes a regular
// expression's case-insensitive match takes as equal: k, K and the Kelvin sign), so that a
// case-insensitive match holds a literal exactly when the folded text holds the folded literal.
func foldString(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'a' <= c && c <= 'z' {
			return strings.Map(foldRune, s)
		}
	}
	return s
}

func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		if r != 'K' && r != 'S' { // the only ASCII letters with a non-ASCII rune in their orbit (K, ſ)
			return r
		}
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}
