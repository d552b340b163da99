package schemas

// Alert is a rule's verdict on a group of events (schema crumbs.Alert).
type Alert struct {
	AlertID     string   `avro:"alert_id"`
	Time        int64    `avro:"time"`
	RuleID      string   `avro:"rule_id"`
	Title       string   `avro:"title"`
	Severity    string   `avro:"severity"`
	Tags        []string `avro:"tags"`
	GroupKey    string   `avro:"group_key"`
	Host        Host     `avro:"host"`
	Service     string   `avro:"service"`
	WindowStart int64    `avro:"window_start"`
	WindowEnd   int64    `avro:"window_end"`
	Count       int64    `avro:"count"`
	Evidence    []string `avro:"evidence"`
	Summary     string   `avro:"summary"`
	// Author is the rule's author, credited where the alert is shown (Sigma's licence asks it).
	Author string `avro:"author"`
	// Level is a Sigma rule's level as written; empty for native rules.
	Level string `avro:"level"`
	// RuleSource is the rule's format: native or sigma.
	RuleSource string `avro:"rule_source"`
	// OriginalSeverity is the rule's severity when an explaining change lowered it; else "".
	OriginalSeverity string `avro:"original_severity"`
	// Changes are the ids of the change windows that explain the alert.
	Changes []string `avro:"changes"`
	// Explanation names the changes, their type and their expected effects.
	Explanation string `avro:"explanation"`
	// Version orders the alerts raised under one AlertID: 1 for the first, then one more per
	// update (the final figures of an early alert, a throttled alert that grew); the highest
	// is the alert's current state. 0 in alerts written before versions existed.
	Version int64 `avro:"version"`
	// Final is set on the version raised when the alert's window closed, and on alerts raised
	// whole at once: no later version follows. A version without it may be followed by
	// another (or stay the last, when nothing was added).
	Final bool `avro:"final"`
	// IncidentID names the incident the alert belongs to (see Incident); empty when the
	// detector groups no incidents.
	IncidentID string `avro:"incident_id"`
}

// InventoryRecord says which service, environment and role a host serves (schema
// crumbs.context.InventoryRecord).
type InventoryRecord struct {
	Kind        string `avro:"kind" json:"kind" yaml:"kind"`
	ID          string `avro:"id" json:"id" yaml:"id"`
	Host        string `avro:"host" json:"host" yaml:"host"`
	Service     string `avro:"service" json:"service" yaml:"service"`
	Environment string `avro:"environment" json:"environment" yaml:"environment"`
	Role        string `avro:"role" json:"role" yaml:"role"`
	UpdatedAt   int64  `avro:"updated_at" json:"-" yaml:"-"`
	Source      string `avro:"source" json:"-" yaml:"-"`
}
