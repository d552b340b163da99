package avro_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/avro"
)

const (
	testEnvelopeSchema = `{"type": "record", "name": "Envelope", "namespace": "test", "fields": [
		{"name": "id", "type": "string"},
		{"name": "time", "type": "long"}
	]}`
	testEventSchema = `{"type": "record", "name": "Event", "namespace": "test", "fields": [
		{"name": "id", "type": "string"},
		{"name": "time", "type": "long"},
		{"name": "count", "type": "int"},
		{"name": "ratio", "type": "double"},
		{"name": "ok", "type": "boolean"},
		{"name": "raw", "type": "bytes"},
		{"name": "tags", "type": {"type": "array", "items": "string"}},
		{"name": "labels", "type": {"type": "map", "values": "long"}},
		{"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"]}},
		{"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
		{"name": "child", "type": ["null", {"type": "record", "name": "Child", "fields": [
			{"name": "name", "type": "string"}
		]}], "default": null}
	]}`
	eventName    = "test.Event"
	envelopeName = "test.Envelope"
)

// newTestSerde returns a Serde holding the test schemas.
func newTestSerde(t testing.TB) *avro.Serde {
	t.Helper()
	s := avro.NewSerde()
	for _, sch := range []string{testEnvelopeSchema, testEventSchema} {
		if _, err := s.Register(sch); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	return s
}

func sampleEvent(withChild bool) map[string]any {
	m := map[string]any{
		"id":     "0190d7a4-0000-7000-8000-000000000001",
		"time":   int64(1_700_000_000_123_456_789),
		"count":  int32(-3),
		"ratio":  0.25,
		"ok":     true,
		"raw":    []byte{0, 1, 0xff},
		"tags":   []any{"a", "b"},
		"labels": map[string]any{"x": int64(1), "y": int64(-1)},
		"level":  "HIGH",
		"digest": []byte{1, 2, 3, 4},
		"child":  nil,
	}
	if withChild {
		m["child"] = map[string]any{"test.Child": map[string]any{"name": "kid"}}
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		registryID int32
		native     map[string]any
		wantHead   []byte
	}{
		{name: "single-object", native: sampleEvent(false), wantHead: []byte{0xC3, 0x01}},
		{name: "single-object with union set", native: sampleEvent(true), wantHead: []byte{0xC3, 0x01}},
		{name: "confluent", registryID: 42, native: sampleEvent(true), wantHead: []byte{0, 0, 0, 0, 42}},
		{name: "confluent high id", registryID: 0x01020304, native: sampleEvent(false), wantHead: []byte{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSerde(t)
			if tt.registryID != 0 {
				if err := s.SetRegistryID(eventName, tt.registryID); err != nil {
					t.Fatalf("SetRegistryID: %v", err)
				}
			}
			prefix := []byte("keep")
			b, err := s.Encode(prefix, eventName, tt.native)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(b[:4]) != "keep" {
				t.Fatalf("Encode did not append to buf: %q", b[:4])
			}
			b = b[4:]
			if diff := cmp.Diff(tt.wantHead, b[:len(tt.wantHead)]); diff != "" {
				t.Errorf("frame head (-want +got):\n%s", diff)
			}
			if tt.registryID == 0 {
				sc, _ := s.Lookup(eventName)
				if got := binary.LittleEndian.Uint64(b[2:10]); got != sc.Fingerprint {
					t.Errorf("fingerprint in frame = %016x, want %016x", got, sc.Fingerprint)
				}
			}
			sc, got, err := s.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if sc.Name != eventName {
				t.Errorf("Decode schema = %q, want %q", sc.Name, eventName)
			}
			if diff := cmp.Diff(any(tt.native), got); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeBothFramings checks a Serde with a registry id still reads single-object frames.
func TestDecodeBothFramings(t *testing.T) {
	s := newTestSerde(t)
	single, err := s.Encode(nil, eventName, sampleEvent(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRegistryID(eventName, 7); err != nil {
		t.Fatal(err)
	}
	confluent, err := s.Encode(nil, eventName, sampleEvent(false))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"single-object": single, "confluent": confluent} {
		t.Run(name, func(t *testing.T) {
			_, got, err := s.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(any(sampleEvent(false)), got); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	s := newTestSerde(t)
	if _, err := s.Encode(nil, "test.Nope", map[string]any{}); !errors.Is(err, avro.ErrUnknownSchema) {
		t.Errorf("Encode unknown schema: err = %v, want ErrUnknownSchema", err)
	}
	bad := sampleEvent(false)
	bad["count"] = "three"
	if _, err := s.Encode(nil, eventName, bad); err == nil {
		t.Errorf("Encode with a bad field: err = nil")
	}
	if err := s.SetRegistryID("test.Nope", 1); !errors.Is(err, avro.ErrUnknownSchema) {
		t.Errorf("SetRegistryID unknown schema: err = %v, want ErrUnknownSchema", err)
	}
	if _, err := s.Register(`{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}`); err == nil {
		t.Errorf("Register of a bad schema: err = nil")
	}
	if _, err := s.Register(`"string"`); err == nil {
		t.Errorf("Register of an unnamed schema: err = nil")
	}
}

func TestDecodeErrors(t *testing.T) {
	s := newTestSerde(t)
	good, err := s.Encode(nil, eventName, sampleEvent(true))
	if err != nil {
		t.Fatal(err)
	}
	unknownFP := append([]byte{0xC3, 0x01}, binary.LittleEndian.AppendUint64(nil, 0x1234)...)
	tests := []struct {
		name       string
		b          []byte
		wantSchema string // DecodeError.Schema
		wantIs     error  // nil: any error
	}{
		{name: "empty", b: nil, wantIs: avro.ErrBadFrame},
		{name: "garbage", b: []byte("hello world"), wantIs: avro.ErrBadFrame},
		{name: "short single-object header", b: good[:9], wantIs: avro.ErrBadFrame},
		{name: "short confluent header", b: []byte{0, 0, 0, 1}, wantIs: avro.ErrBadFrame},
		{name: "unknown fingerprint", b: append(unknownFP, good[10:]...), wantIs: avro.ErrUnknownSchema},
		{name: "unknown registry id", b: append([]byte{0, 0, 0, 0, 9}, good[10:]...), wantIs: avro.ErrUnknownSchema},
		{name: "empty body", b: good[:10], wantSchema: eventName},
		{name: "truncated body", b: good[:len(good)-3], wantSchema: eventName},
		{name: "trailing bytes", b: append(append([]byte{}, good...), 0, 0), wantSchema: eventName},
		{name: "array block larger than the record", b: hugeBlock(good, false), wantSchema: eventName},
		{name: "array block with size larger than the record", b: hugeBlock(good, true), wantSchema: eventName},
		{name: "bad union index", b: append(append([]byte{}, good[:len(good)-5]...), 0x08), wantSchema: eventName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, v, err := s.Decode(tt.b)
			if err == nil {
				t.Fatalf("Decode = %v, nil error; want an error", v)
			}
			var de *avro.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %T (%v) is not a *DecodeError", err, err)
			}
			if de.Schema != tt.wantSchema {
				t.Errorf("DecodeError.Schema = %q, want %q", de.Schema, tt.wantSchema)
			}
			if tt.wantSchema != "" && (sc == nil || sc.Name != tt.wantSchema) {
				t.Errorf("Decode schema = %v, want %s", sc, tt.wantSchema)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Decode error %v is not %v", err, tt.wantIs)
			}
			if v != nil {
				t.Errorf("Decode value = %v, want nil", v)
			}
		})
	}
}

// hugeBlock returns a single-object frame of test.Event (header taken from good) whose tags
// array claims 2^30 items: goavro would allocate 16 GiB for it before reading one.
func hugeBlock(good []byte, withSize bool) []byte {
	b := append([]byte{}, good[:10]...)
	b = append(b, 0, 0, 0)            // id "", time 0, count 0
	b = append(b, make([]byte, 8)...) // ratio 0
	b = append(b, 0, 0)               // ok false, raw empty
	if withSize {
		b = binary.AppendVarint(b, -(1 << 30)) // negative count: a block size follows
		b = binary.AppendVarint(b, 1<<30)
	} else {
		b = binary.AppendVarint(b, 1<<30)
	}
	return append(b, 2, 'a')
}

func TestDecodePrefix(t *testing.T) {
	tests := []struct {
		name       string
		registryID int32
	}{
		{name: "single-object"},
		{name: "confluent", registryID: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSerde(t)
			if tt.registryID != 0 {
				if err := s.SetRegistryID(eventName, tt.registryID); err != nil {
					t.Fatal(err)
				}
			}
			ev := sampleEvent(true)
			b, err := s.Encode(nil, eventName, ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.DecodePrefix(b, envelopeName)
			if err != nil {
				t.Fatalf("DecodePrefix: %v", err)
			}
			want := map[string]any{"id": ev["id"], "time": ev["time"]}
			if diff := cmp.Diff(any(want), got); diff != "" {
				t.Errorf("DecodePrefix (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodePrefixErrors(t *testing.T) {
	s := newTestSerde(t)
	good, err := s.Encode(nil, eventName, sampleEvent(false))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		b      []byte
		prefix string
		wantIs error
	}{
		{name: "bad frame", b: []byte{1, 2, 3}, prefix: envelopeName, wantIs: avro.ErrBadFrame},
		{name: "unknown writer", b: append([]byte{0, 0, 0, 0, 5}, good[10:]...), prefix: envelopeName, wantIs: avro.ErrUnknownSchema},
		{name: "unknown prefix schema", b: good, prefix: "test.Nope", wantIs: avro.ErrUnknownSchema},
		{name: "truncated", b: good[:12], prefix: envelopeName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.DecodePrefix(tt.b, tt.prefix)
			var de *avro.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodePrefix = %v, %v; want a *DecodeError", v, err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("DecodePrefix error %v is not %v", err, tt.wantIs)
			}
		})
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	tests := []struct {
		err  *avro.DecodeError
		want string
	}{
		{err: &avro.DecodeError{Err: avro.ErrBadFrame}, want: "decode: " + avro.ErrBadFrame.Error()},
		{err: &avro.DecodeError{Schema: "test.Event", Err: errors.New("boom")}, want: "decode test.Event: boom"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.err.Error()); diff != "" {
			t.Errorf("Error() (-want +got):\n%s", diff)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to Decode and DecodePrefix: they must return a value or a
// *DecodeError, never panic, and what decodes must encode again.
func FuzzDecode(f *testing.F) {
	s := newTestSerde(f)
	for _, ev := range []map[string]any{sampleEvent(false), sampleEvent(true)} {
		b, err := s.Encode(nil, eventName, ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	env, err := s.Encode(nil, envelopeName, map[string]any{"id": "x", "time": int64(1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	if err := s.SetRegistryID(eventName, 1); err != nil {
		f.Fatal(err)
	}
	b, err := s.Encode(nil, eventName, sampleEvent(true))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0xC3, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, v, err := s.Decode(b)
		if err != nil {
			var de *avro.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %T is not a *DecodeError: %v", err, err)
			}
		} else if _, err := s.Encode(nil, sc.Name, v); err != nil {
			t.Fatalf("decoded %v does not encode again: %v", v, err)
		}
		if _, err := s.DecodePrefix(b, envelopeName); err != nil {
			var de *avro.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodePrefix error %T is not a *DecodeError: %v", err, err)
			}
		}
	})
}
