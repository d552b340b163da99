package schemas_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/quick"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

// samples are values of every generated codec's type with every field set.
func samples() map[string][]schemas.Record {
	return map[string][]schemas.Record{
		schemas.EnvelopeSchema:  {&schemas.Envelope{EventID: "e", Time: 5, Host: schemas.Host{ID: "i", Name: "n"}, Kind: "k"}},
		schemas.ProcessSchema:   {sampleProcessEvent(true), sampleProcessEvent(false)},
		schemas.NetworkSchema:   {sampleNetworkEvent(true), sampleNetworkEvent(false)},
		schemas.FileSchema:      {sampleFileEvent(true), sampleFileEvent(false)},
		schemas.IdentitySchema:  {sampleIdentityEvent(true), sampleIdentityEvent(false)},
		schemas.SystemSchema:    {sampleSystemEvent(true), sampleSystemEvent(false)},
		schemas.AlertSchema:     {sampleAlert()},
		schemas.IncidentSchema:  {sampleIncident(), &schemas.Incident{}},
		schemas.ChangeSchema:    {sampleChangeRecord()},
		schemas.DeploySchema:    {sampleDeployRecord()},
		schemas.AccountSchema:   {sampleAccountRecord()},
		schemas.InventorySchema: {sampleInventoryRecord()},
		"crumbs.HealthEvent": {&schemas.HealthEvent{Envelope: sampleEnvelope("health"),
			Health: schemas.Health{Collector: "network", Reason: "ring_buffer_full", Dropped: 12, DroppedTotal: 40}}},
		schemas.TriageSchema: {&schemas.TriageState{AlertID: "a1", Version: 3, State: schemas.TriageAcknowledged,
			Assignee: "alice", UpdatedAt: 1_700_000_000_000_000_005, UpdatedBy: "bob"}},
		schemas.DeliverySchema: {&schemas.Delivery{AlertID: "a1", Output: "pagerduty", Action: "trigger", Status: "delivered",
			Attempts: 2, At: 1_700_000_000_000_000_006, SourceTopic: "crumbs.alerts", SourceOffset: 4242, Detail: "202 Accepted"}},
	}
}

// goavroCodec returns goavro's codec of a codec's schema file.
func goavroCodec(t testing.TB, c *schemas.Codec) *goavro.Codec {
	t.Helper()
	text, err := schemas.Avro.ReadFile(c.File)
	if err != nil {
		t.Fatal(err)
	}
	g, err := goavro.NewCodec(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestCodecsCoverSchemas: every schema file has its generated codec, generated from the
// file as it is now (go generate ./schemas rewrites them; CI checks the tree is clean).
func TestCodecsCoverSchemas(t *testing.T) {
	have := map[string]*schemas.Codec{}
	for _, c := range schemas.Codecs {
		have[c.File] = c
	}
	for _, f := range schemas.AvroFiles() {
		c, ok := have[f]
		if !ok {
			t.Errorf("%s has no generated codec", f)
			continue
		}
		g := goavroCodec(t, c)
		if got, want := c.Fingerprint, uint64(g.SchemaCRC64Avro()); got != want {
			t.Errorf("%s: codec fingerprint %016x, the file's is %016x: run go generate ./schemas", f, got, want)
		}
		if name, fp := c.New().AvroSchema(); name != c.Schema || fp != c.Fingerprint {
			t.Errorf("%s: AvroSchema() = %s %016x, codec says %s %016x", f, name, fp, c.Schema, c.Fingerprint)
		}
		if got, ok := schemas.CodecOf(c.Schema); !ok || got != c {
			t.Errorf("CodecOf(%s) = %v, %t", c.Schema, got, ok)
		}
	}
}

// TestGoldenNative: the generated native form of the samples is what the hand-written and
// reflection-based conversions it replaced produced (testdata/native, recorded from them),
// and what goavro decodes from the generated encoding.
func TestGoldenNative(t *testing.T) {
	golden := map[string]schemas.Record{
		"envelope": samples()[schemas.EnvelopeSchema][0], "process": sampleProcessEvent(true), "process-raw": sampleProcessEvent(false),
		"network": sampleNetworkEvent(true), "network-raw": sampleNetworkEvent(false), "file": sampleFileEvent(true),
		"identity": sampleIdentityEvent(true), "system": sampleSystemEvent(true), "alert": sampleAlert(),
		"change": sampleChangeRecord(), "deploy": sampleDeployRecord(), "account": sampleAccountRecord(),
		"inventory": sampleInventoryRecord(),
	}
	for file, v := range golden {
		t.Run(file, func(t *testing.T) {
			want, err := os.ReadFile("testdata/native/" + file + ".json")
			if err != nil {
				t.Fatal(err)
			}
			name, _ := v.AvroSchema()
			c, _ := schemas.CodecOf(name)
			decoded, _, err := goavroCodec(t, c).NativeFromBinary(v.AppendAvro(nil))
			if err != nil {
				t.Fatalf("goavro decode of the generated encoding: %v", err)
			}
			for what, native := range map[string]any{"Native": v.Native(), "goavro": decoded} {
				got, err := json.MarshalIndent(native, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(bytes.TrimSpace(want)), string(got)); diff != "" {
					t.Errorf("%s (-golden +got):\n%s", what, diff)
				}
			}
		})
	}
}

// randomValue returns a random value of a codec's type: every field random, optional
// records present or not, arrays of 0 to 5 items; empty arrays are nil, as decoding gives.
func randomValue(c *schemas.Codec, r *rand.Rand) schemas.Record {
	v := c.New()
	fill(reflect.ValueOf(v).Elem(), r, 0)
	return v
}

func fill(v reflect.Value, r *rand.Rand, depth int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), r, depth)
			}
		}
	case reflect.Pointer:
		if r.Intn(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), r, depth+1)
		}
	case reflect.Slice:
		n := r.Intn(6)
		if n == 0 || depth > 3 {
			return
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(s.Index(i), r, depth+1)
		}
		v.Set(s)
	case reflect.String:
		s, _ := quick.Value(v.Type(), r)
		str := s.String()
		if r.Intn(4) == 0 {
			str = ""
		}
		v.SetString(str)
	default:
		x, _ := quick.Value(v.Type(), r)
		if r.Intn(4) == 0 {
			x = reflect.Zero(v.Type())
		}
		v.Set(x)
	}
}

// TestCodecAgreesWithGoavro round-trips random values of every codec's type both ways:
// generated encoding -> goavro decoding, and goavro encoding -> generated decoding; the
// native forms, values and bytes must agree. The values also go through the column buffer
// and Field, which must hold what goavro's native form holds at each path.
func TestCodecAgreesWithGoavro(t *testing.T) {
	for _, c := range schemas.Codecs {
		t.Run(c.Schema, func(t *testing.T) {
			g := goavroCodec(t, c)
			r := rand.New(rand.NewSource(int64(c.Fingerprint)))
			cols := c.NewColumns()
			dec := c.NewDecoder()
			var natives []map[string]any
			for i := range 200 {
				v := randomValue(c, r)
				b := v.AppendAvro(nil)
				if len(b) != v.AvroSize() {
					t.Fatalf("value %d: AvroSize() = %d, encoding has %d bytes", i, v.AvroSize(), len(b))
				}
				native, rest, err := g.NativeFromBinary(b)
				if err != nil || len(rest) != 0 {
					t.Fatalf("value %d: goavro decode of the generated encoding: %v (%d bytes left)", i, err, len(rest))
				}
				if diff := cmp.Diff(v.Native(), native); diff != "" {
					t.Fatalf("value %d: goavro's decoding vs Native (-generated +goavro):\n%s", i, diff)
				}
				fromNative := c.New()
				if err := fromNative.FromNative(native); err != nil {
					t.Fatalf("value %d: FromNative: %v", i, err)
				}
				if diff := cmp.Diff(v, fromNative); diff != "" {
					t.Fatalf("value %d: FromNative of goavro's decoding (-want +got):\n%s", i, diff)
				}

				gb, err := g.BinaryFromNative(nil, v.Native())
				if err != nil {
					t.Fatalf("value %d: goavro encode: %v", i, err)
				}
				if !bytes.Equal(gb, b) {
					t.Fatalf("value %d: goavro encodes %x, generated %x", i, gb, b)
				}
				for _, unmarshal := range []func(schemas.Record, []byte) error{
					schemas.Record.UnmarshalAvro, schemas.Record.UnmarshalAvroNoCopy,
				} {
					got := c.New()
					if err := unmarshal(got, gb); err != nil {
						t.Fatalf("value %d: generated decode of goavro's encoding: %v", i, err)
					}
					if diff := cmp.Diff(v, got); diff != "" {
						t.Fatalf("value %d: generated decode of goavro's encoding (-want +got):\n%s", i, diff)
					}
				}
				reused, err := dec.Decode(gb)
				if err != nil {
					t.Fatalf("value %d: Decoder: %v", i, err)
				}
				if diff := cmp.Diff(v, reused); diff != "" {
					t.Fatalf("value %d: Decoder, reusing its memory (-want +got):\n%s", i, diff)
				}
				if err := cols.Append(gb); err != nil {
					t.Fatalf("value %d: columns: %v", i, err)
				}
				natives = append(natives, native.(map[string]any))
				for _, f := range c.Fields {
					want, wantOK := fromNativePath(native.(map[string]any), f)
					got, ok := v.Field(f.Path)
					if ok != wantOK {
						t.Fatalf("value %d: Field(%s) ok = %t, want %t", i, f.Path, ok, wantOK)
					}
					if diff := cmp.Diff(normal(want), normal(got)); ok && diff != "" {
						t.Fatalf("value %d: Field(%s) (-goavro +generated):\n%s", i, f.Path, diff)
					}
				}
			}
			checkColumns(t, c, cols, natives)
		})
	}
}

// checkColumns compares every row of every column with goavro's native form.
func checkColumns(t *testing.T, c *schemas.Codec, cols schemas.ColumnBuffer, natives []map[string]any) {
	t.Helper()
	if cols.Len() != len(natives) {
		t.Fatalf("columns have %d rows, want %d", cols.Len(), len(natives))
	}
	columns := cols.Columns()
	if len(columns) != len(c.Fields) {
		t.Fatalf("%d columns, %d fields", len(columns), len(c.Fields))
	}
	for j, f := range c.Fields {
		col := reflect.ValueOf(columns[j].Values)
		if columns[j].Path != f.Path || col.Len() != len(natives) {
			t.Fatalf("column %d is %s with %d rows, want %s with %d", j, columns[j].Path, col.Len(), f.Path, len(natives))
		}
		for i, native := range natives {
			want, ok := fromNativePath(native, f)
			if !ok { // under an absent optional record: the zero value
				want = zero(f, 0)
			}
			if diff := cmp.Diff(normal(want), normal(col.Index(i).Interface())); diff != "" {
				t.Fatalf("row %d, column %s (-goavro +column):\n%s", i, f.Path, diff)
			}
		}
	}
}

// fromNativePath reads a field path from goavro's native form, as the columns hold it:
// unions unwrapped, arrays of records mapped to arrays of their fields, absent optional
// records giving zero values (and false outside arrays).
func fromNativePath(native map[string]any, f schemas.FieldInfo) (any, bool) {
	return walk(native, strings.Split(f.Path, "."), f, 0)
}

func walk(v any, path []string, f schemas.FieldInfo, arrays int) (any, bool) {
	if len(path) == 0 {
		if f.Presence {
			return v != nil, true
		}
		return v, true
	}
	switch x := v.(type) {
	case nil: // an absent optional record
		if arrays == 0 && !(f.Presence && len(path) == 0) {
			return nil, false
		}
		return zero(f, arrays), true
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i], _ = walk(it, path, f, arrays+1)
		}
		return out, true
	case map[string]any:
		if len(x) == 1 { // a union's branch
			for k, inner := range x {
				if strings.Contains(k, ".") {
					return walk(inner, path, f, arrays)
				}
			}
		}
		next := x[path[0]]
		if f.Presence && len(path) == 1 {
			return walk(unwrap(next), nil, f, arrays)
		}
		if next == nil && len(path) > 1 {
			return walk(nil, path[1:], f, arrays)
		}
		return walk(next, path[1:], f, arrays)
	}
	panic(fmt.Sprintf("path %v into %T", path, v))
}

func unwrap(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, inner := range m {
			if strings.Contains(k, ".") {
				return inner
			}
		}
	}
	return v
}

// zero is the value a column holds for a field under an absent optional record.
func zero(f schemas.FieldInfo, arrays int) any {
	if f.Arrays > arrays {
		return []any{}
	}
	switch f.Type {
	case "string":
		return ""
	case "boolean":
		return false
	case "double", "float":
		return 0.0
	}
	return int64(0)
}

// normal makes values comparable across goavro's and the generated forms: slices become
// []any (nil and empty alike), integers int64, floats float64.
func normal(v any) any {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normal(rv.Index(i).Interface())
		}
		return out
	case reflect.Int32, reflect.Int64, reflect.Int:
		return rv.Int()
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	}
	return v
}

// TestDecodeRefusesBadInput: truncated records, bad union indexes, bad booleans, trailing
// bytes and lengths beyond the input are errors, and the column buffer keeps no part of
// the bad row.
func TestDecodeRefusesBadInput(t *testing.T) {
	good := sampleProcessEvent(true).AppendAvro(nil)
	withArgs := func(count int64) []byte {
		// event_id "", time 0, host "", "", kind "", action "", pid 0, ppid 0, cmd_line "", then args.
		return binary.AppendVarint([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0}, count)
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"truncated", good[:len(good)-1], schemas.ErrShortBuffer},
		{"trailing byte", append(append([]byte(nil), good...), 0), schemas.ErrTrailingBytes},
		{"empty", nil, schemas.ErrShortBuffer},
		{"string longer than the record", []byte{0x7e, 'a'}, schemas.ErrShortBuffer},
		{"negative string length", []byte{0x01}, schemas.ErrBadBinary},
		{"array claiming 2^40 items", withArgs(1 << 40), schemas.ErrBadBinary},
		{"array claiming a negative block of 2^40 items", append(withArgs(-(1 << 40)), 2), schemas.ErrBadBinary},
		{"varint overflowing a long", append([]byte{0}, bytes.Repeat([]byte{0xff}, 11)...), schemas.ErrBadBinary},
	}
	// The raw event's enrichment union index: set it to 4 (index 2 of 2).
	raw := sampleProcessEvent(false).AppendAvro(nil)
	badUnion := append(append([]byte(nil), raw[:len(raw)-1]...), 4)
	tests = append(tests, struct {
		name string
		b    []byte
		want error
	}{"union index out of range", badUnion, schemas.ErrBadBinary})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e schemas.ProcessEvent
			err := e.UnmarshalAvro(tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UnmarshalAvro: err = %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(schemas.ProcessEvent{}, e); diff != "" {
				t.Errorf("a failed decode leaves the value set (-want +got):\n%s", diff)
			}
			var cols schemas.ProcessEventColumns
			if err := cols.Append(good); err != nil {
				t.Fatal(err)
			}
			if err := cols.Append(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("Append: err = %v, want %v", err, tt.want)
			}
			for _, c := range cols.Columns() {
				if n := reflect.ValueOf(c.Values).Len(); n != 1 {
					t.Errorf("column %s has %d rows after a bad record, want 1", c.Path, n)
				}
			}
		})
	}
}

// TestHostileLengthsAllocateNothing: a record that claims huge arrays is refused before
// anything is allocated for them.
func TestHostileLengthsAllocateNothing(t *testing.T) {
	b := binary.AppendVarint([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0}, 1<<30) // 2^30 args in a few bytes
	b = append(b, bytes.Repeat([]byte{0}, 64)...)
	var e schemas.ProcessEvent
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if err := e.UnmarshalAvroNoCopy(b); !errors.Is(err, schemas.ErrBadBinary) {
			t.Fatalf("err = %v, want ErrBadBinary", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perDecode := (after.TotalAlloc - before.TotalAlloc) / 100; perDecode > 1024 {
		t.Errorf("a refused record allocated %d bytes", perDecode)
	}
}

// TestDecoderAllocatesNothing: a Decoder decodes a typical event (one change window at most,
// a few arguments) without allocating.
func TestDecoderAllocatesNothing(t *testing.T) {
	oneEffect := func(en *schemas.Enrichment) { en.Changes[0].Expected = en.Changes[0].Expected[:1] }
	process, network := sampleProcessEvent(true), sampleNetworkEvent(true)
	oneEffect(process.Enrichment)
	oneEffect(network.Enrichment)
	for _, v := range []schemas.Record{process, sampleProcessEvent(false), network, sampleAlert()} {
		name, _ := v.AvroSchema()
		c, _ := schemas.CodecOf(name)
		dec := c.NewDecoder()
		b := v.AppendAvro(nil)
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := dec.Decode(b); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Decoder.Decode allocated %.0f times", name, allocs)
		}
		if got, _ := dec.Decode(b); !cmp.Equal(v, got) {
			t.Errorf("%s: Decoder.Decode: %s", name, cmp.Diff(v, got))
		}
	}
}

// oracleSerde knows the schemas but not the generated codecs: it decodes with goavro.
func oracleSerde(t testing.TB) *avro.Serde {
	t.Helper()
	s := avro.NewSerde()
	for _, f := range schemas.AvroFiles() {
		text, err := schemas.Avro.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Register(string(text)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// fuzzCodec checks one generated decoder against goavro on arbitrary bytes: no panic,
// success exactly when goavro (behind the Serde's checks) succeeds, the same native form
// then, the same row in the column buffer, and a stable re-encoding.
func fuzzCodec(f *testing.F, c *schemas.Codec) {
	oracle := oracleSerde(f)
	for _, v := range samples()[c.Schema] {
		f.Add(v.AppendAvro(nil))
	}
	frame := binary.LittleEndian.AppendUint64([]byte{0xC3, 0x01}, c.Fingerprint)
	dec := c.NewDecoder() // reused across inputs, as a stage would
	f.Fuzz(func(t *testing.T, b []byte) {
		v := c.New()
		err := v.UnmarshalAvroNoCopy(b)
		_, native, oerr := oracle.Decode(append(frame[:10:10], b...))
		if (err == nil) != (oerr == nil) {
			t.Fatalf("generated decode: %v; goavro: %v", err, oerr)
		}
		cols := c.NewColumns()
		if cerr := cols.Append(b); (cerr == nil) != (err == nil) {
			t.Fatalf("columns: %v; generated decode: %v", cerr, err)
		}
		reused, derr := dec.Decode(b)
		if (derr == nil) != (err == nil) {
			t.Fatalf("Decoder: %v; generated decode: %v", derr, err)
		}
		if err != nil {
			return
		}
		if diff := cmp.Diff(v, reused); diff != "" {
			t.Fatalf("Decoder (-UnmarshalAvro +Decoder):\n%s", diff)
		}
		if diff := cmp.Diff(native, any(v.Native())); diff != "" {
			t.Fatalf("native forms (-goavro +generated):\n%s", diff)
		}
		checkColumns(t, c, cols, []map[string]any{v.Native()})
		again := c.New()
		if err := again.UnmarshalAvro(v.AppendAvro(nil)); err != nil {
			t.Fatalf("decode of the re-encoding: %v", err)
		}
		if diff := cmp.Diff(v, again); diff != "" {
			t.Fatalf("re-encoding (-first +second):\n%s", diff)
		}
	})
}

func FuzzEnvelopeCodec(f *testing.F)  { fuzzCodec(f, schemas.EnvelopeCodec) }
func FuzzProcessCodec(f *testing.F)   { fuzzCodec(f, schemas.ProcessEventCodec) }
func FuzzNetworkCodec(f *testing.F)   { fuzzCodec(f, schemas.NetworkEventCodec) }
func FuzzFileCodec(f *testing.F)      { fuzzCodec(f, schemas.FileEventCodec) }
func FuzzIdentityCodec(f *testing.F)  { fuzzCodec(f, schemas.IdentityEventCodec) }
func FuzzSystemCodec(f *testing.F)    { fuzzCodec(f, schemas.SystemEventCodec) }
func FuzzAlertCodec(f *testing.F)     { fuzzCodec(f, schemas.AlertCodec) }
func FuzzChangeCodec(f *testing.F)    { fuzzCodec(f, schemas.ChangeRecordCodec) }
func FuzzDeployCodec(f *testing.F)    { fuzzCodec(f, schemas.DeployRecordCodec) }
func FuzzAccountCodec(f *testing.F)   { fuzzCodec(f, schemas.AccountRecordCodec) }
func FuzzInventoryCodec(f *testing.F) { fuzzCodec(f, schemas.InventoryRecordCodec) }
func FuzzHealthCodec(f *testing.F)    { fuzzCodec(f, schemas.HealthEventCodec) }
func FuzzTriageCodec(f *testing.F)    { fuzzCodec(f, schemas.TriageStateCodec) }
func FuzzDeliveryCodec(f *testing.F)  { fuzzCodec(f, schemas.DeliveryCodec) }

// BenchmarkCodec measures, per schema, the generated encoding and decoding of its fullest
// sample (an enriched event with a change, a deployment and an account) beside goavro's
// generic path as crumbs used it (native form built from the Go value, then goavro; goavro,
// then the Go value from the native form), and decoding into reused memory and into the
// column buffer. Besides ns/op it reports cpu-ns/op, the CPU time the process spent per
// operation (garbage collection included), which waiting for a core on a shared machine
// does not inflate.
func BenchmarkCodec(b *testing.B) {
	for _, c := range schemas.Codecs {
		v := samples()[c.Schema][0]
		body := v.AppendAvro(nil)
		g := goavroCodec(b, c)
		kind := strings.TrimSuffix(strings.TrimPrefix(c.File, "avro/"), ".avsc")
		run := func(op string, setup func() func()) {
			b.Run(kind+"/"+op, func(b *testing.B) {
				f := setup()
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				cpu0 := processCPU()
				for b.Loop() {
					f()
				}
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
		run("encode", func() func() {
			return func() { body = v.AppendAvro(nil) }
		})
		run("decode", func() func() {
			return func() {
				if err := c.New().UnmarshalAvro(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		run("decoder", func() func() {
			dec := c.NewDecoder()
			return func() {
				if _, err := dec.Decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		run("columns", func() func() {
			cols := c.NewColumns()
			return func() {
				if cols.Len() == 4096 {
					cols.Reset()
				}
				if err := cols.Append(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		run("goavro-encode", func() func() {
			return func() {
				if _, err := g.BinaryFromNative(nil, v.Native()); err != nil {
					b.Fatal(err)
				}
			}
		})
		run("goavro-decode", func() func() {
			return func() {
				native, _, err := g.NativeFromBinary(body)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.New().FromNative(native); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// processCPU returns the CPU time the process has used, user and system, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
