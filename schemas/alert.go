package schemas

// Alert is a rule's verdict on a group of events (schema crumbs.Alert).
type Alert struct {
	AlertID     string
	Time        int64
	RuleID      string
	Title       string
	Severity    string
	Tags        []string
	GroupKey    string
	Host        Host
	Service     string
	WindowStart int64
	WindowEnd   int64
	Count       int64
	Evidence    []string
	Summary     string
	// Author is the rule's author, credited where the alert is shown (Sigma's licence asks it).
	Author string
	// Level is a Sigma rule's level as written; empty for native rules.
	Level string
	// RuleSource is the rule's format: native or sigma.
	RuleSource string
	// OriginalSeverity is the rule's severity when an explaining change lowered it; else "".
	OriginalSeverity string
	// Changes are the ids of the change windows that explain the alert.
	Changes []string
	// Explanation names the changes, their type and their expected effects.
	Explanation string
	// Version orders the alerts raised under one AlertID: 1 for the first, 2 for the alert
	// that replaces an early one when its window closes (see the early rule option); the
	// highest is the alert's current state. 0 in alerts written before versions existed.
	Version int64
}

// Native returns the alert in goavro's native form.
func (a *Alert) Native() map[string]any {
	return map[string]any{
		"alert_id":     a.AlertID,
		"time":         a.Time,
		"rule_id":      a.RuleID,
		"title":        a.Title,
		"severity":     a.Severity,
		"tags":         anySlice(a.Tags),
		"group_key":    a.GroupKey,
		"host":         hostNative(a.Host),
		"service":      a.Service,
		"window_start": a.WindowStart,
		"window_end":   a.WindowEnd,
		"count":        a.Count,
		"evidence":     anySlice(a.Evidence),
		"summary":      a.Summary,
		"author":       a.Author,
		"level":        a.Level,
		"rule_source":  a.RuleSource,

		"original_severity": a.OriginalSeverity,
		"changes":           anySlice(a.Changes),
		"explanation":       a.Explanation,
		"version":           a.Version,
	}
}

// AlertFromNative converts goavro's native form of crumbs.Alert.
func AlertFromNative(v any) (*Alert, error) {
	r := reader{}
	m := r.rec(v, "")
	h := r.rec(m["host"], "host")
	a := &Alert{
		AlertID:     r.str(m, "alert_id"),
		Time:        r.i64(m, "time"),
		RuleID:      r.str(m, "rule_id"),
		Title:       r.str(m, "title"),
		Severity:    r.str(m, "severity"),
		Tags:        r.strs(m, "tags"),
		GroupKey:    r.str(m, "group_key"),
		Host:        Host{ID: r.str(h, "id"), Name: r.str(h, "name")},
		Service:     r.str(m, "service"),
		WindowStart: r.i64(m, "window_start"),
		WindowEnd:   r.i64(m, "window_end"),
		Count:       r.i64(m, "count"),
		Evidence:    r.strs(m, "evidence"),
		Summary:     r.str(m, "summary"),
	}
	// Alerts written before these fields existed decode with their defaults.
	if _, ok := m["author"]; ok {
		a.Author, a.Level, a.RuleSource = r.str(m, "author"), r.str(m, "level"), r.str(m, "rule_source")
	} else {
		a.RuleSource = "native"
	}
	a.OriginalSeverity, a.Changes, a.Explanation = r.str(m, "original_severity"), r.strs(m, "changes"), r.str(m, "explanation")
	if len(a.Changes) == 0 {
		a.Changes = nil
	}
	a.Version = r.i64(m, "version") // 0 in alerts written before versions existed
	return a, r.err
}

// InventoryRecord says which service, environment and role a host serves (schema
// crumbs.context.InventoryRecord).
type InventoryRecord struct {
	Kind        string `json:"kind" yaml:"kind"`
	ID          string `json:"id" yaml:"id"`
	Host        string `json:"host" yaml:"host"`
	Service     string `json:"service" yaml:"service"`
	Environment string `json:"environment" yaml:"environment"`
	Role        string `json:"role" yaml:"role"`
	UpdatedAt   int64  `json:"-" yaml:"-"`
}

// Native returns the record in goavro's native form.
func (r *InventoryRecord) Native() map[string]any {
	return map[string]any{
		"kind": "inventory", "id": r.ID, "host": r.Host, "service": r.Service,
		"environment": r.Environment, "role": r.Role, "updated_at": r.UpdatedAt,
	}
}

// InventoryFromNative converts goavro's native form of crumbs.context.InventoryRecord.
func InventoryFromNative(v any) (*InventoryRecord, error) {
	r := reader{}
	m := r.rec(v, "")
	rec := &InventoryRecord{
		Kind: r.str(m, "kind"), ID: r.str(m, "id"), Host: r.str(m, "host"), Service: r.str(m, "service"),
		Environment: r.str(m, "environment"), Role: r.str(m, "role"), UpdatedAt: r.i64(m, "updated_at"),
	}
	return rec, r.err
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
