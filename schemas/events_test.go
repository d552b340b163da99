package schemas_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

func newSerde(t testing.TB) *avro.Serde {
	t.Helper()
	s, err := schemas.NewSerde()
	if err != nil {
		t.Fatalf("NewSerde: %v", err)
	}
	return s
}

func sampleProcessEvent(enriched bool) *schemas.ProcessEvent {
	e := &schemas.ProcessEvent{
		Envelope: schemas.Envelope{
			EventID: "0190d7a4-1b2c-7d3e-8f40-123456789abc",
			Time:    1_700_000_000_123_456_789,
			Host:    schemas.Host{ID: "4c4c4544-0042", Name: "web-1"},
			Kind:    schemas.KindProcess,
		},
		Action: schemas.ActionExec,
		Process: schemas.Process{
			PID:           4242,
			PPID:          1,
			CmdLine:       "/usr/bin/curl -s https://example.com",
			Args:          []string{"/usr/bin/curl", "-s", "https://example.com"},
			ArgsTruncated: true,
			CWD:           "/tmp",
			File:          schemas.File{Path: "/usr/bin/curl", Name: "curl", SHA256: "ab12"},
			UID:           1000,
			UserName:      "alice",
			GID:           1000,
			GroupName:     "alice",
			LoginUID:      4294967295,
			TTY:           "pts/0",
			CgroupID:      1 << 40,
			SystemdUnit:   "session-1.scope",
			ContainerID:   "c0ffee",
			ExitCode:      -1,
			Parent: schemas.Parent{
				PID:     1,
				File:    schemas.File{Path: "/bin/bash", Name: "bash"},
				CmdLine: "-bash",
			},
		},
	}
	if enriched {
		e.Enrichment = &schemas.Enrichment{Service: "checkout", Environment: "prod", Role: "web"}
	}
	return e
}

func TestProcessEventRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   *schemas.ProcessEvent
	}{
		{name: "raw", in: sampleProcessEvent(false)},
		{name: "enriched", in: sampleProcessEvent(true)},
		{name: "enriched with empty values", in: &schemas.ProcessEvent{Enrichment: &schemas.Enrichment{}}},
		{name: "zero", in: &schemas.ProcessEvent{}},
	}
	s := newSerde(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Encode(nil, schemas.ProcessSchema, tt.in.Native())
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			sc, native, err := s.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if sc.Name != schemas.ProcessSchema {
				t.Errorf("Decode schema = %s, want %s", sc.Name, schemas.ProcessSchema)
			}
			got, err := schemas.ProcessEventFromNative(native)
			if err != nil {
				t.Fatalf("ProcessEventFromNative: %v", err)
			}
			want := *tt.in
			if want.Process.Args == nil {
				want.Process.Args = []string{} // decoding yields an empty, not nil, slice
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}

			env, err := s.DecodePrefix(b, schemas.EnvelopeSchema)
			if err != nil {
				t.Fatalf("DecodePrefix: %v", err)
			}
			gotEnv, err := schemas.EnvelopeFromNative(env)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.in.Envelope, gotEnv); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAlertRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   *schemas.Alert
	}{
		{name: "full", in: &schemas.Alert{
			AlertID: "a1", Time: 1_700_000_000_000_000_000, RuleID: "curl-to-ip", Title: "curl to a bare IP",
			Severity: "high", Tags: []string{"attack.t1105"}, GroupKey: "web-1",
			Host: schemas.Host{ID: "m", Name: "web-1"}, Service: "checkout",
			WindowStart: 10, WindowEnd: 20, Count: 3, Evidence: []string{"e1", "e2", "e3"}, Summary: "3 events",
		}},
		{name: "empty", in: &schemas.Alert{Tags: []string{}, Evidence: []string{}}},
	}
	s := newSerde(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Encode(nil, schemas.AlertSchema, tt.in.Native())
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			_, native, err := s.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, err := schemas.AlertFromNative(native)
			if err != nil {
				t.Fatalf("AlertFromNative: %v", err)
			}
			if diff := cmp.Diff(tt.in, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInventoryRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   *schemas.InventoryRecord
	}{
		{name: "full", in: &schemas.InventoryRecord{
			Kind: "inventory", ID: "web-1", Host: "web-1", Service: "checkout", Environment: "prod", Role: "web", UpdatedAt: 99,
		}},
		// Native always writes kind "inventory".
		{name: "kind left empty", in: &schemas.InventoryRecord{ID: "x"}},
	}
	s := newSerde(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Encode(nil, schemas.InventorySchema, tt.in.Native())
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			_, native, err := s.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, err := schemas.InventoryFromNative(native)
			if err != nil {
				t.Fatalf("InventoryFromNative: %v", err)
			}
			want := *tt.in
			want.Kind = "inventory"
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromNativeErrors(t *testing.T) {
	tests := []struct {
		name string
		conv func(any) error
		v    any
	}{
		{name: "process: not a record", conv: func(v any) error { _, err := schemas.ProcessEventFromNative(v); return err }, v: "x"},
		{name: "process: bad field type", conv: func(v any) error { _, err := schemas.ProcessEventFromNative(v); return err },
			v: map[string]any{"event_id": int64(1)}},
		{name: "alert: not a record", conv: func(v any) error { _, err := schemas.AlertFromNative(v); return err }, v: nil},
		{name: "inventory: bad field type", conv: func(v any) error { _, err := schemas.InventoryFromNative(v); return err },
			v: map[string]any{"updated_at": "soon"}},
		{name: "envelope: host not a record", conv: func(v any) error { _, err := schemas.EnvelopeFromNative(v); return err },
			v: map[string]any{"host": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.conv(tt.v); err == nil {
				t.Errorf("conversion of %#v: err = nil, want an error", tt.v)
			}
		})
	}
}

// FuzzProcessEventFromNative decodes arbitrary frames with the crumbs schemas and converts
// whatever decodes as a process event: neither step may panic, a decoded event must convert,
// and a converted event must survive another round trip unchanged.
func FuzzProcessEventFromNative(f *testing.F) {
	s := newSerde(f)
	for _, e := range []*schemas.ProcessEvent{sampleProcessEvent(false), sampleProcessEvent(true)} {
		b, err := s.Encode(nil, schemas.ProcessSchema, e.Native())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, native, err := s.Decode(b)
		if err != nil {
			var de *avro.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %T is not a *DecodeError: %v", err, err)
			}
			return
		}
		if sc.Name != schemas.ProcessSchema {
			return
		}
		e, err := schemas.ProcessEventFromNative(native)
		if err != nil {
			t.Fatalf("ProcessEventFromNative of a decoded event: %v", err)
		}
		b2, err := s.Encode(nil, schemas.ProcessSchema, e.Native())
		if err != nil {
			t.Fatalf("Encode of a converted event: %v", err)
		}
		_, native2, err := s.Decode(b2)
		if err != nil {
			t.Fatalf("Decode of a re-encoded event: %v", err)
		}
		e2, err := schemas.ProcessEventFromNative(native2)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(e, e2); diff != "" {
			t.Fatalf("second round trip (-want +got):\n%s", diff)
		}
	})
}

func BenchmarkEncodeProcessEvent(b *testing.B) {
	s := newSerde(b)
	e := sampleProcessEvent(true)
	buf := make([]byte, 0, 1024)
	var n int
	b.ReportAllocs()
	for b.Loop() {
		out, err := s.Encode(buf[:0], schemas.ProcessSchema, e.Native())
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

func BenchmarkDecodeProcessEvent(b *testing.B) {
	s := newSerde(b)
	frame, err := s.Encode(nil, schemas.ProcessSchema, sampleProcessEvent(true).Native())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		_, native, err := s.Decode(frame)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := schemas.ProcessEventFromNative(native); err != nil {
			b.Fatal(err)
		}
	}
}
