package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBindErrors: a schema and Go types that do not match are refused with a message that
// names the field and what is wrong.
func TestBindErrors(t *testing.T) {
	const schema = `{"type": "record", "name": "Ev", "namespace": "t", "fields": [
		{"name": "id", "type": "string"},
		{"name": "user", "type": {"type": "record", "name": "User", "fields": [{"name": "uid", "type": "long"}]}},
		{"name": "tags", "type": {"type": "array", "items": "string"}},
		{"name": "extra", "type": ["null", {"type": "record", "name": "Extra", "fields": [{"name": "n", "type": "int"}]}], "default": null}
	]}`
	tests := []struct {
		name, gosrc, want string
	}{
		{"a field without a Go field", `type Ev struct {
			ID string ` + "`avro:\"id\"`" + `
			UID int64 ` + "`avro:\"user.uid\"`" + `
			Tags []string ` + "`avro:\"tags\"`" + `
		}`, `t.Ev.extra: no field of Ev has the tag avro:"extra"`},
		{"a tag naming no field", `type Ev struct {
			ID string ` + "`avro:\"id\"`" + `
			UID int64 ` + "`avro:\"user.uid\"`" + `
			Tags []string ` + "`avro:\"tags\"`" + `
			Extra *Extra ` + "`avro:\"extra\"`" + `
			Note string ` + "`avro:\"note\"`" + `
		}
		type Extra struct { N int32 ` + "`avro:\"n\"`" + ` }`, `Ev: Go field Note has the tag avro:"note", which names no field of t.Ev`},
		{"a type that cannot hold the values", `type Ev struct {
			ID string ` + "`avro:\"id\"`" + `
			UID int32 ` + "`avro:\"user.uid\"`" + `
			Tags []string ` + "`avro:\"tags\"`" + `
			Extra *Extra ` + "`avro:\"extra\"`" + `
		}
		type Extra struct { N int32 ` + "`avro:\"n\"`" + ` }`, `t.Ev.user.uid: Avro long cannot be held in Go int32`},
		{"an optional record not in a pointer", `type Ev struct {
			ID string ` + "`avro:\"id\"`" + `
			UID int64 ` + "`avro:\"user.uid\"`" + `
			Tags []string ` + "`avro:\"tags\"`" + `
			Extra Extra ` + "`avro:\"extra\"`" + `
		}
		type Extra struct { N int32 ` + "`avro:\"n\"`" + ` }`, `t.Ev.extra: Avro union of null and record t.Extra cannot be held in Go Extra`},
		{"no Go type", `type Other struct{}`, `no Go struct Ev for t.Ev in the package`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "avro"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "avro", "ev.avsc"), []byte(schema), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "types.go"), []byte("package t\n\n"+tt.gosrc+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := run(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run: err = %v, want it to contain %q", err, tt.want)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "zz_*.go")); len(files) != 0 {
				t.Errorf("files written despite the error: %v", files)
			}
		})
	}
}
