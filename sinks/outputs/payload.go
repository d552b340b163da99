package outputs

import (
	"path"
	"slices"
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
	URL              string       `json:"url,omitempty"`
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
		Explanation: a.Explanation, URL: url,
	}
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
