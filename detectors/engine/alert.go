package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Alert is an alert as the engine raises it: the schema's alert and the partition of the
// events behind it.
type Alert struct {
	schemas.Alert
	// Partition is the partition of the events behind the alert (not encoded).
	Partition int32

	tree  *treeRef        // the process tree of the alert's first event, for its incident
	keep  func(id string) // stores the incident id in the state of an alert that stays open
	added int64           // events a later version added to the one before (throttling)
}

// AlertID is deterministic: a hash of the rule, the group key and the window, so a replayed
// evaluation yields the same id.
func AlertID(ruleID, groupKey, window string) string {
	h := sha256.Sum256([]byte(ruleID + "\x00" + groupKey + "\x00" + window))
	return hex.EncodeToString(h[:16])
}

// windowID names a window [start, end) for AlertID.
func windowID(start, end int64) string { return fmt.Sprintf("%d-%d", start, end) }

// changeNote is a change window seen on an event behind an alert.
type changeNote struct {
	ID       string   `json:"id"`
	Type     string   `json:"type"`
	Title    string   `json:"title,omitempty"`
	Expected []effect `json:"expected,omitempty"`
}

// effect is a change's expected effect on a service's metric.
type effect struct {
	Service string  `json:"service"`
	Metric  string  `json:"metric"`
	UpTo    float64 `json:"up_to_factor"`
}

// maxChanges caps the change windows remembered per group key.
const maxChanges = 8

// changesOf reads enrichment.changes of an activation.
func changesOf(act map[string]any) []changeNote {
	en, _ := act["enrichment"].(map[string]any)
	list, _ := en["changes"].([]any)
	out := make([]changeNote, 0, len(list))
	for _, c := range list {
		cm, _ := c.(map[string]any)
		n := changeNote{ID: str(cm["id"]), Type: str(cm["type"]), Title: str(cm["title"])}
		exp, _ := cm["expected"].([]any)
		for _, x := range exp {
			xm, _ := x.(map[string]any)
			f := number(xm["up_to_factor"])
			n.Expected = append(n.Expected, effect{Service: str(xm["service"]), Metric: str(xm["metric"]), UpTo: f})
		}
		out = append(out, n)
	}
	return out
}

// mergeChanges adds the changes not yet in have, up to maxChanges.
func mergeChanges(have, add []changeNote) []changeNote {
	for _, c := range add {
		if len(have) >= maxChanges {
			break
		}
		if !slices.ContainsFunc(have, func(h changeNote) bool { return h.ID == c.ID }) {
			have = append(have, c)
		}
	}
	return have
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// lowerSeverity is one step below s; informational stays.
func lowerSeverity(s string) string {
	i := slices.Index(Severities, s)
	if i <= 0 {
		return s
	}
	return Severities[i-1]
}

// applyChanges applies the rule's change policy; false means the alert is suppressed.
// factor is the observed ratio to the baseline for spikes (0 otherwise): a change whose
// expected effect on the rule's metric is smaller than the observation does not explain it.
func applyChanges(r *Rule, a *Alert, changes []changeNote, service string, factor float64) bool {
	if len(changes) == 0 || r.OnChange == OnChangeIgnore {
		return true
	}
	if r.OnChange == OnChangeSuppress {
		return false
	}
	var ids, parts []string
	for _, c := range changes {
		var effs []string
		exceeded := false
		for _, x := range c.Expected {
			effs = append(effs, fmt.Sprintf("%s %s up to x%g", x.Service, x.Metric, x.UpTo))
			if factor > 0 && r.Spike != nil && x.Metric == r.Spike.Metric && (x.Service == "" || x.Service == service) && factor > x.UpTo {
				exceeded = true
			}
		}
		if exceeded {
			continue
		}
		ids = append(ids, c.ID)
		p := c.ID + " (" + c.Type
		if c.Title != "" {
			p += ": " + c.Title
		}
		p += ")"
		if len(effs) > 0 {
			p += " expects " + strings.Join(effs, ", ")
		}
		parts = append(parts, p)
	}
	if len(ids) == 0 {
		a.Summary += fmt.Sprintf(" (x%.1f exceeds what the active changes expect)", factor)
		return true
	}
	a.OriginalSeverity = a.Severity
	a.Severity = lowerSeverity(a.Severity)
	a.Changes = ids
	a.Explanation = "explained by " + strings.Join(parts, "; ")
	a.Summary += "; " + a.Explanation
	return true
}
