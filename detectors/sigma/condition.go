package sigma

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode"
)

// condExpr is a parsed condition expression.
type condExpr interface{}

type (
	condAnd   struct{ l, r condExpr }
	condOr    struct{ l, r condExpr }
	condNot   struct{ x condExpr }
	condIdent struct{ name string }
	// condOf is "N of pattern", "all of pattern", "N of them": n is 0 for all.
	condOf struct {
		n       int
		pattern string
	}
)

// maxCondDepth bounds the nesting of a condition.
const maxCondDepth = 64

type condParser struct {
	toks  []string
	pos   int
	depth int
}

// parseCondition parses a Sigma condition: identifiers, and, or, not, parentheses, and the
// quantifiers "1 of X*", "all of X*", "1 of them", "all of them" (any of = 1 of).
func parseCondition(s string) (condExpr, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, errors.New("empty condition")
	}
	p := &condParser{toks: toks}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos])
	}
	return e, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r == '|':
			return nil, errors.New("aggregation expressions (| count() ...) are deprecated Sigma and not supported; use a correlation rule")
		case r == '(' || r == ')':
			flush()
			toks = append(toks, string(r))
		case unicode.IsSpace(r):
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return toks, nil
}

func (p *condParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *condParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func isKeyword(t, kw string) bool { return strings.EqualFold(t, kw) }

func (p *condParser) or() (condExpr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for isKeyword(p.peek(), "or") {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = condOr{l, r}
	}
	return l, nil
}

func (p *condParser) and() (condExpr, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for isKeyword(p.peek(), "and") {
		p.next()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = condAnd{l, r}
	}
	return l, nil
}

func (p *condParser) not() (condExpr, error) {
	if isKeyword(p.peek(), "not") {
		p.next()
		p.depth++
		if p.depth > maxCondDepth {
			return nil, errors.New("condition nested too deep")
		}
		x, err := p.not()
		p.depth--
		if err != nil {
			return nil, err
		}
		return condNot{x}, nil
	}
	return p.primary()
}

func (p *condParser) primary() (condExpr, error) {
	t := p.next()
	switch {
	case t == "":
		return nil, errors.New("condition ends early")
	case t == "(":
		p.depth++
		if p.depth > maxCondDepth {
			return nil, errors.New("condition nested too deep")
		}
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, errors.New("missing )")
		}
		p.depth--
		return e, nil
	case t == ")":
		return nil, errors.New("unexpected )")
	case isKeyword(t, "and") || isKeyword(t, "or") || isKeyword(t, "of"):
		return nil, fmt.Errorf("unexpected %q", t)
	}
	if isKeyword(p.peek(), "of") {
		n := 0
		switch {
		case isKeyword(t, "all"):
		case isKeyword(t, "any"):
			n = 1
		default:
			v, err := strconv.Atoi(t)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("%q of: must be all, any or a positive count", t)
			}
			n = v
		}
		p.next()
		pat := p.next()
		if pat == "" || pat == "(" || pat == ")" {
			return nil, fmt.Errorf("%s of: needs a search identifier pattern or them", t)
		}
		return condOf{n: n, pattern: pat}, nil
	}
	return condIdent{t}, nil
}

// namesMatching returns the search identifiers a quantifier pattern selects: them is every
// identifier not starting with an underscore, a pattern may use * wildcards.
func namesMatching(pattern string, names []string) []string {
	var out []string
	if isKeyword(pattern, "them") {
		for _, n := range names {
			if !strings.HasPrefix(n, "_") {
				out = append(out, n)
			}
		}
		return out
	}
	g := newGlob(parsePattern(strings.ReplaceAll(pattern, "?", `\?`)), true)
	for _, n := range names {
		if g.matchString(n) {
			out = append(out, n)
		}
	}
	return out
}

// regexExample builds a string the regular expression matches, for the test generator:
// the first branch of each alternation, the minimum of each repetition.
func regexExample(re interface{ String() string }) string {
	parsed, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return ""
	}
	var b strings.Builder
	writeExample(&b, parsed.Simplify(), 0)
	return b.String()
}

func writeExample(b *strings.Builder, re *syntax.Regexp, depth int) {
	if depth > 100 || b.Len() > 4096 {
		return
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		if len(re.Rune) >= 2 {
			r := re.Rune[0]
			// Prefer a printable character of the class.
			for i := 0; i+1 < len(re.Rune); i += 2 {
				if lo, hi := re.Rune[i], re.Rune[i+1]; hi >= 'a' && lo <= 'z' {
					r = max(lo, 'a')
					break
				} else if hi >= '0' && lo <= '9' {
					r = max(lo, '0')
				}
			}
			b.WriteRune(r)
		}
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		b.WriteByte('x')
	case syntax.OpCapture:
		writeExample(b, re.Sub[0], depth+1)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			writeExample(b, s, depth+1)
		}
	case syntax.OpAlternate:
		writeExample(b, re.Sub[0], depth+1)
	case syntax.OpPlus:
		writeExample(b, re.Sub[0], depth+1)
	case syntax.OpRepeat:
		for i := 0; i < re.Min; i++ {
			writeExample(b, re.Sub[0], depth+1)
		}
	}
}

// condString writes a condition expression back as Sigma text, parenthesising every binary
// operation below the top, for messages naming a branch.
func condString(e condExpr) string {
	return condText(e, true)
}

func condText(e condExpr, top bool) string {
	wrap := func(s string) string {
		if top {
			return s
		}
		return "(" + s + ")"
	}
	switch x := e.(type) {
	case condAnd:
		return wrap(condText(x.l, false) + " and " + condText(x.r, false))
	case condOr:
		return wrap(condText(x.l, false) + " or " + condText(x.r, false))
	case condNot:
		return "not " + condText(x.x, false)
	case condIdent:
		return x.name
	case condOf:
		n := strconv.Itoa(x.n)
		if x.n == 0 {
			n = "all"
		}
		return n + " of " + x.pattern
	}
	return fmt.Sprintf("%v", e)
}
