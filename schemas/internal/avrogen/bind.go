package main

import (
	"fmt"
	"go/ast"
	"strings"
)

// bnode is an Avro type bound to the Go type that holds its values.
type bnode struct {
	a        *atype
	basic    string   // scalars: string, int32, int64, float32, float64, bool
	conv     string   // scalars held in a named type (Timestamp): its name
	rec      *brecord // records, and the record of an optional
	items    *bnode   // arrays
	optional bool     // a union of null and a record, held in a pointer
	recIndex int      // the union index of the record branch
	goType   string   // the Go type holding the value (record and item types)
}

// brecord is an Avro record bound to a Go struct, or flattened onto its enclosing struct.
type brecord struct {
	a        *atype
	goStruct string // "" when flattened
	fields   []*bfield
}

// bfield is a record field and where its value lives.
type bfield struct {
	a      *afield
	sel    string // selector from the enclosing struct value; "" for a flattened record
	goName string // the Go field's name; "" for a flattened record
	flat   bool   // a record whose fields live in the enclosing struct (tags like "user.uid")
	node   *bnode
}

type binder struct {
	g *gotypes
}

// bindTop binds a top-level record to the Go struct of the same name.
func (b *binder) bindTop(a *atype, goStruct string) (*brecord, error) {
	fs, err := b.g.fieldsOf(goStruct)
	if err != nil {
		return nil, err
	}
	return b.bindRecord(a, goStruct, fs, "", a.name)
}

// bindRecord binds the fields of record a to the Go fields fs whose tags start with prefix.
func (b *binder) bindRecord(a *atype, goStruct string, fs []gofield, prefix, path string) (*brecord, error) {
	r := &brecord{a: a, goStruct: goStruct}
	used := map[string]bool{}
	for _, af := range a.fields {
		fpath := path + "." + af.name
		tag := prefix + af.name
		var gf *gofield
		for i := range fs {
			if fs[i].tag == tag {
				gf = &fs[i]
			}
		}
		switch {
		case gf != nil:
			used[gf.tag] = true
			n, err := b.bindNode(af.typ, gf.typ, fpath)
			if err != nil {
				return nil, err
			}
			r.fields = append(r.fields, &bfield{a: af, sel: gf.sel, goName: gf.name, node: n})
		case af.typ.kind == "record" && hasPrefix(fs, tag+"."):
			inner, err := b.bindRecord(af.typ, "", fs, tag+".", fpath)
			if err != nil {
				return nil, err
			}
			for _, f := range fs {
				if strings.HasPrefix(f.tag, tag+".") {
					used[f.tag] = true
				}
			}
			r.fields = append(r.fields, &bfield{a: af, flat: true, node: &bnode{a: af.typ, rec: inner}})
		default:
			where := goStruct
			if where == "" {
				where = "the enclosing struct"
			}
			return nil, fmt.Errorf("%s: no field of %s has the tag avro:%q (every field of the schema needs one)", fpath, where, tag)
		}
	}
	if prefix == "" {
		for _, f := range fs {
			if !used[f.tag] {
				return nil, fmt.Errorf("%s: Go field %s has the tag avro:%q, which names no field of %s", goStruct, f.name, f.tag, a.name)
			}
		}
	}
	return r, nil
}

func hasPrefix(fs []gofield, p string) bool {
	for _, f := range fs {
		if strings.HasPrefix(f.tag, p) {
			return true
		}
	}
	return false
}

var avroBasic = map[string]string{
	"string": "string", "int": "int32", "long": "int64", "float": "float32", "double": "float64", "boolean": "bool",
}

// bindNode binds an Avro type to a Go type expression.
func (b *binder) bindNode(a *atype, e ast.Expr, path string) (*bnode, error) {
	mismatch := func() error {
		return fmt.Errorf("%s: Avro %s cannot be held in Go %s", path, describe(a), typeString(e))
	}
	switch a.kind {
	case "record":
		id, ok := e.(*ast.Ident)
		if !ok {
			return nil, mismatch()
		}
		fs, err := b.g.fieldsOf(id.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r, err := b.bindRecord(a, id.Name, fs, "", path)
		if err != nil {
			return nil, err
		}
		return &bnode{a: a, rec: r, goType: id.Name}, nil
	case "array":
		at, ok := e.(*ast.ArrayType)
		if !ok || at.Len != nil {
			return nil, mismatch()
		}
		items, err := b.bindNode(a.items, at.Elt, path)
		if err != nil {
			return nil, err
		}
		if items.optional || items.a.kind == "array" {
			return nil, fmt.Errorf("%s: avrogen supports arrays of scalars and records only", path)
		}
		return &bnode{a: a, items: items, goType: typeString(e)}, nil
	case "union":
		st, ok := e.(*ast.StarExpr)
		if !ok {
			return nil, mismatch()
		}
		idx := 0
		if a.branches[0].kind == "null" {
			idx = 1
		}
		inner, err := b.bindNode(a.branches[idx], st.X, path)
		if err != nil {
			return nil, err
		}
		return &bnode{a: a, rec: inner.rec, optional: true, recIndex: idx, goType: inner.goType}, nil
	case "null":
		return nil, fmt.Errorf("%s: a field of type null is not supported", path)
	}
	want := avroBasic[a.kind]
	id, ok := e.(*ast.Ident)
	if !ok || b.g.basic(id.Name) != want {
		return nil, mismatch()
	}
	n := &bnode{a: a, basic: want, goType: id.Name}
	if id.Name != want {
		n.conv = id.Name
	}
	return n, nil
}

func describe(a *atype) string {
	switch a.kind {
	case "record":
		return "record " + a.name
	case "array":
		return "array of " + describe(a.items)
	case "union":
		return "union of " + describe(a.branches[0]) + " and " + describe(a.branches[1])
	}
	return a.kind
}

// minSize is the fewest bytes a value of the type takes, which bounds how many array items
// the remaining bytes can hold.
func minSize(a *atype) int {
	switch a.kind {
	case "null":
		return 0
	case "float":
		return 4
	case "double":
		return 8
	case "record":
		n := 0
		for _, f := range a.fields {
			n += minSize(f.typ)
		}
		return n
	}
	return 1 // a varint, a boolean, a length, a block count or a union index
}
