package outputs

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Severities from lowest to highest.
var severityRank = map[string]int{"informational": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

// rank of a severity; an unknown one ranks as medium, so that a typo in a rule is not lost.
func rank(sev string) int {
	if r, ok := severityRank[sev]; ok {
		return r
	}
	return severityRank["medium"]
}

// AlertJSON is an alert as webhook bodies and JSON lines carry it: the fields of
// schemas/avro/alert.avsc, times in RFC 3339 with nanoseconds.
type AlertJSON struct {
	AlertID          string       `json:"alert_id"`
	Time             time.Time    `json:"time"`
	RuleID           string       `json:"rule_id"`
	Title            string       `json:"title"`
	Severity         string       `json:"severity"`
	Tags             []string     `json:"tags"`
	GroupKey         string       `json:"group_key"`
	Host             schemas.Host `json:"host"`
	Service          string       `json:"service"`
	WindowStart      time.Time    `json:"window_start"`
	WindowEnd        time.Time    `json:"window_end"`
	Count            int64        `json:"count"`
	Evidence         []string     `json:"evidence"`
	Summary          string       `json:"summary"`
	Author           string       `json:"author,omitempty"`
	Level            string       `json:"level,omitempty"`
	RuleSource       string       `json:"rule_source,omitempty"`
	OriginalSeverity string       `json:"original_severity,omitempty"`
	Changes          []string     `json:"changes,omitempty"`
	Explanation      string       `json:"explanation,omitempty"`
	// Version orders the deliveries of one alert id (see the output's updates); Final marks
	// the last; IncidentID names the alert's incident.
	Version    int64  `json:"version"`
	Final      bool   `json:"final"`
	IncidentID string `json:"incident_id,omitempty"`
	URL        string `json:"url,omitempty"`
}

// IncidentJSON is what an incident adds to a webhook body or JSON line (deliver: incidents);
// its alert is the incident rendered as one (see incidentAlert).
type IncidentJSON struct {
	IncidentID string         `json:"incident_id"`
	TreeKey    string         `json:"tree_key"`
	Subject    string         `json:"subject"`
	Alerts     int64          `json:"alerts"`
	Events     int64          `json:"events"`
	Rules      []IncidentRule `json:"rules"`
	AlertIDs   []string       `json:"alert_ids"`
	LastTime   time.Time      `json:"last_time"`
}

// IncidentRule is one rule of an incident and how many of its alerts the incident holds.
type IncidentRule struct {
	RuleID   string `json:"rule_id"`
	Title    string `json:"title"`
	Severity string `json:"severity"`
	Alerts   int64  `json:"alerts"`
}

func incidentJSON(in *schemas.Incident) *IncidentJSON {
	if in == nil {
		return nil
	}
	out := &IncidentJSON{IncidentID: in.IncidentID, TreeKey: in.TreeKey, Subject: in.Subject, Alerts: in.Alerts,
		Events: in.Events, Rules: []IncidentRule{}, AlertIDs: in.AlertIDs, LastTime: time.Unix(0, in.LastTime).UTC()}
	if out.AlertIDs == nil {
		out.AlertIDs = []string{}
	}
	for _, r := range in.Rules {
		out.Rules = append(out.Rules, IncidentRule{RuleID: r.RuleID, Title: r.Title, Severity: r.Severity, Alerts: r.Alerts})
	}
	return out
}

// IncidentRuleID is the rule id of an incident rendered as an alert.
const IncidentRuleID = "crumbs-incident"

// incidentAlert renders an incident as an alert, so that every output type and template
// delivers it: its id, highest severity, host and service, its alerts' count (Count) and ids
// (Evidence), the union of their tags, a title naming its rules and process tree.
func incidentAlert(in *schemas.Incident) *schemas.Alert {
	titles := make([]string, 0, len(in.Rules))
	for _, r := range in.Rules {
		titles = append(titles, r.Title)
	}
	what := "alerts"
	if in.Alerts == 1 {
		what = "alert"
	}
	title := fmt.Sprintf("Incident: %d %s (%s)", in.Alerts, what, strings.Join(titles, "; "))
	return &schemas.Alert{
		AlertID: in.IncidentID, Time: in.Time, RuleID: IncidentRuleID, Title: truncate(500, title), Severity: in.Severity,
		Tags: in.Tags, GroupKey: in.TreeKey, Host: in.Host, Service: in.Service, WindowStart: in.Time, WindowEnd: in.LastTime,
		Count: in.Alerts, Evidence: in.AlertIDs, Summary: in.Summary, RuleSource: "incident", Version: in.Version,
		Final: in.Final, IncidentID: in.IncidentID,
	}
}

func alertJSON(a *schemas.Alert, url string) AlertJSON {
	nz := func(ss []string) []string {
		if ss == nil {
			return []string{}
		}
		return ss
	}
	return AlertJSON{
		AlertID: a.AlertID, Time: time.Unix(0, a.Time).UTC(), RuleID: a.RuleID, Title: a.Title,
		Severity: a.Severity, Tags: nz(a.Tags), GroupKey: a.GroupKey, Host: a.Host, Service: a.Service,
		WindowStart: time.Unix(0, a.WindowStart).UTC(), WindowEnd: time.Unix(0, a.WindowEnd).UTC(),
		Count: a.Count, Evidence: nz(a.Evidence), Summary: a.Summary, Author: a.Author, Level: a.Level,
		RuleSource: a.RuleSource, OriginalSeverity: a.OriginalSeverity, Changes: a.Changes,
		Explanation: a.Explanation, Version: a.Version, Final: a.Final, IncidentID: a.IncidentID, URL: url,
	}
}

// acceptsIncident reports whether the output delivers an incident: its highest severity, and
// the rules of its alerts (one kept by rules and exclude_rules), tags and service.
func (f filter) acceptsIncident(in *schemas.Incident) bool {
	if len(f.rules) > 0 || len(f.excludeRules) > 0 {
		kept := false
		for _, r := range in.Rules {
			if (len(f.rules) == 0 || matchAny(f.rules, r.RuleID)) && !(len(f.excludeRules) > 0 && matchAny(f.excludeRules, r.RuleID)) {
				kept = true
				break
			}
		}
		if !kept {
			return false
		}
	}
	g := f
	g.rules, g.excludeRules = nil, nil
	return g.accepts(&schemas.Alert{Severity: in.Severity, Service: in.Service, Tags: in.Tags})
}

// filter is an output's choice of alerts.
type filter struct {
	minRank                             int
	rules, excludeRules, tags, services []string
}

func newFilter(o OutputConfig) filter {
	return filter{minRank: rank(o.MinSeverity), rules: o.Rules, excludeRules: o.ExcludeRules, tags: o.Tags, services: o.Services}
}

// accepts reports whether the output delivers a.
func (f filter) accepts(a *schemas.Alert) bool {
	if rank(a.Severity) < f.minRank {
		return false
	}
	if len(f.rules) > 0 && !matchAny(f.rules, a.RuleID) {
		return false
	}
	if len(f.excludeRules) > 0 && matchAny(f.excludeRules, a.RuleID) {
		return false
	}
	if len(f.services) > 0 && !matchAny(f.services, a.Service) {
		return false
	}
	if len(f.tags) > 0 {
		for _, t := range a.Tags {
			if matchAny(f.tags, t) {
				return true
			}
		}
		return false
	}
	return true
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
