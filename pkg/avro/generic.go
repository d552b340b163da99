package avro

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/linkedin/goavro/v2"

	"github.com/threatcrumbs/crumbs/schemas"
)

// GenericCodec returns a codec for a record schema that has no generated Go type: its values
// hold goavro's native form, goavro encodes and decodes them, and its column buffer fills one
// slice per field path from the decoded records, as a generated column buffer does. It is many
// times slower than a generated codec, and serves where one does not exist yet: a kind declared
// by a test, or a schema whose Go type is still to be written. Its Fields follow the rules of
// the generated codecs (schemas.FieldInfo); unions other than null and one record or
// primitive, and maps, are refused.
func GenericCodec(schemaJSON string) (*schemas.Codec, error) {
	codec, err := goavro.NewCodec(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("generic codec: %w", err)
	}
	tree, err := parseCompatSchema(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("generic codec: %w", err)
	}
	if tree.typ != "record" {
		return nil, errors.New("generic codec: the schema is not a record")
	}
	g := &generic{codec: codec, name: tree.fullName, fp: uint64(codec.SchemaCRC64Avro())}
	if err := g.walk(tree, "", nil, false, 0); err != nil {
		return nil, fmt.Errorf("generic codec of %s: %w", g.name, err)
	}
	for _, f := range g.fields {
		g.infos = append(g.infos, f.info)
	}
	return &schemas.Codec{
		Schema: g.name, Fingerprint: g.fp, Fields: g.infos,
		New:        func() schemas.Record { return &genericRecord{g: g} },
		NewColumns: func() schemas.ColumnBuffer { return g.newColumns() },
		NewDecoder: func() schemas.Decoder { return genericDecoder{g} },
	}, nil
}

// generic is a schema as GenericCodec reads it.
type generic struct {
	codec  *goavro.Codec
	name   string
	fp     uint64
	fields []genericField
	infos  []schemas.FieldInfo
}

// genericField is one field path: its description, how its value is reached and the type
// its column's values have.
type genericField struct {
	info  schemas.FieldInfo
	steps []step
	typ   reflect.Type // of one row's value: T, []T, [][]T ... for Arrays arrays
}

var primitiveGoTypes = map[string]reflect.Type{
	"string": reflect.TypeFor[string](), "bytes": reflect.TypeFor[string](), "enum": reflect.TypeFor[string](),
	"int": reflect.TypeFor[int32](), "long": reflect.TypeFor[int64](), "float": reflect.TypeFor[float32](),
	"double": reflect.TypeFor[float64](), "boolean": reflect.TypeFor[bool](),
}

// step is one step from a record to a field's value: into a record's field, through an
// optional union (absent when null), or over an array's items.
type step struct {
	kind  int // stepField, stepOptional or stepArray
	field string
}

const (
	stepField = iota
	stepOptional
	stepArray
)

// walk adds the field paths of n, the value at path reached by steps.
func (g *generic) walk(n *cnode, path string, steps []step, optional bool, depth int) error {
	if depth > 32 {
		return errors.New("records nested too deeply")
	}
	switch n.typ {
	case "record":
		for _, f := range n.fields {
			p := f.name
			if path != "" {
				p = path + "." + f.name
			}
			if err := g.walk(f.typ, p, append(slices.Clip(steps), step{stepField, f.name}), optional, depth+1); err != nil {
				return err
			}
		}
		return nil
	case "array":
		return g.walk(n.items, path, append(slices.Clip(steps), step{kind: stepArray}), optional, depth+1)
	case "union":
		var inner *cnode
		for _, b := range n.branches {
			if b.typ != "null" {
				inner = b
			}
		}
		if inner == nil || len(n.branches) != 2 || (n.branches[0].typ != "null" && n.branches[1].typ != "null") {
			return fmt.Errorf("%s: a union of more than null and one type", path)
		}
		steps = append(slices.Clip(steps), step{kind: stepOptional})
		if inner.typ == "record" {
			g.add(path, "boolean", steps, optional, true)
		}
		return g.walk(inner, path, steps, true, depth+1)
	case "enum", "fixed", "bytes":
		g.add(path, "string", steps, optional, false)
		return nil
	}
	if _, ok := primitiveGoTypes[n.typ]; !ok {
		return fmt.Errorf("%s: %s fields are not supported", path, n.typ)
	}
	g.add(path, n.typ, steps, optional, false)
	return nil
}

func (g *generic) add(path, typ string, steps []step, optional, presence bool) {
	t, arrays := primitiveGoTypes[typ], 0
	for _, s := range steps {
		if s.kind == stepArray {
			t, arrays = reflect.SliceOf(t), arrays+1
		}
	}
	g.fields = append(g.fields, genericField{
		info:  schemas.FieldInfo{Path: path, Type: typ, Arrays: arrays, Optional: optional, Presence: presence},
		steps: steps, typ: t,
	})
}

// value returns the value of field f in a native record as its column holds it (zero, or an
// empty array, where an optional record is absent), and false when the path crosses an absent
// optional record outside every array.
func (f *genericField) value(native map[string]any) (reflect.Value, bool) {
	return f.eval(native, f.steps, f.typ)
}

func (f *genericField) eval(v any, steps []step, typ reflect.Type) (reflect.Value, bool) {
	if len(steps) == 0 {
		if f.info.Presence {
			return reflect.ValueOf(true), true
		}
		return leafValue(v, typ), true
	}
	switch s := steps[0]; s.kind {
	case stepField:
		m, _ := v.(map[string]any)
		return f.eval(m[s.field], steps[1:], typ)
	case stepOptional:
		if v = unwrapUnion(v); v == nil {
			if f.info.Presence && len(steps) == 1 {
				return reflect.ValueOf(false), true
			}
			return emptyOf(typ), false
		}
		return f.eval(v, steps[1:], typ)
	default: // stepArray
		arr, _ := v.([]any)
		out := reflect.MakeSlice(typ, len(arr), len(arr))
		for i, item := range arr {
			iv, _ := f.eval(item, steps[1:], typ.Elem())
			out.Index(i).Set(iv)
		}
		return out, true
	}
}

// leafValue converts a native primitive to its column's type (a missing one is zero).
func leafValue(v any, typ reflect.Type) reflect.Value {
	switch x := v.(type) {
	case nil:
		return reflect.Zero(typ)
	case []byte: // bytes, fixed
		return reflect.ValueOf(string(x))
	}
	rv := reflect.ValueOf(v)
	if rv.Type() == typ {
		return rv
	}
	if rv.CanConvert(typ) {
		return rv.Convert(typ)
	}
	return reflect.Zero(typ)
}

// emptyOf is the value a column holds where a path is absent: zero, or an empty array.
func emptyOf(typ reflect.Type) reflect.Value {
	if typ.Kind() == reflect.Slice {
		return reflect.MakeSlice(typ, 0, 0)
	}
	return reflect.Zero(typ)
}

// unwrapUnion returns the value of a union's branch, which goavro's native form wraps in a
// map keyed by the branch's type name; null stays nil.
func unwrapUnion(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, inner := range m {
			return inner
		}
	}
	return v
}

// decode decodes one body.
func (g *generic) decode(body []byte) (map[string]any, error) {
	native, rest, err := g.codec.NativeFromBinary(body)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, schemas.ErrTrailingBytes
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: decoded a %T, not a record", g.name, native)
	}
	return m, nil
}

// genericRecord is a value of a GenericCodec: goavro's native form.
type genericRecord struct {
	g      *generic
	native map[string]any
}

func (r *genericRecord) AvroSchema() (string, uint64) { return r.g.name, r.g.fp }
func (r *genericRecord) AvroSize() int                { return len(r.AppendAvro(nil)) }

// AppendAvro appends the encoding; a value FromNative or UnmarshalAvro did not set appends
// nothing.
func (r *genericRecord) AppendAvro(b []byte) []byte {
	out, err := r.g.codec.BinaryFromNative(b, r.native)
	if err != nil {
		return b
	}
	return out
}

func (r *genericRecord) UnmarshalAvro(b []byte) error {
	m, err := r.g.decode(b)
	if err != nil {
		r.native = nil
		return err
	}
	r.native = m
	return nil
}

func (r *genericRecord) UnmarshalAvroNoCopy(b []byte) error { return r.UnmarshalAvro(b) }

func (r *genericRecord) Native() map[string]any { return r.native }

// FromNative takes a native record of the schema: encoded and decoded again, so that missing
// fields take their defaults and a value of the wrong type is an error.
func (r *genericRecord) FromNative(native any) error {
	b, err := r.g.codec.BinaryFromNative(nil, native)
	if err != nil {
		return err
	}
	return r.UnmarshalAvro(b)
}

func (r *genericRecord) Field(path string) (any, bool) {
	for i := range r.g.fields {
		if f := &r.g.fields[i]; f.info.Path == path {
			v, ok := f.value(r.native)
			if !ok {
				return nil, false
			}
			return v.Interface(), true
		}
	}
	return nil, false
}

// genericDecoder decodes into a new value each time.
type genericDecoder struct{ g *generic }

func (d genericDecoder) Decode(body []byte) (schemas.Record, error) {
	r := &genericRecord{g: d.g}
	return r, r.UnmarshalAvro(body)
}

// genericColumns is the column buffer of a GenericCodec: one reflect slice per field.
type genericColumns struct {
	g    *generic
	cols []reflect.Value
	n    int
}

func (g *generic) newColumns() *genericColumns {
	c := &genericColumns{g: g, cols: make([]reflect.Value, len(g.fields))}
	c.Reset()
	return c
}

func (c *genericColumns) Append(body []byte) error {
	m, err := c.g.decode(body)
	if err != nil {
		return err
	}
	for i := range c.g.fields {
		v, _ := c.g.fields[i].value(m)
		c.cols[i] = reflect.Append(c.cols[i], v)
	}
	c.n++
	return nil
}

func (c *genericColumns) Len() int { return c.n }

func (c *genericColumns) Reset() {
	for i, f := range c.g.fields {
		c.cols[i] = reflect.MakeSlice(reflect.SliceOf(f.typ), 0, 64)
	}
	c.n = 0
}

func (c *genericColumns) Columns() []schemas.Column {
	out := make([]schemas.Column, len(c.cols))
	for i, col := range c.cols {
		out[i] = schemas.Column{Path: c.g.fields[i].info.Path, Values: col.Interface()}
	}
	return out
}
