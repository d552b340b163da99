package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// top is one schema file's top-level record bound to its Go type.
type top struct {
	file   string // avro/process.avsc
	name   string // crumbs.ProcessEvent
	goType string // ProcessEvent
	fp     uint64
	rec    *brecord

	lower   string  // processEvent: prefix of unexported identifiers
	slots   []*slot // optional records decoded into the scratch block
	pools   []*pool // arrays of records decoded from the scratch block
	leaves  []*leaf // columns, in schema order
	ranges  map[*bfield][2]int
	slotOf  map[*bfield]*slot
	poolOf  map[string]*pool // by Go item type
	scratch string           // the scratch type's name; "" when none is needed
	strings bool             // the scratch holds strings for arrays of strings
}

type slot struct {
	name   string
	goType string
}

type pool struct {
	name   string
	goType string
}

// poolSize is how many items of each record type the scratch block holds for arrays, and
// strPool how many strings for arrays of strings: enough for a typical event (one change
// window, which is rare already; a few arguments), beyond which a decode allocates more.
const (
	poolSize = 1
	strPool  = 8
)

// leaf is one column: a scalar (or array of scalars) at a path, or an optional record's
// presence.
type leaf struct {
	path     string
	ident    string // exported name of the column field
	avroType string
	elem     string // Go scalar type
	depth    int    // arrays crossed, the field's own included
	optional bool
	presence bool
	steps    []step // how to reach it from the top-level value
}

type step struct {
	f *bfield
}

type gen struct {
	b   bytes.Buffer
	n   int
	top *top
}

func (g *gen) p(format string, a ...any) {
	fmt.Fprintf(&g.b, format, a...)
	g.b.WriteByte('\n')
}

// tmp returns a fresh variable name.
func (g *gen) tmp(prefix string) string {
	g.n++
	return fmt.Sprintf("%s%d", prefix, g.n)
}

func lowerFirst(s string) string {
	r := []rune(s)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// camel turns an Avro name into a Go name (for fields no Go field names).
func camel(s string) string {
	var out strings.Builder
	for _, part := range strings.Split(s, "_") {
		if part == "" {
			continue
		}
		if up := strings.ToUpper(part); up == "ID" || up == "IP" || up == "URL" {
			out.WriteString(up)
			continue
		}
		out.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return out.String()
}

// analyse finds the scratch slots, pools and columns of a top-level record.
func (t *top) analyse() error {
	t.lower = lowerFirst(t.goType)
	t.ranges = map[*bfield][2]int{}
	t.slotOf = map[*bfield]*slot{}
	t.poolOf = map[string]*pool{}
	t.walkScratch(t.rec, "", false)
	if len(t.slots) > 0 || len(t.pools) > 0 || t.strings {
		t.scratch = t.lower + "Scratch"
	}
	t.collect(t.rec, "", "", 0, false, nil)
	seen := map[string]string{}
	for _, l := range t.leaves {
		if p, ok := seen[l.ident]; ok {
			return fmt.Errorf("%s: columns %s and %s would both be named %s", t.name, p, l.path, l.ident)
		}
		seen[l.ident] = l.path
	}
	return nil
}

func (t *top) walkScratch(r *brecord, path string, inArray bool) {
	for _, f := range r.fields {
		n := f.node
		fpath := path + camel(f.a.name)
		switch {
		case n.optional:
			if !inArray {
				s := &slot{name: lowerFirst(fpath), goType: n.goType}
				t.slots = append(t.slots, s)
				t.slotOf[f] = s
			}
			t.walkScratch(n.rec, fpath, inArray)
		case n.rec != nil:
			t.walkScratch(n.rec, fpath, inArray)
		case n.items != nil && n.items.basic == "string" && n.items.conv == "":
			t.strings = true
		case n.items != nil && n.items.rec != nil:
			if t.poolOf[n.items.goType] == nil {
				p := &pool{name: lowerFirst(n.items.goType) + "s", goType: n.items.goType}
				t.pools = append(t.pools, p)
				t.poolOf[n.items.goType] = p
			}
			t.walkScratch(n.items.rec, fpath, true)
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (t *top) collect(r *brecord, path, ident string, depth int, optional bool, steps []step) {
	for _, f := range r.fields {
		start := len(t.leaves)
		n := f.node
		fpath := join(path, f.a.name)
		fident := ident + f.goName
		st := append(append([]step(nil), steps...), step{f})
		switch {
		case f.flat:
			t.collect(n.rec, fpath, ident, depth, optional, st)
		case n.optional:
			t.leaves = append(t.leaves, &leaf{path: fpath, ident: "Has" + fident, avroType: "boolean", elem: "bool",
				depth: depth, optional: optional, presence: true, steps: st})
			t.collect(n.rec, fpath, fident, depth, true, st)
		case n.rec != nil:
			t.collect(n.rec, fpath, fident, depth, optional, st)
		case n.items != nil && n.items.rec != nil:
			t.collect(n.items.rec, fpath, fident, depth+1, optional, st)
		case n.items != nil:
			t.leaves = append(t.leaves, &leaf{path: fpath, ident: fident, avroType: n.items.a.kind, elem: n.items.basic,
				depth: depth + 1, optional: optional, steps: st})
		default:
			t.leaves = append(t.leaves, &leaf{path: fpath, ident: fident, avroType: n.a.kind, elem: n.basic,
				depth: depth, optional: optional, steps: st})
		}
		t.ranges[f] = [2]int{start, len(t.leaves)}
	}
}

// storage is the name of level j of a leaf's column: the exported column at its depth, the
// unexported flat arrays below.
func (l *leaf) storage(j int) string {
	if j == l.depth {
		return l.ident
	}
	return fmt.Sprintf("%sL%d", lowerFirst(l.ident), j)
}

// storageType is the Go type of level j.
func (l *leaf) storageType(j int) string { return strings.Repeat("[]", j+1) + l.elem }

func zeroOf(basic string) string {
	switch basic {
	case "string":
		return `""`
	case "bool":
		return "false"
	}
	return "0"
}

// readCall is the decoder call that reads a scalar.
func readCall(basic string) string {
	switch basic {
	case "string":
		return "d.string()"
	case "int32":
		return "d.int()"
	case "int64":
		return "d.long()"
	case "float32":
		return "d.float()"
	case "float64":
		return "d.double()"
	case "bool":
		return "d.bool()"
	}
	panic("no read call for " + basic)
}

func appendCall(basic, x string) string {
	switch basic {
	case "string":
		return "appendString(b, " + x + ")"
	case "int32":
		return "appendInt(b, " + x + ")"
	case "int64":
		return "appendLong(b, " + x + ")"
	case "float32":
		return "appendFloat(b, " + x + ")"
	case "float64":
		return "appendDouble(b, " + x + ")"
	case "bool":
		return "appendBool(b, " + x + ")"
	}
	panic("no append call for " + basic)
}

func sizeExpr(basic, x string) string {
	switch basic {
	case "string":
		return "sizeString(" + x + ")"
	case "int32":
		return "sizeLong(int64(" + x + "))"
	case "int64":
		return "sizeLong(" + x + ")"
	case "float32":
		return "4"
	case "float64":
		return "8"
	case "bool":
		return "1"
	}
	panic("no size for " + basic)
}

// scalarOf returns x as its basic type (x itself unless held in a named type).
func scalarOf(n *bnode, x string) string {
	if n.conv != "" {
		return n.basic + "(" + x + ")"
	}
	return x
}

// ---- encoding ----

func (g *gen) encodeRecord(r *brecord, base string) {
	for _, f := range r.fields {
		switch {
		case f.flat:
			g.encodeRecord(f.node.rec, base)
		default:
			g.encode(f.node, base+f.sel)
		}
	}
}

func (g *gen) encode(n *bnode, x string) {
	switch {
	case n.optional:
		p := g.tmp("p")
		g.p("if %s := %s; %s == nil {", p, x, p)
		g.p("b = append(b, %d)", (1-n.recIndex)*2)
		g.p("} else {")
		g.p("b = append(b, %d)", n.recIndex*2)
		g.encodeRecord(n.rec, p)
		g.p("}")
	case n.rec != nil:
		g.encodeRecord(n.rec, x)
	case n.items != nil && n.items.basic == "string" && n.items.conv == "":
		g.p("b = appendStrings(b, %s)", x)
	case n.items != nil:
		i := g.tmp("i")
		g.p("if len(%s) > 0 {", x)
		g.p("b = appendLong(b, int64(len(%s)))", x)
		if n.items.rec != nil {
			it := g.tmp("it")
			g.p("for %s := range %s {", i, x)
			g.p("%s := &%s[%s]", it, x, i)
			g.encodeRecord(n.items.rec, it)
		} else {
			g.p("for _, %s := range %s {", i, x)
			g.p("b = %s", appendCall(n.items.basic, scalarOf(n.items, i)))
		}
		g.p("}")
		g.p("}")
		g.p("b = append(b, 0)")
	default:
		g.p("b = %s", appendCall(n.basic, scalarOf(n, x)))
	}
}

func (g *gen) sizeRecord(r *brecord, base string) {
	for _, f := range r.fields {
		switch {
		case f.flat:
			g.sizeRecord(f.node.rec, base)
		default:
			g.size(f.node, base+f.sel)
		}
	}
}

func (g *gen) size(n *bnode, x string) {
	switch {
	case n.optional:
		p := g.tmp("p")
		g.p("n++")
		g.p("if %s := %s; %s != nil {", p, x, p)
		g.sizeRecord(n.rec, p)
		g.p("}")
	case n.rec != nil:
		g.sizeRecord(n.rec, x)
	case n.items != nil && n.items.basic == "string" && n.items.conv == "":
		g.p("n += sizeStrings(%s)", x)
	case n.items != nil:
		i := g.tmp("i")
		g.p("n++")
		g.p("if len(%s) > 0 {", x)
		g.p("n += sizeLong(int64(len(%s)))", x)
		if n.items.rec != nil {
			it := g.tmp("it")
			g.p("for %s := range %s {", i, x)
			g.p("%s := &%s[%s]", it, x, i)
			g.sizeRecord(n.items.rec, it)
		} else {
			g.p("for _, %s := range %s {", i, x)
			g.p("n += %s", sizeExpr(n.items.basic, scalarOf(n.items, i)))
			g.p("_ = %s", i)
		}
		g.p("}")
		g.p("}")
	default:
		g.p("n += %s", sizeExpr(n.basic, scalarOf(n, x)))
	}
}

// defaultLiteral is a Go expression of a scalar field's default, for FromNative.
func defaultLiteral(n *bnode, def json.RawMessage) string {
	if def == nil {
		return zeroOf(n.basic)
	}
	var v any
	_ = json.Unmarshal(def, &v)
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return zeroOf(n.basic)
}

// ---- decoding into the Go value ----

func (g *gen) decodeRecord(r *brecord, base string, inArray bool) {
	for _, f := range r.fields {
		switch {
		case f.flat:
			g.decodeRecord(f.node.rec, base, inArray)
		default:
			g.decode(f, f.node, base+f.sel, inArray)
		}
	}
}

func (g *gen) needScratch() {
	g.p("if scr == nil {")
	g.p("scr = new(%s)", g.top.scratch)
	if g.top.strings {
		g.p("d.pool = scr.strs[:]")
	}
	g.p("}")
}

func (g *gen) decode(f *bfield, n *bnode, x string, inArray bool) {
	switch {
	case n.optional:
		p := g.tmp("p")
		g.p("if d.union() == %d {", n.recIndex)
		if s := g.top.slotOf[f]; s != nil && !inArray {
			g.needScratch()
			g.p("%s := &scr.%s", p, s.name)
		} else {
			g.p("%s := new(%s)", p, n.goType)
		}
		g.p("%s = %s", x, p)
		g.decodeRecord(n.rec, p, inArray)
		g.p("} else {")
		g.p("%s = nil", x)
		g.p("}")
	case n.rec != nil:
		g.decodeRecord(n.rec, x, inArray)
	case n.items != nil && n.items.basic == "string" && n.items.conv == "":
		k := g.tmp("n")
		g.p("if %s := d.block(1); %s > 0 {", k, k)
		g.needScratch()
		g.p("%s = d.strings(%s)", x, k)
		g.p("} else {")
		g.p("%s = nil", x)
		g.p("}")
	case n.items != nil && n.items.rec != nil:
		s, k, j, it := g.tmp("s"), g.tmp("n"), g.tmp("j"), g.tmp("it")
		min := minSize(n.items.a)
		pl := g.top.poolOf[n.items.goType]
		g.p("{")
		g.p("var %s []%s", s, n.items.goType)
		g.p("for %s := d.block(%d); %s > 0; %s = d.block(%d) {", k, min, k, k, min)
		g.p("if l := len(%s); l == 0 {", s)
		g.needScratch()
		g.p("%s = take(scr.%s[:], &scr.%sUsed, %s)", s, pl.name, pl.name, k)
		g.p("} else {")
		g.p("%s = slices.Grow(%s, %s)[:l+%s]", s, s, k, k)
		g.p("}")
		g.p("for %s := len(%s) - %s; %s < len(%s); %s++ {", j, s, k, j, s, j)
		g.p("%s := &%s[%s]", it, s, j)
		g.decodeRecord(n.items.rec, it, true)
		g.p("}")
		g.p("}")
		g.p("%s = %s", x, s)
		g.p("}")
	case n.items != nil:
		k := g.tmp("n")
		min := minSize(n.items.a)
		g.p("%s = nil", x)
		g.p("for %s := d.block(%d); %s > 0; %s = d.block(%d) {", k, min, k, k, min)
		g.p("for range %s {", k)
		if n.items.conv != "" {
			g.p("%s = append(%s, %s(%s))", x, x, n.items.conv, readCall(n.items.basic))
		} else {
			g.p("%s = append(%s, %s)", x, x, readCall(n.items.basic))
		}
		g.p("}")
		g.p("}")
	default:
		if n.conv != "" {
			g.p("%s = %s(%s)", x, n.conv, readCall(n.basic))
		} else {
			g.p("%s = %s", x, readCall(n.basic))
		}
	}
}

// ---- decoding into columns ----

func (g *gen) colRecord(r *brecord, depth int) {
	t := g.top
	for _, f := range r.fields {
		n := f.node
		rng := t.ranges[f]
		switch {
		case f.flat || (n.rec != nil && !n.optional):
			g.colRecord(n.rec, depth)
		case n.optional:
			pres := t.leaves[rng[0]]
			g.p("if d.union() == %d {", n.recIndex)
			g.p("c.%s = append(c.%s, true)", pres.storage(0), pres.storage(0))
			g.colRecord(n.rec, depth)
			g.p("} else {")
			g.p("c.%s = append(c.%s, false)", pres.storage(0), pres.storage(0))
			for _, l := range t.leaves[rng[0]+1 : rng[1]] {
				m := l.depth - depth
				if m == 0 {
					g.p("c.%s = append(c.%s, %s)", l.storage(0), l.storage(0), zeroOf(l.elem))
				} else {
					g.p("c.%s = append(c.%s, %s{})", l.storage(m), l.storage(m), strings.Repeat("[]", m)+l.elem)
				}
			}
			g.p("}")
		case n.items != nil:
			// This array is the (depth+1)-th on the path of every leaf below it.
			i := depth + 1
			leaves := t.leaves[rng[0]:rng[1]]
			starts := make([]string, len(leaves))
			g.p("{")
			for li, l := range leaves {
				starts[li] = g.tmp("st")
				g.p("%s := len(c.%s)", starts[li], l.storage(l.depth-i))
			}
			min := minSize(n.items.a)
			k := g.tmp("n")
			g.p("for %s := d.block(%d); %s > 0; %s = d.block(%d) {", k, min, k, k, min)
			g.p("for range %s {", k)
			if n.items.rec != nil {
				g.colRecord(n.items.rec, depth+1)
			} else {
				l := leaves[0]
				g.p("c.%s = append(c.%s, %s)", l.storage(0), l.storage(0), readCall(l.elem))
			}
			g.p("}")
			g.p("}")
			for li, l := range leaves {
				from, to := l.storage(l.depth-i), l.storage(l.depth-i+1)
				g.p("c.%s = append(c.%s, cut(c.%s, %s))", to, to, from, starts[li])
			}
			g.p("}")
		default:
			l := t.leaves[rng[0]]
			g.p("c.%s = append(c.%s, %s)", l.storage(0), l.storage(0), readCall(l.elem))
		}
	}
}

// ---- field access ----

// fieldValue emits code that sets out (declared, of the column's element type) to the value
// of the leaf reached by steps from x. Outside arrays an absent optional record returns
// false; inside them it leaves the zero value, as the columns hold.
func (g *gen) fieldValue(l *leaf, steps []step, x, out string, depth int) {
	f := steps[0].f
	n := f.node
	rest := steps[1:]
	switch {
	case f.flat:
		g.fieldValue(l, rest, x, out, depth)
	case n.optional:
		if len(rest) == 0 { // the presence leaf
			g.p("%s = %s%s != nil", out, x, f.sel)
			return
		}
		p := g.tmp("p")
		if depth == 0 {
			g.p("%s := %s%s", p, x, f.sel)
			g.p("if %s == nil {", p)
			g.p("return nil, false")
			g.p("}")
			g.fieldValue(l, rest, p, out, depth)
			return
		}
		g.p("if %s := %s%s; %s != nil {", p, x, f.sel, p)
		g.fieldValue(l, rest, p, out, depth)
		g.p("}")
	case n.rec != nil:
		g.fieldValue(l, rest, x+f.sel, out, depth)
	case n.items != nil && n.items.rec != nil:
		s, o, i := g.tmp("s"), g.tmp("o"), g.tmp("i")
		typ := strings.Repeat("[]", l.depth-depth) + l.elem
		g.p("%s := %s%s", s, x, f.sel)
		g.p("%s := make(%s, len(%s))", o, typ, s)
		g.p("for %s := range %s {", i, s)
		g.fieldValue(l, rest, "(&"+s+"["+i+"])", o+"["+i+"]", depth+1)
		g.p("}")
		g.p("%s = %s", out, o)
	case n.items != nil:
		if n.items.conv != "" {
			s, i := g.tmp("s"), g.tmp("i")
			g.p("%s := %s%s", s, x, f.sel)
			g.p("%s = make([]%s, len(%s))", out, l.elem, s)
			g.p("for %s := range %s {", i, s)
			g.p("%s[%s] = %s(%s[%s])", out, i, l.elem, s, i)
			g.p("}")
			return
		}
		g.p("%s = %s%s", out, x, f.sel)
	default:
		g.p("%s = %s", out, scalarOf(n, x+f.sel))
	}
}

// ---- goavro native form ----

func (g *gen) nativeRecord(r *brecord, base string) string {
	var s strings.Builder
	s.WriteString("map[string]any{\n")
	for _, f := range r.fields {
		var v string
		switch {
		case f.flat:
			v = g.nativeRecord(f.node.rec, base)
		default:
			v = g.native(f.node, base+f.sel)
		}
		fmt.Fprintf(&s, "%q: %s,\n", f.a.name, v)
	}
	s.WriteString("}")
	return s.String()
}

func (g *gen) native(n *bnode, x string) string {
	switch {
	case n.optional:
		p := g.tmp("p")
		return fmt.Sprintf("func() any {\nif %s := %s; %s != nil {\nreturn map[string]any{%q: %s}\n}\nreturn nil\n}()",
			p, x, p, n.rec.a.name, g.nativeRecord(n.rec, p))
	case n.rec != nil:
		return g.nativeRecord(n.rec, x)
	case n.items != nil && n.items.basic == "string" && n.items.conv == "":
		return "nativeStrings(" + x + ")"
	case n.items != nil:
		o, i := g.tmp("o"), g.tmp("i")
		var item string
		if n.items.rec != nil {
			item = g.nativeRecord(n.items.rec, "(&"+x+"["+i+"])")
		} else {
			item = scalarOf(n.items, x+"["+i+"]")
		}
		return fmt.Sprintf("func() []any {\n%s := make([]any, len(%s))\nfor %s := range %s {\n%s[%s] = %s\n}\nreturn %s\n}()",
			o, x, i, x, o, i, item, o)
	}
	return scalarOf(n, x)
}

func (g *gen) fromRecord(r *brecord, m, base, path string) {
	for _, f := range r.fields {
		n := f.node
		fpath := join(path, f.a.name)
		get := fmt.Sprintf("%s[%q]", m, f.a.name)
		x := base + f.sel
		switch {
		case f.flat:
			m2 := g.tmp("m")
			g.p("%s := r.record(%s, %q)", m2, get, fpath)
			g.fromRecord(n.rec, m2, base, fpath)
		case n.optional:
			m2, p := g.tmp("m"), g.tmp("p")
			g.p("if %s := r.union(%s, %q); %s != nil {", m2, get, fpath, m2)
			g.p("%s := new(%s)", p, n.goType)
			g.p("%s = %s", x, p)
			g.fromRecord(n.rec, m2, p, fpath)
			g.p("}")
		case n.rec != nil:
			m2 := g.tmp("m")
			g.p("%s := r.record(%s, %q)", m2, get, fpath)
			g.fromRecord(n.rec, m2, x, fpath)
		case n.items != nil && n.items.basic == "string" && n.items.conv == "":
			g.p("%s = r.strings(%s, %q)", x, get, fpath)
		case n.items != nil:
			a, s, i, it := g.tmp("a"), g.tmp("s"), g.tmp("i"), g.tmp("it")
			g.p("if %s := r.array(%s, %q); len(%s) > 0 {", a, get, fpath, a)
			g.p("%s := make([]%s, len(%s))", s, n.items.goType, a)
			g.p("for %s, %s := range %s {", i, it, a)
			if n.items.rec != nil {
				m2 := g.tmp("m")
				g.p("%s := r.record(%s, %q)", m2, it, fpath)
				g.fromRecord(n.items.rec, m2, "(&"+s+"["+i+"])", fpath)
			} else {
				g.p("%s[%s] = %s", s, i, g.fromScalar(n.items, it, fpath, nil))
			}
			g.p("}")
			g.p("%s = %s", x, s)
			g.p("}")
		default:
			g.p("%s = %s", x, g.fromScalar(n, get, fpath, f.a.def))
		}
	}
}

func (g *gen) fromScalar(n *bnode, v, path string, def json.RawMessage) string {
	var call string
	d := defaultLiteral(n, def)
	switch n.basic {
	case "string":
		call = fmt.Sprintf("r.str(%s, %q, %s)", v, path, d)
	case "int32":
		call = fmt.Sprintf("r.int(%s, %q, %s)", v, path, d)
	case "int64":
		call = fmt.Sprintf("r.long(%s, %q, %s)", v, path, d)
	case "float32":
		call = fmt.Sprintf("r.float(%s, %q, %s)", v, path, d)
	case "float64":
		call = fmt.Sprintf("r.double(%s, %q, %s)", v, path, d)
	case "bool":
		call = fmt.Sprintf("r.bool(%s, %q, %s)", v, path, d)
	}
	if n.conv != "" {
		return n.conv + "(" + call + ")"
	}
	return call
}
