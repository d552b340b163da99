package schemas_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

func newSerde(t testing.TB) *avro.Serde {
	t.Helper()
	s, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatalf("NewBuiltinSerde: %v", err)
	}
	return s
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
			for _, via := range []struct {
				name string
				v    any
			}{{"generated", tt.in}, {"native", tt.in.Native()}} {
				b, err := s.Encode(nil, schemas.ProcessSchema, via.v)
				if err != nil {
					t.Fatalf("Encode %s: %v", via.name, err)
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
				if diff := cmp.Diff(tt.in, got); diff != "" {
					t.Errorf("round trip from %s through native (-want +got):\n%s", via.name, diff)
				}
				_, rec, err := s.DecodeRecord(b)
				if err != nil {
					t.Fatalf("DecodeRecord: %v", err)
				}
				if diff := cmp.Diff(any(tt.in), any(rec)); diff != "" {
					t.Errorf("round trip from %s through DecodeRecord (-want +got):\n%s", via.name, diff)
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
			}
		})
	}
}

func TestAlertRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   *schemas.Alert
	}{
		{name: "full", in: sampleAlert()},
		{name: "empty", in: &schemas.Alert{}},
	}
	s := newSerde(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Encode(nil, schemas.AlertSchema, tt.in)
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

func TestIncidentRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   *schemas.Incident
	}{
		{name: "full", in: sampleIncident()},
		{name: "empty", in: &schemas.Incident{}},
	}
	s := newSerde(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Encode(nil, schemas.IncidentSchema, tt.in)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			_, native, err := s.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, err := schemas.IncidentFromNative(native)
			if err != nil {
				t.Fatalf("IncidentFromNative: %v", err)
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
		{name: "full", in: sampleInventoryRecord()},
		{name: "empty", in: &schemas.InventoryRecord{ID: "x"}},
	}
	s := newSerde(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Encode(nil, schemas.InventorySchema, tt.in)
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
			if diff := cmp.Diff(tt.in, got); diff != "" {
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
		want string
	}{
		{name: "process: not a record", conv: func(v any) error { _, err := schemas.ProcessEventFromNative(v); return err }, v: "x",
			want: "crumbs.ProcessEvent: want a record, got string"},
		{name: "process: bad field type", conv: func(v any) error { _, err := schemas.ProcessEventFromNative(v); return err },
			v: map[string]any{"event_id": int64(1)}, want: "crumbs.ProcessEvent: field event_id: want a string, got int64"},
		{name: "process: bad nested field type", conv: func(v any) error { _, err := schemas.ProcessEventFromNative(v); return err },
			v:    map[string]any{"process": map[string]any{"user": map[string]any{"uid": "root"}}},
			want: "crumbs.ProcessEvent: field process.user.uid: want a long, got string"},
		{name: "alert: not a record", conv: func(v any) error { _, err := schemas.AlertFromNative(v); return err }, v: nil,
			want: "crumbs.Alert: want a record, got <nil>"},
		{name: "inventory: bad field type", conv: func(v any) error { _, err := schemas.InventoryFromNative(v); return err },
			v: map[string]any{"updated_at": "soon"}, want: "crumbs.context.InventoryRecord: field updated_at: want a long, got string"},
		{name: "envelope: host not a record", conv: func(v any) error { _, err := schemas.EnvelopeFromNative(v); return err },
			v: map[string]any{"host": 3}, want: "crumbs.Envelope: field host: want a record, got int"},
		{name: "no generated codec", conv: func(v any) error { return schemas.FromNative(v, &struct{}{}) }, v: map[string]any{},
			want: "*struct {} has no generated Avro codec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.conv(tt.v)
			if err == nil {
				t.Fatalf("conversion of %#v: err = nil, want %q", tt.v, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("err = %q, want %q", err, tt.want)
			}
		})
	}
}

// TestFromNativeDefaults: a record written before fields existed gets their defaults.
func TestFromNativeDefaults(t *testing.T) {
	got, err := schemas.AlertFromNative(map[string]any{"alert_id": "a", "tags": []any{}})
	if err != nil {
		t.Fatal(err)
	}
	want := &schemas.Alert{AlertID: "a", RuleSource: "native"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alert from an early writer (-want +got):\n%s", diff)
	}
}
