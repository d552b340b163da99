package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// atype is one Avro type of a schema, as much as the generator needs: the primitives,
// records, arrays and unions of null with one other type. Maps, enums, fixed and bytes are
// refused until a schema needs them.
type atype struct {
	kind     string // null, boolean, int, long, float, double, string, record, array, union
	name     string // full name of a record
	fields   []*afield
	items    *atype
	branches []*atype
}

type afield struct {
	name string
	typ  *atype
	def  json.RawMessage // the default as written; nil when the field has none
}

// parseSchema parses a schema file's JSON.
func parseSchema(text []byte) (*atype, error) {
	var v any
	if err := json.Unmarshal(text, &v); err != nil {
		return nil, err
	}
	p := &schemaParser{names: map[string]*atype{}}
	return p.parse(v, "")
}

type schemaParser struct {
	names map[string]*atype
}

func (p *schemaParser) parse(v any, ns string) (*atype, error) {
	switch x := v.(type) {
	case string:
		switch x {
		case "null", "boolean", "int", "long", "float", "double", "string":
			return &atype{kind: x}, nil
		case "bytes", "map", "enum", "fixed":
			return nil, fmt.Errorf("type %s is not supported by avrogen", x)
		}
		if t, ok := p.names[fullName(x, ns)]; ok {
			return t, nil
		}
		if t, ok := p.names[x]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("unknown type %q", x)
	case []any:
		u := &atype{kind: "union"}
		for _, b := range x {
			t, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, t)
		}
		if len(u.branches) != 2 || (u.branches[0].kind == "null") == (u.branches[1].kind == "null") {
			return nil, fmt.Errorf("union %v: avrogen supports only unions of null and one other type", x)
		}
		if u.branches[0].kind != "record" && u.branches[1].kind != "record" {
			return nil, fmt.Errorf("union %v: avrogen supports only null or a record", x)
		}
		return u, nil
	case map[string]any:
		typ, _ := x["type"].(string)
		switch typ {
		case "record":
			name, _ := x["name"].(string)
			if name == "" {
				return nil, fmt.Errorf("record without a name")
			}
			if n, ok := x["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = n
			}
			full := fullName(name, ns)
			if i := strings.LastIndex(full, "."); i >= 0 {
				ns = full[:i]
			}
			t := &atype{kind: "record", name: full}
			p.names[full] = t
			fs, _ := x["fields"].([]any)
			for _, f := range fs {
				fm, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("record %s: a field is not an object", full)
				}
				fname, _ := fm["name"].(string)
				ft, err := p.parse(fm["type"], ns)
				if err != nil {
					return nil, fmt.Errorf("%s.%s: %w", full, fname, err)
				}
				af := &afield{name: fname, typ: ft}
				if d, ok := fm["default"]; ok {
					af.def, _ = json.Marshal(d)
				}
				t.fields = append(t.fields, af)
			}
			return t, nil
		case "array":
			items, err := p.parse(x["items"], ns)
			if err != nil {
				return nil, err
			}
			return &atype{kind: "array", items: items}, nil
		case "":
			return nil, fmt.Errorf("type without a type")
		default:
			return p.parse(typ, ns) // {"type": "string"} and the like
		}
	}
	return nil, fmt.Errorf("unexpected schema value %v", v)
}

func fullName(name, ns string) string {
	if ns == "" || strings.Contains(name, ".") {
		return name
	}
	return ns + "." + name
}
