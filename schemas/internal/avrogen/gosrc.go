package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// gotypes holds the type declarations of the package the codecs are generated for.
type gotypes struct {
	structs map[string]*ast.StructType
	named   map[string]string // a named basic type (type Timestamp int64) and its underlying type
}

// loadGoTypes parses the package in dir, leaving out tests and generated codecs.
func loadGoTypes(dir string) (*gotypes, error) {
	g := &gotypes{structs: map[string]*ast.StructType{}, named: map[string]string{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasSuffix(base, "_test.go") || strings.HasPrefix(base, "zz_") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		file, err := parser.ParseFile(fset, f, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				switch t := ts.Type.(type) {
				case *ast.StructType:
					g.structs[ts.Name.Name] = t
				case *ast.Ident:
					g.named[ts.Name.Name] = t.Name
				}
			}
		}
	}
	return g, nil
}

// gofield is a field of a Go struct that carries an avro tag, found directly or through
// embedded structs without a tag (whose fields are promoted).
type gofield struct {
	name string   // Go field name
	sel  string   // selector from the struct value, e.g. ".Envelope.Host"
	tag  string   // the avro name or dotted path of the field, e.g. "host" or "user.uid"
	typ  ast.Expr // its Go type
}

// fieldsOf returns the avro-tagged fields of a struct, embedded ones promoted.
func (g *gotypes) fieldsOf(name string) ([]gofield, error) {
	st, ok := g.structs[name]
	if !ok {
		return nil, fmt.Errorf("no struct type %s in the package", name)
	}
	var out []gofield
	for _, f := range st.Fields.List {
		tag := ""
		if f.Tag != nil {
			raw := strings.Trim(f.Tag.Value, "`")
			tag, _, _ = strings.Cut(reflect.StructTag(raw).Get("avro"), ",")
		}
		if len(f.Names) == 0 { // embedded
			id, ok := f.Type.(*ast.Ident)
			if !ok || tag != "" {
				continue
			}
			inner, err := g.fieldsOf(id.Name)
			if err != nil {
				return nil, err
			}
			for _, in := range inner {
				in.sel = "." + id.Name + in.sel
				out = append(out, in)
			}
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		for _, n := range f.Names {
			out = append(out, gofield{name: n.Name, sel: "." + n.Name, tag: tag, typ: f.Type})
		}
	}
	return out, nil
}

// typeString renders a Go type expression.
func typeString(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.ArrayType:
		return "[]" + typeString(t.Elt)
	case *ast.StarExpr:
		return "*" + typeString(t.X)
	case *ast.SelectorExpr:
		return typeString(t.X) + "." + t.Sel.Name
	}
	return fmt.Sprintf("%T", e)
}

// basic returns the basic type a Go type name stands for ("int64" for Timestamp), or "".
func (g *gotypes) basic(name string) string {
	switch name {
	case "string", "int32", "int64", "float64", "float32", "bool":
		return name
	}
	if u, ok := g.named[name]; ok {
		return g.basic(u)
	}
	return ""
}
