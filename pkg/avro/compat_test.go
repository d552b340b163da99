package avro_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/avro"
)

// rec returns a record schema crumbs.T with the given fields (JSON field objects).
func rec(fields string) string {
	return `{"type": "record", "name": "T", "namespace": "crumbs", "fields": [` + fields + `]}`
}

func TestCheckBackward(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     []string
	}{
		{
			name: "identical",
			old:  rec(`{"name": "a", "type": "string"}`),
			new:  rec(`{"name": "a", "type": "string"}`),
		},
		{
			name: "docs and field order do not matter",
			old:  rec(`{"name": "a", "type": "string"}, {"name": "b", "type": "long"}`),
			new:  rec(`{"name": "b", "type": "long", "doc": "bee"}, {"name": "a", "type": "string", "doc": "ay"}`),
		},
		{
			name: "field removed",
			old:  rec(`{"name": "a", "type": "string"}, {"name": "b", "type": "long"}`),
			new:  rec(`{"name": "a", "type": "string"}`),
		},
		{
			name: "field added with a default",
			old:  rec(`{"name": "a", "type": "string"}`),
			new:  rec(`{"name": "a", "type": "string"}, {"name": "b", "type": "long", "default": 0}, {"name": "c", "type": ["null", "string"], "default": null}`),
		},
		{
			name: "field added without a default",
			old:  rec(`{"name": "a", "type": "string"}`),
			new:  rec(`{"name": "a", "type": "string"}, {"name": "b", "type": "long"}`),
			want: []string{"crumbs.T.b: field added without a default"},
		},
		{
			name: "field renamed with an alias",
			old:  rec(`{"name": "a", "type": "string"}`),
			new:  rec(`{"name": "b", "type": "string", "aliases": ["a"]}`),
		},
		{
			name: "field renamed without an alias",
			old:  rec(`{"name": "a", "type": "string"}`),
			new:  rec(`{"name": "b", "type": "string"}`),
			want: []string{"crumbs.T.b: field added without a default"},
		},
		{
			name: "promotions",
			old: rec(`{"name": "i1", "type": "int"}, {"name": "i2", "type": "int"}, {"name": "i3", "type": "int"},
				{"name": "l1", "type": "long"}, {"name": "l2", "type": "long"}, {"name": "f", "type": "float"},
				{"name": "s", "type": "string"}, {"name": "b", "type": "bytes"}`),
			new: rec(`{"name": "i1", "type": "long"}, {"name": "i2", "type": "float"}, {"name": "i3", "type": "double"},
				{"name": "l1", "type": "float"}, {"name": "l2", "type": "double"}, {"name": "f", "type": "double"},
				{"name": "s", "type": "bytes"}, {"name": "b", "type": "string"}`),
		},
		{
			name: "narrowing and unrelated type changes",
			old: rec(`{"name": "l", "type": "long"}, {"name": "d", "type": "double"}, {"name": "f", "type": "float"},
				{"name": "s", "type": "string"}, {"name": "b", "type": "boolean"}, {"name": "n", "type": "null"},
				{"name": "a", "type": {"type": "array", "items": "string"}}`),
			new: rec(`{"name": "l", "type": "int"}, {"name": "d", "type": "float"}, {"name": "f", "type": "long"},
				{"name": "s", "type": "int"}, {"name": "b", "type": "string"}, {"name": "n", "type": "string"},
				{"name": "a", "type": {"type": "map", "values": "string"}}`),
			want: []string{
				"crumbs.T.l: type changed from long to int",
				"crumbs.T.d: type changed from double to float",
				"crumbs.T.f: type changed from float to long",
				"crumbs.T.s: type changed from string to int",
				"crumbs.T.b: type changed from boolean to string",
				"crumbs.T.n: type changed from null to string",
				"crumbs.T.a: type changed from array<string> to map<string>",
			},
		},
		{
			name: "logical type over the same primitive",
			old:  rec(`{"name": "t", "type": "long"}`),
			new:  rec(`{"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}}`),
		},
		{
			name: "nested records",
			old: `{"type": "record", "name": "ProcessEvent", "namespace": "crumbs", "fields": [
				{"name": "process", "type": {"type": "record", "name": "Process", "fields": [
					{"name": "pid", "type": "long"},
					{"name": "file", "type": {"type": "record", "name": "File", "fields": [{"name": "path", "type": "string"}]}},
					{"name": "parent", "type": {"type": "record", "name": "Parent", "fields": [{"name": "file", "type": "File"}]}}
				]}}]}`,
			new: `{"type": "record", "name": "ProcessEvent", "namespace": "crumbs", "fields": [
				{"name": "process", "type": {"type": "record", "name": "Process", "fields": [
					{"name": "pid", "type": "int"},
					{"name": "file", "type": {"type": "record", "name": "File", "fields": [{"name": "path", "type": "string"}, {"name": "sha256", "type": "string"}]}},
					{"name": "parent", "type": {"type": "record", "name": "Parent", "fields": [{"name": "file", "type": "File"}]}}
				]}}]}`,
			want: []string{
				"crumbs.ProcessEvent.process.pid: type changed from long to int",
				"crumbs.ProcessEvent.process.file.sha256: field added without a default",
				"crumbs.ProcessEvent.process.parent.file.sha256: field added without a default",
			},
		},
		{
			name: "record renamed with an alias",
			old:  rec(`{"name": "h", "type": {"type": "record", "name": "Host", "fields": [{"name": "id", "type": "string"}]}}`),
			new:  rec(`{"name": "h", "type": {"type": "record", "name": "Machine", "aliases": ["Host"], "fields": [{"name": "id", "type": "string"}]}}`),
		},
		{
			name: "record alias with a full name",
			old:  rec(`{"name": "h", "type": {"type": "record", "name": "Host", "namespace": "old", "fields": []}}`),
			new:  rec(`{"name": "h", "type": {"type": "record", "name": "Machine", "aliases": ["old.Host"], "fields": []}}`),
		},
		{
			name: "record moved to another namespace",
			old:  rec(`{"name": "h", "type": {"type": "record", "name": "Host", "namespace": "old", "fields": []}}`),
			new:  rec(`{"name": "h", "type": {"type": "record", "name": "Host", "fields": []}}`),
		},
		{
			name: "record renamed without an alias",
			old:  rec(`{"name": "h", "type": {"type": "record", "name": "Host", "fields": [{"name": "id", "type": "string"}]}}`),
			new:  rec(`{"name": "h", "type": {"type": "record", "name": "Machine", "fields": [{"name": "id", "type": "string"}]}}`),
			want: []string{"crumbs.T.h: name changed from crumbs.Host to crumbs.Machine without an alias"},
		},
		{
			name: "top-level record renamed",
			old:  `{"type": "record", "name": "Old", "namespace": "crumbs", "fields": []}`,
			new:  `{"type": "record", "name": "New", "namespace": "crumbs", "fields": []}`,
			want: []string{"crumbs.New: name changed from crumbs.Old to crumbs.New without an alias"},
		},
		{
			name: "enum symbol added",
			old:  rec(`{"name": "e", "type": {"type": "enum", "name": "Sev", "symbols": ["LOW", "HIGH"]}}`),
			new:  rec(`{"name": "e", "type": {"type": "enum", "name": "Sev", "symbols": ["LOW", "MEDIUM", "HIGH"]}}`),
		},
		{
			name: "enum symbols removed",
			old:  rec(`{"name": "e", "type": {"type": "enum", "name": "Sev", "symbols": ["LOW", "MEDIUM", "HIGH"]}}`),
			new:  rec(`{"name": "e", "type": {"type": "enum", "name": "Sev", "symbols": ["HIGH"]}}`),
			want: []string{
				"crumbs.T.e: enum symbol LOW removed (and the new enum has no default)",
				"crumbs.T.e: enum symbol MEDIUM removed (and the new enum has no default)",
			},
		},
		{
			name: "enum symbol removed with a default",
			old:  rec(`{"name": "e", "type": {"type": "enum", "name": "Sev", "symbols": ["UNKNOWN", "LOW", "HIGH"]}}`),
			new:  rec(`{"name": "e", "type": {"type": "enum", "name": "Sev", "symbols": ["UNKNOWN", "HIGH"], "default": "UNKNOWN"}}`),
		},
		{
			name: "enum renamed",
			old:  rec(`{"name": "e", "type": {"type": "enum", "name": "Sev", "symbols": ["LOW"]}}`),
			new:  rec(`{"name": "e", "type": {"type": "enum", "name": "Level", "symbols": ["LOW"]}}`),
			want: []string{"crumbs.T.e: name changed from crumbs.Sev to crumbs.Level without an alias"},
		},
		{
			name: "fixed unchanged",
			old:  rec(`{"name": "f", "type": {"type": "fixed", "name": "SHA256", "size": 32}}`),
			new:  rec(`{"name": "f", "type": {"type": "fixed", "name": "SHA256", "size": 32}}`),
		},
		{
			name: "fixed size changed",
			old:  rec(`{"name": "f", "type": {"type": "fixed", "name": "Digest", "size": 16}}`),
			new:  rec(`{"name": "f", "type": {"type": "fixed", "name": "Digest", "size": 32}}`),
			want: []string{"crumbs.T.f: fixed size changed from 16 to 32"},
		},
		{
			name: "fixed renamed",
			old:  rec(`{"name": "f", "type": {"type": "fixed", "name": "MD5", "size": 16}}`),
			new:  rec(`{"name": "f", "type": {"type": "fixed", "name": "Digest", "size": 16}}`),
			want: []string{"crumbs.T.f: name changed from crumbs.MD5 to crumbs.Digest without an alias"},
		},
		{
			name: "array items promoted",
			old:  rec(`{"name": "a", "type": {"type": "array", "items": "int"}}`),
			new:  rec(`{"name": "a", "type": {"type": "array", "items": "long"}}`),
		},
		{
			name: "array and map items changed",
			old: rec(`{"name": "a", "type": {"type": "array", "items": "long"}},
				{"name": "m", "type": {"type": "map", "values": {"type": "record", "name": "V", "fields": [{"name": "x", "type": "string"}]}}},
				{"name": "aa", "type": {"type": "array", "items": {"type": "array", "items": "string"}}}`),
			new: rec(`{"name": "a", "type": {"type": "array", "items": "int"}},
				{"name": "m", "type": {"type": "map", "values": {"type": "record", "name": "V", "fields": [{"name": "x", "type": "string"}, {"name": "y", "type": "int"}]}}},
				{"name": "aa", "type": {"type": "array", "items": {"type": "array", "items": "boolean"}}}`),
			want: []string{
				"crumbs.T.a[]: type changed from long to int",
				"crumbs.T.m{}.y: field added without a default",
				"crumbs.T.aa[][]: type changed from string to boolean",
			},
		},
		{
			name: "union branch added",
			old:  rec(`{"name": "u", "type": ["null", "string"]}`),
			new:  rec(`{"name": "u", "type": ["null", "string", "long"]}`),
		},
		{
			name: "union branches reordered",
			old:  rec(`{"name": "u", "type": ["null", "string"]}`),
			new:  rec(`{"name": "u", "type": ["string", "null"]}`),
		},
		{
			name: "union branch removed",
			old:  rec(`{"name": "u", "type": ["null", "string", "long"]}`),
			new:  rec(`{"name": "u", "type": ["null", "string"]}`),
			want: []string{"crumbs.T.u: union branch long of the old schema is not in the new union [null, string]"},
		},
		{
			name: "union branch read by promotion",
			old:  rec(`{"name": "u", "type": ["null", "int"]}`),
			new:  rec(`{"name": "u", "type": ["null", "double"]}`),
		},
		{
			name: "plain type widened to a union",
			old:  rec(`{"name": "u", "type": "string"}, {"name": "v", "type": "int"}`),
			new:  rec(`{"name": "u", "type": ["null", "string"]}, {"name": "v", "type": ["null", "long"]}`),
		},
		{
			name: "plain type into a union without it",
			old:  rec(`{"name": "u", "type": "boolean"}`),
			new:  rec(`{"name": "u", "type": ["null", "string"]}`),
			want: []string{"crumbs.T.u: union branch boolean of the old schema is not in the new union [null, string]"},
		},
		{
			name: "union narrowed to a plain type",
			old:  rec(`{"name": "u", "type": ["null", "string"]}`),
			new:  rec(`{"name": "u", "type": "string"}`),
			want: []string{"crumbs.T.u: union branch null of the old schema cannot be read as string"},
		},
		{
			name: "union of one branch narrowed to it",
			old:  rec(`{"name": "u", "type": ["int"]}`),
			new:  rec(`{"name": "u", "type": "long"}`),
		},
		{
			name: "record inside a union changed",
			old: rec(`{"name": "en", "type": ["null", {"type": "record", "name": "Enrichment", "fields": [
				{"name": "service", "type": "string"}]}], "default": null}`),
			new: rec(`{"name": "en", "type": ["null", {"type": "record", "name": "Enrichment", "fields": [
				{"name": "service", "type": "string"}, {"name": "role", "type": "string"}, {"name": "env", "type": "string", "default": ""}]}], "default": null}`),
			want: []string{"crumbs.T.en.role: field added without a default"},
		},
		{
			name: "record inside a union renamed",
			old:  rec(`{"name": "en", "type": ["null", {"type": "record", "name": "A", "fields": []}]}`),
			new:  rec(`{"name": "en", "type": ["null", {"type": "record", "name": "B", "fields": []}]}`),
			want: []string{"crumbs.T.en: union branch crumbs.A of the old schema is not in the new union [null, crumbs.B] (name changed from crumbs.A to crumbs.B without an alias)"},
		},
		{
			name: "record inside a union renamed with an alias",
			old:  rec(`{"name": "en", "type": ["null", {"type": "record", "name": "A", "fields": []}]}`),
			new:  rec(`{"name": "en", "type": ["null", {"type": "record", "name": "B", "aliases": ["A"], "fields": []}]}`),
		},
		{
			name: "recursive record",
			old: `{"type": "record", "name": "Node", "fields": [{"name": "v", "type": "int"},
				{"name": "next", "type": ["null", "Node"]}]}`,
			new: `{"type": "record", "name": "Node", "fields": [{"name": "v", "type": "long"},
				{"name": "next", "type": ["null", "Node"]}, {"name": "w", "type": "string"}]}`,
			want: []string{"Node.w: field added without a default"},
		},
		{
			name: "old schema does not parse",
			old:  `{"type": "record"`,
			new:  rec(``),
			want: []string{"old schema: parse schema: unexpected end of JSON input"},
		},
		{
			name: "new schema refers to an unknown type",
			old:  rec(``),
			new:  rec(`{"name": "a", "type": "Nope"}`),
			want: []string{`new schema: crumbs.T.a: parse schema: unknown type "Nope"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := avro.CheckBackward(tt.old, tt.new)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CheckBackward (-want +got):\n%s", diff)
			}
		})
	}
}
