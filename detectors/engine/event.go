package engine

import (
	"strings"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Most events of a busy host concern no rule: the index finds no candidate for them, or only
// conditions decided by a few fields (pins, Sigma detections). Such an event is judged on
// the record its generated codec decoded, read field by field (Fields); the activation maps
// that CEL evaluates on are built only when a CEL condition other than pins is evaluated or
// an alert is raised (Event.Activation).

// Fields reads one event's values by dotted field path (process.file.path), as the activation
// holds them: strings, int64, bool, float64, []string or []any for arrays. It also keeps a
// memo of values computed from the event once and shared by the conditions reading it
// (Sigma's lower-cased texts).
type Fields interface {
	// Value returns the value at path; false when the path crosses an absent optional
	// record or names no field.
	Value(path string) (any, bool)
	// Memo returns what SetMemo stored for this event; nil at first.
	Memo() any
	// SetMemo stores v for this event.
	SetMemo(v any)
}

// Map is an activation (see Activation) read as Fields.
type Map map[string]any

// memoKey is the key of the memo in a Map: no field name starts with NUL.
const memoKey = "\x00memo"

// Value walks the maps along path.
func (m Map) Value(path string) (any, bool) {
	var cur any = map[string]any(m)
	for path != "" {
		var el string
		el, path, _ = strings.Cut(path, ".")
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[el]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Memo returns the memo stored in the map.
func (m Map) Memo() any { return m[memoKey] }

// SetMemo stores the memo in the map.
func (m Map) SetMemo(v any) { m[memoKey] = v }

// Event is one event being judged: a decoded record read field by field, with its activation
// built on first need; or an activation given whole (Process).
type Event struct {
	rec  schemas.Record
	act  map[string]any
	memo any
}

// RecordEvent is an event judged from a record decoded by its generated codec, whose strings
// may view memory the engine must not hold on to (a decoder's input, the fetch buffer of a
// Kafka client): what the engine keeps (window states, alerts, the process table) comes from
// the activation, built from a private copy of the record, or is copied.
func RecordEvent(rec schemas.Record) Event { return Event{rec: rec} }

// enrichmentDefaults are what an event without enrichment reads in its activation (see
// Activation), so that reading it field by field gives the same answers.
var enrichmentDefaults = map[string]any{"enrichment.service": "", "enrichment.environment": "", "enrichment.role": "",
	"enrichment.verdict": "", "enrichment.verdict_reason": ""}

// Value reads a field of the record (or of the activation, once built), with the activation's
// types: Avro ints as int64.
func (e *Event) Value(path string) (any, bool) {
	if e.rec == nil || e.act != nil {
		return Map(e.act).Value(path)
	}
	v, ok := e.rec.Field(path)
	if !ok {
		if d, ok := enrichmentDefaults[path]; ok && strings.HasPrefix(path, "enrichment.") {
			return d, true
		}
		return nil, false
	}
	switch x := v.(type) {
	case int32:
		return int64(x), true
	case float32:
		return float64(x), true
	}
	return v, true
}

// Memo returns the event's memo.
func (e *Event) Memo() any { return e.memo }

// SetMemo sets the event's memo.
func (e *Event) SetMemo(v any) { e.memo = v }

// Activation returns the event as CEL's input, building it on the first call.
func (e *Event) Activation() map[string]any {
	if e.act == nil {
		e.act = Activation(ownedNative(e.rec))
	}
	return e.act
}

// ownedNative is a record's native form with strings of its own: the record encoded again
// and decoded with the copy its strings then view.
func ownedNative(rec schemas.Record) map[string]any {
	name, _ := rec.AvroSchema()
	c, ok := schemas.CodecOf(name)
	if !ok {
		return rec.Native()
	}
	cp := c.New()
	if err := cp.UnmarshalAvroNoCopy(rec.AppendAvro(make([]byte, 0, rec.AvroSize()))); err != nil {
		return rec.Native() // cannot happen: the codec reads what it writes
	}
	return cp.Native()
}

// kindAndTime are the envelope's kind and event time.
func (e *Event) kindAndTime() (string, int64) {
	k, _ := e.Value("kind")
	t, _ := e.Value("time")
	kind, _ := k.(string)
	tm, _ := t.(int64)
	for _, s := range Sources { // the clocks keep the kind: not a view of the record
		if s == kind {
			return s, tm
		}
	}
	return strings.Clone(kind), tm
}

// FieldsCondition is a Condition that can also be decided from an event's fields read one by
// one, without its activation maps. Optional.
type FieldsCondition interface {
	Condition
	// MatchFields is Match on the event's fields; handled is false when this condition
	// needs the activation after all (then Match decides).
	MatchFields(f Fields) (hit, handled bool, err error)
}
