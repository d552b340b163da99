package schemas

// IncidentSchema is the full name of the incident schema in Avro.
const IncidentSchema = "crumbs.Incident"

// Incident is alerts of one process tree or login session on one host, raised close together
// (schema crumbs.Incident, on crumbs.incidents).
type Incident struct {
	IncidentID string `avro:"incident_id"`
	Version    int64  `avro:"version"`
	// Final is set on the version raised when the incident closed: no later version follows.
	Final    bool   `avro:"final"`
	Time     int64  `avro:"time"`      // event time of the first alert
	LastTime int64  `avro:"last_time"` // event time of the latest alert
	Host     Host   `avro:"host"`
	Service  string `avro:"service"`
	// TreeKey is what ties the alerts: cgroup:<id>, tree:<pid>:<start>, login:<uid>, pid:<pid>
	// or host.
	TreeKey string `avro:"tree_key"`
	// Subject is the tree key in words.
	Subject  string         `avro:"subject"`
	Severity string         `avro:"severity"` // the highest of its alerts
	Alerts   int64          `avro:"alerts"`
	Events   int64          `avro:"events"`
	Rules    []IncidentRule `avro:"rules"`
	AlertIDs []string       `avro:"alert_ids"`
	Tags     []string       `avro:"tags"`
	Summary  string         `avro:"summary"`
}

// IncidentRule is one rule whose alerts an incident holds.
type IncidentRule struct {
	RuleID   string `avro:"rule_id"`
	Title    string `avro:"title"`
	Severity string `avro:"severity"`
	Alerts   int64  `avro:"alerts"`
}
