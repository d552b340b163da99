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
	AlertID   string `avro:"alert_id"`
	Version   int64  `avro:"version"`
	State     string `avro:"state"`
	Assignee  string `avro:"assignee"`
	UpdatedAt int64  `avro:"updated_at"`
	UpdatedBy string `avro:"updated_by"`
}

// Closed reports whether the state ends the alert: resolved, or a false positive.
func (t *TriageState) Closed() bool {
	return t.State == TriageResolved || t.State == TriageFalsePositive
}

// Delivery is what became of one alert, or of its resolution, at one output of the alerts
// stage (schema crumbs.Delivery), on the compacted topic crumbs.deliveries.
type Delivery struct {
	AlertID      string `avro:"alert_id"`
	Output       string `avro:"output"`
	Action       string `avro:"action"` // trigger or resolve
	Status       string `avro:"status"` // delivered, summarized or dead_lettered
	Attempts     int32  `avro:"attempts"`
	At           int64  `avro:"at"`
	SourceTopic  string `avro:"source_topic"`
	SourceOffset int64  `avro:"source_offset"`
	Detail       string `avro:"detail"`
}
