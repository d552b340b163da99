package schemas

// Full names of the triage and delivery schemas in Avro.
const (
	TriageSchema   = "crumbs.TriageState"
	DeliverySchema = "crumbs.Delivery"
)

// Triage states of an alert (TriageState.State).
const (
	TriageNew           = "new"
	TriageAcknowledged  = "acknowledged"
	TriageResolved      = "resolved"
	TriageFalsePositive = "false_positive"
)

// TriageState is an alert's triage state on the compacted topic crumbs.triage, keyed by alert
// id (schema crumbs.TriageState).
type TriageState struct {
	AlertID   string
	Version   int64
	State     string
	Assignee  string
	UpdatedAt int64
	UpdatedBy string
}

// Closed reports whether the state ends the alert: resolved, or a false positive.
func (t *TriageState) Closed() bool {
	return t.State == TriageResolved || t.State == TriageFalsePositive
}

// Native returns the state in goavro's native form.
func (t *TriageState) Native() map[string]any {
	return map[string]any{
		"alert_id": t.AlertID, "version": t.Version, "state": t.State, "assignee": t.Assignee,
		"updated_at": t.UpdatedAt, "updated_by": t.UpdatedBy,
	}
}

// TriageFromNative converts goavro's native form of crumbs.TriageState.
func TriageFromNative(v any) (*TriageState, error) {
	r := reader{}
	m := r.rec(v, "")
	t := &TriageState{
		AlertID: r.str(m, "alert_id"), Version: r.i64(m, "version"), State: r.str(m, "state"),
		Assignee: r.str(m, "assignee"), UpdatedAt: r.i64(m, "updated_at"), UpdatedBy: r.str(m, "updated_by"),
	}
	return t, r.err
}

// Delivery is what became of one alert, or of its resolution, at one output of the alerts
// stage (schema crumbs.Delivery), on the compacted topic crumbs.deliveries.
type Delivery struct {
	AlertID      string
	Output       string
	Action       string // trigger or resolve
	Status       string // delivered, summarized or dead_lettered
	Attempts     int32
	At           int64
	SourceTopic  string
	SourceOffset int64
	Detail       string
}

// Native returns the delivery in goavro's native form.
func (d *Delivery) Native() map[string]any {
	return map[string]any{
		"alert_id": d.AlertID, "output": d.Output, "action": d.Action, "status": d.Status,
		"attempts": d.Attempts, "at": d.At, "source_topic": d.SourceTopic,
		"source_offset": d.SourceOffset, "detail": d.Detail,
	}
}

// DeliveryFromNative converts goavro's native form of crumbs.Delivery.
func DeliveryFromNative(v any) (*Delivery, error) {
	r := reader{}
	m := r.rec(v, "")
	d := &Delivery{
		AlertID: r.str(m, "alert_id"), Output: r.str(m, "output"), Action: r.str(m, "action"),
		Status: r.str(m, "status"), Attempts: r.i32(m, "attempts"), At: r.i64(m, "at"),
		SourceTopic: r.str(m, "source_topic"), SourceOffset: r.i64(m, "source_offset"), Detail: r.str(m, "detail"),
	}
	return d, r.err
}
