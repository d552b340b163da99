package schemas

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// The Go types of this package map onto goavro's native form by their `avro` struct tags:
// `avro:"name"` names the Avro field; a pointer to a struct is the union ["null", T] whose
// branch is named by the tag's second element (`avro:"deploy,crumbs.DeployRef"`); an
// embedded struct without a tag contributes its fields (the Envelope). int32 is Avro int,
// int64 long, float64 double, []string and []struct arrays.

type fieldInfo struct {
	index  []int
	name   string
	branch string // union branch name for pointer fields
}

var fieldCache sync.Map // reflect.Type -> []fieldInfo

func fieldsOf(t reflect.Type) []fieldInfo {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]fieldInfo)
	}
	var fs []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("avro")
		if tag == "-" {
			continue
		}
		if tag == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
			for _, inner := range fieldsOf(f.Type) {
				inner.index = append([]int{i}, inner.index...)
				fs = append(fs, inner)
			}
			continue
		}
		if tag == "" {
			continue
		}
		name, branch, _ := strings.Cut(tag, ",")
		fs = append(fs, fieldInfo{index: []int{i}, name: name, branch: branch})
	}
	fieldCache.Store(t, fs)
	return fs
}

// ToNative returns the goavro native form of a tagged struct (or pointer to one).
func ToNative(v any) map[string]any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	return structToNative(rv)
}

func structToNative(rv reflect.Value) map[string]any {
	fs := fieldsOf(rv.Type())
	m := make(map[string]any, len(fs))
	for _, f := range fs {
		fv := rv.FieldByIndex(f.index)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				m[f.name] = nil
			} else {
				m[f.name] = map[string]any{f.branch: structToNative(fv.Elem())}
			}
			continue
		}
		m[f.name] = valueToNative(fv)
	}
	return m
}

func valueToNative(fv reflect.Value) any {
	switch fv.Kind() {
	case reflect.Struct:
		return structToNative(fv)
	case reflect.Slice:
		out := make([]any, fv.Len())
		for i := range out {
			out[i] = valueToNative(fv.Index(i))
		}
		return out
	case reflect.Int32:
		return int32(fv.Int())
	case reflect.Int64, reflect.Int:
		return fv.Int()
	case reflect.Float64, reflect.Float32:
		return fv.Float()
	case reflect.Bool:
		return fv.Bool()
	case reflect.String:
		return fv.String()
	}
	return fv.Interface()
}

// FromNative fills the tagged struct that ptr points to from goavro's native form. Missing
// fields keep their zero value (records written by an older schema); a value of the wrong
// type is an error naming the field.
func FromNative(native any, ptr any) error {
	m, ok := native.(map[string]any)
	if !ok {
		return fmt.Errorf("want a record, got %T", native)
	}
	return nativeToStruct(m, reflect.ValueOf(ptr).Elem(), "")
}

func nativeToStruct(m map[string]any, rv reflect.Value, path string) error {
	for _, f := range fieldsOf(rv.Type()) {
		v, ok := m[f.name]
		if !ok || v == nil {
			continue
		}
		fv := rv.FieldByIndex(f.index)
		p := f.name
		if path != "" {
			p = path + "." + f.name
		}
		if fv.Kind() == reflect.Pointer {
			u, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("field %s: want a union, got %T", p, v)
			}
			inner, ok := u[f.branch].(map[string]any)
			if !ok {
				return fmt.Errorf("field %s: want union branch %s", p, f.branch)
			}
			nv := reflect.New(fv.Type().Elem())
			if err := nativeToStruct(inner, nv.Elem(), p); err != nil {
				return err
			}
			fv.Set(nv)
			continue
		}
		if err := setValue(v, fv, p); err != nil {
			return err
		}
	}
	return nil
}

func setValue(v any, fv reflect.Value, p string) error {
	switch fv.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("field %s: want a record, got %T", p, v)
		}
		return nativeToStruct(m, fv, p)
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("field %s: want an array, got %T", p, v)
		}
		if len(a) == 0 {
			return nil
		}
		s := reflect.MakeSlice(fv.Type(), len(a), len(a))
		for i, x := range a {
			if err := setValue(x, s.Index(i), fmt.Sprintf("%s[%d]", p, i)); err != nil {
				return err
			}
		}
		fv.Set(s)
	case reflect.Int32, reflect.Int64, reflect.Int:
		switch x := v.(type) {
		case int32:
			fv.SetInt(int64(x))
		case int64:
			fv.SetInt(x)
		case int:
			fv.SetInt(int64(x))
		default:
			return fmt.Errorf("field %s: want an integer, got %T", p, v)
		}
	case reflect.Float64, reflect.Float32:
		switch x := v.(type) {
		case float64:
			fv.SetFloat(x)
		case float32:
			fv.SetFloat(float64(x))
		default:
			return fmt.Errorf("field %s: want a double, got %T", p, v)
		}
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("field %s: want a boolean, got %T", p, v)
		}
		fv.SetBool(b)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("field %s: want a string, got %T", p, v)
		}
		fv.SetString(s)
	default:
		return fmt.Errorf("field %s: unsupported Go type %s", p, fv.Type())
	}
	return nil
}
