package avro

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// CheckBackward reports every way in which a reader using newSchemaJSON could not read data
// written with oldSchemaJSON, following the Avro schema resolution rules (backward
// compatibility as the Confluent schema registry defines it). It returns nil when the new
// schema can read everything the old one wrote.
//
// Each problem names the path of the field concerned, starting with the full name of the
// new top-level type, e.g. "crumbs.ProcessEvent.process.pid: type changed from long to int".
// Array items are written path[] and map values path{}. The checks are:
//
//   - a record field the new schema adds without a default;
//   - a type changed other than by an Avro promotion (int to long, float or double; long to
//     float or double; float to double; string to bytes and bytes to string);
//   - an enum symbol removed, unless the new enum has a default;
//   - a union branch old data could use that the new schema cannot read;
//   - a named type (record, enum, fixed) renamed, unless the new type lists the old full
//     name among its aliases; as in Avro, names match on their unqualified part;
//   - a fixed size changed;
//
// recursively through records, arrays, maps and unions. Removing a field is compatible: the
// reader ignores it. A field renamed is compatible when the new field lists the old name
// among its aliases. A schema that does not parse is reported as a problem too.
func CheckBackward(oldSchemaJSON, newSchemaJSON string) []string {
	writer, err := parseCompatSchema(oldSchemaJSON)
	if err != nil {
		return []string{fmt.Sprintf("old schema: %v", err)}
	}
	reader, err := parseCompatSchema(newSchemaJSON)
	if err != nil {
		return []string{fmt.Sprintf("new schema: %v", err)}
	}
	c := &compatChecker{active: map[[2]*cnode]bool{}}
	root := reader.fullName
	if root == "" {
		root = reader.typ
	}
	c.check(writer, reader, root)
	return c.problems
}

// cnode is one node of a parsed schema, as much of it as schema resolution looks at.
type cnode struct {
	typ      string // null, boolean, int, long, float, double, bytes, string, record, enum, fixed, array, map, union
	fullName string // named types
	aliases  []string
	fields   []cfield // record
	symbols  []string // enum
	enumDef  bool     // enum has a default
	size     int      // fixed
	items    *cnode   // array items, map values
	branches []*cnode // union
}

type cfield struct {
	name       string
	aliases    []string
	typ        *cnode
	hasDefault bool
}

var primitiveTypes = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

// parseCompatSchema parses an Avro schema into cnodes, resolving named references.
func parseCompatSchema(schemaJSON string) (*cnode, error) {
	var v any
	if err := json.Unmarshal([]byte(schemaJSON), &v); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	p := &compatParser{names: map[string]*cnode{}}
	return p.parse(v, "")
}

type compatParser struct {
	names map[string]*cnode
}

// fullName qualifies name with namespace per the Avro rules.
func fullName(name, namespace string) string {
	if strings.Contains(name, ".") || namespace == "" {
		return name
	}
	return namespace + "." + name
}

func shortName(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[i+1:]
	}
	return full
}

func (p *compatParser) parse(v any, ns string) (*cnode, error) {
	switch x := v.(type) {
	case string:
		if primitiveTypes[x] {
			return &cnode{typ: x}, nil
		}
		if n, ok := p.names[fullName(x, ns)]; ok {
			return n, nil
		}
		if n, ok := p.names[x]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("parse schema: unknown type %q", x)
	case []any:
		n := &cnode{typ: "union"}
		for _, b := range x {
			bn, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, bn)
		}
		return n, nil
	case map[string]any:
		return p.parseObject(x, ns)
	default:
		return nil, fmt.Errorf("parse schema: unexpected %T", v)
	}
}

func (p *compatParser) parseObject(m map[string]any, ns string) (*cnode, error) {
	typ, _ := m["type"].(string)
	switch typ {
	case "record", "error", "enum", "fixed":
		name, _ := m["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("parse schema: %s without a name", typ)
		}
		if s, ok := m["namespace"].(string); ok && !strings.Contains(name, ".") {
			ns = s
		}
		n := &cnode{typ: typ, fullName: fullName(name, ns)}
		if typ == "error" {
			n.typ = "record"
		}
		if i := strings.LastIndexByte(n.fullName, '.'); i >= 0 {
			ns = n.fullName[:i]
		} else {
			ns = ""
		}
		for _, a := range stringList(m["aliases"]) {
			n.aliases = append(n.aliases, fullName(a, ns))
		}
		if _, dup := p.names[n.fullName]; dup {
			return nil, fmt.Errorf("parse schema: %s defined twice", n.fullName)
		}
		p.names[n.fullName] = n // before the fields: records may refer to themselves
		switch n.typ {
		case "record":
			fields, _ := m["fields"].([]any)
			for _, f := range fields {
				fm, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("parse schema: %s: field is not an object", n.fullName)
				}
				fname, _ := fm["name"].(string)
				ft, err := p.parse(fm["type"], ns)
				if err != nil {
					return nil, fmt.Errorf("%s.%s: %w", n.fullName, fname, err)
				}
				_, hasDef := fm["default"]
				n.fields = append(n.fields, cfield{name: fname, aliases: stringList(fm["aliases"]), typ: ft, hasDefault: hasDef})
			}
		case "enum":
			n.symbols = stringList(m["symbols"])
			_, n.enumDef = m["default"]
		case "fixed":
			size, ok := m["size"].(float64)
			if !ok {
				return nil, fmt.Errorf("parse schema: fixed %s without a size", n.fullName)
			}
			n.size = int(size)
		}
		return n, nil
	case "array", "map":
		key := "items"
		if typ == "map" {
			key = "values"
		}
		items, err := p.parse(m[key], ns)
		if err != nil {
			return nil, err
		}
		return &cnode{typ: typ, items: items}, nil
	default:
		// A primitive written as an object, possibly with a logicalType: resolution looks at
		// the underlying type only. An object whose type is itself a schema is parsed as it.
		return p.parse(m["type"], ns)
	}
}

func stringList(v any) []string {
	a, _ := v.([]any)
	var out []string
	for _, x := range a {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// describe names a type in problems.
func (n *cnode) describe() string {
	switch n.typ {
	case "record", "enum", "fixed":
		return n.fullName
	case "array", "map":
		return n.typ + "<" + n.items.describe() + ">"
	case "union":
		parts := make([]string, len(n.branches))
		for i, b := range n.branches {
			parts[i] = b.describe()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return n.typ
	}
}

type compatChecker struct {
	problems []string
	active   map[[2]*cnode]bool // named writer/reader pairs being checked (recursive types)
}

func (c *compatChecker) addf(path, format string, a ...any) {
	c.problems = append(c.problems, path+": "+fmt.Sprintf(format, a...))
}

// promotions lists, for each writer primitive, the reader primitives that can read it.
var promotions = map[string][]string{
	"int":    {"long", "float", "double"},
	"long":   {"float", "double"},
	"float":  {"double"},
	"string": {"bytes"},
	"bytes":  {"string"},
}

// namesMatch reports whether a reader named type may read a writer named type.
func namesMatch(w, r *cnode) bool {
	return shortName(w.fullName) == shortName(r.fullName) || slices.Contains(r.aliases, w.fullName)
}

// matches reports whether reader branch r is the one a union reader picks for writer w,
// before looking inside: same primitive (or a promotion), or the same kind of named type
// with a matching name, or both arrays or both maps.
func matches(w, r *cnode) bool {
	if w.typ != r.typ {
		return slices.Contains(promotions[w.typ], r.typ)
	}
	switch w.typ {
	case "record", "enum", "fixed":
		return namesMatch(w, r)
	}
	return true
}

// check records every problem of reader r reading data written with w at path.
func (c *compatChecker) check(w, r *cnode, path string) {
	if w.fullName != "" && r.fullName != "" {
		k := [2]*cnode{w, r}
		if c.active[k] {
			return // a recursive type: the pair is being checked further up
		}
		c.active[k] = true
		defer delete(c.active, k)
	}
	switch {
	case w.typ == "union":
		for _, wb := range w.branches {
			if r.typ == "union" {
				c.checkBranch(wb, r, path)
				continue
			}
			if !matches(wb, r) {
				c.addf(path, "union branch %s of the old schema cannot be read as %s", wb.describe(), r.describe())
				continue
			}
			c.check(wb, r, path)
		}
		return
	case r.typ == "union":
		c.checkBranch(w, r, path)
		return
	}
	if w.typ != r.typ {
		if !slices.Contains(promotions[w.typ], r.typ) {
			c.addf(path, "type changed from %s to %s", w.describe(), r.describe())
		}
		return
	}
	switch w.typ {
	case "record":
		if !c.checkName(w, r, path) {
			return
		}
		for _, rf := range r.fields {
			fpath := path + "." + rf.name
			wf := writerField(w, rf)
			if wf == nil {
				if !rf.hasDefault {
					c.addf(fpath, "field added without a default")
				}
				continue
			}
			c.check(wf.typ, rf.typ, fpath)
		}
	case "enum":
		if !c.checkName(w, r, path) {
			return
		}
		if r.enumDef {
			return
		}
		for _, s := range w.symbols {
			if !slices.Contains(r.symbols, s) {
				c.addf(path, "enum symbol %s removed (and the new enum has no default)", s)
			}
		}
	case "fixed":
		if !c.checkName(w, r, path) {
			return
		}
		if w.size != r.size {
			c.addf(path, "fixed size changed from %d to %d", w.size, r.size)
		}
	case "array":
		c.check(w.items, r.items, path+"[]")
	case "map":
		c.check(w.items, r.items, path+"{}")
	}
}

// checkBranch checks that a reader union r can read the writer's non-union w.
func (c *compatChecker) checkBranch(w, r *cnode, path string) {
	// A writer union nested in a branch cannot happen: unions do not contain unions.
	for _, rb := range r.branches {
		if w.typ == rb.typ && matches(w, rb) {
			c.check(w, rb, path) // the same type: report what differs inside it
			return
		}
	}
	for _, rb := range r.branches {
		if matches(w, rb) { // a promotion
			c.check(w, rb, path)
			return
		}
	}
	if w.typ == "record" || w.typ == "enum" || w.typ == "fixed" {
		for _, rb := range r.branches {
			if rb.typ == w.typ {
				c.addf(path, "union branch %s of the old schema is not in the new union %s (name changed from %s to %s without an alias)",
					w.describe(), r.describe(), w.fullName, rb.fullName)
				return
			}
		}
	}
	c.addf(path, "union branch %s of the old schema is not in the new union %s", w.describe(), r.describe())
}

// checkName reports a named type renamed without an alias.
func (c *compatChecker) checkName(w, r *cnode, path string) bool {
	if namesMatch(w, r) {
		return true
	}
	c.addf(path, "name changed from %s to %s without an alias", w.fullName, r.fullName)
	return false
}

// writerField finds the writer's field read by reader field rf, by name or by rf's aliases.
func writerField(w *cnode, rf cfield) *cfield {
	for i := range w.fields {
		if w.fields[i].name == rf.name {
			return &w.fields[i]
		}
	}
	for i := range w.fields {
		if slices.Contains(rf.aliases, w.fields[i].name) {
			return &w.fields[i]
		}
	}
	return nil
}
