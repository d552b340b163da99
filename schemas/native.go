package schemas

import "fmt"

// Conversions to and from goavro's native form, for the paths that still work on it (records
// written with an earlier schema, the enricher's generic path, the detector's activation).
// They are thin wrappers over the generated codecs.

// ToNative returns the goavro native form of a value of a type with a generated codec, nil
// for any other.
func ToNative(v any) map[string]any {
	if r, ok := v.(Record); ok {
		return r.Native()
	}
	return nil
}

// FromNative fills the value ptr points to (a type with a generated codec) from goavro's
// native form. Missing fields take their defaults (records written by an older schema); a
// value of the wrong type is an error naming the field.
func FromNative(native any, ptr any) error {
	r, ok := ptr.(Record)
	if !ok {
		return fmt.Errorf("%T has no generated Avro codec", ptr)
	}
	return r.FromNative(native)
}

// ProcessEventFromNative converts goavro's native form of crumbs.ProcessEvent.
func ProcessEventFromNative(v any) (*ProcessEvent, error) {
	e := new(ProcessEvent)
	return e, e.FromNative(v)
}

// AlertFromNative converts goavro's native form of crumbs.Alert.
func AlertFromNative(v any) (*Alert, error) {
	a := new(Alert)
	return a, a.FromNative(v)
}

// InventoryFromNative converts goavro's native form of crumbs.context.InventoryRecord.
func InventoryFromNative(v any) (*InventoryRecord, error) {
	r := new(InventoryRecord)
	return r, r.FromNative(v)
}

// TriageFromNative converts goavro's native form of crumbs.TriageState.
func TriageFromNative(v any) (*TriageState, error) {
	t := new(TriageState)
	return t, t.FromNative(v)
}

// DeliveryFromNative converts goavro's native form of crumbs.Delivery.
func DeliveryFromNative(v any) (*Delivery, error) {
	d := new(Delivery)
	return d, d.FromNative(v)
}

// EnvelopeFromNative converts goavro's native form of crumbs.Envelope (or any event).
func EnvelopeFromNative(v any) (Envelope, error) {
	var e Envelope
	err := e.FromNative(v)
	return e, err
}

// EnrichmentNative returns the enrichment as the value of an event's "enrichment" union field.
func EnrichmentNative(en *Enrichment) map[string]any {
	if en == nil {
		return nil
	}
	e := SystemEvent{Enrichment: en} // the event with the least besides (every kind's enrichment is the same record)
	return e.Native()["enrichment"].(map[string]any)
}

// IncidentFromNative converts goavro's native form of crumbs.Incident.
func IncidentFromNative(v any) (*Incident, error) {
	in := new(Incident)
	return in, in.FromNative(v)
}
