package schemas_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/schemas"
)

func TestBuiltinKindsAreCoherent(t *testing.T) {
	if err := schemas.Kinds.Check(); err != nil {
		t.Fatal(err)
	}
	want := []string{"process", "network", "file", "identity", "system"}
	if diff := cmp.Diff(want, schemas.Kinds.Names()); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
	for _, k := range schemas.Kinds {
		if got, ok := schemas.Kinds.BySchema(k.Codec.Schema); !ok || got != k {
			t.Errorf("BySchema(%s) = %v, want kind %s", k.Codec.Schema, got, k.Name)
		}
		if k.Codec.File == "" {
			t.Errorf("kind %s: built in without a schema file", k.Name)
		}
	}
}

func TestKindCheckNamesTheProblem(t *testing.T) {
	process, _ := schemas.Kinds.Lookup("process")
	for _, tc := range []struct {
		name string
		edit func(k *schemas.Kind)
		want string
	}{
		{"unknown column field", func(k *schemas.Kind) {
			k.Columns = append(k.Columns, schemas.TableColumn{Name: "nope", Path: "process.nope"})
		}, "column nope: no field process.nope"},
		{"conversion of a string", func(k *schemas.Kind) {
			k.Columns = append(k.Columns, schemas.TableColumn{Name: "when", Path: "action", As: schemas.AsDate})
		}, "column when: Date stores a long"},
		{"column twice", func(k *schemas.Kind) { k.Columns = append(k.Columns, k.Columns[0]) }, "column event_id listed twice"},
		{"join on a number", func(k *schemas.Kind) { k.Join.User = []string{"process.pid"} }, "join field process.pid: not a string field"},
		{"table name", func(k *schemas.Kind) { k.Table = "process events; DROP" }, "table \"process events; DROP\""},
		{"no envelope", func(k *schemas.Kind) { k.Codec = schemas.AlertCodec }, "does not start with the envelope's fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := *process
			k.Name = "proc2"
			k.Columns = append([]schemas.TableColumn(nil), process.Columns...)
			tc.edit(&k)
			err := k.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestKindTableWithRefusesTakenNames(t *testing.T) {
	process, _ := schemas.Kinds.Lookup("process")
	again := *process
	again.Name = "process2"
	_, err := schemas.Kinds.With(&again)
	if err == nil || !strings.Contains(err.Error(), "schema crumbs.ProcessEvent is another kind's") ||
		!strings.Contains(err.Error(), "table process_events is another kind's") {
		t.Errorf("With(a second kind on crumbs.ProcessEvent and process_events) = %v", err)
	}
}

func TestEventKey(t *testing.T) {
	for _, k := range schemas.Kinds {
		r := k.Codec.New()
		if err := r.FromNative(map[string]any{"event_id": "id-" + k.Name, "time": int64(42), "kind": k.Name}); err != nil {
			t.Fatal(err)
		}
		id, at, err := schemas.EventKey(r.AppendAvro(nil))
		if err != nil || id != "id-"+k.Name || at != 42 {
			t.Errorf("%s: EventKey = %q, %d, %v", k.Name, id, at, err)
		}
	}
	if _, _, err := schemas.EventKey([]byte{0x08, 'a'}); err == nil {
		t.Error("EventKey of a truncated body: no error")
	}
}
