package avro_test

import (
	"math/rand"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

// TestGenericCodecAgreesWithGenerated: on every built-in schema, the generic codec knows the
// generated codec's fields, fills the same columns from the same bodies, answers Field alike
// and encodes to the same bytes.
func TestGenericCodecAgreesWithGenerated(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	empty := cmpopts.EquateEmpty()
	for _, c := range schemas.Codecs {
		t.Run(c.Schema, func(t *testing.T) {
			text, err := schemas.Avro.ReadFile(c.File)
			if err != nil {
				t.Fatal(err)
			}
			g, err := avro.GenericCodec(string(text))
			if err != nil {
				t.Fatal(err)
			}
			if g.Schema != c.Schema || g.Fingerprint != c.Fingerprint {
				t.Errorf("generic codec of %s %016x, want %s %016x", g.Schema, g.Fingerprint, c.Schema, c.Fingerprint)
			}
			if diff := cmp.Diff(c.Fields, g.Fields); diff != "" {
				t.Fatalf("fields (-generated +generic):\n%s", diff)
			}
			want, got := c.NewColumns(), g.NewColumns()
			for range 20 {
				v := randomRecord(c, r)
				body := v.AppendAvro(nil)
				if err := want.Append(body); err != nil {
					t.Fatal(err)
				}
				if err := got.Append(body); err != nil {
					t.Fatalf("generic Append: %v", err)
				}
				gv, err := g.NewDecoder().Decode(body)
				if err != nil {
					t.Fatalf("generic Decode: %v", err)
				}
				if diff := cmp.Diff(body, gv.AppendAvro(nil)); diff != "" {
					t.Errorf("generic encoding (-generated +generic):\n%s", diff)
				}
				for _, f := range c.Fields {
					wv, wok := v.Field(f.Path)
					gvv, gok := gv.Field(f.Path)
					if wok != gok || !cmp.Equal(wv, gvv, empty) {
						t.Errorf("Field(%s) = %v, %v; generated %v, %v", f.Path, gvv, gok, wv, wok)
					}
				}
			}
			if got.Len() != want.Len() {
				t.Fatalf("generic Len %d, generated %d", got.Len(), want.Len())
			}
			gc := got.Columns()
			for i, wc := range want.Columns() {
				if gc[i].Path != wc.Path || reflect.TypeOf(gc[i].Values) != reflect.TypeOf(wc.Values) {
					t.Fatalf("column %d: generic %s %T, generated %s %T", i, gc[i].Path, gc[i].Values, wc.Path, wc.Values)
				}
				if diff := cmp.Diff(wc.Values, gc[i].Values, empty); diff != "" {
					t.Errorf("column %s (-generated +generic):\n%s", wc.Path, diff)
				}
			}
		})
	}
}

func TestGenericCodecRefuses(t *testing.T) {
	for name, schema := range map[string]string{
		"not a record": `"string"`,
		"a map":        `{"type":"record","name":"M","fields":[{"name":"m","type":{"type":"map","values":"string"}}]}`,
		"a wide union": `{"type":"record","name":"U","fields":[{"name":"u","type":["null","string","long"]}]}`,
		"not JSON":     `{`,
	} {
		if _, err := avro.GenericCodec(schema); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
