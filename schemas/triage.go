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
	// Notes are every note on the alert, oldest first.
	Notes []TriageNote `avro:"notes"`
	// RuleID, Host and GroupKey are the alert's, for its suppression.
	RuleID   string `avro:"rule_id"`
	Host     string `avro:"host"`
	GroupKey string `avro:"group_key"`
	// AlertTime is the alert's time (ns since the epoch); 0 when unknown.
	AlertTime int64 `avro:"alert_time"`
	// Severity, Service and Tags are the alert's as first raised, for the inbox's counts.
	Severity string   `avro:"severity"`
	Service  string   `avro:"service"`
	Tags     []string `avro:"tags"`
	// SuppressUntil, when not 0, is until when (ns since the epoch, wall clock) the detector
	// drops the alerts of RuleID that share SuppressScope with this one.
	SuppressUntil int64 `avro:"suppress_until"`
	// SuppressScope is SuppressHost or SuppressGroupKey.
	SuppressScope string `avro:"suppress_scope"`
}

// TriageNote is a note on an alert.
type TriageNote struct {
	At   int64  `avro:"at"` // ns since the epoch
	By   string `avro:"by"`
	Text string `avro:"text"`
}

// Scopes of a suppression (TriageState.SuppressScope): what an alert shares with the false
// positive besides its rule.
const (
	SuppressHost     = "host"
	SuppressGroupKey = "group_key"
)

// Suppresses reports whether the state's suppression covers an alert of rule on host with
// groupKey at now (wall clock, ns since the epoch).
func (t *TriageState) Suppresses(rule, host, groupKey string, now int64) bool {
	if t.SuppressUntil <= now || t.State != TriageFalsePositive || t.RuleID != rule {
		return false
	}
	switch t.SuppressScope {
	case SuppressHost:
		return t.Host != "" && t.Host == host
	case SuppressGroupKey:
		return t.GroupKey == groupKey
	}
	return false
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
