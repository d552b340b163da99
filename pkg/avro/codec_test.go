package avro_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

func builtinSerde(t testing.TB) *avro.Serde {
	t.Helper()
	s, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatalf("NewBuiltinSerde: %v", err)
	}
	return s
}

// goavroSerde knows the built-in schemas but uses no generated codec.
func goavroSerde(t testing.TB) *avro.Serde {
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

// randomRecord returns a random value of a codec's type, empty slices nil as decoding gives.
func randomRecord(c *schemas.Codec, r *rand.Rand) schemas.Record {
	v := c.New()
	randomize(reflect.ValueOf(v).Elem(), r)
	return v
}

func randomize(v reflect.Value, r *rand.Rand) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			randomize(v.Field(i), r)
		}
	case reflect.Pointer:
		if r.Intn(2) == 0 {
			v.Set(reflect.New(v.Type().Elem()))
			randomize(v.Elem(), r)
		}
	case reflect.Slice:
		if n := r.Intn(4); n > 0 {
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := range n {
				randomize(v.Index(i), r)
			}
		}
	default:
		x, _ := quick.Value(v.Type(), r)
		v.Set(x)
	}
}

// TestSerdeGeneratedPathAgreesWithGoavro: through the framing, the generated codecs write
// the bytes goavro writes and read what goavro reads.
func TestSerdeGeneratedPathAgreesWithGoavro(t *testing.T) {
	fast, slow := builtinSerde(t), goavroSerde(t)
	r := rand.New(rand.NewSource(1))
	for _, c := range schemas.Codecs {
		t.Run(c.Schema, func(t *testing.T) {
			for i := range 50 {
				v := randomRecord(c, r)
				got, err := fast.Encode(nil, c.Schema, v)
				if err != nil {
					t.Fatalf("value %d: Encode: %v", i, err)
				}
				want, err := slow.Encode(nil, c.Schema, v.Native())
				if err != nil {
					t.Fatalf("value %d: goavro Encode: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("value %d: generated frame %x, goavro's %x", i, got, want)
				}
				_, fastNative, err := fast.Decode(want)
				if err != nil {
					t.Fatalf("value %d: Decode: %v", i, err)
				}
				_, slowNative, err := slow.Decode(want)
				if err != nil {
					t.Fatalf("value %d: goavro Decode: %v", i, err)
				}
				if diff := cmp.Diff(slowNative, fastNative); diff != "" {
					t.Fatalf("value %d: Decode (-goavro +generated):\n%s", i, diff)
				}
				sc, rec, err := fast.DecodeRecord(want)
				if err != nil || sc.Name != c.Schema {
					t.Fatalf("value %d: DecodeRecord: %v, %v", i, sc, err)
				}
				if diff := cmp.Diff(v, rec); diff != "" {
					t.Fatalf("value %d: DecodeRecord (-want +got):\n%s", i, diff)
				}
				into := c.New()
				if _, err := fast.DecodeInto(want, into); err != nil {
					t.Fatalf("value %d: DecodeInto: %v", i, err)
				}
				if diff := cmp.Diff(v, into); diff != "" {
					t.Fatalf("value %d: DecodeInto (-want +got):\n%s", i, diff)
				}
				_, body, err := fast.CurrentBody(want)
				if err != nil || !bytes.Equal(body, want[10:]) {
					t.Fatalf("value %d: CurrentBody = %x, %v; want the body %x", i, body, err, want[10:])
				}
			}
		})
	}
}

// TestSerdeEarlierVersions: a record written with an earlier version of its schema decodes
// through goavro, fields it lacked taking their defaults, and CurrentBody re-encodes it for
// the generated codec.
func TestSerdeEarlierVersions(t *testing.T) {
	old, err := schemas.Avro.ReadFile("avro/history/alert-06722299c2dcb39e.avsc")
	if err != nil {
		t.Fatal(err)
	}
	writer := avro.NewSerde()
	if _, err := writer.Register(string(old)); err != nil {
		t.Fatal(err)
	}
	frame, err := writer.Encode(nil, schemas.AlertSchema, map[string]any{
		"alert_id": "a1", "time": int64(7), "rule_id": "r", "title": "t", "severity": "high",
		"tags": []any{"x"}, "group_key": "g", "host": map[string]any{"id": "h", "name": "web-1"},
		"service": "shop", "window_start": int64(1), "window_end": int64(2), "count": int64(3),
		"evidence": []any{"e1"}, "summary": "s",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &schemas.Alert{AlertID: "a1", Time: 7, RuleID: "r", Title: "t", Severity: "high", Tags: []string{"x"},
		GroupKey: "g", Host: schemas.Host{ID: "h", Name: "web-1"}, Service: "shop", WindowStart: 1, WindowEnd: 2,
		Count: 3, Evidence: []string{"e1"}, Summary: "s", RuleSource: "native"}
	s := builtinSerde(t)
	_, rec, err := s.DecodeRecord(frame)
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if diff := cmp.Diff(any(want), any(rec)); diff != "" {
		t.Errorf("DecodeRecord of an earlier version (-want +got):\n%s", diff)
	}
	var into schemas.Alert
	if _, err := s.DecodeInto(frame, &into); err != nil {
		t.Fatalf("DecodeInto: %v", err)
	}
	if diff := cmp.Diff(want, &into); diff != "" {
		t.Errorf("DecodeInto of an earlier version (-want +got):\n%s", diff)
	}
	_, body, err := s.CurrentBody(frame)
	if err != nil {
		t.Fatalf("CurrentBody: %v", err)
	}
	var cols schemas.AlertColumns
	if err := cols.Append(body); err != nil {
		t.Fatalf("columns of the current body: %v", err)
	}
	if got := cols.RuleSource; len(got) != 1 || got[0] != "native" {
		t.Errorf("rule_source column = %q, want the default [native]", got)
	}
}

func TestSerdeConfluentFraming(t *testing.T) {
	s := builtinSerde(t)
	if err := s.SetRegistryID(schemas.AlertSchema, 42); err != nil {
		t.Fatal(err)
	}
	a := &schemas.Alert{AlertID: "a", RuleSource: "sigma"}
	b, err := s.Encode(nil, schemas.AlertSchema, a)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0, 0, 0, 0, 42}; !bytes.Equal(b[:5], want) {
		t.Fatalf("frame starts %x, want %x", b[:5], want)
	}
	_, rec, err := s.DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(any(a), any(rec)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSerdeRecordErrors(t *testing.T) {
	s := builtinSerde(t)
	alert, err := s.Encode(nil, schemas.AlertSchema, &schemas.Alert{AlertID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Encode(nil, schemas.AlertSchema, &schemas.ProcessEvent{}); err == nil {
		t.Error("Encode of a process event under the alert schema: no error")
	}
	var de *avro.DecodeError
	if _, err := s.DecodeInto(alert, &schemas.ProcessEvent{}); !errors.As(err, &de) {
		t.Errorf("DecodeInto a process event of an alert: err = %v, want a *DecodeError", err)
	}
	if _, _, err := s.DecodeRecord(alert[:len(alert)-1]); !errors.As(err, &de) || !errors.Is(err, schemas.ErrShortBuffer) {
		t.Errorf("DecodeRecord of a truncated alert: err = %v, want a *DecodeError wrapping ErrShortBuffer", err)
	}
	unknown := binary.LittleEndian.AppendUint64([]byte{0xC3, 0x01}, 0x1234)
	if _, _, err := s.DecodeRecord(unknown); !errors.As(err, &de) || !errors.Is(err, avro.ErrUnknownSchema) {
		t.Errorf("DecodeRecord of an unknown fingerprint: err = %v, want ErrUnknownSchema", err)
	}
	bare := avro.NewSerde()
	if _, err := bare.Register(`{"type": "record", "name": "Bare", "namespace": "test", "fields": [{"name": "x", "type": "long"}]}`); err != nil {
		t.Fatal(err)
	}
	frame, err := bare.Encode(nil, "test.Bare", map[string]any{"x": int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bare.DecodeRecord(frame); !errors.Is(err, avro.ErrNoCodec) {
		t.Errorf("DecodeRecord of a schema without a generated codec: err = %v, want ErrNoCodec", err)
	}
	if err := avro.NewSerde().UseCodec(func() avro.Record { return new(schemas.Alert) }); !errors.Is(err, avro.ErrUnknownSchema) {
		t.Errorf("UseCodec without the schema: err = %v, want ErrUnknownSchema", err)
	}
}

// TestSerdeOtherWriterVersion: a Serde whose writer schema for a name is not the version a
// codec was generated from encodes the value through its native form.
func TestSerdeOtherWriterVersion(t *testing.T) {
	old, err := schemas.Avro.ReadFile("avro/history/alert-39ac7e286b21fa8e.avsc")
	if err != nil {
		t.Fatal(err)
	}
	s := avro.NewSerde()
	sc, err := s.Register(string(old))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode(nil, schemas.AlertSchema, &schemas.Alert{AlertID: "a", Changes: []string{"CHG-1"}})
	if err != nil {
		t.Fatalf("Encode with an earlier writer version: %v", err)
	}
	if fp, _ := avro.SingleObjectFingerprint(b); fp != sc.Fingerprint {
		t.Errorf("written with fingerprint %016x, want the registered %016x", fp, sc.Fingerprint)
	}
	_, native, err := s.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := native.(map[string]any)["changes"]; !cmp.Equal(got, []any{"CHG-1"}) {
		t.Errorf("changes = %v", got)
	}
}

// BenchmarkSerdeProcessEvent compares the Serde's generated path with goavro's, framing
// included, on an enriched process event.
func BenchmarkSerdeProcessEvent(b *testing.B) {
	fast, slow := builtinSerde(b), goavroSerde(b)
	e := &schemas.ProcessEvent{
		Envelope: schemas.Envelope{EventID: "0190d7a4-1b2c-7d3e-8f40-123456789abc", Time: 1_700_000_000_123_456_789,
			Host: schemas.Host{ID: "4c4c4544-0042", Name: "web-1"}, Kind: schemas.KindProcess},
		Action: schemas.ActionExec,
		Process: schemas.Process{PID: 4242, PPID: 1, CmdLine: "/usr/bin/curl -s https://example.com",
			Args: []string{"/usr/bin/curl", "-s", "https://example.com"}, CWD: "/tmp",
			File: schemas.File{Path: "/usr/bin/curl", Name: "curl", SHA256: "ab12"}, UID: 1000, UserName: "alice",
			GID: 1000, GroupName: "alice", LoginUID: 1000, TTY: "pts/0", CgroupID: 1 << 40, SystemdUnit: "session-1.scope",
			Parent: schemas.Parent{PID: 1, File: schemas.File{Path: "/bin/bash", Name: "bash"}, CmdLine: "-bash"}},
		Enrichment: &schemas.Enrichment{Service: "checkout", Environment: "prod", Role: "web",
			Deploy: &schemas.DeployRef{ID: "DEP-77", Service: "checkout", Version: "1.4.2"}, Verdict: schemas.VerdictMatch},
	}
	frame, err := fast.Encode(nil, schemas.ProcessSchema, e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fast.Encode(nil, schemas.ProcessSchema, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-record", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := fast.DecodeRecord(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-native", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := fast.Decode(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro-encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := slow.Encode(nil, schemas.ProcessSchema, e.Native()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro-decode-native", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := slow.Decode(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
}
